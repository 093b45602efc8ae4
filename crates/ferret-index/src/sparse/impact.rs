//! The impact index: an inverted index of 8-bit quantised term weights in blocks of
//! [`BLOCK`] postings, each block with its largest impact (block-max), searched exactly with
//! block-max MaxScore.
//!
//! Quantisation (as PISA's linear quantiser and Anserini's impact indexes): a document weight
//! `w` is stored as `round(w / scale)`, at most 255, with `scale = max w / 255` over the live
//! documents (recorded in the manifest); weights that round to 0 are dropped. A query's
//! weights `q` are quantised per query to `round(q / max q × 65535)`. A document's score is the
//! integer `Σ q_t × impact_t` (so it does not depend on the order terms are added in), reported
//! as `score × (max q / 65535) × scale`.
//!
//! Exact top-k (ties to the lower internal number) by block-max MaxScore (Turtle & Flood's
//! MaxScore with block-max bounds on the non-essential lists, Chakrabarti et al. 2011; PISA's
//! `block_max_maxscore`): lists are ordered by their upper bound; the lists whose bounds sum to
//! at most the current k-th score are non-essential — a document found only in them cannot
//! enter the top k — so candidates come from the essential lists alone, and a candidate is
//! completed from the non-essential lists only while its score plus their remaining (block)
//! bounds can still beat the k-th score. [`ImpactIndex::search_exhaustive`] scores every
//! posting; a test checks both give the same results.
//!
//! ```text
//! b"FSPIMP01"  u64 terms  u64 postings  u64 blocks  u64 dictionary bytes
//! dictionary: JSON array of [term, postings, max impact], terms in byte order
//! (zero padding to a multiple of 4)
//! u32 documents[postings]     (per term, ascending)
//! u32 block_last[blocks]      (last document of each block)
//! u8  impacts[postings]
//! u8  block_max[blocks]
//! ```

use std::collections::HashMap;
use std::path::Path;

use crate::{DocNo, IndexError};

/// Postings per block.
pub const BLOCK: usize = 128;
const MAGIC: &[u8; 8] = b"FSPIMP01";
/// Query weights are quantised to this many levels (16 bits).
const QUERY_LEVELS: f32 = 65535.0;

/// Little-endian reading with bounds checks.
pub(crate) struct ByteReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        ByteReader { bytes, at: 0 }
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
    fn position(&self) -> usize {
        self.at
    }
}

/// Builds the file from each live document's vector (in internal-number order); returns the
/// file's bytes and the quantisation scale.
pub(crate) fn build<'a>(
    documents: impl Iterator<Item = (DocNo, Vec<(&'a str, f32)>)>,
) -> (Vec<u8>, f32) {
    let documents: Vec<(DocNo, Vec<(&str, f32)>)> = documents.collect();
    let max = documents
        .iter()
        .flat_map(|(_, v)| v.iter().map(|(_, w)| *w))
        .fold(0f32, f32::max);
    let scale = if max > 0.0 { max / 255.0 } else { 1.0 };
    let mut postings: HashMap<&str, Vec<(DocNo, u8)>> = HashMap::new();
    for (d, v) in &documents {
        // A term listed twice for one document counts once, with its largest weight.
        let mut seen: HashMap<&str, f32> = HashMap::new();
        for &(t, w) in v {
            let e = seen.entry(t).or_insert(0.0);
            *e = e.max(w);
        }
        for (t, w) in seen {
            let q = (w / scale).round().min(255.0) as u8;
            if q > 0 {
                postings.entry(t).or_default().push((*d, q));
            }
        }
    }
    let mut terms: Vec<&str> = postings.keys().copied().collect();
    terms.sort_unstable();
    let mut dictionary = Vec::with_capacity(terms.len());
    let (mut docs, mut impacts, mut block_last, mut block_max) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in &terms {
        let list = postings.get_mut(t).expect("a term of the map");
        list.sort_unstable_by_key(|p| p.0);
        let max = list.iter().map(|p| p.1).max().unwrap_or(0);
        dictionary.push(serde_json::json!([t, list.len(), max]));
        for block in list.chunks(BLOCK) {
            block_last.push(block.last().expect("blocks are not empty").0);
            block_max.push(block.iter().map(|p| p.1).max().expect("not empty"));
        }
        docs.extend(list.iter().map(|p| p.0));
        impacts.extend(list.iter().map(|p| p.1));
    }
    let dict = serde_json::to_vec(&dictionary).expect("the dictionary serialises");
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    for n in [terms.len(), docs.len(), block_last.len(), dict.len()] {
        out.extend((n as u64).to_le_bytes());
    }
    out.extend(dict);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend(docs.iter().flat_map(|d| d.to_le_bytes()));
    out.extend(block_last.iter().flat_map(|d| d.to_le_bytes()));
    out.extend(impacts);
    out.extend(block_max);
    (out, scale)
}

/// One term's postings.
#[derive(Debug, Clone, Copy)]
struct TermInfo {
    /// First posting and first block of the term.
    posting: usize,
    block: usize,
    len: usize,
    max: u8,
}

/// A query, quantised against one index: (term's position in the dictionary, weight).
#[derive(Debug, Clone, Default)]
pub struct ImpactQuery {
    terms: Vec<(usize, u64)>,
    /// What one unit of query weight is worth (the integer score times this times the
    /// index's scale is the reported score).
    unit: f32,
}

impl ImpactQuery {
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Query terms the index holds.
    pub fn len(&self) -> usize {
        self.terms.len()
    }
}

/// A read-only, memory-mapped impact index.
pub struct ImpactIndex {
    map: memmap2::Mmap,
    terms: HashMap<String, usize>,
    info: Vec<TermInfo>,
    /// Byte offsets of the four arrays.
    docs_at: usize,
    block_last_at: usize,
    impacts_at: usize,
    block_max_at: usize,
    scale: f32,
}

impl ImpactIndex {
    /// Opens and checks the file: sizes, and every document number below `slots` and
    /// ascending within its term, so that search can trust it.
    pub fn open(path: &Path, scale: f32, slots: usize) -> Result<Self, IndexError> {
        let f = std::fs::File::open(path).map_err(IndexError::io(path))?;
        // SAFETY: index files are immutable once committed; the map is only read.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(IndexError::io(path))?;
        let corrupt = |what: String| IndexError::Invalid {
            path: path.to_path_buf(),
            message: format!("truncated or corrupt impact index: {what}"),
        };
        let mut r = ByteReader::new(&map);
        if r.take(8) != Some(&MAGIC[..]) {
            return Err(corrupt("not an impact index".into()));
        }
        let header: Vec<usize> = (0..4)
            .map(|_| r.u64().map(|n| n as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt("header".into()))?;
        let (n_terms, n_postings, n_blocks, dict_len) =
            (header[0], header[1], header[2], header[3]);
        let dict: Vec<(String, usize, u8)> = serde_json::from_slice(
            r.take(dict_len)
                .ok_or_else(|| corrupt("dictionary".into()))?,
        )
        .map_err(|e| corrupt(format!("dictionary: {e}")))?;
        if dict.len() != n_terms {
            return Err(corrupt("dictionary size".into()));
        }
        let docs_at = r.position().next_multiple_of(4);
        let block_last_at = docs_at + n_postings * 4;
        let impacts_at = block_last_at + n_blocks * 4;
        let block_max_at = impacts_at + n_postings;
        if map.len() != block_max_at + n_blocks {
            return Err(corrupt(format!(
                "{} bytes, the header implies {}",
                map.len(),
                block_max_at + n_blocks
            )));
        }
        let mut terms = HashMap::with_capacity(n_terms);
        let mut info = Vec::with_capacity(n_terms);
        let (mut posting, mut block) = (0, 0);
        for (i, (term, len, max)) in dict.into_iter().enumerate() {
            info.push(TermInfo {
                posting,
                block,
                len,
                max,
            });
            posting += len;
            block += len.div_ceil(BLOCK);
            terms.insert(term, i);
        }
        if posting != n_postings || block != n_blocks {
            return Err(corrupt("dictionary does not add up to the postings".into()));
        }
        let index = ImpactIndex {
            map,
            terms,
            info,
            docs_at,
            block_last_at,
            impacts_at,
            block_max_at,
            scale,
        };
        for (t, i) in index.info.iter().enumerate() {
            let docs = index.docs(i);
            let ok = docs.windows(2).all(|w| w[0] < w[1])
                && docs.last().is_none_or(|&d| (d as usize) < slots)
                && index.impacts(i).iter().all(|&x| x > 0 && x <= i.max);
            if !ok || docs.is_empty() {
                return Err(corrupt(format!("postings of term {t}")));
            }
        }
        Ok(index)
    }

    fn u32s(&self, at: usize, len: usize) -> &[u32] {
        let bytes = &self.map[at..at + len * 4];
        // SAFETY: `at` is a multiple of 4 from a page-aligned map and the range was checked
        // against the file size at open; any bit pattern is a valid u32 (little-endian hosts).
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u32>(), len) }
    }

    fn docs(&self, t: &TermInfo) -> &[u32] {
        self.u32s(self.docs_at + t.posting * 4, t.len)
    }

    fn impacts(&self, t: &TermInfo) -> &[u8] {
        &self.map[self.impacts_at + t.posting..][..t.len]
    }

    fn block_last(&self, t: &TermInfo) -> &[u32] {
        self.u32s(self.block_last_at + t.block * 4, t.len.div_ceil(BLOCK))
    }

    fn block_max(&self, t: &TermInfo) -> &[u8] {
        &self.map[self.block_max_at + t.block..][..t.len.div_ceil(BLOCK)]
    }

    pub fn num_terms(&self) -> usize {
        self.info.len()
    }

    pub fn num_postings(&self) -> usize {
        self.info.iter().map(|t| t.len).sum()
    }

    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Quantises a query: terms the index does not have are dropped, a term given twice
    /// counts with the sum of its weights, weights that are not positive are dropped.
    pub fn quantize(&self, query: &[(String, f32)]) -> ImpactQuery {
        let mut weights: HashMap<usize, f32> = HashMap::new();
        for (term, w) in query {
            if let (Some(&t), true) = (self.terms.get(term), *w > 0.0 && w.is_finite()) {
                *weights.entry(t).or_insert(0.0) += w;
            }
        }
        let max = weights.values().copied().fold(0f32, f32::max);
        let mut terms: Vec<(usize, u64)> = weights
            .into_iter()
            .map(|(t, w)| (t, (w / max * QUERY_LEVELS).round() as u64))
            .filter(|&(_, q)| q > 0)
            .collect();
        terms.sort_unstable();
        ImpactQuery {
            terms,
            unit: max / QUERY_LEVELS,
        }
    }

    /// The reported score of an integer score.
    fn report(&self, q: &ImpactQuery, score: u64) -> f32 {
        (score as f64 * q.unit as f64 * self.scale as f64) as f32
    }

    /// The score of one document (0 when no query term matches it).
    pub fn score(&self, q: &ImpactQuery, d: DocNo) -> f32 {
        let score: u64 = q
            .terms
            .iter()
            .map(|&(t, w)| {
                let info = &self.info[t];
                match self.docs(info).binary_search(&d) {
                    Ok(i) => w * self.impacts(info)[i] as u64,
                    Err(_) => 0,
                }
            })
            .sum();
        self.report(q, score)
    }

    /// Each query term's contribution to document `d`'s score (terms that match it only),
    /// largest first.
    pub fn contributions(&self, q: &ImpactQuery, d: DocNo) -> Vec<(&str, f32)> {
        let wanted: HashMap<usize, u64> = q.terms.iter().copied().collect();
        let mut found: Vec<(&str, u64)> = self
            .terms
            .iter()
            .filter_map(|(name, t)| {
                let w = wanted.get(t)?;
                let info = &self.info[*t];
                let i = self.docs(info).binary_search(&d).ok()?;
                Some((name.as_str(), w * self.impacts(info)[i] as u64))
            })
            .collect();
        found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        found
            .into_iter()
            .map(|(t, s)| (t, self.report(q, s)))
            .collect()
    }

    /// How many postings the query's terms have together.
    pub fn postings_of(&self, q: &ImpactQuery) -> usize {
        q.terms.iter().map(|&(t, _)| self.info[t].len).sum()
    }

    /// Exact top-k by scoring every posting of every query term (term at a time).
    pub fn search_exhaustive(
        &self,
        q: &ImpactQuery,
        k: usize,
        slots: usize,
        is_deleted: impl Fn(DocNo) -> bool,
    ) -> Vec<(DocNo, f32)> {
        let mut acc = vec![0u64; slots];
        for &(t, w) in &q.terms {
            let info = &self.info[t];
            for (&d, &x) in self.docs(info).iter().zip(self.impacts(info)) {
                acc[d as usize] += w * x as u64;
            }
        }
        let mut top = IntTopK::new(k);
        for (d, &s) in acc.iter().enumerate() {
            if s > 0 && !is_deleted(d as DocNo) {
                top.push(d as DocNo, s);
            }
        }
        top.into_sorted()
            .into_iter()
            .map(|(d, s)| (d, self.report(q, s)))
            .collect()
    }

    /// Exact top-k by block-max MaxScore (see the module documentation).
    pub fn search(
        &self,
        q: &ImpactQuery,
        k: usize,
        is_deleted: impl Fn(DocNo) -> bool,
    ) -> Vec<(DocNo, f32)> {
        if k == 0 || q.terms.is_empty() {
            return Vec::new();
        }
        let mut cursors: Vec<Cursor<'_>> = q
            .terms
            .iter()
            .map(|&(t, w)| {
                let info = &self.info[t];
                Cursor {
                    docs: self.docs(info),
                    impacts: self.impacts(info),
                    block_last: self.block_last(info),
                    block_max: self.block_max(info),
                    weight: w,
                    bound: w * info.max as u64,
                    pos: 0,
                    block: 0,
                }
            })
            .collect();
        // Ascending bounds: the non-essential lists are always a prefix.
        cursors.sort_by_key(|c| c.bound);
        let prefix: Vec<u64> = cursors
            .iter()
            .scan(0u64, |s, c| {
                *s += c.bound;
                Some(*s)
            })
            .collect();
        let mut top = IntTopK::new(k);
        // A document must score above this to enter (0 until k documents were found).
        let mut threshold = 0u64;
        let mut first_essential = 0;
        let mut current = cursors.iter().map(Cursor::doc).min().unwrap_or(END);
        while current != END && first_essential < cursors.len() {
            let mut score = 0u64;
            let mut next = END;
            for c in &mut cursors[first_essential..] {
                if c.doc() == current {
                    score += c.weight * c.impact() as u64;
                    c.pos += 1;
                }
                next = next.min(c.doc());
            }
            let non_essential = &mut cursors[..first_essential];
            if first_essential == 0 || score + prefix[first_essential - 1] > threshold {
                // Tighter: the non-essential lists' bounds in the blocks holding `current`.
                let block_bound: u64 = non_essential
                    .iter_mut()
                    .map(|c| c.weight * c.block_max_at(current) as u64)
                    .sum();
                if score + block_bound > threshold {
                    for i in (0..first_essential).rev() {
                        if score + prefix[i] <= threshold {
                            break;
                        }
                        let c = &mut non_essential[i];
                        if c.advance_to(current) == current {
                            score += c.weight * c.impact() as u64;
                        }
                    }
                }
            }
            if score > threshold && !is_deleted(current) && top.push(current, score) {
                threshold = top.threshold();
                while first_essential < cursors.len() && prefix[first_essential] <= threshold {
                    first_essential += 1;
                }
            }
            current = next;
        }
        top.into_sorted()
            .into_iter()
            .map(|(d, s)| (d, self.report(q, s)))
            .collect()
    }
}

const END: DocNo = DocNo::MAX;

struct Cursor<'a> {
    docs: &'a [u32],
    impacts: &'a [u8],
    block_last: &'a [u32],
    block_max: &'a [u8],
    weight: u64,
    bound: u64,
    pos: usize,
    /// The block the cursor (or a shallow move) is in; only moves forward.
    block: usize,
}

impl Cursor<'_> {
    fn doc(&self) -> DocNo {
        self.docs.get(self.pos).copied().unwrap_or(END)
    }

    fn impact(&self) -> u8 {
        self.impacts[self.pos]
    }

    /// Moves the block index to the block that would hold `d` (without reading postings);
    /// returns that block's largest impact, 0 past the end.
    fn block_max_at(&mut self, d: DocNo) -> u8 {
        while self.block < self.block_last.len() && self.block_last[self.block] < d {
            self.block += 1;
        }
        self.block_max.get(self.block).copied().unwrap_or(0)
    }

    /// Moves to the first posting at or after `d`; returns its document (END past the end).
    fn advance_to(&mut self, d: DocNo) -> DocNo {
        if self.doc() >= d {
            return self.doc();
        }
        self.block_max_at(d);
        if self.block >= self.block_last.len() {
            self.pos = self.docs.len();
            return END;
        }
        self.pos = self.pos.max(self.block * BLOCK);
        while self.docs[self.pos] < d {
            self.pos += 1;
        }
        self.doc()
    }
}

/// The best k (document, integer score) pairs; equal scores prefer the lower number.
struct IntTopK {
    k: usize,
    /// Min-heap on (score, Reverse(doc)): the top is the entry to evict first.
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, std::cmp::Reverse<DocNo>)>>,
}

impl IntTopK {
    fn new(k: usize) -> Self {
        IntTopK {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Offers a document; true when it entered the top k.
    fn push(&mut self, d: DocNo, score: u64) -> bool {
        use std::cmp::Reverse;
        let entry = Reverse((score, Reverse(d)));
        if self.heap.len() < self.k {
            self.heap.push(entry);
            return true;
        }
        match self.heap.peek() {
            Some(worst) if entry < *worst => {
                self.heap.pop();
                self.heap.push(entry);
                true
            }
            _ => false,
        }
    }

    /// The score a document must exceed to enter (0 while fewer than k were found).
    fn threshold(&self) -> u64 {
        if self.heap.len() < self.k {
            0
        } else {
            self.heap.peek().map_or(0, |w| w.0 .0)
        }
    }

    fn into_sorted(self) -> Vec<(DocNo, u64)> {
        let mut v: Vec<(DocNo, u64)> = self.heap.into_iter().map(|r| (r.0 .1 .0, r.0 .0)).collect();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random collection (fixed seed) with Zipf-like terms: block-max MaxScore must return
    /// exactly what exhaustive scoring returns, for many queries, depths and deletions.
    #[test]
    fn maxscore_equals_exhaustive() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let vocab: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
        let slots = 3000u32;
        let docs: Vec<(DocNo, Vec<(&str, f32)>)> = (0..slots)
            .map(|d| {
                let n = 1 + next() % 40;
                let v = (0..n)
                    .map(|_| {
                        // Skewed: low term numbers are frequent.
                        let t = ((next() % 300) * (next() % 300) / 300) as usize;
                        (vocab[t].as_str(), 0.01 + (next() % 1000) as f32 / 250.0)
                    })
                    .collect();
                (d, v)
            })
            .collect();
        let (bytes, scale) = build(docs.into_iter());
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("impacts.bin");
        std::fs::write(&path, &bytes).unwrap();
        let index = ImpactIndex::open(&path, scale, slots as usize).unwrap();
        for round in 0..200 {
            let n = 1 + next() % 12;
            let query: Vec<(String, f32)> = (0..n)
                .map(|_| {
                    let t = (next() % 300) as usize;
                    (vocab[t].clone(), (1 + next() % 400) as f32 / 100.0)
                })
                .collect();
            let q = index.quantize(&query);
            let deleted = |d: DocNo| (d as u64 + round).is_multiple_of(17);
            for k in [1, 10, 100, 1000] {
                let fast = index.search(&q, k, deleted);
                let slow = index.search_exhaustive(&q, k, slots as usize, deleted);
                assert_eq!(fast, slow, "round {round}, k {k}, query {query:?}");
            }
        }
    }

    #[test]
    fn corrupt_files_are_refused() {
        let docs = vec![(0, vec![("a", 1.0), ("b", 0.5)]), (1, vec![("a", 2.0)])];
        let (bytes, scale) = build(docs.into_iter());
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("impacts.bin");
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = ImpactIndex::open(&path, scale, 2)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("truncated or corrupt impact index"), "{err}");
        // A document number past the docstore's.
        std::fs::write(&path, &bytes).unwrap();
        assert!(ImpactIndex::open(&path, scale, 1).is_err());
        let index = ImpactIndex::open(&path, scale, 2).unwrap();
        let q = index.quantize(&[("a".into(), 1.0), ("zzz".into(), 3.0)]);
        assert_eq!(index.search(&q, 10, |_| false).len(), 2);
        assert!(index.quantize(&[("zzz".into(), 1.0)]).is_empty());
    }
}
