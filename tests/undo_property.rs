//! A property of undo, over random histories: after any sequence of
//! directory changes and syncs, undoing the last run gives back the store
//! exactly as it was before that run (every user with its id, fields and
//! groups, every group with its relations), and undoing that undo gives
//! back the state after the run. A fake source serves a random directory
//! (users renamed, re-mailed, moved between groups, deleted and added;
//! groups created, renamed, nested, deleted) to the real engine on the
//! real SQLite store. Seeded: a failure names its seed and step.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dirsync::config::{Config, SourceConfig};
use dirsync::engine::history::RunStatus;
use dirsync::engine::sync::{run_with, Opener, SyncOptions};
use dirsync::engine::undo::{undo, UndoOptions};
use dirsync::engine::views::Directory;
use dirsync::model::{AttrValue, EntryKind, RawEntry};
use dirsync::sources::{EntrySink, FetchCounts, Fetched, Source, SourceError};
use dirsync::store::sqlite::SqliteStore;
use dirsync::store::Store;

/// A directory: users by identity (uid, mail), groups by identity (cn, members).
#[derive(Clone, Default)]
struct Dir {
    users: BTreeMap<u32, (String, String)>,
    groups: BTreeMap<u32, (String, Vec<Member>)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Member {
    User(u32),
    Group(u32),
}

struct Fake {
    dir: Arc<Mutex<Dir>>,
}

fn dn_user(d: &Dir, id: u32) -> String {
    format!("uid={},ou=people,dc=t", d.users[&id].0)
}

fn dn_group(d: &Dir, id: u32) -> String {
    format!("cn={},ou=groups,dc=t", d.groups[&id].0)
}

#[async_trait]
impl Source for Fake {
    fn name(&self) -> &str {
        "fake"
    }

    async fn fetch(&self, sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        let d = self.dir.lock().unwrap().clone();
        let mut b = sink.batcher();
        let err = |m| SourceError::new("fake", m);
        let mut counts = FetchCounts::default();
        for (id, (uid, mail)) in &d.users {
            let mut e = RawEntry::new(dn_user(&d, *id));
            e.push("uid", AttrValue::Text(uid.clone()));
            e.push("cn", AttrValue::Text(format!("Person {id}")));
            e.push("mail", AttrValue::Text(mail.clone()));
            e.push("entryUUID", AttrValue::Text(format!("u-{id}")));
            b.push(EntryKind::User, e).await.map_err(err)?;
            counts.users += 1;
        }
        for (id, (cn, members)) in &d.groups {
            let mut e = RawEntry::new(dn_group(&d, *id));
            e.push("cn", AttrValue::Text(cn.clone()));
            e.push("entryUUID", AttrValue::Text(format!("g-{id}")));
            for m in members {
                let dn = match m {
                    Member::User(u) if d.users.contains_key(u) => dn_user(&d, *u),
                    Member::Group(g) if d.groups.contains_key(g) => dn_group(&d, *g),
                    _ => continue,
                };
                e.push("member", AttrValue::Text(dn));
            }
            b.push(EntryKind::Group, e).await.map_err(err)?;
            counts.groups += 1;
        }
        b.flush().await.map_err(err)?;
        Ok(Fetched { counts, delta: None, next_state: None, ..Fetched::default() })
    }
}

/// xorshift64*: enough randomness for a test, and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.below(v.len() as u64) as usize])
    }
}

/// A few random changes to the directory.
fn mutate(d: &mut Dir, rng: &mut Rng, next_id: &mut u32) {
    for _ in 0..=rng.below(4) {
        let users: Vec<u32> = d.users.keys().copied().collect();
        let groups: Vec<u32> = d.groups.keys().copied().collect();
        match rng.below(10) {
            0 | 1 => {
                *next_id += 1;
                d.users.insert(*next_id, (format!("user{next_id}"), format!("user{next_id}@t.example")));
            }
            2 => {
                if let Some(u) = rng.pick(&users) {
                    d.users.remove(&u);
                }
            }
            3 => {
                if let Some(u) = rng.pick(&users) {
                    *next_id += 1;
                    d.users.get_mut(&u).unwrap().0 = format!("renamed{next_id}");
                }
            }
            4 => {
                if let Some(u) = rng.pick(&users) {
                    d.users.get_mut(&u).unwrap().1 = format!("mail{}@t.example", rng.below(1000));
                }
            }
            5 => {
                *next_id += 1;
                d.groups.insert(*next_id, (format!("group{next_id}"), Vec::new()));
            }
            6 => {
                if let Some(g) = rng.pick(&groups) {
                    d.groups.remove(&g);
                }
            }
            7 => {
                if let Some(g) = rng.pick(&groups) {
                    *next_id += 1;
                    d.groups.get_mut(&g).unwrap().0 = format!("team{next_id}");
                }
            }
            8 => {
                if let (Some(g), Some(u)) = (rng.pick(&groups), rng.pick(&users)) {
                    let m = &mut d.groups.get_mut(&g).unwrap().1;
                    match m.iter().position(|x| *x == Member::User(u)) {
                        Some(i) => {
                            m.remove(i);
                        }
                        None => m.push(Member::User(u)),
                    }
                }
            }
            _ => {
                if let (Some(g), Some(c)) = (rng.pick(&groups), rng.pick(&groups)) {
                    let m = &mut d.groups.get_mut(&g).unwrap().1;
                    match m.iter().position(|x| *x == Member::Group(c)) {
                        Some(i) => {
                            m.remove(i);
                        }
                        None if c != g => m.push(Member::Group(c)),
                        None => {}
                    }
                }
            }
        }
    }
}

/// The store as a comparison sees it (update times aside).
fn state(store: &SqliteStore) -> String {
    let snap = store.snapshot().unwrap();
    let dir = Directory::new(&snap);
    let mut users = serde_json::to_value(dir.users(None)).unwrap();
    for u in users.as_array_mut().unwrap() {
        u.as_object_mut().unwrap().remove("updated_at");
    }
    format!("{users:#}\n{:#}", serde_json::to_value(dir.groups()).unwrap())
}

const CONFIG: &str = "[store]\npath = \"s.db\"\n[[sources]]\nname = \"fake\"\ntype = \"ldif\"\npath = \"unused.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\nemail = \"mail\"\n[safety]\non_missing = \"delete\"\nmax_delete_percent = 100\nmax_delete_count = 100000\n";

/// A store, the fake source's directory, and a sync of it (forced: an
/// emptied group list is allowed).
struct World {
    _tmp: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    cfg: Config,
    store: SqliteStore,
    dir: Arc<Mutex<Dir>>,
    open: Opener,
}

impl World {
    fn new() -> World {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let cfg = Config::parse(CONFIG, &tmp.path().join("dirsync.toml")).unwrap();
        let store = SqliteStore::open(cfg.store.sqlite_path().unwrap()).unwrap();
        let dir = Arc::new(Mutex::new(Dir::default()));
        let d2 = dir.clone();
        let open: Opener = Arc::new(move |_: &SourceConfig| Box::new(Fake { dir: d2.clone() }) as Box<dyn Source>);
        World { _tmp: tmp, rt, cfg, store, dir, open }
    }

    fn sync(&self) -> dirsync::engine::sync::SyncOutcome {
        let opts = SyncOptions { sources: vec!["fake".into()], force: true, ..SyncOptions::default() };
        self.rt
            .block_on(run_with(&self.cfg, &self.store, &opts, Arc::new(AtomicU64::new(0)), self.open.clone()))
            .unwrap()
    }
}

#[test]
fn undoing_the_last_run_of_any_history_gives_back_the_state_before_it() {
    for seed in 1..=40u64 {
        let w = World::new();
        let (cfg, store, dir) = (&w.cfg, &w.store, &w.dir);
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut next_id = 0;
        for step in 0..10 {
            let before = state(store);
            mutate(&mut dir.lock().unwrap(), &mut rng, &mut next_id);
            let out = w.sync();
            // An emptied directory is refused by the guards: nothing to undo.
            if out.status == RunStatus::Blocked {
                assert_eq!(state(store), before, "seed {seed} step {step}: a blocked run changes nothing");
                continue;
            }
            assert_eq!(out.status, RunStatus::Ok, "seed {seed} step {step}: {out:?}");
            let Some(run) = out.run_id.filter(|_| out.counts.changes() > 0) else { continue };
            let after = state(store);
            let u = undo(cfg, store, run, &UndoOptions::default()).unwrap();
            assert_eq!(u.status, RunStatus::Ok, "seed {seed} step {step}: {u:?}");
            assert!(u.conflicts.is_empty(), "seed {seed} step {step}: {u:?}");
            assert_eq!(
                state(store),
                before,
                "seed {seed} step {step}: undoing run {run} gives back the state before it"
            );
            let again = undo(cfg, store, u.run_id.unwrap(), &UndoOptions::default()).unwrap();
            assert_eq!(again.status, RunStatus::Ok, "seed {seed} step {step}: {again:?}");
            assert_eq!(state(store), after, "seed {seed} step {step}: undoing the undo gives back the state after it");
        }
    }
}

#[test]
fn an_approved_undo_that_would_remove_anybody_else_is_blocked_again() {
    let w = World::new();
    let (cfg, store, dir) = (&w.cfg, &w.store, &w.dir);
    let sync = || w.sync();
    for id in 1..=3 {
        dir.lock().unwrap().users.insert(id, (format!("user{id}"), format!("user{id}@t.example")));
    }
    sync();
    for id in 4..=5 {
        dir.lock().unwrap().users.insert(id, (format!("user{id}"), format!("user{id}@t.example")));
    }
    let run = sync().run_id.unwrap();
    let after = state(store);
    let ids: Vec<i64> =
        store.snapshot().unwrap().users.iter().filter(|u| u.username.starts_with("user4")).map(|u| u.id).collect();
    // The approval covered user4 only; the undo would remove user5 too.
    let opts = UndoOptions { force: true, approved: Some(ids), ..UndoOptions::default() };
    let out = undo(cfg, store, run, &opts).unwrap();
    assert_eq!(out.status, RunStatus::Blocked, "{out:?}");
    assert!(out.message.as_deref().unwrap().contains("user5"), "it names who is new: {out:?}");
    assert_eq!(state(store), after, "nothing applied");
    let all: Vec<i64> =
        store.snapshot().unwrap().users.iter().filter(|u| u.username.as_ref() >= "user4").map(|u| u.id).collect();
    let opts = UndoOptions { force: true, approved: Some(all), ..UndoOptions::default() };
    assert_eq!(undo(cfg, store, run, &opts).unwrap().status, RunStatus::Ok);
}
