//! `ferret bench-tokens`: the late-interaction search methods timed alone — precomputed query
//! token vectors in (what `ferret encode --colbert/--tokens --queries` writes, so that a peer
//! engine can be given the very same vectors), no model, no query encoding — with a TREC run
//! per method so agreement with exhaustive MaxSim can be measured.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ferret_index::tokens::{Plaid, Xtr};
use ferret_index::{Index, TokenReader};
use rayon::prelude::*;

#[derive(clap::Args)]
pub struct Args {
    /// Index directory with a token representation
    #[arg(long)]
    index: PathBuf,
    /// Its model (needed when the index has several token representations)
    #[arg(long)]
    model: Option<String>,
    /// Query token vectors: JSON lines {"id", "vectors": [[…], …]}
    #[arg(long)]
    queries: PathBuf,
    /// Methods to time: exhaustive, plaid, xtr, xtr-only (XTR's imputed scores, no MaxSim)
    #[arg(long, value_delimiter = ',', default_value = "exhaustive,plaid,xtr")]
    methods: Vec<String>,
    /// Results per query
    #[arg(short, default_value_t = 100)]
    k: usize,
    /// PLAID settings (default: colbert-ai's for the depth k)
    #[arg(long)]
    ncells: Option<usize>,
    #[arg(long)]
    threshold: Option<f32>,
    #[arg(long)]
    ndocs: Option<usize>,
    /// XTR settings (default: ferret's for the depth k)
    #[arg(long)]
    kprime: Option<usize>,
    #[arg(long)]
    xtr_ncells: Option<usize>,
    #[arg(long)]
    xtr_ndocs: Option<usize>,
    /// Threads over queries (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Write <dir>/<method>.run for each method
    #[arg(long)]
    runs: Option<PathBuf>,
    /// Passes over the query set; the best is reported
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let index = Index::open(&a.index)?;
    let model = a
        .model
        .as_deref()
        .map(ferret_search::encoders::canonical_id);
    let reader: &TokenReader = index.representation("tokens", model)?;
    let dim = reader.dim();
    let mut queries: Vec<(String, Vec<f32>)> = Vec::new();
    let file = std::fs::File::open(&a.queries)
        .with_context(|| format!("opening {}", a.queries.display()))?;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let place = || format!("{}:{}", a.queries.display(), n + 1);
        let v: serde_json::Value = serde_json::from_str(&line).with_context(place)?;
        let id = v["id"]
            .as_str()
            .with_context(|| format!("{}: no \"id\"", place()))?;
        let rows: Vec<Vec<f32>> = serde_json::from_value(v["vectors"].clone())
            .with_context(|| format!("{}: \"vectors\" is not a list of vectors", place()))?;
        if let Some(r) = rows.iter().find(|r| r.len() != dim) {
            anyhow::bail!(
                "{}: a vector of {} dims, the index's have {dim}",
                place(),
                r.len()
            );
        }
        queries.push((id.to_string(), rows.concat()));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or_else(super::default_threads))
        .build()?;
    let docstore = index.docstore();
    let deleted = |d| docstore.is_deleted(d);
    let plaid = {
        let d = Plaid::for_k(a.k);
        Plaid {
            ncells: a.ncells.unwrap_or(d.ncells),
            threshold: a.threshold.unwrap_or(d.threshold),
            ndocs: a.ndocs.unwrap_or(d.ndocs),
        }
    };
    let xtr = |maxsim: bool| {
        let d = Xtr::for_k(a.k);
        Xtr {
            kprime: a.kprime.unwrap_or(d.kprime),
            ncells: a.xtr_ncells.unwrap_or(d.ncells),
            maxsim: maxsim.then(|| a.xtr_ndocs.or(d.maxsim)).flatten(),
        }
    };
    println!(
        "{} queries, k={}, {} threads; {} tokens in {} centroids, {}",
        queries.len(),
        a.k,
        pool.current_num_threads(),
        reader.total_tokens(),
        reader.params().centroids,
        if reader.params().nbits == 0 {
            "f16 vectors".to_string()
        } else {
            format!("{}-bit residuals", reader.params().nbits)
        }
    );
    for method in &a.methods {
        let search = |q: &[f32]| match method.as_str() {
            "exhaustive" => Ok(reader.exhaustive(q, a.k, deleted)),
            "plaid" => Ok(reader.plaid(q, a.k, &plaid, deleted)),
            "xtr" => Ok(reader.xtr(q, a.k, &xtr(true), deleted)),
            "xtr-only" => Ok(reader.xtr(q, a.k, &xtr(false), deleted)),
            other => anyhow::bail!("unknown method '{other}' (exhaustive, plaid, xtr, xtr-only)"),
        };
        let mut best = f64::INFINITY;
        let mut results = Vec::new();
        for _ in 0..a.repeat.max(1) {
            let start = Instant::now();
            results = pool.install(|| {
                queries
                    .par_iter()
                    .map(|(_, q)| search(q))
                    .collect::<anyhow::Result<Vec<_>>>()
            })?;
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!(
            "{method:<10} {:.3}s  {:.1} queries/s",
            best,
            queries.len() as f64 / best
        );
        if let Some(dir) = &a.runs {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("{method}.run"));
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            for ((qid, _), hits) in queries.iter().zip(&results) {
                for (rank, (d, score)) in hits.iter().enumerate() {
                    writeln!(
                        out,
                        "{qid} Q0 {} {} {score} ferret",
                        index.external_id(*d),
                        rank + 1
                    )?;
                }
            }
            out.flush()?;
        }
    }
    for (part, bytes) in reader.sizes(index.dir()) {
        println!("size  {part:<22} {:>10.1} MB", bytes as f64 / 1e6);
    }
    Ok(())
}
