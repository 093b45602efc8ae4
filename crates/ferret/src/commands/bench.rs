use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Index directory
    #[arg(long)]
    index: PathBuf,
    /// Queries: BEIR queries.jsonl or TSV
    #[arg(long)]
    queries: PathBuf,
    /// Only the queries judged in this qrels file
    #[arg(long)]
    qrels: Option<PathBuf>,
    #[arg(long, default_value = "bm25")]
    pipeline: String,
    /// Results per query
    #[arg(short, default_value_t = 1000)]
    k: usize,
    /// Threads over queries (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Passes over the query set; the best pass is reported
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// JSON output
    #[arg(long)]
    json: bool,
}

/// Times only the query loop (analysis, retrieval, top-k selection, returning internal document
/// numbers): no index opening, no run writing, matching what in-process peers such as bm25s
/// measure with `retrieve` (which returns document indices).
pub fn main(a: Args) -> anyhow::Result<()> {
    let qrels = a
        .qrels
        .as_deref()
        .map(ferret_eval::Qrels::read)
        .transpose()?;
    let index = super::open_index(&a.index)?;
    let stage = ferret_search::prepare(&a.pipeline, &index)?;
    let queries = super::load_queries(&a.queries, qrels.as_ref())?;
    let threads = a.threads.unwrap_or_else(super::default_threads);
    let mut best = f64::INFINITY;
    for _ in 0..a.repeat.max(1) {
        let start = Instant::now();
        let rankings =
            ferret_search::batch::search_queries(stage.as_ref(), &queries, a.k, threads, &|_| {})?;
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(rankings);
    }
    let qps = queries.len() as f64 / best;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"queries": queries.len(), "threads": threads, "k": a.k, "seconds": best, "queries_per_second": qps})
        );
    } else {
        println!(
            "{} queries, k={}, {} threads: {:.4}s, {:.0} queries/s",
            queries.len(),
            a.k,
            threads,
            best,
            qps
        );
    }
    Ok(())
}
