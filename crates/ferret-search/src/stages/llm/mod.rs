//! LLM rerankers. Each strategy is a [`Reranker`](crate::reranker::Reranker):
//!
//! * [`pointwise`] — `pointwise(llm=…, mode=yesno|fine, scale=4)`: P("Yes") from the first
//!   token's log-probabilities, or ProRank's fine-grained 0…scale expected grade;
//! * [`pairwise`] — `prp(llm=…, method=allpairs|heapsort|sliding, top=10)`: PRP with both
//!   passage orders per comparison;
//! * [`listwise`] — `listwise(llm=…, window=20, step=10)` (RankGPT's sliding window; `window=0`
//!   for one pass over the full list) and `insertrank(…)` (the same with the first-stage scores
//!   shown in the prompt).
//!
//! Common arguments: `llm` (a GGUF path or model id, or the model name on a server), `api`
//! (an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1), `context` (the server's
//! context window, default 4096), `passage_tokens` (passages are truncated to this, default
//! 128), `cache=1` (answers cached by prompt hash). The ordering logic is in [`order`].

pub mod listwise;
pub mod order;
pub mod pairwise;
pub mod pointwise;

use std::sync::Arc;

use ferret_models::llm::{Llm, LlmRequest, LlmResponse, LlmSpec, Message, Usage};

use crate::args::Args;
use crate::trace::Trace;
use crate::SearchError;

/// What every LLM strategy holds: the shared model and the passage budget.
pub struct LlmConfig {
    pub llm: Arc<Llm>,
    pub name: String,
    pub passage_tokens: usize,
}

impl LlmConfig {
    pub fn from_args(args: &mut Args<'_>) -> Result<Self, SearchError> {
        let stage = args.stage().to_string();
        let name = args.text("llm")?.ok_or_else(|| {
            args.error_at(
                "llm",
                format!("{stage} needs llm=<GGUF file or model id, e.g. smollm2>"),
            )
        })?;
        let api = args.text("api")?;
        let context = args.count("context", 4096, 64)?;
        let passage_tokens = args.count("passage_tokens", 128, 8)?;
        let cache = args.count("cache", 1, 0)? != 0;
        let spec = match api {
            Some(base_url) => LlmSpec::Api {
                base_url,
                model: name.clone(),
                context,
            },
            None => LlmSpec::Local {
                model: name.clone(),
            },
        };
        let at = args.position();
        let llm = ferret_models::llm::shared(&spec, cache)
            .map_err(|e| SearchError::at(at, format!("{stage}: {e}")))?;
        // Two passages (PRP) and the instructions must fit the context.
        let fits = llm.context_length().saturating_sub(256) / 2;
        if passage_tokens > fits {
            tracing::warn!(
                "{stage}: passages cut to {fits} tokens (not {passage_tokens}) to fit the context of {} tokens",
                llm.context_length()
            );
        }
        let passage_tokens = passage_tokens.min(fits.max(8));
        Ok(LlmConfig {
            llm,
            name,
            passage_tokens,
        })
    }

    /// The arguments as written back in `describe`.
    pub fn describe(&self) -> String {
        format!(
            "llm={:?}, passage_tokens={}",
            self.name, self.passage_tokens
        )
    }

    /// `text` cut to at most `max_tokens` tokens at a word boundary; whether it was cut.
    pub fn truncate(&self, text: &str, max_tokens: usize) -> (String, bool) {
        if self.llm.count_tokens(text) <= max_tokens {
            return (text.to_string(), false);
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        // The longest word prefix that fits (binary search over the word count).
        let (mut lo, mut hi) = (0, words.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.llm.count_tokens(&words[..mid].join(" ")) <= max_tokens {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        (words[..lo].join(" "), true)
    }

    /// Tokens a chat takes (content plus a few per message for the template's markers).
    pub fn chat_tokens(&self, messages: &[Message]) -> usize {
        messages
            .iter()
            .map(|m| self.llm.count_tokens(&m.content) + 8)
            .sum::<usize>()
            + 8
    }
}

/// One query's conversation with the model: counts its usage, and turns a failed call (a
/// server that times out or errs after its retries, a prompt that does not fit) into `None`
/// and a note, so one bad answer never stops a run. Once the query is cancelled every call
/// answers `None` at once (the stage then ends quickly and [`Trace::run`] reports the
/// cancellation, not the stage's partial order).
pub struct Session<'a> {
    config: &'a LlmConfig,
    cancel: ferret_models::Cancel,
    pub usage: Usage,
    pub failures: usize,
    pub repaired: usize,
    pub truncated: usize,
    last_error: Option<String>,
}

impl<'a> Session<'a> {
    pub fn new(config: &'a LlmConfig, trace: &Trace) -> Self {
        Session {
            config,
            cancel: trace.cancel().clone(),
            usage: Usage::default(),
            failures: 0,
            repaired: 0,
            truncated: 0,
            last_error: None,
        }
    }

    pub fn ask(&mut self, request: &LlmRequest) -> Option<LlmResponse> {
        if self.cancel.is_cancelled() {
            return None;
        }
        match self.config.llm.complete(request, &self.cancel) {
            Ok((r, hit)) => {
                self.usage.calls += u64::from(!hit);
                self.usage.cache_hits += u64::from(hit);
                self.usage.prompt_tokens += r.prompt_tokens;
                self.usage.completion_tokens += r.completion_tokens;
                self.usage.reused_prompt_tokens += r.reused_prompt_tokens;
                Some(r)
            }
            Err(ferret_models::ModelError::Cancelled) => None,
            Err(e) => {
                self.failures += 1;
                tracing::warn!("LLM call failed: {e}");
                self.last_error = Some(e.to_string());
                None
            }
        }
    }

    /// A passage cut to the budget (counted when cut).
    pub fn passage(&mut self, text: &str) -> String {
        let (t, cut) = self.config.truncate(text, self.config.passage_tokens);
        self.truncated += usize::from(cut);
        t
    }

    /// Records the query's usage for `--explain` and for the run's totals.
    pub fn finish(self, trace: &mut Trace) {
        let u = self.usage;
        let (failures, repaired, truncated, last) = (
            self.failures,
            self.repaired,
            self.truncated,
            self.last_error,
        );
        trace.note(|| {
            let mut s = format!(
                "LLM calls {} (+{} cached), tokens {} in / {} out",
                u.calls, u.cache_hits, u.prompt_tokens, u.completion_tokens
            );
            if u.reused_prompt_tokens > 0 {
                s += &format!(
                    "; {} prompt tokens reused from earlier prompts",
                    u.reused_prompt_tokens
                );
            }
            if truncated > 0 {
                s += &format!("; {truncated} passages truncated");
            }
            if repaired > 0 {
                s += &format!("; {repaired} answers repaired");
            }
            if failures > 0 {
                s += &format!(
                    "; {failures} calls failed (kept the incoming order there): {}",
                    last.unwrap_or_default()
                );
            }
            s
        });
    }
}

/// Softmax over log-probabilities (for choices such as Yes/No or 0…k).
pub fn normalise(logprobs: &[f32]) -> Vec<f32> {
    let max = logprobs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logprobs.iter().map(|l| (l - max).exp()).collect();
    let z: f32 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}
