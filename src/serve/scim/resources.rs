//! One SCIM resource: read (`GET /Users/{id}`), create (`POST`), replace
//! (`PUT`), patch (`PATCH`) and delete (`DELETE`), for users (`USER =
//! true`) and groups alike. Each change is checked here (a `userName`
//! present and free, as dirsync compares names), then pushed through the
//! engine with the resource's new version written in the same transaction.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{answer, authorize, base_url, json_body, Scim};
use crate::config::Config;
use crate::engine::push::{self, Change, PushError, Resource};
use crate::model::records::{RunOrigin, Trigger};
use crate::model::{name_key, EntryKind};
use crate::scim::discovery::{ScimError, GROUP, USER};
use crate::scim::resource::{self, Kind};
use crate::serve::AppState;
use crate::store::{on_store, ScimKey, ScimRow, Store, StoreError};
use crate::time::Timestamp;

/// `attributes` and `excludedAttributes`, as every GET takes them.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Projection {
    pub attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    pub excluded_attributes: Option<String>,
}

pub(super) fn kind_of(user: bool) -> Kind {
    if user {
        Kind::User
    } else {
        Kind::Group
    }
}

/// The resource as answered: its kept body with `id`, `schemas` and `meta`.
pub fn present(row: &ScimRow, base: &str) -> Value {
    let mut v: Value = serde_json::from_str(&row.body).unwrap_or_else(|_| json!({}));
    let user = row.kind == "User";
    let mut schemas = vec![json!(if user { USER } else { GROUP })];
    if let Value::Object(o) = &mut v {
        // An extension left empty (its attributes removed) is not there.
        o.retain(|k, x| !(k.to_ascii_lowercase().starts_with("urn:") && x.as_object().is_some_and(|m| m.is_empty())));
        schemas.extend(o.keys().filter(|k| k.to_ascii_lowercase().starts_with("urn:")).map(|k| json!(k)));
    }
    let endpoint = if user { "Users" } else { "Groups" };
    let meta = json!({
        "resourceType": row.kind,
        "created": row.created.to_string(),
        "lastModified": row.modified.to_string(),
        "location": format!("{base}/{endpoint}/{}", row.id),
    });
    if let Value::Object(o) = &mut v {
        o.insert("id".into(), json!(row.id));
        o.insert("schemas".into(), Value::Array(schemas));
        o.insert("meta".into(), meta);
    }
    v
}

/// A live resource of `source` by id (404 otherwise: another source's
/// resources are not there for this token).
fn find(store: &dyn Store, source: &str, kind: Kind, id: &str) -> Result<ScimRow, Scim> {
    let none = || Scim(ScimError::new(404, None, format!("no {} with that id", kind.as_str())));
    if id.contains('\0') {
        return Err(none());
    }
    let found = store.scim_find(source, kind.as_str(), ScimKey::Id, id).map_err(store_error)?;
    found.into_iter().next().ok_or_else(none)
}

pub async fn read<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    p: super::QueryOf<Projection>,
) -> Result<Response, Scim> {
    let p = super::query(p)?;
    let cfg = st.config();
    let source = authorize(&cfg, &headers)?;
    let row = on_store(&*st.store, move |s| find(s, &source, kind_of(USER), &id)).await?;
    let mut v = present(&row, &base_url(&cfg, &headers));
    resource::project(&mut v, p.attributes.as_deref(), p.excluded_attributes.as_deref());
    Ok(answer(StatusCode::OK, &v))
}

/// What a request writes.
enum Write {
    Create(Map<String, Value>),
    Replace(String, Map<String, Value>),
    Patch(String, Value),
    Delete(String),
}

pub async fn create<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Scim> {
    let cfg = st.config();
    let source = authorize(&cfg, &headers)?;
    let kind = kind_of(USER);
    let kept = resource::clean_body(kind, &json_body(&headers, body)?)?;
    let row = write(&st, cfg.clone(), source, kind, Write::Create(kept)).await?.expect("a created resource");
    let base = base_url(&cfg, &headers);
    let mut r = answer(StatusCode::CREATED, &present(&row, &base));
    let endpoint = if USER { "Users" } else { "Groups" };
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/{endpoint}/{}", row.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

pub async fn replace<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Scim> {
    let cfg = st.config();
    let source = authorize(&cfg, &headers)?;
    let kind = kind_of(USER);
    let kept = resource::clean_body(kind, &json_body(&headers, body)?)?;
    let row = write(&st, cfg.clone(), source, kind, Write::Replace(id, kept)).await?.expect("a new version");
    Ok(answer(StatusCode::OK, &present(&row, &base_url(&cfg, &headers))))
}

pub async fn patch<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Scim> {
    let cfg = st.config();
    let source = authorize(&cfg, &headers)?;
    let ops = json_body(&headers, body)?;
    let row = write(&st, cfg.clone(), source, kind_of(USER), Write::Patch(id, ops)).await?.expect("a new version");
    Ok(answer(StatusCode::OK, &present(&row, &base_url(&cfg, &headers))))
}

pub async fn delete<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Scim> {
    let cfg = st.config();
    let source = authorize(&cfg, &headers)?;
    write(&st, cfg, source, kind_of(USER), Write::Delete(id)).await?;
    let mut r = answer(StatusCode::NO_CONTENT, &Value::Null);
    *r.body_mut() = axum::body::Body::empty();
    r.headers_mut().remove(header::CONTENT_TYPE);
    Ok(r)
}

/// Runs a write under the source's lock (this instance applies a source's
/// pushes one at a time: a name checked free stays free until written), in
/// one trip to a blocking thread: the checks, the new version, the push.
async fn write(st: &AppState, cfg: Arc<Config>, source: String, kind: Kind, w: Write) -> Result<Option<ScimRow>, Scim> {
    let lock = st.scim.lock_of(&source);
    let _one = lock.lock().await;
    let (store, runs) = (st.store.clone(), st.scim.runs.clone());
    let origin = RunOrigin::new(Trigger::Scim, &st.runner.instance());
    tokio::task::spawn_blocking(move || write_now(&cfg, &*store, &source, kind, w, (&origin, &runs)))
        .await
        .map_err(|e| Scim(ScimError::new(500, None, format!("the request stopped: {e}"))))?
}

fn write_now(
    cfg: &Config,
    store: &dyn Store,
    source: &str,
    kind: Kind,
    w: Write,
    (origin, runs): (&RunOrigin, &push::OpenRuns),
) -> Result<Option<ScimRow>, Scim> {
    let (old, kept) = match w {
        Write::Create(kept) => (None, kept),
        Write::Replace(id, kept) => (Some(find(store, source, kind, &id)?), kept),
        Write::Patch(id, ops) => {
            let old = find(store, source, kind, &id)?;
            let mut v: Value = serde_json::from_str(&old.body).unwrap_or_else(|_| json!({}));
            resource::apply_patch(kind, &mut v, &ops)?;
            let Value::Object(kept) = v else { unreachable!("a patched resource stays an object") };
            (Some(old), kept)
        }
        Write::Delete(id) => {
            let old = find(store, source, kind, &id)?;
            let entry = if kind == Kind::User { EntryKind::User } else { EntryKind::Group };
            pushed(push::push(
                cfg,
                store,
                source,
                Change::Gone(entry, old.id.clone()),
                Some(Resource::Delete(old.id)),
                origin,
                runs,
            ))?;
            return Ok(None);
        }
    };
    let key = checked_name(store, source, kind, &kept, old.as_ref().map(|o| (o.id.as_str(), o.name_key.as_str())))?;
    let now = Timestamp::now();
    let row = match old {
        None => ScimRow {
            id: new_id(),
            source: source.to_string(),
            kind: kind.as_str().into(),
            name_key: key,
            external_id: external_id(&kept),
            body: String::new(),
            created: now,
            modified: now,
            version: 1,
        },
        Some(old) => {
            ScimRow { name_key: key, external_id: external_id(&kept), modified: now, version: old.version + 1, ..old }
        }
    };
    let body = Value::Object(kept);
    let scfg = cfg.sources.iter().find(|s| s.name == source).expect("authorized: configured");
    let change = match kind {
        Kind::User => {
            let paths = crate::sources::scim::mapped_paths(scfg);
            Change::Upsert(EntryKind::User, crate::sources::scim::user_entry(&row.id, &body, &paths))
        }
        Kind::Group => Change::Upsert(EntryKind::Group, crate::sources::scim::group_entry(&row.id, &body)),
    };
    let row = ScimRow { body: body.to_string(), ..row };
    pushed(push::push(cfg, store, source, change, Some(Resource::Put(row.clone())), origin, runs))?;
    Ok(Some(row))
}

/// The name key a resource is found by: `userName` (required, unique per
/// source among live users, compared as dirsync compares names) or a
/// group's `displayName` (required). `this`: the resource's own id and
/// name key, for a new version of it.
fn checked_name(
    store: &dyn Store,
    source: &str,
    kind: Kind,
    kept: &Map<String, Value>,
    this: Option<(&str, &str)>,
) -> Result<String, Scim> {
    let attr = if kind == Kind::User { "userName" } else { "displayName" };
    let name = kept
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.as_str())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Scim(ScimError::new(400, Some("invalidValue"), format!("\"{attr}\" is required, a non-empty string")))
        })?;
    if kind == Kind::Group {
        return Ok(name.to_lowercase());
    }
    let key = name_key(name);
    if this.is_some_and(|t| t.1 == key) {
        return Ok(key); // unchanged: still this resource's
    }
    let taken = store.scim_find(source, "User", ScimKey::Name, &key).map_err(store_error)?;
    if taken.iter().any(|r| Some(r.id.as_str()) != this.map(|t| t.0)) {
        return Err(Scim(ScimError::new(409, Some("uniqueness"), format!("userName \"{name}\" is already taken"))));
    }
    Ok(key)
}

fn external_id(kept: &Map<String, Value>) -> Option<String> {
    kept.iter().find(|(k, _)| k.eq_ignore_ascii_case("externalId")).and_then(|(_, v)| v.as_str()).map(str::to_string)
}

/// The engine's refusals of a push as SCIM errors.
fn pushed(done: Result<push::Pushed, PushError>) -> Result<push::Pushed, Scim> {
    done.map_err(|e| match e {
        PushError::Invalid(m) => Scim(ScimError::new(400, Some("invalidValue"), m)),
        PushError::Taken(m) => Scim(ScimError::new(409, Some("uniqueness"), m)),
        PushError::Held { run_id, reason } => {
            tracing::warn!(run = run_id, "SCIM push held by the push guard: {reason}");
            Scim(ScimError::new(503, None, format!("{reason} (run {run_id})")))
        }
        PushError::UnknownSource(s) => Scim(ScimError::new(404, None, format!("no source \"{s}\""))),
        PushError::Store(e) => store_error(e),
    })
}

/// A store failure as a SCIM answer: a refused write (a name taken by
/// another instance meanwhile) is 409; busy is 503; the rest 500, logged.
pub fn store_error(e: StoreError) -> Scim {
    match e {
        StoreError::Constraint { .. } => Scim(ScimError::new(409, Some("uniqueness"), "the value is already taken")),
        StoreError::Busy { .. } | StoreError::Locked(_) | StoreError::Conflict { .. } => {
            Scim(ScimError::new(503, None, "the store is busy; try again"))
        }
        StoreError::Unavailable { .. } => {
            tracing::error!("store unavailable: {e}");
            Scim(ScimError::new(503, None, "the store cannot be reached"))
        }
        other => {
            tracing::error!("store error: {other}");
            Scim(ScimError::new(500, None, "the store failed; see the service's log"))
        }
    }
}

/// A new SCIM id: a random (version 4) UUID, never reused.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system's random source");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
