//! One docstore chunk's token vectors: `tokens/<model>/chunk-<chunk generation>.bin`.
//!
//! ```text
//! header (32 bytes): b"FTOK", version u32, documents u32, dim u32, nbits u32 (0: f16 vectors),
//!                    reserved u32, tokens u64
//! doclens  u32 × documents      tokens per document (deleted documents keep theirs)
//! ids      u32 × tokens         vocabulary id of each token (ColBERT-PRF's IDF)
//! codes    u32 × tokens         nearest centroid of each token
//! payload  tokens × (dim × 2 bytes of f16 | dim × nbits / 8 bytes of packed residuals)
//! ```
//! All little-endian; the file is memory-mapped and checked whole when opened.

use std::path::Path;

use crate::IndexError;

const MAGIC: &[u8; 4] = b"FTOK";
const VERSION: u32 = 1;
const HEADER: usize = 32;

/// What a chunk file holds, before it is written.
pub(crate) struct ChunkTokens {
    pub doclens: Vec<u32>,
    pub ids: Vec<u32>,
    pub codes: Vec<u32>,
    pub payload: Vec<u8>,
}

pub(crate) fn encode(t: &ChunkTokens, dim: usize, nbits: u32) -> Vec<u8> {
    let tokens = t.ids.len();
    let mut out = Vec::with_capacity(HEADER + 4 * (t.doclens.len() + 2 * tokens) + t.payload.len());
    out.extend_from_slice(MAGIC);
    for v in [VERSION, t.doclens.len() as u32, dim as u32, nbits, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(tokens as u64).to_le_bytes());
    for v in t.doclens.iter().chain(&t.ids).chain(&t.codes) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&t.payload);
    out
}

/// A mapped chunk file, checked.
pub(crate) struct ChunkFile {
    map: memmap2::Mmap,
    pub documents: usize,
    pub tokens: usize,
    row_bytes: usize,
}

impl ChunkFile {
    pub(crate) fn open(
        path: &Path,
        documents: usize,
        dim: usize,
        nbits: u32,
        centroids: usize,
    ) -> Result<ChunkFile, IndexError> {
        let f = std::fs::File::open(path).map_err(IndexError::io(path))?;
        // SAFETY: index files are immutable once committed; the map is only read.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(IndexError::io(path))?;
        // A search reads the vectors of a few hundred scattered documents: no read-ahead, so
        // that only the pages it touches are read.
        #[cfg(unix)]
        map.advise(memmap2::Advice::Random)
            .map_err(IndexError::io(path))?;
        let bad = |message: String| IndexError::Invalid {
            path: path.to_path_buf(),
            message: format!("corrupt token file: {message}"),
        };
        if map.len() < HEADER || &map[..4] != MAGIC {
            return Err(bad("no FTOK header".into()));
        }
        let word = |i: usize| u32::from_le_bytes(map[4 * i..4 * i + 4].try_into().unwrap());
        if word(1) != VERSION {
            return Err(bad(format!(
                "version {} (this ferret reads {VERSION})",
                word(1)
            )));
        }
        let (docs, file_dim, file_nbits) = (word(2) as usize, word(3) as usize, word(4));
        if docs != documents || file_dim != dim || file_nbits != nbits {
            return Err(bad(format!(
                "header says {docs} documents, {file_dim} dims, {file_nbits} bits; the manifest {documents}, {dim}, {nbits}"
            )));
        }
        let tokens = u64::from_le_bytes(map[24..32].try_into().unwrap()) as usize;
        let row_bytes = row_bytes(dim, nbits);
        let expected = tokens
            .checked_mul(8 + row_bytes)
            .and_then(|t| t.checked_add(HEADER + 4 * docs));
        if expected != Some(map.len()) {
            return Err(bad(format!(
                "{} bytes for {docs} documents and {tokens} tokens (truncated?)",
                map.len()
            )));
        }
        let chunk = ChunkFile {
            map,
            documents: docs,
            tokens,
            row_bytes,
        };
        let total: u64 = chunk.doclens().iter().map(|&n| n as u64).sum();
        if total != tokens as u64 {
            return Err(bad(format!(
                "document lengths add up to {total}, the header says {tokens} tokens"
            )));
        }
        if let Some(i) = chunk.codes().iter().position(|&c| c as usize >= centroids) {
            return Err(bad(format!(
                "token {i} names centroid {} of {centroids}",
                chunk.codes()[i]
            )));
        }
        Ok(chunk)
    }

    fn u32s(&self, from: usize, count: usize) -> &[u32] {
        let bytes = &self.map[from..from + 4 * count];
        // SAFETY: the map is page-aligned and `from` is a multiple of 4 (a 32-byte header
        // then u32 arrays); the length was checked at open.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u32>(), count) }
    }

    pub(crate) fn doclens(&self) -> &[u32] {
        self.u32s(HEADER, self.documents)
    }

    pub(crate) fn ids(&self) -> &[u32] {
        self.u32s(HEADER + 4 * self.documents, self.tokens)
    }

    pub(crate) fn codes(&self) -> &[u32] {
        self.u32s(HEADER + 4 * (self.documents + self.tokens), self.tokens)
    }

    /// The stored row (f16 vector or packed residual) of local token `t`.
    pub(crate) fn row(&self, t: usize) -> &[u8] {
        let start = HEADER + 4 * (self.documents + 2 * self.tokens) + t * self.row_bytes;
        &self.map[start..start + self.row_bytes]
    }

    /// Rows of local tokens `range`, contiguous.
    pub(crate) fn rows(&self, range: std::ops::Range<usize>) -> &[u8] {
        let start = HEADER + 4 * (self.documents + 2 * self.tokens);
        &self.map[start + range.start * self.row_bytes..start + range.end * self.row_bytes]
    }
}

/// Bytes of one stored token.
pub(crate) fn row_bytes(dim: usize, nbits: u32) -> usize {
    if nbits == 0 {
        2 * dim
    } else {
        (dim * nbits as usize).div_ceil(8)
    }
}
