//! The token-vector (multi-vector, late-interaction) representation: one unit vector per
//! document token from a ColBERT-style encoder, for MaxSim scoring.
//!
//! * `tokens/<model>/chunk-<chunk generation>.bin` per docstore chunk ([`chunk`]): document
//!   lengths, each token's vocabulary id and nearest centroid, and the vector itself — as
//!   f16, or ColBERTv2's residual compression in 1, 2 or 4 bits per dimension ([`codec`]).
//! * `tokens/<model>/centroids-<generation>.f32`: the k-means centroids ([`kmeans`]), trained
//!   by the commit that creates the representation (ColBERTv2's count, 2^⌊log2(16·√tokens)⌋,
//!   unless asked otherwise) and kept for later documents, as PLAID does.
//! * `tokens/<model>/ivf-<generation>.bin` ([`ivf`]): centroid → live tokens and centroid →
//!   live documents, rebuilt by commits that add or delete documents.
//!
//! Search ([`search`]): exact MaxSim over every document, PLAID-style candidate generation
//! (centroid interaction with pruning), XTR-style token retrieval with imputed scores, and
//! MaxSim over any candidate list. All files are memory-mapped; a search reads the vectors of
//! the documents it scores.

mod builder;
mod chunk;
pub mod codec;
pub mod ivf;
pub mod kmeans;
pub mod search;

use std::ops::Range;

use half::f16;
use half::slice::HalfFloatSliceExt;
use serde::{Deserialize, Serialize};

use crate::dense::ChunkFile;
use crate::representation::{Entry, Kind, ModelRef, OpenContext, Opened, Reader};
use crate::{DocNo, IndexError};

pub use builder::TokenOptions;
pub use codec::{Buckets, Codec};
pub use search::{Plaid, Xtr};

pub const KIND: Kind = Kind {
    name: "tokens",
    how_to_add: "add one with `ferret index --index DIR --colbert MODEL` (a ColBERT checkpoint) or `--tokens MODEL` (a sentence encoder's token vectors)",
    open,
    build: Some(builder::build),
};

/// The token representation's parameters in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenParams {
    pub dim: usize,
    /// How the encoder runs: absent for a ColBERT checkpoint, `tokens` for a sentence
    /// encoder's token states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    /// Bits per dimension of the residuals; 0 stores f16 vectors.
    pub nbits: u32,
    pub centroids: usize,
    /// The centroid file (written once, by the commit that created the representation).
    pub centroid_file: String,
    /// Residual buckets (absent with f16 vectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Buckets>,
    /// The token file of each docstore chunk.
    pub chunks: Vec<ChunkFile>,
    /// Inverted lists over the live documents.
    pub ivf: String,
}

fn open(ctx: &OpenContext<'_>, entry: &Entry) -> Result<Box<dyn Reader>, IndexError> {
    let params: TokenParams = entry.params(ctx.dir)?;
    let model = entry.model_ref(ctx.dir)?;
    Ok(Box::new(Opened {
        entry: entry.clone(),
        reader: TokenReader::open(ctx, model, params)?,
    }))
}

/// Read access to one model's token vectors.
pub struct TokenReader {
    model: ModelRef,
    params: TokenParams,
    /// (first internal number, first global token, file) per chunk, in order.
    chunks: Vec<(DocNo, usize, chunk::ChunkFile)>,
    /// Global number of each document's first token; one more entry than documents.
    doc_start: Vec<usize>,
    centroids: Vec<f32>,
    codec: Option<Codec>,
    ivf: ivf::Ivf,
}

impl TokenReader {
    fn open(
        ctx: &OpenContext<'_>,
        model: ModelRef,
        params: TokenParams,
    ) -> Result<Self, IndexError> {
        let invalid = |message: String| IndexError::Invalid {
            path: ctx.dir.join(crate::manifest::MANIFEST),
            message: format!("token representation {}: {message}", model.id),
        };
        let centroid_path = ctx.dir.join(&params.centroid_file);
        let bytes = std::fs::read(&centroid_path).map_err(IndexError::io(&centroid_path))?;
        if bytes.len() != params.centroids * params.dim * 4 {
            return Err(IndexError::Invalid {
                path: centroid_path,
                message: format!(
                    "corrupt centroid file: {} bytes for {} centroids of {} dims",
                    bytes.len(),
                    params.centroids,
                    params.dim
                ),
            });
        }
        let centroids: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let codec = match (&params.buckets, params.nbits) {
            (_, 0) => None,
            (Some(b), n) if b.nbits == n => {
                Some(Codec::new(params.dim, b.clone()).map_err(invalid)?)
            }
            _ => {
                return Err(invalid(format!(
                    "{}-bit residuals without their buckets",
                    params.nbits
                )))
            }
        };
        let mut chunks = Vec::new();
        let mut doc_start = vec![0usize];
        for c in ctx.chunks {
            let file = params
                .chunks
                .iter()
                .find(|f| f.chunk_generation == c.generation)
                .ok_or_else(|| invalid(format!("no token vectors for chunk {}", c.generation)))?;
            let f = chunk::ChunkFile::open(
                &ctx.dir.join(&file.file),
                c.count as usize,
                params.dim,
                params.nbits,
                params.centroids,
            )?;
            let base = *doc_start.last().expect("starts with one entry");
            let mut at = base;
            for &n in f.doclens() {
                at += n as usize;
                doc_start.push(at);
            }
            chunks.push((c.first, base, f));
        }
        if doc_start.len() != ctx.slots + 1 {
            return Err(invalid(format!(
                "token lengths for {} documents, the index has {}",
                doc_start.len() - 1,
                ctx.slots
            )));
        }
        let total = *doc_start.last().expect("non-empty");
        let ivf = ivf::Ivf::open(
            &ctx.dir.join(&params.ivf),
            params.centroids,
            ctx.slots,
            total,
        )?;
        Ok(TokenReader {
            model,
            params,
            chunks,
            doc_start,
            centroids,
            codec,
            ivf,
        })
    }

    pub fn model(&self) -> &ModelRef {
        &self.model
    }

    pub fn params(&self) -> &TokenParams {
        &self.params
    }

    pub fn dim(&self) -> usize {
        self.params.dim
    }

    /// The centroids [centroids, dim].
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    pub fn ivf(&self) -> &ivf::Ivf {
        &self.ivf
    }

    /// Every token stored, deleted documents' included.
    pub fn total_tokens(&self) -> usize {
        *self.doc_start.last().expect("non-empty")
    }

    /// Global numbers of a document's tokens.
    pub fn token_range(&self, d: DocNo) -> Range<usize> {
        self.doc_start[d as usize]..self.doc_start[d as usize + 1]
    }

    /// The document a global token belongs to.
    pub fn token_document(&self, t: usize) -> DocNo {
        (self.doc_start.partition_point(|&s| s <= t) - 1) as DocNo
    }

    /// The chunk holding global tokens `range` (a document's), and the range within it.
    fn locate(&self, range: Range<usize>) -> (&chunk::ChunkFile, Range<usize>) {
        let i = self
            .chunks
            .partition_point(|(_, base, _)| *base <= range.start)
            - 1;
        let (_, base, f) = &self.chunks[i];
        (f, range.start - base..range.end - base)
    }

    /// Vocabulary ids of a document's tokens.
    pub fn document_ids(&self, d: DocNo) -> &[u32] {
        let (f, r) = self.locate(self.token_range(d));
        &f.ids()[r]
    }

    /// Vocabulary id of a global token.
    pub fn token_id(&self, t: usize) -> u32 {
        let (f, r) = self.locate(t..t + 1);
        f.ids()[r.start]
    }

    /// Nearest centroids of a document's tokens.
    pub fn document_codes(&self, d: DocNo) -> &[u32] {
        let (f, r) = self.locate(self.token_range(d));
        &f.codes()[r]
    }

    /// A document's token vectors [tokens, dim], decoded, into `out`.
    pub fn document_vectors(&self, d: DocNo, out: &mut Vec<f32>) {
        let (f, r) = self.locate(self.token_range(d));
        self.decode(f, r, out);
    }

    /// Global tokens `range` (of one chunk), decoded into `out`.
    pub fn token_vectors(&self, range: Range<usize>, out: &mut Vec<f32>) {
        let (f, r) = self.locate(range);
        self.decode(f, r, out);
    }

    fn decode(&self, f: &chunk::ChunkFile, r: Range<usize>, out: &mut Vec<f32>) {
        let dim = self.dim();
        out.clear();
        out.resize(r.len() * dim, 0.0);
        match &self.codec {
            None => {
                let bytes = f.rows(r);
                // SAFETY: rows start 4-aligned in a page-aligned map and hold 2·dim bytes each.
                let halves = unsafe {
                    std::slice::from_raw_parts(bytes.as_ptr().cast::<f16>(), bytes.len() / 2)
                };
                halves.convert_to_f32_slice(out);
            }
            Some(codec) => {
                let codes = &f.codes()[r.clone()];
                for ((t, &c), o) in r.zip(codes).zip(out.chunks_exact_mut(dim)) {
                    let centroid = &self.centroids[c as usize * dim..][..dim];
                    codec.decompress(centroid, f.row(t), o);
                }
            }
        }
    }

    /// Bytes on disk, per part: the vectors (f16 or residuals), codes and ids, inverted lists
    /// and centroids.
    pub fn sizes(&self, dir: &std::path::Path) -> Vec<(&'static str, u64)> {
        let len = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        let chunk_bytes: u64 = self.params.chunks.iter().map(|c| len(&c.file)).sum();
        let tokens = self.total_tokens() as u64;
        let vectors = tokens * chunk::row_bytes(self.dim(), self.params.nbits) as u64;
        vec![
            (
                if self.params.nbits == 0 {
                    "f16 vectors"
                } else {
                    "residuals"
                },
                vectors,
            ),
            ("ids, codes, lengths", chunk_bytes - vectors),
            ("inverted lists", len(&self.params.ivf)),
            ("centroids", len(&self.params.centroid_file)),
        ]
    }
}
