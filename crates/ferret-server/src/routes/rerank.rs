//! `POST /v1/rerank`: a query and candidate texts in, the texts re-ordered by any reranker
//! stage (a cross-encoder, or an LLM strategy) out; no index involved.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use ferret_models::Cancel;
use ferret_search::reranker::{Passage, Reranker};
use ferret_search::{SearchError, Trace};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerankRequest {
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub query: String,
    /// Candidates: plain strings, or objects with `text` (and optional `id`, `title`).
    #[schema(min_items = 1, max_items = 1000)]
    pub documents: Vec<Candidate>,
    /// A reranker stage such as `listwise(llm=smollm2, window=10)` or
    /// `rerank(model=<cross-encoder>)`, or a cross-encoder's name alone.
    #[schema(min_length = 1)]
    pub model: String,
    /// Keep the best n (default: all).
    #[serde(default, deserialize_with = "super::optional_integer")]
    #[schema(minimum = 1)]
    pub top_n: Option<usize>,
}

#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Candidate {
    Text(String),
    Document(CandidateDocument),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CandidateDocument {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub text: String,
}

#[derive(Serialize, ToSchema)]
pub struct RerankResponse {
    /// The reranker as it describes itself.
    pub model: String,
    pub took_ms: f64,
    pub results: Vec<RerankResult>,
}

#[derive(Serialize, ToSchema)]
pub struct RerankResult {
    /// Position of the candidate in the request.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub score: f32,
}

/// Re-orders candidate texts for a query.
#[utoipa::path(post, path = "/v1/rerank", tag = "search", request_body = RerankRequest,
    responses(
        (status = 200, description = "The candidates, best first", body = RerankResponse),
        (status = 400, description = "Bad request: empty query, no candidates, not a reranker", body = ErrorBody),
        (status = 403, description = "The model is not allowed on this server", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Timed out", body = ErrorBody),
    ))]
pub async fn rerank(
    State(state): State<Arc<AppState>>,
    body: Result<Json<RerankRequest>, JsonRejection>,
) -> Result<Json<RerankResponse>, ApiError> {
    let Json(req) = body?;
    super::check_query(&state, &req.query)?;
    let max = state.limits().max_rerank_documents;
    if req.documents.is_empty() || req.documents.len() > max {
        return Err(ApiError::bad_request(
            "bad_document_count",
            format!("send between 1 and {max} candidates"),
        ));
    }
    if req.top_n == Some(0) {
        return Err(ApiError::bad_request(
            "bad_top_n",
            "top_n must be at least 1",
        ));
    }
    let st = state.clone();
    let what = super::Work {
        name: format!("rerank {}", req.model),
        slow: true,
    };
    super::blocking(&state, what, move |cancel| run(&st, req, cancel).map(Json)).await
}

fn run(state: &AppState, req: RerankRequest, cancel: &Cancel) -> Result<RerankResponse, ApiError> {
    let start = Instant::now();
    let reranker = prepare(state, &req.model)?;
    let mut ids = Vec::with_capacity(req.documents.len());
    let passages: Vec<Passage> = req
        .documents
        .into_iter()
        .map(|c| {
            let (id, text) = match c {
                Candidate::Text(text) => (None, text),
                Candidate::Document(d) => {
                    let text = match d.title.filter(|t| !t.is_empty()) {
                        Some(title) => format!("{title}\n{}", d.text),
                        None => d.text,
                    };
                    (d.id, text)
                }
            };
            ids.push(id);
            Passage { text, score: 0.0 }
        })
        .collect();
    let mut trace = Trace::off().with_cancel(cancel.clone());
    let mut order = reranker
        .rerank(&req.query, &passages, &mut trace)
        .and_then(|order| trace.check().map(|()| order))
        .map_err(|e| match e {
            SearchError::Cancelled => ApiError::timeout(state.limits().timeout),
            e => ApiError::internal(format!("reranking failed: {e}")),
        })?;
    order.truncate(req.top_n.unwrap_or(order.len()));
    Ok(RerankResponse {
        model: reranker.describe(),
        took_ms: start.elapsed().as_secs_f64() * 1000.0,
        results: order
            .into_iter()
            .map(|(i, score)| RerankResult {
                index: i,
                id: ids[i].clone(),
                score,
            })
            .collect(),
    })
}

/// The reranker for `model` (a stage expression, or a cross-encoder's name), checked against
/// the server's model policy and cached.
fn prepare(state: &AppState, model: &str) -> Result<Arc<dyn Reranker>, ApiError> {
    let text = ferret_search::registry::reranker_expression(model, None);
    let expr = ferret_search::pipeline::parse_any(&text)
        .map_err(|e| ApiError::pipeline(e, Some(&text)))?;
    state.check_pipeline(&expr, &state.snapshot())?;
    let key = expr.to_string();
    if let Some(r) = state.cached_reranker(&key) {
        return Ok(r);
    }
    let reranker: Arc<dyn Reranker> = ferret_search::registry::prepare_reranker(&expr)
        .map_err(|e| ApiError::pipeline(e, Some(&text)))?
        .into();
    state.cache_reranker(key, reranker.clone());
    Ok(reranker)
}
