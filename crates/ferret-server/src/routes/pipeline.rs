//! Pipelines from requests: text or JSON form in, checked against the server's policy and
//! limits, prepared once per index generation.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use ferret_search::{Expr, Stage};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::Ref;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Snapshot};

/// The `pipeline` field's schema: the text form, the JSON form, or null for the default.
pub fn pipeline_schema() -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("text form, e.g. `bm25 % 100 >> rm3(fb_docs=10)`")),
        )
        .item(Ref::from_schema_name("PipelineNode"))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "The ranking pipeline; absent or null means `bm25`. See docs/PIPELINES.md.",
        ))
        .build()
        .into()
}

/// The JSON form of a pipeline (the serde form of [`Expr`]), a recursive schema registered as
/// the `PipelineNode` component.
pub fn pipeline_node_schema() -> Schema {
    let node = || Ref::from_schema_name("PipelineNode");
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let op = |name: &str| string().enum_values(Some([name]));
    let closed = || Some(AdditionalProperties::FreeForm(false));
    let value = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(string())
        .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Number)));
    let arg = ObjectBuilder::new()
        .property("name", string().min_length(Some(1)))
        .property("value", value)
        .required("name")
        .required("value")
        .additional_properties(closed());
    let stage = ObjectBuilder::new()
        .property("op", op("stage"))
        .property(
            "name",
            string().enum_values(Some(ferret_search::registry::all_names())),
        )
        .property("inputs", ArrayBuilder::new().items(node()))
        .property("args", ArrayBuilder::new().items(arg))
        .required("op")
        .required("name")
        .additional_properties(closed());
    let cutoff = ObjectBuilder::new()
        .property("op", op("cutoff"))
        .property("input", node())
        .property(
            "k",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .required("op")
        .required("input")
        .required("k")
        .additional_properties(closed());
    let then = ObjectBuilder::new()
        .property("op", op("then"))
        .property("first", node())
        .property("then", node())
        .required("op")
        .required("first")
        .required("then")
        .additional_properties(closed());
    OneOfBuilder::new()
        .item(stage)
        .item(cutoff)
        .item(then)
        .description(Some(
            "A pipeline node: a stage (with its inputs and arguments), a rank cut-off, or `first >> then`.",
        ))
        .build()
        .into()
}

/// A pipeline parsed from a request: its tree and, for the text form, the text (error
/// positions point into it).
pub struct Parsed {
    pub expr: Expr,
    pub text: Option<String>,
}

pub fn parse(value: Option<&serde_json::Value>) -> Result<Parsed, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => parse_text("bm25"),
        Some(serde_json::Value::String(s)) => parse_text(s),
        Some(v @ serde_json::Value::Object(_)) => {
            let expr = serde_json::from_value(v.clone()).map_err(|e| {
                ApiError::bad_request("invalid_pipeline", format!("pipeline JSON: {e}"))
            })?;
            Ok(Parsed { expr, text: None })
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_pipeline",
            "pipeline must be a string (text form) or an object (JSON form)",
        )),
    }
}

fn parse_text(text: &str) -> Result<Parsed, ApiError> {
    let expr =
        ferret_search::pipeline::parse_any(text).map_err(|e| ApiError::pipeline(e, Some(text)))?;
    let text = (!ferret_search::pipeline::is_json(text)).then(|| text.to_string());
    Ok(Parsed { expr, text })
}

/// The prepared stage tree for `parsed` on `snapshot`'s generation (cached by canonical text).
pub fn prepare(
    state: &AppState,
    snapshot: &Snapshot,
    parsed: &Parsed,
) -> Result<Arc<dyn Stage>, ApiError> {
    state.check_pipeline(&parsed.expr, snapshot)?;
    let key = parsed.expr.to_string();
    if let Some(stage) = snapshot.cached_stage(&key) {
        return Ok(stage);
    }
    let stage: Arc<dyn Stage> = ferret_search::registry::prepare(&parsed.expr, &snapshot.index)
        .map_err(|e| ApiError::pipeline(e, parsed.text.as_deref()))?
        .into();
    snapshot.cache_stage(key, stage.clone());
    Ok(stage)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineRequest {
    #[schema(schema_with = pipeline_schema)]
    pub pipeline: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct PipelineResponse {
    /// The canonical text form.
    pub text: String,
    /// The JSON form (send it as `pipeline` to /v1/search).
    #[schema(value_type = Object)]
    pub json: serde_json::Value,
    /// The prepared stage tree, as it describes itself.
    pub prepared: String,
}

/// Parses and prepares a pipeline without running it: its canonical forms, or the error with
/// its position (the web page shows it inline as you type).
#[utoipa::path(post, path = "/v1/pipeline", tag = "search", request_body = PipelineRequest,
    responses(
        (status = 200, description = "The pipeline is valid here", body = PipelineResponse),
        (status = 400, description = "Invalid pipeline or request", body = ErrorBody),
        (status = 403, description = "The pipeline names a model the server does not allow", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Timed out", body = ErrorBody),
    ))]
pub async fn check(
    State(state): State<Arc<AppState>>,
    body: Result<Json<PipelineRequest>, JsonRejection>,
) -> Result<Json<PipelineResponse>, ApiError> {
    let Json(req) = body?;
    let parsed = parse(Some(&req.pipeline))?;
    let st = state.clone();
    let what = super::Work {
        name: format!("check {}", parsed.expr),
        slow: false,
    };
    super::blocking(&state, what, move |_| {
        let snapshot = st.snapshot();
        let stage = prepare(&st, &snapshot, &parsed)?;
        Ok(Json(PipelineResponse {
            text: parsed.expr.to_string(),
            json: serde_json::to_value(&parsed.expr)
                .map_err(|e| ApiError::internal(e.to_string()))?,
            prepared: stage.describe(),
        }))
    })
    .await
}

/// A search's error as the API answers it: a stage used where it cannot work (e.g. feedback
/// with no ranking before it) is the pipeline's error, a cancelled one a timeout.
pub fn search_failed<'a>(
    state: &'a AppState,
    text: Option<&'a str>,
) -> impl Fn(ferret_search::SearchError) -> ApiError + 'a {
    move |e| match e {
        ferret_search::SearchError::Pipeline(_) | ferret_search::SearchError::Invalid(_) => {
            ApiError::pipeline(e, text)
        }
        ferret_search::SearchError::Cancelled => ApiError::timeout(state.limits().timeout),
        other => ApiError::internal(format!("the search failed: {other}")),
    }
}
