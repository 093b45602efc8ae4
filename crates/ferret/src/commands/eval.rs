use std::path::PathBuf;

use ferret_eval::{
    compare_with_first, evaluate, Comparison, EvalOptions, Evaluation, Measure, Qrels, Run,
};

#[derive(clap::Args)]
pub struct Args {
    /// Qrels: TREC (qid iter docid rel) or BEIR TSV (query-id corpus-id score)
    #[arg(long)]
    qrels: PathBuf,
    /// TREC run files; with several, each is compared with the first
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Measures, trec_eval style (ndcg_cut.10, P.5,10, map) or ir_measures style (nDCG@10, AP,
    /// RR@10). Without -m, as trec_eval prints its default measures: AP, Rprec, Bpref, RR,
    /// P@5,10,20,100, nDCG@10 and R@100,1000
    #[arg(short, long = "measure", num_args = 1.., default_values_t = DEFAULT_MEASURES.map(String::from))]
    measures: Vec<String>,
    /// JSON output
    #[arg(long)]
    json: bool,
    /// Per-query values as well as means
    #[arg(short = 'q')]
    per_query: bool,
    /// Average over all judged queries (missing queries score 0), like trec_eval -c
    #[arg(short = 'c')]
    complete: bool,
    /// Relevance level: judgements >= this are relevant for binary measures (trec_eval -l)
    #[arg(short = 'l', default_value_t = 1)]
    level: i32,
    /// Randomisation test trials
    #[arg(long, default_value_t = 10_000)]
    trials: usize,
    /// Write the per-query differences of each run against the first, in the first measure,
    /// as an SVG chart (one bar per query, sorted by gain)
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// trec_eval's default measures that ferret computes, with BEIR's nDCG@10 and recall.
const DEFAULT_MEASURES: [&str; 7] = [
    "map",
    "Rprec",
    "bpref",
    "recip_rank",
    "P.5,10,20,100",
    "nDCG@10",
    "recall.100,1000",
];

pub fn main(a: Args) -> anyhow::Result<()> {
    let measures = Measure::parse_all(&a.measures)?;
    let qrels = Qrels::read(&a.qrels)?;
    let opts = EvalOptions {
        relevance_level: a.level,
        average_over_judged: a.complete,
    };
    let mut evals = Vec::new();
    for path in &a.runs {
        let run = Run::read(path)?;
        if !run.query_ids().any(|q| qrels.get(q).is_some()) {
            anyhow::bail!(
                "{} and {} share no query id (the run has {}, the qrels {}): a run of \
                 another query set, or the wrong qrels file?",
                path.display(),
                a.qrels.display(),
                examples(run.len(), run.query_ids()),
                examples(qrels.len(), qrels.query_ids()),
            );
        }
        evals.push(evaluate(&qrels, &run, &measures, opts));
    }
    let names: Vec<String> = a.runs.iter().map(|p| p.display().to_string()).collect();
    let comparisons = compare_with_first(&evals, a.trials);
    if let Some(path) = &a.plot {
        anyhow::ensure!(
            evals.len() >= 2,
            "--plot draws each run against the first: give at least two runs"
        );
        let queries = ferret_eval::compare::union_of_queries(&evals);
        let base = evals[0].column(0, queries.iter().copied());
        let runs: Vec<crate::plot::Deltas> = names[1..]
            .iter()
            .zip(&evals[1..])
            .map(|(name, e)| crate::plot::Deltas {
                run: name.clone(),
                deltas: e
                    .column(0, queries.iter().copied())
                    .iter()
                    .zip(&base)
                    .map(|(x, y)| x - y)
                    .collect(),
            })
            .collect();
        crate::plot::query_deltas(path, &names[0], &measures[0].to_string(), &runs)?;
    }
    if a.json {
        print_json(&names, &evals, &comparisons, a.per_query)?;
    } else {
        if a.per_query {
            for (name, e) in names.iter().zip(&evals) {
                for (qid, values) in &e.per_query {
                    for (m, v) in e.measures.iter().zip(values) {
                        println!("{name}\t{m}\t{qid}\t{v:.4}");
                    }
                }
            }
        }
        print_table(&names, &evals, &comparisons);
    }
    Ok(())
}

/// "3 queries: 1, 13, 36, …" for an error message.
fn examples<'a>(n: usize, ids: impl Iterator<Item = &'a str>) -> String {
    let first: Vec<&str> = ids.take(3).collect();
    let more = if n > 3 { ", …" } else { "" };
    format!("{n} queries: {}{more}", first.join(", "))
}

fn print_table(names: &[String], evals: &[Evaluation], comparisons: &[Comparison]) {
    let measures = &evals[0].measures;
    let width = names.iter().map(|n| n.len()).max().unwrap_or(3).max(3);
    print!("{:<width$}  {:>7}", "run", "queries");
    for m in measures {
        print!("  {:>10}", m.to_string());
    }
    println!();
    for (i, (name, e)) in names.iter().zip(evals).enumerate() {
        print!("{name:<width$}  {:>7}", e.num_queries());
        for (j, v) in e.mean.iter().enumerate() {
            let mark = if i == 0 {
                String::new()
            } else {
                let c = &comparisons[i - 1];
                let mut s = String::new();
                if c.t_test_p_holm[j] < 0.05 {
                    s.push('†');
                }
                if c.randomization_p_holm[j] < 0.05 {
                    s.push('‡');
                }
                s
            };
            print!("  {:>10}", format!("{v:.4}{mark}"));
        }
        println!();
    }
    if evals.len() > 1 {
        println!("† paired t-test, ‡ paired randomisation test: p < 0.05 against the first run (Holm–Bonferroni corrected)");
        println!("queries won / tied / lost against the first run:");
        for (name, c) in names[1..].iter().zip(comparisons) {
            print!("{name:<width$}  {:>7}", "");
            for j in 0..measures.len() {
                print!(
                    "  {:>10}",
                    format!("{}/{}/{}", c.wins[j], c.ties[j], c.losses[j])
                );
            }
            println!();
        }
    }
}

fn print_json(
    names: &[String],
    evals: &[Evaluation],
    comparisons: &[Comparison],
    per_query: bool,
) -> anyhow::Result<()> {
    let runs: Vec<serde_json::Value> = names
        .iter()
        .zip(evals)
        .enumerate()
        .map(|(i, (name, e))| {
            let mean: serde_json::Map<String, serde_json::Value> = e
                .measures
                .iter()
                .zip(&e.mean)
                .map(|(m, v)| (m.to_string(), (*v).into()))
                .collect();
            let mut obj =
                serde_json::json!({"run": name, "queries": e.num_queries(), "mean": mean});
            if i > 0 {
                let c = &comparisons[i - 1];
                let sig: serde_json::Map<String, serde_json::Value> = e
                    .measures
                    .iter()
                    .enumerate()
                    .map(|(j, m)| {
                        (
                            m.to_string(),
                            serde_json::json!({
                                "t_test_p": c.t_test_p[j], "t_test_p_holm": c.t_test_p_holm[j],
                                "randomization_p": c.randomization_p[j],
                                "randomization_p_holm": c.randomization_p_holm[j],
                                "wins": c.wins[j], "ties": c.ties[j], "losses": c.losses[j],
                            }),
                        )
                    })
                    .collect();
                obj["vs_first"] = sig.into();
            }
            if per_query {
                let pq: serde_json::Map<String, serde_json::Value> = e
                    .per_query
                    .iter()
                    .map(|(q, vals)| {
                        let m: serde_json::Map<String, serde_json::Value> = e
                            .measures
                            .iter()
                            .zip(vals)
                            .map(|(m, v)| (m.to_string(), (*v).into()))
                            .collect();
                        (q.clone(), m.into())
                    })
                    .collect();
                obj["per_query"] = pq.into();
            }
            obj
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "runs": runs }))?
    );
    Ok(())
}
