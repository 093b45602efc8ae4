//! The API's handlers, one module per resource.

pub mod documents;
pub mod index;
pub mod judgements;
pub mod pipeline;
pub mod rerank;
pub mod search;

use std::sync::Arc;
use std::time::Instant;

use ferret_models::Cancel;

use crate::error::ApiError;
use crate::state::AppState;

/// Runs CPU-bound work (searching, reranking) off the async workers, at most `--workers` at a
/// time (more would only thrash the cores and multiply scratch memory), and answers `timeout`
/// when waiting plus working take longer than the server's limit. The work gets the request's
/// [`Cancel`], set at that limit: its stages stop at their next check and free the slot.
/// Slow work (see [`Work`]) first waits for one of all slots but one, so that fast pipelines
/// always find a slot.
pub async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    what: Work,
    work: impl FnOnce(&Cancel) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    run_blocking(state, Some(what), work).await
}

/// What a request's work is, for the slow lane.
pub struct Work {
    /// The pipeline's or reranker's text: its time is remembered under this name.
    pub name: String,
    /// Known to be slow before it runs (it reranks with a model).
    pub slow: bool,
}

/// [`blocking`] for a write, which takes no worker slot: writes are one at a time already (the
/// writer lock), and must never leave searches waiting for a slot. A write is not cancelled:
/// one that outlives its request still commits.
pub async fn blocking_write<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    run_blocking(state, None, move |_: &Cancel| work()).await
}

async fn run_blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    what: Option<Work>,
    work: impl FnOnce(&Cancel) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let limit = state.limits().timeout;
    let deadline = Instant::now() + limit;
    let cancel = match what {
        Some(_) => Cancel::until(Some(deadline)),
        None => Cancel::never(),
    };
    let st = state.clone();
    let work_cancel = cancel.clone();
    let run = async move {
        let closed = |_| ApiError::internal("the server is shutting down");
        let mut slots = Vec::new();
        if let Some(w) = &what {
            if w.slow || st.costs.is_slow(&w.name) {
                slots.push(st.slow_lane.clone().acquire_owned().await.map_err(closed)?);
            }
            slots.push(st.workers.clone().acquire_owned().await.map_err(closed)?);
        }
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = work(&work_cancel);
            let ended = Instant::now();
            if let Some(w) = &what {
                st.costs.record(&w.name, ended - started);
                if let Some(late) = ended.checked_duration_since(deadline) {
                    st.metrics.overrun.observe(late.as_secs_f64());
                }
            }
            drop(slots);
            result
        })
        .await
        .map_err(|join| ApiError::internal(format!("the request's work failed: {join}")))?
    };
    match tokio::time::timeout(limit, run).await {
        Ok(result) => result,
        Err(_) => {
            cancel.cancel();
            Err(ApiError::timeout(limit))
        }
    }
}

/// JSON Schema's `integer`: 3 and 3.0 alike (schema-driven clients send either); negative or
/// fractional numbers are refused.
pub fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    use serde::de::Error;
    let n = <serde_json::Number as serde::Deserialize>::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return usize::try_from(u).map_err(|_| D::Error::custom(format!("{n} is too large")));
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u32::MAX as f64 => Ok(f as usize),
        _ => Err(D::Error::custom(format!(
            "expected a non-negative integer, got {n}"
        ))),
    }
}

/// [`integer`] or null.
pub fn optional_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Int(#[serde(deserialize_with = "integer")] usize);
    Ok(<Option<Int> as serde::Deserialize>::deserialize(d)?.map(|Int(n)| n))
}

/// Checks a query's text against the limits.
pub fn check_query(state: &AppState, query: &str) -> Result<(), ApiError> {
    if query.trim().is_empty() {
        return Err(ApiError::bad_request("empty_query", "the query is empty"));
    }
    let max = state.limits().max_query_chars;
    let n = query.chars().count();
    if n > max {
        return Err(ApiError::bad_request(
            "query_too_long",
            format!("the query has {n} characters; this server allows at most {max}"),
        ));
    }
    Ok(())
}
