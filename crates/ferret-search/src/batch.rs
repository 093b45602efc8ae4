//! Running a prepared pipeline over a query set, in parallel over queries.

use ferret_eval::{Run, RunScores};
use ferret_index::Index;
use rayon::prelude::*;

use crate::{Hit, Query, SearchError, Stage, Trace};

/// Runs `stage` for every query on `threads` threads; rankings come back in query order.
/// `progress` is called with the number of queries done so far.
pub fn search_queries(
    stage: &dyn Stage,
    queries: &[Query],
    k: usize,
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Vec<Hit>>, SearchError> {
    let traced = search_queries_traced(stage, queries, k, threads, false, progress)?;
    Ok(traced.into_iter().map(|(hits, _)| hits).collect())
}

/// [`search_queries`], also returning each query's [`Trace`] (recording only when `explain`).
pub fn search_queries_traced(
    stage: &dyn Stage,
    queries: &[Query],
    k: usize,
    threads: usize,
    explain: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<(Vec<Hit>, Trace)>, SearchError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| SearchError::Invalid(format!("cannot start {threads} threads: {e}")))?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    if !explain {
        // Stages with a batched path take the queries a block at a time.
        const BLOCK: usize = 1024;
        let mut out = Vec::with_capacity(queries.len());
        for block in queries.chunks(BLOCK) {
            match pool.install(|| stage.run_batch(block, k)) {
                None => break,
                Some(result) => {
                    out.extend(result?.into_iter().map(|hits| (hits, Trace::off())));
                    progress(out.len());
                }
            }
        }
        if out.len() == queries.len() {
            return Ok(out);
        }
    }
    pool.install(|| {
        queries
            .par_iter()
            .map(|q| {
                let mut trace = if explain { Trace::on() } else { Trace::off() };
                let hits = trace.run(stage, q, None, k)?;
                progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                Ok((hits, trace))
            })
            .collect()
    })
}

/// Names the hits by external id: a TREC run, its scores written as `scores` says (see
/// [`RunScores`]: by default tied scores are separated so that evaluation sees the ranked order).
pub fn to_run(
    index: &Index,
    queries: &[Query],
    rankings: Vec<Vec<Hit>>,
    tag: &str,
    scores: RunScores,
) -> Run {
    let mut run = Run::new(tag);
    for (q, hits) in queries.iter().zip(rankings) {
        let ranking = hits
            .into_iter()
            .map(|h| (index.external_id(h.doc).to_string(), h.score as f64))
            .collect();
        run.set_ranking(&q.id, ranking);
    }
    run.apply(scores);
    run
}

/// [`search_queries`] then [`to_run`].
pub fn run_queries(
    stage: &dyn Stage,
    index: &Index,
    queries: &[Query],
    k: usize,
    threads: usize,
    tag: &str,
    scores: RunScores,
) -> Result<Run, SearchError> {
    let rankings = search_queries(stage, queries, k, threads, &|_| {})?;
    Ok(to_run(index, queries, rankings, tag, scores))
}
