use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    set: super::QuerySetArgs,
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
    let super::Prepared {
        stage,
        queries,
        threads,
        ..
    } = a.set.prepare()?;
    let k = a.set.k;
    let mut best = f64::INFINITY;
    for _ in 0..a.repeat.max(1) {
        let start = Instant::now();
        let rankings =
            ferret_search::batch::search_queries(stage.as_ref(), &queries, k, threads, &|_| {})?;
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(rankings);
    }
    let qps = queries.len() as f64 / best;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"queries": queries.len(), "threads": threads, "k": k, "seconds": best, "queries_per_second": qps})
        );
    } else {
        println!(
            "{} queries, k={}, {} threads: {:.4}s, {:.0} queries/s",
            queries.len(),
            k,
            threads,
            best,
            qps
        );
    }
    Ok(())
}
