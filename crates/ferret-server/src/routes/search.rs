//! `POST /v1/search`: one query through a pipeline, with snippets and, on request, the
//! explain record (every stage's rank and score for each hit, fusion formulas, timings).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use ferret_models::Cancel;
use ferret_search::{Query, Trace};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::pipeline::{self, pipeline_schema};
use crate::error::{ApiError, ErrorBody};
use crate::judgements::{QueryEvaluation, EVAL_DEPTH};
use crate::snippet::{Highlighter, Segment};
use crate::state::AppState;

/// Characters of text shown around the matches.
const SNIPPET_CHARS: usize = 300;

fn default_k() -> usize {
    10
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The query text.
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub query: String,
    #[serde(default)]
    #[schema(schema_with = pipeline_schema)]
    pub pipeline: Option<serde_json::Value>,
    /// Number of hits (at most the server's limit, 1000 by default).
    #[serde(default = "default_k", deserialize_with = "super::integer")]
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    pub k: usize,
    /// Include each stage's rank and score per hit, and the stages' timings.
    #[serde(default)]
    pub explain: bool,
    /// An image to search with (base64, optionally as a `data:` URL): image stages such as
    /// `clip` embed it; text stages use `query`, which then serves as the image's label.
    #[serde(default)]
    #[schema(max_length = 20000000)]
    pub image: Option<String>,
    /// Judge the hits: each gets its grade in the named judgement set (`ferret serve
    /// --qrels`), and the response the query's measures over the first 1000 results.
    #[serde(default)]
    pub qrels: Option<QrelsRef>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QrelsRef {
    /// The judgement set's name (`GET /v1/qrels`).
    pub set: String,
    /// The judged query's id.
    pub query_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    pub query: String,
    /// The pipeline as run (canonical text form).
    pub pipeline: String,
    pub k: usize,
    /// Generation of the index the search ran on.
    pub generation: u64,
    pub took_ms: f64,
    pub hits: Vec<SearchHit>,
    /// The stages the query went through, in the order they ran (with `explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<StageRun>>,
    /// With `qrels`: the query's measures, as `ferret eval` computes them on a run of this
    /// pipeline (its first 1000 results, ties in ranked order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<QueryEvaluation>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    pub rank: usize,
    pub id: String,
    pub score: f32,
    pub title: String,
    /// Whether the document has an image (`/v1/documents/{id}/image`, `…/thumbnail`).
    pub has_image: bool,
    /// With `qrels`: the document's relevance grade for the query, `null` when unjudged.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i32>)]
    pub relevance: Option<Option<i32>>,
    /// Text around the query's matches; `hit` pieces matched a query term.
    pub snippet: Vec<Segment>,
    /// With `explain`: this hit's rank and score in every stage that ranked it (`stage`
    /// indexes `stages`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Vec<StagePosition>>,
}

#[derive(Serialize, ToSchema)]
pub struct StagePosition {
    pub stage: usize,
    pub rank: usize,
    pub score: f32,
    /// What the stage says about this hit (a sparse stage: the terms that matched and their
    /// contributions).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct StageRun {
    /// The stage's text form.
    pub stage: String,
    /// Nesting depth in the pipeline tree (0 = the whole pipeline).
    pub depth: usize,
    pub millis: f64,
    /// How a fusion stage combined its inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    /// What the stage derived for this query (an expanded query, LLM calls, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Runs one query through a pipeline.
#[utoipa::path(post, path = "/v1/search", tag = "search", request_body = SearchRequest,
    responses(
        (status = 200, description = "The ranking", body = SearchResponse),
        (status = 400, description = "Bad request: empty or too long query, k out of range, invalid pipeline", body = ErrorBody),
        (status = 403, description = "The pipeline names a model the server does not allow", body = ErrorBody),
        (status = 404, description = "No judgement set of that name (`qrels`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Timed out", body = ErrorBody),
    ))]
pub async fn search(
    State(state): State<Arc<AppState>>,
    body: Result<Json<SearchRequest>, JsonRejection>,
) -> Result<Json<SearchResponse>, ApiError> {
    let Json(req) = body?;
    super::check_query(&state, &req.query)?;
    let max_k = state.limits().max_k;
    if req.k == 0 || req.k > max_k {
        return Err(ApiError::bad_request(
            "k_out_of_range",
            format!("k must be between 1 and {max_k}"),
        ));
    }
    let parsed = pipeline::parse(req.pipeline.as_ref())?;
    let st = state.clone();
    let what = super::Work {
        name: format!("search {}", parsed.expr),
        slow: crate::state::reranks(&parsed.expr),
    };
    super::blocking(&state, what, move |cancel| {
        run(&st, req, parsed, cancel).map(Json)
    })
    .await
}

fn run(
    state: &AppState,
    req: SearchRequest,
    parsed: pipeline::Parsed,
    cancel: &Cancel,
) -> Result<SearchResponse, ApiError> {
    let start = Instant::now();
    let judged = match &req.qrels {
        Some(r) => {
            let set = state.judgement_set(&r.set)?;
            if !set.is_judged(&r.query_id) {
                return Err(ApiError::bad_request(
                    "unjudged_query",
                    format!("query '{}' has no judgements in '{}'", r.query_id, set.name),
                ));
            }
            Some((set, r.query_id.clone()))
        }
        None => None,
    };
    // Judged, the ranking is evaluated as deep as `ferret run` ranks by default.
    let depth = if judged.is_some() {
        req.k.max(EVAL_DEPTH)
    } else {
        req.k
    };
    let snapshot = state.snapshot();
    let stage = pipeline::prepare(state, &snapshot, &parsed)?;
    let index = &snapshot.index;
    let mut query = Query::new("q", req.query.clone());
    if let Some(image) = &req.image {
        query.image = Some(ferret_search::QueryImage::Bytes(Arc::new(decode_base64(
            image,
        )?)));
    }
    let trace = if req.explain {
        Trace::on()
    } else {
        Trace::off()
    };
    let mut trace = trace.with_cancel(cancel.clone());
    let mut found = trace
        .run(stage.as_ref(), &query, None, depth)
        .map_err(pipeline::search_failed(state, parsed.text.as_deref()))?;
    let evaluation = judged.as_ref().map(|(set, qid)| {
        let ranking = found
            .iter()
            .map(|h| (index.external_id(h.doc).to_string(), h.score as f64))
            .collect();
        set.evaluate(qid, ranking)
    });
    found.truncate(req.k);
    let analyzer = index
        .manifest()
        .lexical()
        .map_or(ferret_text::AnalyzerKind::En, |l| l.analyzer);
    let mut highlighter = Highlighter::new(analyzer, &req.query);
    let mut hits = Vec::with_capacity(found.len());
    for (i, h) in found.iter().enumerate() {
        let doc = index
            .document(h.doc)
            .map_err(|e| ApiError::internal(format!("reading a document: {e}")))?;
        let explain = req.explain.then(|| {
            trace
                .positions(h.doc)
                .into_iter()
                .enumerate()
                .filter_map(|(stage, p)| {
                    p.map(|(rank, score, detail)| StagePosition {
                        stage,
                        rank,
                        score,
                        detail: detail.cloned(),
                    })
                })
                .collect()
        });
        hits.push(SearchHit {
            relevance: judged.as_ref().map(|(set, qid)| set.grade(qid, &doc.id)),
            rank: i + 1,
            snippet: highlighter.snippet(&doc.text, SNIPPET_CHARS),
            id: doc.id,
            score: h.score,
            title: doc.title,
            has_image: doc.image.is_some(),
            explain,
        });
    }
    let stages = req.explain.then(|| {
        trace
            .entries
            .iter()
            .map(|e| StageRun {
                stage: e.stage.clone(),
                depth: e.depth,
                millis: e.millis,
                formula: e.formula.clone(),
                note: e.note.clone(),
            })
            .collect()
    });
    Ok(SearchResponse {
        query: req.query,
        pipeline: stage.describe(),
        k: req.k,
        generation: index.manifest().generation,
        took_ms: start.elapsed().as_secs_f64() * 1000.0,
        hits,
        stages,
        evaluation,
    })
}

/// The bytes of a base64 image (a `data:` URL's header is dropped).
fn decode_base64(image: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    let data = match image.split_once(";base64,") {
        Some((head, data)) if head.starts_with("data:") => data,
        _ => image,
    };
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| {
            ApiError::bad_request("invalid_image", format!("image is not valid base64: {e}"))
        })
}
