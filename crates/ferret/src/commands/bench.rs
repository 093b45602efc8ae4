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
    let ferret_search::experiment::Prepared {
        stage,
        queries,
        threads,
        ..
    } = a.set.query_set().prepare()?;
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
    // Latency: each query alone, one after the other, on this thread.
    let mut millis = Vec::with_capacity(queries.len());
    for q in &queries {
        let start = Instant::now();
        let hits = stage.run(q, None, k, &mut ferret_search::Trace::off())?;
        millis.push(start.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(hits);
    }
    millis.sort_by(f64::total_cmp);
    let mean = millis.iter().sum::<f64>() / millis.len().max(1) as f64;
    let quantile = |q: f64| {
        millis
            .get(((millis.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    let (p50, p99) = (quantile(0.5), quantile(0.99));
    if a.json {
        println!(
            "{}",
            serde_json::json!({"queries": queries.len(), "threads": threads, "k": k, "seconds": best, "queries_per_second": qps, "latency_mean_ms": mean, "latency_p50_ms": p50, "latency_p99_ms": p99})
        );
    } else {
        println!(
            "{} queries, k={}, {} threads: {:.4}s, {:.0} queries/s; one at a time: mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms",
            queries.len(),
            k,
            threads,
            best,
            qps,
            mean,
            p50,
            p99
        );
    }
    Ok(())
}
