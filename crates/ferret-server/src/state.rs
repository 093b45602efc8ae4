//! What the server holds: the current index snapshot (swapped atomically after each commit, so
//! searches never wait for a writer), the writer lock, prepared stages and rerankers, the
//! model policy and the limits.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::StatusCode;
use ferret_index::{DocNo, Index};
use ferret_search::pipeline::{Expr, Value};
use ferret_search::reranker::Reranker;
use ferret_search::Stage;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Caps on what one request may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_query_chars: usize,
    pub max_k: usize,
    /// Stages in one pipeline (retrievers, feedback, fusion and rerankers all count).
    pub max_pipeline_stages: usize,
    pub max_rerank_documents: usize,
    pub max_documents_per_request: usize,
    /// Wall time for one search, rerank or write before the request is answered `timeout`
    /// (searches and reranks are then cancelled).
    pub timeout: Duration,
    /// Work (a pipeline, a reranker) that has taken longer than this on average is slow:
    /// slow work gets all worker slots but one, which stays free for fast pipelines.
    pub slow_work: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_query_chars: 1000,
            max_k: 1000,
            max_pipeline_stages: 16,
            max_rerank_documents: 1000,
            max_documents_per_request: 1000,
            timeout: Duration::from_secs(30),
            slow_work: Duration::from_millis(250),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub index: PathBuf,
    pub limits: Limits,
    /// When set, write endpoints need `Authorization: Bearer <key>` (or `X-API-Key`).
    pub api_key: Option<String>,
    /// Models a request may name besides the index's own and ferret's known ids and aliases
    /// (folders, GGUF files, Hub ids). Nothing else named in a request reaches the file system.
    pub allowed_models: Vec<String>,
    /// OpenAI-compatible base URLs a request may send LLM calls to (`api=` of LLM stages).
    pub allowed_apis: Vec<String>,
    /// Threads for indexing added documents.
    pub threads: usize,
    /// Searches and reranks running at once; more wait their turn (writes take no slot).
    pub workers: usize,
    /// Relevance judgements for the page and `/v1/search` (`qrels`), by name.
    pub judgements: Vec<Arc<crate::judgements::JudgementSet>>,
}

/// One committed generation of the index, with what is derived from it.
pub struct Snapshot {
    pub index: Arc<Index>,
    /// Prepared pipelines by their text, bound to this generation.
    stages: Mutex<HashMap<String, Arc<dyn Stage>>>,
}

/// Prepared pipelines kept per snapshot; the cache is emptied when it reaches this size.
const STAGE_CACHE: usize = 64;
/// Kinds of work whose cost is remembered; the table is emptied when it reaches this size.
const COST_TABLE: usize = 1024;

impl Snapshot {
    pub fn open(dir: &std::path::Path) -> Result<Self, ferret_index::IndexError> {
        let index = Index::open(dir)?;
        Ok(Snapshot {
            index: Arc::new(index),
            stages: Mutex::new(HashMap::new()),
        })
    }

    /// The internal number of a live document's id.
    pub fn find(&self, id: &str) -> Option<DocNo> {
        self.index.docstore().find(id)
    }

    pub fn cached_stage(&self, key: &str) -> Option<Arc<dyn Stage>> {
        self.stages.lock().ok()?.get(key).cloned()
    }

    pub fn cache_stage(&self, key: String, stage: Arc<dyn Stage>) {
        if let Ok(mut m) = self.stages.lock() {
            if m.len() >= STAGE_CACHE {
                m.clear();
            }
            m.insert(key, stage);
        }
    }
}

pub struct AppState {
    pub options: ServerOptions,
    snapshot: ArcSwap<Snapshot>,
    /// Held by the one write in progress; searches never take it.
    pub writer: Arc<tokio::sync::Mutex<()>>,
    /// Slots for CPU-bound work (`ServerOptions::workers`).
    pub workers: Arc<tokio::sync::Semaphore>,
    /// What slow work takes before it may wait for a worker slot: all slots but one (one, when
    /// there is only one), so that slow pipelines cannot starve fast ones.
    pub slow_lane: Arc<tokio::sync::Semaphore>,
    /// Mean time of each kind of work (pipeline text, reranker), to tell slow from fast.
    pub costs: WorkCosts,
    rerankers: Mutex<HashMap<String, Arc<dyn Reranker>>>,
    allowed_models: HashSet<String>,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(options: ServerOptions) -> Result<Self, ferret_index::IndexError> {
        let snapshot = Snapshot::open(&options.index)?;
        let mut allowed: HashSet<String> = options.allowed_models.iter().cloned().collect();
        for k in ferret_models::source::KNOWN {
            allowed.insert(k.id.to_string());
            allowed.extend(k.aliases.iter().map(|a| a.to_string()));
        }
        let metrics = Metrics::new();
        let workers = options.workers.max(1);
        let costs = WorkCosts::new(options.limits.slow_work);
        metrics.set_index(&snapshot.index);
        Ok(AppState {
            options,
            snapshot: ArcSwap::from_pointee(snapshot),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            workers: Arc::new(tokio::sync::Semaphore::new(workers)),
            slow_lane: Arc::new(tokio::sync::Semaphore::new(
                workers.saturating_sub(1).max(1),
            )),
            costs,
            rerankers: Mutex::new(HashMap::new()),
            allowed_models: allowed,
            metrics,
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Makes a newly committed generation the one searches see.
    pub fn publish(&self, snapshot: Snapshot) {
        self.metrics.set_index(&snapshot.index);
        self.snapshot.store(Arc::new(snapshot));
    }

    pub fn limits(&self) -> &Limits {
        &self.options.limits
    }

    /// A judgement set by name, or `unknown_qrels` (404) naming the ones there are.
    pub fn judgement_set(
        &self,
        name: &str,
    ) -> Result<Arc<crate::judgements::JudgementSet>, ApiError> {
        let sets = &self.options.judgements;
        sets.iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_qrels",
                    if known.is_empty() {
                        format!(
                            "no judgements named '{name}': the server was started without --qrels"
                        )
                    } else {
                        format!(
                            "no judgements named '{name}' (there are: {})",
                            known.join(", ")
                        )
                    },
                )
            })
    }

    pub fn cached_reranker(&self, key: &str) -> Option<Arc<dyn Reranker>> {
        self.rerankers.lock().ok()?.get(key).cloned()
    }

    pub fn cache_reranker(&self, key: String, reranker: Arc<dyn Reranker>) {
        if let Ok(mut m) = self.rerankers.lock() {
            if m.len() >= STAGE_CACHE {
                m.clear();
            }
            m.insert(key, reranker);
        }
    }

    /// Refuses a pipeline whose stages name a model or an API the server does not allow, or
    /// that has more stages than the limit. Which arguments name models and endpoints is each
    /// stage's own declaration (`StageSpec::model_args`, `endpoint_args`); a model argument
    /// may name one of the index's own representations' models.
    pub fn check_pipeline(&self, expr: &Expr, snapshot: &Snapshot) -> Result<(), ApiError> {
        let index_models: HashSet<&str> = snapshot
            .index
            .manifest()
            .representations
            .iter()
            .filter_map(|e| e.model.as_ref().map(|m| m.id.as_str()))
            .collect();
        let mut stages = 0;
        self.walk(expr, &index_models, &mut stages)?;
        let max = self.limits().max_pipeline_stages;
        if stages > max {
            return Err(ApiError::bad_request(
                "pipeline_too_large",
                format!("the pipeline has {stages} stages; this server allows at most {max}"),
            ));
        }
        Ok(())
    }

    fn walk(
        &self,
        expr: &Expr,
        index_models: &HashSet<&str>,
        stages: &mut usize,
    ) -> Result<(), ApiError> {
        match expr {
            Expr::Stage {
                name, inputs, args, ..
            } => {
                *stages += 1;
                let (models, endpoints) = ferret_search::registry::spec(name)
                    .map_or((&[][..], &[][..]), |s| (s.model_args, s.endpoint_args));
                for a in args {
                    let Value::Text(v) = &a.value else { continue };
                    let name = a.name.as_str();
                    let refused = if models.contains(&name) {
                        !self.allowed_models.contains(v) && !index_models.contains(v.as_str())
                    } else if endpoints.contains(&name) {
                        !self.options.allowed_apis.iter().any(|x| x == v)
                    } else {
                        false
                    };
                    if refused {
                        return Err(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "model_not_allowed",
                            format!(
                                "{}={v:?} is not allowed on this server (allowed: the index's models, ferret's known model ids and aliases, and what the server was started with --allow-model / --allow-api)",
                                a.name
                            ),
                        ));
                    }
                }
                for i in inputs {
                    self.walk(i, index_models, stages)?;
                }
                Ok(())
            }
            Expr::Cutoff { input, .. } => self.walk(input, index_models, stages),
            Expr::Then { first, then } => {
                self.walk(first, index_models, stages)?;
                self.walk(then, index_models, stages)
            }
        }
    }

    /// Whether a write request carries the API key (always true when none is configured).
    pub fn authorized(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(key) = &self.options.api_key else {
            return true;
        };
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let header = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        [bearer, header]
            .into_iter()
            .flatten()
            .any(|given| constant_time_eq(given.as_bytes(), key.as_bytes()))
    }
}

/// How long each kind of work (a pipeline's text, a reranker) has taken: a moving average in
/// which recent runs count most.
pub struct WorkCosts {
    means: Mutex<HashMap<String, Duration>>,
    slow: Duration,
}

impl WorkCosts {
    /// Work taking longer than `slow` on average is slow.
    pub fn new(slow: Duration) -> Self {
        WorkCosts {
            means: Mutex::new(HashMap::new()),
            slow,
        }
    }

    /// Whether `work` has been slow on average. Work never seen counts as fast, so that a
    /// flood of slow work cannot keep a fast pipeline from ever being measured.
    pub fn is_slow(&self, work: &str) -> bool {
        let means = self.means.lock().unwrap_or_else(|p| p.into_inner());
        means.get(work).is_some_and(|&mean| mean > self.slow)
    }

    pub fn record(&self, work: &str, took: Duration) {
        let mut means = self.means.lock().unwrap_or_else(|p| p.into_inner());
        if means.len() >= COST_TABLE && !means.contains_key(work) {
            means.clear();
        }
        means
            .entry(work.to_string())
            .and_modify(|mean| *mean = mean.mul_f64(0.75) + took.mul_f64(0.25))
            .or_insert(took);
    }
}

/// Whether a pipeline runs a model on every candidate (a reranker stage: a cross-encoder, an
/// LLM): slow from its first request on, before any has been measured.
pub fn reranks(expr: &Expr) -> bool {
    match expr {
        Expr::Stage { name, inputs, .. } => {
            ferret_search::registry::spec(name)
                .is_some_and(|s| matches!(s.build, ferret_search::args::Build::Reranker(_)))
                || inputs.iter().any(reranks)
        }
        Expr::Cutoff { input, .. } => reranks(input),
        Expr::Then { first, then } => reranks(first) || reranks(then),
    }
}

/// Compares without an early exit, so response time does not tell how much of a key matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(text: &str) -> Expr {
        ferret_search::pipeline::parse_any(text).unwrap()
    }

    #[test]
    fn pipelines_with_a_reranker_are_slow_from_the_start() {
        assert!(reranks(&expr("bm25 % 20 >> pointwise(llm=smollm2)")));
        assert!(reranks(&expr("rrf(bm25, bm25 % 50 >> rerank(model=x))")));
        assert!(!reranks(&expr("rrf(bm25 % 100, dense) >> rm3")));
    }

    #[test]
    fn work_is_slow_when_its_mean_time_is() {
        let costs = WorkCosts::new(Duration::from_millis(100));
        assert!(!costs.is_slow("bm25"), "never seen: fast");
        costs.record("bm25", Duration::from_millis(2));
        costs.record("colbert", Duration::from_millis(400));
        assert!(!costs.is_slow("bm25"));
        assert!(costs.is_slow("colbert"));
        // One fast run does not make slow work fast at once; a run of them does.
        costs.record("colbert", Duration::from_millis(1));
        assert!(costs.is_slow("colbert"));
        for _ in 0..10 {
            costs.record("colbert", Duration::from_millis(1));
        }
        assert!(!costs.is_slow("colbert"));
    }
}
