//! Building a token representation at commit: the centroids (first commit only), a token
//! file for every chunk that has none, and the inverted lists when the documents changed.

use std::sync::Arc;

use half::f16;
use serde::{Deserialize, Serialize};

use super::chunk::{self, ChunkTokens};
use super::codec::{Buckets, Codec};
use super::kmeans::{kmeans, nearest, Rng};
use super::{ivf, TokenParams, KIND};
use crate::dense::ChunkFile;
use crate::representation::{
    for_each_text_batch, model_slug, Builder, CommitContext, DocumentEncoder, Entry, ModelRef,
    Request, TokenEncoder,
};
use crate::IndexError;

/// How a new token representation is made (the `params` of its [`Request`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenOptions {
    /// Absent for a ColBERT checkpoint; `tokens` for a sentence encoder's token states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    /// Bits per dimension of the residuals (1, 2 or 4); 0 stores f16 vectors.
    pub nbits: u32,
    /// Number of k-means centroids; ColBERTv2's 2^⌊log2(16·√tokens)⌋ when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centroids: Option<usize>,
    #[serde(default = "default_iterations")]
    pub kmeans_iterations: usize,
}

fn default_iterations() -> usize {
    4
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            encoder: None,
            nbits: 2,
            centroids: None,
            kmeans_iterations: default_iterations(),
        }
    }
}

impl TokenOptions {
    /// The request for a token representation made with `model`.
    pub fn request(&self, model: &str) -> Request {
        Request::new(KIND.name, model, self)
    }
}

/// Most vectors k-means is trained on (ColBERTv2 caps points per centroid the same way).
const MAX_POINTS_PER_CENTROID: usize = 256;
/// Residuals sampled to place the bucket boundaries.
const BUCKET_SAMPLE: usize = 1 << 16;

struct TokenBuilder {
    existing: Option<Entry>,
    request: Option<Request>,
}

pub(super) fn build(existing: Option<Entry>, request: Option<Request>) -> Box<dyn Builder> {
    Box::new(TokenBuilder { existing, request })
}

/// A chunk encoded in this commit, not yet written.
struct Encoded {
    generation: u64,
    doclens: Vec<u32>,
    ids: Vec<u32>,
    vectors: Vec<f32>,
}

impl Builder for TokenBuilder {
    fn commit(&mut self, ctx: &CommitContext<'_>) -> Result<Entry, IndexError> {
        let not_tokens = |model: &str| IndexError::Invalid {
            path: ctx.dir.to_path_buf(),
            message: format!("{model} is not a token-vector (ColBERT) encoder"),
        };
        let mut encoder: Option<Arc<dyn TokenEncoder>> = None;
        let (model, mut params, options, mut rebuild) = match self.existing.take() {
            Some(entry) => {
                let params: TokenParams = entry.params(ctx.dir)?;
                (
                    entry.model_ref(ctx.dir)?,
                    params,
                    None,
                    ctx.documents_changed,
                )
            }
            None => {
                let request = self
                    .request
                    .as_ref()
                    .expect("a new representation is requested");
                let options: TokenOptions = request.options(ctx.dir)?;
                if ![0, 1, 2, 4].contains(&options.nbits) {
                    return Err(IndexError::Invalid {
                        path: ctx.dir.to_path_buf(),
                        message: format!(
                            "token residuals of {} bits: use 1, 2 or 4 (or 0 for f16 vectors)",
                            options.nbits
                        ),
                    });
                }
                let (model, e) = ctx.encoder(KIND.name, &request.model, &request.params, None)?;
                let DocumentEncoder::Tokens(e) = e else {
                    return Err(not_tokens(&model.id));
                };
                let params = TokenParams {
                    dim: e.dim(),
                    encoder: options.encoder.clone(),
                    nbits: options.nbits,
                    centroids: 0,
                    centroid_file: String::new(),
                    buckets: None,
                    chunks: Vec::new(),
                    ivf: String::new(),
                };
                encoder = Some(e);
                (model, params, Some(options), true)
            }
        };
        let slug = model_slug(&model.id);
        let mut encoded = Vec::new();
        for c in ctx.chunks {
            if params
                .chunks
                .iter()
                .any(|f| f.chunk_generation == c.generation)
            {
                continue;
            }
            rebuild = true;
            let e = match &encoder {
                Some(e) => e.clone(),
                None => {
                    let p = serde_json::to_value(&params).expect("serialises");
                    let (_, e) = ctx.encoder(KIND.name, &model.id, &p, Some(&model))?;
                    let DocumentEncoder::Tokens(e) = e else {
                        return Err(not_tokens(&model.id));
                    };
                    encoder.insert(e).clone()
                }
            };
            tracing::info!("encoding {} documents with {}", c.count, model.id);
            let mut chunk = Encoded {
                generation: c.generation,
                doclens: Vec::with_capacity(c.count as usize),
                ids: Vec::new(),
                vectors: Vec::new(),
            };
            let path = ctx.dir.join(format!("tokens/{slug}"));
            ctx.pool.install(|| {
                for_each_text_batch(ctx.docstore, c, |texts| {
                    for rows in e
                        .encode(texts)
                        .map_err(crate::representation::encode_error(&path))?
                    {
                        if rows.vectors.len() != rows.ids.len() * params.dim {
                            return Err(IndexError::Invalid {
                                path: path.clone(),
                                message: format!(
                                    "the encoder gave {} floats for {} tokens of {} dims",
                                    rows.vectors.len(),
                                    rows.ids.len(),
                                    params.dim
                                ),
                            });
                        }
                        chunk.doclens.push(rows.ids.len() as u32);
                        chunk.ids.extend(rows.ids);
                        chunk.vectors.extend(rows.vectors);
                    }
                    Ok(())
                })
            })?;
            encoded.push(chunk);
        }
        let centroids = if params.centroid_file.is_empty() {
            let options = options.expect("a new representation has options");
            let (centroids, buckets) = ctx
                .pool
                .install(|| train(ctx, &params, &options, &encoded))?;
            let file = format!("tokens/{slug}/centroids-{:06}.f32", ctx.generation);
            let bytes: Vec<u8> = centroids.iter().flat_map(|x| x.to_le_bytes()).collect();
            crate::docstore::write_synced_creating(&ctx.dir.join(&file), &bytes)?;
            params.centroids = centroids.len() / params.dim;
            params.centroid_file = file;
            params.buckets = buckets;
            centroids
        } else {
            let path = ctx.dir.join(&params.centroid_file);
            std::fs::read(&path)
                .map_err(IndexError::io(&path))?
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        let codec =
            match &params.buckets {
                Some(b) => Some(Codec::new(params.dim, b.clone()).map_err(|message| {
                    IndexError::Invalid {
                        path: ctx.dir.to_path_buf(),
                        message,
                    }
                })?),
                None => None,
            };
        for chunk in encoded {
            let codes = ctx
                .pool
                .install(|| nearest(&chunk.vectors, params.dim, &centroids));
            let mut payload =
                Vec::with_capacity(chunk.ids.len() * chunk::row_bytes(params.dim, params.nbits));
            for (v, &c) in chunk.vectors.chunks_exact(params.dim).zip(&codes) {
                match &codec {
                    None => payload.extend(v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes())),
                    Some(codec) => codec.compress(
                        v,
                        &centroids[c as usize * params.dim..][..params.dim],
                        &mut payload,
                    ),
                }
            }
            let file = format!("tokens/{slug}/chunk-{:06}.bin", chunk.generation);
            let bytes = chunk::encode(
                &ChunkTokens {
                    doclens: chunk.doclens,
                    ids: chunk.ids,
                    codes,
                    payload,
                },
                params.dim,
                params.nbits,
            );
            crate::docstore::write_synced_creating(&ctx.dir.join(&file), &bytes)?;
            params.chunks.push(ChunkFile {
                chunk_generation: chunk.generation,
                file,
            });
        }
        if rebuild || params.ivf.is_empty() {
            params.ivf = write_ivf(ctx, &params, &slug)?;
        }
        let files = params
            .chunks
            .iter()
            .map(|f| f.file.clone())
            .chain([params.centroid_file.clone(), params.ivf.clone()])
            .collect();
        Ok(Entry {
            kind: KIND.name.to_string(),
            name: model.id.clone(),
            model: Some(ModelRef {
                id: model.id,
                weights_sha256: model.weights_sha256,
            }),
            params: serde_json::to_value(&params).expect("token parameters serialise"),
            files,
        })
    }
}

/// k-means centroids over (a sample of) this commit's token vectors, and the residual
/// buckets when residuals are kept.
fn train(
    ctx: &CommitContext<'_>,
    params: &TokenParams,
    options: &TokenOptions,
    encoded: &[Encoded],
) -> Result<(Vec<f32>, Option<Buckets>), IndexError> {
    let dim = params.dim;
    let total: usize = encoded.iter().map(|c| c.ids.len()).sum();
    let invalid = |message: String| IndexError::Invalid {
        path: ctx.dir.to_path_buf(),
        message,
    };
    let k = match options.centroids {
        Some(k) => k,
        None => {
            // ColBERTv2's count, and never more centroids than tokens.
            let k = 1usize << (16.0 * (total as f64).sqrt()).log2().floor().max(0.0) as u32;
            let cap = if total == 0 {
                1
            } else {
                1usize << total.ilog2()
            };
            k.min(cap)
        }
    };
    if total < k {
        return Err(invalid(format!(
            "k-means needs at least as many token vectors as centroids: the documents have {total} tokens for {k} centroids{}",
            if options.centroids.is_some() { " (ask for fewer with --tokens-centroids)" } else { "" }
        )));
    }
    let token = |i: usize| -> &[f32] {
        let mut i = i;
        for c in encoded {
            if i < c.ids.len() {
                return &c.vectors[i * dim..(i + 1) * dim];
            }
            i -= c.ids.len();
        }
        unreachable!("token {i} is below the total")
    };
    let mut rng = Rng::new(0x5EED);
    let sample_size = total.min(k * MAX_POINTS_PER_CENTROID);
    let sample: Vec<f32> = if sample_size == total {
        encoded
            .iter()
            .flat_map(|c| c.vectors.iter().copied())
            .collect()
    } else {
        (0..sample_size)
            .flat_map(|_| token(rng.below(total)).iter().copied())
            .collect()
    };
    tracing::info!("k-means: {k} centroids over {sample_size} of {total} token vectors");
    let centroids = kmeans(&sample, dim, k, options.kmeans_iterations, 0x5EED).map_err(invalid)?;
    let buckets = if params.nbits == 0 {
        None
    } else {
        let picks: Vec<usize> = (0..total.min(BUCKET_SAMPLE))
            .map(|_| rng.below(total))
            .collect();
        let vectors: Vec<f32> = picks
            .iter()
            .flat_map(|&i| token(i).iter().copied())
            .collect();
        let codes = nearest(&vectors, dim, &centroids);
        let residuals: Vec<f32> = vectors
            .chunks_exact(dim)
            .zip(&codes)
            .flat_map(|(v, &c)| {
                v.iter()
                    .zip(&centroids[c as usize * dim..][..dim])
                    .map(|(a, b)| a - b)
            })
            .collect();
        Some(Buckets::train(&residuals, params.nbits))
    };
    Ok((centroids, buckets))
}

/// Writes the inverted lists over the live documents of every chunk.
fn write_ivf(
    ctx: &CommitContext<'_>,
    params: &TokenParams,
    slug: &str,
) -> Result<String, IndexError> {
    let mut files = Vec::new();
    for c in ctx.chunks {
        let f = params
            .chunks
            .iter()
            .find(|f| f.chunk_generation == c.generation)
            .expect("every chunk was encoded above");
        files.push((
            c,
            chunk::ChunkFile::open(
                &ctx.dir.join(&f.file),
                c.count as usize,
                params.dim,
                params.nbits,
                params.centroids,
            )?,
        ));
    }
    let total: u64 = files.iter().map(|(_, f)| f.tokens as u64).sum();
    if total > u32::MAX as u64 {
        return Err(IndexError::Invalid {
            path: ctx.dir.to_path_buf(),
            message: format!("{total} tokens: more than a token index holds (2^32)"),
        });
    }
    let mut documents = Vec::new();
    let mut first_token = 0u32;
    for (c, f) in &files {
        let codes = f.codes();
        let mut at = 0usize;
        for (i, &n) in f.doclens().iter().enumerate() {
            let d = c.first + i as u32;
            let n = n as usize;
            if !(ctx.is_deleted)(d) {
                documents.push((d, first_token + at as u32, &codes[at..at + n]));
            }
            at += n;
        }
        first_token += f.tokens as u32;
    }
    let bytes = ivf::build(params.centroids, documents.into_iter());
    let file = format!("tokens/{slug}/ivf-{:06}.bin", ctx.generation);
    crate::docstore::write_synced_creating(&ctx.dir.join(&file), &bytes)?;
    tracing::info!("built the token inverted lists ({} bytes)", bytes.len());
    Ok(file)
}
