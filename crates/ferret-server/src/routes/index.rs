//! Health, the index's description (with pipeline presets for the page), metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
    pub generation: u64,
    pub documents: u64,
}

/// Liveness: answers as long as the server runs.
#[utoipa::path(get, path = "/health", tag = "server",
    responses((status = 200, description = "Serving", body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let snapshot = state.snapshot();
    let m = snapshot.index.manifest();
    Json(Health {
        status: "ok".into(),
        generation: m.generation,
        documents: m.doc_count,
    })
}

#[derive(Serialize, ToSchema)]
pub struct IndexInfo {
    /// The index directory's name (not its path).
    pub name: String,
    pub documents: u64,
    pub generation: u64,
    /// `lexical`, `dense/<model>`, …
    pub representations: Vec<String>,
    /// Ready-made pipelines for this index's representations.
    pub presets: Vec<Preset>,
    /// The index's manifest.json.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct Preset {
    pub name: String,
    pub pipeline: String,
}

/// The served index: counts, representations, manifest, and pipeline presets.
#[utoipa::path(get, path = "/v1/index", tag = "server",
    responses((status = 200, description = "The index", body = IndexInfo)))]
pub async fn index_info(State(state): State<Arc<AppState>>) -> Json<IndexInfo> {
    let snapshot = state.snapshot();
    let m = snapshot.index.manifest();
    let mut representations = Vec::new();
    let mut presets = Vec::new();
    let preset = |name: &str, pipeline: &str| Preset {
        name: name.into(),
        pipeline: pipeline.into(),
    };
    representations.extend(m.representations.iter().map(|e| e.label()));
    let lexical = m.lexical().is_some();
    if lexical {
        presets.push(preset("BM25", "bm25"));
        presets.push(preset(
            "BM25 + RM3",
            "bm25 % 1000 >> rm3(fb_docs=10, fb_terms=10)",
        ));
    }
    if let Some(d) = m.of_kind("dense").next() {
        let dense = format!("dense(model={:?})", d.name);
        presets.push(preset("dense", &dense));
        presets.push(preset(
            "dense + Vector-PRF",
            &format!("{dense} % 1000 >> vprf(depth=3)"),
        ));
        if lexical {
            presets.push(preset(
                "hybrid RRF",
                &format!("rrf(bm25 % 1000, {dense} % 1000, k=60)"),
            ));
            presets.push(preset(
                "hybrid interpolation",
                &format!("interp(bm25 % 1000, {dense} % 1000, alpha=0.5)"),
            ));
        }
    }
    if let Some(s) = m.of_kind("sparse").next() {
        let sparse = format!("splade(model={:?})", s.name);
        presets.push(preset("SPLADE", &sparse));
        if lexical {
            presets.push(preset(
                "BM25 + SPLADE RRF",
                &format!("rrf(bm25 % 1000, {sparse} % 1000, k=60)"),
            ));
        }
    }
    let name = state
        .options
        .index
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Json(IndexInfo {
        name,
        documents: m.doc_count,
        generation: m.generation,
        representations,
        presets,
        manifest: serde_json::to_value(m).unwrap_or(serde_json::Value::Null),
    })
}

/// Prometheus metrics (OpenMetrics text).
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
