//! `/scim/v2`: the SCIM 2.0 service identity providers push users and
//! groups to (RFC 7644). A thin layer: the bearer token names the SCIM
//! source ([`authorize`]: compared in constant time, one source's token
//! reaches only that source's resources), requests are parsed and answered
//! here ([`resources`]: read, create, replace, patch, delete; [`list`]:
//! filters and pages), and every change goes through the engine's push
//! (`engine::push`): mapping, plan, the push guard, apply, history.
//! Answers are `application/scim+json`; errors are SCIM error documents.

pub mod list;
pub mod resources;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::config::Config;
use crate::scim::discovery::{self, ScimError, CONTENT_TYPE};
use crate::serve::api::clients::ct_eq;
use crate::serve::AppState;
use crate::sources::scim::ScimConfig;

/// The largest SCIM request body (a group's full member list in a PUT).
pub const MAX_BODY: usize = 1024 * 1024;

/// What the SCIM routes share beyond the service's state: one lock per
/// source, so this instance applies a source's pushes one at a time (a
/// name checked free stays free until its resource is written).
#[derive(Default)]
pub struct ScimState {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The push runs this instance has open.
    pub runs: Arc<crate::engine::push::OpenRuns>,
}

impl ScimState {
    pub(crate) fn lock_of(&self, source: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("scim locks").entry(source.to_string()).or_default().clone()
    }
}

/// The routes under `/scim/v2`.
pub fn router() -> Router<AppState> {
    use resources::{create, delete, patch, read, replace};
    Router::new()
        .route("/scim/v2/ServiceProviderConfig", get(service_provider_config))
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema))
        .route("/scim/v2/Users", get(list::users).post(create::<true>))
        .route("/scim/v2/.search", axum::routing::post(list::search_all))
        .route("/scim/v2/Users/.search", axum::routing::post(list::search::<true>))
        .route("/scim/v2/Groups/.search", axum::routing::post(list::search::<false>))
        .route(
            "/scim/v2/Users/{id}",
            get(read::<true>).put(replace::<true>).patch(patch::<true>).delete(delete::<true>),
        )
        .route("/scim/v2/Groups", get(list::groups).post(create::<false>))
        .route(
            "/scim/v2/Groups/{id}",
            get(read::<false>).put(replace::<false>).patch(patch::<false>).delete(delete::<false>),
        )
        .route(
            "/scim/v2/{*rest}",
            axum::routing::any(|| async { Scim(ScimError::new(404, None, "no such SCIM endpoint")) }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// A SCIM error as the answer.
pub struct Scim(pub ScimError);

impl From<ScimError> for Scim {
    fn from(e: ScimError) -> Scim {
        Scim(e)
    }
}

impl IntoResponse for Scim {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = answer(status, &self.0.body());
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim\""));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let secs = crate::engine::push::RETRY_AFTER.as_secs();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// A JSON answer in SCIM's media type, never cached.
pub fn answer(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// The SCIM source whose token the request presents (constant-time
/// comparison with every SCIM source's token); 401 otherwise.
pub fn authorize(cfg: &Config, headers: &HeaderMap) -> Result<String, Scim> {
    let unauthorized = || Scim(ScimError::new(401, None, "a valid Authorization: Bearer <token> header is needed"));
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(unauthorized)?;
    let mut found = None;
    for s in cfg.sources.iter().filter(|s| s.is_pushed()) {
        if let Some(k) = s.settings::<ScimConfig>() {
            if ct_eq(k.token.expose().as_bytes(), given.as_bytes()) {
                found = Some(s.name.clone());
            }
        }
    }
    found.ok_or_else(|| {
        tracing::info!("SCIM request with an unknown token refused");
        unauthorized()
    })
}

/// The service's `/scim/v2` URL as the client reached it (for `location`).
pub fn base_url(cfg: &Config, headers: &HeaderMap) -> String {
    let tls = cfg.server.as_ref().is_some_and(|s| s.tls.is_some());
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or(if tls { "https" } else { "http" });
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
        .unwrap_or("localhost");
    format!("{proto}://{host}/scim/v2")
}

/// A request body as JSON: `application/scim+json` or `application/json`.
pub fn json_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Value, Scim> {
    let body = body.map_err(|e| {
        let status = e.status().as_u16();
        Scim(ScimError::new(
            status,
            None,
            format!("the request body could not be read: {e} (at most {MAX_BODY} bytes)"),
        ))
    })?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if let Some(m) = media.filter(|m| m != CONTENT_TYPE && m != "application/json") {
        return Err(Scim(ScimError::new(
            415,
            None,
            format!("Content-Type {m} is not taken: send {CONTENT_TYPE} or application/json"),
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| Scim(ScimError::new(400, Some("invalidSyntax"), format!("the body is not JSON: {e}"))))
}

async fn service_provider_config(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, Scim> {
    let cfg = st.config();
    authorize(&cfg, &headers)?;
    Ok(answer(StatusCode::OK, &discovery::service_provider_config(&base_url(&cfg, &headers))))
}

async fn resource_types(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, Scim> {
    let cfg = st.config();
    authorize(&cfg, &headers)?;
    let all = discovery::resource_types(&base_url(&cfg, &headers));
    let n = all.len();
    Ok(answer(StatusCode::OK, &discovery::list(all, n, 1)))
}

async fn resource_type(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Scim> {
    let cfg = st.config();
    authorize(&cfg, &headers)?;
    let found = discovery::resource_types(&base_url(&cfg, &headers)).into_iter().find(|r| r["id"] == id.as_str());
    found
        .map(|r| answer(StatusCode::OK, &r))
        .ok_or_else(|| Scim(ScimError::new(404, None, format!("no resource type \"{id}\""))))
}

async fn schemas(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, Scim> {
    let cfg = st.config();
    authorize(&cfg, &headers)?;
    let all = discovery::schemas(&base_url(&cfg, &headers));
    let n = all.len();
    Ok(answer(StatusCode::OK, &discovery::list(all, n, 1)))
}

async fn schema(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Scim> {
    let cfg = st.config();
    authorize(&cfg, &headers)?;
    let found = discovery::schemas(&base_url(&cfg, &headers)).into_iter().find(|r| r["id"] == id.as_str());
    found
        .map(|r| answer(StatusCode::OK, &r))
        .ok_or_else(|| Scim(ScimError::new(404, None, format!("no schema \"{id}\""))))
}

/// A query string as axum parses it, or why it could not.
pub type QueryOf<T> = Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>;

/// A query string that does not parse (a parameter given twice) as a SCIM error.
pub fn query<T>(q: QueryOf<T>) -> Result<T, Scim> {
    q.map(|axum::extract::Query(q)| q)
        .map_err(|e| Scim(crate::scim::discovery::ScimError::new(400, Some("invalidValue"), e.body_text())))
}

#[cfg(test)]
mod tests;
