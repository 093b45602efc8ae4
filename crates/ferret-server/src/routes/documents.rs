//! Documents: read one by id, add some, delete one. Writes take the writer lock, commit a new
//! index generation and then publish it; searches keep using the previous generation until
//! then and never wait.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use ferret_index::{DocNo, Document, IndexError, IndexOptions, IndexWriter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Snapshot};

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentBody {
    /// External id, unique in the index (not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub id: String,
    #[serde(default)]
    pub title: String,
    /// The document's text (not blank).
    #[schema(pattern = r"\S")]
    pub text: String,
    /// A JSON object stored with the document (null or absent: none).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[schema(value_type = Option<Object>)]
    pub metadata: serde_json::Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDocuments {
    #[schema(min_items = 1)]
    pub documents: Vec<DocumentBody>,
}

#[derive(Serialize, ToSchema)]
pub struct WriteResult {
    pub added: u64,
    pub deleted: u64,
    /// Live documents after the commit.
    pub documents: u64,
    /// The committed generation (searches see it from now on).
    pub generation: u64,
}

fn unknown(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_document",
        format!("no document with id {id:?} in the index"),
    )
}

/// One document by its external id.
#[utoipa::path(get, path = "/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "The document's external id")),
    responses(
        (status = 200, description = "The document", body = DocumentBody),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such document", body = ErrorBody),
    ))]
pub async fn get_document(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<DocumentBody>, ApiError> {
    let Path(id) = id?;
    let snapshot = state.snapshot();
    let docno = snapshot.find(&id).ok_or_else(|| unknown(&id))?;
    let doc = snapshot
        .index
        .document(docno)
        .map_err(|e| ApiError::internal(format!("reading document {id:?}: {e}")))?;
    Ok(Json(DocumentBody {
        id: doc.id,
        title: doc.title,
        text: doc.text,
        metadata: doc.metadata,
    }))
}

/// A document's image, as its file (content type from its bytes). The path was checked to
/// stay inside the corpus folder when the document was indexed, and is checked again here
/// (a file replaced by a link since is refused).
#[utoipa::path(get, path = "/v1/documents/{id}/image", tag = "documents",
    params(("id" = String, Path, description = "The document's external id")),
    responses(
        (status = 200, description = "The image (JPEG, PNG, WebP or GIF)", content_type = "image/*"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such document, or it has no image", body = ErrorBody),
    ))]
pub async fn get_image(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(id) = id?;
    let (_, image) = document_image(&state.snapshot(), &id)?;
    let path = std::path::Path::new(&image.path);
    let gone = |why: String| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_image",
            format!("document {id:?}: its image {why}"),
        )
    };
    let real = path
        .canonicalize()
        .map_err(|e| gone(format!("cannot be read: {e}")))?;
    if real != path {
        return Err(gone("was replaced by a link since it was indexed".into()));
    }
    let bytes = tokio::fs::read(&real)
        .await
        .map_err(|e| gone(format!("cannot be read: {e}")))?;
    let (_, format) = ferret_image::sniff(&bytes)
        .ok_or_else(|| gone("is no longer a JPEG, PNG, WebP or GIF file".into()))?;
    Ok(([(header::CONTENT_TYPE, format!("image/{format}"))], bytes))
}

/// A document's thumbnail (JPEG, made at index time).
#[utoipa::path(get, path = "/v1/documents/{id}/thumbnail", tag = "documents",
    params(("id" = String, Path, description = "The document's external id")),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/jpeg"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such document, or it has no image", body = ErrorBody),
    ))]
pub async fn get_thumbnail(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(id) = id?;
    let snapshot = state.snapshot();
    let docno = document_image(&snapshot, &id)?.0;
    let thumb = snapshot
        .index
        .entries()
        .filter(|e| e.kind == ferret_index::image::KIND.name)
        .find_map(|e| {
            let r = snapshot
                .index
                .representation::<ferret_index::image::ImageReader>("image", Some(&e.name))
                .ok()?;
            r.thumbnail(docno).map(<[u8]>::to_vec)
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_image",
                format!("document {id:?} has no thumbnail (the index has no image representation; add one with `ferret index --clip MODEL`)"),
            )
        })?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], thumb))
}

/// The image record of document `id` (404s for unknown ids and text documents).
fn document_image(
    snapshot: &Snapshot,
    id: &str,
) -> Result<(DocNo, ferret_index::DocImage), ApiError> {
    let docno = snapshot.find(id).ok_or_else(|| unknown(id))?;
    let doc = snapshot
        .index
        .document(docno)
        .map_err(|e| ApiError::internal(format!("reading document {id:?}: {e}")))?;
    let image = doc.image.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_image",
            format!("document {id:?} has no image"),
        )
    })?;
    Ok((docno, image))
}

/// Adds documents (ids must be new) and commits.
#[utoipa::path(post, path = "/v1/documents", tag = "documents", request_body = AddDocuments,
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Committed", body = WriteResult),
        (status = 400, description = "Invalid documents", body = ErrorBody),
        (status = 401, description = "API key missing or wrong", body = ErrorBody),
        (status = 409, description = "An id is already in the index or repeated", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Timed out", body = ErrorBody),
    ))]
pub async fn add_documents(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<AddDocuments>, JsonRejection>,
) -> Result<Json<WriteResult>, ApiError> {
    authorize(&state, &headers)?;
    let Json(req) = body?;
    let max = state.limits().max_documents_per_request;
    if req.documents.is_empty() || req.documents.len() > max {
        return Err(ApiError::bad_request(
            "bad_document_count",
            format!("send between 1 and {max} documents"),
        ));
    }
    for (i, d) in req.documents.iter().enumerate() {
        if d.id.trim().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_document",
                format!("documents[{i}]: the id is empty"),
            ));
        }
        if !(d.metadata.is_null() || d.metadata.is_object()) {
            return Err(ApiError::bad_request(
                "invalid_document",
                format!("documents[{i}] ({:?}): metadata must be an object", d.id),
            ));
        }
        if d.text.trim().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_document",
                format!("documents[{i}] ({:?}): the text is empty", d.id),
            ));
        }
    }
    let docs = req
        .documents
        .into_iter()
        .map(|d| Document {
            id: d.id,
            title: d.title,
            text: d.text,
            metadata: d.metadata,
            image: None,
        })
        .collect();
    write(&state, Change::Add(docs)).await
}

/// Deletes one document and commits.
#[utoipa::path(delete, path = "/v1/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "The document's external id")),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Committed", body = WriteResult),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "API key missing or wrong", body = ErrorBody),
        (status = 404, description = "No such document", body = ErrorBody),
        (status = 503, description = "Timed out", body = ErrorBody),
    ))]
pub async fn delete_document(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<WriteResult>, ApiError> {
    authorize(&state, &headers)?;
    let Path(id) = id?;
    write(&state, Change::Delete(id)).await
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.authorized(headers) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs the server's API key (Authorization: Bearer <key> or X-API-Key)",
        ))
    }
}

enum Change {
    Add(Vec<Document>),
    Delete(String),
}

/// One write at a time: open a writer on the index, apply, commit, open the new generation
/// and publish it.
async fn write(state: &Arc<AppState>, change: Change) -> Result<Json<WriteResult>, ApiError> {
    // The guard moves into the work, so a write that outlives its request's timeout still
    // keeps the next one waiting.
    let guard = state.writer.clone().lock_owned().await;
    let st = state.clone();
    super::blocking_write(state, move || {
        let _guard = guard;
        if let Change::Add(docs) = &change {
            check_new_ids(&st.snapshot(), docs)?;
        }
        let dir = st.options.index.clone();
        let opts = IndexOptions {
            threads: st.options.threads,
            ..IndexOptions::default()
        };
        let mut writer = IndexWriter::open(&dir, opts).map_err(index_error)?;
        writer.set_encoders(ferret_search::encoders::ModelEncoders::shared());
        match change {
            Change::Add(docs) => {
                for d in docs {
                    writer.add(d).map_err(index_error)?;
                }
            }
            Change::Delete(id) => writer.delete(&[id]).map_err(index_error)?,
        }
        let stats = writer.commit().map_err(index_error)?;
        let snapshot = Snapshot::open(&dir).map_err(index_error)?;
        let m = snapshot.index.manifest();
        let result = WriteResult {
            added: stats.added,
            deleted: stats.deleted,
            documents: m.doc_count,
            generation: m.generation,
        };
        st.publish(snapshot);
        Ok(Json(result))
    })
    .await
}

/// Ids already in the index or repeated in the request: 409, before anything is written.
fn check_new_ids(snapshot: &Snapshot, docs: &[Document]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for (i, d) in docs.iter().enumerate() {
        let message = if snapshot.find(&d.id).is_some() {
            format!("documents[{i}]: id {:?} is already in the index", d.id)
        } else if !seen.insert(d.id.as_str()) {
            format!("documents[{i}]: id {:?} is repeated in the request", d.id)
        } else {
            continue;
        };
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "duplicate_document",
            message,
        ));
    }
    Ok(())
}

fn index_error(e: IndexError) -> ApiError {
    match e {
        IndexError::UnknownDocument(id) => unknown(&id),
        IndexError::Corpus { message, .. } => ApiError::bad_request("invalid_document", message),
        other => ApiError::internal(format!("writing the index: {other}")),
    }
}
