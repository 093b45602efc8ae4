//! Runs with run cards, as `ferret run` writes them, and their reproduction
//! (`ferret reproduce`), for `Pipeline.run` and `ferret.reproduce`.

use std::path::PathBuf;

use pyo3::prelude::*;

use ferret_eval::{Measure, RunScores};
use ferret_search::experiment::QuerySet;
use ferret_search::run_card::{self, Inputs, RunCard};
use ferret_search::SearchError;

use crate::error;

/// Runs the judged (or all) queries of a query file through `pipeline`, writes the TREC run to
/// `output` and its card beside it (`<output>.card.json`); returns the card's JSON.
#[pyfunction]
#[pyo3(signature = (index, queries, pipeline, k, output, qrels, measures, tag, raw_scores, threads, command))]
#[allow(clippy::too_many_arguments)]
pub fn run_query_set(
    py: Python<'_>,
    index: PathBuf,
    queries: PathBuf,
    pipeline: String,
    k: usize,
    output: PathBuf,
    qrels: Option<PathBuf>,
    measures: Vec<String>,
    tag: String,
    raw_scores: bool,
    threads: Option<usize>,
    command: Vec<String>,
) -> PyResult<String> {
    let measures = Measure::parse_all(&measures).map_err(error)?;
    let scores = if raw_scores {
        RunScores::Raw
    } else {
        RunScores::Separated
    };
    let set = QuerySet {
        index,
        queries,
        qrels,
        pipeline,
        k,
        threads,
        sparse_queries: None,
    };
    py.detach(|| {
        let outcome =
            ferret_search::experiment::execute(&set, &tag, scores, &measures, false, &|_| {})
                .map_err(error)?;
        let file = std::fs::File::create(&output)
            .map_err(|e| error(format!("creating {}: {e}", output.display())))?;
        let mut out = std::io::BufWriter::new(file);
        outcome
            .run
            .write_trec(&mut out)
            .and_then(|_| std::io::Write::flush(&mut out))
            .map_err(|e| error(format!("writing {}: {e}", output.display())))?;
        drop(out);
        let card = RunCard::new(&set, &tag, scores, &output, &outcome, command).map_err(error)?;
        card.write(&run_card::path_beside(&output)).map_err(error)?;
        Ok(card.to_json())
    })
}

/// A card file's text after checking that it reads as a run card (the text as written: its
/// numbers are not re-printed).
#[pyfunction]
pub fn read_card(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| {
        RunCard::read(&path)?;
        std::fs::read_to_string(&path).map_err(|source| SearchError::File {
            path: path.clone(),
            source,
        })
    })
    .map_err(error)
}

/// (measure, value in the card, value now).
type MetricRows = Vec<(String, f64, f64)>;

/// Re-runs a card; returns (measure, value in the card, value now) rows and whether the run
/// file came out identical.
#[pyfunction]
#[pyo3(signature = (card, index=None, queries=None, qrels=None, threads=None))]
pub fn reproduce(
    py: Python<'_>,
    card: PathBuf,
    index: Option<PathBuf>,
    queries: Option<PathBuf>,
    qrels: Option<PathBuf>,
    threads: Option<usize>,
) -> PyResult<(MetricRows, bool)> {
    py.detach(|| {
        let parsed = RunCard::read(&card)?;
        let inputs = Inputs {
            index,
            queries,
            qrels,
            threads,
        };
        parsed.reproduce(&card, inputs)
    })
    .map(|again| (again.metrics, again.same_run))
    .map_err(error)
}
