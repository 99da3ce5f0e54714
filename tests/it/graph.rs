//! The Graph source (`type = "graph"`, Entra ID) against the fake tenant in
//! `fake_graph`, through the CLI and the store: the token request, `$select`
//! with only the mapped properties, paging to the end, `$batch` for members
//! (nested groups, devices ignored), delta links with `@removed` and
//! `members@delta`, an expired delta token, throttling within the wait
//! budget, a failure half-way through a full read, write-back with its
//! per-user errors, and the password check Entra cannot do.

use serde_json::json;

use crate::fake_graph::*;
use crate::harness::*;
use crate::program::user_field;

/// The defaults username, full_name and email, two defaults turned off, two more fields.
pub const FIELDS: &str = "[sources.fields]\nusername = \"userPrincipalName\"\nfull_name = \"displayName\"\n\
    email = \"mail\"\ndepartment = false\noffice = false\ncard_number = \"employeeId\"\n\
    badge = \"onPremisesExtensionAttributes.extensionAttribute1\"\n";

pub fn graph_env(g: &FakeGraph, extra: &str, fields: &str) -> Env {
    let env = Env { dir: tempfile::tempdir().unwrap() };
    std::fs::write(env.dir.path().join("graph.secret"), format!("{SECRET}\n")).unwrap();
    env.write_config(&format!(
        "[store]\npath = \"dirsync.db\"\n\n[[sources]]\nname = \"entra\"\ntype = \"graph\"\ntenant_id = \"{TENANT}\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret_file = \"graph.secret\"\nauthority_url = \"{base}\"\ngraph_url = \"{base}\"\n\
         {extra}\n{fields}",
        base = g.base()
    ));
    env
}

/// Seven users (one disabled), a big group paged, a nested group, a device.
pub fn tenant(g: &FakeGraph) {
    g.with(|t| {
        t.page_size = 3;
        for (i, name) in ["amy", "bob", "cat", "dan", "eve", "fay", "gus"].iter().enumerate() {
            t.add_user(
                &format!("u{i}"),
                &format!("{name}@contoso.com"),
                &format!("{} Person", name.to_uppercase()),
                json!({"employeeId": format!("E{i}"), "onPremisesExtensionAttributes": {"extensionAttribute1": format!("B-{i}")}}),
            );
        }
        t.update_user("u6", json!({"accountEnabled": false}));
        t.devices.insert("d1".into());
        t.add_group("g-all", "All Staff", &["u0", "u1", "u2", "u3", "u4", "u5", "d1"]);
        t.add_group("g-lab", "Lab", &["u0", "g-all"]);
        for i in 0..23 {
            t.add_group(&format!("g-x{i:02}"), &format!("Extra {i:02}"), &["u1"]);
        }
    });
}

#[test]
fn a_full_read_selects_only_mapped_properties_pages_to_the_end_and_batches_members() {
    let g = FakeGraph::start();
    tenant(&g);
    let env = graph_env(&g, "", FIELDS);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let names = usernames(&env.users());
    assert_eq!(
        names,
        [
            "amy@contoso.com",
            "bob@contoso.com",
            "cat@contoso.com",
            "dan@contoso.com",
            "eve@contoso.com",
            "fay@contoso.com"
        ]
    );
    assert_eq!(user_field(&env, "amy@contoso.com", "badge"), "B-0", "a dotted path reaches a nested value");
    assert_eq!(user_field(&env, "bob@contoso.com", "card_number"), "E1");
    assert_eq!(env.user("amy@contoso.com")["external_id"], "u0", "the object id is the identity");
    let groups = env.user("amy@contoso.com")["groups"].to_string();
    assert!(groups.contains("All Staff") && groups.contains("Lab"), "{groups}");
    assert_eq!(env.user("bob@contoso.com")["groups"].as_array().unwrap().len(), 24, "every batch's members");

    // The requests: $select holds the mapped properties and nothing else.
    let users = g.requests("GET", "/v1.0/users");
    assert_eq!(users.len(), 3, "7 users in pages of 3: every nextLink followed");
    let select: Vec<&str> = users[0].query["$select"].split(',').collect();
    let mut want = vec![
        "id",
        "accountEnabled",
        "displayName",
        "employeeId",
        "mail",
        "onPremisesExtensionAttributes",
        "userPrincipalName",
    ];
    let mut got = select.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(users[0].query["$top"], "999");
    assert_eq!(g.requests("GET", "/v1.0/groups").len(), 9, "25 groups in pages of 3");
    let batches = g.requests("POST", "/v1.0/$batch");
    assert_eq!(batches.len(), 2, "25 groups' members in batches of 20");
    assert!(batches.iter().all(|b| b.body["requests"].as_array().unwrap().len() <= 20));
    assert_eq!(
        g.requests("GET", "/v1.0/groups/g-all/members").len(),
        2,
        "7 members in pages of 3, after the first in the batch"
    );
    assert_eq!(g.with(|t| t.token_requests.len()), 1, "one token for the whole run");
    // Incremental is on by default: the delta links were taken first.
    assert_eq!(g.requests("GET", "/v1.0/users/delta")[0].query["$deltatoken"], "latest");
}

#[test]
fn a_delta_reads_changes_removals_and_member_changes() {
    let g = FakeGraph::start();
    tenant(&g);
    let env = graph_env(&g, "", FIELDS);
    assert_eq!(env.sync(&[]).0, 0);
    g.clear_requests();
    g.with(|t| {
        t.update_user("u0", json!({"userPrincipalName": "amy.new@contoso.com"})); // a rename
        t.update_user("u1", json!({"accountEnabled": false}));
        t.remove_user("u2", "changed"); // soft-deleted
        t.change_members("g-lab", &["u3"], &["u0"]);
        t.rename_group("g-x00", "Renamed 00");
        t.remove_group("g-x01");
    });
    // 2 of 6 users leaving is above the default guard: the admin forces it.
    let (code, out) = env.sync(&["--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.runs()[0]["mode"], "incremental", "{out}");
    assert!(g.requests("GET", "/v1.0/users").is_empty(), "no full read");
    let d = g.requests("GET", "/v1.0/users/delta");
    assert_eq!(d.len(), 1);
    assert_ne!(d[0].query["$deltatoken"], "latest", "the saved link is followed");
    let amy = env.user("amy.new@contoso.com");
    assert_eq!(amy["external_id"], "u0", "a renamed UPN is a rename");
    assert_eq!(env.user("bob@contoso.com")["status"], "disabled");
    assert_ne!(env.user("cat@contoso.com")["status"], "active", "a soft-deleted user is missing");
    let dan = env.user("dan@contoso.com")["groups"].to_string();
    assert!(dan.contains("Lab"), "members@delta addition: {dan}");
    assert!(!amy["groups"].to_string().contains("\"Lab\""), "@removed member: {}", amy["groups"]);
    let bob = env.user("bob@contoso.com")["groups"].to_string();
    assert!(bob.contains("Renamed 00") && !bob.contains("Extra 01"), "{bob}");
    // Nothing changed: the next delta changes nothing.
    let (_, out) = env.sync(&[]);
    for k in ["created", "updated", "renamed", "disabled", "deleted", "memberships_added", "memberships_removed"] {
        assert_eq!(count(&out, k), 0, "{k}: {out}");
    }
}

#[test]
fn an_expired_delta_token_is_a_full_read_in_the_same_run() {
    let g = FakeGraph::start();
    tenant(&g);
    let env = graph_env(&g, "", FIELDS);
    assert_eq!(env.sync(&[]).0, 0);
    g.with(|t| {
        t.expired_below = usize::MAX;
        t.update_user("u3", json!({"displayName": "Dan Changed"}));
    });
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.runs()[0]["mode"], "full", "{out}");
    assert_eq!(user_field(&env, "dan@contoso.com", "full_name"), "Dan Changed");
    assert_eq!(count(&out, "disabled") + count(&out, "deleted"), 0, "{out}");
}

#[test]
fn throttling_is_waited_out_and_a_wait_beyond_the_budget_fails_the_run_before_any_removal() {
    let g = FakeGraph::start();
    tenant(&g);
    let env = graph_env(&g, "max_retry_wait_secs = 3", FIELDS);
    g.with(|t| t.throttle = (2, 1));
    let t0 = std::time::Instant::now();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(t0.elapsed() >= std::time::Duration::from_secs(2), "Retry-After was honoured");
    assert_eq!(env.users().len(), 6);
    g.with(|t| {
        t.remove_user("u5", "deleted");
        t.throttle = (1, 30);
    });
    let (code, out) = env.sync(&["--full"]);
    assert_ne!(code, 0, "{out}");
    let msg = out["message"].as_str().unwrap_or_default();
    assert!(msg.contains("throttled") && msg.contains("max_retry_wait_secs"), "{out}");
    assert_eq!(env.user("fay@contoso.com")["status"], "active", "nothing removed");
}

#[test]
fn a_500_half_way_through_a_full_read_removes_nobody() {
    let g = FakeGraph::start();
    tenant(&g);
    let env = graph_env(&g, "", FIELDS);
    assert_eq!(env.sync(&[]).0, 0);
    g.with(|t| t.fail_users_page = Some(1));
    let (code, out) = env.sync(&["--full"]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("GET /v1.0/users: HTTP 500"), "{out}");
    assert!(env.users().iter().all(|u| u["status"] == "active"), "nobody removed");
}

#[test]
fn write_back_patches_users_and_says_what_to_fix_for_a_403_and_an_on_premises_user() {
    let g = FakeGraph::start();
    tenant(&g);
    let fields = format!("{FIELDS}print_code = {{ attribute = \"extension_0123abcd_printCode\", owner = \"app\" }}\n");
    let env = graph_env(&g, "[sources.writeback]\nenabled = true\n", &fields);
    assert_eq!(env.sync(&[]).0, 0);
    g.with(|t| {
        t.forbidden.insert("u1".into());
        t.on_premises.insert("u2".into());
    });
    for (u, v) in [("amy@contoso.com", "4711"), ("bob@contoso.com", "1234"), ("cat@contoso.com", "99")] {
        let r = env.run(&["users", "set", u, "print_code", v]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    let r = env.run(&["writeback", "push", "--json"]);
    let out = r.json();
    assert_eq!((out["pushed"].as_u64(), out["failed"].as_u64()), (Some(1), Some(2)), "{out}");
    assert_eq!(g.with(|t| t.users["u0"]["extension_0123abcd_printCode"].clone()), "4711", "PATCHed with its spelling");
    let patches = g.requests("PATCH", "/v1.0/users/u0");
    assert_eq!(patches[0].body, json!({"extension_0123abcd_printCode": "4711"}));
    let st = env.run(&["writeback", "status", "--json"]).json().to_string();
    assert!(st.contains("User.ReadWrite.All"), "{st}");
    assert!(st.contains("on-premises Active Directory"), "{st}");
    assert!(!st.contains(SECRET));
}

#[test]
fn a_certificate_assertion_signs_in_and_a_wrong_secret_is_named_without_its_value() {
    let g = FakeGraph::start();
    tenant(&g);
    let env = graph_env(&g, "", FIELDS);
    env.edit_config(|c| {
        c.replace(
            "client_secret_file = \"graph.secret\"",
            &format!("certificate_file = \"{FIXTURES}/test-cert.pem\"\nprivate_key_file = \"{FIXTURES}/test-key.pem\""),
        )
    });
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let grant = g.with(|t| t.token_requests[0].clone());
    assert!(grant.contains_key("client_assertion") && !grant.contains_key("client_secret"), "{grant:?}");

    let env = graph_env(&g, "", FIELDS);
    std::fs::write(env.dir.path().join("graph.secret"), "wrong-Secret-value\n").unwrap();
    let r = env.run(&["sync", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("invalid_client") && r.stdout.contains("check client_id"), "{}", r.stdout);
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("wrong-Secret-value") && !text.contains("tok-"), "{text}");
    }
    let r = env.run(&["check"]);
    assert_ne!(r.code, 0);
    assert!(!r.stdout.contains("wrong-Secret-value") && !r.stderr.contains("wrong-Secret-value"));
}

#[test]
fn dirsync_auth_says_a_graph_source_cannot_check_passwords() {
    let g = FakeGraph::start();
    tenant(&g);
    let env = graph_env(&g, "", FIELDS);
    assert_eq!(env.sync(&[]).0, 0);
    let (code, _, err) = env.auth("amy@contoso.com", "whatever", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot check passwords") && err.contains("OpenID Connect"), "{err}");
}

#[test]
fn config_mistakes_name_the_key() {
    let g = FakeGraph::start();
    let cases = [
        ("client_secret_file = \"graph.secret\"", "", "client_secret_file: missing"),
        (
            "graph_url = \"http://127.0.0.1",
            "graph_url = \"http://graph.example.com",
            "graph_url: \"http://graph.example.com",
        ),
        (
            "username = \"userPrincipalName\"",
            "username = \"userPrincipalNam\"",
            "is not a Microsoft Graph user property",
        ),
        (
            "[sources.fields]",
            "[sources.writeback]\nenabled = true\nbind_dn = \"cn=x\"\n[sources.fields]",
            "writeback.bind_dn: is not used by type = \"graph\"",
        ),
        (
            "[sources.fields]",
            "user_filter = \"x\"\n[sources.incremental]\nenabled = true\n[sources.fields]",
            "user_filter: cannot be used with",
        ),
    ];
    for (from, to, want) in cases {
        let env = graph_env(&g, "", FIELDS);
        env.edit_config(|c| c.replacen(from, to, 1));
        let r = env.run(&["check"]);
        assert_eq!(r.code, 2, "{to}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(want), "{to}: {}", r.stderr);
        assert!(!r.stderr.contains(SECRET));
    }
}

#[test]
fn a_next_link_to_another_host_is_not_followed_and_the_token_stays_home() {
    let g = FakeGraph::start();
    tenant(&g);
    // Another server that would receive the token if dirsync followed the link.
    let thief = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let thief_base = format!("http://{}", thief.local_addr().unwrap());
    thief.set_nonblocking(true).unwrap();
    g.with(|t| t.next_link_host = Some(thief_base.clone()));
    let env = graph_env(&g, "", FIELDS);
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("outside graph_url"), "{out}");
    assert!(thief.accept().is_err(), "nobody connected to the other host");
    assert!(env.users().is_empty());
}

#[test]
fn a_server_that_stalls_fails_the_run_after_timeout_secs() {
    let g = FakeGraph::start();
    // Accepts connections and never answers.
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stall.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((s, _)) = stall.accept() {
            held.push(s);
        }
    });
    let env = graph_env(&g, "timeout_secs = 1", FIELDS);
    env.edit_config(|c| {
        c.replace(&format!("graph_url = \"{}\"", g.base()), &format!("graph_url = \"http://127.0.0.1:{port}\""))
    });
    let t0 = std::time::Instant::now();
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out["message"].as_str().unwrap().contains("no answer in time"), "{out}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));
}
