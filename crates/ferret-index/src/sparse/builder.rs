//! Building a sparse representation at commit: forward files for the chunks that have none,
//! then the impact index over the live documents when the documents changed.

use serde::{Deserialize, Serialize};

use super::{forward, impact, impacts_file, read_forward, Quantization, SparseParams, KIND};
use crate::dense::ChunkFile;
use crate::representation::{
    for_each_text_batch, model_slug, Builder, CommitContext, DocumentEncoder, Entry, ModelRef,
    Request, SparseEncoder,
};
use crate::IndexError;

/// How the sparse encoder runs (the `params` of a [`Request`]; recorded in the manifest and
/// handed back to the encoder for later documents and for queries).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseOptions {
    /// Longest document, in tokens (the model's own limit when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_max_length: Option<usize>,
    /// Longest query, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_max_length: Option<usize>,
    /// Keep only each document's heaviest terms (no pruning when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_top_terms: Option<usize>,
    /// Keep only each query's heaviest terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_top_terms: Option<usize>,
    /// How token weights are pooled: `max` (SPLADE v2 and later; the default) or `sum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<String>,
    /// How the model makes vectors: absent for SPLADE, `promptreps` for the next-token logits
    /// of an instruction-tuned LLM (PromptReps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
}

impl SparseOptions {
    /// The request for a sparse representation made with `model`.
    pub fn request(&self, model: &str) -> Request {
        Request::new(KIND.name, model, self)
    }
}

struct SparseBuilder {
    existing: Option<Entry>,
    request: Option<Request>,
}

pub(super) fn build(existing: Option<Entry>, request: Option<Request>) -> Box<dyn Builder> {
    Box::new(SparseBuilder { existing, request })
}

impl Builder for SparseBuilder {
    fn commit(&mut self, ctx: &CommitContext<'_>) -> Result<Entry, IndexError> {
        let mut encoder: Option<std::sync::Arc<dyn SparseEncoder>> = None;
        let not_sparse = |model: &str| IndexError::Invalid {
            path: ctx.dir.to_path_buf(),
            message: format!("{model} is not a sparse encoder"),
        };
        let (model, mut params, mut rebuild) = match self.existing.take() {
            Some(entry) => {
                let params: SparseParams = entry.params(ctx.dir)?;
                let model = entry.model_ref(ctx.dir)?;
                (model, params, ctx.documents_changed)
            }
            None => {
                let request = self
                    .request
                    .as_ref()
                    .expect("a new representation is requested");
                let options: SparseOptions = request.options(ctx.dir)?;
                let (model, e) = ctx.encoder(KIND.name, &request.model, &request.params, None)?;
                let DocumentEncoder::Sparse(e) = e else {
                    return Err(not_sparse(&model.id));
                };
                encoder = Some(e);
                let params = SparseParams {
                    encoder: options,
                    forward: Vec::new(),
                    impacts: String::new(),
                    quantization: Quantization {
                        bits: 8,
                        scale: 1.0,
                    },
                };
                (model, params, true)
            }
        };
        let slug = model_slug(&model.id);
        for c in ctx.chunks {
            if params
                .forward
                .iter()
                .any(|f| f.chunk_generation == c.generation)
            {
                continue;
            }
            rebuild = true;
            let encoder = match &encoder {
                Some(e) => e.clone(),
                None => {
                    let options = serde_json::to_value(&params.encoder).expect("serialises");
                    let (_, e) = ctx.encoder(KIND.name, &model.id, &options, Some(&model))?;
                    let DocumentEncoder::Sparse(e) = e else {
                        return Err(not_sparse(&model.id));
                    };
                    encoder.insert(e).clone()
                }
            };
            let file = super::forward_file(&slug, c.generation);
            let path = ctx.dir.join(&file);
            tracing::info!("encoding {} documents with {}", c.count, model.id);
            let mut vectors = Vec::with_capacity(c.count as usize);
            // The chunk's vectors are held until its forward file is written: counted against
            // the budget as they arrive, so indexing stops before it outgrows it.
            let mut held = c.count as usize * std::mem::size_of::<Vec<(String, f32)>>();
            ctx.pool.install(|| {
                for_each_text_batch(ctx.docstore, c, |texts| {
                    let found = encoder
                        .encode(texts)
                        .map_err(crate::representation::encode_error(&path))?;
                    held += found
                        .iter()
                        .flatten()
                        .map(|(term, _)| std::mem::size_of::<(String, f32)>() + term.len())
                        .sum::<usize>();
                    ctx.check_memory(
                        &format!("{} vectors of {} documents", model.id, c.count),
                        held,
                    )?;
                    vectors.extend(found);
                    Ok(())
                })
            })?;
            crate::docstore::write_synced_creating(&path, &forward::encode(&vectors))?;
            params.forward.push(ChunkFile {
                chunk_generation: c.generation,
                file,
            });
        }
        if rebuild || params.impacts.is_empty() {
            let mut forwards = Vec::new();
            for c in ctx.chunks {
                let f = params
                    .forward
                    .iter()
                    .find(|f| f.chunk_generation == c.generation)
                    .expect("every chunk was encoded above");
                forwards.push((c, read_forward(ctx.dir, f, c)?));
            }
            let live = forwards.iter().flat_map(|(c, f)| {
                (0..c.count)
                    .map(move |i| (c.first + i, i))
                    .filter(move |(d, _)| !(ctx.is_deleted)(*d))
                    .map(move |(d, i)| (d, f.document(i as usize).collect::<Vec<_>>()))
            });
            let (bytes, scale) = impact::build(live);
            let file = impacts_file(&slug, ctx.generation);
            crate::docstore::write_synced_creating(&ctx.dir.join(&file), &bytes)?;
            tracing::info!(
                "built the impact index of {} ({} bytes)",
                model.id,
                bytes.len()
            );
            params.impacts = file;
            params.quantization = Quantization { bits: 8, scale };
        }
        let files = params
            .forward
            .iter()
            .map(|f| f.file.clone())
            .chain(std::iter::once(params.impacts.clone()))
            .collect();
        Ok(Entry {
            kind: KIND.name.to_string(),
            name: model.id.clone(),
            model: Some(ModelRef {
                id: model.id,
                weights_sha256: model.weights_sha256,
            }),
            params: serde_json::to_value(&params).expect("sparse parameters serialise"),
            files,
        })
    }
}
