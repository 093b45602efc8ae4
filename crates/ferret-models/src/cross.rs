//! Cross-encoders: `BertForSequenceClassification` checkpoints (the layout of
//! `cross-encoder/ms-marco-MiniLM-L-6-v2`): the (query, passage) pair is encoded as one
//! sequence `[CLS] query [SEP] passage [SEP]` (token types 0 then 1), truncated `only_second`
//! (the passage gives way), and the logit is `classifier(tanh(pooler(h_[CLS])))`.
//! `XLMRobertaForSequenceClassification` / `RobertaForSequenceClassification` (the layout of
//! bge-reranker): `<s> query </s></s> passage </s>` as the tokenizer's template says, and the
//! logit is `classifier.out_proj(tanh(classifier.dense(h_<s>)))` — the same shape of head
//! under other names, on a RoBERTa encoder (see `bert.rs`).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

use crate::bert::{Bert, Linear};
use crate::cancel::Cancel;
use crate::weights::Weights;
use crate::ModelError;

pub struct CrossEncoder {
    dir: PathBuf,
    bert: Bert,
    pooler: Linear,
    classifier: Linear,
    labels: usize,
    tokenizer: Tokenizer,
    pub max_length: usize,
}

#[derive(serde::Deserialize)]
struct Labels {
    #[serde(default)]
    id2label: std::collections::HashMap<String, String>,
}

impl CrossEncoder {
    /// Loads a sequence-classification checkpoint; pairs are truncated to `max_length` tokens
    /// (at most the model's position table).
    pub fn load(dir: &Path, max_length: usize) -> Result<Self, ModelError> {
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.exists() {
            return Err(ModelError::invalid(dir, "missing tokenizer.json"));
        }
        let bert = Bert::load(dir)?;
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(ModelError::io(&config_path))?;
        let labels: Labels = serde_json::from_str(&text)
            .map_err(|e| ModelError::invalid(&config_path, e.to_string()))?;
        let labels = labels.id2label.len().max(1);
        let w = Weights::open(&dir.join("model.safetensors"))?;
        let h = bert.config.hidden_size;
        // (dense, output) of the head: BERT's pooler and classifier, or RoBERTa's classifier.
        let (dense, output) = if w.has("classifier.out_proj.weight") {
            ("classifier.dense", "classifier.out_proj")
        } else if w.has("bert.pooler.dense.weight") {
            ("bert.pooler.dense", "classifier")
        } else {
            ("pooler.dense", "classifier")
        };
        let head_err = |e: ModelError| {
            ModelError::invalid(
                dir,
                format!(
                    "not a sequence-classification checkpoint (pooler and classifier, or RoBERTa's classification head): {e}"
                ),
            )
        };
        let pooler = Linear::load(&w, dense, h, h).map_err(head_err)?;
        let classifier = Linear::load(&w, output, labels, h).map_err(head_err)?;
        let max_length = max_length.min(bert.max_tokens());
        let mut tokenizer = crate::sentence::load_tokenizer(dir)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::OnlySecond,
                ..Default::default()
            }))
            .map_err(|e| ModelError::invalid(&tok_path, e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(CrossEncoder {
            dir: dir.to_path_buf(),
            bert,
            pooler,
            classifier,
            labels,
            tokenizer,
            max_length,
        })
    }

    /// The token ids of a pair, as the model sees them.
    pub fn token_ids(&self, query: &str, passage: &str) -> Result<Vec<u32>, ModelError> {
        let e = self
            .tokenizer
            .encode((query, passage), true)
            .map_err(|e| ModelError::invalid(&self.dir, format!("tokenizing: {e}")))?;
        Ok(e.get_ids().to_vec())
    }

    /// One relevance score per passage: the logit (the last label's, for checkpoints with
    /// several), pairs spread over the current rayon pool, longest first. Stops with
    /// [`ModelError::Cancelled`] once `cancel` is set (checked before each pair).
    pub fn score(
        &self,
        query: &str,
        passages: &[&str],
        cancel: &Cancel,
    ) -> Result<Vec<f32>, ModelError> {
        let pairs: Vec<(String, String)> = passages
            .iter()
            .map(|p| (query.to_string(), p.to_string()))
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(pairs, true)
            .map_err(|e| ModelError::invalid(&self.dir, format!("tokenizing: {e}")))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let h = self.bert.config.hidden_size;
        let scored: Vec<(usize, f32)> = order
            .par_iter()
            .map(|&i| {
                if cancel.is_cancelled() {
                    return (i, f32::NAN);
                }
                let e = &encodings[i];
                let cls = self
                    .bert
                    .forward(e.get_ids(), e.get_type_ids(), |hidden| hidden[..h].to_vec());
                let mut pooled = Vec::with_capacity(h);
                self.pooler.forward(&cls, 1, &mut pooled);
                pooled.iter_mut().for_each(|v| *v = v.tanh());
                let mut logits = Vec::with_capacity(self.labels);
                self.classifier.forward(&pooled, 1, &mut logits);
                (i, logits[self.labels - 1])
            })
            .collect();
        if cancel.is_cancelled() {
            return Err(ModelError::Cancelled);
        }
        let mut out = vec![0f32; passages.len()];
        for (i, s) in scored {
            out[i] = s;
        }
        Ok(out)
    }
}
