//! Run cards: everything needed to re-run a `ferret run` and check its numbers, written as
//! JSON beside the TREC run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ferret_eval::RunScores;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::run::Outcome;

#[derive(Debug, Serialize, Deserialize)]
pub struct RunCard {
    pub ferret_version: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
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

pub fn file_card(path: &Path) -> anyhow::Result<FileCard> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(FileCard {
        path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        sha256: crate::datasets::hex(&Sha256::digest(&bytes)),
    })
}

impl RunCard {
    pub fn new(
        set: &super::QuerySetArgs,
        tag: &str,
        scores: RunScores,
        run_path: &Path,
        outcome: &Outcome,
    ) -> anyhow::Result<Self> {
        let expr = ferret_search::pipeline::parse_any(&set.pipeline)?;
        let n = outcome.queries.len();
        Ok(RunCard {
            ferret_version: env!("CARGO_PKG_VERSION").to_string(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            command: std::env::args().collect(),
            pipeline: set.pipeline.clone(),
            pipeline_resolved: outcome.prepared.stage.describe(),
            pipeline_json: serde_json::to_value(&expr)?,
            index: IndexCard {
                path: std::fs::canonicalize(&set.index).unwrap_or_else(|_| set.index.clone()),
                manifest: serde_json::to_value(outcome.prepared.index.manifest())?,
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

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a ferret run card", path.display()))
    }
}
