//! Large language models for reranking: one request/response shape over two backends — a local
//! GGUF model run on the CPU ([`gguf`]: ferret's own llama decoder for small models, candle's
//! quantised kernels for the rest) and any
//! OpenAI-compatible server ([`openai`]) — plus a prompt-hash cache ([`cache`]) and call/token
//! accounting shared by both.

pub mod cache;
pub mod gguf;
mod kernels;
mod llama;
pub mod openai;
mod prefix;
mod template;
mod tokenizer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::cancel::Cancel;
use crate::ModelError;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: "system".into(),
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// A request: a chat, greedy decoding of at most `max_tokens`, and optionally `choices` whose
/// log-probabilities as the *first* generated token are wanted (e.g. "Yes"/"No", "A"/"B").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRequest {
    pub messages: Vec<Message>,
    pub max_tokens: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

/// The answer: generated text, the choices' log-probabilities (same order as asked; `None`
/// when the backend could not give them), and token counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    pub text: String,
    #[serde(default)]
    pub choice_logprobs: Option<Vec<f32>>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of the prompt tokens, those whose keys and values came from an earlier prompt that began
    /// the same way instead of being run (a server's "cached tokens").
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reused_prompt_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a model runtime implements.
pub trait LlmBackend: Send + Sync {
    /// A stable identity (model and weights hash, or server and model) — the cache key's prefix.
    fn id(&self) -> String;
    /// Context window in tokens (prompt + generation).
    fn context_length(&self) -> usize;
    /// Tokens in a piece of text (exact for local models; an upper estimate for remote ones).
    fn count_tokens(&self, text: &str) -> usize;
    /// Answers `request`, or stops with [`ModelError::Cancelled`] once `cancel` is set.
    fn complete(&self, request: &LlmRequest, cancel: &Cancel) -> Result<LlmResponse, ModelError>;
}

/// Counters kept for every model: calls made to the backend, answers served from the cache,
/// tokens in and out (cached answers count their tokens too, as the work they stand for).
#[derive(Debug, Default)]
pub struct LlmStats {
    pub calls: AtomicU64,
    pub cache_hits: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub reused_prompt_tokens: AtomicU64,
}

/// A snapshot of [`LlmStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub calls: u64,
    pub cache_hits: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens not run, their keys and values taken from an earlier prompt's.
    pub reused_prompt_tokens: u64,
}

impl Usage {
    pub fn since(self, before: Usage) -> Usage {
        Usage {
            calls: self.calls - before.calls,
            cache_hits: self.cache_hits - before.cache_hits,
            prompt_tokens: self.prompt_tokens - before.prompt_tokens,
            completion_tokens: self.completion_tokens - before.completion_tokens,
            reused_prompt_tokens: self.reused_prompt_tokens - before.reused_prompt_tokens,
        }
    }
}

/// A backend with the prompt cache and the counters in front.
pub struct Llm {
    backend: Box<dyn LlmBackend>,
    cache: Option<cache::PromptCache>,
    stats: LlmStats,
}

impl Llm {
    pub fn new(backend: Box<dyn LlmBackend>, cache: Option<cache::PromptCache>) -> Self {
        Llm {
            backend,
            cache,
            stats: LlmStats::default(),
        }
    }

    pub fn id(&self) -> String {
        self.backend.id()
    }
    pub fn context_length(&self) -> usize {
        self.backend.context_length()
    }
    pub fn count_tokens(&self, text: &str) -> usize {
        self.backend.count_tokens(text)
    }

    /// Answers from the cache when this exact request was answered before, else asks the
    /// backend (and remembers the answer). The flag says whether the cache answered.
    pub fn complete(
        &self,
        request: &LlmRequest,
        cancel: &Cancel,
    ) -> Result<(LlmResponse, bool), ModelError> {
        let key = cache::key(&self.backend.id(), request);
        let cached = self.cache.as_ref().and_then(|c| c.get(&key));
        let hit = cached.is_some();
        let response = match cached {
            Some(r) => {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                r
            }
            None => {
                self.stats.calls.fetch_add(1, Ordering::Relaxed);
                let r = self.backend.complete(request, cancel)?;
                if let Some(c) = &self.cache {
                    c.put(&key, &r)?;
                }
                r
            }
        };
        self.stats
            .prompt_tokens
            .fetch_add(response.prompt_tokens, Ordering::Relaxed);
        self.stats
            .completion_tokens
            .fetch_add(response.completion_tokens, Ordering::Relaxed);
        self.stats
            .reused_prompt_tokens
            .fetch_add(response.reused_prompt_tokens, Ordering::Relaxed);
        Ok((response, hit))
    }

    pub fn usage(&self) -> Usage {
        Usage {
            calls: self.stats.calls.load(Ordering::Relaxed),
            cache_hits: self.stats.cache_hits.load(Ordering::Relaxed),
            prompt_tokens: self.stats.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.stats.completion_tokens.load(Ordering::Relaxed),
            reused_prompt_tokens: self.stats.reused_prompt_tokens.load(Ordering::Relaxed),
        }
    }
}

/// Where a model comes from: a local GGUF (path or known id), or an OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LlmSpec {
    Local {
        model: String,
    },
    Api {
        base_url: String,
        model: String,
        /// Context window to assume (servers do not say).
        context: usize,
    },
}

/// Every model opened in this process, with its usage so far (for run summaries).
pub fn usage_report() -> Vec<(String, Usage)> {
    let open = OPEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let mut out: Vec<(String, Usage)> = open.values().map(|m| (m.id(), m.usage())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

type Key = (LlmSpec, bool);
static OPEN: OnceLock<Mutex<HashMap<Key, Arc<Llm>>>> = OnceLock::new();

/// Opens a model once per process (per spec and cache setting) and shares it, so that every
/// stage and every query of a run use one runtime and one set of counters.
pub fn shared(spec: &LlmSpec, use_cache: bool) -> Result<Arc<Llm>, ModelError> {
    let mut open = OPEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = (spec.clone(), use_cache);
    if let Some(m) = open.get(&key) {
        return Ok(m.clone());
    }
    let backend: Box<dyn LlmBackend> = match spec {
        LlmSpec::Local { model } => Box::new(gguf::GgufModel::open(model)?),
        LlmSpec::Api {
            base_url,
            model,
            context,
        } => Box::new(openai::OpenAiBackend::new(openai::OpenAiConfig::from_env(
            base_url, model, *context,
        ))?),
    };
    let cache = if use_cache {
        Some(cache::PromptCache::open(&backend.id())?)
    } else {
        None
    };
    let llm = Arc::new(Llm::new(backend, cache));
    open.insert(key, llm.clone());
    Ok(llm)
}
