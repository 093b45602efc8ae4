//! Pointwise LLM relevance: one call per passage.
//!
//! * `mode=yesno`: "Does the passage answer the query?", score = P(Yes) / (P(Yes) + P(No)) from
//!   the first answer token's log-probabilities (Liang et al.'s relevance generation, the
//!   pointwise baseline of the PRP and ProRank papers);
//! * `mode=fine`: ProRank's fine-grained variant — a grade 0…`scale`, score = the expected grade
//!   under the model's distribution over the grade tokens.
//!
//! Where a backend gives no log-probabilities the answer text is read instead ("Yes…" → 1,
//! "No…" → 0, a digit → that grade), and a call that fails scores as undecided (0.5 / the
//! middle grade), keeping the incoming order among such passages.

use ferret_models::llm::{LlmRequest, Message};

use super::{normalise, LlmConfig, Session};
use crate::args::{Args, Build, StageSpec};
use crate::reranker::{by_score, Passage, Reranker};
use crate::trace::Trace;
use crate::SearchError;

enum Mode {
    YesNo,
    Fine { scale: usize },
}

pub struct Pointwise {
    config: LlmConfig,
    mode: Mode,
}

pub const SPEC: StageSpec = StageSpec {
    name: "pointwise",
    help: "LLM pointwise relevance: mode=yesno (P(Yes)) or fine (expected grade 0..scale, ProRank), scale=4; llm=<GGUF or id>, api=<OpenAI-compatible URL>",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &["llm"],
    endpoint_args: &["api"],
    build: Build::Reranker(build),
};

pub fn build(args: &mut Args<'_>) -> Result<Box<dyn Reranker>, SearchError> {
    let mode = match args.choice("mode", &["yesno", "fine"])? {
        "yesno" => {
            args.count("scale", 4, 1)?;
            Mode::YesNo
        }
        _ => Mode::Fine {
            scale: args.count("scale", 4, 1)?.min(9),
        },
    };
    Ok(Box::new(Pointwise {
        config: LlmConfig::from_args(args)?,
        mode,
    }))
}

impl Pointwise {
    fn request(&self, query: &str, passage: &str) -> LlmRequest {
        match self.mode {
            Mode::YesNo => LlmRequest {
                messages: vec![
                    Message::system("You are a search relevance judge. Answer only Yes or No."),
                    Message::user(format!(
                        "Passage: {passage}\nQuery: {query}\nDoes the passage answer the query? Answer Yes or No."
                    )),
                ],
                max_tokens: 1,
                choices: vec!["Yes".into(), "No".into()],
            },
            Mode::Fine { scale } => LlmRequest {
                messages: vec![
                    Message::system(
                        "You are a search relevance judge. Answer only with a single number.",
                    ),
                    Message::user(format!(
                        "Passage: {passage}\nQuery: {query}\nFrom 0 (not relevant) to {scale} (perfectly relevant), how relevant is the passage to the query? Answer with one number."
                    )),
                ],
                max_tokens: 1,
                choices: (0..=scale).map(|g| g.to_string()).collect(),
            },
        }
    }

    /// The score of one answer (`None` for a failed call).
    fn score(&self, answer: Option<ferret_models::llm::LlmResponse>, s: &mut Session) -> f32 {
        let undecided = match self.mode {
            Mode::YesNo => 0.5,
            Mode::Fine { scale } => scale as f32 / 2.0,
        };
        let Some(answer) = answer else {
            return undecided;
        };
        if let Some(lp) = &answer.choice_logprobs {
            let p = normalise(lp);
            return match self.mode {
                Mode::YesNo => p[0],
                Mode::Fine { .. } => p.iter().enumerate().map(|(g, p)| g as f32 * p).sum(),
            };
        }
        let text = answer.text.trim().to_ascii_lowercase();
        let read = match self.mode {
            Mode::YesNo if text.starts_with("yes") => Some(1.0),
            Mode::YesNo if text.starts_with("no") => Some(0.0),
            Mode::YesNo => None,
            Mode::Fine { scale } => text
                .chars()
                .find_map(|c| c.to_digit(10))
                .map(|d| (d as usize).min(scale) as f32),
        };
        read.unwrap_or_else(|| {
            s.repaired += 1;
            undecided
        })
    }
}

impl Reranker for Pointwise {
    fn describe(&self) -> String {
        match self.mode {
            Mode::YesNo => format!("pointwise({}, mode=yesno)", self.config.describe()),
            Mode::Fine { scale } => format!(
                "pointwise({}, mode=fine, scale={scale})",
                self.config.describe()
            ),
        }
    }

    fn rerank(
        &self,
        query: &str,
        passages: &[Passage],
        trace: &mut Trace,
    ) -> Result<Vec<(usize, f32)>, SearchError> {
        let mut s = Session::new(&self.config, trace);
        let mut scores = Vec::with_capacity(passages.len());
        for p in passages {
            let text = s.passage(&p.text);
            let answer = s.ask(&self.request(query, &text));
            scores.push(self.score(answer, &mut s));
        }
        s.finish(trace);
        Ok(by_score(&scores))
    }
}
