//! `ferret tune`: choosing named parameters of a pipeline on a training split.
//!
//! The pipeline text holds placeholders (`interp(bm25 % 1000, dense % 1000, alpha={alpha})`),
//! each with the values a `--grid name=values` gives. Settings are run over the training
//! queries (those judged in `--qrels`) and scored by the first `-m` measure: every combination
//! (`--search grid`), coordinate ascent — one parameter at a time over its values, the others
//! held, pass after pass until a pass improves nothing, from the middle values and then from
//! `--restarts` random starts (Metzler & Croft's linear feature-based models) — or `--samples`
//! combinations drawn at random (`--search random`), reproducible from `--seed`. The best is
//! reported, and with `--report-qrels` evaluated once on that split — which must share no query
//! with the training split, so the reported number is never tuned on; `--output` writes that
//! run with its run card.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Context;
use ferret_eval::{evaluate, EvalOptions, Measure, Qrels, RunScores};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Search {
    /// Every combination of the grids' values
    Grid,
    /// One parameter at a time, the others held, until a pass over them improves nothing
    Coordinate,
    /// --samples combinations drawn at random
    Random,
}

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
    /// How settings are chosen from the grids
    #[arg(long, value_enum, default_value_t = Search::Grid)]
    search: Search,
    /// Random search: settings drawn (distinct; at most every combination)
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Coordinate ascent: random starts after the first one (from the middle values)
    #[arg(long, default_value_t = 0)]
    restarts: usize,
    /// Seed of random search and of coordinate ascent's restarts
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the best setting's run (on the --report-qrels split, else the training split) to
    /// this file, with its run card beside it
    #[arg(short, long, value_name = "RUN")]
    output: Option<PathBuf>,
    /// Chart the first measure over the settings tried as SVG: the training split and, with
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

/// A setting: an index into each axis's values.
type Setting = Vec<usize>;

/// Every combination of the axes' values, the last axis varying fastest.
fn grid(sizes: &[usize]) -> Vec<Setting> {
    let mut out: Vec<Setting> = vec![Vec::new()];
    for &size in sizes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..size).map(move |v| {
                    let mut s = prefix.clone();
                    s.push(v);
                    s
                })
            })
            .collect();
    }
    out
}

/// `samples` distinct settings drawn uniformly (every combination when there are no more).
fn random_settings(sizes: &[usize], samples: usize, rng: &mut StdRng) -> Vec<Setting> {
    let total = sizes
        .iter()
        .try_fold(1usize, |n, &s| n.checked_mul(s))
        .unwrap_or(usize::MAX);
    if samples >= total {
        return grid(sizes);
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(samples);
    while out.len() < samples {
        let s: Setting = sizes.iter().map(|&n| rng.random_range(0..n)).collect();
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// Coordinate ascent from `start`: each axis in turn takes the value that scores best with the
/// others held (the current one unless another is strictly better), until a whole pass changes
/// nothing. Returns the final setting and its score.
fn coordinate_ascent(
    sizes: &[usize],
    start: Setting,
    score: &mut dyn FnMut(&Setting) -> anyhow::Result<f64>,
) -> anyhow::Result<(Setting, f64)> {
    let mut current = start;
    let mut best = score(&current)?;
    loop {
        let mut changed = false;
        for (axis, &size) in sizes.iter().enumerate() {
            for v in 0..size {
                if v == current[axis] {
                    continue;
                }
                let mut candidate = current.clone();
                candidate[axis] = v;
                let s = score(&candidate)?;
                if s > best {
                    (current, best, changed) = (candidate, s, true);
                }
            }
        }
        if !changed {
            return Ok((current, best));
        }
    }
}

fn named(axes: &[Axis], setting: &Setting) -> Vec<(String, String)> {
    axes.iter()
        .zip(setting)
        .map(|(a, &v)| (a.name.clone(), a.values[v].clone()))
        .collect()
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
    let sizes: Vec<usize> = axes.iter().map(|x| x.values.len()).collect();
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
    // Placeholders without a grid (or grids without a placeholder) and pipelines that do not
    // parse are refused before any time is spent.
    let middle: Setting = sizes.iter().map(|&n| n / 2).collect();
    ferret_search::pipeline::parse_any(&fill(&a.pipeline, &named(&axes, &middle))?)?;
    let index = super::open_index(&a.index)?;
    let train_queries = super::load_queries(&a.queries, Some(&train))?;
    let threads = a.threads.unwrap_or_else(super::default_threads);
    let mut rng = StdRng::seed_from_u64(a.seed);
    let planned = match a.search {
        Search::Grid => grid(&sizes),
        Search::Random => random_settings(&sizes, a.samples, &mut rng),
        Search::Coordinate => Vec::new(),
    };
    eprintln!(
        "tuning on {} training queries ({}): {}",
        train_queries.len(),
        a.qrels.display(),
        match a.search {
            Search::Grid => format!("{} settings, every combination", planned.len()),
            Search::Random => format!(
                "{} settings drawn at random (seed {})",
                planned.len(),
                a.seed
            ),
            Search::Coordinate => format!(
                "coordinate ascent from the middle values and {} random starts (seed {})",
                a.restarts, a.seed
            ),
        }
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
    let measure_of = |stage: &dyn ferret_search::Stage,
                      queries: &[ferret_search::Query],
                      qrels: &Qrels|
     -> anyhow::Result<ferret_eval::Evaluation> {
        let rankings = ferret_search::batch::search_queries(stage, queries, a.k, threads, &|_| {})?;
        let run =
            ferret_search::batch::to_run(&index, queries, rankings, "tune", RunScores::Separated);
        Ok(evaluate(qrels, &run, &measures, EvalOptions::default()))
    };
    // Fusion inputs the settings have in common are prepared once and retrieve each query once.
    let memo = ferret_search::memo::Memo::default();
    // Each setting is run once: coordinate ascent comes back to settings it has scored.
    let mut tried: Vec<(Setting, f64, Option<f64>)> = Vec::new();
    let mut scored = std::collections::HashMap::<Setting, f64>::new();
    let mut score = |setting: &Setting| -> anyhow::Result<f64> {
        if let Some(&s) = scored.get(setting) {
            return Ok(s);
        }
        let shown = named(&axes, setting);
        let stage = ferret_search::memo::prepare(&fill(&a.pipeline, &shown)?, &index, &memo)?;
        let e = measure_of(stage.as_ref(), &train_queries, &train)?;
        let held_out = match &charted_held_out {
            Some((queries, qrels)) => Some(measure_of(stage.as_ref(), queries, qrels)?.mean[0]),
            None => None,
        };
        let shown: Vec<String> = shown.iter().map(|(n, v)| format!("{n}={v}")).collect();
        println!(
            "{:<40} {}",
            shown.join(" "),
            e.mean
                .iter()
                .map(|v| format!("{v:>10.4}"))
                .collect::<String>()
        );
        scored.insert(setting.clone(), e.mean[0]);
        tried.push((setting.clone(), e.mean[0], held_out));
        Ok(e.mean[0])
    };
    match a.search {
        Search::Grid | Search::Random => {
            for setting in &planned {
                score(setting)?;
            }
        }
        Search::Coordinate => {
            let mut start = middle.clone();
            for restart in 0..=a.restarts {
                if restart > 0 {
                    start = sizes.iter().map(|&n| rng.random_range(0..n)).collect();
                }
                let (end, s) = coordinate_ascent(&sizes, start.clone(), &mut score)?;
                let shown: Vec<String> = named(&axes, &end)
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                eprintln!("ascent {}: {} ({s:.4})", restart + 1, shown.join(" "));
            }
        }
    }
    // The first of the best in the order tried.
    let b = (0..tried.len())
        .reduce(|b, i| if tried[i].1 > tried[b].1 { i } else { b })
        .context("no setting was tried")?;
    let best = named(&axes, &tried[b].0);
    let pipeline = fill(&a.pipeline, &best)?;
    let shown: Vec<String> = best.iter().map(|(n, v)| format!("{n}={v}")).collect();
    println!(
        "best on {} of {} settings tried: {} ({} = {:.4})",
        a.qrels.display(),
        tried.len(),
        shown.join(" "),
        measures[0],
        tried[b].1
    );
    println!("pipeline: {pipeline}");
    if let Some(path) = &a.plot {
        let numeric: Option<Vec<f64>> = match (&axes[..], a.search) {
            ([one], Search::Grid) => one.values.iter().map(|v| v.parse().ok()).collect(),
            _ => None,
        };
        let axis = match numeric {
            Some(values) => crate::plot::GridAxis::Numeric {
                name: axes[0].name.clone(),
                values,
            },
            None => crate::plot::GridAxis::Ordinal { count: tried.len() },
        };
        let train_scores: Vec<f64> = tried.iter().map(|t| t.1).collect();
        let held_out: Option<Vec<f64>> = tried.iter().map(|t| t.2).collect();
        crate::plot::tuning(
            path,
            &measures[0].to_string(),
            &axis,
            &train_scores,
            held_out.as_deref(),
            b,
        )?;
        eprintln!("chart: {}", path.display());
    }
    if report.is_none() && a.output.is_none() {
        return Ok(());
    }
    // The chosen pipeline once more, as `ferret run` would run it: on the held-out split when
    // there is one (else the training split), with its run card when --output is given.
    let set = ferret_search::experiment::QuerySet {
        index: a.index.clone(),
        queries: a.queries.clone(),
        qrels: Some(a.report_qrels.clone().unwrap_or_else(|| a.qrels.clone())),
        pipeline: pipeline.clone(),
        k: a.k,
        threads: Some(threads),
        sparse_queries: None,
    };
    let outcome = set.prepare()?.run(
        a.k,
        "tuned",
        RunScores::Separated,
        &measures,
        false,
        &|_| {},
    )?;
    let split = set.qrels.as_ref().unwrap();
    println!(
        "{} {} ({} queries): {}",
        if report.is_some() {
            "held-out"
        } else {
            "training split"
        },
        split.display(),
        outcome.queries.len(),
        outcome
            .metrics
            .iter()
            .map(|(m, v)| format!("{m} {v:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(path) = &a.output {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        outcome
            .run
            .write_trec(&mut out)
            .and_then(|_| std::io::Write::flush(&mut out))
            .with_context(|| format!("writing {}", path.display()))?;
        drop(out);
        let card = ferret_search::run_card::RunCard::new(
            &set,
            "tuned",
            RunScores::Separated,
            path,
            &outcome,
            std::env::args().collect(),
        )?;
        let card_path = ferret_search::run_card::path_beside(path);
        card.write(&card_path)?;
        eprintln!(
            "run -> {}, run card -> {}",
            path.display(),
            card_path.display()
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
        let all = grid(&[a.values.len(), b.values.len()]);
        assert_eq!(all.len(), 8);
        assert_eq!(all[3], [1, 1]);
        let axes = [a, b];
        let text = fill(
            "rm3(fb_terms={fb_terms}) >> x(alpha={alpha})",
            &named(&axes, &all[3]),
        )
        .unwrap();
        assert_eq!(text, "rm3(fb_terms=10) >> x(alpha=0.1)");
        assert!(fill("bm25(k1={k1})", &[])
            .unwrap_err()
            .to_string()
            .contains("{k1} has no --grid"));
        assert!(fill("bm25", &named(&axes, &all[0]))
            .unwrap_err()
            .to_string()
            .contains("no {alpha} placeholder"));
        assert!(parse_axis("alpha").is_err());
        assert!(parse_axis("alpha=1:0:0.1").is_err());
        assert!(parse_axis("alpha=0:1:x").is_err());
    }

    /// A score with one peak at (7, 2, 5) over 10 × 4 × 8 values, separable so that coordinate
    /// ascent must find it, and how many settings each search evaluates.
    fn peak(s: &Setting) -> f64 {
        -((s[0] as f64 - 7.0).powi(2) + (s[1] as f64 - 2.0).powi(2) + (s[2] as f64 - 5.0).powi(2))
    }

    #[test]
    fn coordinate_ascent_climbs_to_the_peak_scoring_each_setting_once() {
        let sizes = [10, 4, 8];
        let mut calls = Vec::new();
        let mut score = |s: &Setting| {
            calls.push(s.clone());
            Ok(peak(s))
        };
        let (best, value) = coordinate_ascent(&sizes, vec![0, 0, 0], &mut score).unwrap();
        assert_eq!((best, value), (vec![7, 2, 5], 0.0));
        // Two passes (the second changes nothing) over 9 + 3 + 7 other values, plus the start.
        assert_eq!(calls.len(), 1 + 2 * (9 + 3 + 7));
        // Ties keep the current value: a flat score stops after one pass where it started.
        let (flat, _) = coordinate_ascent(&sizes, vec![3, 1, 4], &mut |_| Ok(1.0)).unwrap();
        assert_eq!(flat, [3, 1, 4]);
    }

    #[test]
    fn random_search_draws_distinct_settings_reproducibly() {
        let sizes = [10, 4, 8];
        let draw = |seed| random_settings(&sizes, 50, &mut StdRng::seed_from_u64(seed));
        let a = draw(7);
        assert_eq!(a.len(), 50);
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), 50);
        assert!(a.iter().all(|s| s.iter().zip(&sizes).all(|(v, n)| v < n)));
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        // Asking for more than there are gives every combination.
        assert_eq!(
            random_settings(&[2, 3], 10, &mut StdRng::seed_from_u64(0)),
            grid(&[2, 3])
        );
    }
}
