//! Any OpenAI-compatible server (`POST {base}/chat/completions`): vLLM, llama.cpp's server,
//! llama-cpp-python, Ollama, OpenAI itself. Greedy decoding (temperature 0); choice
//! log-probabilities from `top_logprobs` of the first generated token when the server gives
//! them. Timeouts, retries with exponential backoff on 5xx/429/connection failures, and a limit
//! on requests in flight.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::{LlmBackend, LlmRequest, LlmResponse};
use crate::cancel::Cancel;
use crate::ModelError;

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. `http://127.0.0.1:8000/v1`
    pub base_url: String,
    pub model: String,
    /// From `FERRET_LLM_API_KEY`, else `OPENAI_API_KEY`.
    pub api_key: Option<String>,
    /// Per request (`FERRET_LLM_TIMEOUT`, seconds; default 120).
    pub timeout: Duration,
    /// Retries after the first attempt (`FERRET_LLM_RETRIES`; default 3).
    pub retries: u32,
    /// First backoff; doubled each retry.
    pub backoff: Duration,
    /// Requests in flight at most (`FERRET_LLM_CONCURRENCY`; default 4).
    pub concurrency: usize,
    pub context: usize,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl OpenAiConfig {
    pub fn from_env(base_url: &str, model: &str, context: usize) -> Self {
        OpenAiConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key: std::env::var("FERRET_LLM_API_KEY")
                .or_else(|_| std::env::var("OPENAI_API_KEY"))
                .ok(),
            timeout: Duration::from_secs_f64(env_number("FERRET_LLM_TIMEOUT", 120.0)),
            retries: env_number("FERRET_LLM_RETRIES", 3),
            backoff: Duration::from_millis(500),
            concurrency: env_number("FERRET_LLM_CONCURRENCY", 4usize).max(1),
            context,
        }
    }
}

pub struct OpenAiBackend {
    config: OpenAiConfig,
    agent: ureq::Agent,
    in_flight: Mutex<usize>,
    freed: Condvar,
}

/// Why one attempt failed, and whether another attempt may help.
struct Failure {
    message: String,
    retry: bool,
}

impl OpenAiBackend {
    pub fn new(config: OpenAiConfig) -> Result<Self, ModelError> {
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(ModelError::Fetch {
                what: config.base_url.clone(),
                message: "the API base URL must start with http:// or https://".into(),
            });
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(OpenAiBackend {
            config,
            agent,
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    fn acquire(&self) {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= self.config.concurrency {
            n = self.freed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += 1;
    }

    fn release(&self) {
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.freed.notify_one();
    }

    fn attempt(&self, body: &Value, request: &LlmRequest) -> Result<LlmResponse, Failure> {
        let url = format!("{}/chat/completions", self.config.base_url);
        let mut call = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.config.api_key {
            call = call.header("Authorization", &format!("Bearer {key}"));
        }
        let response = call.send(body.to_string()).map_err(|e| Failure {
            message: format!("{url}: {e}"),
            retry: true,
        })?;
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().map_err(|e| Failure {
            message: format!("{url}: reading the answer: {e}"),
            retry: true,
        })?;
        if status != 200 {
            let snippet: String = text.chars().take(200).collect();
            return Err(Failure {
                message: format!("{url}: HTTP {status}: {snippet}"),
                retry: status >= 500 || status == 429 || status == 408,
            });
        }
        parse_answer(&text, request).map_err(|m| Failure {
            message: format!("{url}: {m}"),
            retry: false,
        })
    }
}

/// Reads a chat-completions answer. Choice log-probabilities: each choice's logprob among the
/// first token's `top_logprobs` (matched after trimming spaces); a choice not listed gets the
/// lowest listed logprob minus ln 2 — below everything the server reported.
fn parse_answer(text: &str, request: &LlmRequest) -> Result<LlmResponse, String> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| format!("the answer is not JSON ({e})"))?;
    let choice = v
        .pointer("/choices/0")
        .ok_or("the answer has no choices[0]")?;
    let content = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or("the answer has no choices[0].message.content")?
        .to_string();
    let usage = |k: &str| v.pointer(&format!("/usage/{k}")).and_then(Value::as_u64);
    let choice_logprobs = if request.choices.is_empty() {
        None
    } else {
        choice
            .pointer("/logprobs/content/0/top_logprobs")
            .and_then(Value::as_array)
            .filter(|top| !top.is_empty())
            .map(|top| {
                let listed: Vec<(String, f32)> = top
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t.get("token")?.as_str()?.trim().to_string(),
                            t.get("logprob")?.as_f64()? as f32,
                        ))
                    })
                    .collect();
                let floor =
                    listed.iter().map(|(_, l)| *l).fold(0.0f32, f32::min) - std::f32::consts::LN_2;
                request
                    .choices
                    .iter()
                    .map(|c| {
                        listed
                            .iter()
                            .filter(|(t, _)| t == c.trim())
                            .map(|(_, l)| *l)
                            .fold(None, |m: Option<f32>, l| Some(m.map_or(l, |m| m.max(l))))
                            .unwrap_or(floor)
                    })
                    .collect()
            })
    };
    Ok(LlmResponse {
        text: content,
        choice_logprobs,
        prompt_tokens: usage("prompt_tokens").unwrap_or(0),
        completion_tokens: usage("completion_tokens").unwrap_or(0),
        reused_prompt_tokens: usage("prompt_tokens_details/cached_tokens").unwrap_or(0),
    })
}

impl LlmBackend for OpenAiBackend {
    fn id(&self) -> String {
        format!("openai:{}@{}", self.config.model, self.config.base_url)
    }

    fn context_length(&self) -> usize {
        self.config.context
    }

    /// Servers do not tokenise for us: about one token per 3 characters bounds English BPE
    /// from above, so prompts built to fit do fit.
    fn count_tokens(&self, text: &str) -> usize {
        text.len().div_ceil(3)
    }

    /// `cancel` is checked before each attempt; an attempt in flight runs to its own timeout.
    fn complete(&self, request: &LlmRequest, cancel: &Cancel) -> Result<LlmResponse, ModelError> {
        let mut body = json!({
            "model": self.config.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens.max(1),
            "temperature": 0.0,
        });
        if !request.choices.is_empty() {
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(20);
        }
        let mut delay = self.config.backoff;
        let mut attempt = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            self.acquire();
            let result = self.attempt(&body, request);
            self.release();
            match result {
                Ok(r) => return Ok(r),
                Err(f) if f.retry && attempt < self.config.retries => {
                    tracing::warn!("{} (retrying in {:?})", f.message, delay);
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                }
                Err(f) => {
                    return Err(ModelError::Fetch {
                        what: format!("{} from {}", self.config.model, self.config.base_url),
                        message: format!("{} (after {} attempts)", f.message, attempt + 1),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Message;
    use super::*;

    fn request(choices: &[&str]) -> LlmRequest {
        LlmRequest {
            messages: vec![Message::user("q")],
            max_tokens: 1,
            choices: choices.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn reads_content_usage_and_choice_logprobs() {
        let answer = r#"{"choices":[{"message":{"role":"assistant","content":"Yes"},
            "logprobs":{"content":[{"token":"Yes","logprob":-0.2,
              "top_logprobs":[{"token":"Yes","logprob":-0.2},{"token":" No","logprob":-1.9},{"token":"Maybe","logprob":-4.0}]}]}}],
            "usage":{"prompt_tokens":31,"completion_tokens":1}}"#;
        let r = parse_answer(answer, &request(&["Yes", "No", "Perhaps"])).unwrap();
        assert_eq!(r.text, "Yes");
        assert_eq!((r.prompt_tokens, r.completion_tokens), (31, 1));
        let lp = r.choice_logprobs.unwrap();
        assert_eq!(&lp[..2], &[-0.2, -1.9]);
        assert!(
            lp[2] < -4.0,
            "an unlisted choice ranks below every listed token"
        );
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for bad in [
            "",
            "<html>",
            "{}",
            r#"{"choices":[]}"#,
            r#"{"choices":[{"message":{}}]}"#,
        ] {
            assert!(parse_answer(bad, &request(&[])).is_err(), "{bad}");
        }
        // No logprobs offered: the text is there, the choices' logprobs are not.
        let r = parse_answer(
            r#"{"choices":[{"message":{"content":"No"}}]}"#,
            &request(&["Yes", "No"]),
        )
        .unwrap();
        assert_eq!(r.choice_logprobs, None);
    }
}
