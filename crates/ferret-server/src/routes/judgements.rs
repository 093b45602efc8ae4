//! Relevance judgements on the server: the sets (`GET /v1/qrels`), their judged queries
//! (`GET /v1/qrels/{name}/queries`), and `/compare`, two pipelines over every judged query
//! as the self-contained report `ferret compare` writes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use ferret_eval::report::{Report, ReportInput};
use ferret_eval::{EvalOptions, Run};
use ferret_models::Cancel;
use ferret_search::Trace;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::pipeline;
use crate::error::{ApiError, ErrorBody};
use crate::judgements::{JudgementSet, EVAL_DEPTH, MEASURES};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct JudgementSetInfo {
    pub name: String,
    /// The qrels file it was read from.
    pub source: String,
    /// Queries with judgements.
    pub queries: usize,
    /// Judged queries whose text the server has (from `--queries`); only these can be searched
    /// by text and compared.
    pub queries_with_text: usize,
    /// The measures reported per query.
    pub measures: Vec<String>,
}

/// The judgement sets the server was started with.
#[utoipa::path(get, path = "/v1/qrels", tag = "evaluation",
    responses((status = 200, description = "The judgement sets", body = Vec<JudgementSetInfo>)))]
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Vec<JudgementSetInfo>> {
    Json(
        state
            .options
            .judgements
            .iter()
            .map(|s| JudgementSetInfo {
                name: s.name.clone(),
                source: s.source.clone(),
                queries: s.qrels.len(),
                queries_with_text: s.queries.len(),
                measures: MEASURES.map(String::from).to_vec(),
            })
            .collect(),
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueriesParams {
    /// Words that must all appear in the query's id or text (case-insensitive); all queries
    /// without it.
    #[serde(default)]
    pub search: String,
    /// At most this many queries (default 50; more than 1000 counts as 1000).
    #[serde(default)]
    #[param(minimum = 0)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct JudgedQuery {
    pub id: String,
    pub text: Option<String>,
    /// Documents judged relevant (grade > 0).
    pub relevant: usize,
}

#[derive(Serialize, ToSchema)]
pub struct JudgedQueries {
    /// Queries that match, in all.
    pub total: usize,
    pub queries: Vec<JudgedQuery>,
}

/// A set's judged queries, searched by id or text.
#[utoipa::path(get, path = "/v1/qrels/{name}/queries", tag = "evaluation",
    params(("name" = String, Path, description = "The judgement set"), QueriesParams),
    responses(
        (status = 200, description = "Matching judged queries", body = JudgedQueries),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 404, description = "No such judgement set", body = ErrorBody),
    ))]
pub async fn queries(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    params: Result<Query<QueriesParams>, QueryRejection>,
) -> Result<Json<JudgedQueries>, ApiError> {
    let Query(params) = params?;
    let set = state.judgement_set(&name)?;
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    let words: Vec<String> = params
        .search
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let texts: HashMap<&str, &str> = set
        .queries
        .iter()
        .map(|(id, t)| (id.as_str(), t.as_str()))
        .collect();
    // With texts, the queries file's order; without, the qrels' ids.
    let ids: Vec<&str> = if set.queries.is_empty() {
        set.qrels.query_ids().collect()
    } else {
        set.queries.iter().map(|(id, _)| id.as_str()).collect()
    };
    let matching: Vec<&str> = ids
        .into_iter()
        .filter(|id| {
            let hay = format!("{id} {}", texts.get(id).unwrap_or(&"")).to_lowercase();
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect();
    Ok(Json(JudgedQueries {
        total: matching.len(),
        queries: matching
            .into_iter()
            .take(limit)
            .map(|id| JudgedQuery {
                id: id.to_string(),
                text: texts.get(id).map(|t| t.to_string()),
                relevant: set
                    .qrels
                    .get(id)
                    .map_or(0, |j| j.values().filter(|g| **g > 0).count()),
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
pub struct CompareParams {
    pub qrels: String,
    /// The baseline pipeline (text form).
    pub a: String,
    /// The pipeline compared with it.
    pub b: String,
}

/// `GET /compare?qrels=NAME&a=PIPELINE&b=PIPELINE`: both pipelines over every judged query
/// with a text, as the report of `ferret compare` (an HTML page, saved as it is it works
/// offline).
pub async fn compare(
    State(state): State<Arc<AppState>>,
    params: Result<Query<CompareParams>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(params) = params?;
    let set = state.judgement_set(&params.qrels)?;
    if set.queries.is_empty() {
        return Err(ApiError::bad_request(
            "no_query_texts",
            format!(
                "the judgements '{}' have no query texts: start the server with --queries for them",
                set.name
            ),
        ));
    }
    let parse = |which: &str, text: &str| {
        pipeline::parse(Some(&serde_json::Value::String(text.to_string()))).map_err(|mut e| {
            e.message = format!("pipeline {which}: {}", e.message);
            e
        })
    };
    let (a, b) = (parse("a", &params.a)?, parse("b", &params.b)?);
    let st = state.clone();
    let what = super::Work {
        name: format!("compare {} {}", a.expr, b.expr),
        slow: true,
    };
    let html = super::blocking(&state, what, move |cancel| {
        report(&st, &set, [a, b], cancel)
    })
    .await?;
    let script = csp_hash(ferret_eval::report::SCRIPT);
    let style = csp_hash(ferret_eval::report::STYLE);
    let csp = format!(
        "default-src 'none'; script-src '{script}'; style-src '{style}'; frame-ancestors 'none'"
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        html,
    ))
}

fn report(
    state: &AppState,
    set: &JudgementSet,
    pipelines: [pipeline::Parsed; 2],
    cancel: &Cancel,
) -> Result<String, ApiError> {
    let snapshot = state.snapshot();
    let index = &snapshot.index;
    let mut runs = Vec::new();
    let mut names = Vec::new();
    for parsed in &pipelines {
        let stage = pipeline::prepare(state, &snapshot, parsed)?;
        let mut run = Run::new(stage.describe());
        for (id, text) in &set.queries {
            let query = ferret_search::Query::new(id.clone(), text.clone());
            let mut trace = Trace::off().with_cancel(cancel.clone());
            let hits = trace
                .run(stage.as_ref(), &query, None, EVAL_DEPTH)
                .map_err(pipeline::search_failed(state, parsed.text.as_deref()))?;
            run.set_ranking(
                id,
                hits.iter()
                    .map(|h| (index.external_id(h.doc).to_string(), h.score as f64))
                    .collect(),
            );
        }
        run.separate_ties();
        names.push(stage.describe());
        runs.push(run);
    }
    let texts: HashMap<&str, &str> = set
        .queries
        .iter()
        .map(|(id, t)| (id.as_str(), t.as_str()))
        .collect();
    let title = |doc: &str| {
        let d = index.document(snapshot.find(doc)?).ok()?;
        (!d.title.is_empty()).then_some(d.title)
    };
    let measures = JudgementSet::measures();
    let [name_a, name_b]: [String; 2] = names.try_into().expect("two pipelines");
    let report = Report::build(&ReportInput {
        title: format!("{} · {}", index_name(state), set.name),
        qrels_name: set.source.clone(),
        qrels: &set.qrels,
        runs: [(name_a, &runs[0]), (name_b, &runs[1])],
        measures: &measures,
        opts: EvalOptions::default(),
        trials: 10_000,
        query_text: &|q| texts.get(q).map(|t| t.to_string()),
        doc_title: &title,
    });
    Ok(report.html())
}

fn index_name(state: &AppState) -> String {
    state
        .options
        .index
        .file_name()
        .map_or_else(|| "index".into(), |n| n.to_string_lossy().into_owned())
}

/// A CSP source allowing exactly this inline text.
fn csp_hash(text: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}
