//! `dirsync serve`, the real binary on 127.0.0.1:0 against a real slapd:
//! the API's routes, tokens and scopes, JSON errors, the run queue
//! (coalescing), the change feed across runs, PATCH, metrics, SIGHUP with a
//! broken config and SIGTERM mid-sync.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

pub const READER: &str = "reader-token-0123456789abcdef";
pub const WRITER: &str = "writer-token-0123456789abcdef";
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
pub const AUTHER: &str = "auth-token-0123456789abcdef";

/// The `[server]` section with four clients (tokens in files).
pub fn server_section(env: &Env, extra: &str) -> String {
    for (f, t) in [("reader", READER), ("writer", WRITER), ("admin", ADMIN_TOKEN), ("auther", AUTHER)] {
        std::fs::write(env.dir.path().join(format!("{f}.token")), format!("{t}\n")).unwrap();
    }
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = 2\n{extra}\n\
         [[server.clients]]\nname = \"reader\"\ntoken_file = \"reader.token\"\nscopes = [\"read\"]\n\
         [[server.clients]]\nname = \"writer\"\ntoken_file = \"writer.token\"\nscopes = [\"read\", \"write\", \"sync\"]\n\
         [[server.clients]]\nname = \"admin\"\ntoken_file = \"admin.token\"\nscopes = [\"admin\"]\n\
         [[server.clients]]\nname = \"auther\"\ntoken_file = \"auther.token\"\nscopes = [\"auth\"]\n\
         [schedule]\nfull = \"\"\nincremental = \"\"\n"
    )
}

/// A running `dirsync serve` and everything it logged.
pub struct Service {
    pub child: Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Service {
    pub fn start(env: &Env) -> Service {
        let mut child = env
            .command(&["serve", "-vv"])
            .env("DIRSYNC_LOG", "debug")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("dirsync serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                let mut l = l.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("serve did not say where it listens:\n{}", log.lock().unwrap())
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Service { child, base, log, rt, http: reqwest::Client::new() }
    }

    /// One request; returns (status, headers, JSON or the text as a string).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.parse().unwrap(), &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.rt.block_on(async {
            let r = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let (status, headers) = (r.status().as_u16(), r.headers().clone());
            let text = r.text().await.unwrap();
            let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, headers, v)
        })
    }

    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (s, _, v) = self.call("GET", path, Some(token), None);
        (s, v)
    }

    /// Raw bytes as the body (for malformed JSON). A client of its own: the
    /// server may close a connection whose body it refused (413), which a
    /// pooled connection would carry into the next request.
    pub fn post_raw(&self, path: &str, token: &str, body: Vec<u8>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let req =
            reqwest::Client::new().post(&url).bearer_auth(token).header("content-type", "application/json").body(body);
        self.rt.block_on(async {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            let text = r.text().await.unwrap();
            (s, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }

    /// Asks for a sync and waits until its run is no longer queued or running.
    pub fn sync(&self) -> Value {
        let (s, _, v) = self.call("POST", "/api/syncs", Some(WRITER), Some(json!({})));
        assert_eq!(s, 202, "{v}");
        self.wait_run(v["run_id"].as_i64().unwrap())
    }

    pub fn wait_run(&self, id: i64) -> Value {
        let t0 = Instant::now();
        loop {
            let (s, run) = self.get(&format!("/api/runs/{id}"), READER);
            assert_eq!(s, 200, "{run}");
            if !matches!(run["status"].as_str(), Some("queued" | "running")) {
                return run;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "run {id} did not finish: {run}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until the log has a line containing `want`.
    pub fn wait_log(&self, want: &str) {
        let t0 = Instant::now();
        while !self.log().contains(want) {
            assert!(t0.elapsed() < Duration::from_secs(10), "the log never said {want:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, then the exit code (within `secs`).
    pub fn stop(mut self, secs: u64) -> i32 {
        self.signal("-TERM");
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if t0.elapsed() > Duration::from_secs(secs) {
                let _ = self.child.kill();
                panic!("serve did not stop within {secs} s after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn school(slapd: &Slapd) {
    let mut ldif = String::new();
    ldif += &person("alice", "Alice Archer", "userPassword: alice-pw-1\nemployeeNumber: 1001");
    ldif += &person("bob", "Bob Baker", "userPassword: bob-pw-2");
    ldif += &person("carol", "Carol Clark", "");
    ldif += &group("Teachers", &["uid=alice"]);
    ldif += &group("Staff", &["cn=Teachers", "uid=bob"]);
    ldif += &group("Students", &["uid=carol"]);
    slapd.modify(&ldif);
}

/// An Env for serving: slapd's school, a `[server]`, a local `credit` field.
pub fn serving(slapd: &Slapd) -> Env {
    let env = Env::ldap(slapd, "", "");
    let server = server_section(&env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    env
}

#[test]
fn the_api_serves_users_groups_runs_and_a_change_feed_without_gaps() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = serving(&slapd);
    let svc = Service::start(&env);
    let run = svc.sync();
    assert_eq!((run["status"].as_str(), run["created"].as_u64()), (Some("ok"), Some(3)), "{run}");

    // Users: a page, the cursor, a filter, one by name (case folded).
    let (s, page) = svc.get("/api/users?limit=2", READER);
    assert_eq!(s, 200);
    assert_eq!(usernames(page["users"].as_array().unwrap()), ["alice", "bob"]);
    let next = page["next"].as_str().unwrap();
    let (_, page2) = svc.get(&format!("/api/users?limit=2&cursor={next}"), READER);
    assert_eq!(usernames(page2["users"].as_array().unwrap()), ["carol"]);
    assert!(page2["next"].is_null(), "the last page has no next");
    let (_, staff) = svc.get("/api/users?group=staff", READER);
    assert_eq!(usernames(staff["users"].as_array().unwrap()), ["alice", "bob"], "effective members");
    let (_, q) = svc.get("/api/users?q=Carol%20C", READER);
    assert_eq!(usernames(q["users"].as_array().unwrap()), ["carol"], "full-name prefix");
    let (s, alice) = svc.get("/api/users/ALICE", READER);
    assert_eq!((s, alice["username"].as_str()), (200, Some("alice")));
    assert_eq!(alice["all_groups"], json!(["Staff", "Teachers"]));
    // The same document as `users show --json`.
    let cli = env.user("alice");
    assert_eq!(alice, cli);

    // Groups and members.
    let (_, groups) = svc.get("/api/groups?limit=2", READER);
    assert_eq!(groups["groups"].as_array().unwrap().len(), 2);
    let (_, g) = svc.get(&format!("/api/groups?cursor={}", groups["next"].as_str().unwrap()), READER);
    assert_eq!(g["groups"][0]["name"], "Teachers");
    let (_, staff) = svc.get("/api/groups/staff", READER);
    assert_eq!((staff["members"].as_u64(), staff["all_members"].as_u64()), (Some(1), Some(2)), "{staff}");
    let (_, m) = svc.get("/api/groups/Staff/members", READER);
    assert_eq!(usernames(m["members"].as_array().unwrap()), ["bob"]);
    let (_, m) = svc.get("/api/groups/Staff/members?effective=true", READER);
    assert_eq!(usernames(m["members"].as_array().unwrap()), ["alice", "bob"]);

    // The change feed, in pages, then across a second run.
    let mut seen = Vec::new();
    let mut since = 0;
    loop {
        let (_, f) = svc.get(&format!("/api/changes?since={since}&limit=4"), READER);
        let page = f["changes"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|c| c["cursor"].as_i64().unwrap()));
        since = f["next"].as_i64().unwrap();
    }
    assert!(seen.len() >= 3 && seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    slapd.modify(&format!("dn: uid=bob,ou=people,{SUFFIX}\nchangetype: modify\nreplace: cn\ncn: Robert Baker\n\n"));
    slapd.modify(&person("dave", "Dave Doe", ""));
    let run = svc.sync();
    assert_eq!(run["status"], "ok", "{run}");
    let (_, f) = svc.get(&format!("/api/changes?since={since}"), READER);
    let after: Vec<(String, String)> = f["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["action"].as_str().unwrap().to_string(), c["name"].as_str().unwrap().to_string()))
        .collect();
    assert!(after.contains(&("create".into(), "dave".into())), "{after:?}");
    assert!(after.iter().any(|(a, n)| a == "update" && n == "bob"), "{after:?}");
    assert!(f["changes"].as_array().unwrap().iter().all(|c| c["cursor"].as_i64().unwrap() > since), "nothing repeated");
    let (_, f2) = svc.get(&format!("/api/changes?since={}", f["next"]), READER);
    assert!(f2["changes"].as_array().unwrap().is_empty(), "nothing after the last");

    // History and runs.
    let (_, h) = svc.get("/api/users/bob/history", READER);
    assert!(h["history"].as_array().unwrap().iter().any(|r| r["action"] == "update"), "{h}");
    let (_, runs) = svc.get("/api/runs?limit=1", READER);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    assert!(runs["next"].is_i64());
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn tokens_scopes_and_bad_requests_get_json_errors() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = serving(&slapd);
    let svc = Service::start(&env);
    let err = |(s, _, v): (u16, reqwest::header::HeaderMap, Value)| (s, v["error"].as_str().unwrap_or("").to_string());
    assert_eq!(err(svc.call("GET", "/api/users", None, None)), (401, "unauthorized".into()));
    assert_eq!(err(svc.call("GET", "/api/users", Some("not-a-token-at-all-xyz"), None)), (401, "unauthorized".into()));
    // A token one character off.
    let off = format!("{}X", &READER[..READER.len() - 1]);
    assert_eq!(err(svc.call("GET", "/api/users", Some(&off), None)).0, 401);
    assert_eq!(err(svc.call("POST", "/api/syncs", Some(READER), Some(json!({})))), (403, "forbidden".into()));
    assert_eq!(err(svc.call("POST", "/api/auth", Some(READER), Some(json!({})))).0, 403);
    assert_eq!(err(svc.call("GET", "/api/users/nobody", Some(READER), None)), (404, "not_found".into()));
    assert_eq!(err(svc.call("GET", "/api/nothing-here", Some(READER), None)), (404, "not_found".into()));
    assert_eq!(err(svc.call("GET", "/api/users?limit=5000", Some(READER), None)).0, 400);
    assert_eq!(err(svc.call("GET", "/api/users?status=zombie", Some(READER), None)).0, 400);
    let (s, v) = svc.post_raw("/api/auth", AUTHER, b"{\"username\": ".to_vec());
    assert_eq!((s, v["error"].as_str()), (400, Some("bad_request")), "{v}");
    let (s, v) = svc.post_raw("/api/auth", AUTHER, vec![b' '; 200_000]);
    assert_eq!(s, 413, "a huge body is refused: {v}");
    assert_eq!(err(svc.call("POST", "/api/syncs", Some(WRITER), Some(json!({"sources": ["nope"]})))).0, 404);
    // The admin scope opens everything.
    assert_eq!(svc.get("/api/users", ADMIN_TOKEN).0, 200);
    // No token reached the log.
    let log = svc.log();
    for t in [READER, WRITER, ADMIN_TOKEN, AUTHER, off.as_str()] {
        assert!(!log.contains(t), "a token is in the log");
    }
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn patch_sets_local_fields_and_refuses_the_directorys() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = serving(&slapd);
    let svc = Service::start(&env);
    svc.sync();
    let (s, _, u) = svc.call("PATCH", "/api/users/Alice", Some(WRITER), Some(json!({"fields": {"credit": "12.50"}})));
    assert_eq!((s, u["fields"]["credit"].as_str()), (200, Some("12.50")), "{u}");
    let (s, _, u) = svc.call("PATCH", "/api/users/alice", Some(WRITER), Some(json!({"fields": {"credit": null}})));
    assert_eq!(s, 200);
    assert!(u["fields"].get("credit").is_none(), "null clears: {u}");
    // full_name comes from the directory: refused, and nothing of the patch is set.
    let body = json!({"fields": {"credit": "1.00"}, "full_name": "Evil"});
    let (s, _, e) = svc.call("PATCH", "/api/users/alice", Some(WRITER), Some(body));
    assert_eq!((s, e["error"].as_str()), (409, Some("conflict")), "{e}");
    assert!(e["message"].as_str().unwrap().contains("owned by the directory"), "{e}");
    assert!(env.user("alice")["fields"].get("credit").is_none(), "a refused patch sets nothing");
    let (s, _, _) = svc.call("PATCH", "/api/users/alice", Some(READER), Some(json!({"fields": {"credit": "1"}})));
    assert_eq!(s, 403);
    // The change is in the feed.
    let (_, f) = svc.get("/api/changes?limit=1000", READER);
    assert!(f["changes"].as_array().unwrap().iter().any(|c| c["action"] == "set" && c["field"] == "credit"));
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn a_sync_asked_for_twice_at_once_is_one_run_and_sigterm_mid_sync_applies_nothing() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = serving(&slapd);
    // The source answers the bind, then stalls mid-search: the run hangs.
    let proxy = CutProxy::stalling(slapd.port, 100);
    env.point_at(&slapd.url(), proxy.port);
    let svc = Service::start(&env);
    let (s1, _, a) = svc.call("POST", "/api/syncs", Some(WRITER), Some(json!({})));
    let (s2, _, b) = svc.call("POST", "/api/syncs", Some(WRITER), Some(json!({})));
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(a["run_id"], b["run_id"], "one run: {a} {b}");
    assert_eq!((a["queued"].as_bool(), b["queued"].as_bool()), (Some(true), Some(false)));
    // A full read is another run, queued behind it.
    let (_, _, c) = svc.call("POST", "/api/syncs", Some(WRITER), Some(json!({"full": true})));
    assert_ne!(c["run_id"], a["run_id"]);
    let id = a["run_id"].as_i64().unwrap();
    let t0 = Instant::now();
    while svc.get(&format!("/api/runs/{id}"), READER).1["status"] != "running" {
        assert!(t0.elapsed() < Duration::from_secs(10), "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM: the stalled run is stopped after the 2 s grace, nothing applied.
    assert_eq!(svc.stop(15), 0);
    let runs = env.runs();
    let status = |rid: &Value| runs.iter().find(|r| r["id"] == *rid).map(|r| r["status"].as_str().unwrap().to_string());
    assert_eq!(status(&a["run_id"]).as_deref(), Some("interrupted"), "{runs:?}");
    assert_eq!(status(&c["run_id"]).as_deref(), Some("interrupted"), "the queued run was dropped: {runs:?}");
    assert!(env.users().is_empty(), "nothing of the stopped run was applied");
    // The store is consistent and usable: a direct sync works.
    env.point_at(&format!("ldap://127.0.0.1:{}", proxy.port), slapd.port);
    let (code, out) = env.sync(&[]);
    assert_eq!((code, count(&out, "created")), (0, 3), "{out}");
}

#[test]
fn sighup_reloads_a_good_config_and_keeps_the_old_one_when_broken() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = serving(&slapd);
    let svc = Service::start(&env);
    env.edit_config(|c| c.replace("[safety]", "[safety]\n").replace("[server]", "[server\n"));
    svc.signal("-HUP");
    svc.wait_log("the new configuration is refused, the old one is kept");
    assert_eq!(svc.get("/api/users", READER).0, 200, "still serving with the old config");
    // A good config: the reader's scope grows to write.
    env.edit_config(|c| {
        c.replace("[server\n", "[server]\n").replace("scopes = [\"read\"]", "scopes = [\"read\", \"sync\"]")
    });
    svc.signal("-HUP");
    svc.wait_log("configuration reloaded");
    let (s, _, _) = svc.call("POST", "/api/syncs", Some(READER), Some(json!({})));
    assert_eq!(s, 202);
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn health_readiness_and_metrics() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = serving(&slapd);
    let svc = Service::start(&env);
    assert_eq!(svc.call("GET", "/healthz", None, None).0, 200);
    assert_eq!(svc.call("GET", "/readyz", None, None).0, 200);
    svc.sync();
    svc.get("/api/users/alice", READER);
    let (s, _, m) = svc.call("GET", "/metrics", None, None);
    let m = m.as_str().unwrap().to_string();
    assert_eq!(s, 200);
    for want in [
        "dirsync_runs_total{sources=\"corp\",mode=\"full\",status=\"ok\"} 1",
        "dirsync_users{source=\"corp\",status=\"active\"} 3",
        "dirsync_groups 3",
        "dirsync_http_requests_total{route=\"/api/users/{username}\",method=\"GET\",status=\"200\"} 1",
        "dirsync_run_duration_seconds_count 1",
        "dirsync_source_failures{source=\"corp\"} 0",
    ] {
        assert!(m.contains(want), "missing {want} in\n{m}");
    }
    // The source goes down: the next run fails and readiness says so.
    slapd.stop();
    let run = svc.sync();
    assert_eq!(run["status"], "failed");
    let (s, _, r) = svc.call("GET", "/readyz", None, None);
    assert_eq!((s, r["failing_sources"].clone()), (503, json!(["corp"])), "{r}");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn just_in_time_sync_creates_one_user_with_rules_and_a_code_and_removes_nobody() {
    let slapd = Slapd::start();
    school(&slapd);
    let rest = "[[rules]]\nwhen_member_of = \"Students\"\nset = { credit = \"10.00\" }\n\n[codes]\nprint_code = { length = 6, charset = \"digits\", unique = true }\n";
    let env = Env::ldap(&slapd, "", rest);
    let server = server_section(&env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["created"], 3);
    // Erin arrives in the directory (a student); bob leaves it.
    slapd.modify(&person("erin", "Erin Evans", ""));
    slapd.modify(&format!(
        "dn: cn=Students,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=erin,ou=people,{SUFFIX}\n\n"
    ));
    slapd.modify(&format!("dn: uid=bob,ou=people,{SUFFIX}\nchangetype: delete\n\n"));
    let (s, _, v) = svc.call("POST", "/api/users/Erin/sync", Some(WRITER), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["created"].as_bool(), v["user"]["username"].as_str()), (Some(true), Some("erin")), "{v}");
    assert_eq!(v["user"]["all_groups"], json!(["Students"]));
    assert_eq!(v["user"]["fields"]["credit"], "10.00", "the rule applied: {v}");
    let code = v["user"]["fields"]["print_code"].as_str().expect("a generated code");
    assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()), "{code}");
    let (_, run) = svc.get(&format!("/api/runs/{}", v["run_id"]), READER);
    assert_eq!((run["mode"].as_str(), run["status"].as_str()), (Some("single"), Some("ok")), "{run}");
    // Nobody removed: bob is gone from the directory but still active here.
    assert_eq!(svc.get("/api/users/bob", READER).1["status"], "active");
    // Again: an update (nothing new), not a second user.
    let (s, _, v) = svc.call("POST", "/api/users/erin/sync", Some(WRITER), None);
    assert_eq!((s, v["created"].as_bool()), (200, Some(false)), "{v}");
    // Unknown, and a wildcard that must not match everybody.
    for name in ["nobody", "*", "e*", "admin)(|(uid=*"] {
        let path = format!(
            "/api/users/{}/sync",
            name.replace('*', "%2A").replace('(', "%28").replace(')', "%29").replace('|', "%7C")
        );
        let (s, _, v) = svc.call("POST", &path, Some(WRITER), None);
        assert_eq!((s, v["error"].as_str()), (404, Some("not_found")), "{name}: {v}");
    }
    let (_, all) = svc.get("/api/users", READER);
    assert_eq!(usernames(all["users"].as_array().unwrap()), ["alice", "bob", "carol", "erin"]);
    assert_eq!(svc.call("POST", "/api/users/erin/sync", Some(READER), None).0, 403);
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn a_blocked_run_is_approved_and_blocks_again_when_the_directory_removed_more() {
    let slapd = Slapd::start();
    school(&slapd);
    for (u, n) in [("dave", "Dave Doe"), ("erin", "Erin Evans"), ("frank", "Frank Fox")] {
        slapd.modify(&person(u, n, ""));
    }
    let env = serving(&slapd);
    let svc = Service::start(&env);
    assert_eq!(svc.sync()["created"], 6);
    let delete = |u: &str| slapd.modify(&format!("dn: uid={u},ou=people,{SUFFIX}\nchangetype: delete\n\n"));
    delete("bob");
    delete("carol");
    let blocked = svc.sync();
    assert_eq!(blocked["status"], "blocked", "2 of 6 is over 20%: {blocked}");
    let bid = blocked["id"].as_i64().unwrap();
    let planned: Vec<(&str, &str)> = blocked["removals"]
        .as_array()
        .expect("a blocked run shows its removals")
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["action"].as_str().unwrap()))
        .collect();
    assert_eq!(planned, [("bob", "disable"), ("carol", "disable")], "{blocked}");
    // And the plan as people read it, kept with the run.
    assert_eq!(blocked["plan"]["removals"]["total"], 2, "{blocked}");
    assert_eq!(blocked["plan"]["member_removes"]["total"], 2, "bob left Staff, carol Students: {blocked}");
    assert_eq!(svc.call("POST", &format!("/api/runs/{bid}/approve"), Some(WRITER), None).0, 403, "admin only");
    let (s, _, v) = svc.call("POST", &format!("/api/runs/{bid}/approve"), Some(ADMIN_TOKEN), None);
    assert_eq!(s, 202, "{v}");
    let names: Vec<&str> = v["removals"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bob", "carol"]);
    let run = svc.wait_run(v["run_id"].as_i64().unwrap());
    assert_eq!((run["status"].as_str(), run["disabled"].as_u64()), (Some("ok"), Some(2)), "{run}");
    assert_eq!(run["forced"], true, "an approved run is recorded as forced");
    assert_eq!(svc.get("/api/users/bob", READER).1["status"], "disabled");
    // An applied run is not approvable.
    let (s, _, v) = svc.call("POST", &format!("/api/runs/{}/approve", run["id"]), Some(ADMIN_TOKEN), None);
    assert_eq!(s, 409, "{v}");

    // Blocked again: dave and erin go; then frank goes too before the approval.
    delete("dave");
    delete("erin");
    let blocked = svc.sync();
    assert_eq!(blocked["status"], "blocked", "{blocked}");
    delete("frank");
    let (_, _, v) = svc.call("POST", &format!("/api/runs/{}/approve", blocked["id"]), Some(ADMIN_TOKEN), None);
    let run = svc.wait_run(v["run_id"].as_i64().unwrap());
    assert_eq!(run["status"], "blocked", "{run}");
    let why = run["message"].as_str().unwrap();
    assert!(why.contains("not approved: 1 removal(s) that run") && why.contains("user frank"), "{why}");
    assert_eq!(svc.get("/api/users/dave", READER).1["status"], "active", "nothing applied");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn https_with_the_configured_certificate_and_a_silent_client_holds_up_nobody() {
    let slapd = Slapd::start();
    school(&slapd);
    let tls = slapd.ca().parent().unwrap().to_path_buf(); // the test CA's server certificate for 127.0.0.1
    let env = Env::ldap(&slapd, "", "");
    let extra = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        tls.join("cert.pem").display(),
        tls.join("key.pem").display()
    );
    let server = server_section(&env, &extra);
    env.edit_config(|c| format!("{c}\n{server}"));
    let svc = Service::start(&env);
    assert!(svc.base.starts_with("https://127.0.0.1:"), "{}", svc.base);
    // A client that connects and never says anything.
    let addr = svc.base.trim_start_matches("https://").to_string();
    let _silent = std::net::TcpStream::connect(&addr).unwrap();
    let curl = |url: &str, extra: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(slapd.ca())
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, body) = curl(&format!("{}/healthz", svc.base), &[]);
    assert!(ok && body == "ok\n", "{body}");
    let (ok, body) =
        curl(&format!("{}/api/users/alice", svc.base), &["-H", &format!("Authorization: Bearer {READER}")]);
    // Routed and authorized over TLS (nothing is synced yet: a JSON 404).
    assert!(ok && body.contains("\"error\":\"not_found\"") && body.contains("no user named"), "{body}");
    // Plain HTTP to the TLS port gets no answer.
    let (ok, _) = curl(&format!("http://{addr}/healthz"), &[]);
    assert!(!ok, "plain HTTP is not served on the TLS port");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn a_service_killed_mid_sync_leaves_the_store_consistent_and_its_runs_marked_on_restart() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = serving(&slapd);
    let proxy = CutProxy::stalling(slapd.port, 100);
    env.point_at(&slapd.url(), proxy.port);
    let mut svc = Service::start(&env);
    let (_, _, a) = svc.call("POST", "/api/syncs", Some(WRITER), Some(json!({})));
    let (_, _, b) = svc.call("POST", "/api/syncs", Some(WRITER), Some(json!({"full": true})));
    std::thread::sleep(Duration::from_millis(300));
    svc.child.kill().unwrap(); // SIGKILL: no shutdown at all
    svc.child.wait().unwrap();
    drop(svc);
    env.point_at(&format!("ldap://127.0.0.1:{}", proxy.port), slapd.port);
    let svc = Service::start(&env);
    for id in [&a["run_id"], &b["run_id"]] {
        let (_, run) = svc.get(&format!("/api/runs/{id}"), READER);
        assert_eq!(run["status"], "interrupted", "{run}");
    }
    assert!(svc.log().contains("runs left by a stopped service were marked interrupted"), "{}", svc.log());
    // The store is whole: a sync through the restarted service applies.
    assert_eq!(svc.sync()["created"], 3);
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn every_run_records_its_trigger_slot_and_instance() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = Env::ldap(&slapd, "", "[sources.schedule]\nfull = \"*/2 * * * * *\"\n");
    let server = server_section(&env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    // A command's run: trigger cli, the host's name.
    assert_eq!(env.sync(&[]).0, 0);
    let cli = env.runs()[0].clone();
    assert_eq!((cli["trigger"].as_str(), cli["slot"].as_str()), (Some("cli"), None), "{cli}");
    let host = cli["instance"].as_str().unwrap().to_string();
    assert!(!host.is_empty() && !host.contains(':'), "{cli}");
    let svc = Service::start(&env);
    let port = svc.base.rsplit(':').next().unwrap().to_string();
    let api = svc.sync();
    assert_eq!(api["trigger"], "api", "{api}");
    assert_eq!(api["instance"], format!("{host}:{port}"), "{api}");
    // A scheduled run: its slot on the cron grid (an even second).
    let t0 = Instant::now();
    let scheduled = loop {
        let (_, v) = svc.get("/api/runs?limit=100", READER);
        let found =
            v["runs"].as_array().unwrap().iter().find(|r| r["trigger"] == "schedule" && r["status"] == "ok").cloned();
        if let Some(r) = found {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no scheduled run: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let slot = dirsync::time::Timestamp::parse(scheduled["slot"].as_str().unwrap()).expect("RFC 3339");
    let text = slot.to_string();
    assert!(text.ends_with(".000Z"), "{text}");
    let second: u32 = text[17..19].parse().unwrap();
    assert_eq!(second % 2, 0, "on the */2 grid: {text}");
    assert_eq!(scheduled["instance"], format!("{host}:{port}"));
    assert_eq!(svc.stop(10), 0);
}
