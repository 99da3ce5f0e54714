//! The API's error answer: JSON `{error, message}` with the right status,
//! never a stack trace, a SQL text or a secret. Store failures are logged in
//! full and answered in general terms.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::error;

use crate::engine::sync::SyncError;
use crate::engine::writeback::WritebackError;
use crate::serve::runner::QueueError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable code (`invalid_credentials`, `not_found`).
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// The service is shutting down: try again (at another instance) soon.
    pub fn stopping() -> ApiError {
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the service is stopping")
        }
    }

    /// Another sync holds the store's lock.
    pub fn sync_running(message: impl Into<String>) -> ApiError {
        ApiError { retry_after: Some(5), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_busy", message) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s.max(1)));
        }
        // RFC 6750: a 401 names the scheme it wants.
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Busy { .. } | StoreError::Locked(_) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_busy", "the store is busy; try again")
            },
            StoreError::Unavailable { .. } => {
                error!("store unavailable: {e}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the store cannot be reached")
            }
            StoreError::Conflict { .. } => {
                ApiError::conflict("the store changed meanwhile (a sync applied); read again and retry")
            }
            other => {
                error!("store error: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store_error",
                    "the store failed; see the service's log",
                )
            }
        }
    }
}

/// A sync that could not run (the API's and the page's answer alike).
impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> ApiError {
        match e {
            SyncError::UnknownSource(n) => ApiError::not_found(format!("no source is named \"{n}\"")),
            e @ SyncError::Pushed(_) => ApiError::bad_request(e.to_string()),
            SyncError::Store(e) => e.into(),
        }
    }
}

/// A run that could not be queued.
impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        match e {
            QueueError::UnknownSource(n) => ApiError::not_found(format!("no source is named \"{n}\"")),
            e @ QueueError::Pushed(_) => ApiError::bad_request(e.to_string()),
            QueueError::Stopping => ApiError::stopping(),
            QueueError::Store(e) => e.into(),
        }
    }
}

/// A local change or a write-back action, answered once for every route.
impl From<WritebackError> for ApiError {
    fn from(e: WritebackError) -> ApiError {
        match e {
            WritebackError::NoUser(n) => ApiError::not_found(format!("no user named \"{n}\"")),
            WritebackError::NoItem(m) => ApiError::not_found(m),
            WritebackError::Refused(m) => ApiError::conflict(m),
            e @ WritebackError::Invalid { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", e.to_string())
            }
            WritebackError::Code(e) => ApiError::conflict(e.to_string()),
            e @ WritebackError::Busy => ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_busy", e.to_string())
            },
            WritebackError::Store(e) => e.into(),
        }
    }
}

impl From<crate::engine::sync::ApproveError> for ApiError {
    fn from(e: crate::engine::sync::ApproveError) -> ApiError {
        use crate::engine::sync::ApproveError;
        match e {
            e @ ApproveError::NoRun(_) => ApiError::not_found(e.to_string()),
            e @ (ApproveError::NotBlocked { .. } | ApproveError::SourceGone { .. }) => {
                ApiError::conflict(e.to_string())
            }
            ApproveError::Store(e) => e.into(),
        }
    }
}

impl From<crate::engine::backfill::BackfillError> for ApiError {
    fn from(e: crate::engine::backfill::BackfillError) -> ApiError {
        use crate::engine::backfill::BackfillError;
        match e {
            e @ BackfillError::UnknownSource(_) => ApiError::not_found(e.to_string()),
            e @ BackfillError::Source(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "directory_unavailable", e.to_string())
            }
            BackfillError::Store(StoreError::Locked(_)) => {
                ApiError::sync_running("a sync or push is running; try again")
            }
            BackfillError::Store(e) => e.into(),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> ApiError {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "bad_request" };
        ApiError::new(status, code, r.body_text())
    }
}

/// A JSON body read as `T`, which must be an object: serde would also read
/// a struct from an array of its fields in order (`[null, null]`).
pub fn object_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    let axum::Json(v) = body?;
    if !v.is_object() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_request", "the body must be a JSON object"));
    }
    serde_json::from_value(v).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_request", e.to_string()))
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}
