//! The dense representation: vectors from a sentence encoder, one file per docstore chunk,
//! memory-mapped for exact (brute-force) inner-product search.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;

use ferret_models::SentenceEncoder;
use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::docstore::{ChunkInfo, Docstore};
use crate::manifest::{DenseFile, DenseInfo, VectorType};
use crate::{DocNo, Document, IndexError};

/// The text a document is embedded as: title and text joined by a space (the BEIR/MTEB
/// convention), after the model's document prefix.
pub fn document_text(doc: &Document) -> String {
    match (doc.title.is_empty(), doc.text.is_empty()) {
        (true, _) => doc.text.clone(),
        (false, true) => doc.title.clone(),
        (false, false) => format!("{} {}", doc.title, doc.text),
    }
}

/// Folder name of a model's vectors inside `dense/`.
pub fn model_slug(model: &str) -> String {
    model.replace('/', "--")
}

/// Encodes internal numbers `first..first + count` from the docstore and writes them as one
/// vector file of `dtype` elements (fsynced). Deleted documents are encoded too, so rows stay
/// aligned.
pub(crate) fn encode_chunk(
    encoder: &SentenceEncoder,
    docstore: &Docstore,
    first: DocNo,
    count: u32,
    dtype: VectorType,
    path: &Path,
) -> Result<(), IndexError> {
    const BATCH: usize = 256;
    let mut bytes = Vec::with_capacity(count as usize * encoder.dim() * dtype.bytes());
    let mut d = first;
    let end = first + count;
    while d < end {
        let upto = (d + BATCH as u32).min(end);
        let docs = (d..upto)
            .map(|i| docstore.get(i))
            .collect::<Result<Vec<_>, _>>()?;
        let texts: Vec<String> = docs.iter().map(document_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = encoder
            .encode(&refs, &encoder.document_prefix)
            .map_err(|e| IndexError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        for v in vectors {
            match dtype {
                VectorType::F32 => bytes.extend(v.iter().flat_map(|x| x.to_le_bytes())),
                VectorType::F16 => {
                    bytes.extend(v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()))
                }
            }
        }
        d = upto;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(IndexError::io(parent))?;
    }
    crate::docstore::write_synced(path, &bytes)
}

/// Read access to one model's vectors.
pub struct DenseReader {
    info: DenseInfo,
    hnsw: Option<crate::hnsw::Hnsw>,
    /// (first internal number, mapped file) per chunk, in order.
    chunks: Vec<(DocNo, memmap2::Mmap)>,
}

impl DenseReader {
    pub(crate) fn open(
        dir: &Path,
        info: &DenseInfo,
        docs: &[ChunkInfo],
    ) -> Result<Self, IndexError> {
        let mut chunks = Vec::new();
        for &ChunkInfo {
            generation,
            first,
            count,
        } in docs
        {
            let file: &DenseFile = info
                .files
                .iter()
                .find(|f| f.chunk_generation == generation)
                .ok_or_else(|| IndexError::Invalid {
                    path: dir.to_path_buf(),
                    message: format!(
                        "dense representation {} has no vectors for chunk {generation}",
                        info.model
                    ),
                })?;
            let path = dir.join(&file.file);
            let f = std::fs::File::open(&path).map_err(IndexError::io(&path))?;
            // SAFETY: index files are immutable once committed; the map is only read.
            let mmap = unsafe { memmap2::Mmap::map(&f) }.map_err(IndexError::io(&path))?;
            if mmap.len() != count as usize * info.dim * info.dtype.bytes() {
                return Err(IndexError::Invalid {
                    path,
                    message: format!(
                        "truncated or corrupt vector file: {} bytes for {count} vectors of {} dims",
                        mmap.len(),
                        info.dim
                    ),
                });
            }
            chunks.push((first, mmap));
        }
        let hnsw = match &info.hnsw {
            Some(h) if !h.file.is_empty() => Some(crate::hnsw::Hnsw::open(
                info.dim,
                &h.params,
                &dir.join(&h.file),
            )?),
            _ => None,
        };
        Ok(DenseReader {
            info: info.clone(),
            hnsw,
            chunks,
        })
    }

    pub fn info(&self) -> &DenseInfo {
        &self.info
    }

    /// The HNSW graph, when one was built.
    pub fn hnsw(&self) -> Option<&crate::hnsw::Hnsw> {
        self.hnsw.as_ref()
    }

    pub fn dim(&self) -> usize {
        self.info.dim
    }

    fn rows(&self, chunk: &memmap2::Mmap) -> Rows<'_> {
        // SAFETY: a file mapping starts page-aligned (so f32- and f16-aligned) and its length
        // was checked to be a whole number of vectors; the mapping lives as long as `self`.
        unsafe {
            match self.info.dtype {
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
