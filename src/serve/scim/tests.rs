//! The SCIM routes in-process (`oneshot`) over a real SQLite store: the
//! token, the media type, create and find, Entra ID's PATCH, a name taken,
//! another source's resources, delete, groups with members.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::config::Config;
use crate::serve::{app, AppState};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

const OKTA: &str = "okta-token-0123456789abcdef0123456789";
const ENTRA: &str = "entra-token-0123456789abcdef012345678";

fn state() -> (tempfile::TempDir, AppState, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("okta.token"), OKTA).unwrap();
    std::fs::write(dir.path().join("entra.token"), ENTRA).unwrap();
    let text = "[store]\npath = \"s.db\"\n\
        [[sources]]\nname = \"okta\"\ntype = \"scim\"\ntoken_file = \"okta.token\"\n[sources.safety]\nmax_delete_percent = 100\n\
        [[sources]]\nname = \"entra\"\ntype = \"scim\"\ntoken_file = \"entra.token\"\n";
    let cfg = Config::parse(text, &dir.path().join("c.toml")).unwrap();
    let store = Arc::new(SqliteStore::open(cfg.store.sqlite_path().unwrap()).unwrap());
    (dir, AppState::new(cfg, store.clone()), store)
}

async fn call(st: &AppState, method: &str, uri: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        req = req.header("content-type", "application/scim+json");
    }
    let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_default()).unwrap();
    let r = app(st.clone()).oneshot(req).await.unwrap();
    let status = r.status();
    if status != StatusCode::NO_CONTENT {
        assert_eq!(r.headers()["content-type"], "application/scim+json", "{method} {uri}");
    }
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_401_and_one_sources_token_sees_only_its_users() {
    let (_d, st, _s) = state();
    let (s, e) = call(&st, "GET", "/scim/v2/Users", "nope-nope-nope-nope-nope-nope-nope-nope", None).await;
    assert_eq!((s, e["status"].as_str()), (StatusCode::UNAUTHORIZED, Some("401")));
    assert_eq!(e["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    let (s, u) =
        call(&st, "POST", "/scim/v2/Users", OKTA, Some(json!({"userName": "ada", "displayName": "Ada"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap();
    let (s, _) = call(&st, "GET", &format!("/scim/v2/Users/{id}"), ENTRA, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another source's user is not there");
    let (_, l) = call(&st, "GET", "/scim/v2/Users?filter=userName%20eq%20%22ada%22", ENTRA, None).await;
    assert_eq!(l["totalResults"], 0);
}

#[tokio::test]
async fn entra_creates_finds_patches_and_deletes_a_user() {
    let (_d, st, store) = state();
    let (_, probe) = call(&st, "GET", "/scim/v2/Users?filter=userName+eq+%22b3a5c0e8-probe%22", OKTA, None).await;
    assert_eq!((probe["totalResults"].as_u64(), probe["Resources"].as_array().map(Vec::len)), (Some(0), Some(0)));
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "E-42", "userName": "Ada@Example.com", "active": true, "password": "Pa55word!",
        "name": {"formatted": "Ada Lovelace", "givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": true, "type": "work", "value": "ada@example.com"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Engines"}
    });
    let (s, u) = call(&st, "POST", "/scim/v2/Users", OKTA, Some(body.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert!(u.get("password").is_none(), "a password is never kept nor answered");
    assert_eq!(u["meta"]["resourceType"], "User");
    let id = u["id"].as_str().unwrap().to_string();
    let stored = store.user_by_name("ada@example.com").unwrap().expect("created through the engine");
    assert_eq!(stored.fields.get("department"), Some("Engines"));
    let (s, e) = call(&st, "POST", "/scim/v2/Users", OKTA, Some(json!({"userName": "ADA@example.com"}))).await;
    assert_eq!((s, e["scimType"].as_str()), (StatusCode::CONFLICT, Some("uniqueness")), "names compare as dirsync's");
    let (_, l) = call(&st, "GET", "/scim/v2/Users?filter=externalId%20eq%20%22E-42%22", OKTA, None).await;
    assert_eq!(l["Resources"][0]["id"], id.as_str());
    let (_, l) = call(&st, "GET", "/scim/v2/Users?filter=externalId%20eq%20%22e-42%22", OKTA, None).await;
    assert_eq!(l["totalResults"], 0, "externalId is case-exact");
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ada@engines.example.com"}
    ]});
    let (s, p) = call(&st, "PATCH", &format!("/scim/v2/Users/{id}"), OKTA, Some(patch)).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["active"], json!(false), "read back as Entra reads it");
    let u = store.user_by_name("ada@example.com").unwrap().unwrap();
    assert_eq!((u.status, u.fields.get("email")), (crate::model::Status::Disabled, Some("ada@engines.example.com")));
    let (s, e) = call(
        &st,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        OKTA,
        Some(json!({"Operations": [{"op": "replace", "path": "shoeSize", "value": 1}]})),
    )
    .await;
    assert_eq!((s, e["scimType"].as_str()), (StatusCode::BAD_REQUEST, Some("invalidPath")));
    let (s, _) = call(&st, "DELETE", &format!("/scim/v2/Users/{id}"), OKTA, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&st, "GET", &format!("/scim/v2/Users/{id}"), OKTA, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(store.user_by_name("ada@example.com").unwrap().is_some(), "dirsync keeps the disabled user");
    let (s, again) = call(&st, "POST", "/scim/v2/Users", OKTA, Some(body)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_ne!(again["id"], id.as_str(), "a new resource, a new id");
    let relinked = store.user_by_name("ada@example.com").unwrap().unwrap();
    assert_eq!((relinked.id, relinked.status), (u.id, crate::model::Status::Active));
}

#[tokio::test]
async fn a_group_takes_members_added_and_removed_in_one_patch() {
    let (_d, st, store) = state();
    let mut ids = Vec::new();
    for n in ["amy", "bob", "cat"] {
        let (_, u) = call(&st, "POST", "/scim/v2/Users", OKTA, Some(json!({"userName": n, "displayName": n}))).await;
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    let members = json!([{"value": ids[0]}, {"value": ids[1]}]);
    let (s, g) =
        call(&st, "POST", "/scim/v2/Groups", OKTA, Some(json!({"displayName": "Staff", "members": members}))).await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap();
    let patch = json!({"Operations": [
        {"op": "Add", "path": "members", "value": [{"value": ids[2]}]},
        {"op": "Remove", "path": format!("members[value eq \"{}\"]", ids[0])}
    ]});
    let (s, _) = call(&st, "PATCH", &format!("/scim/v2/Groups/{gid}"), OKTA, Some(patch)).await;
    assert_eq!(s, StatusCode::OK);
    let member = |n: &str| {
        let u = store.user_by_name(n).unwrap().unwrap();
        store.groups_of_user(u.id).unwrap().direct.contains(&"Staff".to_string())
    };
    assert_eq!([member("amy"), member("bob"), member("cat")], [false, true, true]);
    let (_, l) = call(
        &st,
        "GET",
        "/scim/v2/Groups?filter=displayName%20eq%20%22staff%22&excludedAttributes=members",
        OKTA,
        None,
    )
    .await;
    assert_eq!(l["totalResults"], 1);
    assert!(l["Resources"][0].get("members").is_none());
}

#[tokio::test]
async fn a_query_string_that_does_not_parse_is_a_scim_error() {
    let (_d, st, _s) = state();
    let (s, e) = call(&st, "GET", "/scim/v2/Users?count=1&count=2", OKTA, None).await;
    assert_eq!((s, e["scimType"].as_str()), (StatusCode::BAD_REQUEST, Some("invalidValue")), "{e}");
    let (s, e) = call(&st, "GET", "/scim/v2/Users?count=many", OKTA, None).await;
    assert_eq!((s, e["scimType"].as_str()), (StatusCode::BAD_REQUEST, Some("invalidValue")), "{e}");
    let (s, e) = call(&st, "GET", "/scim/v2/Users/x?attributes=a&attributes=b", OKTA, None).await;
    assert_eq!((s, e["status"].as_str()), (StatusCode::BAD_REQUEST, Some("400")), "{e}");
    let (s, _) = call(&st, "GET", "/scim/v2/Nope", OKTA, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_user_created_inactive_is_kept_by_scim_and_created_in_dirsync_once_active() {
    let (_d, st, store) = state();
    let (s, u) = call(&st, "POST", "/scim/v2/Users", OKTA, Some(json!({"userName": "ina", "active": false}))).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["active"], json!(false));
    assert!(store.user_by_name("ina").unwrap().is_none(), "import_disabled is false: not created yet");
    let on = json!({"Operations": [{"op": "replace", "path": "active", "value": true}]});
    let (s, _) = call(&st, "PATCH", &format!("/scim/v2/Users/{}", u["id"].as_str().unwrap()), OKTA, Some(on)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(store.user_by_name("ina").unwrap().unwrap().status, crate::model::Status::Active);
}
