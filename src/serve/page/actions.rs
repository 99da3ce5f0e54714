//! The admin page's groups, write-back queue and the actions on one user:
//! edit an application-owned field, generate a code, sync the user now;
//! resolve a conflict, retry the queue. Each goes through the library
//! function the API uses, behind the session's CSRF token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{layout, page_error, page_failure, Admin, Checked};
use crate::engine::writeback::{set_field, SetValue};
use crate::serve::AppState;
use crate::store::{on_store, UserQuery};

fn user_url(name: &str) -> String {
    let enc: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("/ui/users/{enc}")
}

#[derive(Deserialize)]
pub struct FieldForm {
    csrf: String,
    field: String,
    value: Option<String>,
    generate: Option<String>,
}

/// Sets (or generates, or clears with an empty value) one field of a user.
pub async fn set_user_field(
    State(st): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    Checked(s, f): Checked<FieldForm>,
) -> Response {
    let Ok(Path(name)) = path else { return page_error(StatusCode::NOT_FOUND, "No such user.") };
    let cfg = st.config();
    let value = match (f.generate.is_some(), f.value.as_deref().map(str::trim)) {
        (true, _) => SetValue::Generate,
        (false, None | Some("")) => SetValue::Clear,
        (false, Some(v)) => SetValue::Value(v.to_string()),
    };
    let (who, field) = (name.clone(), f.field.clone());
    match on_store(&*st.store, move |store| set_field(&cfg, store, &who, &field, value)).await {
        Ok(out) => {
            tracing::info!(user = %s.user, target = %out.username, field = %out.field, "admin page: field set");
            Redirect::to(&user_url(&out.username)).into_response()
        }
        Err(e) => page_failure(e),
    }
}

/// Just-in-time sync of one user (the API's `POST /api/users/{name}/sync`).
pub async fn sync_user(
    State(st): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    Checked(s, _): Checked<super::CsrfForm>,
) -> Response {
    let Ok(Path(name)) = path else { return page_error(StatusCode::NOT_FOUND, "No such user.") };
    let cfg = st.config();
    let origin = crate::model::records::RunOrigin::new(crate::model::records::Trigger::Single, &st.runner.instance());
    let opts = crate::engine::sync::SyncOptions { user: Some(name.clone()), origin, ..Default::default() };
    match crate::engine::sync::run(&cfg, &*st.store, &opts, Default::default()).await {
        Ok(o) => {
            tracing::info!(user = %s.user, target = %name, status = o.status.as_str(), "admin page: user synced");
            match o.run_id {
                Some(id) => Redirect::to(&format!("/ui/runs/{id}")).into_response(),
                None => Redirect::to(&user_url(&name)).into_response(),
            }
        }
        Err(e) => page_failure(e),
    }
}

pub async fn groups(State(st): State<AppState>, Admin(s): Admin) -> Response {
    let read = on_store(&*st.store, |s| -> Result<_, crate::store::StoreError> {
        let groups = s.groups_page(None, 500)?;
        groups.into_iter().map(|g| Ok((s.group_relations(g.id)?, g))).collect::<Result<Vec<_>, _>>()
    })
    .await;
    let groups = match read {
        Ok(g) => g,
        Err(e) => return page_failure(e),
    };
    let body = html! {
        table {
            thead { tr { th { "Group" } th { "Source" } th { "Direct members" } th { "Effective members" } th { "Member of" } } }
            tbody {
                @for (r, g) in &groups {
                    tr {
                        td { a href=(format!("/ui/groups/{}", url::form_urlencoded::byte_serialize(g.name.as_bytes()).collect::<String>())) { (g.name) } }
                        td { (g.source) }
                        td { (r.direct_members) }
                        td { (r.all_members) }
                        td { (r.member_of.join(", ")) }
                    }
                }
            }
        }
    };
    layout("Groups", Some(&s), body).into_response()
}

pub async fn group(
    State(st): State<AppState>,
    Admin(s): Admin,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(name)) = path else { return page_error(StatusCode::NOT_FOUND, "No such group.") };
    let read = on_store(&*st.store, move |s| -> Result<_, crate::store::StoreError> {
        let Some(g) = s.groups_by_name(&name)?.into_iter().next() else { return Ok(None) };
        let q = |direct| UserQuery { limit: 500, group: Some(g.name.clone()), direct, ..UserQuery::default() };
        Ok(Some((s.users_page(&q(true))?, s.users_page(&q(false))?, s.group_relations(g.id)?, g)))
    })
    .await;
    let (direct, all, rel, g) = match read {
        Ok(Some(x)) => x,
        Ok(None) => return page_error(StatusCode::NOT_FOUND, "No such group."),
        Err(e) => return page_failure(e),
    };
    let list = |users: &[crate::model::StoredUser]| {
        html! { ul { @for u in users { li { a href=(user_url(&u.username)) { (u.username) } } } } }
    };
    let body = html! {
        p { (g.source) " · " span.mono { (g.dn) } }
        p { "Member of: " (rel.member_of.join(", ")) " · subgroups: " (rel.subgroups.join(", ")) }
        h2 { "Direct members (" (rel.direct_members) ")" } (list(&direct))
        h2 { "Effective members (" (rel.all_members) ")" } (list(&all))
    };
    layout(&g.name.clone(), Some(&s), body).into_response()
}

pub async fn writeback(State(st): State<AppState>, Admin(s): Admin) -> Response {
    let status = match on_store(&*st.store, |s| crate::engine::writeback::status(s)).await {
        Ok(q) => q,
        Err(e) => return page_failure(e),
    };
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    let body = html! {
        p { "Last success: " (status.last_success.map(|t| t.to_string()).unwrap_or_else(|| "never".into())) }
        form method="post" action="/ui/writeback/push" { input type="hidden" name="csrf" value=(s.csrf); button type="submit" { "Retry now" } }
        h2 { "Conflicts (" (status.conflicts.len()) ")" }
        table {
            thead { tr { th { "User" } th { "Field" } th { "Application" } th { "Why" } th {} } }
            tbody {
                @for i in &status.conflicts {
                    tr {
                        td { a href=(user_url(&i.username)) { (i.username) } }
                        td { (i.field) }
                        td { (shown(&i.value)) }
                        td { (i.last_error.clone().unwrap_or_default()) }
                        td.actions {
                            @for (keep, label) in [("app", "Keep app value"), ("directory", "Keep directory value")] {
                                form method="post" action=(format!("/ui/writeback/{}/resolve", i.id)) {
                                    input type="hidden" name="csrf" value=(s.csrf);
                                    input type="hidden" name="keep" value=(keep);
                                    button type="submit" { (label) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Failed (" (status.failed.len()) ")" }
        table {
            thead { tr { th { "User" } th { "Field" } th { "Value" } th { "Attempts" } th { "Next try" } th { "Reason" } } }
            tbody {
                @for i in &status.failed {
                    tr {
                        td { a href=(user_url(&i.username)) { (i.username) } }
                        td { (i.field) } td { (shown(&i.value)) } td { (i.attempts) }
                        td { (i.next_attempt_at.map(|t| t.to_string()).unwrap_or_default()) }
                        td { (i.last_error.clone().unwrap_or_default()) }
                    }
                }
            }
        }
        h2 { "Pending (" (status.pending.len()) ")" }
        ul { @for i in &status.pending { li { (i.username) " · " (i.field) " → " (shown(&i.value)) } } }
    };
    layout("Write-back", Some(&s), body).into_response()
}

#[derive(Deserialize)]
pub struct ResolveForm {
    csrf: String,
    keep: String,
}

pub async fn resolve(
    State(st): State<AppState>,
    path: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    Checked(s, f): Checked<ResolveForm>,
) -> Response {
    let Ok(Path(id)) = path else { return page_error(StatusCode::NOT_FOUND, "No such item.") };
    let Ok(keep) = crate::engine::writeback::keep_of(&f.keep) else {
        return page_error(StatusCode::BAD_REQUEST, "Keep the app value or the directory value.");
    };
    let cfg = st.config();
    match crate::engine::writeback::resolve(&cfg, &*st.store, id, keep).await {
        Ok((resolved, _)) => {
            tracing::info!(user = %s.user, item = id, keep = %f.keep, resolved, "admin page: conflict resolution");
            Redirect::to("/ui/writeback").into_response()
        }
        Err(e) => page_failure(e),
    }
}

pub async fn push(State(st): State<AppState>, Checked(_, _): Checked<super::CsrfForm>) -> Response {
    let cfg = st.config();
    match crate::engine::writeback::push_now(&cfg, &*st.store, true).await {
        Ok(_) => Redirect::to("/ui/writeback").into_response(),
        Err(e) => page_failure(e),
    }
}

impl super::WithCsrf for FieldForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl super::WithCsrf for ResolveForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[derive(Deserialize)]
pub struct BackfillForm {
    csrf: String,
    /// Set: fill in; absent: the preview.
    apply: Option<String>,
}

impl super::WithCsrf for BackfillForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `sync --backfill` from the page: a preview of what existing users lack
/// and a create would have set, then "Fill in" (a run of mode `backfill`).
pub async fn backfill(State(st): State<AppState>, Checked(s, f): Checked<BackfillForm>) -> Response {
    let cfg = st.config();
    let apply = f.apply.is_some();
    let origin = crate::model::records::RunOrigin::new(crate::model::records::Trigger::Api, &st.runner.instance());
    let o = match crate::engine::backfill::backfill(&cfg, &*st.store, &[], !apply, &origin).await {
        Ok(o) => o,
        Err(e) => return page_failure(e),
    };
    if apply {
        tracing::info!(user = %s.user, run = ?o.run_id, values = o.fills.len(), "admin page: backfill");
        return Redirect::to(&format!("/ui/runs/{}", o.run_id.unwrap_or_default())).into_response();
    }
    let body = html! {
        p { strong { "Preview: nothing has been changed yet." } " A backfill fills in what existing users lack and a create would have set (create-only fields, rules, generated codes); it never overwrites a value." }
        p { (o.fills.len()) " values for " (o.users) " users." }
        @if !o.fills.is_empty() {
            form method="post" action="/ui/backfill" {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="apply" value="1";
                button type="submit" { "Fill in" }
            }
            table {
                thead { tr { th { "User" } th { "Field" } th { "Value" } th { "From" } } }
                tbody { @for fill in o.fills.iter().take(200) { tr {
                    td { (fill.username) } td { (fill.field) }
                    td { (fill.value.clone().unwrap_or_else(|| "(a generated code)".into())) } td { (fill.from) }
                } } }
            }
            @if o.fills.len() > 200 { p.hint { "… and " (o.fills.len() - 200) " more (`dirsync sync --backfill --dry-run --json` lists all)." } }
        }
    };
    layout("Backfill", Some(&s), body).into_response()
}
