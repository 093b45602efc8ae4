//! Running a prepared pipeline over a query set, in parallel over queries.

use ferret_eval::Run;
use ferret_index::Index;
use rayon::prelude::*;

use crate::{Query, SearchError, Stage};

/// Runs `stage` for every query (on `threads` threads) and collects a TREC run of depth `k`.
/// `progress` is called with the number of queries done so far.
pub fn run_queries(
    stage: &dyn Stage,
    index: &Index,
    queries: &[Query],
    k: usize,
    threads: usize,
    tag: &str,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Run, SearchError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| SearchError::Invalid(format!("cannot start {threads} threads: {e}")))?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let rankings: Vec<Vec<(String, f64)>> = pool.install(|| {
        queries
            .par_iter()
            .map(|q| {
                let hits = stage.run(q, None, k)?;
                progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                Ok(hits
                    .into_iter()
                    .map(|h| (index.external_id(h.doc).to_string(), h.score as f64))
                    .collect())
            })
            .collect::<Result<_, SearchError>>()
    })?;
    let mut run = Run::new(tag);
    for (q, ranking) in queries.iter().zip(rankings) {
        run.set_ranking(&q.id, ranking);
    }
    Ok(run)
}
