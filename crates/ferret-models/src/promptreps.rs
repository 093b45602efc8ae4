//! PromptReps (Zhuang et al., 2024): a dense and a sparse representation of a text from one
//! forward pass of an instruction-tuned LLM, with no training. The text goes into a chat
//! prompt that asks for one lowercase word representing it, and the answer is primed with
//! `The word is "`. Then, at that last position:
//!
//! * dense: the final hidden state (after the last RMS norm), L2-normalised;
//! * sparse: the next-token logits through `log(1 + ReLU(·))`, kept only for the tokens of the
//!   text's own words (lowercased, stop words dropped, each word tokenised on its own as the
//!   word after `"` would be), the heaviest [`PromptRepsRun::top_terms`] of them; tokens that
//!   spell the same word are merged (largest weight). When the text has no word, the ten
//!   heaviest tokens of the whole vocabulary stand in, as in the authors' code.
//!
//! The model is a llama-family GGUF run by [`crate::llm::gguf`] with its output layer set to
//! return the hidden state; the logits are that state times the vocabulary projection.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};

use crate::llm::gguf::{GgufModel, Head};
use crate::llm::Message;
use crate::ModelError;

const SYSTEM: &str = "You are an AI assistant that can understand human language.";
const ANSWER_START: &str = "The word is \"";

/// Whether a text is a passage or a query (the prompt names which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Passage,
    Query,
}

impl Side {
    fn name(self) -> (&'static str, &'static str) {
        match self {
            Side::Passage => ("Passage", "passage"),
            Side::Query => ("Query", "query"),
        }
    }
}

/// How one call encodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PromptRepsRun {
    pub side: Side,
    /// Longest text in tokens (cut at a token boundary; the prompt around it is extra).
    pub max_length: usize,
    /// Most sparse terms per text.
    pub top_terms: usize,
}

/// A text's two representations.
#[derive(Debug, Clone, PartialEq)]
pub struct Reps {
    /// Unit length.
    pub dense: Vec<f32>,
    /// (word, weight), weights positive, heaviest first.
    pub sparse: Vec<(String, f32)>,
}

/// The PromptReps model of a GGUF (path or id), loaded once per process.
pub fn shared(model: &str) -> Result<Arc<PromptReps>, ModelError> {
    let (path, _) = crate::llm::gguf::locate(model)?;
    crate::loaded::shared(&path, |p: &Path| {
        PromptReps::open(p.to_str().unwrap_or(model))
    })
}

pub struct PromptReps {
    model: GgufModel,
    /// Each token's word, lowercase and without the byte-level space marker (`Ġ`).
    words: Vec<String>,
    /// The scored tokens of passages encoded by [`Self::dense`], waiting for [`Self::sparse`].
    stash: Mutex<HashMap<u64, Vec<(u32, f32)>>>,
}

/// Most passages whose scored tokens wait in the stash (each one pair per distinct token of
/// its words: a few KB).
const STASH: usize = 200_000;

fn stash_key(text: &str, run: &PromptRepsRun) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (text, run.max_length).hash(&mut h);
    h.finish()
}

/// One forward pass: the unit dense vector and the candidate tokens' weights, heaviest first.
struct Forward {
    dense: Vec<f32>,
    scored: Vec<(u32, f32)>,
}

impl PromptReps {
    pub fn open(model: &str) -> Result<Self, ModelError> {
        let model = GgufModel::open_with(model, Head::Hidden)?;
        let vocab = model.tokenizer().get_vocab_size(true);
        let words = (0..vocab as u32)
            .map(|id| {
                model
                    .tokenizer()
                    .id_to_token(id)
                    .map(|t| t.trim_start_matches('Ġ').to_lowercase())
                    .unwrap_or_default()
            })
            .collect();
        Ok(PromptReps {
            model,
            words,
            stash: Mutex::new(HashMap::new()),
        })
    }

    /// Hidden size (the dense dimension).
    pub fn dim(&self) -> usize {
        self.projection().dim(1).expect("a matrix")
    }

    /// The model's id and weights' sha256.
    pub fn identity(&self) -> (&str, &str) {
        self.model.identity()
    }

    fn projection(&self) -> &Tensor {
        self.model
            .projection()
            .expect("opened with the hidden-state head")
    }

    fn bad(&self, message: String) -> ModelError {
        ModelError::invalid(self.model.path(), message)
    }

    fn tokens(&self, text: &str) -> Result<tokenizers::Encoding, ModelError> {
        self.model
            .tokenizer()
            .encode(text, false)
            .map_err(|e| self.bad(format!("tokenizing: {e}")))
    }

    /// The prompt text for `text` (cut to `max_length` tokens).
    pub fn prompt(&self, text: &str, run: &PromptRepsRun) -> Result<String, ModelError> {
        let encoding = self.tokens(text)?;
        let text = match encoding.get_offsets().get(run.max_length) {
            Some(&(cut, _)) => &text[..cut],
            None => text,
        };
        let (label, noun) = run.side.name();
        let user = format!(
            "{label}: \"{text}\". Use one word to represent the {noun} in a retrieval task. Make sure your word is in lowercase."
        );
        let chat = self
            .model
            .render(&[Message::system(SYSTEM), Message::user(user)])?;
        Ok(format!("{chat}{ANSWER_START}"))
    }

    /// The token ids the sparse vector may use: those of the text's words.
    fn text_tokens(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let lower = text.to_lowercase();
        let mut ids = Vec::new();
        for word in lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty() && !ferret_text::is_english_stop_word(w))
        {
            ids.extend_from_slice(self.tokens(word)?.get_ids());
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Dense vectors. For passages, the sparse vectors made by the same forward passes are
    /// kept for [`Self::sparse`]: an index writer builds the dense representation and then the
    /// sparse one over the same documents, so each document takes one pass, not two (beyond
    /// [`STASH`] waiting passages the rest are computed again).
    pub fn dense(&self, texts: &[&str], run: &PromptRepsRun) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::with_capacity(texts.len());
        for t in texts {
            let f = self.forward(t, run)?;
            if run.side == Side::Passage {
                let mut stash = self.stash.lock().unwrap_or_else(|p| p.into_inner());
                if stash.len() < STASH {
                    stash.insert(stash_key(t, run), f.scored);
                }
            }
            out.push(f.dense);
        }
        Ok(out)
    }

    /// Sparse vectors: from the tokens waiting since [`Self::dense`], else newly made.
    pub fn sparse(
        &self,
        texts: &[&str],
        run: &PromptRepsRun,
    ) -> Result<Vec<Vec<(String, f32)>>, ModelError> {
        texts
            .iter()
            .map(|t| {
                let waiting = self
                    .stash
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&stash_key(t, run));
                let scored = match waiting {
                    Some(v) => v,
                    None => self.forward(t, run)?.scored,
                };
                Ok(merged_terms(&self.words, &scored, run.top_terms))
            })
            .collect()
    }

    /// Encodes texts one after the other (each forward pass uses every core).
    pub fn encode(&self, texts: &[&str], run: &PromptRepsRun) -> Result<Vec<Reps>, ModelError> {
        texts
            .iter()
            .map(|t| {
                let f = self.forward(t, run)?;
                Ok(Reps {
                    dense: f.dense,
                    sparse: merged_terms(&self.words, &f.scored, run.top_terms),
                })
            })
            .collect()
    }

    /// The prompt's token ids and the final hidden state at its last position.
    pub fn last_hidden(
        &self,
        text: &str,
        run: &PromptRepsRun,
    ) -> Result<(Vec<u32>, Vec<f32>), ModelError> {
        let prompt = self.prompt(text, run)?;
        let ids = self.tokens(&prompt)?.get_ids().to_vec();
        let hidden = self.model.last_position(&ids)?;
        Ok((ids, hidden))
    }

    fn forward(&self, text: &str, run: &PromptRepsRun) -> Result<Forward, ModelError> {
        let (_, hidden) = self.last_hidden(text, run)?;
        let logits = self
            .logits(&hidden)
            .map_err(|e| self.bad(format!("vocabulary projection: {e}")))?;
        let scored = scored_tokens(&logits, &self.text_tokens(text)?);
        let norm = hidden.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        Ok(Forward {
            dense: hidden.iter().map(|x| x / norm).collect(),
            scored,
        })
    }

    /// Next-token logits from the final hidden state.
    pub fn logits(&self, hidden: &[f32]) -> candle_core::Result<Vec<f32>> {
        let h = Tensor::from_slice(hidden, (hidden.len(), 1), &Device::Cpu)?;
        self.projection().matmul(&h)?.squeeze(1)?.to_vec1()
    }
}

/// The weights `log(1 + ReLU(logit))` of the `candidates`, heaviest first (with no candidate:
/// the ten heaviest tokens of the vocabulary).
fn scored_tokens(logits: &[f32], candidates: &[u32]) -> Vec<(u32, f32)> {
    let weight = |id: u32| logits[id as usize].max(0.0).ln_1p();
    let mut scored: Vec<(u32, f32)> = if candidates.is_empty() {
        (0..logits.len() as u32)
            .map(|id| (id, weight(id)))
            .collect()
    } else {
        candidates.iter().map(|&id| (id, weight(id))).collect()
    };
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if candidates.is_empty() {
        scored.truncate(10);
    }
    scored
}

/// The sparse vector: the heaviest `top` scored tokens with positive weight, merged by the
/// word they spell (largest weight), heaviest first.
fn merged_terms(words: &[String], scored: &[(u32, f32)], top: usize) -> Vec<(String, f32)> {
    let mut merged: HashMap<&str, f32> = HashMap::new();
    for &(id, w) in scored.iter().take(top) {
        let word = words[id as usize].as_str();
        if w > 0.0 && !word.is_empty() {
            let e = merged.entry(word).or_insert(w);
            *e = e.max(w);
        }
    }
    let mut out: Vec<(String, f32)> = merged
        .into_iter()
        .map(|(t, w)| (t.to_string(), w))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Vec<String> {
        ["cancer", "Ġcancer", "cell", "the", "", "tumor"]
            .iter()
            .map(|t| t.trim_start_matches('Ġ').to_string())
            .collect()
    }

    #[test]
    fn sparse_terms_keep_the_texts_tokens_merged_by_word() {
        let logits = [2.0, 3.0, -1.0, 5.0, 9.0, 1.0];
        // "the" (id 3) is not a candidate; "cell" has a negative logit (weight 0, dropped);
        // both spellings of "cancer" merge to the larger weight.
        let v = merged_terms(&words(), &scored_tokens(&logits, &[0, 1, 2, 5]), 128);
        let expected = vec![
            ("cancer".to_string(), 4.0f32.ln()),
            ("tumor".into(), 2.0f32.ln()),
        ];
        assert_eq!(v.len(), 2);
        for ((t, w), (et, ew)) in v.iter().zip(&expected) {
            assert_eq!(t, et);
            assert!((w - ew).abs() < 1e-6);
        }
        // Only the heaviest `top` candidates.
        let v = merged_terms(&words(), &scored_tokens(&logits, &[0, 5]), 1);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, "cancer");
    }

    #[test]
    fn a_text_without_words_takes_the_heaviest_tokens() {
        let logits = [2.0, 3.0, -1.0, 5.0, 9.0, 1.0];
        // Token 4 spells nothing and is skipped; "the" leads.
        let v = merged_terms(&words(), &scored_tokens(&logits, &[]), 128);
        let terms: Vec<&str> = v.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(terms, ["the", "cancer", "tumor"]);
    }
}
