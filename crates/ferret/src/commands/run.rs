use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ferret_eval::{evaluate, EvalOptions, Measure, Qrels};

use crate::progress::count_bar;

#[derive(clap::Args)]
pub struct Args {
    /// Index directory
    #[arg(long)]
    index: PathBuf,
    /// Queries: BEIR queries.jsonl or TSV (id<TAB>text)
    #[arg(long)]
    queries: PathBuf,
    /// Only run the queries judged in this qrels file, and print their evaluation
    #[arg(long)]
    qrels: Option<PathBuf>,
    /// Ranking pipeline, e.g. "bm25(k1=0.9,b=0.4) % 1000"
    #[arg(long, default_value = "bm25")]
    pipeline: String,
    /// Depth of the run (results per query)
    #[arg(short, default_value_t = 1000)]
    k: usize,
    /// Output TREC run file
    #[arg(short, long)]
    output: PathBuf,
    /// Run tag (6th column)
    #[arg(long, default_value = "ferret")]
    tag: String,
    /// Threads over queries (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Measures printed when --qrels is given
    #[arg(short, long, num_args = 1.., default_values_t = ["nDCG@10".to_string(), "R@100".to_string(), "R@1000".to_string(), "AP".to_string(), "RR@10".to_string()])]
    measures: Vec<String>,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let measures = Measure::parse_all(&a.measures)?;
    let qrels = a.qrels.as_deref().map(Qrels::read).transpose()?;
    let index = super::open_index(&a.index)?;
    let stage = ferret_search::prepare(&a.pipeline, &index)?;
    let queries = super::load_queries(&a.queries, qrels.as_ref())?;
    let bar = count_bar("queries", queries.len() as u64);
    let start = Instant::now();
    let run = ferret_search::batch::run_queries(
        stage.as_ref(),
        &index,
        &queries,
        a.k,
        a.threads.unwrap_or_else(super::default_threads),
        &a.tag,
        &|n| bar.set_position(n as u64),
    )?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let file = std::fs::File::create(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    run.write_trec(&mut out)
        .and_then(|_| out.flush())
        .with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!(
        "{} queries in {:.2}s ({:.0} queries/s) -> {}",
        queries.len(),
        secs,
        queries.len() as f64 / secs,
        a.output.display()
    );
    if let Some(qrels) = &qrels {
        let e = evaluate(qrels, &run, &measures, EvalOptions::default());
        for (m, v) in e.measures.iter().zip(&e.mean) {
            println!("{:<10} {:.4}", m.to_string(), v);
        }
    }
    Ok(())
}
