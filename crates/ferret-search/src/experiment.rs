//! A query set run through a pipeline and evaluated: what `ferret run`, `ferret reproduce` and
//! Python's `Pipeline.run` share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ferret_eval::{evaluate, EvalOptions, Measure, Qrels, Run, RunScores};
use ferret_index::Index;

use crate::{batch, queries, Hit, Query, SearchError, Stage, Trace};

/// The inputs of a run: an index, a query file (only the judged queries when qrels are given),
/// a pipeline in text or JSON form, the depth and the threads.
#[derive(Debug, Clone)]
pub struct QuerySet {
    pub index: PathBuf,
    pub queries: PathBuf,
    pub qrels: Option<PathBuf>,
    pub pipeline: String,
    pub k: usize,
    /// Threads over queries (None: all cores).
    pub threads: Option<usize>,
    /// Precomputed sparse query vectors that sparse stages use instead of encoding the text.
    pub sparse_queries: Option<PathBuf>,
}

/// What a query set needs, loaded once.
pub struct Prepared {
    pub index: Arc<Index>,
    pub stage: Box<dyn Stage>,
    pub queries: Vec<Query>,
    pub qrels: Option<Qrels>,
    pub threads: usize,
}

impl QuerySet {
    pub fn prepare(&self) -> Result<Prepared, SearchError> {
        let qrels = self.qrels.as_deref().map(Qrels::read).transpose()?;
        let index = Arc::new(Index::open(&self.index)?);
        let stage = crate::prepare(&self.pipeline, &index)?;
        let mut queries = load_queries(&self.queries, qrels.as_ref())?;
        if let Some(path) = &self.sparse_queries {
            let mut vectors = queries::read_sparse_vectors(path)?;
            for q in &mut queries {
                let vector = vectors.remove(&q.id).ok_or_else(|| {
                    SearchError::Invalid(format!(
                        "{}: no vector for query '{}'",
                        path.display(),
                        q.id
                    ))
                })?;
                q.sparse = Some(vector);
            }
        }
        Ok(Prepared {
            index,
            stage,
            queries,
            qrels,
            threads: self.threads.unwrap_or_else(default_threads),
        })
    }
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Reads a query set, keeping only the queries judged in `qrels` when given (and refusing a
/// set none of whose queries is judged: the qrels are of another collection).
pub fn load_queries(
    path: &std::path::Path,
    qrels: Option<&Qrels>,
) -> Result<Vec<Query>, SearchError> {
    let qs = queries::read_queries_where(path, &|id| qrels.is_none_or(|q| q.get(id).is_some()))?;
    if qrels.is_some() && qs.is_empty() {
        return Err(SearchError::Invalid(format!(
            "{}: no query has judgements in the qrels file",
            path.display()
        )));
    }
    Ok(qs)
}

/// A query set run through its pipeline, evaluated when qrels were given.
pub struct Outcome {
    pub prepared: Prepared,
    pub queries: Vec<Query>,
    pub run: Run,
    pub traces: Vec<(Vec<Hit>, Trace)>,
    pub seconds: f64,
    /// The mean of each measure over the judged queries (empty without qrels).
    pub metrics: Vec<(String, f64)>,
}

/// Runs every query of `set`: [`QuerySet::prepare`] then [`Prepared::run`].
pub fn execute(
    set: &QuerySet,
    tag: &str,
    scores: RunScores,
    measures: &[Measure],
    explain: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Outcome, SearchError> {
    set.prepare()?
        .run(set.k, tag, scores, measures, explain, progress)
}

impl Prepared {
    /// Runs every query to depth `k` (recording explain traces when `explain`), names the hits,
    /// writes scores as `scores` says and evaluates `measures` when there are qrels.
    /// `progress` gets the number of queries done so far.
    pub fn run(
        mut self,
        k: usize,
        tag: &str,
        scores: RunScores,
        measures: &[Measure],
        explain: bool,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Outcome, SearchError> {
        let queries = std::mem::take(&mut self.queries);
        let start = Instant::now();
        let traces = batch::search_queries_traced(
            self.stage.as_ref(),
            &queries,
            k,
            self.threads,
            explain,
            progress,
        )?;
        let seconds = start.elapsed().as_secs_f64();
        let rankings = traces.iter().map(|(hits, _)| hits.clone()).collect();
        let run = batch::to_run(&self.index, &queries, rankings, tag, scores);
        let metrics = match &self.qrels {
            Some(qrels) => {
                let e = evaluate(qrels, &run, measures, EvalOptions::default());
                e.measures
                    .iter()
                    .map(|m| m.to_string())
                    .zip(e.mean.iter().copied())
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(Outcome {
            prepared: self,
            queries,
            run,
            traces,
            seconds,
            metrics,
        })
    }
}
