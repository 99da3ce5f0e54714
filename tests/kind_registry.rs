//! A source kind added from outside the crate: its settings, its source and
//! one registration line, nothing else. The config reads its section (and
//! refuses what it has no use for), and a real sync into SQLite runs through
//! it with the pipeline's default opener. Being in-process and scriptable,
//! the kind also drives the service's run queue: a field set while a run
//! reads its source makes that run fail at apply, and the queue runs it again.

use std::any::Any;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_trait::async_trait;
use dirsync::config::{Config, ConfigError, DirectoryQuery, Section, SourceConfig};
use dirsync::engine::history::RunStatus;
use dirsync::engine::sync::SyncOptions;
use dirsync::model::{AttrValue, EntryKind, RawEntry};
use dirsync::sources::kind::{Kind, Registration};
use dirsync::sources::{EntrySink, FetchCounts, Fetched, Source, SourceError, KINDS};
use dirsync::store::sqlite::SqliteStore;
use dirsync::store::Store;

/// `type = "roster"`: users listed in the config itself, with columns named
/// like a spreadsheet's headers.
#[derive(Debug)]
struct Roster {
    users: Vec<String>,
    query: DirectoryQuery,
}

const ROSTER: Registration = Registration { types: &["roster"], keys: &["users"], parse: parse_roster };

fn parse_roster(_type: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let users = s.strings("users")?.ok_or_else(|| s.err("users", "missing (expected a list of names)"))?;
    let query = DirectoryQuery {
        // Lower-case, as entries' attribute names are.
        id_attribute: "employee id".into(),
        group_name_attribute: "group name".into(),
        member_attribute: "members".into(),
        ..DirectoryQuery::default()
    };
    Ok(Box::new(Roster { users, query }))
}

impl Kind for Roster {
    fn type_name(&self) -> &'static str {
        "roster"
    }
    fn place(&self) -> String {
        format!("{} names in the config", self.users.len())
    }
    fn query(&self) -> &DirectoryQuery {
        &self.query
    }
    fn check_field_source(&self, name: &str) -> Result<(), String> {
        // Names arrive lower-cased: columns match without regard to case.
        match name {
            "login" | "full name" => Ok(()),
            other => Err(format!("\"{other}\" is not a roster column (expected \"Login\" or \"Full Name\")")),
        }
    }
    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(RosterSource { name: cfg.name.clone(), users: self.users.clone() })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct RosterSource {
    name: String,
    users: Vec<String>,
}

#[async_trait]
impl Source for RosterSource {
    fn name(&self) -> &str {
        &self.name
    }
    async fn fetch(&self, sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        // Something the test wants done while the source is being read.
        // (Only the source it is meant for: tests run side by side.)
        let hook = {
            let mut hooks = DURING_READ.lock().unwrap();
            hooks.iter().position(|(name, _)| *name == self.name).map(|i| hooks.remove(i))
        };
        if let Some((_, h)) = hook {
            tokio::task::spawn_blocking(h).await.unwrap();
        }
        let mut b = sink.batcher();
        for u in &self.users {
            let mut e = RawEntry::new(format!("roster:{u}"));
            e.push("Login", AttrValue::Text(u.clone()));
            e.push("Full Name", AttrValue::Text(format!("{u} from the roster")));
            e.push("Employee ID", AttrValue::Text(format!("r-{u}")));
            b.push(EntryKind::User, e).await.map_err(|m| SourceError::new(&self.name, m))?;
        }
        b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        let counts = FetchCounts { users: self.users.len() as u64, groups: 0 };
        Ok(Fetched { counts, ..Fetched::default() })
    }
}

type Hook = Box<dyn FnOnce() + Send>;
/// Hooks by source name (tests run side by side, each with its own source).
static DURING_READ: std::sync::Mutex<Vec<(String, Hook)>> = std::sync::Mutex::new(Vec::new());

const TEXT: &str = "[store]\npath = \"s.db\"\n[[sources]]\nname = \"staff\"\ntype = \"roster\"\nusers = [\"amy\", \"bob\"]\n[sources.fields]\nusername = \"Login\"\nfull_name = \"Full Name\"\n";

fn parse(text: &str, dir: &Path) -> Result<Config, ConfigError> {
    Config::parse_with(text, &dir.join("dirsync.toml"), &[KINDS, &[ROSTER]].concat())
}

#[tokio::test]
async fn a_kind_registered_outside_the_crate_is_parsed_opened_and_synced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = parse(TEXT, dir.path()).unwrap();
    assert_eq!(cfg.sources[0].kind.type_name(), "roster");
    assert_eq!(cfg.sources[0].settings::<Roster>().unwrap().users, ["amy", "bob"]);
    let store = SqliteStore::open(cfg.store.sqlite_path().unwrap()).unwrap();
    let out =
        dirsync::engine::sync::run(&cfg, &store, &SyncOptions::default(), Arc::new(AtomicU64::new(0))).await.unwrap();
    assert_eq!((out.status, out.counts.created), (RunStatus::Ok, 2), "{out:?}");
    let snap = store.snapshot().unwrap();
    let amy = snap.users.iter().find(|u| &*u.username == "amy").unwrap();
    assert_eq!((&*amy.external_id, amy.fields.get("full_name")), ("r-amy", Some("amy from the roster")));
}

#[test]
fn without_its_registration_the_type_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::parse(TEXT, &dir.path().join("dirsync.toml")).unwrap_err().to_string();
    assert!(
        e.contains(
            "sources[0].type: expected \"ldap\", \"ad\", \"ldif\", \"program\", \"unix\", \"csv\", \"graph\", \"google\" or \"scim\", got \"roster\""
        ),
        "{e}"
    );
    let e = parse(&TEXT.replace("type = \"roster\"", "type = \"nope\""), dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("expected \"ldap\", \"ad\", \"ldif\", \"program\", \"unix\", \"csv\", \"graph\", \"google\", \"scim\" or \"roster\", got \"nope\""),
        "{e}"
    );
}

#[test]
fn the_kind_decides_which_keys_and_fields_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    // Another kind's key, a typo, and what the kind cannot do.
    let cases = [
        ("users = [", "url = \"ldap://h\"\nusers = [", "sources[0].url: is not used by type = \"roster\""),
        ("users = [", "userz = 1\nusers = [", "sources[0].userz: unknown key"),
        ("users = [", "import_disabled = true\nusers = [", "sources[0].import_disabled: is not used by type = \"roster\""),
        ("[sources.fields]", "[sources.incremental]\n[sources.fields]", "sources[0].incremental: is not used by type = \"roster\""),
        ("full_name = \"Full Name\"", "full_name = \"cn\"", "sources[0].fields.full_name: \"cn\" is not a roster column"),
        (
            "full_name = \"Full Name\"",
            "full_name = \"Full Name\"\ncode = { attribute = \"Login\", owner = \"app\" }",
            "sources[0].fields.code.owner: owner = \"app\" needs a source dirsync can write the value back to; type = \"roster\" has none",
        ),
        ("users = [\"amy\", \"bob\"]", "users = \"amy\"", "sources[0].users: expected a list of strings"),
    ];
    for (from, to, want) in cases {
        let e = parse(&TEXT.replace(from, to), dir.path()).unwrap_err().to_string();
        assert!(e.contains(want), "{to} → {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_set_during_a_queued_run_is_kept_and_the_run_is_done_again() {
    use dirsync::serve::runner::{RunRequest, Runner, Trigger};
    let dir = tempfile::tempdir().unwrap();
    let cfg = parse(&TEXT.replace("name = \"staff\"", "name = \"queued\""), dir.path()).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(cfg.store.sqlite_path().unwrap()).unwrap());
    let handle = Arc::new(std::sync::RwLock::new(Arc::new(cfg.clone())));
    let runner = Runner::new(handle, store.clone());
    let worker = tokio::spawn({
        let r = runner.clone();
        async move { r.work().await }
    });
    let req = || RunRequest::new(vec![], false, Trigger::Api);
    let wait = |n: usize| {
        let store = store.clone();
        async move {
            for _ in 0..200 {
                let runs = store.runs(100).unwrap();
                if runs.len() >= n
                    && runs.iter().all(|r| r.status != RunStatus::Queued && r.status != RunStatus::Running)
                {
                    return runs;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("runs did not finish: {:?}", store.runs(100).unwrap());
        }
    };
    runner.submit(req()).await.unwrap();
    wait(1).await;
    // While the next run reads its source, the application sets a field.
    let (c, s) = (cfg.clone(), store.clone());
    DURING_READ.lock().unwrap().push((
        "queued".into(),
        Box::new(move || {
            // The sync reads the store's snapshot while its sources are read;
            // the change must come after that snapshot for the run to see it
            // as a conflict. Nothing outside the store tells when that is, so
            // leave it ample time (it takes milliseconds for two users).
            std::thread::sleep(std::time::Duration::from_millis(750));
            let v = dirsync::engine::writeback::SetValue::Value("5.00".into());
            dirsync::engine::writeback::set_field(&c, &*s, "amy", "credit", v).unwrap();
        }),
    ));
    runner.submit(req()).await.unwrap();
    let runs = wait(3).await; // newest first: the retry, the conflicted run, the first
    assert_eq!(runs[1].status, RunStatus::Failed, "{runs:?}");
    assert!(runs[1].message.as_deref().unwrap().contains("nothing was changed"), "{runs:?}");
    assert_eq!(runs[0].status, RunStatus::Ok, "run again at once: {runs:?}");
    let amy = store.user_by_name("amy").unwrap().unwrap();
    assert_eq!(amy.fields.get("credit"), Some("5.00"), "the field set meanwhile is kept");
    runner.stop();
    worker.await.unwrap();
}

/// Tries a store write (queueing a run, as the service does when asked for
/// one) while `source` is being read: whether it got through within a second.
fn probe_during_read(source: &str, store: Arc<dyn Store>) -> Arc<std::sync::Mutex<Option<bool>>> {
    let got = Arc::new(std::sync::Mutex::new(None));
    let g = got.clone();
    let hook: Hook = Box::new(move || {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(
                store
                    .queue_run(
                        &dirsync::engine::history::RunSources::new(["probe"]),
                        dirsync::engine::history::now(),
                        false,
                        &Default::default(),
                    )
                    .is_ok(),
            );
        });
        *g.lock().unwrap() = Some(rx.recv_timeout(std::time::Duration::from_secs(1)).unwrap_or(false));
    });
    DURING_READ.lock().unwrap().push((source.into(), hook));
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_run_that_asks_writes_early_and_holds_the_writer_while_it_reads() {
    for (name, early) in [("first-service", false), ("first-cli", true)] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = parse(&TEXT.replace("name = \"staff\"", &format!("name = \"{name}\"")), dir.path()).unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(cfg.store.sqlite_path().unwrap()).unwrap());
        let got = probe_during_read(name, store.clone());
        let opts = SyncOptions { early_writes: early, ..SyncOptions::default() };
        let out = dirsync::engine::sync::run(&cfg, &*store, &opts, Arc::new(AtomicU64::new(0))).await.unwrap();
        assert_eq!((out.status, out.counts.created), (RunStatus::Ok, 2), "{out:?}");
        let through = *got.lock().unwrap();
        match early {
            // The service's runs: its queue and API keep writing while a
            // first sync reads a slow directory.
            false => assert_eq!(through, Some(true), "a service run must leave the store writable while it reads"),
            // The CLI's first sync writes its users in its own transaction
            // while reading: other writes wait for it.
            true => assert_eq!(through, Some(false), "an early-writing run holds the writer"),
        }
    }
}

/// A free loopback port (bound and let go: the service binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_service_reloads_on_sighup_with_the_applications_own_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dirsync.toml");
    let port = free_port();
    std::fs::write(dir.path().join("t.token"), "reload-test-token-0123456789abcdef\n").unwrap(); // TOKEN below
    let server = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 1\n[[server.clients]]\nname = \"app\"\n\
         token_file = \"t.token\"\nscopes = [\"read\", \"sync\"]\n[schedule]\nfull = \"\"\nincremental = \"\"\n"
    );
    let text = |users: &str| {
        TEXT.replace("name = \"staff\"", "name = \"served\"").replace("[\"amy\", \"bob\"]", users) + &server
    };
    std::fs::write(&path, text("[\"amy\"]")).unwrap();
    let kinds = [KINDS, &[ROSTER]].concat();
    let cfg = Config::load_with(&path, &kinds).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(cfg.store.sqlite_path().unwrap()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let service = rt.spawn(dirsync::serve::serve_with(path.clone(), cfg, store.clone(), kinds));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    const TOKEN: &str = "reload-test-token-0123456789abcdef";
    let sync_and_names = || -> Option<Vec<String>> {
        rt.block_on(async {
            let r = http.post(format!("{base}/api/syncs")).bearer_auth(TOKEN).json(&serde_json::json!({})).send();
            let id = r.await.ok()?.json::<serde_json::Value>().await.ok()?["run_id"].as_i64()?;
            for _ in 0..400 {
                let r = http.get(format!("{base}/api/runs/{id}")).bearer_auth(TOKEN).send().await.ok()?;
                let run: serde_json::Value = r.json().await.ok()?;
                if !matches!(run["status"].as_str(), Some("queued" | "running")) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            Some(())
        })?;
        let mut names: Vec<String> = store.snapshot().ok()?.users.iter().map(|u| u.username.to_string()).collect();
        names.sort();
        Some(names)
    };
    // The service is up once a sync goes through.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let first = loop {
        if let Some(n) = sync_and_names() {
            break n;
        }
        assert!(std::time::Instant::now() < deadline, "the service did not answer");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(first, ["amy"]);
    // The roster grows; SIGHUP reloads it with the roster kind still known.
    std::fs::write(&path, text("[\"amy\", \"cyd\"]")).unwrap();
    unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if sync_and_names().as_deref() == Some(&["amy".to_string(), "cyd".to_string()][..]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the reload was refused: the roster kind was lost");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    rt.block_on(service).unwrap().unwrap();
}
