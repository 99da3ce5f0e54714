//! The SQLite store (the embedded default): one file, WAL journal, numbered
//! migrations run in a transaction, every run's writes in one transaction.
//! All SQL lives here.

use crate::time::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection};

use super::{
    Change, GroupRelations, PushOutcome, QueueStatus, RunOrigin, SavedState, SnapshotQuery, Store, StoreError, StoreTx,
    UserGroups, UserQuery, WritebackItem,
};
use crate::model::records::{AuditRecord, RunRecord, RunSources};
use crate::model::{EntryError, FieldName, Fields, Snapshot, Status, StoredGroup, StoredUser, CORE_FIELDS};
use crate::store::{ScimKey, ScimRow};

mod open;
mod portable;
pub(in crate::store) use open::{creatable, migrate_file};
mod hooks;
mod queries;
mod queue;
mod schema;
mod scim;
mod session;
mod snapshot;
mod timestamp;
mod tx;
use tx::SqliteTx;

/// A handle on one SQLite store file: cheap to clone, `Send + Sync`. Writes
/// go through one writer connection (SQLite has one writer at a time
/// anyway); reads take a connection from a small pool, so they neither wait
/// for a write nor see half of one (WAL snapshots).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Readers>,
    /// Signalled when a read connection comes back to the pool.
    returned: std::sync::Condvar,
    /// An in-memory store (dry runs): readers use the writer.
    memory: bool,
    /// The lease of an in-memory store.
    leased: Arc<std::sync::atomic::AtomicBool>,
}

/// Read connections: at most this many are open at once (more readers wait
/// for one to come back: opening a connection costs more than a read).
const READERS: usize = 4;

/// The idle read connections, and how many exist.
#[derive(Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

fn backend(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| open::explain(path, e)
}

impl SqliteStore {
    fn new(conn: Connection, path: &Path, memory: bool) -> SqliteStore {
        let inner = Inner {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::default(),
            returned: std::sync::Condvar::new(),
            memory,
            leased: Arc::default(),
        };
        SqliteStore { inner: Arc::new(inner) }
    }

    /// The store file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The path of the lock file that serializes syncs on this store.
    pub fn lock_path(&self) -> PathBuf {
        let mut p = self.inner.path.clone().into_os_string();
        p.push(".lock");
        PathBuf::from(p)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        backend(&self.inner.path)
    }

    /// The writer connection (a panic elsewhere does not poison the store:
    /// SQLite rolled back whatever that writer had open).
    fn write(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.inner.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a read connection from the pool.
    fn read<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        if self.inner.memory {
            return f(&mut self.write());
        }
        let mut conn = {
            let mut pool = self.inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            loop {
                if let Some(c) = pool.idle.pop() {
                    break Some(c);
                }
                // Below the bound, or waited long enough: open one more.
                let now = std::time::Instant::now();
                if pool.open < READERS || now >= deadline {
                    pool.open += 1;
                    break None;
                }
                pool = self.inner.returned.wait_timeout(pool, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
            }
        };
        let conn = match conn.take() {
            Some(c) => c,
            None => match open::reader(&self.inner.path) {
                Ok(c) => c,
                Err(e) => {
                    self.inner.readers.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                    return Err(e);
                }
            },
        };
        let mut conn = conn;
        let r = f(&mut conn);
        let mut pool = self.inner.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.idle.len() < READERS {
            pool.idle.push(conn);
        } else {
            pool.open -= 1;
        }
        drop(pool);
        self.inner.returned.notify_one();
        r
    }

    /// Reads everything, or with `q` only the rows a delta touches, in one
    /// read transaction.
    fn read_snapshot(&self, q: Option<&SnapshotQuery>) -> Result<Snapshot, StoreError> {
        self.read(|conn| snapshot::read_snapshot_on(conn, &self.inner.path, q))
    }
}

use crate::store::row::json_object as parse_json_object;
pub(super) use crate::store::row::{Interner, USER_COLUMNS};

pub(super) fn read_user(r: &rusqlite::Row, names: &mut Interner) -> rusqlite::Result<StoredUser> {
    // Values are borrowed from the row and packed once (Fields::from_pairs).
    // A value of another type than text is an error, as `get::<String>` was.
    let mut fields: Vec<(FieldName, &str)> = Vec::with_capacity(CORE_FIELDS.len());
    for (i, name) in CORE_FIELDS.iter().enumerate() {
        if let Some(v) = r.get_ref(6 + i)?.as_str_or_null()? {
            fields.push((names.get(name), v));
        }
    }
    let custom = json_object(r, 12, names)?;
    fields.extend(custom.iter().map(|(k, v)| (k.clone(), v.as_str())));
    let status = r.get_ref(5)?.as_str()?;
    Ok(StoredUser {
        id: r.get(0)?,
        source: names.get(r.get_ref(1)?.as_str()?),
        external_id: r.get(2)?,
        username: r.get(3)?,
        dn: r.get(4)?,
        status: Status::parse(status).unwrap_or(Status::Disabled),
        missing_since: r.get(15)?,
        dir_values: Fields::from_pairs(json_object(r, 16, names)?),
        fields: Fields::from_pairs(fields),
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

/// A JSON object of strings in column `i` (custom fields, directory values).
fn json_object(r: &rusqlite::Row, i: usize, names: &mut Interner) -> rusqlite::Result<Vec<(FieldName, String)>> {
    Ok(parse_json_object(r.get_ref(i)?.as_str()?, names))
}

/// SQLite's lease: an advisory lock on a file beside the store (released by
/// the OS when the process dies), or for an in-memory store a flag.
enum SqliteLease {
    File(#[allow(dead_code)] std::fs::File),
    Memory(Arc<std::sync::atomic::AtomicBool>),
}

impl super::Lease for SqliteLease {}

impl Drop for SqliteLease {
    fn drop(&mut self) {
        if let SqliteLease::Memory(flag) = self {
            flag.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl SqliteStore {
    fn new_run(
        &self,
        sources: &RunSources,
        at: Timestamp,
        forced: bool,
        status: &str,
        o: &RunOrigin,
    ) -> Result<i64, StoreError> {
        let err = self.err();
        let conn = self.write();
        conn.execute(
            "INSERT INTO runs (started_at, source, status, forced, triggered_by, slot, instance) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![at, sources.joined(), status, forced, o.trigger.map(|t| t.as_str()), o.slot, o.instance],
        )
        .map_err(err)?;
        Ok(conn.last_insert_rowid())
    }
}

impl Store for SqliteStore {
    fn scim_find(&self, source: &str, kind: &str, key: ScimKey, value: &str) -> Result<Vec<ScimRow>, StoreError> {
        self.scim_find_rows(source, kind, key, value)
    }

    fn scim_scan(
        &self,
        source: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScimRow>, StoreError> {
        self.scim_scan_rows(source, kind, after, limit)
    }

    fn scim_count(&self, source: &str, kind: &str) -> Result<u64, StoreError> {
        self.scim_count_rows(source, kind)
    }

    fn webhook(&self, name: &str) -> Result<Option<crate::store::WebhookState>, StoreError> {
        self.webhook_row(name)
    }

    fn save_webhook(&self, w: &crate::store::WebhookState) -> Result<(), StoreError> {
        self.save_webhook_row(w)
    }

    fn change_head(&self) -> Result<i64, StoreError> {
        self.change_head_id()
    }

    fn claim(&self, name: &str, owner: &str, now: Timestamp, until: Timestamp) -> Result<bool, StoreError> {
        self.claim_row(name, owner, now, until)
    }

    fn release(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.release_row(name, owner)
    }

    fn forget_quiet_run(&self, id: i64) -> Result<(), StoreError> {
        let err = self.err();
        self.write()
            .execute(
                "DELETE FROM runs WHERE id = ?1 AND triggered_by = 'live' AND NOT EXISTS (SELECT 1 FROM audit WHERE run_id = ?1)",
                [id],
            )
            .map_err(err)
            .map(drop)
    }

    fn push_window(&self, source: &str, since: Timestamp) -> Result<super::PushWindow, StoreError> {
        self.push_window_of(source, since)
    }

    fn push_run(
        &self,
        source: &str,
        since: Timestamp,
        origin: &RunOrigin,
        at: Timestamp,
        held: bool,
    ) -> Result<i64, StoreError> {
        self.open_push_run(source, since, origin, at, held)
    }

    fn approved_push_removals(&self, source: &str, since: Timestamp) -> Result<Vec<i64>, StoreError> {
        self.approved_removals(source, since)
    }

    fn write_session(&self) -> Result<Box<dyn super::WriteSession>, StoreError> {
        Ok(Box::new(session::SqliteSession::start(self.inner.clone())?))
    }

    fn handle(&self) -> Arc<dyn Store> {
        Arc::new(self.clone())
    }

    fn lease(&self) -> Result<Box<dyn super::Lease>, StoreError> {
        if self.inner.memory {
            let flag = self.inner.leased.clone();
            if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Locked("(in memory)".into()));
            }
            return Ok(Box::new(SqliteLease::Memory(flag)));
        }
        let path = self.lock_path();
        let failed =
            |m: String| StoreError::Backend { store: path.display().to_string(), message: format!("lock file: {m}") };
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| failed(format!("cannot open: {e}")))?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(SqliteLease::File(file))),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(path.display().to_string())),
            Err(std::fs::TryLockError::Error(e)) => Err(failed(format!("cannot lock: {e}"))),
        }
    }

    fn integrity_check(&self) -> Result<(), StoreError> {
        self.quick_check()
    }

    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.read_snapshot(None)
    }

    fn partial_snapshot(&self, q: &SnapshotQuery) -> Result<Snapshot, StoreError> {
        self.read_snapshot(Some(q))
    }

    fn start_run(
        &self,
        sources: &RunSources,
        started_at: Timestamp,
        forced: bool,
        origin: &RunOrigin,
    ) -> Result<i64, StoreError> {
        self.new_run(sources, started_at, forced, "running", origin)
    }

    fn queue_run(
        &self,
        sources: &RunSources,
        at: Timestamp,
        forced: bool,
        origin: &RunOrigin,
    ) -> Result<i64, StoreError> {
        self.new_run(sources, at, forced, "queued", origin)
    }

    fn discard_queued(&self, id: i64) -> Result<(), StoreError> {
        let err = self.err();
        self.write().execute("DELETE FROM runs WHERE id = ?1 AND status = 'queued'", [id]).map_err(err).map(drop)
    }

    fn slot_done(&self, source: &str, slot: Timestamp) -> Result<bool, StoreError> {
        let err = self.err();
        self.read(|conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM schedule_slots WHERE source = ?1 AND slot = ?2)",
                params![source, slot],
                |r| r.get(0),
            )
            .map_err(&err)
        })
    }

    fn begin_run(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        let err = self.err();
        self.write()
            .execute("UPDATE runs SET status = 'running', started_at = ?2 WHERE id = ?1", params![id, at])
            .map_err(err)
            .map(drop)
    }

    fn abandon_queued(&self, at: Timestamp, instance: Option<&str>) -> Result<usize, StoreError> {
        let err = self.err();
        self.write()
            .execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?1, message = 'the service stopped before the run started; nothing was read or changed' WHERE status = 'queued' AND (?2 IS NULL OR instance = ?2)",
                params![at, instance],
            )
            .map_err(err)
    }

    fn transaction(&self, f: &mut dyn FnMut(&mut dyn StoreTx) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let path = self.inner.path.as_path();
        let err = backend(path);
        let mut conn = self.write();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        let mut stx = SqliteTx { tx, path };
        f(&mut stx)?; // dropping an uncommitted transaction rolls it back
        stx.tx.commit().map_err(&err)
    }

    fn runs_page(&self, q: &crate::store::RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        self.read(|conn| queries::runs(conn, &self.inner.path, q))
    }

    fn audit_of(&self, user_id: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|conn| queries::audit_of(conn, &self.inner.path, user_id, limit))
    }

    fn run_changes(&self, run_id: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|conn| queries::run_changes(conn, &self.inner.path, run_id, limit))
    }

    fn run_audit(&self, run_id: i64) -> Result<Vec<Change>, StoreError> {
        self.read(|conn| queries::run_audit(conn, &self.inner.path, run_id))
    }

    fn user_by_name(&self, name: &str) -> Result<Option<StoredUser>, StoreError> {
        self.read(|conn| queries::user_by_name(conn, &self.inner.path, name))
    }

    fn groups_of_user(&self, user_id: i64) -> Result<UserGroups, StoreError> {
        self.read(|conn| queries::groups_of_user(conn, &self.inner.path, user_id))
    }

    fn is_member(&self, user_id: i64, group_id: i64) -> Result<bool, StoreError> {
        self.read(|conn| queries::is_member(conn, &self.inner.path, user_id, group_id))
    }

    fn groups_of_users(&self, user_ids: &[i64]) -> Result<std::collections::HashMap<i64, UserGroups>, StoreError> {
        self.read(|conn| queries::groups_of_users(conn, &self.inner.path, user_ids))
    }

    fn users_page(&self, q: &UserQuery) -> Result<Vec<StoredUser>, StoreError> {
        self.read(|conn| queries::users_page(conn, &self.inner.path, q))
    }

    fn plan_of(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        let err = self.err();
        self.read(|conn| {
            conn.query_row("SELECT summary FROM run_plans WHERE run_id = ?1", [run_id], |r| r.get(0))
                .optional()
                .map_err(&err)
        })
    }

    fn removals_of(&self, run_id: i64) -> Result<Vec<crate::store::PlannedRemoval>, StoreError> {
        self.read(|conn| queries::removals_of(conn, &self.inner.path, run_id))
    }

    fn groups_page(&self, after: Option<(&str, i64)>, limit: usize) -> Result<Vec<StoredGroup>, StoreError> {
        self.read(|conn| queries::groups_page(conn, &self.inner.path, after, limit))
    }

    fn groups_by_name(&self, name: &str) -> Result<Vec<StoredGroup>, StoreError> {
        self.read(|conn| queries::groups_by_name(conn, &self.inner.path, name))
    }

    fn group_relations(&self, group_id: i64) -> Result<GroupRelations, StoreError> {
        self.read(|conn| queries::group_relations(conn, &self.inner.path, group_id))
    }

    fn counts(&self) -> Result<crate::store::StoreCounts, StoreError> {
        self.read(|conn| queries::counts(conn, &self.inner.path))
    }

    fn changes(&self, cursor: i64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.read(|conn| queries::changes(conn, &self.inner.path, cursor, limit))
    }

    fn writeback_counts(&self) -> Result<[u64; 3], StoreError> {
        let err = self.err();
        self.read(|conn| {
            let mut st = conn.prepare_cached("SELECT status, count(*) FROM writeback GROUP BY status").map_err(&err)?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(&err)?;
            let mut out = [0u64; 3];
            for row in rows {
                let (status, n) = row.map_err(&err)?;
                match QueueStatus::parse(&status) {
                    Some(QueueStatus::Pending) => out[0] = n as u64,
                    Some(QueueStatus::Failed) => out[1] = n as u64,
                    Some(QueueStatus::Conflict) => out[2] = n as u64,
                    _ => {}
                }
            }
            Ok(out)
        })
    }

    fn writeback_items(&self, statuses: &[QueueStatus]) -> Result<Vec<WritebackItem>, StoreError> {
        self.read(|conn| queue::items(conn, &self.inner.path, statuses))
    }

    fn finish_writebacks(&self, done: &[(&WritebackItem, PushOutcome)], now: Timestamp) -> Result<(), StoreError> {
        let path = self.inner.path.as_path();
        let err = backend(path);
        let mut conn = self.write();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        let mut stx = SqliteTx { tx, path };
        for (item, outcome) in done {
            queue::finish_one(&mut stx, item, outcome, now)?;
        }
        stx.tx.commit().map_err(&err)
    }

    fn last_push_success(&self) -> Result<Option<Timestamp>, StoreError> {
        let err = self.err();
        self.read(|conn| {
            conn.query_row("SELECT max(done_at) FROM writeback WHERE status = 'done'", [], |r| r.get(0)).map_err(&err)
        })
    }

    fn record_push(&self, run_id: i64, counts: [u64; 3], errors: &[EntryError]) -> Result<(), StoreError> {
        let err = self.err();
        let mut conn = self.write();
        let tx = conn.transaction().map_err(&err)?;
        tx.execute(
            "UPDATE runs SET pushed = pushed + ?2, push_failed = push_failed + ?3, conflicts = conflicts + ?4 WHERE id = ?1",
            params![run_id, counts[0] as i64, counts[1] as i64, counts[2] as i64],
        )
        .map_err(&err)?;
        for e in errors {
            tx.execute(
                "INSERT INTO run_errors (run_id, kind, dn, reason) VALUES (?1, 'error', ?2, ?3)",
                params![run_id, e.dn, e.reason],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    fn sync_state(&self, source: &str) -> Result<Option<SavedState>, StoreError> {
        self.read(|conn| {
            let err = self.err();
            let mut st = conn
                .prepare("SELECT state, last_full_at, fingerprint FROM sync_state WHERE source = ?1")
                .map_err(&err)?;
            let mut rows = st.query([source]).map_err(&err)?;
            match rows.next().map_err(&err)? {
                Some(r) => Ok(Some(SavedState {
                    state: r.get(0).map_err(&err)?,
                    last_full_at: r.get(1).map_err(&err)?,
                    fingerprint: r.get(2).map_err(&err)?,
                })),
                None => Ok(None),
            }
        })
    }

    fn mark_interrupted(&self, now: Timestamp) -> Result<usize, StoreError> {
        let err = self.err();
        self.write()
            .execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?1, message = 'the process stopped before the run finished; nothing of it was applied' WHERE status = 'running'",
                [now],
            )
            .map_err(err)
    }
}

#[cfg(test)]
mod tests;
