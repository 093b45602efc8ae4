//! The stage abstraction every retriever, feedback step, fusion and reranker implements.

use ferret_index::DocNo;

use crate::trace::Trace;
use crate::{Query, SearchError};

/// One scored document. A ranking is a `Vec<Hit>`, best first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub doc: DocNo,
    pub score: f32,
}

/// A stage prepared against an index: run it once per query.
pub trait Stage: Send + Sync {
    /// The stage's text form, for run cards and messages.
    fn describe(&self) -> String;

    /// Returns at most `k` hits for `query`, best first. `candidates` is the previous stage's
    /// ranking when this stage follows `>>`; a retriever then scores only those documents.
    /// Stages that run other stages do so through `trace`, which records them for `--explain`.
    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError>;

    /// Runs many queries at once when the stage has a faster batched path (exact dense search:
    /// one GEMM per block of vectors for a whole batch of queries); `None` when it has not, and
    /// the queries are run one by one. Only for stages that start a pipeline (no candidates).
    fn run_batch(
        &self,
        _queries: &[Query],
        _k: usize,
    ) -> Option<Result<Vec<Vec<Hit>>, SearchError>> {
        None
    }

    /// For a feedback stage (`rm3`, `rocchio`): the positions in an incoming ranking of
    /// `ranking_len` documents whose contents it reads. A sharded search fetches those from the
    /// shards that hold them and hands them over in [`Query::feedback_contents`].
    fn feedback_positions(&self, _ranking_len: usize) -> Option<Vec<usize>> {
        None
    }

    /// How this stage combines its inputs' scores, for explain output (fusion stages).
    fn formula(&self) -> Option<String> {
        None
    }
}

/// Reorders `candidates` by `score` (best first, ties keeping the incoming order) and keeps
/// the top `k`: what a stage that follows `>>` does with the ranking it is given.
pub fn rescore(
    candidates: &[Hit],
    k: usize,
    score: impl Fn(ferret_index::DocNo) -> f32,
) -> Vec<Hit> {
    let mut out: Vec<Hit> = candidates
        .iter()
        .map(|c| Hit {
            doc: c.doc,
            score: score(c.doc),
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(k);
    out
}

/// A ranking computed elsewhere (merged from the shards of a collection), standing for an
/// input of a fusion stage.
pub struct Given(pub Vec<Hit>);

impl Stage for Given {
    fn describe(&self) -> String {
        "given".to_string()
    }

    fn run(
        &self,
        _: &Query,
        _: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        Ok(self.0.iter().take(k).copied().collect())
    }
}

/// `input % k`: caps the depth of its input.
pub struct Cutoff {
    pub input: Box<dyn Stage>,
    pub k: usize,
}

impl Stage for Cutoff {
    fn describe(&self) -> String {
        format!("{} % {}", self.input.describe(), self.k)
    }

    fn formula(&self) -> Option<String> {
        self.input.formula()
    }

    fn run_batch(&self, queries: &[Query], k: usize) -> Option<Result<Vec<Vec<Hit>>, SearchError>> {
        self.input.run_batch(queries, k.min(self.k))
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        self.input.run(query, candidates, k.min(self.k), trace)
    }
}

/// How deep a stage that feeds another one (the left side of `>>`, an input of a fusion)
/// retrieves unless a `% k` cuts it off: Anserini's and PyTerrier's usual 1000.
pub const FEED_DEPTH: usize = 1000;

/// `first >> then`: `then` consumes `first`'s ranking, retrieved to depth [`FEED_DEPTH`] (or
/// the final depth, if larger) unless `first` ends in a cut-off.
pub struct Then {
    pub first: Box<dyn Stage>,
    pub then: Box<dyn Stage>,
}

impl Stage for Then {
    fn describe(&self) -> String {
        format!("{} >> {}", self.first.describe(), self.then.describe())
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let first = trace.run(self.first.as_ref(), query, candidates, FEED_DEPTH.max(k))?;
        trace.run(self.then.as_ref(), query, Some(&first), k)
    }
}
