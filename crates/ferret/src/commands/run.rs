use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ferret_eval::{evaluate, EvalOptions, Measure};

use crate::progress::count_bar;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    set: super::QuerySetArgs,
    /// Output TREC run file
    #[arg(short, long)]
    output: PathBuf,
    /// Run tag (6th column)
    #[arg(long, default_value = "ferret")]
    tag: String,
    /// Measures printed when --qrels is given
    #[arg(short, long, num_args = 1.., default_values_t = ["nDCG@10".to_string(), "R@100".to_string(), "R@1000".to_string(), "AP".to_string(), "RR@10".to_string()])]
    measures: Vec<String>,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let measures = Measure::parse_all(&a.measures)?;
    let super::Prepared {
        index,
        stage,
        queries,
        qrels,
        threads,
    } = a.set.prepare()?;
    let bar = count_bar("queries", queries.len() as u64);
    let start = Instant::now();
    let run = ferret_search::batch::run_queries(
        stage.as_ref(),
        &index,
        &queries,
        a.set.k,
        threads,
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
