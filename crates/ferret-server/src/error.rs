//! Errors as the API returns them: an HTTP status and a JSON body
//! `{"error": {"code": "...", "message": "...", "position": N?}}`. The codes are stable;
//! clients branch on them, never on the message.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferret_search::SearchError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub position: Option<usize>,
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_pipeline`, `unknown_document`.
    pub code: String,
    /// What was wrong, for people.
    pub message: String,
    /// Character position in the pipeline text, for pipeline errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            position: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503 `timeout`: the request's work outlived the server's limit (and was cancelled).
    pub fn timeout(limit: std::time::Duration) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than this server's limit of {:.1} s",
                limit.as_secs_f64()
            ),
        )
    }

    /// A pipeline that does not parse or cannot be prepared: 400, with the position as a
    /// character offset into `text` (the pipeline's text form; none for the JSON form).
    pub fn pipeline(e: SearchError, text: Option<&str>) -> Self {
        match e {
            SearchError::Pipeline(p) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_pipeline",
                message: p.message,
                position: text.map(|t| {
                    t.char_indices()
                        .take_while(|(i, _)| *i < p.position)
                        .count()
                }),
            },
            other => ApiError::bad_request("invalid_pipeline", other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                position: self.position,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(status, "payload_too_large", r.body_text())
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                status,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            _ => ApiError::bad_request("invalid_json", r.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query_string", r.body_text())
    }
}
