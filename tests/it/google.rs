//! The Google source (`type = "google"`, Workspace's Directory API) against
//! the fake in `fake_google`, through the CLI and the store: the service
//! account's signed token request, `fields=` asking only for the mapped
//! properties, `projection=full` only for custom schemas, paging to the
//! end, nested groups, suspended users, renames by id, rate limits backed
//! off, a failure half-way that removes nobody, and write-back to a custom
//! schema with a token of its own.

use serde_json::json;

use crate::fake_google::*;
use crate::harness::*;
use crate::program::user_field;

pub fn google_env(g: &FakeGoogle, extra: &str, fields: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    std::fs::write(env.dir.path().join("sa.json"), g.key_file()).unwrap();
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"school\"\ntype = \"google\"\nservice_account_file = \"sa.json\"\n\
         admin_email = \"{GADMIN}\"\napi_url = \"{}\"\n{extra}\n{fields}",
        g.base()
    ));
    env
}

pub fn domain(g: &FakeGoogle) {
    g.with(|d| {
        d.page_size = 2;
        for (i, n) in ["amy", "bob", "cat", "dan", "eve"].iter().enumerate() {
            d.add_user(
                &format!("1{i}"),
                &format!("{n}@school.example"),
                &format!("{} Pupil", n.to_uppercase()),
                json!({"customSchemas": {"Printing": {"CardNumber": format!("C{i}")}}, "organizations": [{"department": "Year 7"}]}),
            );
        }
        d.users.get_mut("14").unwrap()["suspended"] = json!(true);
        d.groups.insert("g1".into(), ("Students".into(), vec![("10".into(), "USER".into()), ("11".into(), "USER".into()), ("c".into(), "CUSTOMER".into())]));
        d.groups.insert("g2".into(), ("Printing".into(), vec![("g1".into(), "GROUP".into()), ("12".into(), "USER".into())]));
        d.groups.insert("g3".into(), ("Empty".into(), vec![]));
    });
}

#[test]
fn a_read_with_the_default_fields_asks_only_for_them_and_pages_to_the_end() {
    let g = FakeGoogle::start();
    domain(&g);
    let env = google_env(&g, "", "");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(usernames(&env.users()), ["amy", "bob", "cat", "dan"], "the domain removed; eve is suspended");
    assert_eq!(user_field(&env, "amy", "full_name"), "AMY Pupil");
    assert_eq!(user_field(&env, "amy", "email"), "amy@school.example");
    assert_eq!(env.user("amy")["external_id"], "10");
    assert_eq!(env.user("amy")["groups"], json!(["Students"]));
    let users = g.requests("GET", "/admin/directory/v1/users");
    assert_eq!(users.len(), 3, "5 users in pages of 2");
    assert_eq!(users[0].query["fields"], "nextPageToken,users(id,primaryEmail,suspended,name)");
    assert_eq!(users[0].query["projection"], "basic", "no custom schema mapped");
    assert_eq!(users[1].query["pageToken"], "p2");
    assert_eq!(g.requests("GET", "/admin/directory/v1/groups").len(), 2);
    assert_eq!(g.requests("GET", "/admin/directory/v1/groups/g1/members").len(), 2, "3 members in pages of 2");
    let claims = g.with(|d| d.token_claims.clone());
    assert_eq!(claims.len(), 1, "one token for the run");
    assert_eq!((claims[0]["sub"].as_str(), claims[0]["scope"].as_str()), (Some(GADMIN), Some(READ_SCOPES)));

    // Printing holds the group Students: its members are in scope through it.
    let scoped = google_env(&g, "scope_groups = [\"Printing\"]", "");
    assert_eq!(scoped.sync(&[]).0, 0);
    assert_eq!(usernames(&scoped.users()), ["amy", "bob", "cat"], "a nested GROUP member is followed");
}

#[test]
fn custom_schemas_ask_for_the_full_projection_and_a_changed_email_is_a_rename() {
    let g = FakeGoogle::start();
    domain(&g);
    let fields = "[sources.fields]\nusername = \"primaryEmail\"\nfull_name = \"name.fullName\"\n\
                  card_number = \"customSchemas.Printing.CardNumber\"\ndepartment = \"organizations.0.department\"\n";
    let env = google_env(&g, "import_disabled = true\nquery = \"orgUnitPath='/Students'\"", fields);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let users = g.requests("GET", "/admin/directory/v1/users");
    assert_eq!(users[0].query["projection"], "full");
    assert_eq!(users[0].query["query"], "orgUnitPath='/Students'");
    assert_eq!(user_field(&env, "bob@school.example", "card_number"), "C1");
    assert_eq!(user_field(&env, "bob@school.example", "department"), "Year 7");
    assert_eq!(env.user("eve@school.example")["status"], "disabled", "suspended, imported disabled");
    g.with(|d| {
        d.users.get_mut("11").unwrap()["primaryEmail"] = json!("robert@school.example");
        d.users.remove("12");
    });
    // 1 of 4 leaving is above the default guard: the admin forces it.
    let (code, out) = env.sync(&["--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(count(&out, "renamed"), 1, "{out}");
    assert_eq!(env.user("robert@school.example")["external_id"], "11");
    assert_ne!(env.user("cat@school.example")["status"], "active");
}

#[test]
fn rate_limits_are_backed_off_and_a_500_half_way_removes_nobody() {
    let g = FakeGoogle::start();
    domain(&g);
    let env = google_env(&g, "", "");
    g.with(|d| d.rate_limited = 2);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "403 rateLimitExceeded is waited out: {out}");
    assert_eq!(env.users().len(), 4);
    g.with(|d| d.fail_users_page = Some(1));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("HTTP 500"), "{out}");
    assert!(env.users().iter().all(|u| u["status"] == "active"));
    g.with(|d| {
        d.fail_users_page = None;
        d.rate_limited = 100;
    });
    let env2 = google_env(&g, "max_retry_wait_secs = 2", "");
    let (code, out) = env2.sync(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("max_retry_wait_secs"), "{out}");
}

#[test]
fn write_back_patches_a_custom_schema_with_a_token_of_its_own() {
    let g = FakeGoogle::start();
    domain(&g);
    let fields = "[sources.fields]\nusername = \"primaryEmail\"\nfull_name = \"name.fullName\"\n\
                  print_code = { attribute = \"customSchemas.Printing.PrintCode\", owner = \"app\" }\n";
    let env = google_env(&g, "[sources.writeback]\nenabled = true\n", fields);
    assert_eq!(env.sync(&[]).0, 0);
    g.with(|d| {
        d.missing.insert("11".into());
    });
    for (u, v) in [("amy@school.example", "4711"), ("bob@school.example", "1")] {
        assert_eq!(env.run(&["users", "set", u, "print_code", v]).code, 0);
    }
    let out = env.run(&["writeback", "push", "--json"]).json();
    assert_eq!((out["pushed"].as_u64(), out["failed"].as_u64()), (Some(1), Some(1)), "{out}");
    assert_eq!(g.with(|d| d.users["10"]["customSchemas"]["Printing"]["PrintCode"].clone()), "4711");
    let patch = &g.requests("PATCH", "/admin/directory/v1/users/10")[0];
    assert_eq!(patch.body, json!({"customSchemas": {"Printing": {"PrintCode": "4711"}}}));
    let scopes: Vec<String> =
        g.with(|d| d.token_claims.iter().map(|c| c["scope"].as_str().unwrap().to_string()).collect());
    assert!(scopes.contains(&WRITE_SCOPE.to_string()) && scopes.contains(&READ_SCOPES.to_string()), "{scopes:?}");
    let st = env.run(&["writeback", "status", "--json"]).json().to_string();
    assert!(st.contains("no longer in the domain"), "{st}");
}

#[test]
fn a_key_file_that_is_not_a_key_is_named_without_quoting_it_and_delegation_is_explained() {
    let g = FakeGoogle::start();
    domain(&g);
    let env = google_env(&g, "", "");
    std::fs::write(env.dir.path().join("sa.json"), "{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\nc2VjcmV0LWtleQ==\\n-----END PRIVATE KEY-----\\n\", \"client_email\": \"x@y\"}").unwrap();
    let r = env.run(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("sources[0].service_account_file") && !r.stderr.contains("c2VjcmV0"), "{}", r.stderr);
    std::fs::write(env.dir.path().join("sa.json"), "{\"private_key\": \"c2VjcmV0\n").unwrap();
    let r = env.run(&["check"]);
    assert!(r.stderr.contains("is not a service account JSON key") && !r.stderr.contains("c2VjcmV0"), "{}", r.stderr);

    let env = google_env(&g, "", "");
    env.edit_config(|c| c.replace(GADMIN, "someone@school.example"));
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("domain-wide delegation"), "{out}");
}
