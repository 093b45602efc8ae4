//! The OpenAPI document, generated from the handlers' annotations and the request and response
//! types (utoipa), served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ferret",
        description = "Multi-stage retrieval and ranking over one index: search with pipelines, read, add and delete documents, rerank candidate texts."
    ),
    paths(
        routes::index::health,
        routes::index::index_info,
        routes::search::search,
        routes::judgements::list,
        routes::judgements::queries,
        routes::pipeline::check,
        routes::rerank::rerank,
        routes::documents::get_document,
        routes::documents::get_image,
        routes::documents::get_thumbnail,
        routes::documents::add_documents,
        routes::documents::delete_document,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&ApiKey, &PipelineNode),
    tags(
        (name = "search", description = "Pipelines and reranking"),
        (name = "evaluation", description = "Relevance judgements the server was started with"),
        (name = "documents", description = "Reading and changing the index"),
        (name = "server", description = "Health and the served index"),
    )
)]
pub struct ApiDoc;

/// Write endpoints take the server's API key as a bearer token when one is configured.
struct ApiKey;

impl Modify for ApiKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The recursive JSON form of pipelines, which no derive can express.
struct PipelineNode;

impl Modify for PipelineNode {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert(
            "PipelineNode".into(),
            routes::pipeline::pipeline_node_schema().into(),
        );
    }
}

pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
