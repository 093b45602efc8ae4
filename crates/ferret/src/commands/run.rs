use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ferret_eval::{Measure, RunScores};
use ferret_search::experiment::Outcome;
use ferret_search::run_card::{self, RunCard};

use crate::progress::count_bar;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    set: super::QuerySetArgs,
    /// Output TREC run file; its run card is written beside it as <output>.card.json
    #[arg(short, long)]
    output: PathBuf,
    /// Run tag (6th column)
    #[arg(long, default_value = "ferret")]
    tag: String,
    /// Write the scores as computed. By default exactly tied scores are separated as Anserini
    /// does (rounded to 4 decimals, the n-th tie in a row 1e-6 × n lower, 6 decimals written),
    /// because trec_eval re-sorts ties by document id and would evaluate an order ferret did
    /// not rank; the run card records which
    #[arg(long)]
    raw_scores: bool,
    /// Measures printed (and recorded in the run card) when --qrels is given
    #[arg(short, long, num_args = 1.., default_values_t = ["nDCG@10".to_string(), "R@100".to_string(), "R@1000".to_string(), "AP".to_string(), "RR@10".to_string()])]
    measures: Vec<String>,
    /// Write each query's explain record (stages, timings, per-hit stage ranks and scores) as JSON lines
    #[arg(long)]
    explain: Option<PathBuf>,
    /// Hits per query in the explain records
    #[arg(long, default_value_t = 10)]
    explain_depth: usize,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let measures = Measure::parse_all(&a.measures)?;
    let scores = if a.raw_scores {
        RunScores::Raw
    } else {
        RunScores::Separated
    };
    let outcome = execute(&a.set, &a.tag, scores, &measures, a.explain.is_some())?;
    let file = std::fs::File::create(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    outcome
        .run
        .write_trec(&mut out)
        .and_then(|_| out.flush())
        .with_context(|| format!("writing {}", a.output.display()))?;
    let n = outcome.queries.len();
    eprintln!(
        "{n} queries in {:.2}s ({:.0} queries/s) -> {}",
        outcome.seconds,
        n as f64 / outcome.seconds,
        a.output.display()
    );
    if let Some(path) = &a.explain {
        write_explain(path, &outcome, a.explain_depth)?;
    }
    let card = RunCard::new(
        &a.set.query_set(),
        &a.tag,
        scores,
        &a.output,
        &outcome,
        std::env::args().collect(),
    )?;
    let card_path = run_card::path_beside(&a.output);
    card.write(&card_path)?;
    eprintln!("run card -> {}", card_path.display());
    for u in &card.llm_usage {
        eprintln!(
            "LLM {}: {} calls (+{} answered from the cache), {} prompt ({} reused from earlier prompts) + {} completion tokens; per query {:.1} calls, {:.0} tokens, {:.2} s",
            u.model,
            u.calls,
            u.cache_hits,
            u.prompt_tokens,
            u.reused_prompt_tokens,
            u.completion_tokens,
            u.calls_per_query,
            u.tokens_per_query,
            outcome.seconds / n.max(1) as f64
        );
    }
    for (m, v) in &outcome.metrics {
        println!("{m:<10} {v:.4}");
    }
    Ok(())
}

/// A query set prepared and run, with a progress bar.
pub fn execute(
    set: &super::QuerySetArgs,
    tag: &str,
    scores: RunScores,
    measures: &[Measure],
    explain: bool,
) -> anyhow::Result<Outcome> {
    let prepared = set.query_set().prepare()?;
    let bar = count_bar("queries", prepared.queries.len() as u64);
    let outcome = prepared.run(set.k, tag, scores, measures, explain, &|n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    Ok(outcome)
}

fn write_explain(path: &Path, outcome: &Outcome, depth: usize) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (q, (hits, trace)) in outcome.queries.iter().zip(&outcome.traces) {
        let record =
            ferret_search::trace::explain_json(&outcome.prepared.index, q, hits, trace, depth);
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("explain records -> {}", path.display());
    Ok(())
}
