//! `GET /api/live` and `GET /api/webhooks`: where each source's live sync
//! is, and where each webhook's deliveries are.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::clients::authorize;
use super::error::ApiError;
use crate::config::Scope;
use crate::serve::AppState;

/// `{sources: [{name, state, reason, next_try, last_change, channel}]}`.
pub async fn live(State(st): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&st, &headers, Scope::Read)?;
    Ok(Json(json!({ "sources": st.live.list() })))
}

/// `{webhooks: [{name, url, cursor, last_delivery, failures, last_error,
/// next_try, lag, state}]}`.
pub async fn webhooks(State(st): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&st, &headers, Scope::Read)?;
    Ok(Json(json!({ "webhooks": st.hooks.list() })))
}
