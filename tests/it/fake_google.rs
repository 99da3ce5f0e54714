//! A fake Google Workspace Directory API for the Google source's tests,
//! following the documented contracts: the OAuth token endpoint for a
//! service account's JWT (RS256 signature, issuer, subject, audience and
//! scope checked with the test key), `users.list`, `groups.list` and
//! `members.list` paged with `nextPageToken`, `fields=` partial responses,
//! `projection`, 403 `rateLimitExceeded` with no `Retry-After`, a 500 on a
//! chosen page, and `users.patch` that needs the read-write scope. Every
//! request is recorded for the tests to assert.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::fake_graph::{verify_jwt, Request, FIXTURES};

pub const SA_EMAIL: &str = "dirsync@school-project.iam.gserviceaccount.com";
pub const GADMIN: &str = "admin@school.example";
pub const READ_SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.readonly https://www.googleapis.com/auth/admin.directory.group.member.readonly";
pub const WRITE_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user";

#[derive(Default)]
pub struct Domain {
    pub users: BTreeMap<String, Value>,
    /// id → (name, [(member id, type)]).
    pub groups: BTreeMap<String, (String, Vec<(String, String)>)>,
    pub requests: Vec<Request>,
    pub page_size: usize,
    /// The next N API requests get 403 rateLimitExceeded.
    pub rate_limited: usize,
    pub fail_users_page: Option<usize>,
    /// token → scope.
    tokens: HashMap<String, String>,
    pub token_claims: Vec<Value>,
    pub missing: HashSet<String>,
}

pub struct FakeGoogle {
    pub port: u16,
    pub d: Arc<Mutex<Domain>>,
}

impl FakeGoogle {
    pub fn start() -> FakeGoogle {
        let d = Arc::new(Mutex::new(Domain { page_size: 500, ..Domain::default() }));
        let app = axum::Router::new().fallback(handle).with_state(d.clone());
        let port = crate::harness::spawn_app(app);
        FakeGoogle { port, d }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Domain) -> R) -> R {
        f(&mut self.d.lock().unwrap())
    }

    pub fn clear_requests(&self) {
        self.with(|d| d.requests.clear());
    }

    pub fn requests(&self, method: &str, path: &str) -> Vec<Request> {
        self.with(|d| d.requests.iter().filter(|r| r.method == method && r.path == path).cloned().collect())
    }

    /// The service account's JSON key, as Google's console downloads it.
    pub fn key_file(&self) -> String {
        let pem = std::fs::read_to_string(format!("{FIXTURES}/test-key.pem")).unwrap();
        json!({
            "type": "service_account", "project_id": "school-project", "private_key_id": "k1",
            "private_key": pem, "client_email": SA_EMAIL, "client_id": "1",
            "token_uri": format!("{}/token", self.base()),
        })
        .to_string()
    }
}

impl Domain {
    pub fn add_user(&mut self, id: &str, email: &str, full: &str, extra: Value) {
        let mut u = json!({"kind": "admin#directory#user", "id": id, "primaryEmail": email,
            "name": {"givenName": "x", "familyName": "y", "fullName": full}, "suspended": false,
            "orgUnitPath": "/Students", "isAdmin": false});
        for (k, v) in extra.as_object().into_iter().flatten() {
            u[k] = v.clone();
        }
        self.users.insert(id.into(), u);
    }
}

impl Domain {
    /// A user by its userKey: the id, or the primary email in any case.
    fn user_by_key(&self, key: &str) -> Option<&Value> {
        self.users.get(key).or_else(|| {
            self.users.values().find(|u| u["primaryEmail"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(key)))
        })
    }
}

/// A path segment with its %XX escapes decoded.
fn decode(seg: &str) -> String {
    let b = seg.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        match (b[i], seg.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn error(status: StatusCode, reason: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": status.as_u16(), "message": message, "errors": [{"reason": reason, "message": message}]}})))
        .into_response()
}

/// A partial response: `users(id,primaryEmail,...)` keeps those top-level properties.
fn partial(v: &Value, fields: Option<&String>, list: &str) -> Value {
    let Some(f) = fields else { return v.clone() };
    let Some(inner) = f.split_once(&format!("{list}(")).and_then(|(_, r)| r.strip_suffix(')')) else {
        return v.clone();
    };
    let mut out = serde_json::Map::new();
    for k in inner.split(',') {
        if let Some(x) = v.get(k) {
            out.insert(k.to_string(), x.clone());
        }
    }
    Value::Object(out)
}

fn paged(d: &Domain, list: &str, items: Vec<Value>, q: &BTreeMap<String, String>) -> Response {
    let skip: usize = q.get("pageToken").map(|t| t.strip_prefix("p").unwrap().parse().unwrap()).unwrap_or(0);
    let max: usize = q.get("maxResults").and_then(|m| m.parse().ok()).unwrap_or(100);
    let size = d.page_size.min(max);
    let end = (skip + size).min(items.len());
    let mut body = json!({ "kind": format!("admin#directory#{list}") });
    if end > skip {
        body[list] = json!(items[skip..end].iter().map(|v| partial(v, q.get("fields"), list)).collect::<Vec<_>>());
    }
    if end < items.len() {
        body["nextPageToken"] = json!(format!("p{end}"));
    }
    Json(body).into_response()
}

async fn handle(
    State(d): State<Arc<Mutex<Domain>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let path = uri.path().to_string();
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let mut d = d.lock().unwrap();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    d.requests.push(Request {
        method: method.to_string(),
        path: path.clone(),
        query: q.clone(),
        body: body_json.clone(),
        consistency: None,
    });
    if path == "/token" {
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
        assert_eq!(form["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
        let (header, claims) = match verify_jwt(&form["assertion"]) {
            Ok(x) => x,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": e})))
                    .into_response()
            }
        };
        assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("RS256"), Some("k1")));
        assert_eq!(claims["aud"], format!("http://{host}/token"));
        assert_eq!(claims["iss"], SA_EMAIL);
        if claims["sub"] != GADMIN {
            return (StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthorized_client", "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}))).into_response();
        }
        let scope = claims["scope"].as_str().unwrap().to_string();
        assert!(scope == READ_SCOPES || scope == WRITE_SCOPE, "{scope}");
        d.token_claims.push(claims);
        let tok = format!("ya29.t{}", d.tokens.len() + 1);
        d.tokens.insert(tok.clone(), scope);
        return Json(json!({"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})).into_response();
    }
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some(scope) = d.tokens.get(bearer).cloned() else {
        return error(StatusCode::UNAUTHORIZED, "authError", "Invalid Credentials");
    };
    if d.rate_limited > 0 {
        d.rate_limited -= 1;
        return error(StatusCode::FORBIDDEN, "rateLimitExceeded", "Rate Limit Exceeded");
    }
    let segs: Vec<&str> = path.split('/').collect();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["", "admin", "directory", "v1", "users"]) => {
            assert_eq!(q.get("customer").map(String::as_str), Some("my_customer"));
            assert_eq!(q.get("maxResults").map(String::as_str), Some("500"));
            let skip: usize = q.get("pageToken").map(|t| t[1..].parse().unwrap()).unwrap_or(0);
            if d.fail_users_page == Some(skip / d.page_size) {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "backendError", "Backend Error");
            }
            let full = q.get("projection").map(String::as_str) == Some("full");
            let items = d
                .users
                .values()
                .filter(|u| {
                    let qq = q.get("query").map(String::as_str).unwrap_or("");
                    // `orgUnitPath='/Staff'` and `email='…'`, alone or together.
                    let staff = !qq.contains("orgUnitPath='/Staff'") || u["orgUnitPath"] == "/Staff";
                    let email = qq.split("email='").nth(1).and_then(|r| r.split('\'').next());
                    staff && email.is_none_or(|e| u["primaryEmail"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(e)))
                })
                .map(|u| {
                    let mut u = u.clone();
                    if !full {
                        u.as_object_mut().unwrap().remove("customSchemas");
                    }
                    u
                })
                .collect();
            paged(&d, "users", items, &q)
        }
        (Method::GET, ["", "admin", "directory", "v1", "groups"]) => {
            // With userKey: the groups that list that user directly (and no customer).
            let user = q.get("userKey").map(|k| {
                assert!(!q.contains_key("customer"), "customer and userKey are exclusive");
                d.user_by_key(k).map(|u| u["id"].as_str().unwrap().to_string()).unwrap_or_default()
            });
            let items = d
                .groups
                .iter()
                .filter(|(_, (_, m))| user.as_ref().is_none_or(|u| m.iter().any(|(id, _)| id == u)))
                .map(|(id, (n, _))| json!({"id": id, "name": n, "email": format!("{id}@school.example")}))
                .collect();
            paged(&d, "groups", items, &q)
        }
        (Method::GET, ["", "admin", "directory", "v1", "groups", id, "members"]) => match d.groups.get(*id) {
            None => error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: groupKey"),
            Some((_, m)) => {
                let items = m
                    .iter()
                    .map(|(id, t)| json!({"id": id, "type": t, "email": "x@school.example", "role": "MEMBER"}))
                    .collect();
                paged(&d, "members", items, &q)
            }
        },
        (Method::GET, ["", "admin", "directory", "v1", "users", key]) => match d.user_by_key(&decode(key)) {
            None => error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: userKey"),
            Some(u) => {
                let mut u = u.clone();
                if q.get("projection").map(String::as_str) != Some("full") {
                    u.as_object_mut().unwrap().remove("customSchemas");
                }
                Json(u).into_response()
            }
        },
        (Method::PATCH, ["", "admin", "directory", "v1", "users", id]) => {
            if scope != WRITE_SCOPE {
                return error(
                    StatusCode::FORBIDDEN,
                    "insufficientPermissions",
                    "Request had insufficient authentication scopes.",
                );
            }
            if d.missing.contains(*id) {
                return error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: userKey");
            }
            let id = id.to_string();
            let u = d.users.get_mut(&id).unwrap();
            for (schema, fields) in body_json["customSchemas"].as_object().into_iter().flatten() {
                for (f, v) in fields.as_object().into_iter().flatten() {
                    u["customSchemas"][schema][f] = v.clone();
                }
            }
            Json(u.clone()).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "notFound", "not served by the fake"),
    }
}
