pub mod analyze;
pub mod bench;
pub mod bench_ann;
pub mod bench_llm;
pub mod bench_tokens;
pub mod check;
pub mod classify;
pub mod compare;
pub mod encode;
pub mod eval;
pub mod index;
pub mod info;
pub mod models;
pub mod quickstart;
pub mod reproduce;
pub mod rerank;
pub mod run;
pub mod score;
pub mod search;
pub mod serve;
pub mod tune;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

/// The arguments shared by the commands that run a pipeline over a query set.
#[derive(clap::Args)]
pub struct QuerySetArgs {
    /// Index directory
    #[arg(long)]
    pub index: PathBuf,
    /// Queries: BEIR queries.jsonl or TSV (id<TAB>text)
    #[arg(long)]
    pub queries: PathBuf,
    /// Only the queries judged in this qrels file (and, for `run`, print their evaluation)
    #[arg(long)]
    pub qrels: Option<PathBuf>,
    /// Ranking pipeline, e.g. "bm25(k1=0.9,b=0.4) % 1000", or its JSON form ({"op": ...})
    #[arg(long, default_value = "bm25")]
    pub pipeline: String,
    /// Results per query
    #[arg(short, default_value_t = 1000)]
    pub k: usize,
    /// Threads over queries (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Precomputed sparse query vectors (JSON lines {"id": …, "vector": {term: weight}}, e.g.
    /// SPLADE or uniCOIL queries encoded by another tool): sparse stages use them instead of
    /// encoding the query text; every query needs one
    #[arg(long, value_name = "FILE")]
    pub sparse_queries: Option<PathBuf>,
}

impl QuerySetArgs {
    pub fn query_set(&self) -> ferret_search::experiment::QuerySet {
        ferret_search::experiment::QuerySet {
            index: self.index.clone(),
            queries: self.queries.clone(),
            qrels: self.qrels.clone(),
            pipeline: self.pipeline.clone(),
            k: self.k,
            threads: self.threads,
            sparse_queries: self.sparse_queries.clone(),
        }
    }
}

pub use ferret_search::experiment::{default_threads, load_queries};

pub fn open_index(dir: &std::path::Path) -> anyhow::Result<Arc<ferret_index::Index>> {
    Ok(Arc::new(ferret_index::Index::open(dir)?))
}

/// `$FERRET_HOME`, default `~/.cache/ferret`.
pub fn ferret_home() -> anyhow::Result<PathBuf> {
    if let Some(h) = std::env::var_os("FERRET_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME").context("neither FERRET_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("ferret"))
}
