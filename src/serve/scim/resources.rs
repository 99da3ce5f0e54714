//! One SCIM resource: read (`GET /Users/{id}`), create (`POST`), replace
//! (`PUT`), patch (`PATCH`) and delete (`DELETE`), for users (`USER =
//! true`) and groups alike. Each change is checked here (a `userName`
//! present and free, as dirsync compares names), then pushed through the
//! engine with the resource's new version written in the same transaction.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
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
use crate::store::{ScimKey, ScimRow, Store, StoreError};
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
async fn find(store: &dyn Store, source: &str, kind: Kind, id: &str) -> Result<ScimRow, Scim> {
    if id.contains('\0') {
        return Err(Scim(ScimError::new(404, None, format!("no {} with that id", kind.as_str()))));
    }
    let (s, k, i) = (source.to_string(), kind.as_str(), id.to_string());
    let found =
        crate::store::on_store(store, move |st| st.scim_find(&s, k, ScimKey::Id, &i)).await.map_err(store_error)?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| Scim(ScimError::new(404, None, format!("no {} with id \"{id}\"", kind.as_str()))))
}

pub async fn read<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Projection>,
) -> Result<Response, Scim> {
    let cfg = st.config();
    let source = authorize(&cfg, &headers)?;
    let row = find(&*st.store, &source, kind_of(USER), &id).await?;
    let mut v = present(&row, &base_url(&cfg, &headers));
    resource::project(&mut v, p.attributes.as_deref(), p.excluded_attributes.as_deref());
    Ok(answer(StatusCode::OK, &v))
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
    let lock = st.scim.lock_of(&source);
    let _one = lock.lock().await;
    let key = checked_name(&st, &source, kind, &kept, None).await?;
    let now = Timestamp::now();
    let row = ScimRow {
        id: new_id(),
        source: source.clone(),
        kind: kind.as_str().into(),
        name_key: key,
        external_id: external_id(&kept),
        body: Value::Object(kept).to_string(),
        created: now,
        modified: now,
        version: 1,
    };
    let row = store_change(&st, &cfg, &source, kind, row).await?;
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
    let lock = st.scim.lock_of(&source);
    let _one = lock.lock().await;
    let old = find(&*st.store, &source, kind, &id).await?;
    write_version(&st, &cfg, &headers, &source, kind, old, kept).await
}

pub async fn patch<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Scim> {
    let cfg = st.config();
    let source = authorize(&cfg, &headers)?;
    let kind = kind_of(USER);
    let ops = json_body(&headers, body)?;
    let lock = st.scim.lock_of(&source);
    let _one = lock.lock().await;
    let old = find(&*st.store, &source, kind, &id).await?;
    let mut v: Value = serde_json::from_str(&old.body).unwrap_or_else(|_| json!({}));
    resource::apply_patch(kind, &mut v, &ops)?;
    let Value::Object(kept) = v else { return Err(Scim(ScimError::new(400, Some("invalidValue"), "not an object"))) };
    write_version(&st, &cfg, &headers, &source, kind, old, kept).await
}

/// A resource's next version (PUT, PATCH) pushed and answered.
async fn write_version(
    st: &AppState,
    cfg: &std::sync::Arc<Config>,
    headers: &HeaderMap,
    source: &str,
    kind: Kind,
    old: ScimRow,
    kept: Map<String, Value>,
) -> Result<Response, Scim> {
    let key = checked_name(st, source, kind, &kept, Some(&old.id)).await?;
    let row = ScimRow {
        name_key: key,
        external_id: external_id(&kept),
        body: Value::Object(kept).to_string(),
        modified: Timestamp::now(),
        version: old.version + 1,
        ..old
    };
    let row = store_change(st, cfg, source, kind, row).await?;
    Ok(answer(StatusCode::OK, &present(&row, &base_url(cfg, headers))))
}

pub async fn delete<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Scim> {
    let cfg = st.config();
    let source = authorize(&cfg, &headers)?;
    let kind = kind_of(USER);
    let lock = st.scim.lock_of(&source);
    let _one = lock.lock().await;
    let row = find(&*st.store, &source, kind, &id).await?;
    let entry = if USER { EntryKind::User } else { EntryKind::Group };
    run_push(st.clone(), cfg, source, Change::Gone(entry, row.id.clone()), Resource::Delete(row.id)).await?;
    let mut r = answer(StatusCode::NO_CONTENT, &Value::Null);
    *r.body_mut() = axum::body::Body::empty();
    r.headers_mut().remove(header::CONTENT_TYPE);
    Ok(r)
}

/// The name key a resource is found by: `userName` (required, unique per
/// source among live users, compared as dirsync compares names) or a
/// group's `displayName` (required).
async fn checked_name(
    st: &AppState,
    source: &str,
    kind: Kind,
    kept: &Map<String, Value>,
    this: Option<&str>,
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
    let (s, k) = (source.to_string(), key.clone());
    let taken = crate::store::on_store(&*st.store, move |store| store.scim_find(&s, "User", ScimKey::Name, &k))
        .await
        .map_err(store_error)?;
    if taken.iter().any(|r| Some(r.id.as_str()) != this) {
        return Err(Scim(ScimError::new(409, Some("uniqueness"), format!("userName \"{name}\" is already taken"))));
    }
    Ok(key)
}

fn external_id(kept: &Map<String, Value>) -> Option<String> {
    kept.iter().find(|(k, _)| k.eq_ignore_ascii_case("externalId")).and_then(|(_, v)| v.as_str()).map(str::to_string)
}

/// Pushes the resource's new version through the engine.
async fn store_change(
    st: &AppState,
    cfg: &std::sync::Arc<Config>,
    source: &str,
    kind: Kind,
    row: ScimRow,
) -> Result<ScimRow, Scim> {
    let scfg = cfg.sources.iter().find(|s| s.name == source).expect("authorized: configured");
    let body: Value = serde_json::from_str(&row.body).unwrap_or_else(|_| json!({}));
    let change = match kind {
        Kind::User => {
            let paths = crate::sources::scim::mapped_paths(scfg);
            Change::Upsert(EntryKind::User, crate::sources::scim::user_entry(&row.id, &body, &paths))
        }
        Kind::Group => Change::Upsert(EntryKind::Group, crate::sources::scim::group_entry(&row.id, &body)),
    };
    run_push(st.clone(), cfg.clone(), source.to_string(), change, Resource::Put(row.clone())).await?;
    Ok(row)
}

/// Runs the engine's push on a blocking thread; its refusals as SCIM errors.
async fn run_push(
    st: AppState,
    cfg: std::sync::Arc<Config>,
    source: String,
    change: Change,
    res: Resource,
) -> Result<push::Pushed, Scim> {
    let origin = RunOrigin::new(Trigger::Scim, &st.runner.instance());
    let store = st.store.clone();
    let done = tokio::task::spawn_blocking(move || push::push(&cfg, &*store, &source, change, Some(res), &origin))
        .await
        .map_err(|e| Scim(ScimError::new(500, None, format!("the push stopped: {e}"))))?;
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
