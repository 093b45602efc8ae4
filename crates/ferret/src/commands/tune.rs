//! `ferret tune`: grid search over named parameters of a pipeline on a training split.
//!
//! The pipeline text holds placeholders (`interp(bm25 % 1000, dense % 1000, alpha={alpha})`),
//! each filled from a `--grid name=values`. Every setting is run over the training queries
//! (those judged in `--qrels`) and scored by the first `-m` measure; the best is reported, and
//! with `--report-qrels` evaluated once on that split — which must share no query with the
//! training split, so the reported number is never tuned on.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Context;
use ferret_eval::{evaluate, EvalOptions, Measure, Qrels, RunScores};

#[derive(clap::Args)]
pub struct Args {
    /// Index directory
    #[arg(long)]
    index: PathBuf,
    /// Queries (BEIR queries.jsonl or TSV); the judged ones of each qrels file are used
    #[arg(long)]
    queries: PathBuf,
    /// Training qrels: the split the parameters are chosen on
    #[arg(long)]
    qrels: PathBuf,
    /// Pipeline with {name} placeholders, e.g. "interp(bm25 % 1000, dense % 1000, alpha={alpha})"
    #[arg(long)]
    pipeline: String,
    /// name=v1,v2,... or name=start:end:step (repeat for several parameters)
    #[arg(long, required = true)]
    grid: Vec<String>,
    /// Measures; the first one picks the best setting
    #[arg(short, long, num_args = 1.., default_values_t = ["nDCG@10".to_string(), "R@100".to_string()])]
    measures: Vec<String>,
    /// Evaluate the best setting once on this (held-out) split
    #[arg(long)]
    report_qrels: Option<PathBuf>,
    /// Results per query
    #[arg(short, default_value_t = 1000)]
    k: usize,
    /// Threads over queries (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Chart the first measure over the grid as SVG: the training split and, with
    /// --report-qrels, the held-out split too (every setting is then also run on it; the
    /// choice is still made on the training split alone)
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// One parameter's name and the values to try.
#[derive(Debug, PartialEq)]
struct Axis {
    name: String,
    values: Vec<String>,
}

fn parse_axis(spec: &str) -> anyhow::Result<Axis> {
    let (name, values) = spec
        .split_once('=')
        .with_context(|| format!("--grid {spec}: expected name=values"))?;
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'),
        "--grid {spec}: '{name}' is not a parameter name"
    );
    let values: Vec<String> = if let [start, end, step] = values.split(':').collect::<Vec<_>>()[..]
    {
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .with_context(|| format!("--grid {spec}: '{s}' is not a number"))
        };
        let (start, end, step) = (num(start)?, num(end)?, num(step)?);
        anyhow::ensure!(
            step > 0.0 && end >= start,
            "--grid {spec}: need start <= end and step > 0"
        );
        let n = ((end - start) / step + 1e-9).floor() as usize;
        anyhow::ensure!(n < 10_000, "--grid {spec}: more than 10,000 values");
        // Rounded to 10 decimals so 0.1 steps print as 0.3, not 0.30000000000000004.
        (0..=n)
            .map(|i| {
                let v = ((start + i as f64 * step) * 1e10).round() / 1e10;
                v.to_string()
            })
            .collect()
    } else {
        values.split(',').map(|v| v.trim().to_string()).collect()
    };
    anyhow::ensure!(
        values.iter().all(|v| !v.is_empty()),
        "--grid {spec}: empty value"
    );
    Ok(Axis {
        name: name.to_string(),
        values,
    })
}

/// Every combination of the axes' values, as (name, value) lists.
fn settings(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for axis in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                axis.values.iter().map(move |v| {
                    let mut s = prefix.clone();
                    s.push((axis.name.clone(), v.clone()));
                    s
                })
            })
            .collect();
    }
    out
}

/// The pipeline with every placeholder filled; errors on placeholders without a grid and on
/// grids without a placeholder.
fn fill(template: &str, setting: &[(String, String)]) -> anyhow::Result<String> {
    let mut text = template.to_string();
    for (name, value) in setting {
        let placeholder = format!("{{{name}}}");
        anyhow::ensure!(
            text.contains(&placeholder),
            "--grid {name}: the pipeline has no {placeholder} placeholder"
        );
        text = text.replace(&placeholder, value);
    }
    if let Some(start) = text.find('{') {
        let end = text[start..]
            .find('}')
            .map_or(text.len(), |e| start + e + 1);
        anyhow::bail!(
            "the pipeline's placeholder {} has no --grid",
            &text[start..end]
        );
    }
    Ok(text)
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let axes = a
        .grid
        .iter()
        .map(|g| parse_axis(g))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let measures = Measure::parse_all(&a.measures)?;
    let train = Qrels::read(&a.qrels)?;
    let report = a.report_qrels.as_deref().map(Qrels::read).transpose()?;
    if let Some(report) = &report {
        let train_ids: HashSet<&str> = train.query_ids().collect();
        let shared = report.query_ids().filter(|q| train_ids.contains(q)).count();
        anyhow::ensure!(
            shared == 0,
            "{} and {} share {shared} queries: tuning on the split you report is not allowed",
            a.qrels.display(),
            a.report_qrels.as_ref().unwrap().display()
        );
    }
    let index = super::open_index(&a.index)?;
    let train_queries = super::load_queries(&a.queries, Some(&train))?;
    let threads = a.threads.unwrap_or_else(super::default_threads);
    let all = settings(&axes);
    // Check every setting parses before spending time on any.
    let pipelines = all
        .iter()
        .map(|s| fill(&a.pipeline, s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "tuning {} settings on {} training queries ({})",
        pipelines.len(),
        train_queries.len(),
        a.qrels.display()
    );
    let header: Vec<String> = measures.iter().map(|m| m.to_string()).collect();
    println!(
        "{:<40} {}",
        "setting",
        header
            .iter()
            .map(|h| format!("{h:>10}"))
            .collect::<String>()
    );
    // The held-out split's queries, run for every setting only to chart them.
    let charted_held_out = match (&a.plot, &report) {
        (Some(_), Some(report)) => Some((super::load_queries(&a.queries, Some(report))?, report)),
        _ => None,
    };
    let mut best: Option<(usize, f64)> = None;
    let mut train_scores = Vec::new();
    let mut held_out_scores = Vec::new();
    let measure_of = |stage: &dyn ferret_search::Stage,
                      queries: &[ferret_search::Query],
                      qrels: &Qrels|
     -> anyhow::Result<ferret_eval::Evaluation> {
        let rankings = ferret_search::batch::search_queries(stage, queries, a.k, threads, &|_| {})?;
        let run =
            ferret_search::batch::to_run(&index, queries, rankings, "tune", RunScores::Separated);
        Ok(evaluate(qrels, &run, &measures, EvalOptions::default()))
    };
    for (i, (setting, text)) in all.iter().zip(&pipelines).enumerate() {
        let stage = ferret_search::prepare(text, &index)?;
        let e = measure_of(stage.as_ref(), &train_queries, &train)?;
        train_scores.push(e.mean[0]);
        if let Some((queries, qrels)) = &charted_held_out {
            held_out_scores.push(measure_of(stage.as_ref(), queries, qrels)?.mean[0]);
        }
        let shown: Vec<String> = setting.iter().map(|(n, v)| format!("{n}={v}")).collect();
        println!(
            "{:<40} {}",
            shown.join(" "),
            e.mean
                .iter()
                .map(|v| format!("{v:>10.4}"))
                .collect::<String>()
        );
        if best.is_none_or(|(_, b)| e.mean[0] > b) {
            best = Some((i, e.mean[0]));
        }
    }
    let (b, score) = best.context("the grid is empty")?;
    let shown: Vec<String> = all[b].iter().map(|(n, v)| format!("{n}={v}")).collect();
    println!(
        "best on {}: {} ({} = {score:.4})",
        a.qrels.display(),
        shown.join(" "),
        measures[0]
    );
    println!("pipeline: {}", pipelines[b]);
    if let Some(path) = &a.plot {
        let numeric: Option<Vec<f64>> = match &axes[..] {
            [one] => one.values.iter().map(|v| v.parse().ok()).collect(),
            _ => None,
        };
        let axis = match numeric {
            Some(values) => crate::plot::GridAxis::Numeric {
                name: axes[0].name.clone(),
                values,
            },
            None => crate::plot::GridAxis::Ordinal { count: all.len() },
        };
        let held_out = charted_held_out
            .as_ref()
            .map(|_| held_out_scores.as_slice());
        crate::plot::tuning(
            path,
            &measures[0].to_string(),
            &axis,
            &train_scores,
            held_out,
            b,
        )?;
        eprintln!("chart: {}", path.display());
    }
    if let (Some(report), Some(path)) = (&report, &a.report_qrels) {
        let queries = super::load_queries(&a.queries, Some(report))?;
        let stage = ferret_search::prepare(&pipelines[b], &index)?;
        let rankings =
            ferret_search::batch::search_queries(stage.as_ref(), &queries, a.k, threads, &|_| {})?;
        let run =
            ferret_search::batch::to_run(&index, &queries, rankings, "tuned", RunScores::Separated);
        let e = evaluate(report, &run, &measures, EvalOptions::default());
        println!(
            "held-out {} ({} queries): {}",
            path.display(),
            queries.len(),
            measures
                .iter()
                .zip(&e.mean)
                .map(|(m, v)| format!("{m} {v:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_expand_and_fill_placeholders() {
        let a = parse_axis("alpha=0:0.3:0.1").unwrap();
        assert_eq!(a.values, ["0", "0.1", "0.2", "0.3"]);
        let b = parse_axis("fb_terms=5,10").unwrap();
        let all = settings(&[a, b]);
        assert_eq!(all.len(), 8);
        let text = fill("rm3(fb_terms={fb_terms}) >> x(alpha={alpha})", &all[3]).unwrap();
        assert_eq!(text, "rm3(fb_terms=10) >> x(alpha=0.1)");
        assert!(fill("bm25(k1={k1})", &[])
            .unwrap_err()
            .to_string()
            .contains("{k1} has no --grid"));
        assert!(fill("bm25", &all[0])
            .unwrap_err()
            .to_string()
            .contains("no {alpha} placeholder"));
        assert!(parse_axis("alpha").is_err());
        assert!(parse_axis("alpha=1:0:0.1").is_err());
        assert!(parse_axis("alpha=0:1:x").is_err());
    }
}
