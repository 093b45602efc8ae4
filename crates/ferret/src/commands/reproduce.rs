//! `ferret reproduce CARD`: re-runs a run card and checks that its metrics come out the same.

use std::path::PathBuf;

use anyhow::Context;
use ferret_eval::Measure;
use sha2::{Digest, Sha256};

use super::card::{file_card, RunCard};

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
    anyhow::ensure!(
        !card.metrics.is_empty(),
        "{}: the card records no metrics (the run had no --qrels), so there is nothing to check",
        a.card.display()
    );
    let qrels_card = card
        .qrels
        .as_ref()
        .context("the card names no qrels file")?;
    let set = super::QuerySetArgs {
        index: a.index.unwrap_or_else(|| card.index.path.clone()),
        queries: a.queries.unwrap_or_else(|| card.queries.path.clone()),
        qrels: Some(a.qrels.unwrap_or_else(|| qrels_card.path.clone())),
        pipeline: card.pipeline.clone(),
        k: card.k,
        threads: None,
        sparse_queries: card.sparse_queries.as_ref().map(|f| f.path.clone()),
    };
    // Inputs must be the ones the card was made from.
    for (what, path, expected) in [
        ("queries", &set.queries, &card.queries.sha256),
        ("qrels", set.qrels.as_ref().unwrap(), &qrels_card.sha256),
    ] {
        let now = file_card(path)?;
        anyhow::ensure!(
            &now.sha256 == expected,
            "{what} file {} differs from the one the card was made with (sha256 {} ≠ {})",
            path.display(),
            now.sha256,
            expected
        );
    }
    let index = super::open_index(&set.index)?;
    let manifest = serde_json::to_value(index.manifest())?;
    for key in ["representations", "doc_count"] {
        anyhow::ensure!(
            manifest.get(key) == card.index.manifest.get(key),
            "index {} differs from the card's: {key} is {} now, {} in the card",
            set.index.display(),
            manifest.get(key).unwrap_or(&serde_json::Value::Null),
            card.index
                .manifest
                .get(key)
                .unwrap_or(&serde_json::Value::Null)
        );
    }
    drop(index);
    let names: Vec<&str> = card.metrics.iter().map(|m| m.measure.as_str()).collect();
    let measures = Measure::parse_all(&names)?;
    let outcome = super::run::execute(&set, &card.tag, card.scores, &measures, false)?;

    let mut trec = Vec::new();
    outcome.run.write_trec(&mut trec)?;
    let same_run = crate::datasets::hex(&Sha256::digest(&trec)) == card.run.sha256;
    println!("pipeline: {}", card.pipeline);
    println!(
        "{:<12} {:>10} {:>10} {:>10}",
        "measure", "card", "now", "diff"
    );
    let mut failed = 0;
    for (m, (_, now)) in card.metrics.iter().zip(&outcome.metrics) {
        let diff = now - m.value;
        let ok = diff.abs() <= a.tolerance;
        failed += usize::from(!ok);
        println!(
            "{:<12} {:>10.4} {:>10.4} {:>+10.2e} {}",
            m.measure,
            m.value,
            now,
            diff,
            if ok { "ok" } else { "MISMATCH" }
        );
    }
    println!(
        "run file: {}",
        if same_run {
            "identical to the card's (sha256)"
        } else {
            "differs from the card's"
        }
    );
    anyhow::ensure!(
        failed == 0,
        "{failed} metric(s) differ from the card by more than {}",
        a.tolerance
    );
    println!("reproduced");
    Ok(())
}
