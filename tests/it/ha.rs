//! Several `dirsync serve` instances on one PostgreSQL store and one slapd:
//! each schedule slot runs once across them, a killed instance's sync is
//! rolled back and taken over, PostgreSQL going down makes every instance
//! answer 503 until it is back (none exits), and the change feed read from
//! one instance while another applies is the audit trail, whole.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;
use crate::serve::{school, server_section, Service, READER, WRITER};
use dirsync::store::postgres::testing::fresh_database;

/// A config folder for one instance: an LDAP source at `ldap_url`, the
/// store at the database `db` (its password in a file), `rest` after the
/// source (a `[sources.schedule]`, say), and a `[server]` on a free port.
fn instance(ldap_url: &str, db: &str, rest: &str) -> Env {
    let env = Env::ldap_at(ldap_url, "", rest);
    let mut url = url::Url::parse(db).unwrap();
    std::fs::write(env.dir.path().join("pg.secret"), format!("{}\n", url.password().unwrap())).unwrap();
    url.set_password(None).unwrap();
    let server = server_section(&env, "");
    let store = format!("[store]\nurl = \"{url}\"\npassword_file = \"pg.secret\"\npool_size = 4\n");
    // The harness's [store] (whichever it is) gives way to this one.
    let text = std::fs::read_to_string(env.config()).unwrap();
    let (_, sources) = text.split_once("[[sources]]").unwrap();
    std::fs::write(env.config(), format!("{store}\n[[sources]]{sources}\n{server}")).unwrap();
    env
}

#[test]
fn three_instances_run_each_scheduled_slot_exactly_once() {
    let slapd = Slapd::start();
    school(&slapd);
    let db = fresh_database().url;
    let every = "[sources.schedule]\nfull = \"*/3 * * * * *\"\n";
    let envs: Vec<Env> = (0..3).map(|_| instance(&slapd.url(), &db, every)).collect();
    let services: Vec<Service> = envs.iter().map(Service::start).collect();
    let t0 = Instant::now();
    // A minute of slots: the clock is what is waited for here.
    while t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
    }
    for svc in services {
        assert_eq!(svc.stop(20), 0);
    }
    // Read once every instance has stopped: a slot's run another instance
    // already ran may still sit queued on a third until it gets the lease
    // and drops it (a stopped service marks such a run interrupted).
    let all: Vec<Value> =
        a_store(&envs[0]).runs(1000).unwrap().iter().map(|r| serde_json::to_value(r).unwrap()).collect();
    let mut per_slot: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in all.iter().filter(|r| r["trigger"] == "schedule") {
        per_slot.entry(r["slot"].as_str().expect("a scheduled run has its slot").to_string()).or_default().push(r);
    }
    assert!(per_slot.len() >= 15, "about 20 slots in a minute: {}", per_slot.len());
    for (slot, rs) in &per_slot {
        let finished: Vec<_> = rs.iter().filter(|r| r["status"] != "interrupted" && r["status"] != "queued").collect();
        assert_eq!(finished.len(), 1, "slot {slot} ran {} times: {rs:?}", finished.len());
        assert_eq!(finished[0]["status"], "ok", "{:?}", finished[0]);
        assert!(slot.ends_with('Z') && slot.len() >= 20, "RFC 3339: {slot}");
    }
    let instances: std::collections::BTreeSet<&str> = all.iter().filter_map(|r| r["instance"].as_str()).collect();
    assert!(instances.iter().all(|i| i.contains(':')), "host:port: {instances:?}");
    assert_eq!(all.iter().filter(|r| r["created"] == 3).count(), 1, "the users were created once");
}

#[test]
fn a_killed_instances_sync_rolls_back_and_another_takes_the_source_over_and_equal_asks_join_it() {
    let slapd = Slapd::start();
    school(&slapd);
    let db = fresh_database().url;
    // Instance A reads through a proxy that stalls mid-read; B reads slapd.
    let proxy = CutProxy::stalling(slapd.port, 300);
    let a = instance(&format!("ldap://127.0.0.1:{}", proxy.port), &db, "");
    let b = instance(&slapd.url(), &db, "");
    let mut svc_a = Service::start(&a);
    let svc_b = Service::start(&b);
    let (s, _, asked) = svc_a.call("POST", "/api/syncs", Some(WRITER), Some(json!({})));
    assert_eq!(s, 202, "{asked}");
    let id = asked["run_id"].as_i64().unwrap();
    // A holds the lease, reading: its run is running.
    let t0 = Instant::now();
    while svc_b.get(&format!("/api/runs/{id}"), READER).1["status"] != "running" {
        assert!(t0.elapsed() < Duration::from_secs(10), "A's run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The same ask through B joins A's run instead of queueing another.
    let (s, _, joined) = svc_b.call("POST", "/api/syncs", Some(WRITER), Some(json!({})));
    assert_eq!((s, joined["run_id"].as_i64()), (202, Some(id)), "{joined}");
    svc_a.child.kill().unwrap(); // SIGKILL mid-run
    svc_a.child.wait().unwrap();
    let run = svc_b.sync();
    assert_eq!((run["status"].as_str(), run["created"].as_u64()), (Some("ok"), Some(3)), "{run}");
    let (_, killed) = svc_b.get(&format!("/api/runs/{id}"), READER);
    assert_eq!(killed["status"], "interrupted", "{killed}");
    assert_eq!(killed["created"], 0, "nothing of it was applied: {killed}");
    // Nothing applied twice: one create per user in the audit trail.
    let (_, feed) = svc_b.get("/api/changes?limit=1000", READER);
    let creates = feed["changes"].as_array().unwrap().iter().filter(|c| c["action"] == "create").count();
    assert_eq!(creates, 3, "{feed}");
    assert_eq!(svc_b.stop(20), 0);
}

#[test]
fn postgresql_down_makes_every_instance_answer_503_until_it_is_back_and_none_exits() {
    // A durable cluster of this test's own: it is crashed and started again,
    // and keeps what was committed.
    let pg = PgCluster::start(&[("DURABLE", "1")]);
    let slapd = Slapd::start();
    school(&slapd);
    let db = pg.database("ha");
    let envs = [instance(&slapd.url(), &db, ""), instance(&slapd.url(), &db, "")];
    let mut services: Vec<Service> = envs.iter().map(Service::start).collect();
    assert_eq!(services[0].sync()["status"], "ok");
    // API load on both instances the whole time, from a thread of its own.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bases: Vec<String> = services.iter().map(|s| s.base.clone()).collect();
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _in_rt = rt.enter();
            let client = reqwest::Client::builder().timeout(Duration::from_secs(40)).build().unwrap();
            let mut seen = BTreeMap::<u16, u64>::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for base in &bases {
                    let r = rt.block_on(client.get(format!("{base}/api/users/alice")).bearer_auth(READER).send());
                    *seen.entry(r.unwrap().status().as_u16()).or_default() += 1;
                }
            }
            seen
        })
    };
    pg.script("stop");
    for svc in &services {
        wait_for(svc, "/readyz", None, 503);
        let (s, v) = svc.get("/api/users/alice", READER);
        assert_eq!((s, v["error"].as_str()), (503, Some("store_unavailable")), "{v}");
    }
    pg.script("resume");
    for svc in &services {
        wait_for(svc, "/api/users/alice", Some(READER), 200);
        wait_for(svc, "/readyz", None, 200);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = load.join().unwrap();
    assert!(seen.keys().all(|s| *s == 200 || *s == 503), "only 200 and 503 under load: {seen:?}");
    for svc in services.iter_mut() {
        assert!(svc.child.try_wait().unwrap().is_none(), "an instance exited:\n{}", svc.log());
    }
    // And they work on: a sync through the other instance.
    assert_eq!(services[1].sync()["status"], "ok");
    for svc in services {
        assert_eq!(svc.stop(20), 0);
    }
}

/// Polls `path` until it answers `want` (30 s at most).
fn wait_for(svc: &Service, path: &str, token: Option<&str>, want: u16) {
    let t0 = Instant::now();
    loop {
        let (s, _, v) = svc.call("GET", path, token, None);
        if s == want {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{path} never answered {want} (last {s}: {v})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_change_feed_read_from_one_instance_while_another_applies_is_the_audit_trail() {
    let slapd = Slapd::start();
    let mut ldif = String::new();
    for i in 0..1500 {
        ldif += &person(&format!("u{i:04}"), &format!("User {i}"), "");
    }
    slapd.modify(&ldif);
    let db = fresh_database().url;
    let (a, b) = (instance(&slapd.url(), &db, ""), instance(&slapd.url(), &db, ""));
    let (svc_a, svc_b) = (Service::start(&a), Service::start(&b));
    let (s, _, asked) = svc_a.call("POST", "/api/syncs", Some(WRITER), Some(json!({})));
    assert_eq!(s, 202);
    let id = asked["run_id"].as_i64().unwrap();
    // Read B's feed page by page while A's run goes on, and after it ended.
    let mut cursors: Vec<i64> = Vec::new();
    let mut cursor = 0;
    let mut done = false;
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(120), "the run or the feed never ended");
        let (s, page) = svc_b.get(&format!("/api/changes?since={cursor}&limit=100"), READER);
        assert_eq!(s, 200, "{page}");
        let changes = page["changes"].as_array().unwrap();
        cursors.extend(changes.iter().map(|c| c["cursor"].as_i64().unwrap()));
        cursor = page["next"].as_i64().unwrap_or(cursor);
        if changes.is_empty() {
            if done {
                break;
            }
            done = !matches!(
                svc_b.get(&format!("/api/runs/{id}"), READER).1["status"].as_str(),
                Some("queued" | "running")
            );
        }
    }
    let trail: Vec<i64> = a_store(&a).changes(0, 1_000_000).unwrap().iter().map(|c| c.cursor).collect();
    assert_eq!(trail.len(), 1500, "one create per user");
    assert_eq!(cursors, trail, "no change skipped or repeated");
    drop((svc_a, svc_b));
}

fn a_store(env: &Env) -> std::sync::Arc<dyn dirsync::store::Store> {
    let cfg = dirsync::config::Config::load(&env.config()).unwrap();
    dirsync::store::open(&cfg.store).unwrap()
}
