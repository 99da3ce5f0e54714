//! A fake Microsoft Graph tenant for the Graph source's tests, following
//! the documented contracts: the v2.0 token endpoint (client secret, or a
//! certificate client assertion whose RS256 signature, audience and
//! thumbprint are checked with the test key), `/v1.0/users` and
//! `/v1.0/groups` paged with `@odata.nextLink` (`$skiptoken`), only the
//! `$select`ed properties answered, `/v1.0/$batch` (at most 20 requests),
//! group members with `@odata.type`, `users/delta` and `groups/delta`
//! (`$deltatoken=latest`, `@removed`, `members@delta`), 410
//! `syncStateNotFound` for an expired token, 429 with `Retry-After`, a 500
//! on a chosen page, and PATCH with 403 / on-premises 400 for chosen users.
//! Every request is recorded for the tests to assert.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const SECRET: &str = "s3cret-Graph~value";
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloud");

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Value,
    /// The `ConsistencyLevel` header, when sent.
    pub consistency: Option<String>,
}

#[derive(Debug, Clone)]
enum Change {
    /// A user changed: its id and the user as it was then.
    User(String, Value),
    UserRemoved(String, &'static str),
    Group(String),
    GroupRemoved(String),
    Members {
        group: String,
        added: Vec<String>,
        removed: Vec<String>,
    },
}

#[derive(Default)]
pub struct Tenant {
    pub users: BTreeMap<String, Value>,
    /// id → (displayName, member ids); a member id is a user's or a group's.
    pub groups: BTreeMap<String, (String, Vec<String>)>,
    /// Objects that are neither users nor groups (devices) by id.
    pub devices: HashSet<String>,
    /// Directory roles: id → (displayName, member ids). `memberOf` lists
    /// them beside groups, as Graph does.
    pub roles: BTreeMap<String, (String, Vec<String>)>,
    log: Vec<Change>,
    pub requests: Vec<Request>,
    pub page_size: usize,
    /// The next N Graph requests are answered 429 with this Retry-After.
    pub throttle: (usize, u64),
    /// `/v1.0/users` answers this page (0-based) with a 500.
    pub fail_users_page: Option<usize>,
    /// Delta rounds replay: an object comes once for each change, in order,
    /// anywhere in the round's pages (Graph's documentation allows it).
    pub replay: bool,
    /// Delta tokens at or below this are expired (410).
    pub expired_below: usize,
    pub forbidden: HashSet<String>,
    pub on_premises: HashSet<String>,
    /// `/v1.0/users` pages link to this host instead of the fake's own.
    pub next_link_host: Option<String>,
    tokens: HashSet<String>,
    /// Token requests with their grant (secret or assertion).
    pub token_requests: Vec<BTreeMap<String, String>>,
}

pub struct FakeGraph {
    pub port: u16,
    pub t: Arc<Mutex<Tenant>>,
}

impl FakeGraph {
    pub fn start() -> FakeGraph {
        let t = Arc::new(Mutex::new(Tenant { page_size: 999, ..Tenant::default() }));
        let app = axum::Router::new().fallback(handle).with_state(t.clone());
        let port = crate::harness::spawn_app(app);
        FakeGraph { port, t }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Tenant) -> R) -> R {
        f(&mut self.t.lock().unwrap())
    }

    /// The recorded requests to `path` (method and path, no query).
    pub fn requests(&self, method: &str, path: &str) -> Vec<Request> {
        self.with(|t| t.requests.iter().filter(|r| r.method == method && r.path == path).cloned().collect())
    }

    pub fn clear_requests(&self) {
        self.with(|t| t.requests.clear());
    }
}

impl Tenant {
    pub fn add_user(&mut self, id: &str, upn: &str, name: &str, extra: Value) {
        let mut u = json!({"id": id, "userPrincipalName": upn, "displayName": name, "accountEnabled": true,
            "mail": upn, "jobTitle": "not asked for"});
        for (k, v) in extra.as_object().into_iter().flatten() {
            u[k] = v.clone();
        }
        self.users.insert(id.into(), u.clone());
        self.log.push(Change::User(id.into(), u));
    }

    /// Changes a user's properties (a delta change).
    pub fn update_user(&mut self, id: &str, extra: Value) {
        let u = self.users.get_mut(id).expect("user");
        for (k, v) in extra.as_object().into_iter().flatten() {
            u[k] = v.clone();
        }
        let then = u.clone();
        self.log.push(Change::User(id.into(), then));
    }

    /// Deletes a user: `changed` is Entra's soft delete, `deleted` permanent.
    pub fn remove_user(&mut self, id: &str, reason: &'static str) {
        self.users.remove(id);
        for (_, m) in self.groups.values_mut() {
            m.retain(|x| x != id);
        }
        self.log.push(Change::UserRemoved(id.into(), reason));
    }

    pub fn add_group(&mut self, id: &str, name: &str, members: &[&str]) {
        self.groups.insert(id.into(), (name.into(), members.iter().map(|m| m.to_string()).collect()));
        self.log.push(Change::Group(id.into()));
    }

    pub fn rename_group(&mut self, id: &str, name: &str) {
        self.groups.get_mut(id).unwrap().0 = name.into();
        self.log.push(Change::Group(id.into()));
    }

    pub fn remove_group(&mut self, id: &str) {
        self.groups.remove(id);
        self.log.push(Change::GroupRemoved(id.into()));
    }

    pub fn change_members(&mut self, group: &str, added: &[&str], removed: &[&str]) {
        let m = &mut self.groups.get_mut(group).unwrap().1;
        m.retain(|x| !removed.contains(&x.as_str()));
        m.extend(added.iter().map(|a| a.to_string()));
        let (added, removed) =
            (added.iter().map(|s| s.to_string()).collect(), removed.iter().map(|s| s.to_string()).collect());
        self.log.push(Change::Members { group: group.into(), added, removed });
    }

    /// The current delta position.
    pub fn position(&self) -> usize {
        self.log.len()
    }

    fn member_json(&self, id: &str) -> Value {
        let t = if self.groups.contains_key(id) {
            "#microsoft.graph.group"
        } else if self.devices.contains(id) {
            "#microsoft.graph.device"
        } else {
            "#microsoft.graph.user"
        };
        json!({"@odata.type": t, "id": id})
    }
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

/// Only the `$select`ed properties of a user, as Graph answers.
fn selected(u: &Value, select: Option<&String>) -> Value {
    let Some(sel) = select else { return u.clone() };
    let mut out = serde_json::Map::new();
    for p in sel.split(',') {
        if let Some((k, v)) = u.as_object().unwrap().iter().find(|(k, _)| k.eq_ignore_ascii_case(p)) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn page(t: &Tenant, base: &str, items: Vec<Value>, skip: usize, query: &BTreeMap<String, String>) -> Value {
    let end = (skip + t.page_size).min(items.len());
    let mut body = json!({"value": items[skip.min(items.len())..end]});
    if end < items.len() {
        let mut q: Vec<(String, String)> =
            query.iter().filter(|(k, _)| *k != "$skiptoken").map(|(k, v)| (k.clone(), v.clone())).collect();
        q.push(("$skiptoken".into(), end.to_string()));
        let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish();
        body["@odata.nextLink"] = json!(format!("{base}?{qs}"));
    }
    body
}

async fn handle(
    State(t): State<Arc<Mutex<Tenant>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let path = uri.path().to_string();
    let port = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let base = format!("http://{port}");
    let mut t = t.lock().unwrap();
    let body_json: Value =
        if path.ends_with("/token") { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    t.requests.push(Request {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body_json.clone(),
        consistency: headers.get("consistencylevel").and_then(|h| h.to_str().ok()).map(str::to_string),
    });

    if path == format!("/{TENANT}/oauth2/v2.0/token") && method == Method::POST {
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
        t.token_requests.push(form.clone());
        return token(&mut t, &form, &format!("{base}{path}"));
    }
    let bearer = headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
    if !bearer.is_some_and(|b| t.tokens.contains(b)) {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty or invalid.",
        );
    }
    if t.throttle.0 > 0 {
        t.throttle.0 -= 1;
        let mut r = graph_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Please retry again later.");
        r.headers_mut().insert("Retry-After", t.throttle.1.to_string().parse().unwrap());
        return r;
    }
    if path == "/v1.0/$batch" && method == Method::POST {
        let reqs = body_json["requests"].as_array().cloned().unwrap_or_default();
        if reqs.is_empty() || reqs.len() > 20 {
            return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "A batch holds 1 to 20 requests.");
        }
        let mut responses = Vec::new();
        for r in reqs {
            let u: Uri = r["url"].as_str().unwrap().parse().unwrap();
            let q: BTreeMap<String, String> =
                url::form_urlencoded::parse(u.query().unwrap_or("").as_bytes()).into_owned().collect();
            let (status, b) = get(&t, &base, &format!("/v1.0{}", u.path()), &q);
            responses.push(json!({"id": r["id"], "status": status.as_u16(), "headers": {}, "body": b}));
        }
        return Json(json!({ "responses": responses })).into_response();
    }
    if method == Method::PATCH {
        let id = path.strip_prefix("/v1.0/users/").unwrap_or("").to_string();
        if t.forbidden.contains(&id) {
            return graph_error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            );
        }
        if t.on_premises.contains(&id) {
            return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.");
        }
        let Some(u) = t.users.get_mut(&id) else {
            return graph_error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", "no such user");
        };
        merge(u, &body_json);
        let then = u.clone();
        t.log.push(Change::User(id, then));
        return StatusCode::NO_CONTENT.into_response();
    }
    if method != Method::GET {
        return graph_error(StatusCode::METHOD_NOT_ALLOWED, "BadRequest", "not served by the fake");
    }
    let (status, b) = get(&t, &base, &path, &query);
    (status, Json(b)).into_response()
}

fn merge(into: &mut Value, patch: &Value) {
    for (k, v) in patch.as_object().into_iter().flatten() {
        match (into.get_mut(k), v) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => merge(existing, v),
            _ => into[k] = v.clone(),
        }
    }
}

fn token(t: &mut Tenant, form: &BTreeMap<String, String>, url: &str) -> Response {
    let bad = |why: &str| {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": format!("AADSTS7000215: {why}")})),
        )
            .into_response()
    };
    assert_eq!(form.get("grant_type").map(String::as_str), Some("client_credentials"), "{form:?}");
    assert_eq!(form.get("scope").map(String::as_str), Some("https://graph.microsoft.com/.default"), "{form:?}");
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return bad("Application not found in the directory.");
    }
    match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(s), None) if s == SECRET => {}
        (Some(_), None) => return bad("Invalid client secret provided."),
        (None, Some(a)) => {
            assert_eq!(form["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
            if let Err(why) = check_assertion(a, url) {
                return bad(&why);
            }
        }
        _ => return bad("No credential."),
    }
    let tok = format!("tok-{}", t.tokens.len() + 1);
    t.tokens.insert(tok.clone());
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": tok})).into_response()
}

/// Checks an RS256 JWT against the test key; returns its claims.
pub fn verify_jwt(jwt: &str) -> Result<(Value, Value), String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWT".into());
    }
    let pem = std::fs::read(format!("{FIXTURES}/test-key.pem")).unwrap();
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivateKeyDer::from_pem_slice(&pem).unwrap();
    let kp = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.secret_der()).unwrap();
    let public = aws_lc_rs::signature::KeyPair::public_key(&kp).as_ref().to_vec();
    let pk = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, public);
    let sig = b64.decode(parts[2]).map_err(|_| "bad signature encoding")?;
    pk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).map_err(|_| "bad signature".to_string())?;
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    Ok((header, claims))
}

fn check_assertion(a: &str, url: &str) -> Result<(), String> {
    let (header, claims) = verify_jwt(a)?;
    assert_eq!(header["alg"], "RS256");
    let cert = std::fs::read(format!("{FIXTURES}/test-cert.pem")).unwrap();
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&cert).unwrap();
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der.as_ref());
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref());
    if header["x5t"] != x5t {
        return Err("the certificate thumbprint is not registered".into());
    }
    assert_eq!(claims["aud"], url, "audience is the token endpoint");
    assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some(CLIENT_ID), Some(CLIENT_ID)));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(claims["exp"].as_u64().unwrap() > now && claims["jti"].is_string());
    Ok(())
}

fn get(t: &Tenant, base: &str, path: &str, q: &BTreeMap<String, String>) -> (StatusCode, Value) {
    let skip: usize = q.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
    let err = |s: StatusCode, c: &str, m: &str| (s, json!({"error": {"code": c, "message": m}}));
    let here = format!("{base}{path}");
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "v1.0", "users"] => {
            if t.fail_users_page == Some(skip / t.page_size.max(1)) {
                return err(StatusCode::INTERNAL_SERVER_ERROR, "UnknownError", "");
            }
            let keep = match q.get("$filter") {
                None => None,
                Some(f) => match eq_filter(f) {
                    Some(kv) => Some(kv),
                    None => return err(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", "unsupported filter"),
                },
            };
            let items: Vec<Value> = t
                .users
                .values()
                .filter(|u| {
                    keep.as_ref().is_none_or(|(k, v)| u[k.as_str()].as_str().is_some_and(|x| x.eq_ignore_ascii_case(v)))
                })
                .map(|u| selected(u, q.get("$select")))
                .collect();
            let mut body = page(t, &here, items, skip, q);
            if let (Some(host), Some(next)) = (&t.next_link_host, body["@odata.nextLink"].as_str()) {
                body["@odata.nextLink"] = json!(next.replace(base, host));
            }
            (StatusCode::OK, body)
        }
        ["", "v1.0", "groups"] => {
            let items: Vec<Value> = t.groups.iter().map(|(id, (n, _))| json!({"id": id, "displayName": n})).collect();
            (StatusCode::OK, page(t, &here, items, skip, q))
        }
        ["", "v1.0", what @ ("users" | "groups"), "delta"] => delta(t, &here, what, q),
        ["", "v1.0", "groups", id, "members"] => match t.groups.get(*id) {
            None => err(StatusCode::NOT_FOUND, "Request_ResourceNotFound", "no such group"),
            Some((_, m)) => (StatusCode::OK, page(t, &here, m.iter().map(|m| t.member_json(m)).collect(), skip, q)),
        },
        ["", "v1.0", "groups", id] => match t.groups.get(*id) {
            None => err(StatusCode::NOT_FOUND, "Request_ResourceNotFound", "no such group"),
            Some((n, _)) => (StatusCode::OK, json!({"id": id, "displayName": n})),
        },
        ["", "v1.0", "users", id, "memberOf"] => {
            let of = |m: &Vec<String>| m.iter().any(|x| x == id);
            let mut items: Vec<Value> = t
                .groups
                .iter()
                .filter(|(_, (_, m))| of(m))
                .map(|(g, (n, _))| json!({"@odata.type": "#microsoft.graph.group", "id": g, "displayName": n}))
                .collect();
            items.extend(t.roles.iter().filter(|(_, (_, m))| of(m)).map(
                |(r, (n, _))| json!({"@odata.type": "#microsoft.graph.directoryRole", "id": r, "displayName": n}),
            ));
            (StatusCode::OK, page(t, &here, items, skip, q))
        }
        ["", "v1.0", "users", id] => match t.users.get(*id) {
            None => err(StatusCode::NOT_FOUND, "Request_ResourceNotFound", "no such user"),
            Some(u) => (StatusCode::OK, selected(u, q.get("$select"))),
        },
        _ => err(StatusCode::NOT_FOUND, "BadRequest", &format!("{path} is not served by the fake")),
    }
}

/// `property eq 'value'` (a quote doubled inside), the only filter the fake
/// takes: anything else is refused as Graph refuses what it cannot run.
fn eq_filter(f: &str) -> Option<(String, String)> {
    let (k, v) = f.split_once(" eq ")?;
    let v = v.strip_prefix('\'')?.strip_suffix('\'')?;
    if !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || v.replace("''", "").contains('\'') {
        return None;
    }
    Some((k.to_string(), v.replace("''", "'")))
}

fn delta(t: &Tenant, here: &str, what: &str, q: &BTreeMap<String, String>) -> (StatusCode, Value) {
    let link = |pos: usize| {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = q.get("$select") {
            qs.append_pair("$select", s);
        }
        qs.append_pair("$deltatoken", &pos.to_string());
        format!("{here}?{}", qs.finish())
    };
    let from = match q.get("$deltatoken").map(String::as_str) {
        Some("latest") => return (StatusCode::OK, json!({"value": [], "@odata.deltaLink": link(t.position())})),
        Some(n) => n.parse::<usize>().unwrap(),
        None => 0,
    };
    if from < t.expired_below {
        return (
            StatusCode::GONE,
            json!({"error": {"code": "syncStateNotFound", "message": "The sync state generation is not found."}}),
        );
    }
    let mut items: Vec<Value> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in &t.log[from.min(t.log.len())..] {
        let (id, v) = match (what, c) {
            // Replayed: each change as the user was then, as often as it changed.
            ("users", Change::User(id, then)) if t.replay => (id.clone(), selected(then, q.get("$select"))),
            ("users", Change::User(id, _)) => match t.users.get(id) {
                Some(u) => (id.clone(), selected(u, q.get("$select"))),
                None => continue,
            },
            ("users", Change::UserRemoved(id, reason)) => {
                (id.clone(), json!({"id": id, "@removed": {"reason": reason}}))
            }
            ("groups", Change::Group(id)) => match t.groups.get(id) {
                Some((n, _)) => (id.clone(), json!({"id": id, "displayName": n})),
                None => continue,
            },
            ("groups", Change::GroupRemoved(id)) => (id.clone(), json!({"id": id, "@removed": {"reason": "deleted"}})),
            ("groups", Change::Members { group, added, removed }) => {
                // Only the changed members, and no displayName (unchanged).
                let mut m: Vec<Value> = added.iter().map(|a| t.member_json(a)).collect();
                m.extend(removed.iter().map(
                    |r| json!({"@odata.type": "#microsoft.graph.user", "id": r, "@removed": {"reason": "deleted"}}),
                ));
                (group.clone(), json!({"id": group, "members@delta": m}))
            }
            _ => continue,
        };
        match seen.get(&id) {
            _ if t.replay => items.push(v),
            Some(&i) => merge(&mut items[i], &v),
            None => {
                seen.insert(id, items.len());
                items.push(v);
            }
        }
    }
    let skip: usize = q.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = page(t, here, items, skip, q);
    if body.get("@odata.nextLink").is_none() {
        body["@odata.deltaLink"] = json!(link(t.position()));
    } else {
        // The next page keeps the position it started from.
        let next = body["@odata.nextLink"].as_str().unwrap().to_string();
        let mut u = url::Url::parse(&next).unwrap();
        if !u.query_pairs().any(|(k, _)| k == "$deltatoken") {
            u.query_pairs_mut().append_pair("$deltatoken", &from.to_string());
        }
        body["@odata.nextLink"] = json!(u.to_string());
    }
    (StatusCode::OK, body)
}
