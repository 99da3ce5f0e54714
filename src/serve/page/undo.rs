//! "Undo this run…": the preview of an undo (a dry run: what comes back,
//! what later changes are kept, what the next sync will set again), then
//! the confirmation that queues it, as `POST /api/runs/{id}/undo` does.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::{layout, page_error, Admin, Checked};
use crate::engine::undo::{UndoError, UndoOptions};
use crate::serve::runner::Trigger;
use crate::serve::AppState;
use crate::store::on_store;

/// The preview, with the button that confirms it.
pub async fn preview(
    State(st): State<AppState>,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    Admin(s): Admin,
) -> Response {
    let Ok(Path(id)) = path else { return page_error(StatusCode::NOT_FOUND, "No such run.") };
    let cfg = st.config();
    let opts = UndoOptions { dry_run: true, ..UndoOptions::default() };
    let preview = match on_store(&*st.store, move |st| crate::engine::undo::undo(&cfg, st, id, &opts)).await {
        Ok(p) => p,
        Err(e @ UndoError::UnknownRun(_)) => return page_error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e) => return page_error(StatusCode::CONFLICT, &e.to_string()),
    };
    let body = html! {
        p { "Undoing run " a href=(format!("/ui/runs/{id}")) { "#" (id) } " puts back what it changed, as a new run of mode undo (guards, audit, history, change feed, write-back). Nothing has changed yet." }
        @if !preview.conflicts.is_empty() {
            h2 { "Kept: changed again after the run (" (preview.conflicts.len()) ")" }
            table {
                thead { tr { th { "User" } th { "Field" } th { "Kept" } th { "The run's before-value" } } }
                tbody { @for c in &preview.conflicts {
                    tr { td { (c.username) } td { (c.field) } td { (c.kept.as_deref().unwrap_or("–")) } td { (c.run_value.as_deref().unwrap_or("–")) } }
                } }
            }
        }
        h2 { "Would put back (" (preview.changes.len()) ")" }
        table {
            thead { tr { th { "Name" } th { "Change" } th { "Field" } th { "Now" } th { "Back to" } th {} } }
            tbody { @for c in preview.changes.iter().take(1000) {
                tr {
                    td { (c.name) } td { (c.action) } td { (c.field.as_deref().unwrap_or("")) }
                    td { (c.from.as_deref().unwrap_or("–")) } td { (c.to.as_deref().unwrap_or("–")) }
                    td { @if c.next_sync_overwrites { span.hint { "the next sync sets it again unless the directory is fixed" } } }
                }
            } }
        }
        @for w in &preview.warnings { p.hint { (w) } }
        @if let Some(m) = &preview.message { p.error { (m) } }
        form method="post" action=(format!("/ui/runs/{id}/undo")) {
            input type="hidden" name="csrf" value=(s.csrf);
            button.danger type="submit" { "Undo run #" (id) }
        }
    };
    layout(&format!("Undo run #{id}?"), Some(&s), body).into_response()
}

/// The confirmation: queues the undo and shows its run.
pub async fn confirm(
    State(st): State<AppState>,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    Checked(s, _): Checked<super::CsrfForm>,
) -> Response {
    let Ok(Path(id)) = path else { return page_error(StatusCode::NOT_FOUND, "No such run.") };
    match crate::serve::api::undo::queue(&st, id, (false, false), None, Trigger::Api).await {
        Ok(run) => {
            tracing::info!(user = %s.user, undoes = id, run, "admin page: undo queued");
            Redirect::to(&format!("/ui/runs/{run}")).into_response()
        }
        Err(e) => page_error(e.status, &e.message),
    }
}
