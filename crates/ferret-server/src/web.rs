//! The web search page: three files compiled into the binary, nothing fetched from elsewhere
//! (the Content-Security-Policy forbids it).

use axum::http::header;
use axum::response::IntoResponse;

const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

pub async fn page() -> impl IntoResponse {
    file(
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    )
}

pub async fn script() -> impl IntoResponse {
    file(
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    )
}

pub async fn style() -> impl IntoResponse {
    file("text/css; charset=utf-8", include_str!("../web/app.css"))
}
