//! Live sync and webhooks, end to end: the real `dirsync serve` holding a
//! change channel on a real slapd (RFC 4533 refreshAndPersist), a local
//! webhook receiver that checks every signature with the Standard Webhooks
//! algorithm. Changes in the directory reach the store and the receiver
//! with no scheduled run; a burst becomes a few runs; a restarted server is
//! followed again, and what changed meanwhile arrives; a stale cookie means
//! a full read; deliveries are retried under one id, in order, across a
//! restart of dirsync and a receiver that was down.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::receiver::{signature_holds, Receiver, Reply, SECRET};
use crate::serve::{school, server_section, Service, ADMIN_TOKEN, READER};

pub const LIVE: &str = "[sources.live]\nenabled = true\ndebounce_ms = 200\n";

/// A live LDAP source on `slapd` and one webhook to `url` (`hook_extra`:
/// more keys of the webhook).
fn live_env(slapd: &Slapd, url: &str, hook_extra: &str, rest: &str) -> Env {
    let env = Env::ldap(slapd, LIVE, rest);
    std::fs::write(env.dir.path().join("print.whsec"), format!("{SECRET}\n")).unwrap();
    let hook = format!(
        "[[server.webhooks]]\nname = \"print\"\nurl = \"{url}\"\nsecret_file = \"print.whsec\"\ntimeout_secs = 1\nmax_retry_secs = 2\n{hook_extra}\n"
    );
    let server = server_section(&env, &hook);
    env.edit_config(|c| format!("{c}\n{server}"));
    env
}

/// An LDAP source on `slapd` (`source_extra` in its table), served.
fn served(slapd: &Slapd, source_extra: &str, rest: &str) -> Env {
    let env = Env::ldap(slapd, source_extra, rest);
    let server = server_section(&env, "");
    env.edit_config(|c| format!("{c}\n{server}"));
    env
}

/// slapd's school, served live, its first (full) read done. Dropped in
/// this order: the service, its folder, the directory.
fn live_school() -> (Service, Env, Slapd) {
    let slapd = Slapd::start();
    school(&slapd);
    let env = served(&slapd, LIVE, "");
    let svc = Service::start(&env);
    wait_state(&svc, "live", 20);
    wait_user(&svc, "carol", "synced", |u| u["status"] == "active");
    (svc, env, slapd)
}

/// Waits until `GET /api/live` says `state` for the source, then returns it.
pub fn wait_state(svc: &Service, state: &str, secs: u64) -> Value {
    let t0 = Instant::now();
    loop {
        let (s, v) = svc.get("/api/live", READER);
        assert_eq!(s, 200, "{v}");
        let src = v["sources"][0].clone();
        if src["state"] == state {
            return src;
        }
        assert!(t0.elapsed() < Duration::from_secs(secs), "never {state}: {v}\n{}", svc.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the store's user `name` satisfies `ok`.
pub fn wait_user(svc: &Service, name: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (s, u) = svc.get(&format!("/api/users/{name}"), READER);
        if s == 200 && ok(&u) {
            return u;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "{name} never {what}: {u}\n{}", svc.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn actions_of<'a>(changes: &'a [Value], name: &str) -> Vec<&'a str> {
    changes.iter().filter(|c| c["name"] == name).map(|c| c["action"].as_str().unwrap()).collect()
}

pub fn runs(svc: &Service) -> Vec<Value> {
    let (s, v) = svc.get("/api/runs?limit=1000", READER);
    assert_eq!(s, 200, "{v}");
    v["runs"].as_array().unwrap().clone()
}

#[test]
fn directory_changes_reach_the_store_and_the_webhook_without_a_scheduled_run() {
    let slapd = Slapd::start();
    school(&slapd);
    let rx = Receiver::start();
    let env = live_env(&slapd, &rx.url(), "start = \"beginning\"", "[safety]\nmax_delete_percent = 60\n");
    let svc = Service::start(&env);
    let live = wait_state(&svc, "live", 20);
    assert_eq!(live["channel"], "RFC 4533 refreshAndPersist (syncprov)", "{live}");
    // No saved position: a full run first, its creates delivered from the beginning.
    rx.wait_for(20, "the first run's creates", |c| {
        ["alice", "bob", "carol"].iter().all(|n| actions_of(c, n) == ["create"])
    });

    slapd.modify(&person("dave", "Dave Diaz", ""));
    wait_user(&svc, "dave", "created", |u| u["status"] == "active");
    rx.wait_for(10, "dave's create", |c| actions_of(c, "dave") == ["create"]);

    slapd
        .modify(&format!("dn: uid=bob,ou=people,{SUFFIX}\nchangetype: modify\nreplace: mail\nmail: bob@new.example\n"));
    wait_user(&svc, "bob", "updated", |u| u["email"] == "bob@new.example");
    slapd.modify(&format!("dn: uid=carol,ou=people,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=caro\ndeleteoldrdn: 1\n"));
    wait_user(&svc, "caro", "renamed", |u| u["status"] == "active");
    slapd.modify(&format!(
        "dn: cn=Students,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=dave,ou=people,{SUFFIX}\n"
    ));
    wait_user(&svc, "dave", "in Students", |u| u["groups"] == serde_json::json!(["Students"]));
    slapd.modify(&format!("dn: uid=dave,ou=people,{SUFFIX}\nchangetype: delete\n"));
    wait_user(&svc, "dave", "disabled", |u| u["status"] == "disabled");

    let got = rx.wait_for(10, "every change", |c| actions_of(c, "dave").contains(&"disable"));
    assert!(actions_of(&got, "bob").contains(&"update"), "{got:#?}");
    assert!(actions_of(&got, "caro").contains(&"rename"), "{got:#?}");
    assert!(got.iter().any(|c| c["action"] == "group_add" && c["name"] == "dave"), "{got:#?}");
    // In commit order, each once, each signed.
    let cursors: Vec<i64> = got.iter().map(|c| c["cursor"].as_i64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "in order, no repeats: {cursors:?}");
    for d in rx.deliveries() {
        assert!(signature_holds(&d), "a valid Standard Webhooks signature: {d:?}");
        assert!(d.json()["changes"].as_array().unwrap().len() <= 100);
    }
    // Every run was a live one: no schedule, no API ask.
    let all = runs(&svc);
    assert!(all.iter().all(|r| r["trigger"] == "live"), "{all:#?}");
    assert!(all.iter().any(|r| r["mode"] == "live"), "{all:#?}");
    assert!(all.iter().all(|r| r["mode"] == "live" || r["mode"] == "full"), "{all:#?}");
    let (_, hooks) = svc.get("/api/webhooks", READER);
    let h = &hooks["webhooks"][0];
    assert_eq!((h["name"].as_str(), h["failures"].as_u64()), (Some("print"), Some(0)), "{hooks}");
    assert_eq!(h["cursor"].as_i64(), cursors.last().copied(), "{hooks}");
    assert!(!hooks.to_string().contains("MfKQ9r8"), "the secret is never shown: {hooks}");
    let (_, _, metrics) = svc.call("GET", "/metrics", None, None);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(metrics.contains("dirsync_live_state{source=\"corp\",state=\"live\"} 1"), "{metrics}");
    assert!(metrics.contains("dirsync_webhook_lag{webhook=\"print\"} 0"), "{metrics}");
    assert!(!svc.log().contains("MfKQ9r8"), "the secret is never logged");
    assert_eq!(svc.stop(10), 0);
}

#[test]
fn a_burst_of_a_thousand_changes_is_applied_in_a_few_runs() {
    let (svc, _env, slapd) = live_school();
    let before = runs(&svc).len();
    let ldif: String = (0..1000).map(|i| person(&format!("burst{i:04}"), &format!("Burst {i}"), "")).collect();
    slapd.modify(&ldif);
    wait_user(&svc, "burst0999", "created", |u| u["status"] == "active");
    let t0 = Instant::now();
    loop {
        let (_, v) = svc.get("/api/users?limit=1000&q=burst", READER);
        if v["users"].as_array().map(Vec::len) == Some(1000) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let made = runs(&svc).len() - before;
    assert!((1..=10).contains(&made), "1,000 changes in {made} runs, not one run each");
}

#[test]
fn a_restarted_server_is_followed_again_and_what_changed_meanwhile_arrives() {
    let (svc, _env, slapd) = live_school();
    slapd.stop();
    let down = wait_state(&svc, "reconnecting", 60);
    assert!(down["reason"].as_str().is_some_and(|r| !r.is_empty()), "{down}");
    // Wait for a long backoff, so the change below is made while dirsync
    // is still away.
    let t0 = Instant::now();
    loop {
        let (_, v) = svc.get("/api/live", READER);
        let next = v["sources"][0]["next_try"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if next.is_some_and(|t| t.signed_duration_since(chrono::Utc::now()).num_milliseconds() > 3000) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    slapd.restart();
    slapd.modify(&person("erin", "Erin Early", ""));
    let (_, v) = svc.get("/api/live", READER);
    assert_eq!(v["sources"][0]["state"], "reconnecting", "the change was made while dirsync was away: {v}");
    wait_state(&svc, "live", 30);
    wait_user(&svc, "erin", "created after the reconnection", |u| u["status"] == "active");
    assert!(runs(&svc).iter().all(|r| r["trigger"] == "live"));
}

#[test]
fn a_stale_cookie_falls_back_to_a_full_read() {
    let slapd = Slapd::start();
    school(&slapd);
    let env = served(&slapd, LIVE, "");
    let (code, out) = env.sync(&[]);
    assert_eq!(code, 0, "{out}");
    // A cookie the server cannot continue (from its future: a restored
    // backup of the directory).
    env.rewrite_saved_state(|_| {
        let c = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b"rid=000,csn=20991231000000.000000Z#000000#000#000000",
        );
        format!("{{\"users\":\"{c}\",\"groups\":\"{c}\"}}")
    });
    slapd.modify(&person("fred", "Fred Fresh", ""));
    let svc = Service::start(&env);
    wait_user(&svc, "fred", "read", |u| u["status"] == "active");
    wait_state(&svc, "live", 20);
    let all = runs(&svc);
    assert!(all.iter().any(|r| r["mode"] == "full" && r["trigger"] == "live"), "{all:#?}");
}

#[test]
fn a_failed_delivery_is_sent_again_under_the_same_id_after_a_restart_of_dirsync() {
    let slapd = Slapd::start();
    school(&slapd);
    let rx = Receiver::start();
    // Two 500s and a stall past the timeout, then the receiver accepts.
    rx.script(&[Reply::Status(500), Reply::Status(503), Reply::Stall(Duration::from_millis(1500))]);
    let env = live_env(&slapd, &rx.url(), "start = \"beginning\"", "");
    let svc = Service::start(&env);
    let t0 = Instant::now();
    while rx.deliveries().len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", svc.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, hooks) = svc.get("/api/webhooks", READER);
    assert!(hooks["webhooks"][0]["failures"].as_u64() >= Some(1), "{hooks}");
    assert!(hooks["webhooks"][0]["last_error"].as_str().unwrap_or_default().contains("HTTP 50"), "{hooks}");
    // dirsync stops before the batch gets through, and starts again.
    assert_eq!(svc.stop(10), 0);
    let svc = Service::start(&env);
    let got = rx.wait_for(20, "the first batch", |c| !c.is_empty());
    let d = rx.deliveries();
    assert_eq!(d.len(), 4, "500, 503, a stall past the timeout, then 200: {d:#?}");
    assert!(d[2].stalled && !d[3].stalled && d[3].answered == 200);
    for again in &d {
        assert_eq!(again.id, d[0].id, "every try of one batch, across the restart, has one id");
        assert_eq!(again.body, d[0].body, "and the same body");
        assert!(signature_holds(again));
    }
    assert!(d.windows(2).all(|w| w[0].timestamp <= w[1].timestamp), "each try has its own timestamp");
    assert!(["alice", "bob", "carol"].iter().all(|n| actions_of(&got, n) == ["create"]), "none lost: {got:#?}");
    let t0 = Instant::now();
    loop {
        let (_, h) = svc.get("/api/webhooks", READER);
        let w = &h["webhooks"][0];
        if w["failures"] == 0 && w["lag"] == 0 && w["cursor"] == got.last().unwrap()["cursor"] {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "the cursor moves past the batch: {h}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(svc);
}

#[test]
fn a_receiver_down_then_up_gets_every_change_in_order_and_only_what_it_subscribes_to() {
    let slapd = Slapd::start();
    school(&slapd);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let env = live_env(&slapd, &url, "start = \"beginning\"\nevents = [\"user\", \"membership\"]", "");
    let svc = Service::start(&env);
    wait_state(&svc, "live", 20);
    wait_user(&svc, "carol", "synced", |u| u["status"] == "active");
    for i in 0..5 {
        slapd.modify(&person(&format!("late{i}"), &format!("Late {i}"), ""));
        wait_user(&svc, &format!("late{i}"), "created", |u| u["status"] == "active");
    }
    let t0 = Instant::now();
    loop {
        let (_, h) = svc.get("/api/webhooks", READER);
        if h["webhooks"][0]["failures"].as_u64() >= Some(2) {
            assert!(h["webhooks"][0]["last_error"].as_str().unwrap().contains("could not be reached"), "{h}");
            assert!(h["webhooks"][0]["next_try"].is_string(), "{h}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{h}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rx = Receiver::start_on(port);
    let got = rx.wait_for(20, "every user", |c| (0..5).all(|i| actions_of(c, &format!("late{i}")) == ["create"]));
    let cursors: Vec<i64> = got.iter().map(|c| c["cursor"].as_i64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert!(
        got.iter().all(|c| !c["action"].as_str().unwrap().starts_with("group_create")),
        "no group events: {got:#?}"
    );
    assert!(got.iter().any(|c| c["action"] == "group_add" || c["groups"].as_array().is_some_and(|g| !g.is_empty())));
    drop(svc);
}

#[test]
fn a_stream_of_deletions_past_the_hourly_threshold_holds_the_source_until_approved() {
    let slapd = Slapd::start();
    school(&slapd);
    for i in 0..7 {
        slapd.modify(&person(&format!("pupil{i}"), &format!("Pupil {i}"), ""));
    }
    let limits = format!("{LIVE}[sources.safety]\nmax_delete_count = 2\n");
    let env = served(&slapd, &limits, "[safety]\nmax_delete_percent = 100\n");
    let svc = Service::start(&env);
    wait_state(&svc, "live", 20);
    wait_user(&svc, "pupil6", "synced", |u| u["status"] == "active");
    for i in 0..2 {
        slapd.modify(&format!("dn: uid=pupil{i},ou=people,{SUFFIX}\nchangetype: delete\n"));
        wait_user(&svc, &format!("pupil{i}"), "disabled", |u| u["status"] == "disabled");
    }
    // The third within the hour crosses max_delete_count = 2: held.
    slapd.modify(&format!("dn: uid=pupil2,ou=people,{SUFFIX}\nchangetype: delete\n"));
    let held = wait_state(&svc, "held", 15);
    assert!(held["reason"].as_str().unwrap().contains("approves"), "{held}");
    assert_eq!(svc.get("/api/users/pupil2", READER).1["status"], "active", "nothing applied while held");
    let blocked = runs(&svc).into_iter().find(|r| r["status"] == "blocked").expect("a blocked live run");
    assert_eq!(blocked["mode"], "live", "{blocked}");
    assert!(
        blocked["message"].as_str().unwrap_or_default().contains("within the last hour")
            || blocked.to_string().contains("within the last hour"),
        "{blocked}"
    );
    // Live changes wait; the admin approves the run.
    let (s, _, v) = svc.call("POST", &format!("/api/runs/{}/approve", blocked["id"]), Some(ADMIN_TOKEN), None);
    assert_eq!(s, 202, "{v}");
    wait_user(&svc, "pupil2", "disabled once approved", |u| u["status"] == "disabled");
    wait_state(&svc, "live", 15);
    slapd.modify(&person("newcomer", "New Comer", ""));
    wait_user(&svc, "newcomer", "created: live again", |u| u["status"] == "active");
}

#[test]
fn a_server_without_a_change_channel_is_polled() {
    let slapd = Slapd::start_without_syncprov();
    school(&slapd);
    let env = served(&slapd, "[sources.live]\nenabled = true\npoll_secs = 1\n", "");
    let svc = Service::start(&env);
    let polling = wait_state(&svc, "polling", 20);
    assert!(polling["reason"].as_str().unwrap().contains("no change channel"), "{polling}");
    assert!(polling["next_try"].is_string(), "{polling}");
    wait_user(&svc, "carol", "synced", |u| u["status"] == "active");
    slapd.modify(&person("polly", "Polly Poll", ""));
    wait_user(&svc, "polly", "found by a poll", |u| u["status"] == "active");
    // Polls that find nothing leave no record behind.
    let n = runs(&svc).len();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = runs(&svc);
    assert!(all.len() <= n + 1, "quiet polls are not recorded: {all:#?}");
}

/// Each instance's view of the source's live state.
fn state_of(svc: &Service) -> String {
    svc.get("/api/live", READER).1["sources"][0]["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn instances_sharing_a_store_hold_one_live_connection_and_deliver_each_change_once() {
    let slapd = Slapd::start();
    school(&slapd);
    let rx = Receiver::start();
    let env = live_env(&slapd, &rx.url(), "start = \"beginning\"", "");
    let a = Service::start(&env);
    wait_state(&a, "live", 20);
    let b = Service::start(&env);
    wait_state(&b, "standby", 20);
    let (_, hb) = b.get("/api/webhooks", READER);
    assert_eq!(hb["webhooks"][0]["state"], "standby", "{hb}");
    slapd.modify(&person("solo", "Solo Once", ""));
    let got = rx.wait_for(20, "solo's create", |c| actions_of(c, "solo") == ["create"]);
    let cursors: Vec<i64> = got.iter().map(|c| c["cursor"].as_i64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "each change once: {cursors:?}");
    // The holder stops: the other takes over the connection and the webhook.
    assert_eq!(a.stop(10), 0);
    wait_state(&b, "live", 30);
    slapd.modify(&person("after", "After Failover", ""));
    wait_user(&b, "after", "created by the other instance", |u| u["status"] == "active");
    rx.wait_for(30, "after's create", |c| actions_of(c, "after") == ["create"]);
    assert_eq!(state_of(&b), "live");
}

#[test]
fn the_dashboard_shows_each_sources_live_state_and_each_webhooks_deliveries() {
    use crate::page::{page_env, Browser, ADMIN_PASSWORD};
    let slapd = Slapd::start();
    let env = page_env(&slapd);
    std::fs::write(env.dir.path().join("print.whsec"), format!("{SECRET}\n")).unwrap();
    // A receiver that is down: its failures are on the page.
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    env.edit_config(|c| {
        let hook = format!("[[server.webhooks]]\nname = \"print\"\nurl = \"{url}\"\nsecret_file = \"print.whsec\"\nstart = \"beginning\"\nmax_retry_secs = 1\n\n");
        c.replacen("[sources.fields]", &format!("{LIVE}[sources.fields]"), 1).replacen("[[server.clients]]", &format!("{hook}[[server.clients]]"), 1)
    });
    let svc = Service::start(&env);
    wait_state(&svc, "live", 20);
    let t0 = Instant::now();
    while svc.get("/api/webhooks", READER).1["webhooks"][0]["failures"].as_u64() < Some(1) {
        assert!(t0.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut b = Browser::new(&svc.base);
    b.sign_in("admin", ADMIN_PASSWORD);
    let p = b.get("/");
    assert_eq!(p.status, 200);
    assert!(p.body.contains("RFC 4533 refreshAndPersist (syncprov)"), "the source's channel: {}", p.body);
    assert!(p.body.contains(">live<"), "its state");
    assert!(p.body.contains("Webhooks") && p.body.contains(&url), "the webhook");
    assert!(p.body.contains("could not be reached"), "its last error");
    assert!(!p.body.contains("MfKQ9r8"), "never the secret");
}

#[test]
fn sighup_reloads_the_live_channels() {
    let (svc, env, slapd) = live_school();
    env.edit_config(|c| c.replace("[sources.live]\nenabled = true\n", "[sources.live]\nenabled = false\n"));
    svc.signal("-HUP");
    let off = wait_state(&svc, "off", 20);
    assert!(off["reason"].as_str().unwrap().contains("not enabled"), "{off}");
    env.edit_config(|c| c.replace("[sources.live]\nenabled = false\n", "[sources.live]\nenabled = true\n"));
    svc.signal("-HUP");
    wait_state(&svc, "live", 20);
    slapd.modify(&person("hup", "Hup Reloaded", ""));
    wait_user(&svc, "hup", "created after the reload", |u| u["status"] == "active");
    assert_eq!(svc.stop(10), 0, "SIGTERM closes the live channel and stops");
}
