//! ferret-server: the HTTP API over one index (axum on tokio), its OpenAPI document,
//! Prometheus metrics, and the web search page served from the binary.
//!
//! Reads go to an immutable snapshot of the last committed generation; a write commits a new
//! generation and swaps the snapshot, so searches never wait for a writer. CPU-bound work runs
//! on tokio's blocking pool under a per-request timeout.

mod error;
pub mod judgements;
mod metrics;
mod openapi;
mod routes;
mod snippet;
mod state;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;
pub use state::{AppState, Limits, ServerOptions};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Index(#[from] ferret_index::IndexError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn openapi_json() -> String {
    openapi::document()
}

/// Every route, with the body limit, metrics and JSON fallbacks.
pub fn router(state: Arc<AppState>) -> Router {
    let openapi = openapi::document();
    Router::new()
        .route("/", get(web::page))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .route("/health", get(routes::index::health))
        .route("/metrics", get(routes::index::metrics))
        .route(
            "/openapi.json",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    openapi,
                )
            }),
        )
        .route("/v1/index", get(routes::index::index_info))
        .route("/v1/search", post(routes::search::search))
        .route("/v1/qrels", get(routes::judgements::list))
        .route("/v1/qrels/{name}/queries", get(routes::judgements::queries))
        .route("/compare", get(routes::judgements::compare))
        .route("/v1/pipeline", post(routes::pipeline::check))
        .route("/v1/rerank", post(routes::rerank::rerank))
        .route("/v1/documents", post(routes::documents::add_documents))
        .route(
            "/v1/documents/{id}",
            get(routes::documents::get_document).delete(routes::documents::delete_document),
        )
        .route(
            "/v1/documents/{id}/image",
            get(routes::documents::get_image),
        )
        .route(
            "/v1/documents/{id}/thumbnail",
            get(routes::documents::get_thumbnail),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits().max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", uri.path()),
    )
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take this method", uri.path()),
    )
}

/// Counts and times every request by route template (a bounded label set: unknown paths are
/// `other`).
async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let method = req.method().as_str().to_string();
    let m = &state.metrics;
    m.in_flight.inc();
    let start = Instant::now();
    let response = next.run(req).await;
    m.in_flight.dec();
    m.latency
        .get_or_create(&metrics::RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&metrics::RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

fn route_label(path: &str) -> &'static str {
    const EXACT: &[&str] = &[
        "/",
        "/app.js",
        "/app.css",
        "/health",
        "/metrics",
        "/openapi.json",
        "/v1/index",
        "/v1/search",
        "/v1/pipeline",
        "/v1/rerank",
        "/v1/documents",
        "/v1/qrels",
        "/compare",
    ];
    if let Some(r) = EXACT.iter().find(|r| **r == path) {
        return r;
    }
    if path.starts_with("/v1/qrels/") && path.ends_with("/queries") {
        return "/v1/qrels/{name}/queries";
    }
    match path.strip_prefix("/v1/documents/") {
        Some(rest) if rest.ends_with("/image") => "/v1/documents/{id}/image",
        Some(rest) if rest.ends_with("/thumbnail") => "/v1/documents/{id}/thumbnail",
        Some(_) => "/v1/documents/{id}",
        None => "other",
    }
}

/// Serves until SIGINT or SIGTERM, then finishes the requests in flight and returns.
/// `on_listening` gets the bound address (useful with port 0).
pub fn run(
    options: ServerOptions,
    addr: SocketAddr,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServerError::Io {
            context: "starting the async runtime".into(),
            source,
        })?;
    let state = Arc::new(AppState::new(options)?);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Io {
                context: format!("binding {addr}"),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| ServerError::Io {
            context: "reading the bound address".into(),
            source,
        })?;
        on_listening(local);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|source| ServerError::Io {
                context: "serving".into(),
                source,
            })
    })
}

async fn shutdown_signal() {
    let interrupt = async {
        // If the handler cannot be installed, only SIGTERM stops the server.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn route_labels_are_bounded() {
        assert_eq!(route_label("/v1/search"), "/v1/search");
        assert_eq!(route_label("/v1/documents/abc"), "/v1/documents/{id}");
        assert_eq!(
            route_label("/v1/documents/a/image"),
            "/v1/documents/{id}/image"
        );
        assert_eq!(route_label("/../../etc/passwd"), "other");
    }
}
