//! `POST /api/runs/{id}/undo` `{dry_run, force, force_over_later}` (scope
//! `admin`): a dry run answers 200 with the preview (nothing recorded); an
//! undo is queued like a sync, 202 `{run_id}`. 404 for an unknown run, 409
//! for a run that cannot be undone (failed, blocked, interrupted, or one
//! that changed nothing).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::clients::authorize;
use super::error::{object_body, ApiError};
use crate::config::Scope;
use crate::engine::undo::{UndoError, UndoOptions};
use crate::serve::runner::{RunRequest, Trigger, Undo};
use crate::serve::AppState;
use crate::store::on_store;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UndoBody {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    force_over_later: bool,
}

impl From<UndoError> for ApiError {
    fn from(e: UndoError) -> ApiError {
        match e {
            UndoError::UnknownRun(_) => ApiError::not_found(e.to_string()),
            UndoError::NotUndoable { .. } => ApiError::conflict(e.to_string()),
            UndoError::Locked(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_busy", e.to_string()),
            UndoError::Store(e) => e.into(),
        }
    }
}

pub async fn undo_run(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    let caller = authorize(&st, &headers, Scope::Admin)?;
    let b: UndoBody = object_body(body)?;
    if b.dry_run {
        let cfg = st.config();
        let opts = UndoOptions {
            dry_run: true,
            force: b.force,
            force_over_later: b.force_over_later,
            ..UndoOptions::default()
        };
        let preview = on_store(&*st.store, move |s| crate::engine::undo::undo(&cfg, s, id, &opts)).await?;
        return Ok(Json(serde_json::to_value(preview).unwrap_or_default()).into_response());
    }
    let run_id = queue(&st, id, (b.force, b.force_over_later), None, Trigger::Api).await?;
    tracing::info!(client = %caller.name, undoes = id, run = run_id, "undo queued");
    Ok((StatusCode::ACCEPTED, Json(json!({ "run_id": run_id, "undoes": id }))).into_response())
}

/// Queues the undo of run `id` once it is known to be undoable (the API's,
/// the page's and an approval's, which names the users it may remove).
pub async fn queue(
    st: &AppState,
    id: i64,
    (force, force_over_later): (bool, bool),
    approved: Option<Vec<i64>>,
    trigger: Trigger,
) -> Result<i64, ApiError> {
    let run = on_store(&*st.store, move |s| s.run_by_id(id)).await?.ok_or(UndoError::UnknownRun(id))?;
    use crate::engine::history::RunStatus;
    if !matches!(run.status, RunStatus::Ok | RunStatus::Partial) {
        let reason = format!("it is {}: nothing of it was applied", run.status.as_str());
        return Err(UndoError::NotUndoable { id, reason }.into());
    }
    let sources = run.sources.names().to_vec();
    let undo = Undo { run: id, force, force_over_later, approved };
    let req = RunRequest { undo: Some(undo), ..RunRequest::new(sources, false, trigger) };
    Ok(st.runner.submit(req).await?.0)
}
