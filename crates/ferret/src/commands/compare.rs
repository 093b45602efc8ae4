//! `ferret compare`: two runs, query by query, as a self-contained HTML report (see
//! `ferret_eval::report`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use ferret_eval::report::{Report, ReportInput};
use ferret_eval::{EvalOptions, Measure, Qrels, Run};

/// The measures a report shows without -m.
pub const REPORT_MEASURES: [&str; 3] = ["nDCG@10", "R@100", "AP"];

#[derive(clap::Args)]
pub struct Args {
    /// Qrels: TREC or BEIR TSV
    #[arg(long)]
    qrels: PathBuf,
    /// The baseline run, then the run compared with it
    #[arg(num_args = 2, required = true, value_names = ["BASELINE", "RUN"])]
    runs: Vec<PathBuf>,
    /// The report to write (HTML, one self-contained file)
    #[arg(short, long)]
    output: PathBuf,
    /// Measures (trec_eval or ir_measures names); the chart starts with the first
    #[arg(short, long = "measure", num_args = 1.., default_values_t = REPORT_MEASURES.map(String::from))]
    measures: Vec<String>,
    /// Queries (BEIR JSONL or TSV), to show each query's text
    #[arg(long)]
    queries: Option<PathBuf>,
    /// The index the runs searched, to show documents' titles
    #[arg(long)]
    index: Option<PathBuf>,
    /// The report's heading (default: the qrels file's name)
    #[arg(long)]
    title: Option<String>,
    /// Average over all judged queries (missing queries score 0), like trec_eval -c
    #[arg(short = 'c')]
    complete: bool,
    /// Relevance level for binary measures (trec_eval -l)
    #[arg(short = 'l', default_value_t = 1)]
    level: i32,
    /// Randomisation test trials
    #[arg(long, default_value_t = 10_000)]
    trials: usize,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let measures = Measure::parse_all(&a.measures)?;
    let qrels = Qrels::read(&a.qrels)?;
    let mut runs = Vec::new();
    for path in &a.runs {
        let run = Run::read(path)?;
        if !run.query_ids().any(|q| qrels.get(q).is_some()) {
            anyhow::bail!(
                "{} and {} share no query id: a run of another query set, or the wrong qrels file?",
                path.display(),
                a.qrels.display()
            );
        }
        runs.push(run);
    }
    let texts: HashMap<String, String> = match &a.queries {
        Some(path) => ferret_search::queries::read_queries(path)?
            .into_iter()
            .map(|q| (q.id, q.text))
            .collect(),
        None => HashMap::new(),
    };
    let index = a.index.as_deref().map(super::open_index).transpose()?;
    let title = |doc: &str| {
        let index = index.as_ref()?;
        let d = index.document(index.docstore().find(doc)?).ok()?;
        (!d.title.is_empty()).then_some(d.title)
    };
    let name = |p: &PathBuf| p.display().to_string();
    let report = Report::build(&ReportInput {
        title: a.title.clone().unwrap_or_else(|| name(&a.qrels)),
        qrels_name: name(&a.qrels),
        qrels: &qrels,
        runs: [(name(&a.runs[0]), &runs[0]), (name(&a.runs[1]), &runs[1])],
        measures: &measures,
        opts: EvalOptions {
            relevance_level: a.level,
            average_over_judged: a.complete,
        },
        trials: a.trials,
        query_text: &|q| texts.get(q).cloned(),
        doc_title: &title,
    });
    std::fs::write(&a.output, report.html())
        .with_context(|| format!("writing {}", a.output.display()))?;
    let c = &report.comparison;
    println!(
        "{}: {} queries; {} {:.4} → {:.4}, {} wins, {} ties, {} losses",
        a.output.display(),
        report.queries.len(),
        report.measures[0],
        report.means[0][0],
        report.means[1][0],
        c.wins[0],
        c.ties[0],
        c.losses[0]
    );
    Ok(())
}
