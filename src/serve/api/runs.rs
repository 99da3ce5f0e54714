//! `/api/syncs`, `/api/runs`, `/api/changes` and `/api/writeback`: start a
//! sync (queued, coalesced), follow runs, read the change feed (every change
//! to users, groups and memberships in commit order, with long polling), see
//! and push the write-back queue.

use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::clients::authorize;
use super::error::ApiError;
use super::people::{limit, page_of};
use crate::config::Scope;
use crate::engine::sync::SyncOptions;
use crate::serve::runner::{RunRequest, Trigger};
use crate::serve::AppState;
use crate::store::on_store;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SyncBody {
    sources: Option<Vec<String>>,
    dry_run: Option<bool>,
    full: Option<bool>,
}

/// `POST /api/syncs`: 202 `{run_id, queued}` at once (`queued` false: an
/// equal run was already queued or running, and this is its id). A dry run
/// changes nothing and takes no place in the queue: it is planned at once
/// and answered with its outcome and plan (200).
pub async fn start_sync(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = authorize(&st, &headers, Scope::Sync)?;
    let body = body.map_err(|r| ApiError::new(r.status(), "bad_request", r.body_text()))?;
    // An empty body asks for every source.
    // An object only: serde would also read the struct from an array.
    let body: SyncBody = if body.iter().all(u8::is_ascii_whitespace) {
        SyncBody::default()
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("expected {{sources?, dry_run?, full?}}: {e}")))?;
        if !v.is_object() {
            return Err(ApiError::bad_request("expected a JSON object {sources?, dry_run?, full?}"));
        }
        serde_json::from_value(v)
            .map_err(|e| ApiError::bad_request(format!("expected {{sources?, dry_run?, full?}}: {e}")))?
    };
    let sources = body.sources.unwrap_or_default();
    if body.dry_run == Some(true) {
        let cfg = st.config();
        let opts = SyncOptions { dry_run: true, sources, full: body.full.unwrap_or(false), ..SyncOptions::default() };
        let outcome = crate::engine::sync::run(&cfg, &*st.store, &opts, Default::default()).await?;
        return Ok(Json(outcome).into_response());
    }
    let req = RunRequest::new(sources, body.full.unwrap_or(false), Trigger::Api);
    let (id, queued) = st.runner.submit(req).await?;
    tracing::info!(client = %caller.name, run = id, queued, "sync asked for");
    Ok((StatusCode::ACCEPTED, Json(json!({ "run_id": id, "queued": queued }))).into_response())
}

#[derive(Deserialize)]
pub struct RunsParams {
    limit: Option<usize>,
    cursor: Option<i64>,
}

pub async fn list_runs(
    State(st): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<RunsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&st, &headers, Scope::Read)?;
    let Query(p) = params?;
    let limit = limit(p.limit)?;
    let runs = on_store(&*st.store, move |s| {
        s.runs_page(&crate::store::RunQuery { before: p.cursor, limit: limit + 1, ..Default::default() })
    })
    .await?;
    let (runs, next) = page_of(runs, limit, |r| r.id);
    Ok(Json(json!({ "runs": runs, "next": next })))
}

pub async fn get_run(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = path?;
    authorize(&st, &headers, Scope::Read)?;
    let run = on_store(&*st.store, move |s| s.run_by_id(id)).await?;
    let run = run.ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    let blocked = run.status == crate::engine::history::RunStatus::Blocked;
    let mut v = serde_json::to_value(run).unwrap_or_default();
    // A blocked run: what it would have removed and its plan, for the review before an approval.
    if blocked {
        let (removals, plan) = on_store(&*st.store, move |s| -> Result<_, crate::store::StoreError> {
            Ok((s.removals_of(id)?, s.plan_of(id)?))
        })
        .await?;
        v["removals"] = serde_json::to_value(removals).unwrap_or_default();
        if let Some(p) = plan.and_then(|j| serde_json::from_str::<Value>(&j).ok()) {
            v["plan"] = p;
        }
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
pub struct ChangesParams {
    since: Option<i64>,
    limit: Option<usize>,
    /// Seconds to wait for a change when there is none (at most 60).
    wait: Option<u64>,
}

/// `GET /api/changes?since=<cursor>`: `{changes, next}` in commit order;
/// pass `next` as `since` to get what follows (nothing missed, nothing
/// repeated). With `wait`, an empty answer waits for the next change.
pub async fn changes(
    State(st): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ChangesParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&st, &headers, Scope::Read)?;
    let Query(p) = params?;
    let limit = limit(p.limit)?;
    let since = p.since.unwrap_or(0);
    if since < 0 {
        return Err(ApiError::bad_request(format!("since: expected 0 or a cursor this API gave, got {since}")));
    }
    let wait = p.wait.unwrap_or(0);
    if wait > 60 {
        return Err(ApiError::bad_request(format!("wait: expected 0 to 60 seconds, got {wait}")));
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let page = on_store(&*st.store, move |s| crate::engine::feed::page(s, since, limit)).await?;
        if !page.is_empty() || Instant::now() >= deadline {
            let next = page.last().map(|(c, _)| *c).unwrap_or(since);
            let changes: Vec<Value> = page.into_iter().map(|(_, v)| v).collect();
            return Ok(Json(json!({ "changes": changes, "next": next })));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn writeback_status(State(st): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&st, &headers, Scope::Read)?;
    let status = on_store(&*st.store, |s| crate::engine::writeback::status(s)).await?;
    Ok(Json(serde_json::to_value(status).unwrap_or_default()))
}

pub async fn writeback_push(State(st): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&st, &headers, Scope::Write)?;
    let cfg = st.config();
    let report = crate::engine::writeback::push_now(&cfg, &*st.store, true).await?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    keep: String,
}

/// `POST /api/writeback/{id}/resolve` `{keep: "app" | "directory"}`.
pub async fn writeback_resolve(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = path?;
    let caller = authorize(&st, &headers, Scope::Write)?;
    let b: ResolveBody = crate::serve::api::error::object_body(body)?;
    let keep = crate::engine::writeback::keep_of(&b.keep).map_err(ApiError::bad_request)?;
    let cfg = st.config();
    let (resolved, report) = crate::engine::writeback::resolve(&cfg, &*st.store, id, keep).await?;
    tracing::info!(client = %caller.name, item = id, keep = %b.keep, resolved, "write-back conflict resolution");
    Ok(Json(json!({ "resolved": resolved, "push": report })))
}

/// `POST /api/runs/{id}/approve`: a run blocked by a threshold is planned
/// again with the thresholds lifted, and applied only if it removes nobody
/// the blocked run did not plan (otherwise it is blocked again and names who
/// is new). 202 `{run_id}` of the new run; 409 when the run is not blocked.
/// A blocked push run (SCIM) is approved in place (`run_id` is its own):
/// the removals it holds go through when the identity provider retries.
pub async fn approve_run(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    let caller = authorize(&st, &headers, Scope::Admin)?;
    let (new_id, removals) = approve(&st, id).await?;
    tracing::info!(client = %caller.name, blocked = id, run = new_id, removals = removals.len(), "blocked run approved");
    Ok((StatusCode::ACCEPTED, Json(json!({ "run_id": new_id, "approves": id, "removals": removals }))).into_response())
}

/// Queues the approval of blocked run `id` (the API's and the page's).
pub async fn approve(st: &AppState, id: i64) -> Result<(i64, Vec<crate::store::PlannedRemoval>), ApiError> {
    let cfg = st.config();
    // A blocked push run is approved in place: the removals it holds go
    // through when the identity provider sends them again.
    let run = crate::store::on_store(&*st.store, move |s| s.run_by_id(id)).await?;
    if run.as_ref().is_some_and(|r| r.mode == crate::model::records::RunMode::Push) {
        let removals = crate::store::on_store(&*st.store, move |s| crate::engine::push::approve(s, id)).await.map_err(
            |e| match e {
                crate::engine::push::ApprovePushError::NotHeld(_) => ApiError::conflict(e.to_string()),
                crate::engine::push::ApprovePushError::Store(e) => e.into(),
            },
        )?;
        return Ok((id, removals));
    }
    // A blocked undo is queued again with the thresholds lifted.
    if let Some(r) = run.as_ref().filter(|r| r.mode == crate::model::records::RunMode::Undo) {
        if r.status != crate::engine::history::RunStatus::Blocked {
            return Err(ApiError::conflict(format!("run {id} is not blocked")));
        }
        let ask = crate::store::on_store(&*st.store, move |s| s.plan_of(id)).await?;
        let ask: crate::engine::undo::UndoAsk = ask
            .and_then(|a| serde_json::from_str(&a).ok())
            .ok_or_else(|| ApiError::conflict(format!("run {id} does not say which run it undoes")))?;
        // Thresholds lifted, for the users the blocked undo listed only.
        let removals = crate::store::on_store(&*st.store, move |s| s.removals_of(id)).await?;
        let approved = Some(removals.iter().map(|r| r.target_id).collect());
        let new_id = super::undo::queue(st, ask.undo, (true, ask.force_over_later), approved, Trigger::Approve).await?;
        return Ok((new_id, removals));
    }
    let approved = crate::engine::sync::approval_of(&cfg, &*st.store, id).await?;
    let req = RunRequest {
        sources: approved.sources,
        full: approved.full,
        trigger: Trigger::Approve,
        slot: None,
        approved: Some(std::sync::Arc::new(approved.approval)),
        live: false,
        touched: None,
        undo: None,
    };
    let (new_id, _) = st.runner.submit(req).await?;
    Ok((new_id, approved.removals))
}
