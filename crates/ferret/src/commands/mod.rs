pub mod bench;
pub mod bench_ann;
pub mod encode;
pub mod eval;
pub mod index;
pub mod models;
pub mod quickstart;
pub mod run;
pub mod search;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn open_index(dir: &std::path::Path) -> anyhow::Result<Arc<ferret_index::Index>> {
    Ok(Arc::new(ferret_index::Index::open(dir)?))
}

/// Reads a query set, keeping only the queries judged in `qrels` when given.
pub fn load_queries(
    queries: &std::path::Path,
    qrels: Option<&ferret_eval::Qrels>,
) -> anyhow::Result<Vec<ferret_search::Query>> {
    let qs = ferret_search::queries::read_queries_where(queries, &|id| {
        qrels.is_none_or(|q| q.get(id).is_some())
    })?;
    if qrels.is_some() {
        anyhow::ensure!(
            !qs.is_empty(),
            "{}: no query has judgements in the qrels file",
            queries.display()
        );
    }
    Ok(qs)
}

/// `$FERRET_HOME`, default `~/.cache/ferret`.
pub fn ferret_home() -> anyhow::Result<PathBuf> {
    if let Some(h) = std::env::var_os("FERRET_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME").context("neither FERRET_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("ferret"))
}
