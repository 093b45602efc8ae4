//! The API's handlers, one module per resource.

pub mod documents;
pub mod index;
pub mod pipeline;
pub mod rerank;
pub mod search;

use std::sync::Arc;

use axum::http::StatusCode;

use crate::error::ApiError;
use crate::state::AppState;

/// Runs CPU-bound work (searching, reranking) off the async workers, at most `--workers` at a
/// time (more would only thrash the cores and multiply scratch memory), and answers `timeout`
/// when waiting plus working take longer than the server's limit. The work itself is not
/// interrupted (stages cannot be cancelled midway): it keeps its worker slot until it ends, and
/// its result is dropped.
pub async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    run_blocking(state, Some(state.workers.clone()), work).await
}

/// [`blocking`] for a write, which takes no worker slot: writes are one at a time already (the
/// writer lock), and must never leave searches waiting for a slot.
pub async fn blocking_write<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    run_blocking(state, None, work).await
}

async fn run_blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    slots: Option<Arc<tokio::sync::Semaphore>>,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let limit = state.limits().timeout;
    let run = async move {
        let slot = match slots {
            Some(s) => Some(
                s.acquire_owned()
                    .await
                    .map_err(|_| ApiError::internal("the server is shutting down"))?,
            ),
            None => None,
        };
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(slot);
            result
        })
        .await
        .map_err(|join| ApiError::internal(format!("the request's work failed: {join}")))?
    };
    match tokio::time::timeout(limit, run).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than this server's limit of {:.1} s",
                limit.as_secs_f64()
            ),
        )),
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
