//! The dense representation: vectors from a sentence encoder, one file per docstore chunk
//! (`dense/<model>/vectors-<chunk generation>.f32|f16`, rows in internal-number order, deleted
//! documents keep their rows), memory-mapped for exact (brute-force) inner-product search, and
//! optionally an HNSW graph over the live documents' vectors (rebuilt by commits that add or
//! delete documents).

mod builder;
pub mod hnsw;

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;

use half::f16;
use half::slice::HalfFloatSliceExt;
use serde::{Deserialize, Serialize};

use crate::docstore::ChunkInfo;
use crate::representation::{Entry, Kind, ModelRef, OpenContext, Opened, Reader};
use crate::{DocNo, Document, IndexError};

pub use builder::DenseOptions;

pub const KIND: Kind = Kind {
    name: "dense",
    how_to_add: "add one with `ferret index --index DIR --dense MODEL`",
    open,
    build: Some(builder::build),
};

/// The dense representation's parameters in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DenseParams {
    pub dim: usize,
    /// How the vectors are stored.
    #[serde(default)]
    pub dtype: VectorType,
    /// Prefixes given at indexing time instead of the model's own prompts (the query prefix is
    /// used by every search of these vectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_prefix: Option<String>,
    /// The encoder and its length limits, as asked for ([`DenseOptions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_max_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_max_length: Option<usize>,
    /// Matryoshka truncation the vectors were made with ([`DenseOptions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims: Option<usize>,
    /// The encoder ran with int8 linear layers ([`DenseOptions`]); queries are encoded so too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub int8: bool,
    /// The vector file of each docstore chunk.
    #[serde(default)]
    pub vectors: Vec<ChunkFile>,
    /// An HNSW graph over the live documents' vectors, if one was asked for (`file` is empty
    /// until the commit that builds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw: Option<HnswInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HnswInfo {
    /// Path relative to the index directory.
    pub file: String,
    pub params: hnsw::HnswParams,
}

/// A file made for one docstore chunk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChunkFile {
    pub chunk_generation: u64,
    /// Path relative to the index directory.
    pub file: String,
}

/// The element type of stored vectors: f32, or f16 at half the size (converted back to f32
/// when read; scores are computed in f32).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VectorType {
    #[default]
    F32,
    F16,
}

impl VectorType {
    pub fn bytes(self) -> usize {
        match self {
            VectorType::F32 => 4,
            VectorType::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VectorType::F32 => "f32",
            VectorType::F16 => "f16",
        }
    }
}

impl std::str::FromStr for VectorType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(VectorType::F32),
            "f16" => Ok(VectorType::F16),
            _ => Err(format!("unknown vector type '{s}' (known: f32, f16)")),
        }
    }
}

fn open(ctx: &OpenContext<'_>, entry: &Entry) -> Result<Box<dyn Reader>, IndexError> {
    let params: DenseParams = entry.params(ctx.dir)?;
    let model = entry.model_ref(ctx.dir)?;
    Ok(Box::new(Opened {
        entry: entry.clone(),
        reader: DenseReader::open(ctx.dir, model, params, ctx.chunks)?,
    }))
}

/// The text a document is embedded as: title and text joined by a space (the BEIR/MTEB
/// convention); the encoder puts the model's document prefix before it.
pub fn document_text(doc: &Document) -> String {
    match (doc.title.is_empty(), doc.text.is_empty()) {
        (true, _) => doc.text.clone(),
        (false, true) => doc.title.clone(),
        (false, false) => format!("{} {}", doc.title, doc.text),
    }
}

/// Read access to one model's vectors.
pub struct DenseReader {
    model: ModelRef,
    params: DenseParams,
    hnsw: Option<hnsw::Hnsw>,
    /// (first internal number, mapped file) per chunk, in order.
    chunks: Vec<(DocNo, memmap2::Mmap)>,
}

impl DenseReader {
    pub(crate) fn open(
        dir: &Path,
        model: ModelRef,
        params: DenseParams,
        docs: &[ChunkInfo],
    ) -> Result<Self, IndexError> {
        let mut chunks = Vec::new();
        for &ChunkInfo {
            generation,
            first,
            count,
        } in docs
        {
            let file = params
                .vectors
                .iter()
                .find(|f| f.chunk_generation == generation)
                .ok_or_else(|| IndexError::Invalid {
                    path: dir.to_path_buf(),
                    message: format!(
                        "dense representation {} has no vectors for chunk {generation}",
                        model.id
                    ),
                })?;
            let path = dir.join(&file.file);
            let f = std::fs::File::open(&path).map_err(IndexError::io(&path))?;
            // SAFETY: index files are immutable once committed; the map is only read.
            let mmap = unsafe { memmap2::Mmap::map(&f) }.map_err(IndexError::io(&path))?;
            if mmap.len() != count as usize * params.dim * params.dtype.bytes() {
                return Err(IndexError::Invalid {
                    path,
                    message: format!(
                        "truncated or corrupt vector file: {} bytes for {count} vectors of {} dims",
                        mmap.len(),
                        params.dim
                    ),
                });
            }
            chunks.push((first, mmap));
        }
        let hnsw = match &params.hnsw {
            Some(h) if !h.file.is_empty() => {
                Some(hnsw::Hnsw::open(params.dim, &h.params, &dir.join(&h.file))?)
            }
            _ => None,
        };
        Ok(DenseReader {
            model,
            params,
            hnsw,
            chunks,
        })
    }

    /// The model that made the vectors.
    pub fn model(&self) -> &ModelRef {
        &self.model
    }

    pub fn params(&self) -> &DenseParams {
        &self.params
    }

    /// The HNSW graph, when one was built.
    pub fn hnsw(&self) -> Option<&hnsw::Hnsw> {
        self.hnsw.as_ref()
    }

    pub fn dim(&self) -> usize {
        self.params.dim
    }

    fn rows(&self, chunk: &memmap2::Mmap) -> Rows<'_> {
        // SAFETY: a file mapping starts page-aligned (so f32- and f16-aligned) and its length
        // was checked to be a whole number of vectors; the mapping lives as long as `self`.
        unsafe {
            match self.params.dtype {
                VectorType::F32 => Rows::F32(std::slice::from_raw_parts(
                    chunk.as_ptr().cast::<f32>(),
                    chunk.len() / 4,
                )),
                VectorType::F16 => Rows::F16(std::slice::from_raw_parts(
                    chunk.as_ptr().cast::<f16>(),
                    chunk.len() / 2,
                )),
            }
        }
    }

    /// The stored vector of an internal number (converted to f32 when stored as f16).
    pub fn vector(&self, d: DocNo) -> Option<Cow<'_, [f32]>> {
        let (first, m) = self.chunks.iter().rev().find(|(first, _)| *first <= d)?;
        let i = (d - first) as usize * self.dim();
        let dim = self.dim();
        match self.rows(m) {
            Rows::F32(rows) => rows.get(i..i + dim).map(Cow::Borrowed),
            Rows::F16(rows) => rows.get(i..i + dim).map(|v| Cow::Owned(v.to_f32_vec())),
        }
    }

    /// Inner-product score of `query` against one document.
    pub fn score(&self, query: &[f32], d: DocNo) -> Option<f32> {
        self.vector(d).map(|v| dot(query, &v))
    }

    /// [`DenseReader::search`] for many queries at once (GEMM over blocks of vectors; see
    /// [`top_k_batch`]), spread over the current rayon pool by groups of queries.
    pub fn search_batch(
        &self,
        queries: &[Vec<f32>],
        k: usize,
        is_deleted: &(dyn Fn(DocNo) -> bool + Sync),
    ) -> Vec<Vec<(DocNo, f32)>> {
        use rayon::prelude::*;
        const GROUP: usize = 64;
        let dim = self.dim();
        queries
            .par_chunks(GROUP)
            .flat_map_iter(|group| {
                let flat: Vec<f32> = group.iter().flatten().copied().collect();
                let mut tops: Vec<TopK> = group.iter().map(|_| TopK::new(k)).collect();
                let mut converted = Vec::new();
                for (first, m) in &self.chunks {
                    match self.rows(m) {
                        Rows::F32(rows) => {
                            top_k_batch(&flat, rows, dim, *first, is_deleted, &mut tops)
                        }
                        // Converted a block at a time, never the whole chunk.
                        Rows::F16(rows) => {
                            for (i, block) in rows.chunks(BLOCK_ROWS * dim).enumerate() {
                                converted.resize(block.len(), 0.0);
                                block.convert_to_f32_slice(&mut converted);
                                let at = first + (i * BLOCK_ROWS) as DocNo;
                                top_k_batch(&flat, &converted, dim, at, is_deleted, &mut tops);
                            }
                        }
                    }
                }
                tops.into_iter().map(TopK::into_sorted)
            })
            .collect()
    }

    /// Exact top-k by inner product over live documents; ties go to the lower number.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        is_deleted: impl Fn(DocNo) -> bool,
    ) -> Vec<(DocNo, f32)> {
        let dim = self.dim();
        let mut hits: Vec<(DocNo, f32)> = Vec::new();
        for (first, m) in &self.chunks {
            match self.rows(m) {
                Rows::F32(rows) => {
                    for (i, row) in rows.chunks_exact(dim).enumerate() {
                        let d = first + i as DocNo;
                        if !is_deleted(d) {
                            hits.push((d, dot(query, row)));
                        }
                    }
                }
                Rows::F16(rows) => F16_ROW.with(|buf| {
                    let buf = &mut *buf.borrow_mut();
                    buf.resize(dim, 0.0);
                    for (i, row) in rows.chunks_exact(dim).enumerate() {
                        let d = first + i as DocNo;
                        if !is_deleted(d) {
                            // SIMD conversion (F16C where the CPU has it), then the f32 dot.
                            row.convert_to_f32_slice(buf);
                            hits.push((d, dot(query, buf)));
                        }
                    }
                }),
            }
        }
        let order = |a: &(DocNo, f32), b: &(DocNo, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if hits.len() > k && k > 0 {
            hits.select_nth_unstable_by(k - 1, order);
        }
        hits.truncate(k);
        hits.sort_unstable_by(order);
        hits
    }
}

/// The best `k` (score, internal number) pairs seen so far; equal scores prefer the lower
/// number, as exact search does.
pub struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<Worst>,
}

/// Heap order: the top is the entry to evict first (lowest score, then highest number).
#[derive(PartialEq)]
struct Worst(f32, DocNo);

impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k + 1),
        }
    }

    pub fn push(&mut self, d: DocNo, score: f32) {
        if self.heap.len() < self.k {
            self.heap.push(Worst(score, d));
        } else if let Some(worst) = self.heap.peek() {
            if score > worst.0 || (score == worst.0 && d < worst.1) {
                self.heap.pop();
                self.heap.push(Worst(score, d));
            }
        }
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<(DocNo, f32)> {
        let mut v: Vec<(DocNo, f32)> = self.heap.into_iter().map(|w| (w.1, w.0)).collect();
        v.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Rows scored per GEMM in [`top_k_batch`].
const BLOCK_ROWS: usize = 512;

/// Exact inner-product top-k of many queries at once over `rows` ([n, dim], row-major, first
/// row = internal number `first`), merged into `tops` (one per query). Each block of rows is
/// scored against all queries with one GEMM, so the vectors are read once per batch of queries
/// rather than once per query — what makes exact search over large collections
/// memory-bandwidth-friendly.
pub fn top_k_batch(
    queries: &[f32],
    rows: &[f32],
    dim: usize,
    first: DocNo,
    is_deleted: &(dyn Fn(DocNo) -> bool + Sync),
    tops: &mut [TopK],
) {
    let b = tops.len();
    // The GEMM below reads b×dim query floats: a real check, as a wrong shape would read out of
    // bounds.
    assert!(
        dim > 0 && queries.len() == b * dim,
        "top_k_batch: {} query floats for {b} queries of {dim} dims",
        queries.len()
    );
    let mut scores = vec![0f32; b * BLOCK_ROWS];
    for (block, chunk) in rows.chunks(BLOCK_ROWS * dim).enumerate() {
        let n = chunk.len() / dim;
        // SAFETY: queries hold b×dim floats, chunk n×dim and scores at least b×n; the strides
        // describe exactly those row-major shapes (chunk read as its transpose).
        unsafe {
            gemm::gemm(
                b,
                n,
                dim,
                scores.as_mut_ptr(),
                1,
                n as isize,
                false,
                queries.as_ptr(),
                1,
                dim as isize,
                chunk.as_ptr(),
                dim as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        let base = first + (block * BLOCK_ROWS) as DocNo;
        for (q, top) in tops.iter_mut().enumerate() {
            for (j, &s) in scores[q * n..(q + 1) * n].iter().enumerate() {
                let d = base + j as DocNo;
                if !is_deleted(d) {
                    top.push(d, s);
                }
            }
        }
    }
}

/// A chunk's vectors as stored.
enum Rows<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

thread_local! {
    /// One f16 row converted to f32, reused across rows.
    static F16_ROW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Dot product in 16 independent lanes, which the compiler turns into SIMD.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_top_k_equals_one_query_at_a_time() {
        // Small integers: every product is exact in f32, so both paths must agree bit for
        // bit, ties (broken by the lower number) included.
        let (n, dim, k) = (1300, 24, 17);
        let value = |i: usize| ((i * 7919) % 11) as f32 - 5.0;
        let rows: Vec<f32> = (0..n * dim).map(value).collect();
        let queries: Vec<f32> = (0..5 * dim).map(|i| value(i * 31 + 3)).collect();
        let deleted = |d: DocNo| d.is_multiple_of(97);
        let mut tops: Vec<TopK> = (0..5).map(|_| TopK::new(k)).collect();
        // Two "chunks", the second starting at internal number 700.
        top_k_batch(&queries, &rows[..700 * dim], dim, 0, &deleted, &mut tops);
        top_k_batch(&queries, &rows[700 * dim..], dim, 700, &deleted, &mut tops);
        for (q, top) in queries.chunks(dim).zip(tops) {
            let mut expected: Vec<(DocNo, f32)> = rows
                .chunks(dim)
                .enumerate()
                .map(|(i, r)| (i as DocNo, dot(q, r)))
                .filter(|(d, _)| !deleted(*d))
                .collect();
            expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            expected.truncate(k);
            assert_eq!(top.into_sorted(), expected);
        }
    }

    #[test]
    #[should_panic(expected = "query floats")]
    fn batched_top_k_refuses_queries_of_the_wrong_shape() {
        // One query's worth of floats for two queries: checked in release builds too, where
        // the GEMM would otherwise read past the slice.
        let mut tops: Vec<TopK> = (0..2).map(|_| TopK::new(3)).collect();
        top_k_batch(&[0.5; 8], &[1.0; 80], 8, 0, &|_| false, &mut tops);
    }
}
