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

/// Runs CPU-bound work (searching, reranking, indexing) off the async workers, answering
/// `timeout` when it takes longer than the server's limit. The work itself is not
/// interrupted (stages cannot be cancelled midway); its result is dropped.
pub async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let limit = state.limits().timeout;
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ApiError::internal(format!(
            "the request's work failed: {join}"
        ))),
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
