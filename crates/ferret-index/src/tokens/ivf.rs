//! The inverted lists over the live documents: `tokens/<model>/ivf-<generation>.bin`, for
//! every centroid the tokens assigned to it (global token numbers, for XTR-style token
//! retrieval) and the documents having at least one such token (for PLAID-style candidate
//! generation). Rebuilt by every commit that adds or deletes documents.
//!
//! ```text
//! header (32 bytes): b"FIVF", version u32, centroids u32, reserved u32, tokens u64, postings u64
//! token offsets u64 × (centroids + 1) | document offsets u64 × (centroids + 1)
//! tokens u32 × tokens | documents u32 × postings
//! ```

use std::path::Path;

use crate::{DocNo, IndexError};

const MAGIC: &[u8; 4] = b"FIVF";
const VERSION: u32 = 1;
const HEADER: usize = 32;

/// Builds the lists from (document, its global token numbers, their codes) in document order.
pub(crate) fn build<'a>(
    centroids: usize,
    documents: impl Iterator<Item = (DocNo, u32, &'a [u32])>,
) -> Vec<u8> {
    // Counting sort by centroid; documents arrive in order, so lists come out sorted.
    let docs: Vec<(DocNo, u32, &[u32])> = documents.collect();
    let mut token_counts = vec![0u64; centroids + 1];
    let mut doc_counts = vec![0u64; centroids + 1];
    let mut seen = vec![u32::MAX; centroids];
    for (i, (_, _, codes)) in docs.iter().enumerate() {
        for &c in *codes {
            token_counts[c as usize + 1] += 1;
            if seen[c as usize] != i as u32 {
                seen[c as usize] = i as u32;
                doc_counts[c as usize + 1] += 1;
            }
        }
    }
    for c in 0..centroids {
        token_counts[c + 1] += token_counts[c];
        doc_counts[c + 1] += doc_counts[c];
    }
    let (ntokens, npostings) = (token_counts[centroids], doc_counts[centroids]);
    let mut tokens = vec![0u32; ntokens as usize];
    let mut postings = vec![0u32; npostings as usize];
    let (mut tok_fill, mut doc_fill) = (token_counts.clone(), doc_counts.clone());
    seen.fill(u32::MAX);
    for (i, (d, first_token, codes)) in docs.iter().enumerate() {
        for (t, &c) in codes.iter().enumerate() {
            let c = c as usize;
            tokens[tok_fill[c] as usize] = first_token + t as u32;
            tok_fill[c] += 1;
            if seen[c] != i as u32 {
                seen[c] = i as u32;
                postings[doc_fill[c] as usize] = *d;
                doc_fill[c] += 1;
            }
        }
    }
    let mut out =
        Vec::with_capacity(HEADER + 16 * (centroids + 1) + 4 * (tokens.len() + postings.len()));
    out.extend_from_slice(MAGIC);
    for v in [VERSION, centroids as u32, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&ntokens.to_le_bytes());
    out.extend_from_slice(&npostings.to_le_bytes());
    for v in token_counts.iter().chain(&doc_counts) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in tokens.iter().chain(&postings) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The mapped lists, checked.
pub struct Ivf {
    map: memmap2::Mmap,
    centroids: usize,
    tokens: usize,
}

impl Ivf {
    pub(crate) fn open(
        path: &Path,
        centroids: usize,
        slots: usize,
        all_tokens: usize,
    ) -> Result<Ivf, IndexError> {
        let f = std::fs::File::open(path).map_err(IndexError::io(path))?;
        // SAFETY: index files are immutable once committed; the map is only read.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(IndexError::io(path))?;
        let bad = |message: String| IndexError::Invalid {
            path: path.to_path_buf(),
            message: format!("corrupt inverted lists: {message}"),
        };
        if map.len() < HEADER || &map[..4] != MAGIC {
            return Err(bad("no FIVF header".into()));
        }
        let word = |i: usize| u32::from_le_bytes(map[4 * i..4 * i + 4].try_into().unwrap());
        if word(1) != VERSION || word(2) as usize != centroids {
            return Err(bad(format!(
                "version {}, {} centroids (expected {VERSION}, {centroids})",
                word(1),
                word(2)
            )));
        }
        let tokens = u64::from_le_bytes(map[16..24].try_into().unwrap()) as usize;
        let postings = u64::from_le_bytes(map[24..32].try_into().unwrap()) as usize;
        // Checked: the counts come from the file, and a wrapped sum could match its length.
        let expected = tokens
            .checked_add(postings)
            .and_then(|n| n.checked_mul(4))
            .and_then(|n| n.checked_add(HEADER + 16 * (centroids + 1)));
        if expected != Some(map.len()) {
            return Err(bad(format!(
                "{} bytes for {tokens} tokens and {postings} postings (truncated?)",
                map.len()
            )));
        }
        let ivf = Ivf {
            map,
            centroids,
            tokens,
        };
        for (offsets, total) in [(ivf.offsets(0), tokens), (ivf.offsets(1), postings)] {
            if offsets[0] != 0
                || offsets[centroids] as usize != total
                || offsets.windows(2).any(|w| w[0] > w[1])
            {
                return Err(bad("offsets out of order".into()));
            }
        }
        if ivf.all_tokens().iter().any(|&t| t as usize >= all_tokens)
            || ivf.all_docs().iter().any(|&d| d as usize >= slots)
        {
            return Err(bad("an entry past the end of the collection".into()));
        }
        Ok(ivf)
    }

    fn offsets(&self, which: usize) -> &[u64] {
        let start = HEADER + which * 8 * (self.centroids + 1);
        // SAFETY: page-aligned map, 8-aligned start; length checked at open.
        unsafe {
            std::slice::from_raw_parts(self.map[start..].as_ptr().cast::<u64>(), self.centroids + 1)
        }
    }

    fn u32s(&self, start: usize, count: usize) -> &[u32] {
        // SAFETY: page-aligned map, 4-aligned start; length checked at open.
        unsafe { std::slice::from_raw_parts(self.map[start..].as_ptr().cast::<u32>(), count) }
    }

    fn all_tokens(&self) -> &[u32] {
        self.u32s(HEADER + 16 * (self.centroids + 1), self.tokens)
    }

    fn all_docs(&self) -> &[u32] {
        let n = self.offsets(1)[self.centroids] as usize;
        self.u32s(HEADER + 16 * (self.centroids + 1) + 4 * self.tokens, n)
    }

    /// Global numbers of the live tokens assigned to centroid `c`.
    pub fn tokens(&self, c: usize) -> &[u32] {
        let o = self.offsets(0);
        &self.all_tokens()[o[c] as usize..o[c + 1] as usize]
    }

    /// Live documents with a token assigned to centroid `c`, in order.
    pub fn documents(&self, c: usize) -> &[u32] {
        let o = self.offsets(1);
        &self.all_docs()[o[c] as usize..o[c + 1] as usize]
    }
}
