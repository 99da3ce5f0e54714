//! The router in-process (`oneshot`, as axum's own examples test), over an
//! LDIF source and a real SQLite store.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::{app, AppState};
use crate::config::Config;
use crate::store::sqlite::SqliteStore;

const TOKEN: &str = "oneshot-token-0123456789";

async fn state() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("d.ldif"),
        "dn: uid=amy,ou=people,dc=t\nobjectClass: inetOrgPerson\nuid: amy\ncn: Amy\nentryUUID: 1\n\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("t.token"), TOKEN).unwrap();
    let text = "[store]\npath = \"s.db\"\n[[sources]]\nname = \"f\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n[server]\n[[server.clients]]\nname = \"t\"\ntoken_file = \"t.token\"\nscopes = [\"read\"]\n";
    let cfg = Config::parse(text, &dir.path().join("c.toml")).unwrap();
    let store = Arc::new(SqliteStore::open(cfg.store.sqlite_path().unwrap()).unwrap());
    crate::engine::sync::run(&cfg, &*store, &Default::default(), Default::default()).await.unwrap();
    (dir, AppState::new(cfg, store))
}

async fn body(r: axum::response::Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_user_by_name_with_a_token_and_a_json_401_without() {
    let (_dir, st) = state().await;
    let req = Request::get("/api/users/AMY").header("authorization", format!("Bearer {TOKEN}")).body(Body::empty());
    let r = app(st.clone()).oneshot(req.unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await["username"], "amy");
    let r = app(st.clone()).oneshot(Request::get("/api/users/amy").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer", "a 401 names the scheme (RFC 6750)");
    assert_eq!(body(r).await["error"], "unauthorized");
    // A source without a password check (LDIF) refuses like a wrong password.
    let auth = Request::post("/api/auth")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"username":"amy","password":"x"}"#));
    let r = app(st).oneshot(auth.unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "the read scope cannot check passwords");
}

#[tokio::test]
async fn metrics_labels_stay_bounded_whatever_the_method_or_path() {
    let (_dir, st) = state().await;
    for i in 0..50 {
        let req =
            Request::builder().method(format!("X{i}").as_str()).uri(format!("/api/random-{i}")).body(Body::empty());
        let r = app(st.clone()).oneshot(req.unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let r = app(st.clone()).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains("dirsync_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 50"),
        "{text}"
    );
    assert!(!text.contains("X7") && !text.contains("random-"), "no label per method or path");
}

#[tokio::test]
async fn every_route_of_the_table_is_served_for_its_method_and_documented() {
    // The router is built from the table: each route answers its method
    // (not 405, not the fallback).
    let (_dir, st) = state().await;
    for r in super::openapi::ROUTES {
        let path = r.path.replace("{username}", "amy").replace("{name}", "g").replace("{id}", "1");
        let req = Request::builder().method(r.method.to_uppercase().as_str()).uri(&path).body(Body::empty()).unwrap();
        let res = app(st.clone()).oneshot(req).await.unwrap();
        assert_ne!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{} {path}", r.method);
        if res.status() == StatusCode::NOT_FOUND {
            assert_ne!(body(res).await["message"], "no such route", "{} {path}", r.method);
        }
    }
    // The document itself: OpenAPI 3.1, every path, a security scheme.
    let r = app(st).oneshot(Request::get("/api/openapi.json").body(Body::empty()).unwrap()).await.unwrap();
    let doc = body(r).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in super::openapi::ROUTES.iter().map(|r| r.path) {
        assert!(doc["paths"].get(path).is_some(), "{path} is in the document");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn the_bearer_scheme_matches_in_any_case_and_api_answers_are_never_cached_or_sniffed() {
    let (_dir, st) = state().await;
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let req =
            Request::get("/api/users/amy").header("authorization", format!("{scheme} {TOKEN}")).body(Body::empty());
        let r = app(st.clone()).oneshot(req.unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{scheme}");
    }
    let req = Request::get("/api/users/amy").header("authorization", format!("Basic {TOKEN}")).body(Body::empty());
    assert_eq!(app(st.clone()).oneshot(req.unwrap()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Success, refusal and an unknown route alike.
    for (path, token) in [("/api/users/amy", Some(TOKEN)), ("/api/users/amy", None), ("/api/nope", Some(TOKEN))] {
        let mut req = Request::get(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let r = app(st.clone()).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
}

#[test]
fn a_guessable_client_token_is_refused_at_load_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[[sources]]\nname = \"f\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n[server]\n[[server.clients]]\nname = \"t\"\ntoken_file = \"t.token\"\nscopes = [\"read\"]\n";
    for bad in ["a".repeat(40), "ab".repeat(20), format!("{} {}", "x1y2z3w4", "q5r6s7t8u9")] {
        std::fs::write(dir.path().join("t.token"), &bad).unwrap();
        let e = Config::parse(base, &dir.path().join("c.toml")).unwrap_err().to_string();
        assert!(e.contains("server.clients[0].token_file"), "{e}");
        assert!(!e.contains(&bad), "the token is not quoted: {e}");
    }
}

#[tokio::test]
async fn the_caller_stops_and_reloads_a_service_it_gave_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let amy = "dn: uid=amy,ou=people,dc=t\nobjectClass: inetOrgPerson\nuid: amy\ncn: Amy\nentryUUID: 1\n\n";
    std::fs::write(dir.path().join("d.ldif"), amy).unwrap();
    std::fs::write(dir.path().join("t.token"), TOKEN).unwrap();
    let newcomer = "reloaded-token-0123456789";
    std::fs::write(dir.path().join("n.token"), newcomer).unwrap();
    let client = |name: &str| {
        format!("[[server.clients]]\nname = \"{name}\"\ntoken_file = \"{name}.token\"\nscopes = [\"read\"]\n")
    };
    let base = "[store]\npath = \"s.db\"\n[[sources]]\nname = \"f\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n[server]\n";
    let path = dir.path().join("c.toml");
    std::fs::write(&path, format!("{base}{}", client("t"))).unwrap();
    let cfg = Config::load(&path).unwrap();
    let store = crate::store::open(&cfg.store).unwrap();
    crate::engine::sync::run(&cfg, &*store, &Default::default(), Default::default()).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (reload, asked) = tokio::sync::mpsc::channel(1);
    let control = super::Control {
        shutdown: Box::pin(async move {
            let _ = stopped.await;
        }),
        reload: asked,
    };
    let from = super::Reload { path: path.clone(), kinds: crate::sources::KINDS.to_vec() };
    let service = tokio::spawn(super::run(listener, cfg, store, from, control));

    let http = reqwest::Client::new();
    let get = |token: &'static str| {
        let req = http.get(format!("http://{addr}/api/users/amy")).bearer_auth(token);
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(get(TOKEN).await, reqwest::StatusCode::OK);
    assert_eq!(get(newcomer).await, reqwest::StatusCode::UNAUTHORIZED, "not configured yet");
    std::fs::write(&path, format!("{base}{}{}", client("t"), client("n"))).unwrap();
    reload.send(()).await.unwrap();
    // The reload is read on the service's own task: wait for its effect.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(newcomer).await != reqwest::StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "the reload took effect");
        tokio::task::yield_now().await;
    }
    assert_eq!(get(TOKEN).await, reqwest::StatusCode::OK, "the old client stays");

    stop.send(()).unwrap();
    service.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed once run returns");
}

#[tokio::test]
async fn a_refused_reload_is_kept_for_the_settings_banner_and_cleared_by_a_good_one() {
    let (dir, st) = state().await;
    let path = dir.path().join("c.toml");
    let (ask, asked) = tokio::sync::mpsc::channel(1);
    let (reloaded, _) = tokio::sync::watch::channel(0u64);
    let from = super::Reload { path: path.clone(), kinds: crate::sources::KINDS.to_vec() };
    let task = tokio::spawn(super::reloads(asked, from, st.clone(), reloaded));
    let wait_for = |want: bool| {
        let st = st.clone();
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            while st.refused_reload.read().unwrap().is_some() != want {
                assert!(tokio::time::Instant::now() < deadline, "the reload was read");
                tokio::task::yield_now().await;
            }
            st.refused_reload.read().unwrap().clone()
        }
    };
    std::fs::write(
        &path,
        "[[sources]]\nname = \"f\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\n",
    )
    .unwrap();
    ask.send(()).await.unwrap();
    let why = wait_for(true).await.unwrap();
    assert!(why.contains("sources[0].fields.full_name") && why.contains("missing"), "{why}");
    std::fs::write(&path, "[[sources]]\nname = \"f\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n").unwrap();
    ask.send(()).await.unwrap();
    assert_eq!(wait_for(false).await, None, "a good reload clears it");
    task.abort();
}

#[tokio::test]
async fn a_body_that_is_an_array_of_the_fields_is_refused_not_read_in_order() {
    let (dir, _) = state().await;
    // A client allowed to sync, to check passwords and to write.
    let cfg_text = "[store]\npath = \"s.db\"\n[[sources]]\nname = \"f\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n[server]\n[[server.clients]]\nname = \"t\"\ntoken_file = \"t.token\"\nscopes = [\"sync\", \"auth\", \"write\"]\n";
    let cfg = Config::parse(cfg_text, &dir.path().join("c.toml")).unwrap();
    let store = Arc::new(SqliteStore::open(cfg.store.sqlite_path().unwrap()).unwrap());
    let st = AppState::new(cfg, store);
    for (path, body) in [
        ("/api/syncs", "[null, null, null]"),
        ("/api/auth", r#"["amy", "x"]"#),
        ("/api/writeback/1/resolve", r#"["app"]"#),
    ] {
        let req = Request::post(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body));
        let r = app(st.clone()).oneshot(req.unwrap()).await.unwrap();
        assert!(
            r.status() == StatusCode::BAD_REQUEST || r.status() == StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            r.status()
        );
        assert!(body_text(r).await.contains("object"), "{path}");
    }
}

async fn body_text(r: axum::response::Response) -> String {
    String::from_utf8_lossy(&axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap()).to_string()
}
