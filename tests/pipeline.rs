//! The sync pipeline as a library, with fake sources (what no real server
//! does on demand) and the real SQLite store: a current-thread runtime, a
//! source failing half-way, a delta that claims everybody is gone, and a
//! cancelled sync that must stop its source.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dirsync::config::{Config, SourceConfig};
use dirsync::engine::history::RunStatus;
use dirsync::engine::sync::{run_with, Opener, SyncOptions};
use dirsync::model::{AttrValue, Delta, EntryKind, RawEntry};
use dirsync::sources::{EntrySink, FetchCounts, Fetched, Source, SourceError};
use dirsync::store::sqlite::SqliteStore;
use dirsync::store::Store;

/// What the fake source does on its next fetch.
#[derive(Clone)]
enum Script {
    /// These users, in full; `next_state` saved for an incremental next time.
    Full(Vec<&'static str>),
    /// Delivers these users, then fails.
    FailAfter(Vec<&'static str>),
    /// A delta: no entries, these users deleted.
    Deleted(Vec<&'static str>),
    /// Delivers entries forever; sets the flag when its future is dropped.
    Endless(Arc<AtomicBool>),
}

struct Fake {
    name: String,
    script: Arc<Mutex<Script>>,
}

fn user(uid: &str) -> RawEntry {
    let mut e = RawEntry::new(format!("uid={uid},ou=people,dc=t"));
    e.push("uid", AttrValue::Text(uid.into()));
    e.push("cn", AttrValue::Text(format!("{uid} name")));
    e.push("entryUUID", AttrValue::Text(format!("id-{uid}")));
    e
}

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Source for Fake {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, sink: EntrySink, since: Option<&str>) -> Result<Fetched, SourceError> {
        let script = self.script.lock().unwrap().clone();
        let mut b = sink.batcher();
        let mut counts = FetchCounts::default();
        let state = Some("position-1".to_string());
        match script {
            Script::Full(users) => {
                for u in users {
                    b.push(EntryKind::User, user(u)).await.map_err(|m| SourceError::new(&self.name, m))?;
                    counts.users += 1;
                }
                b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
                Ok(Fetched { counts, delta: None, next_state: state, ..Fetched::default() })
            }
            Script::FailAfter(users) => {
                for u in users {
                    b.push(EntryKind::User, user(u)).await.map_err(|m| SourceError::new(&self.name, m))?;
                }
                b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
                Err(SourceError::new(&self.name, "connection lost mid-search"))
            }
            Script::Deleted(users) => {
                assert_eq!(since, Some("position-1"), "the saved position is offered");
                let delta =
                    Delta { deleted_users: users.iter().map(|u| format!("id-{u}")).collect(), ..Delta::default() };
                Ok(Fetched { counts, delta: Some(delta), next_state: Some("position-2".into()), ..Fetched::default() })
            }
            Script::Endless(dropped) => {
                let _guard = SetOnDrop(dropped);
                for i in 0.. {
                    b.push(EntryKind::User, user(&format!("u{i}")))
                        .await
                        .map_err(|m| SourceError::new(&self.name, m))?;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                unreachable!()
            }
        }
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    cfg: Config,
    store: SqliteStore,
    script: Arc<Mutex<Script>>,
}

const FAKE: &str = "[store]\npath = \"s.db\"\n[[sources]]\nname = \"fake\"\ntype = \"ldif\"\npath = \"unused.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n";

impl Setup {
    fn new() -> Setup {
        Setup::with(FAKE)
    }

    fn with(text: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::parse(text, &dir.path().join("dirsync.toml")).unwrap();
        let store = SqliteStore::open(cfg.store.sqlite_path().unwrap()).unwrap();
        Setup { _dir: dir, cfg, store, script: Arc::new(Mutex::new(Script::Full(vec![]))) }
    }

    fn opener(&self) -> Opener {
        let script = self.script.clone();
        Arc::new(move |c: &SourceConfig| {
            Box::new(Fake { name: c.name.clone(), script: script.clone() }) as Box<dyn Source>
        })
    }

    async fn sync(&mut self, script: Script, force: bool) -> dirsync::engine::sync::SyncOutcome {
        *self.script.lock().unwrap() = script;
        let opts = SyncOptions { force, sources: vec!["fake".into()], ..SyncOptions::default() };
        let open = self.opener();
        run_with(&self.cfg, &self.store, &opts, Arc::new(AtomicU64::new(0)), open).await.unwrap()
    }

    fn active(&mut self) -> usize {
        self.store.snapshot().unwrap().users.iter().filter(|u| u.status == dirsync::model::Status::Active).count()
    }
}

#[tokio::test] // a current-thread runtime: the pipeline must not need another thread
async fn a_sync_runs_on_a_current_thread_runtime() {
    let mut s = Setup::new();
    let out = s.sync(Script::Full(vec!["amy", "bob", "cat"]), false).await;
    assert_eq!((out.status, out.counts.created), (RunStatus::Ok, 3), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_failing_half_way_changes_nothing() {
    let mut s = Setup::new();
    s.sync(Script::Full(vec!["amy", "bob", "cat"]), false).await;
    let out = s.sync(Script::FailAfter(vec!["amy"]), true).await;
    assert_eq!(out.status, RunStatus::Failed, "{out:?}");
    assert!(out.message.as_deref().unwrap().contains("connection lost mid-search"), "{out:?}");
    assert_eq!(s.active(), 3);
}

#[tokio::test]
async fn a_delta_that_claims_everybody_is_gone_is_refused_even_forced() {
    let mut s = Setup::new();
    s.sync(Script::Full(vec!["amy", "bob", "cat"]), false).await;
    let out = s.sync(Script::Deleted(vec!["amy", "bob", "cat"]), true).await;
    assert_eq!((out.status, out.mode.as_str()), (RunStatus::Blocked, "incremental"), "{out:?}");
    assert!(out.blocked_by.iter().all(|b| !b.forceable), "{out:?}");
    assert_eq!(s.active(), 3);
    // One of three is an ordinary delta: applied (33% is over the 20% default, so forced).
    let out = s.sync(Script::Deleted(vec!["cat"]), true).await;
    assert_eq!((out.status, out.counts.disabled), (RunStatus::Ok, 1), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_sync_stops_its_source() {
    let mut s = Setup::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let sync = Box::pin(s.sync(Script::Endless(dropped.clone()), false));
    assert!(tokio::time::timeout(Duration::from_millis(300), sync).await.is_err(), "the endless source never ends");
    for _ in 0..100 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dropped.load(Ordering::SeqCst), "the source's read was stopped when the sync was dropped");
}

#[tokio::test]
async fn users_set_takes_part_in_the_optimistic_check() {
    let mut s = Setup::new();
    s.sync(Script::Full(vec!["amy"]), false).await;
    let before = s.store.snapshot().unwrap().generation;
    let v = dirsync::engine::writeback::SetValue::Value("5.00".into());
    dirsync::engine::writeback::set_field(&s.cfg, &s.store, "amy", "credit", v).unwrap();
    let snap = s.store.snapshot().unwrap();
    assert_eq!(snap.generation, before + 1, "a sync planned before the change conflicts at apply");
    assert_eq!(snap.users[0].fields.get("credit"), Some("5.00"));
}

#[tokio::test]
async fn a_push_failing_after_the_commit_leaves_the_run_applied() {
    // A second source with write-back (never read here): the push at the end
    // of the run reads the queue, which this test has removed.
    let text = format!(
        "{FAKE}[[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:9\"\nbase_dn = \"dc=t\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n[sources.writeback]\nenabled = true\n"
    );
    let mut s = Setup::with(&text);
    s.sync(Script::Full(vec!["amy"]), false).await;
    // A store damaged below its API (the only way to break one table): SQL.
    rusqlite::Connection::open(s.cfg.store.sqlite_path().unwrap())
        .unwrap()
        .execute_batch("DROP TABLE writeback")
        .unwrap();
    let out = s.sync(Script::Full(vec!["amy", "bob"]), false).await;
    assert_eq!((out.status, out.counts.created), (RunStatus::Ok, 1), "{out:?}");
    assert!(out.message.as_deref().unwrap_or("").contains("write-back push failed"), "{out:?}");
    let run = s.store.runs(1).unwrap().remove(0);
    assert_eq!((run.status, run.counts.created), (RunStatus::Ok, 1));
}
