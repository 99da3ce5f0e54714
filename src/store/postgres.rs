//! The PostgreSQL store: the same tables as SQLite's, numbered migrations
//! each in a transaction, every run's writes in one transaction, several
//! dirsync instances on one database. All of its SQL lives here.
//!
//! The [`Store`] trait is synchronous and called on blocking threads; this
//! backend keeps a small tokio runtime of its own that drives a pool of
//! `tokio-postgres` connections (`deadpool-postgres`, a maintained async
//! pool), and each method blocks its caller on that runtime. So one pool
//! serves the CLI, the service's blocking threads and write sessions alike,
//! and a connection's I/O never needs the caller's runtime.
//!
//! Across instances: the sync lease is a session advisory lock held on a
//! connection of its own (a dead holder's connection closes and frees it);
//! writers that add audit rows take a transaction advisory lock before
//! their first one, so audit ids are handed out in commit order and the
//! change feed never skips a row committed late.

mod bulk;
mod connect;
mod hooks;
mod images;
mod portable;
mod queries;
mod queue;
mod schema;
mod scim;
mod session;
mod snapshot;
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
mod tx;
mod types;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::model::records::{AuditRecord, RunRecord, RunSources};
use crate::model::{EntryError, Snapshot, StoredGroup, StoredUser};
use crate::secret::Secret;
use crate::time::Timestamp;

use super::{
    Change, GroupRelations, PushOutcome, QueueStatus, RunOrigin, RunQuery, SavedState, SnapshotQuery, Store,
    StoreError, StoreTx, UserGroups, UserQuery, WritebackItem,
};
pub use connect::describe_url;
pub(crate) use connect::explain;
use tx::PgTx;

/// `[store] url = "postgres://…"` and what goes with it.
#[derive(Clone)]
pub struct PgConfig {
    /// The connection URL as configured (a password in it is used, never shown).
    pub url: String,
    /// `password`, `password_file` or `password_env` (else the URL's, else `PGPASSWORD`).
    pub password: Option<Secret>,
    /// A CA bundle: TLS is required and the server's name verified against it.
    pub ca_file: Option<PathBuf>,
    /// Connections in the pool (the lease takes one more of its own).
    pub pool_size: usize,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.describe())
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// The database's address for messages: the URL without its password
    /// (and without its query, which may carry one too).
    pub fn describe(&self) -> String {
        connect::describe_url(&self.url)
    }
}

/// A handle on one PostgreSQL store: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The store's name in messages.
    name: String,
    cfg: connect::Connector,
    pool: deadpool_postgres::Pool,
    /// Taken only when the store is dropped.
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    /// Closes the pool and stops the runtime without waiting (the last
    /// handle may be dropped on an async thread, where waiting is refused).
    fn drop(&mut self) {
        self.pool.close();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connects, applies pending migrations and opens the pool.
    pub fn open(cfg: &PgConfig) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(cfg)?;
        store.block(schema::migrate(&store.inner))?;
        Ok(store)
    }

    /// Opens a store whose schema exists ([`StoreError::NotCreated`] on an
    /// empty database); migrates it when it is older than this build.
    pub fn open_existing(cfg: &PgConfig) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(cfg)?;
        if store.block(schema::version(&store.inner))?.is_none() {
            return Err(StoreError::NotCreated { store: store.inner.name.clone() });
        }
        store.block(schema::migrate(&store.inner))?;
        Ok(store)
    }

    /// `dirsync check`: whether the schema exists (`false`: the first sync
    /// creates it), refusing a newer one, a database that cannot be reached
    /// and memberships or queue items that point nowhere.
    pub fn check(cfg: &PgConfig) -> Result<bool, StoreError> {
        let store = PgStore::connect(cfg)?;
        match store.block(schema::version(&store.inner))? {
            None => Ok(false),
            Some(v) => {
                schema::refuse_newer(&store.inner.name, v)?;
                store.block(schema::integrity(&store.inner)).map(|()| true)
            }
        }
    }

    /// `dirsync migrate`: the schema version before and after.
    pub fn migrate(cfg: &PgConfig) -> Result<(usize, usize), StoreError> {
        let store = PgStore::connect(cfg)?;
        let before = store.block(schema::version(&store.inner))?.unwrap_or(0);
        store.block(schema::migrate(&store.inner))?;
        Ok((before, super::SCHEMA_VERSION))
    }

    fn connect(cfg: &PgConfig) -> Result<PgStore, StoreError> {
        let name = cfg.describe();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dirsync-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend {
                store: name.clone(),
                message: format!("cannot start its runtime: {e}"),
            })?;
        let connector = connect::Connector::new(cfg, &name)?;
        let pool = {
            let _in_rt = rt.enter();
            connector.pool(cfg.pool_size)?
        };
        Ok(PgStore { inner: Arc::new(Inner { name, cfg: connector, pool, rt: Some(rt) }) })
    }

    /// Runs `f` to its end on this store's runtime, blocking the caller.
    fn block<R>(&self, f: impl Future<Output = R>) -> R {
        block(&self.inner, f)
    }

    /// A pooled connection; [`StoreError::Unavailable`] when none can be had.
    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        connect::pooled(&self.inner).await
    }
}

/// Runs `f` on the store's runtime (its timers and sockets are there) and
/// waits for it on the calling thread, whatever runtime that thread is in.
fn block<R>(inner: &Inner, f: impl Future<Output = R>) -> R {
    let _in_rt = inner.rt.as_ref().expect("the runtime lives as long as the store").enter();
    futures_executor::block_on(f)
}

impl Store for PgStore {
    fn scim_find(
        &self,
        source: &str,
        kind: &str,
        key: super::ScimKey,
        value: &str,
    ) -> Result<Vec<super::ScimRow>, StoreError> {
        self.scim_find_rows(source, kind, key, value)
    }

    fn scim_scan(
        &self,
        source: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<super::ScimRow>, StoreError> {
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
        self.exec(
            "DELETE FROM runs WHERE id = $1 AND triggered_by = 'live' AND NOT EXISTS (SELECT 1 FROM audit WHERE run_id = $1)",
            &[&id],
        )
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

    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.block(async { snapshot::read(&mut *self.conn().await?, &self.inner.name, None).await })
    }

    fn partial_snapshot(&self, q: &SnapshotQuery) -> Result<Snapshot, StoreError> {
        self.block(async { snapshot::read(&mut *self.conn().await?, &self.inner.name, Some(q)).await })
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

    fn queue_or_join(
        &self,
        sources: &RunSources,
        at: Timestamp,
        origin: &RunOrigin,
    ) -> Result<(i64, bool), StoreError> {
        let mut found = None;
        let (joined, me) = (sources.joined(), origin.instance.clone().unwrap_or_default());
        let trigger = origin.trigger.map(|t| t.as_str());
        self.with_tx(|tx| {
            found = Some(tx.queue_or_join(&joined, &me, at, trigger, &origin.instance)?);
            Ok(())
        })?;
        Ok(found.expect("set in the transaction"))
    }

    fn discard_queued(&self, id: i64) -> Result<(), StoreError> {
        self.exec("DELETE FROM runs WHERE id = $1 AND status = 'queued'", &[&id]).map(drop)
    }

    fn slot_done(&self, source: &str, slot: Timestamp) -> Result<bool, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let row = conn
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM schedule_slots WHERE source = $1 AND slot = $2)",
                    &[&source, &slot],
                )
                .await
                .map_err(|e| explain(&self.inner.name, e))?;
            Ok(row.get(0))
        })
    }

    fn begin_run(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        self.exec("UPDATE runs SET status = 'running', started_at = $2 WHERE id = $1", &[&id, &at]).map(drop)
    }

    fn abandon_queued(&self, at: Timestamp, instance: Option<&str>) -> Result<usize, StoreError> {
        // Without an instance: those whose instance holds no presence lock.
        self.exec(
            "UPDATE runs SET status = 'interrupted', finished_at = $1, message = 'the service stopped before the run started; nothing was read or changed' WHERE status = 'queued' AND CASE WHEN $2::text IS NULL THEN NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $3::int4::oid AND l.objid = hashtext(coalesce(runs.instance, ''))::oid AND l.objsubid = 2) ELSE instance = $2 END",
            &[&at, &instance, &connect::PRESENCE_CLASS],
        )
    }

    fn presence(&self, instance: &str) -> Result<Box<dyn super::Lease>, StoreError> {
        self.block(connect::presence(&self.inner, instance))
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

    fn write_session(&self) -> Result<Box<dyn super::WriteSession>, StoreError> {
        Ok(Box::new(session::PgSession::new(self.begin()?)))
    }

    fn transaction(&self, f: &mut dyn FnMut(&mut dyn StoreTx) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.with_tx(|tx| f(tx))
    }

    fn runs_page(&self, q: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        self.block(async { queries::runs(&*self.conn().await?, &self.inner.name, q).await })
    }

    fn user_by_name(&self, name: &str) -> Result<Option<StoredUser>, StoreError> {
        self.block(async { queries::user_by_name(&*self.conn().await?, &self.inner.name, name).await })
    }

    fn groups_of_user(&self, user_id: i64) -> Result<UserGroups, StoreError> {
        self.block(async { queries::groups_of_user(&*self.conn().await?, &self.inner.name, user_id).await })
    }

    fn is_member(&self, user_id: i64, group_id: i64) -> Result<bool, StoreError> {
        self.block(async { queries::is_member(&*self.conn().await?, &self.inner.name, user_id, group_id).await })
    }

    fn groups_of_users(&self, user_ids: &[i64]) -> Result<std::collections::HashMap<i64, UserGroups>, StoreError> {
        self.block(async { queries::groups_of_users(&*self.conn().await?, &self.inner.name, user_ids).await })
    }

    fn users_page(&self, q: &UserQuery) -> Result<Vec<StoredUser>, StoreError> {
        self.block(async { queries::users_page(&*self.conn().await?, &self.inner.name, q).await })
    }

    fn audit_of(&self, user_id: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let tail = "WHERE user_id = $1 ORDER BY id DESC LIMIT $2";
        self.block(async { queries::audit_rows(&*self.conn().await?, &self.inner.name, tail, user_id, limit).await })
    }

    fn run_changes(&self, run_id: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let tail = "WHERE run_id = $1 ORDER BY id LIMIT $2";
        self.block(async { queries::audit_rows(&*self.conn().await?, &self.inner.name, tail, run_id, limit).await })
    }

    fn run_audit(&self, run_id: i64) -> Result<Vec<Change>, StoreError> {
        self.block(async { queries::run_audit(&*self.conn().await?, &self.inner.name, run_id).await })
    }

    fn removals_of(&self, run_id: i64) -> Result<Vec<super::PlannedRemoval>, StoreError> {
        self.block(async { queries::removals_of(&*self.conn().await?, &self.inner.name, run_id).await })
    }

    fn plan_of(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let row = conn
                .query_opt("SELECT summary FROM run_plans WHERE run_id = $1", &[&run_id])
                .await
                .map_err(|e| explain(&self.inner.name, e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn groups_page(&self, after: Option<(&str, i64)>, limit: usize) -> Result<Vec<StoredGroup>, StoreError> {
        self.block(async { queries::groups_page(&*self.conn().await?, &self.inner.name, after, limit).await })
    }

    fn groups_by_name(&self, name: &str) -> Result<Vec<StoredGroup>, StoreError> {
        self.block(async { queries::groups_by_name(&*self.conn().await?, &self.inner.name, name).await })
    }

    fn group_relations(&self, group_id: i64) -> Result<GroupRelations, StoreError> {
        self.block(async { queries::group_relations(&*self.conn().await?, &self.inner.name, group_id).await })
    }

    fn counts(&self) -> Result<super::StoreCounts, StoreError> {
        self.block(async { queries::counts(&*self.conn().await?, &self.inner.name).await })
    }

    fn changes(&self, cursor: i64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.block(async { queries::changes(&*self.conn().await?, &self.inner.name, cursor, limit).await })
    }

    fn writeback_counts(&self) -> Result<[u64; 3], StoreError> {
        self.block(async { queries::writeback_counts(&*self.conn().await?, &self.inner.name).await })
    }

    fn writeback_items(&self, statuses: &[QueueStatus]) -> Result<Vec<WritebackItem>, StoreError> {
        self.block(async { queries::writeback_items(&*self.conn().await?, &self.inner.name, statuses).await })
    }

    fn finish_writebacks(&self, done: &[(&WritebackItem, PushOutcome)], now: Timestamp) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            for (item, outcome) in done {
                queue::finish_one(tx, item, outcome, now)?;
            }
            Ok(())
        })
    }

    fn last_push_success(&self) -> Result<Option<Timestamp>, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let row = conn
                .query_one("SELECT max(done_at) FROM writeback WHERE status = 'done'", &[])
                .await
                .map_err(|e| explain(&self.inner.name, e))?;
            Ok(row.get(0))
        })
    }

    fn record_push(&self, run_id: i64, counts: [u64; 3], errors: &[EntryError]) -> Result<(), StoreError> {
        self.with_tx(|tx| tx.record_push(run_id, counts, errors))
    }

    fn sync_state(&self, source: &str) -> Result<Option<SavedState>, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let row = conn
                .query_opt("SELECT state, last_full_at, fingerprint FROM sync_state WHERE source = $1", &[&source])
                .await
                .map_err(|e| explain(&self.inner.name, e))?;
            Ok(row.map(|r| SavedState { state: r.get(0), last_full_at: r.get(1), fingerprint: r.get(2) }))
        })
    }

    fn handle(&self) -> Arc<dyn Store> {
        Arc::new(self.clone())
    }

    fn lease(&self) -> Result<Box<dyn super::Lease>, StoreError> {
        self.block(connect::lease(&self.inner))
    }

    fn integrity_check(&self) -> Result<(), StoreError> {
        self.block(schema::integrity(&self.inner))
    }

    fn mark_interrupted(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.exec(
            "UPDATE runs SET status = 'interrupted', finished_at = $1, message = 'the process stopped before the run finished; nothing of it was applied' WHERE status = 'running'",
            &[&now],
        )
    }
}

impl PgStore {
    /// Runs `f` in one transaction: all of its writes land, or none.
    fn with_tx(&self, f: impl FnOnce(&mut PgTx) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut tx = self.begin()?;
        let r = f(&mut tx).and_then(|()| tx.commit());
        if r.is_err() {
            tx.rollback();
        }
        r
    }

    /// A pooled connection with a transaction begun on it.
    fn begin(&self) -> Result<PgTx, StoreError> {
        let conn = self.block(async {
            let conn = self.conn().await?;
            conn.batch_execute("BEGIN").await.map_err(|e| explain(&self.inner.name, e))?;
            Ok::<_, StoreError>(conn)
        })?;
        Ok(PgTx::new(&self.inner, conn))
    }

    /// One statement outside any other transaction; the rows it touched.
    fn exec(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<usize, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let st = conn.prepare_cached(sql).await.map_err(|e| explain(&self.inner.name, e))?;
            let n = conn.execute(&st, params).await.map_err(|e| explain(&self.inner.name, e))?;
            Ok(n as usize)
        })
    }

    fn new_run(
        &self,
        sources: &RunSources,
        at: Timestamp,
        forced: bool,
        status: &str,
        o: &RunOrigin,
    ) -> Result<i64, StoreError> {
        let trigger = o.trigger.map(|t| t.as_str());
        self.block(async {
            let conn = self.conn().await?;
            let row = conn
                .query_one(
                    "INSERT INTO runs (started_at, source, status, forced, triggered_by, slot, instance) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[&at, &sources.joined(), &status, &forced, &trigger, &o.slot, &o.instance],
                )
                .await
                .map_err(|e| explain(&self.inner.name, e))?;
            Ok(row.get(0))
        })
    }
}
