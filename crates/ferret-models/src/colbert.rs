//! Late-interaction (multi-vector) encoders: one L2-normalised vector per token.
//!
//! Three layouts load here, all on the BERT runtime of [`crate::bert`]:
//!
//! * **colbert-ai** (ColBERTv2 checkpoints): `artifact.metadata` (the ColBERT config),
//!   `config.json` + `model.safetensors` holding `bert.*` and the bias-free projection
//!   `linear.weight`. Queries are `[CLS] [Q] tokens [SEP]` padded to `query_maxlen` with
//!   [MASK] (query augmentation) that the other tokens do not attend to
//!   (`attend_to_mask_tokens: false`), every position kept; documents are
//!   `[CLS] [D] tokens [SEP]` cut at `doc_maxlen`, punctuation tokens dropped
//!   (`mask_punctuation`). The markers replace the "." of `". " + text`, as colbert-ai does.
//! * **PyLate** (sentence-transformers folder): `modules.json` with a Transformer and a Dense
//!   projection (`1_Dense/`), markers and lengths in `config_sentence_transformers.json`
//!   (`query_prefix`, `document_prefix`, `query_length`, `document_length`,
//!   `attend_to_expansion_tokens`, `skiplist_words`); the marker is inserted after [CLS].
//! * **tokens** (zero-shot): any sentence encoder's last-layer token states, normalised — a
//!   sentence-transformers folder or a GGUF encoder (nomic-embed) — no markers, no
//!   augmentation, punctuation dropped from documents. The encoder's task prefixes
//!   (nomic-embed's `search_query: ` / `search_document: `) are run but their tokens not
//!   kept. A test bed with real weights where no ColBERT weights are reachable.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{Bert, Linear};
use crate::sentence::{Backbone, SentenceEncoder};
use crate::weights::Weights;
use crate::ModelError;

/// The token vectors of one text: `ids[i]` is the vocabulary id of row `i` of `vectors`
/// (`ids.len()` rows of `dim` floats, each of unit length).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenVectors {
    pub ids: Vec<u32>,
    pub vectors: Vec<f32>,
}

impl TokenVectors {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Which checkpoint layout a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColbertLayout {
    ColbertAi,
    Pylate,
    Tokens,
}

/// How texts become token sequences: what [`ColbertEncoder::load`] read from the folder.
#[derive(Debug, Clone, PartialEq)]
pub struct ColbertConfig {
    pub layout: ColbertLayout,
    pub query_maxlen: usize,
    pub doc_maxlen: usize,
    /// Marker token ids put after [CLS] (`[unused0]` / `[unused1]` for colbert-ai).
    pub query_marker: Option<u32>,
    pub doc_marker: Option<u32>,
    /// Pad queries to `query_maxlen` with [MASK] (query augmentation).
    pub expand_queries: bool,
    pub attend_to_mask: bool,
    /// Token ids dropped from documents (punctuation).
    pub skiplist: HashSet<u32>,
    /// Text put before queries / documents (a sentence encoder's task prefixes): run through
    /// the model, its tokens not kept.
    pub query_prefix: String,
    pub doc_prefix: String,
}

/// colbert-ai's `artifact.metadata` (the fields the encoder needs).
#[derive(Deserialize)]
struct ArtifactMetadata {
    query_maxlen: usize,
    doc_maxlen: usize,
    dim: usize,
    query_token_id: String,
    doc_token_id: String,
    #[serde(default = "yes")]
    mask_punctuation: bool,
    #[serde(default)]
    attend_to_mask_tokens: bool,
    #[serde(default = "cosine")]
    similarity: String,
}

fn yes() -> bool {
    true
}
fn cosine() -> String {
    "cosine".into()
}

/// PyLate's additions to `config_sentence_transformers.json`.
#[derive(Deserialize)]
struct PylateConfig {
    query_prefix: String,
    document_prefix: String,
    query_length: usize,
    document_length: usize,
    #[serde(default)]
    attend_to_expansion_tokens: bool,
    #[serde(default = "yes")]
    do_query_expansion: bool,
    #[serde(default)]
    skiplist_words: Vec<String>,
}

#[derive(Deserialize)]
struct StModule {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct DenseConfig {
    in_features: usize,
    out_features: usize,
    #[serde(default)]
    bias: bool,
    #[serde(default)]
    activation_function: String,
}

/// The ColBERT model of a folder, loaded once per process.
pub fn shared(dir: &Path) -> Result<std::sync::Arc<ColbertEncoder>, ModelError> {
    crate::loaded::shared(dir, ColbertEncoder::load)
}

/// A sentence encoder's zero-shot token vectors ([`ColbertEncoder::load_tokens`]); its own
/// type so that a folder loaded both ways (a PyLate folder is also a sentence-transformers
/// one) is cached as both.
pub struct TokenModel(pub ColbertEncoder);

/// The zero-shot token model of a folder, loaded once per process.
pub fn shared_tokens(dir: &Path) -> Result<std::sync::Arc<TokenModel>, ModelError> {
    crate::loaded::shared(dir, |d| ColbertEncoder::load_tokens(d).map(TokenModel))
}

/// Whether a folder holds a late-interaction checkpoint (colbert-ai or PyLate layout).
pub fn is_colbert(dir: &Path) -> bool {
    dir.join("artifact.metadata").exists() || pylate_config(dir).ok().flatten().is_some()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, ModelError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ModelError::invalid(path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ModelError::io(path)(e)),
    }
}

fn pylate_config(dir: &Path) -> Result<Option<PylateConfig>, ModelError> {
    let path = dir.join("config_sentence_transformers.json");
    let Some(v) = read_json::<serde_json::Value>(&path)? else {
        return Ok(None);
    };
    if v.get("query_prefix").is_none() || v.get("query_length").is_none() {
        return Ok(None);
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| ModelError::invalid(&path, format!("not a PyLate config: {e}")))
}

/// A loaded late-interaction encoder.
pub struct ColbertEncoder {
    dir: PathBuf,
    backbone: Backbone,
    tokenizer: Tokenizer,
    projection: Option<Linear>,
    dim: usize,
    config: ColbertConfig,
    mask_id: u32,
    /// How many tokens `config.query_prefix` / `doc_prefix` take (after [CLS]).
    prefix_tokens: [usize; 2],
}

impl ColbertEncoder {
    /// Loads a colbert-ai or PyLate checkpoint.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        if dir.join("artifact.metadata").exists() {
            Self::load_colbert_ai(dir)
        } else if let Some(config) = pylate_config(dir)? {
            Self::load_pylate(dir, config)
        } else {
            Err(ModelError::invalid(
                dir,
                "not a ColBERT checkpoint: no artifact.metadata (colbert-ai) and no PyLate config_sentence_transformers.json (query_prefix, query_length); a sentence-transformers model gives zero-shot token vectors with --tokens",
            ))
        }
    }

    /// A sentence encoder's normalised last-layer token states (no projection): its
    /// transformer, tokenizer, longest sequence and task prefixes as [`SentenceEncoder::load`]
    /// reads them.
    pub fn load_tokens(dir: &Path) -> Result<Self, ModelError> {
        let sentence = SentenceEncoder::load(dir)?;
        let maxlen = sentence.max_seq_length;
        let query_prefix = sentence.query_prefix.clone();
        let doc_prefix = sentence.document_prefix.clone();
        let (backbone, tokenizer) = sentence.into_backbone();
        let skiplist = punctuation_ids(&tokenizer);
        let dim = backbone.hidden_size();
        Self::assemble(
            dir,
            backbone,
            tokenizer,
            None,
            dim,
            ColbertConfig {
                layout: ColbertLayout::Tokens,
                query_maxlen: maxlen,
                doc_maxlen: maxlen,
                query_marker: None,
                doc_marker: None,
                expand_queries: false,
                attend_to_mask: true,
                skiplist,
                query_prefix,
                doc_prefix,
            },
        )
    }

    fn load_colbert_ai(dir: &Path) -> Result<Self, ModelError> {
        let meta_path = dir.join("artifact.metadata");
        let meta: ArtifactMetadata =
            read_json(&meta_path)?.ok_or_else(|| ModelError::invalid(&meta_path, "missing"))?;
        let invalid = |m: String| ModelError::invalid(&meta_path, m);
        if meta.similarity != "cosine" {
            return Err(invalid(format!(
                "similarity '{}' is not supported (cosine only)",
                meta.similarity
            )));
        }
        let tokenizer = crate::sentence::load_tokenizer(dir)?;
        let bert = Bert::load(dir)?;
        let marker = |name: &str, field: &str| {
            tokenizer
                .token_to_id(name)
                .ok_or_else(|| invalid(format!("{field} '{name}' is not a token of the tokenizer")))
        };
        let query_marker = marker(&meta.query_token_id, "query_token_id")?;
        let doc_marker = marker(&meta.doc_token_id, "doc_token_id")?;
        if meta.query_maxlen < 3 || meta.doc_maxlen < 3 {
            return Err(invalid(format!(
                "query_maxlen {} / doc_maxlen {}: each must leave room for [CLS], the marker and [SEP]",
                meta.query_maxlen, meta.doc_maxlen
            )));
        }
        if meta.query_maxlen > bert.max_tokens() || meta.doc_maxlen > bert.max_tokens() {
            return Err(invalid(format!(
                "query_maxlen {} / doc_maxlen {} exceed the model's {} positions",
                meta.query_maxlen,
                meta.doc_maxlen,
                bert.max_tokens()
            )));
        }
        let weights_path = dir.join("model.safetensors");
        let w = Weights::open(&weights_path)?;
        let hidden = bert.config.hidden_size;
        if !w.has("linear.weight") {
            return Err(ModelError::invalid(
                &weights_path,
                "no `linear.weight` projection: not a colbert-ai checkpoint",
            ));
        }
        let projection = w.get("linear.weight", &[meta.dim, hidden]).map_err(|e| {
            invalid(format!(
                "dim {} does not match the checkpoint's projection: {e}",
                meta.dim
            ))
        })?;
        let skiplist = if meta.mask_punctuation {
            punctuation_ids(&tokenizer)
        } else {
            HashSet::new()
        };
        Self::assemble(
            dir,
            Backbone::Bert(Box::new(bert)),
            tokenizer,
            Some(Linear::new(
                projection,
                vec![0.0; meta.dim],
                meta.dim,
                hidden,
            )),
            meta.dim,
            ColbertConfig {
                layout: ColbertLayout::ColbertAi,
                query_maxlen: meta.query_maxlen,
                doc_maxlen: meta.doc_maxlen,
                query_marker: Some(query_marker),
                doc_marker: Some(doc_marker),
                expand_queries: true,
                attend_to_mask: meta.attend_to_mask_tokens,
                skiplist,
                query_prefix: String::new(),
                doc_prefix: String::new(),
            },
        )
    }

    fn load_pylate(dir: &Path, config: PylateConfig) -> Result<Self, ModelError> {
        let config_path = dir.join("config_sentence_transformers.json");
        let modules_path = dir.join("modules.json");
        let modules: Vec<StModule> = read_json(&modules_path)?.ok_or_else(|| {
            ModelError::invalid(
                &modules_path,
                "missing (a PyLate model lists its Transformer and Dense modules there)",
            )
        })?;
        let dense = modules
            .iter()
            .find(|m| m.kind.ends_with(".Dense"))
            .ok_or_else(|| ModelError::invalid(&modules_path, "no Dense projection module"))?;
        let dense_dir = dir.join(&dense.path);
        let dense_config_path = dense_dir.join("config.json");
        let dc: DenseConfig = read_json(&dense_config_path)?
            .ok_or_else(|| ModelError::invalid(&dense_config_path, "missing"))?;
        if !matches!(
            dc.activation_function.as_str(),
            "" | "torch.nn.modules.linear.Identity"
        ) {
            return Err(ModelError::invalid(
                &dense_config_path,
                format!(
                    "activation '{}' is not supported (Identity only)",
                    dc.activation_function
                ),
            ));
        }
        let tokenizer = crate::sentence::load_tokenizer(dir)?;
        let bert = Bert::load(dir)?;
        if dc.in_features != bert.config.hidden_size {
            return Err(ModelError::invalid(
                &dense_config_path,
                format!(
                    "in_features {} but the transformer's hidden size is {}",
                    dc.in_features, bert.config.hidden_size
                ),
            ));
        }
        let wpath = dense_dir.join("model.safetensors");
        let w = Weights::open(&wpath)?;
        let weight = w.get("linear.weight", &[dc.out_features, dc.in_features])?;
        let bias = if dc.bias {
            w.get("linear.bias", &[dc.out_features])?
        } else {
            vec![0.0; dc.out_features]
        };
        // PyLate adds the prefixes to the vocabulary as they are ("[Q] "); converted
        // colbert-ai checkpoints name existing tokens ("[unused0]").
        let marker = |prefix: &str, field: &str| {
            let token = prefix.trim();
            tokenizer
                .token_to_id(prefix)
                .or_else(|| tokenizer.token_to_id(token))
                .ok_or_else(|| {
                    ModelError::invalid(
                        &config_path,
                        format!("{field} '{token}' is not a token of the tokenizer"),
                    )
                })
        };
        let query_marker = marker(&config.query_prefix, "query_prefix")?;
        let doc_marker = marker(&config.document_prefix, "document_prefix")?;
        if config.query_length > bert.max_tokens() || config.document_length > bert.max_tokens() {
            return Err(ModelError::invalid(
                &config_path,
                format!(
                    "query_length {} / document_length {} exceed the model's {} positions",
                    config.query_length,
                    config.document_length,
                    bert.max_tokens()
                ),
            ));
        }
        // PyLate converts each skiplist word as one token (the unknown token if it is none).
        let unknown = tokenizer.token_to_id("[UNK]");
        let skiplist = config
            .skiplist_words
            .iter()
            .filter_map(|w| tokenizer.token_to_id(w).or(unknown))
            .collect();
        Self::assemble(
            dir,
            Backbone::Bert(Box::new(bert)),
            tokenizer,
            Some(Linear::new(weight, bias, dc.out_features, dc.in_features)),
            dc.out_features,
            ColbertConfig {
                layout: ColbertLayout::Pylate,
                query_maxlen: config.query_length,
                doc_maxlen: config.document_length,
                query_marker: Some(query_marker),
                doc_marker: Some(doc_marker),
                expand_queries: config.do_query_expansion,
                attend_to_mask: config.attend_to_expansion_tokens,
                skiplist,
                query_prefix: String::new(),
                doc_prefix: String::new(),
            },
        )
    }

    fn assemble(
        dir: &Path,
        backbone: Backbone,
        mut tokenizer: Tokenizer,
        projection: Option<Linear>,
        dim: usize,
        config: ColbertConfig,
    ) -> Result<Self, ModelError> {
        tokenizer.with_padding(None);
        let mask_id = tokenizer
            .token_to_id("[MASK]")
            .or_else(|| tokenizer.token_to_id("<mask>"))
            .ok_or_else(|| ModelError::invalid(dir, "the tokenizer has no [MASK] token"))?;
        let count = |prefix: &str| {
            tokenizer
                .encode(prefix, false)
                .map(|e| e.len())
                .map_err(|e| ModelError::invalid(dir, format!("tokenizing '{prefix}': {e}")))
        };
        let prefix_tokens = [count(&config.query_prefix)?, count(&config.doc_prefix)?];
        Ok(ColbertEncoder {
            dir: dir.to_path_buf(),
            backbone,
            tokenizer,
            projection,
            dim,
            config,
            mask_id,
            prefix_tokens,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn config(&self) -> &ColbertConfig {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The token ids a query is run as, and how many of them are attended to.
    pub fn query_ids(&self, text: &str) -> Result<(Vec<u32>, usize), ModelError> {
        let mut ids = self.token_ids(
            &self.config.query_prefix,
            text,
            self.config.query_marker,
            self.config.query_maxlen,
        )?;
        let real = ids.len();
        if self.config.expand_queries {
            ids.resize(self.config.query_maxlen.max(real), self.mask_id);
        }
        let attended = if self.config.attend_to_mask {
            ids.len()
        } else {
            real
        };
        Ok((ids, attended))
    }

    /// The token ids a document is run as (before punctuation is dropped).
    pub fn document_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.token_ids(
            &self.config.doc_prefix,
            text,
            self.config.doc_marker,
            self.config.doc_maxlen,
        )
    }

    /// `[CLS] marker tokens [SEP]` cut at `maxlen`, or the tokenizer's own sequence of
    /// `prefix` + `text` without a marker.
    fn token_ids(
        &self,
        prefix: &str,
        text: &str,
        marker: Option<u32>,
        maxlen: usize,
    ) -> Result<Vec<u32>, ModelError> {
        let mut tokenizer = self.tokenizer.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: maxlen - usize::from(marker.is_some()),
                ..Default::default()
            }))
            .map_err(|e| ModelError::invalid(&self.dir, e.to_string()))?;
        let encoding = tokenizer
            .encode(format!("{prefix}{text}"), true)
            .map_err(|e| ModelError::invalid(&self.dir, format!("tokenizing: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        if let Some(m) = marker {
            ids.insert(1.min(ids.len()), m);
        }
        Ok(ids)
    }

    /// Query token vectors (every position but the prefix's, [MASK] augmentation included).
    pub fn encode_queries(&self, texts: &[&str]) -> Result<Vec<TokenVectors>, ModelError> {
        let inputs = texts
            .iter()
            .map(|t| self.query_ids(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.run(inputs, self.prefix_tokens[0], |_| true))
    }

    /// Document token vectors, punctuation and the prefix's tokens dropped.
    pub fn encode_documents(&self, texts: &[&str]) -> Result<Vec<TokenVectors>, ModelError> {
        let inputs = texts
            .iter()
            .map(|t| self.document_ids(t).map(|ids| (ids.clone(), ids.len())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.run(inputs, self.prefix_tokens[1], |id| {
            !self.config.skiplist.contains(&id)
        }))
    }

    /// Runs sequences over the current rayon pool (longest first), keeping the positions
    /// after [CLS] and the `prefix` tokens that follow it whose id `keep` accepts; output
    /// order is input order.
    fn run(
        &self,
        inputs: Vec<(Vec<u32>, usize)>,
        prefix: usize,
        keep: impl Fn(u32) -> bool + Sync,
    ) -> Vec<TokenVectors> {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].0.len()));
        let kept = |p: usize, id: u32| !(1..=prefix).contains(&p) && keep(id);
        let mut out: Vec<(usize, TokenVectors)> = order
            .par_iter()
            .map(|&i| {
                let (ids, attended) = &inputs[i];
                let hidden_size = self.backbone.hidden_size();
                let vectors = self.backbone.forward_attending(ids, *attended, |hidden| {
                    let rows: Vec<f32> = hidden
                        .chunks_exact(hidden_size)
                        .zip(ids)
                        .enumerate()
                        .filter(|&(p, (_, &id))| kept(p, id))
                        .flat_map(|(_, (row, _))| row.iter().copied())
                        .collect();
                    rows
                });
                let rows = vectors.len() / hidden_size;
                let mut projected = Vec::new();
                let vectors = match &self.projection {
                    Some(p) => {
                        p.forward(&vectors, rows, &mut projected);
                        projected
                    }
                    None => vectors,
                };
                let mut vectors = vectors;
                for row in vectors.chunks_exact_mut(self.dim) {
                    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    row.iter_mut().for_each(|x| *x /= norm);
                }
                let ids = ids
                    .iter()
                    .enumerate()
                    .filter(|&(p, &id)| kept(p, id))
                    .map(|(_, &id)| id)
                    .collect();
                (i, TokenVectors { ids, vectors })
            })
            .collect();
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, v)| v).collect()
    }
}

/// The first token id of each punctuation symbol (Python's `string.punctuation`), as
/// colbert-ai's skiplist.
fn punctuation_ids(tokenizer: &Tokenizer) -> HashSet<u32> {
    const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    PUNCTUATION
        .chars()
        .filter_map(|c| {
            tokenizer
                .encode(c.to_string(), false)
                .ok()
                .and_then(|e| e.get_ids().first().copied())
        })
        .collect()
}

/// Σ over query rows of the largest inner product with any document row (late interaction).
pub fn maxsim(query: &[f32], document: &[f32], dim: usize) -> f32 {
    query
        .chunks_exact(dim)
        .map(|q| {
            document
                .chunks_exact(dim)
                .map(|d| q.iter().zip(d).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .filter(|m| m.is_finite())
        .sum()
}
