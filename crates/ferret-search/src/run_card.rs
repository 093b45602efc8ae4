//! Run cards: everything needed to re-run a query set and check its numbers, written as JSON
//! beside the TREC run (`run.trec` → `run.trec.card.json`), by `ferret run` and by Python's
//! `Pipeline.run`; [`RunCard::reproduce`] re-runs one.

use std::path::{Path, PathBuf};

use ferret_eval::{Measure, RunScores};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::experiment::{self, Outcome, QuerySet};
use crate::SearchError;

#[derive(Debug, Serialize, Deserialize)]
pub struct RunCard {
    pub ferret_version: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// The command line (or the Python call) that made the run.
    pub command: Vec<String>,
    /// The pipeline as given.
    pub pipeline: String,
    /// Every stage with every parameter, defaults included.
    pub pipeline_resolved: String,
    /// The pipeline's JSON form.
    pub pipeline_json: serde_json::Value,
    pub index: IndexCard,
    pub queries: FileCard,
    pub qrels: Option<FileCard>,
    /// Precomputed sparse query vectors the run used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_queries: Option<FileCard>,
    pub k: usize,
    pub threads: usize,
    pub tag: String,
    /// How the run file's scores were written (cards from before this field: raw).
    #[serde(default = "raw_scores")]
    pub scores: RunScores,
    pub run: FileCard,
    pub timings: Timings,
    /// Mean of each measure over the judged queries (empty without qrels).
    pub metrics: Vec<Metric>,
    /// The cost of the LLM stages: model calls, cached answers, tokens (absent without LLMs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm_usage: Vec<LlmUsage>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LlmUsage {
    pub model: String,
    pub calls: u64,
    pub cache_hits: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens whose keys and values came from an earlier prompt instead of being run.
    #[serde(default)]
    pub reused_prompt_tokens: u64,
    pub calls_per_query: f64,
    pub tokens_per_query: f64,
}

fn raw_scores() -> RunScores {
    RunScores::Raw
}

/// Every LLM used in this process, with its cost per query.
pub fn llm_usage(queries: usize) -> Vec<LlmUsage> {
    let per = |x: u64| x as f64 / queries.max(1) as f64;
    ferret_models::llm::usage_report()
        .into_iter()
        .map(|(model, u)| LlmUsage {
            model,
            calls: u.calls,
            cache_hits: u.cache_hits,
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            reused_prompt_tokens: u.reused_prompt_tokens,
            calls_per_query: per(u.calls + u.cache_hits),
            tokens_per_query: per(u.prompt_tokens + u.completion_tokens),
        })
        .collect()
}

#[derive(Debug, Serialize, Deserialize)]
pub struct IndexCard {
    pub path: PathBuf,
    /// The index's manifest: representations, model ids and weight hashes, generation.
    pub manifest: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FileCard {
    pub path: PathBuf,
    pub sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Timings {
    pub queries: usize,
    pub seconds: f64,
    pub queries_per_second: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Metric {
    pub measure: String,
    pub value: f64,
}

/// `run.trec` → `run.trec.card.json`.
pub fn path_beside(run: &Path) -> PathBuf {
    let mut name = run.as_os_str().to_owned();
    name.push(".card.json");
    PathBuf::from(name)
}

fn read_file(path: &Path) -> Result<Vec<u8>, SearchError> {
    std::fs::read(path).map_err(|source| SearchError::File {
        path: path.to_path_buf(),
        source,
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn file_card(path: &Path) -> Result<FileCard, SearchError> {
    let bytes = read_file(path)?;
    Ok(FileCard {
        path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        sha256: sha256_hex(&bytes),
    })
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    // The card's own types and the manifest serialize without fail-able parts.
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

impl RunCard {
    /// The card of `outcome`, a run of `set` written to `run_path` by `command`.
    pub fn new(
        set: &QuerySet,
        tag: &str,
        scores: RunScores,
        run_path: &Path,
        outcome: &Outcome,
        command: Vec<String>,
    ) -> Result<Self, SearchError> {
        let expr = crate::pipeline::parse_any(&set.pipeline)?;
        let n = outcome.queries.len();
        Ok(RunCard {
            ferret_version: env!("CARGO_PKG_VERSION").to_string(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            command,
            pipeline: set.pipeline.clone(),
            pipeline_resolved: outcome.prepared.stage.describe(),
            pipeline_json: to_json(&expr),
            index: IndexCard {
                path: std::fs::canonicalize(&set.index).unwrap_or_else(|_| set.index.clone()),
                manifest: to_json(outcome.prepared.index.manifest()),
            },
            queries: file_card(&set.queries)?,
            qrels: set.qrels.as_deref().map(file_card).transpose()?,
            sparse_queries: set.sparse_queries.as_deref().map(file_card).transpose()?,
            k: set.k,
            threads: outcome.prepared.threads,
            tag: tag.to_string(),
            scores,
            run: file_card(run_path)?,
            timings: Timings {
                queries: n,
                seconds: outcome.seconds,
                queries_per_second: n as f64 / outcome.seconds,
            },
            metrics: outcome
                .metrics
                .iter()
                .map(|(measure, value)| Metric {
                    measure: measure.clone(),
                    value: *value,
                })
                .collect(),
            llm_usage: llm_usage(n),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn write(&self, path: &Path) -> Result<(), SearchError> {
        std::fs::write(path, self.to_json()).map_err(|source| SearchError::File {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn read(path: &Path) -> Result<Self, SearchError> {
        let bytes = read_file(path)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            SearchError::Invalid(format!(
                "{}:{}:{}: not a ferret run card: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })
    }

    /// Re-runs the card (its index, queries and qrels, or the paths in `inputs` where given)
    /// after checking that the inputs are the ones it was made from, and compares the metrics.
    pub fn reproduce(&self, card_path: &Path, inputs: Inputs) -> Result<Reproduction, SearchError> {
        let invalid = |m: String| SearchError::Invalid(format!("{}: {m}", card_path.display()));
        if self.metrics.is_empty() {
            return Err(invalid(
                "the card records no metrics (the run had no qrels), so there is nothing to check"
                    .into(),
            ));
        }
        let qrels_card = self
            .qrels
            .as_ref()
            .ok_or_else(|| invalid("the card names no qrels file".into()))?;
        let qrels = inputs.qrels.unwrap_or_else(|| qrels_card.path.clone());
        let set = QuerySet {
            index: inputs.index.unwrap_or_else(|| self.index.path.clone()),
            queries: inputs.queries.unwrap_or_else(|| self.queries.path.clone()),
            qrels: Some(qrels.clone()),
            pipeline: self.pipeline.clone(),
            k: self.k,
            threads: inputs.threads,
            sparse_queries: self.sparse_queries.as_ref().map(|f| f.path.clone()),
        };
        let mut expected = vec![
            ("queries", &set.queries, &self.queries.sha256),
            ("qrels", &qrels, &qrels_card.sha256),
        ];
        if let (Some(path), Some(card)) = (&set.sparse_queries, &self.sparse_queries) {
            expected.push(("sparse queries", path, &card.sha256));
        }
        for (what, path, sha256) in expected {
            let now = file_card(path)?;
            if &now.sha256 != sha256 {
                return Err(invalid(format!(
                    "{what} file {} differs from the one the card was made with (sha256 {} ≠ {sha256})",
                    path.display(),
                    now.sha256
                )));
            }
        }
        let manifest = to_json(ferret_index::Index::open(&set.index)?.manifest());
        for key in ["representations", "doc_count"] {
            let (now, then) = (manifest.get(key), self.index.manifest.get(key));
            if now != then {
                let show =
                    |v: Option<&serde_json::Value>| v.map_or("null".into(), |v| v.to_string());
                return Err(invalid(format!(
                    "index {} differs from the card's: {key} is {} now, {} in the card",
                    set.index.display(),
                    show(now),
                    show(then)
                )));
            }
        }
        let names: Vec<&str> = self.metrics.iter().map(|m| m.measure.as_str()).collect();
        let measures = Measure::parse_all(&names)?;
        let outcome = experiment::execute(&set, &self.tag, self.scores, &measures, false, &|_| {})?;
        let mut trec = Vec::new();
        outcome
            .run
            .write_trec(&mut trec)
            .map_err(|e| SearchError::Invalid(format!("writing the run: {e}")))?;
        Ok(Reproduction {
            metrics: self
                .metrics
                .iter()
                .zip(&outcome.metrics)
                .map(|(m, (_, now))| (m.measure.clone(), m.value, *now))
                .collect(),
            same_run: sha256_hex(&trec) == self.run.sha256,
        })
    }
}

/// Inputs that replace the card's paths (e.g. on another machine).
#[derive(Debug, Default)]
pub struct Inputs {
    pub index: Option<PathBuf>,
    pub queries: Option<PathBuf>,
    pub qrels: Option<PathBuf>,
    pub threads: Option<usize>,
}

/// A card run again: each measure's value in the card and now, and whether the run file came
/// out byte for byte the same.
#[derive(Debug)]
pub struct Reproduction {
    pub metrics: Vec<(String, f64, f64)>,
    pub same_run: bool,
}

impl Reproduction {
    /// The measures that differ from the card's by more than `tolerance`.
    pub fn mismatches(&self, tolerance: f64) -> Vec<&str> {
        self.metrics
            .iter()
            .filter(|(_, card, now)| {
                (now - card).abs() > tolerance || now.is_nan() != card.is_nan()
            })
            .map(|(m, _, _)| m.as_str())
            .collect()
    }
}
