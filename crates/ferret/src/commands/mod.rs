pub mod analyze;
pub mod bench;
pub mod bench_ann;
pub mod bench_llm;
pub mod bench_tokens;
pub mod card;
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

/// What a query-set command needs, loaded once.
pub struct Prepared {
    pub index: Arc<ferret_index::Index>,
    pub stage: Box<dyn ferret_search::Stage>,
    pub queries: Vec<ferret_search::Query>,
    pub qrels: Option<ferret_eval::Qrels>,
    pub threads: usize,
}

impl QuerySetArgs {
    pub fn prepare(&self) -> anyhow::Result<Prepared> {
        let qrels = self
            .qrels
            .as_deref()
            .map(ferret_eval::Qrels::read)
            .transpose()?;
        let index = open_index(&self.index)?;
        let stage = ferret_search::prepare(&self.pipeline, &index)?;
        let mut queries = load_queries(&self.queries, qrels.as_ref())?;
        if let Some(path) = &self.sparse_queries {
            let mut vectors = ferret_search::queries::read_sparse_vectors(path)?;
            for q in &mut queries {
                q.sparse = Some(vectors.remove(&q.id).with_context(|| {
                    format!("{}: no vector for query '{}'", path.display(), q.id)
                })?);
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
