//! Sentence-transformers bi-encoders: `modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json` (max_seq_length), optional normalisation and prompts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::Bert;
use crate::nomic::NomicBert;
use crate::ModelError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize, Default)]
struct StConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize, Default)]
struct StPrompts {
    #[serde(default)]
    prompts: std::collections::HashMap<String, String>,
}

/// The transformer under a sentence encoder (and under a zero-shot token model,
/// [`crate::colbert`]).
pub(crate) enum Backbone {
    /// `config.json` + `model.safetensors`.
    Bert(Box<Bert>),
    /// A GGUF file (vocabulary included).
    Nomic(Box<NomicBert>),
}

impl Backbone {
    pub(crate) fn hidden_size(&self) -> usize {
        match self {
            Backbone::Bert(b) => b.config.hidden_size,
            Backbone::Nomic(n) => n.hidden_size,
        }
    }

    fn forward<R>(&self, ids: &[u32], type_ids: &[u32], f: impl FnOnce(&[f32]) -> R) -> R {
        match self {
            Backbone::Bert(b) => b.forward(ids, type_ids, f),
            Backbone::Nomic(n) => n.forward(ids, f),
        }
    }

    /// [`Bert::forward_attending`] (token type 0 throughout). Only BERT checkpoints pad with
    /// unattended [MASK]s (ColBERT's query augmentation); the GGUF encoders attend to every
    /// position, which is all a zero-shot token model asks of them.
    pub(crate) fn forward_attending<R>(
        &self,
        ids: &[u32],
        attended: usize,
        f: impl FnOnce(&[f32]) -> R,
    ) -> R {
        match self {
            Backbone::Bert(b) => b.forward_attending(ids, &vec![0; ids.len()], attended, f),
            Backbone::Nomic(n) => {
                debug_assert_eq!(attended, ids.len(), "GGUF encoders attend to every token");
                n.forward(ids, f)
            }
        }
    }
}

/// The one `.gguf` file of a model folder that has no `config.json`, if any.
fn gguf_in(dir: &Path) -> Result<Option<PathBuf>, ModelError> {
    if dir.join("config.json").exists() {
        return Ok(None);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(ModelError::io(dir))? {
        let path = entry.map_err(ModelError::io(dir))?.path();
        if path.extension().is_some_and(|e| e == "gguf") {
            found.push(path);
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(ModelError::invalid(
            dir,
            format!("{n} .gguf files: a model folder holds one"),
        )),
    }
}

/// A sentence encoder ready to embed text.
pub struct SentenceEncoder {
    dir: PathBuf,
    backbone: Backbone,
    tokenizer: Tokenizer,
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: usize,
    /// Text put before queries and documents (e.g. E5's "query: "), from the model's
    /// sentence-transformers config or set by the caller.
    pub query_prefix: String,
    pub document_prefix: String,
}

/// The encoder of a model folder, loaded once per process and shared by every stage that
/// uses it (a pipeline naming a model twice, the settings `ferret tune` tries, a server's
/// requests).
pub fn shared(dir: &Path) -> Result<Arc<SentenceEncoder>, ModelError> {
    crate::loaded::shared(dir, SentenceEncoder::load)
}

/// [`shared`], with int8 linear layers when `int8` ([`SentenceEncoder::quantize_int8`]).
pub fn shared_with(dir: &Path, int8: bool) -> Result<Arc<SentenceEncoder>, ModelError> {
    if !int8 {
        return shared(dir);
    }
    crate::loaded::shared_variant(dir, "int8", |dir| {
        let mut encoder = SentenceEncoder::load(dir)?;
        encoder.quantize_int8()?;
        Ok(encoder)
    })
}

/// `tokenizer.json` of a model folder. The tokenizers library panics on some malformed files
/// (found by fuzzing): while reading them (an `expect` in its decoder deserialisation), or on
/// the first text it encodes (a post-processor template naming a special token the file does
/// not define). Both are caught here — the file is read, then a text and a pair of texts are
/// encoded — and reported as the file's error, so that no encoder panics later.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer, ModelError> {
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.exists() {
        return Err(ModelError::invalid(dir, "missing tokenizer.json"));
    }
    let bad = |e: String| ModelError::invalid(&tok_path, format!("cannot load tokenizer: {e}"));
    let tokenizer = std::panic::catch_unwind(|| Tokenizer::from_file(&tok_path))
        .map_err(|panic| bad(panic_message(panic)))?
        .map_err(|e| bad(e.to_string()))?;
    let probe = std::panic::AssertUnwindSafe(&tokenizer);
    std::panic::catch_unwind(|| {
        let _ = probe.encode("probe text", true);
        let _ = probe.encode(("probe text", "second text"), true);
    })
    .map_err(|panic| {
        bad(format!(
            "it fails on a first text: {}",
            panic_message(panic)
        ))
    })?;
    Ok(tokenizer)
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "malformed file".into())
}

impl SentenceEncoder {
    /// Loads a sentence-transformers folder. Without `modules.json` the model is treated as a
    /// bare transformer with mean pooling and no normalisation. A folder with one `.gguf` file
    /// and no `config.json` is a GGUF encoder ([`NomicBert`]): its vocabulary, pooling and
    /// context length come from the file, its output is normalised, and without a
    /// `config_sentence_transformers.json` it gets nomic-embed's task prefixes.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let (backbone, mut tokenizer, tok_path) = match gguf_in(dir)? {
            Some(file) => {
                let model = NomicBert::load(&file)?;
                let tokenizer = model.tokenizer().clone();
                (Backbone::Nomic(Box::new(model)), tokenizer, file)
            }
            None => (
                Backbone::Bert(Box::new(Bert::load(dir)?)),
                load_tokenizer(dir)?,
                dir.join("tokenizer.json"),
            ),
        };
        let read_json = |p: PathBuf| -> Result<Option<serde_json::Value>, ModelError> {
            match std::fs::read_to_string(&p) {
                Ok(t) => serde_json::from_str(&t)
                    .map(Some)
                    .map_err(|e| ModelError::invalid(&p, e.to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ModelError::Io { path: p, source: e }),
            }
        };
        let modules: Vec<Module> = match read_json(dir.join("modules.json"))? {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| ModelError::invalid(dir.join("modules.json"), e.to_string()))?,
            None => Vec::new(),
        };
        let mut pooling = Pooling::Mean;
        let mut normalize = false;
        for m in &modules {
            if m.kind.ends_with("models.Pooling") {
                let p = dir.join(&m.path).join("config.json");
                let cfg: PoolingConfig = serde_json::from_value(
                    read_json(p.clone())?
                        .ok_or_else(|| ModelError::invalid(&p, "missing pooling config"))?,
                )
                .map_err(|e| ModelError::invalid(&p, e.to_string()))?;
                pooling = match (
                    cfg.pooling_mode_cls_token,
                    cfg.pooling_mode_mean_tokens,
                    cfg.pooling_mode_max_tokens,
                ) {
                    (true, false, false) => Pooling::Cls,
                    (false, true, false) => Pooling::Mean,
                    (false, false, true) => Pooling::Max,
                    _ => return Err(ModelError::invalid(&p, "unsupported pooling combination")),
                };
            } else if m.kind.ends_with("models.Normalize") {
                normalize = true;
            }
        }
        let st: StConfig = read_json(dir.join("sentence_bert_config.json"))?
            .map(|v| serde_json::from_value(v).unwrap_or_default())
            .unwrap_or_default();
        // (longest sequence, default length): sentence-transformers' default 512 for BERTs,
        // the file's whole context for GGUF encoders, as llama.cpp embeds.
        let (max_tokens, default_length) = match &backbone {
            Backbone::Bert(b) => (b.max_tokens(), 512),
            Backbone::Nomic(n) => {
                if modules.is_empty() {
                    pooling = n.pooling;
                    normalize = true;
                }
                (n.context_length, n.context_length)
            }
        };
        let max_seq_length = st.max_seq_length.unwrap_or(default_length).min(max_tokens);
        let prompts: StPrompts = match read_json(dir.join("config_sentence_transformers.json"))? {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            // nomic-embed's task prefixes (its model card: retrieval queries and documents).
            None if matches!(backbone, Backbone::Nomic(_)) => StPrompts {
                prompts: [
                    ("query".to_string(), "search_query: ".to_string()),
                    ("document".to_string(), "search_document: ".to_string()),
                ]
                .into(),
            },
            None => StPrompts::default(),
        };
        // sentence-transformers truncates at max_seq_length and pads per batch; this runtime
        // runs sequences one by one, so no padding at all.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| ModelError::invalid(&tok_path, e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(SentenceEncoder {
            dir: dir.to_path_buf(),
            backbone,
            tokenizer,
            pooling,
            normalize,
            max_seq_length,
            query_prefix: prompts.prompts.get("query").cloned().unwrap_or_default(),
            document_prefix: prompts
                .prompts
                .get("document")
                .or(prompts.prompts.get("passage"))
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// Switches the transformer's linear layers to int8 ([`Bert::quantize_int8`]). GGUF
    /// encoders are refused: their file already fixes how their weights are stored.
    pub fn quantize_int8(&mut self) -> Result<(), ModelError> {
        match &mut self.backbone {
            Backbone::Bert(b) => {
                b.quantize_int8();
                Ok(())
            }
            Backbone::Nomic(_) => Err(ModelError::invalid(
                &self.dir,
                "int8 applies to safetensors encoders; a GGUF encoder keeps the types its file stores",
            )),
        }
    }

    pub fn dim(&self) -> usize {
        self.backbone.hidden_size()
    }

    /// The transformer and its tokenizer (truncating at `max_seq_length`), for a zero-shot
    /// token model built on this encoder ([`crate::colbert::ColbertEncoder::load_tokens`]).
    pub(crate) fn into_backbone(self) -> (Backbone, Tokenizer) {
        (self.backbone, self.tokenizer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Embeds texts (each prefixed with `prefix`), spreading sequences over the current rayon
    /// pool, longest first so the threads finish together. Output order is input order.
    pub fn encode(&self, texts: &[&str], prefix: &str) -> Result<Vec<Vec<f32>>, ModelError> {
        self.encode_dims(texts, prefix, None)
    }

    /// Checks a Matryoshka size against the model's.
    pub fn check_dims(&self, dims: usize) -> Result<(), ModelError> {
        if dims == 0 || dims > self.dim() {
            return Err(ModelError::invalid(
                &self.dir,
                format!(
                    "dims {dims}: a Matryoshka size is between 1 and the model's {}",
                    self.dim()
                ),
            ));
        }
        Ok(())
    }

    /// [`encode`](Self::encode), keeping the first `dims` dimensions when given (Matryoshka
    /// truncation, for models trained for it), the result scaled to unit length. For GGUF
    /// (nomic-embed) models the pooled vector is layer-normed (no weights) before the cut, as
    /// nomic-embed-text-v1.5's model card prescribes; other models are cut as they are
    /// (sentence-transformers' `truncate_dim`).
    pub fn encode_dims(
        &self,
        texts: &[&str],
        prefix: &str,
        dims: Option<usize>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        if let Some(d) = dims {
            self.check_dims(d)?;
        }
        let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| ModelError::invalid(&self.dir, format!("tokenizing: {e}")))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let vectors: Vec<(usize, Vec<f32>)> = order
            .par_iter()
            .map(|&i| {
                let e = &encodings[i];
                let v = self
                    .backbone
                    .forward(e.get_ids(), e.get_type_ids(), |hidden| {
                        self.pool(hidden, e.get_ids().len())
                    });
                let v = match dims {
                    Some(d) => self.matryoshka(v, d),
                    None => v,
                };
                (i, v)
            })
            .collect();
        let mut out = vec![Vec::new(); texts.len()];
        for (i, v) in vectors {
            out[i] = v;
        }
        Ok(out)
    }

    fn matryoshka(&self, mut v: Vec<f32>, dims: usize) -> Vec<f32> {
        if matches!(self.backbone, Backbone::Nomic(_)) {
            let n = v.len() as f32;
            let mean = v.iter().sum::<f32>() / n;
            let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
            let scale = 1.0 / (var + 1e-5).sqrt();
            v.iter_mut().for_each(|x| *x = (*x - mean) * scale);
        }
        v.truncate(dims);
        unit(&mut v);
        v
    }

    fn pool(&self, hidden: &[f32], len: usize) -> Vec<f32> {
        let h = self.dim();
        let mut v = match self.pooling {
            Pooling::Cls => hidden[..h].to_vec(),
            Pooling::Mean => {
                let mut acc = vec![0f32; h];
                for row in hidden.chunks_exact(h) {
                    for (a, x) in acc.iter_mut().zip(row) {
                        *a += x;
                    }
                }
                acc.iter_mut().for_each(|a| *a /= len as f32);
                acc
            }
            Pooling::Max => {
                let mut acc = vec![f32::NEG_INFINITY; h];
                for row in hidden.chunks_exact(h) {
                    for (a, x) in acc.iter_mut().zip(row) {
                        *a = a.max(*x);
                    }
                }
                acc
            }
        };
        if self.normalize {
            unit(&mut v);
        }
        v
    }
}

fn unit(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}
