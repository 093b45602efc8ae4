//! SPLADE sparse encoders: a `BertForMaskedLM` checkpoint (BERT + the masked-LM head: dense,
//! GELU, LayerNorm, then the decoder — tied to the word embeddings unless the checkpoint has
//! its own — plus a bias) whose logits over the vocabulary become term weights:
//! `w_j = pool_over_tokens log(1 + ReLU(logit_{t,j}))`, max pooling (SPLADE v2 and later) or
//! sum pooling (SPLADE v1), over every token including [CLS] and [SEP] (as naver/splade does
//! with its attention mask). Terms are the vocabulary's tokens (`##` pieces included).
//!
//! The encoder runs on the same BERT runtime as the sentence encoders ([`crate::bert`]); the
//! vocabulary projection is one GEMM per sequence.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{gelu_erf_all, gelu_tanh, Bert, LayerNorm, Linear};
use crate::weights::Weights;
use crate::ModelError;

/// How token weights are pooled over a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpladePooling {
    Max,
    Sum,
}

impl std::str::FromStr for SpladePooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(SpladePooling::Max),
            "sum" => Ok(SpladePooling::Sum),
            _ => Err(format!("unknown SPLADE pooling '{s}' (max or sum)")),
        }
    }
}

/// How one call encodes: lengths, pruning, pooling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpladeRun {
    /// Longest input in tokens, [CLS] and [SEP] included (cut to the model's limit).
    pub max_length: usize,
    /// Keep only the heaviest terms of each vector.
    pub top_terms: Option<usize>,
    pub pooling: SpladePooling,
}

/// The SPLADE model of a folder, loaded once per process.
pub fn shared(dir: &Path) -> Result<std::sync::Arc<SpladeEncoder>, ModelError> {
    crate::loaded::shared(dir, SpladeEncoder::load)
}

/// A loaded SPLADE model.
pub struct SpladeEncoder {
    dir: PathBuf,
    bert: Bert,
    tokenizer: Tokenizer,
    transform: Linear,
    transform_norm: LayerNorm,
    decoder: Linear,
    vocab: Vec<String>,
}

impl SpladeEncoder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` (with its
    /// `cls.predictions.*` head) from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let mut tokenizer = crate::sentence::load_tokenizer(dir)?;
        tokenizer.with_padding(None);
        let weights_path = dir.join("model.safetensors");
        let w = Weights::open(&weights_path)?;
        if !w.has("cls.predictions.transform.dense.weight") {
            return Err(ModelError::invalid(
                &weights_path,
                "no masked-language-model head (cls.predictions.*): not a SPLADE (BertForMaskedLM) checkpoint",
            ));
        }
        let bert = Bert::load(dir)?;
        let (h, v) = (bert.config.hidden_size, bert.config.vocab_size);
        let transform = Linear::load(&w, "cls.predictions.transform.dense", h, h)?;
        let transform_norm = LayerNorm::load(
            &w,
            "cls.predictions.transform.LayerNorm",
            h,
            bert.config.layer_norm_eps,
        )?;
        let decoder_w = if w.has("cls.predictions.decoder.weight") {
            w.get("cls.predictions.decoder.weight", &[v, h])?
        } else {
            bert.word_embeddings().to_vec()
        };
        let bias_name = if w.has("cls.predictions.bias") {
            "cls.predictions.bias"
        } else {
            "cls.predictions.decoder.bias"
        };
        let decoder = Linear::new(decoder_w, w.get(bias_name, &[v])?, v, h);
        let vocab = (0..v as u32)
            .map(|id| {
                tokenizer
                    .id_to_token(id)
                    .unwrap_or_else(|| format!("[unused-{id}]"))
            })
            .collect();
        Ok(SpladeEncoder {
            dir: dir.to_path_buf(),
            bert,
            tokenizer,
            transform,
            transform_norm,
            decoder,
            vocab,
        })
    }

    /// The longest input the model takes, in tokens.
    pub fn max_tokens(&self) -> usize {
        self.bert.max_tokens()
    }

    /// Sparse vectors of `texts` as `run` says: (term, weight) pairs with weight > 0,
    /// heaviest first (ties by vocabulary order). Sequences are spread over the current rayon
    /// pool; output order is input order.
    pub fn encode(
        &self,
        texts: &[&str],
        run: &SpladeRun,
    ) -> Result<Vec<Vec<(String, f32)>>, ModelError> {
        let mut tokenizer = self.tokenizer.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: run.max_length.min(self.max_tokens()),
                ..Default::default()
            }))
            .map_err(|e| ModelError::invalid(&self.dir, e.to_string()))?;
        let encodings = tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::invalid(&self.dir, format!("tokenizing: {e}")))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let vectors: Vec<(usize, Vec<(String, f32)>)> = order
            .par_iter()
            .map(|&i| {
                let e = &encodings[i];
                let weights = self.bert.forward(e.get_ids(), e.get_type_ids(), |hidden| {
                    self.term_weights(hidden, e.get_ids().len(), run.pooling)
                });
                (i, self.to_terms(&weights, run.top_terms))
            })
            .collect();
        let mut out = vec![Vec::new(); texts.len()];
        for (i, v) in vectors {
            out[i] = v;
        }
        Ok(out)
    }

    /// The pooled weight of every vocabulary entry for one sequence's hidden states.
    fn term_weights(&self, hidden: &[f32], len: usize, pooling: SpladePooling) -> Vec<f32> {
        let mut x = Vec::new();
        self.transform.forward(hidden, len, &mut x);
        if self.bert.config.hidden_act == "gelu" {
            gelu_erf_all(&mut x);
        } else {
            x.iter_mut().for_each(|v| *v = gelu_tanh(*v));
        }
        self.transform_norm.apply(&mut x);
        // The vocabulary projection in blocks of outputs, pooled as they come: a block of
        // logits stays in cache instead of a [len, vocab] matrix going through memory twice.
        const BLOCK: usize = 1024;
        let vocab = self.vocab.len();
        let mut pooled = vec![0f32; vocab];
        let mut logits = Vec::new();
        for start in (0..vocab).step_by(BLOCK) {
            let end = (start + BLOCK).min(vocab);
            self.decoder
                .forward_outputs(&x, len, start..end, &mut logits);
            let pooled = &mut pooled[start..end];
            for row in logits.chunks_exact(end - start) {
                match pooling {
                    // log1p is increasing: pool the ReLU, then take log1p once per term.
                    SpladePooling::Max => {
                        for (p, &l) in pooled.iter_mut().zip(row) {
                            *p = p.max(l);
                        }
                    }
                    SpladePooling::Sum => {
                        for (p, &l) in pooled.iter_mut().zip(row) {
                            *p += l.max(0.0).ln_1p();
                        }
                    }
                }
            }
        }
        if pooling == SpladePooling::Max {
            for p in &mut pooled {
                *p = p.max(0.0).ln_1p();
            }
        }
        pooled
    }

    fn to_terms(&self, weights: &[f32], top_terms: Option<usize>) -> Vec<(String, f32)> {
        let mut nonzero: Vec<(usize, f32)> = weights
            .iter()
            .enumerate()
            .filter(|(_, &w)| w > 0.0)
            .map(|(j, &w)| (j, w))
            .collect();
        nonzero.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if let Some(k) = top_terms {
            nonzero.truncate(k);
        }
        nonzero
            .into_iter()
            .map(|(j, w)| (self.vocab[j].clone(), w))
            .collect()
    }
}
