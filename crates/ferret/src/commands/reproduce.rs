//! `ferret reproduce CARD`: re-runs a run card and checks that its metrics come out the same.

use std::path::PathBuf;

use ferret_search::run_card::{Inputs, RunCard};

#[derive(clap::Args)]
pub struct Args {
    /// The run card (<run>.card.json) written by `ferret run`
    card: PathBuf,
    /// Use this index instead of the card's path (e.g. on another machine)
    #[arg(long)]
    index: Option<PathBuf>,
    /// Use this query file instead of the card's path
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Use this qrels file instead of the card's path
    #[arg(long)]
    qrels: Option<PathBuf>,
    /// Largest accepted difference per metric
    #[arg(long, default_value_t = 1e-9)]
    tolerance: f64,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let card = RunCard::read(&a.card)?;
    let inputs = Inputs {
        index: a.index,
        queries: a.queries,
        qrels: a.qrels,
        threads: None,
    };
    let again = card.reproduce(&a.card, inputs)?;
    println!("pipeline: {}", card.pipeline);
    println!(
        "{:<12} {:>10} {:>10} {:>10}",
        "measure", "card", "now", "diff"
    );
    let mismatches = again.mismatches(a.tolerance);
    for (measure, then, now) in &again.metrics {
        println!(
            "{:<12} {:>10.4} {:>10.4} {:>+10.2e} {}",
            measure,
            then,
            now,
            now - then,
            if mismatches.contains(&measure.as_str()) {
                "MISMATCH"
            } else {
                "ok"
            }
        );
    }
    println!(
        "run file: {}",
        if again.same_run {
            "identical to the card's (sha256)"
        } else {
            "differs from the card's"
        }
    );
    anyhow::ensure!(
        mismatches.is_empty(),
        "{} metric(s) differ from the card by more than {}",
        mismatches.len(),
        a.tolerance
    );
    println!("reproduced");
    Ok(())
}
