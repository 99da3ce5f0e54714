//! Just-in-time provisioning (`POST /api/users/{name}/sync`) for Entra ID
//! and Google users, through the served API against the fakes, which record
//! every request: the one user found by an escaped `eq` filter (Graph) or
//! by primary email (Google), its direct groups read whole (so other
//! members stay and nested groups resolve), roles that are not groups left
//! out, unknown and crafted names answered 404, nobody removed.

use serde_json::json;

use crate::harness::*;
use crate::serve::{server_section, Service, READER, WRITER};

fn served(env: &Env) -> Service {
    let server = server_section(env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = Service::start(env);
    assert_eq!(svc.sync()["status"], "ok");
    svc
}

fn jit(svc: &Service, name: &str) -> (u16, serde_json::Value) {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    let path = format!("/api/users/{}/sync", name.replace('+', "%20"));
    let (s, _, v) = svc.call("POST", &path, Some(WRITER), None);
    (s, v)
}

#[test]
fn an_entra_user_created_a_minute_ago_is_found_with_its_groups() {
    let g = crate::fake_graph::FakeGraph::start();
    crate::graph::tenant(&g);
    let env = crate::graph::graph_env(&g, "", crate::graph::FIELDS);
    let svc = served(&env);
    g.with(|t| {
        t.add_user("u9", "hal@contoso.com", "Hal Person", json!({"employeeId": "E9"}));
        t.change_members("g-all", &["u9"], &[]);
        t.roles.insert("r1".into(), ("Global Reader".into(), vec!["u9".into()]));
        t.remove_user("u1", "deleted"); // gone from Entra, but a JIT removes nobody
    });
    g.clear_requests();
    let (s, v) = jit(&svc, "hal@contoso.com");
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["created"].as_bool(), v["user"]["username"].as_str()), (Some(true), Some("hal@contoso.com")), "{v}");
    assert_eq!(v["user"]["groups"], json!(["All Staff"]), "a directory role is not a group: {v}");
    assert!(v["user"]["all_groups"].to_string().contains("Lab"), "nested: All Staff is in Lab: {v}");
    assert_eq!(v["user"]["card_number"], "E9");
    // The requests: one eq filter, quoted, no ConsistencyLevel; memberOf; the group's members whole.
    let users = g.requests("GET", "/v1.0/users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].query["$filter"], "userPrincipalName eq 'hal@contoso.com'");
    assert!(users[0].query["$select"].contains("employeeId"), "{:?}", users[0].query);
    assert_eq!(users[0].consistency, None, "a plain eq needs no advanced query");
    assert_eq!(g.requests("GET", "/v1.0/users/u9/memberOf").len(), 1);
    // Other members of All Staff stay; bob, gone from Entra, is not removed by a JIT.
    let (_, amy) = svc.get("/api/users/amy@contoso.com", READER);
    assert!(amy["groups"].to_string().contains("All Staff"), "{amy}");
    assert_eq!(svc.get("/api/users/bob@contoso.com", READER).1["status"], "active");
    // Again: an update, not a second user.
    assert_eq!(jit(&svc, "HAL@contoso.com").1["created"], false);
    for name in ["nobody@contoso.com", "x' or userPrincipalName eq 'amy@contoso.com", "*"] {
        let (s, v) = jit(&svc, name);
        assert_eq!((s, v["error"].as_str()), (404, Some("not_found")), "{name}: {v}");
    }
    let crafted = g.requests("GET", "/v1.0/users").into_iter().find(|r| r.query["$filter"].contains(" or ")).unwrap();
    assert_eq!(crafted.query["$filter"], "userPrincipalName eq 'x'' or userPrincipalName eq ''amy@contoso.com'");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn a_google_user_is_found_by_primary_email_in_the_sources_domain() {
    let g = crate::fake_google::FakeGoogle::start();
    crate::google::domain(&g);
    let env = crate::google::google_env(&g, "", "");
    let svc = served(&env);
    g.with(|d| {
        d.add_user("19", "ivy@school.example", "IVY Pupil", json!({}));
        d.groups.get_mut("g1").unwrap().1.push(("19".into(), "USER".into()));
    });
    g.clear_requests();
    let (s, v) = jit(&svc, "ivy");
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["created"].as_bool(), v["user"]["username"].as_str()), (Some(true), Some("ivy")), "{v}");
    assert_eq!(v["user"]["groups"], json!(["Students"]));
    assert!(v["user"]["all_groups"].to_string().contains("Printing"), "Students is in Printing: {v}");
    assert_eq!(v["user"]["email"], "ivy@school.example");
    let got = g.requests("GET", "/admin/directory/v1/users/ivy@school.example");
    assert_eq!(got.len(), 1, "users.get by name@domain (admin_email's domain)");
    let groups = g.requests("GET", "/admin/directory/v1/groups");
    assert_eq!(groups[0].query.get("userKey").map(String::as_str), Some("19"));
    let (_, amy) = svc.get("/api/users/amy", READER);
    assert_eq!(amy["groups"], json!(["Students"]), "Students' other members stay: {amy}");
    for name in ["nobody", "ivy@school.example", "../users", "a'b"] {
        let (s, v) = jit(&svc, name);
        assert_eq!((s, v["error"].as_str()), (404, Some("not_found")), "{name}: {v}");
    }
    assert_eq!(svc.stop(10), 0);
}
