//! `/api/users` and `/api/groups`: indexed reads (a page with filters and a
//! cursor, one by name, a group's members, a user's history) and the one
//! write an application makes, `PATCH /api/users/{name}` (a JSON merge patch
//! of fields the application owns or keeps locally).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::clients::{authorize, Caller};
use super::error::ApiError;
use crate::config::Scope;
use crate::engine::views::UserView;
use crate::engine::writeback::{set_fields, SetValue};
use crate::model::{Status, StoredGroup, CORE_FIELDS};
use crate::serve::AppState;
use crate::store::{on_store, UserQuery};

/// The largest page.
pub const MAX_LIMIT: usize = 1000;

pub(super) fn limit(l: Option<usize>) -> Result<usize, ApiError> {
    match l {
        None => Ok(100),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!("limit: expected 1 to {MAX_LIMIT}, got {n}"))),
    }
}

/// One page of `items`, read as `limit + 1`: the extra item only says a
/// next page exists, whose cursor is the last shown item's.
pub(super) fn page_of<T, C>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> C) -> (Vec<T>, Option<C>) {
    if items.len() <= limit {
        return (items, None);
    }
    items.truncate(limit);
    let next = items.last().map(cursor);
    (items, next)
}

#[derive(Deserialize)]
pub struct UsersParams {
    q: Option<String>,
    group: Option<String>,
    status: Option<String>,
    source: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn status(s: Option<&str>) -> Result<Option<Status>, ApiError> {
    match s {
        None => Ok(None),
        Some("active") => Ok(Some(Status::Active)),
        Some("disabled") => Ok(Some(Status::Disabled)),
        Some(o) => Err(ApiError::bad_request(format!("status: expected \"active\" or \"disabled\", got \"{o}\""))),
    }
}

/// Users with their groups, and the cursor of the next page.
async fn page(st: &AppState, q: UserQuery) -> Result<Value, ApiError> {
    let limit = q.limit;
    let views = on_store(&*st.store, move |s| -> Result<Vec<UserView>, crate::store::StoreError> {
        let users = s.users_page(&UserQuery { limit: limit + 1, ..q })?;
        let mut groups = s.groups_of_users(&users.iter().map(|u| u.id).collect::<Vec<_>>())?;
        Ok(users.iter().map(|u| UserView::of(u, groups.remove(&u.id).unwrap_or_default())).collect())
    })
    .await?;
    let (views, next) = page_of(views, limit, |u| u.username.clone());
    Ok(json!({ "users": views, "next": next }))
}

pub async fn list_users(
    State(st): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<UsersParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&st, &headers, Scope::Read)?;
    let Query(p) = params?;
    let q = UserQuery {
        after: p.cursor,
        limit: limit(p.limit)?,
        source: p.source,
        status: status(p.status.as_deref())?,
        group: p.group,
        direct: false,
        prefix: p.q.filter(|q| !q.is_empty()),
    };
    Ok(Json(page(&st, q).await?))
}

async fn user_view(st: &AppState, name: String) -> Result<UserView, ApiError> {
    let shown = name.clone();
    on_store(&*st.store, move |s| -> Result<Option<UserView>, crate::store::StoreError> {
        let Some(u) = s.user_by_name(&name)? else { return Ok(None) };
        Ok(Some(UserView::of(&u, s.groups_of_user(u.id)?)))
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no user named \"{shown}\"")))
}

pub async fn get_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<UserView>, ApiError> {
    let Path(name) = path?;
    authorize(&st, &headers, Scope::Read)?;
    Ok(Json(user_view(&st, name).await?))
}

#[derive(Deserialize)]
pub struct HistoryParams {
    limit: Option<usize>,
}

pub async fn user_history(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    params: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    authorize(&st, &headers, Scope::Read)?;
    let limit = limit(params?.0.limit)?;
    let u = user_view(&st, name).await?;
    let id = u.id;
    let records = on_store(&*st.store, move |s| s.audit_of(id, limit)).await?;
    Ok(Json(json!({ "username": u.username, "history": records })))
}

/// `PATCH /api/users/{name}`: `{"fields": {"print_code": "4711"}}` (or a
/// core field at the top level); `null` clears a value. Every field is
/// checked before any is set; a field the directory owns is refused (409).
pub async fn patch_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    let caller = authorize(&st, &headers, Scope::Write)?;
    let Json(body) = body?;
    let Value::Object(top) = body else {
        return Err(ApiError::bad_request("expected a JSON object such as {\"fields\": {\"print_code\": \"4711\"}}"));
    };
    let mut changes: Vec<(String, Option<String>)> = Vec::new();
    let mut take = |k: &str, v: &Value| -> Result<(), ApiError> {
        match v {
            Value::Null => changes.push((k.to_string(), None)),
            Value::String(s) => changes.push((k.to_string(), Some(s.clone()))),
            Value::Number(n) => changes.push((k.to_string(), Some(n.to_string()))),
            _ => return Err(ApiError::bad_request(format!("{k}: expected a string, a number or null"))),
        }
        Ok(())
    };
    for (k, v) in &top {
        match k.as_str() {
            "fields" => {
                let Value::Object(f) = v else { return Err(ApiError::bad_request("fields: expected an object")) };
                for (fk, fv) in f {
                    take(fk, fv)?;
                }
            }
            k if CORE_FIELDS.contains(&k) => take(k, v)?,
            "username" | "external_id" | "source" | "dn" | "status" | "groups" | "all_groups" | "created_at"
            | "updated_at" => {
                return Err(ApiError::conflict(format!("{k} is kept by the directory and the sync; it cannot be set")))
            }
            other => {
                return Err(ApiError::bad_request(format!("unknown key \"{other}\" (expected fields or a core field)")))
            }
        }
    }
    if changes.is_empty() {
        return patched(&st, &caller, name, Vec::new()).await;
    }
    let cfg = st.config();
    let (who, fields) = (name.clone(), changes.iter().map(|c| c.0.clone()).collect::<Vec<_>>());
    let shown = fields.clone();
    let values = changes.into_iter().map(|(f, v)| (f, v.map(SetValue::Value).unwrap_or(SetValue::Clear))).collect();
    on_store(&*st.store, move |s| set_fields(&cfg, s, &who, values)).await?;
    tracing::info!(client = %caller.name, user = %name, fields = ?shown, "fields set");
    patched(&st, &caller, name, shown).await
}

/// A PATCH's answer: the user as it is now, or, to a client that may not
/// read users, only which fields were set (an empty merge patch sets none).
async fn patched(st: &AppState, caller: &Caller, name: String, fields: Vec<String>) -> Result<Json<Value>, ApiError> {
    match caller.reads {
        true => Ok(Json(serde_json::to_value(user_view(st, name).await?).unwrap_or_default())),
        false => Ok(Json(json!({ "updated": fields }))),
    }
}

#[derive(Deserialize)]
pub struct GroupsParams {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A group's cursor: its id and name.
fn group_cursor(g: &StoredGroup) -> String {
    format!("{}.{}", g.id, g.name)
}

async fn group_json(st: &AppState, g: StoredGroup) -> Result<Value, ApiError> {
    let id = g.id;
    let r = on_store(&*st.store, move |s| s.group_relations(id)).await?;
    Ok(json!({
        "name": g.name, "source": g.source, "external_id": g.external_id, "dn": g.dn,
        "members": r.direct_members, "all_members": r.all_members,
        "member_of": r.member_of, "subgroups": r.subgroups,
    }))
}

pub async fn list_groups(
    State(st): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<GroupsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&st, &headers, Scope::Read)?;
    let Query(p) = params?;
    let limit = limit(p.limit)?;
    let after = match p.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        // "<id>.<name>" as the API gives it; any other text reads as a name
        // (the page starts after every group of that name).
        Some(c) => match c.split_once('.').and_then(|(id, name)| Some((name, id.parse::<i64>().ok()?))) {
            Some((name, id)) => Some((name.to_string(), id)),
            None => Some((c.to_string(), i64::MAX)),
        },
    };
    let groups =
        on_store(&*st.store, move |s| s.groups_page(after.as_ref().map(|(n, i)| (n.as_str(), *i)), limit + 1)).await?;
    let (groups, next) = page_of(groups, limit, group_cursor);
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        out.push(group_json(&st, g).await?);
    }
    Ok(Json(json!({ "groups": out, "next": next })))
}

async fn one_group(st: &AppState, name: String) -> Result<StoredGroup, ApiError> {
    let shown = name.clone();
    let found = on_store(&*st.store, move |s| s.groups_by_name(&name)).await?;
    found.into_iter().next().ok_or_else(|| ApiError::not_found(format!("no group named \"{shown}\"")))
}

pub async fn get_group(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    authorize(&st, &headers, Scope::Read)?;
    let g = one_group(&st, name).await?;
    Ok(Json(group_json(&st, g).await?))
}

#[derive(Deserialize)]
pub struct MembersParams {
    effective: Option<bool>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub async fn group_members(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    params: Result<Query<MembersParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    authorize(&st, &headers, Scope::Read)?;
    let Query(p) = params?;
    let g = one_group(&st, name).await?;
    let q = UserQuery {
        after: p.cursor,
        limit: limit(p.limit)?,
        group: Some(g.name),
        direct: !p.effective.unwrap_or(false),
        ..UserQuery::default()
    };
    let mut v = page(&st, q).await?;
    // A members list answers {members, next}.
    if let Some(users) = v.as_object_mut().and_then(|o| o.remove("users")) {
        v["members"] = users;
    }
    Ok(Json(v))
}

/// `POST /api/users/{username}/sync`: just-in-time provisioning. The user is
/// looked up in the sources (an escaped filter) with the groups that list
/// it, created or updated now with mapping, rules and codes, and recorded as
/// a run of mode `single`; nobody is removed. 404 when no source knows the
/// user, 422 when its entry is invalid, 503 while another sync holds the store.
pub async fn sync_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = path?;
    let caller = authorize(&st, &headers, Scope::Sync)?;
    // No user can have such a name: nothing is asked of the directory.
    if name.trim().is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
        return Err(ApiError::not_found(format!("no source knows a user named {name:?}")));
    }
    let cfg = st.config();
    let origin = crate::model::records::RunOrigin::new(crate::model::records::Trigger::Single, &st.runner.instance());
    let opts = crate::engine::sync::SyncOptions { user: Some(name.clone()), origin, ..Default::default() };
    let outcome = crate::engine::sync::run(&cfg, &*st.store, &opts, Default::default()).await?;
    tracing::info!(client = %caller.name, user = %name, status = outcome.status.as_str(), "just-in-time sync");
    let c = &outcome.counts;
    match outcome.status {
        // Several sources: one that failed does not hide a user another found.
        crate::engine::history::RunStatus::Ok | crate::engine::history::RunStatus::Partial => {}
        crate::engine::history::RunStatus::Failed if outcome.lock_held => {
            return Err(ApiError::sync_running(outcome.message.clone().unwrap_or_default()))
        }
        crate::engine::history::RunStatus::Failed => {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "directory_unavailable",
                outcome.message.clone().unwrap_or_default(),
            ))
        }
        _ => return Err(ApiError::conflict(outcome.message.clone().unwrap_or_default())),
    }
    if c.created + c.updated + c.renamed + c.unchanged == 0 {
        if let Some(e) = outcome.errors.first() {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_entry",
                format!("{}: {}", e.dn, e.reason),
            ));
        }
        return Err(ApiError::not_found(format!("no source knows a user named \"{name}\"")));
    }
    let user = user_view(&st, name).await?;
    Ok(Json(json!({ "run_id": outcome.run_id, "created": c.created > 0, "user": user })))
}
