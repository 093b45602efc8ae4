//! Pairwise ranking prompting (PRP, Qin et al. 2024): "which of passages A and B is more
//! relevant?", asked in both orders; the two answers agree → a preference, disagree → a tie.
//!
//! * `method=allpairs`: every pair, score = wins (+ ½ per tie); n(n−1) calls;
//! * `method=heapsort`: sorting-based top-`top` with a heap; about 2(n + top·log n) calls;
//! * `method=sliding`: `top` bubble passes from the bottom; about 2·top·n calls.
//!
//! A choice is read from the log-probabilities of "A" and "B" when the backend gives them, else
//! from the answer text; an unreadable answer or a failed call counts as no preference.

use std::cell::RefCell;
use std::collections::HashMap;

use ferret_models::llm::{LlmRequest, Message};

use super::order::{all_pairs, bubble_passes, heap_top_k, Preference};
use super::{LlmConfig, Session};
use crate::args::{Args, Build, StageSpec};
use crate::reranker::{by_score, order_scores, Passage, Reranker};
use crate::trace::Trace;
use crate::SearchError;

#[derive(Clone, Copy, PartialEq)]
enum Method {
    AllPairs,
    Heapsort,
    Sliding,
}

pub struct Prp {
    config: LlmConfig,
    method: Method,
    top: usize,
}

pub const SPEC: StageSpec = StageSpec {
    name: "prp",
    help: "LLM pairwise ranking prompting, both orders per pair: method=heapsort|allpairs|sliding, top=10; llm, api",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &["llm"],
    endpoint_args: &["api"],
    build: Build::Reranker(build),
};

pub fn build(args: &mut Args<'_>) -> Result<Box<dyn Reranker>, SearchError> {
    let method = match args.choice("method", &["heapsort", "allpairs", "sliding"])? {
        "allpairs" => Method::AllPairs,
        "sliding" => Method::Sliding,
        _ => Method::Heapsort,
    };
    let top = args.count("top", 10, 1)?;
    Ok(Box::new(Prp {
        config: LlmConfig::from_args(args)?,
        method,
        top,
    }))
}

/// Which passage the answer picks: Some(true) for A, Some(false) for B.
fn choice(answer: &ferret_models::llm::LlmResponse) -> Option<bool> {
    if let Some(lp) = &answer.choice_logprobs {
        if lp[0] != lp[1] {
            return Some(lp[0] > lp[1]);
        }
    }
    let t = answer.text.trim().trim_start_matches("Passage").trim();
    match t.chars().next() {
        Some('A') => Some(true),
        Some('B') => Some(false),
        _ => None,
    }
}

impl Prp {
    fn request(&self, query: &str, a: &str, b: &str) -> LlmRequest {
        LlmRequest {
            messages: vec![Message::user(format!(
                "Given a query \"{query}\", which of the following two passages is more relevant to the query?\n\nPassage A: \"{a}\"\n\nPassage B: \"{b}\"\n\nOutput Passage A or Passage B. Answer with A or B."
            ))],
            max_tokens: 1,
            choices: vec!["A".into(), "B".into()],
        }
    }
}

impl Reranker for Prp {
    fn describe(&self) -> String {
        let method = match self.method {
            Method::AllPairs => "allpairs",
            Method::Heapsort => "heapsort",
            Method::Sliding => "sliding",
        };
        format!(
            "prp({}, method={method}, top={})",
            self.config.describe(),
            self.top
        )
    }

    fn rerank(
        &self,
        query: &str,
        passages: &[Passage],
        trace: &mut Trace,
    ) -> Result<Vec<(usize, f32)>, SearchError> {
        let session = RefCell::new(Session::new(&self.config, trace));
        let texts: Vec<String> = passages
            .iter()
            .map(|p| session.borrow_mut().passage(&p.text))
            .collect();
        // Each unordered pair is asked (both orders) at most once per query.
        let memo: RefCell<HashMap<(usize, usize), Preference>> = RefCell::default();
        let prefer = |a: usize, b: usize| -> Preference {
            let (x, y) = (a.min(b), a.max(b));
            let p = *memo.borrow_mut().entry((x, y)).or_insert_with(|| {
                let mut s = session.borrow_mut();
                let first = s
                    .ask(&self.request(query, &texts[x], &texts[y]))
                    .as_ref()
                    .and_then(choice);
                let second = s
                    .ask(&self.request(query, &texts[y], &texts[x]))
                    .as_ref()
                    .and_then(choice)
                    .map(|picks_y_as_a| !picks_y_as_a);
                match (first, second) {
                    (Some(true), Some(true)) => 1.0,
                    (Some(false), Some(false)) => 0.0,
                    (Some(_), Some(_)) => 0.5,
                    _ => {
                        s.repaired += 1;
                        0.5
                    }
                }
            });
            if a == x {
                p
            } else {
                1.0 - p
            }
        };
        let items: Vec<usize> = (0..passages.len()).collect();
        let out = match self.method {
            Method::AllPairs => by_score(&all_pairs(passages.len(), prefer)),
            Method::Heapsort => order_scores(&heap_top_k(&items, self.top, prefer)),
            Method::Sliding => order_scores(&bubble_passes(&items, self.top, prefer)),
        };
        session.into_inner().finish(trace);
        Ok(out)
    }
}
