use std::borrow::Cow;
use std::time::Instant;

use ferret_index::dense::hnsw::{self, Hnsw, HnswParams};
use ferret_index::dense::{dot, top_k_batch, TopK};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

#[derive(clap::Args)]
pub struct Args {
    /// Number of synthetic vectors
    #[arg(long, default_value_t = 1_000_000)]
    n: usize,
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Queries (their exact top-10 is computed by brute force for recall)
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Search candidate-list sizes to try
    #[arg(long, num_args = 1.., default_values_t = [64, 128, 256, 512])]
    ef: Vec<usize>,
    /// Clusters the vectors are drawn around (0: plain Gaussian, the hardest case)
    #[arg(long, default_value_t = 1000)]
    clusters: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn normal(rng: &mut StdRng) -> f32 {
    // Box–Muller
    let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-12), rng.random());
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// HNSW (usearch) against exact search on synthetic unit vectors: build time, memory,
/// recall@10 and queries/s, each ef side by side with exact search on the same machine.
pub fn main(a: Args) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(a.seed);
    let centers: Vec<Vec<f32>> = (0..a.clusters)
        .map(|_| {
            let mut c: Vec<f32> = (0..a.dim).map(|_| normal(&mut rng)).collect();
            unit(&mut c);
            c
        })
        .collect();
    // A vector is a random cluster centre plus Gaussian noise of about the same norm (or pure
    // noise without clusters), normalised.
    let noise = 1.0 / (a.dim as f32).sqrt();
    let draw = |rng: &mut StdRng| {
        let mut v: Vec<f32> = (0..a.dim).map(|_| normal(rng) * noise).collect();
        if a.clusters > 0 {
            let c = &centers[rng.random_range(0..a.clusters)];
            v.iter_mut().zip(c).for_each(|(x, c)| *x += c);
        }
        unit(&mut v);
        v
    };
    eprintln!(
        "generating {} x {} vectors ({} clusters)",
        a.n, a.dim, a.clusters
    );
    let data: Vec<f32> = (0..a.n).flat_map(|_| draw(&mut rng)).collect();
    let queries: Vec<Vec<f32>> = (0..a.queries).map(|_| draw(&mut rng)).collect();
    let rss_before = rss_mb();

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("graph.usearch");
    let params = HnswParams::default();
    let docs: Vec<u32> = (0..a.n as u32).collect();
    let row = |d: u32| {
        let start = d as usize * a.dim;
        data.get(start..start + a.dim).map(Cow::Borrowed)
    };
    let start = Instant::now();
    hnsw::build(a.dim, &docs, row, &params, &path)?;
    let build_secs = start.elapsed().as_secs_f64();
    let graph = Hnsw::open(a.dim, &params, &path)?;
    let file_mb = std::fs::metadata(&path)?.len() as f64 / 1e6;

    // Ground truth and exact-search speed: brute force over all vectors, queries in parallel.
    let start = Instant::now();
    let truth: Vec<Vec<u32>> = queries
        .par_iter()
        .map(|q| {
            let mut s: Vec<(u32, f32)> = data
                .chunks_exact(a.dim)
                .enumerate()
                .map(|(i, v)| (i as u32, dot(q, v)))
                .collect();
            s.select_nth_unstable_by(9, |x, y| y.1.total_cmp(&x.1));
            s.truncate(10);
            s.into_iter().map(|(i, _)| i).collect()
        })
        .collect();
    let exact_qps = a.queries as f64 / start.elapsed().as_secs_f64();

    // Exact search again, the queries batched: one GEMM per block of vectors and group of 64
    // queries (what `dense(exact=1)` does in `ferret run`). Same answers, checked.
    let start = Instant::now();
    let batched: Vec<Vec<u32>> = queries
        .par_chunks(64)
        .flat_map_iter(|group| {
            let flat: Vec<f32> = group.iter().flatten().copied().collect();
            let mut tops: Vec<TopK> = group.iter().map(|_| TopK::new(10)).collect();
            top_k_batch(&flat, &data, a.dim, 0, &|_| false, &mut tops);
            tops.into_iter()
                .map(|t| t.into_sorted().into_iter().map(|(d, _)| d).collect())
        })
        .collect();
    let batched_qps = a.queries as f64 / start.elapsed().as_secs_f64();
    let agree = batched
        .iter()
        .zip(&truth)
        .map(|(b, t)| b.iter().filter(|d| t.contains(d)).count() as f64 / 10.0)
        .sum::<f64>()
        / a.queries as f64;

    println!(
        "{} vectors x {} dims, {} queries, {} threads",
        a.n,
        a.dim,
        a.queries,
        rayon::current_num_threads()
    );
    println!("HNSW (M={}, efConstruction={}): built in {:.1}s ({:.0} vectors/s), graph file {:.0} MB, process RSS {:.0} MB (vectors alone {:.0} MB)",
        params.connectivity, params.expansion_add, build_secs, a.n as f64 / build_secs, file_mb, rss_mb(), rss_before);
    println!("exact search: {exact_qps:.1} queries/s (recall 1.0)");
    println!(
        "exact search, batched GEMM: {batched_qps:.1} queries/s ({:.1}x one query at a time; agreement with it on the top 10: {agree:.4})",
        batched_qps / exact_qps
    );
    for ef in &a.ef {
        let start = Instant::now();
        let found: Vec<Vec<(u32, f32)>> = queries
            .par_iter()
            .map(|q| graph.search(q, 10, *ef, |_| true))
            .collect::<Result<_, _>>()?;
        let qps = a.queries as f64 / start.elapsed().as_secs_f64();
        let recall = found
            .iter()
            .zip(&truth)
            .map(|(f, t)| f.iter().filter(|(d, _)| t.contains(d)).count() as f64 / 10.0)
            .sum::<f64>()
            / a.queries as f64;
        println!(
            "HNSW ef={ef:<4} recall@10 {recall:.4}  {qps:>9.1} queries/s  ({:.1}x exact)",
            qps / exact_qps
        );
    }
    Ok(())
}
