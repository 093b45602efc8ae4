//! Listwise reranking (RankGPT, Sun et al. 2023): the model sees a window of numbered passages
//! and writes their order ("[2] > [1] > …"); windows of `window` slide from the bottom of the
//! list to the top by `step` (default: half the window). `window=0` ranks the full list in one pass ("Sliding Windows Are
//! Not the End"), when it fits the context. `insertrank` is the same with each passage's
//! first-stage score shown next to it (InsertRank).
//!
//! Passages are cut to `passage_tokens`; when a window still does not fit the context they are
//! cut further (and the run's notes say so). Answers are repaired, never rejected: repeats and
//! unknown ids are dropped and missing passages keep their incoming order. A failed call
//! leaves its window as it was.

use ferret_models::llm::{LlmRequest, Message};

use super::order::{parse_permutation, sliding_windows};
use super::{LlmConfig, Session};
use crate::args::{Args, Build, StageSpec};
use crate::reranker::{order_scores, Passage, Reranker};
use crate::trace::Trace;
use crate::SearchError;

pub struct Listwise {
    config: LlmConfig,
    /// 0: the full list at once.
    window: usize,
    step: usize,
    show_scores: bool,
}

pub const LISTWISE: StageSpec = StageSpec {
    name: "listwise",
    help: "LLM listwise sliding window (RankGPT): window=20, step=10, window=0 for the full list in one pass; llm, api",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &["llm"],
    endpoint_args: &["api"],
    build: Build::Reranker(build_listwise),
};

pub fn build_listwise(args: &mut Args<'_>) -> Result<Box<dyn Reranker>, SearchError> {
    build(args, false)
}

pub const INSERTRANK: StageSpec = StageSpec {
    name: "insertrank",
    help: "listwise with the first-stage scores shown in the prompt (InsertRank): window=20, step=10; llm, api",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &["llm"],
    endpoint_args: &["api"],
    build: Build::Reranker(build_insertrank),
};

pub fn build_insertrank(args: &mut Args<'_>) -> Result<Box<dyn Reranker>, SearchError> {
    build(args, true)
}

fn build(args: &mut Args<'_>, show_scores: bool) -> Result<Box<dyn Reranker>, SearchError> {
    let window = args.count("window", 20, 0)?;
    if window == 1 {
        return Err(args.error_at(
            "window",
            format!("{}: a window of 1 cannot reorder anything", args.stage()),
        ));
    }
    // RankGPT's step is half the window (20 and 10).
    let step = args.count("step", (window / 2).max(1), 1)?;
    if window != 0 && step > window {
        return Err(args.error_at(
            "step",
            format!(
                "{}: step ({step}) must not exceed window ({window})",
                args.stage()
            ),
        ));
    }
    Ok(Box::new(Listwise {
        config: LlmConfig::from_args(args)?,
        window,
        step,
        show_scores,
    }))
}

impl Listwise {
    fn messages(&self, query: &str, passages: &[(String, f32)]) -> Vec<Message> {
        let n = passages.len();
        let mut listing = String::new();
        for (i, (text, score)) in passages.iter().enumerate() {
            if self.show_scores {
                listing += &format!("[{}] (retrieval score {score:.2}) {text}\n", i + 1);
            } else {
                listing += &format!("[{}] {text}\n", i + 1);
            }
        }
        let scores_hint = if self.show_scores {
            " Each passage shows the score a first-stage retriever (BM25) gave it; use it as a hint."
        } else {
            ""
        };
        vec![
            Message::system(
                "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query.",
            ),
            Message::user(format!(
                "I will provide you with {n} passages, each indicated by a numerical identifier [].{scores_hint} Rank the passages based on their relevance to the search query: {query}.\n\n{listing}\nSearch Query: {query}.\nRank the {n} passages above based on their relevance to the search query. All the passages should be included and listed using identifiers, in descending order of relevance. The output format should be [] > [], e.g., [2] > [1]. Only respond with the ranking results, do not say any word or explain."
            )),
        ]
    }

    /// Answer budget: "[12] > " is at most 6 tokens.
    fn answer_tokens(n: usize) -> usize {
        6 * n + 8
    }

    /// Orders one window; a window that cannot be fitted or answered stays as it is.
    fn rank_window(&self, s: &mut Session, query: &str, window: &[(String, f32)]) -> Vec<usize> {
        let identity: Vec<usize> = (0..window.len()).collect();
        let budget = self
            .config
            .llm
            .context_length()
            .saturating_sub(Self::answer_tokens(window.len()));
        let mut passages = window.to_vec();
        let mut limit = self.config.passage_tokens;
        let mut messages = self.messages(query, &passages);
        // Shrink the passages until the window fits (a few rounds; each cuts in proportion).
        for _ in 0..6 {
            let used = self.config.chat_tokens(&messages);
            if used <= budget {
                break;
            }
            limit = (limit * budget / used).saturating_sub(4).max(8);
            tracing::warn!(
                "a window of {} passages ({used} tokens) does not fit the context of {} tokens: passages cut to {limit} tokens",
                window.len(),
                self.config.llm.context_length()
            );
            for (p, (orig, _)) in passages.iter_mut().zip(window) {
                let (t, cut) = self.config.truncate(orig, limit);
                s.truncated += usize::from(cut);
                p.0 = t;
            }
            messages = self.messages(query, &passages);
        }
        let request = LlmRequest {
            messages,
            max_tokens: Self::answer_tokens(window.len()),
            choices: Vec::new(),
        };
        match s.ask(&request) {
            Some(answer) => {
                let (perm, repaired) = parse_permutation(&answer.text, window.len());
                s.repaired += usize::from(repaired);
                perm
            }
            None => identity,
        }
    }
}

impl Reranker for Listwise {
    fn describe(&self) -> String {
        let name = if self.show_scores {
            "insertrank"
        } else {
            "listwise"
        };
        format!(
            "{name}({}, window={}, step={})",
            self.config.describe(),
            self.window,
            self.step
        )
    }

    fn rerank(
        &self,
        query: &str,
        passages: &[Passage],
        trace: &mut Trace,
    ) -> Result<Vec<(usize, f32)>, SearchError> {
        let mut s = Session::new(&self.config, trace);
        let cut: Vec<(String, f32)> = passages
            .iter()
            .map(|p| (s.passage(&p.text), p.score))
            .collect();
        let window = if self.window == 0 {
            passages.len()
        } else {
            self.window
        };
        let items: Vec<usize> = (0..passages.len()).collect();
        let order = sliding_windows(&items, window, self.step, |w| {
            let texts: Vec<(String, f32)> = w.iter().map(|&i| cut[i].clone()).collect();
            Ok::<_, SearchError>(self.rank_window(&mut s, query, &texts))
        })?;
        s.finish(trace);
        Ok(order_scores(&order))
    }
}
