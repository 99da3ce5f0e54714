//! One PostgreSQL transaction ([`StoreTx`]). Writes that return nothing
//! are queued (memberships and audit records gathered into multi-row
//! statements) and sent pipelined, many per round trip, when something must
//! be read back, every [`BATCH`] statements, and at commit; a first sync's
//! new users go in with `COPY`. An error aborts the transaction, as it does
//! the run. The savepoints of a write session's calls are kept here too.

use std::sync::Arc;

use tokio_postgres::types::ToSql;

use super::bulk::{Param, Queued};
use super::{block, explain, Inner};
use crate::model::records::{AuditRecord, RunRecord};
use crate::model::{name_key, normalize_dn, EntryError, NewGroup, NewUser, CORE_FIELDS};
use crate::store::row::{created_summary, split_fields};
use crate::store::{NewWriteback, PlannedRemoval, SavedState, StoreError, StoreTx, UserPatch};
use crate::time::Timestamp;

/// Serializes queueing across instances (so two equal asks join one run).
const QUEUE_LOCK: i64 = 0x6469_7273_796e_6303; // "dirsync" 3

/// Queued statements sent at once (bounds what a pipeline holds in memory).
const BATCH: usize = 2000;

/// The advisory lock every transaction takes before its first audit row:
/// one writer of audit rows at a time, so ids are drawn in commit order.
pub(super) const FEED_LOCK: i64 = 0x6469_7273_796e_6301; // "dirsync" 1

/// What a transaction was at a savepoint.
pub(super) struct Savepoint {
    feed_locked: bool,
}

pub(crate) struct PgTx {
    inner: Arc<Inner>,
    conn: Option<deadpool_postgres::Object>,
    pending: Vec<Queued>,
    /// Rows the queue stands for.
    queued_rows: usize,
    /// Rows written by this transaction (queued or sent).
    written: usize,
    /// Whether this transaction holds [`FEED_LOCK`].
    feed_locked: bool,
    /// Ids drawn ahead from the users' and the groups' sequences (one
    /// round trip per [`ID_BLOCK`] rows; the unused ones are gaps).
    spare_ids: [Vec<i64>; 2],
}

/// Rows a transaction writes after which its commit refreshes statistics.
const ANALYZE_AFTER: usize = 10_000;

/// Ids drawn from a sequence at once for rows inserted one by one.
const ID_BLOCK: usize = 256;

macro_rules! params {
    ($($p:expr),* $(,)?) => { vec![$(Box::new($p) as Param),*] };
}

impl PgTx {
    /// A transaction on `conn`, where `BEGIN` has been sent.
    pub(super) fn new(inner: &Arc<Inner>, conn: deadpool_postgres::Object) -> PgTx {
        PgTx {
            inner: inner.clone(),
            conn: Some(conn),
            pending: Vec::new(),
            queued_rows: 0,
            written: 0,
            feed_locked: false,
            spare_ids: Default::default(),
        }
    }

    fn conn(&self) -> &deadpool_postgres::Object {
        self.conn.as_ref().expect("a transaction's connection is kept until it ends")
    }

    /// Queues a statement; sends the queue when it is full.
    pub(super) fn push(&mut self, sql: &'static str, params: Vec<Param>) -> Result<(), StoreError> {
        self.pending.push(Queued::One(sql, params));
        self.counted()
    }

    /// Sends the queue once it holds [`BATCH`] statements or a hundred
    /// thousand gathered rows.
    fn counted(&mut self) -> Result<(), StoreError> {
        self.queued_rows += 1;
        self.written += 1;
        if self.pending.len() >= BATCH || self.queued_rows >= 100_000 {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends every queued statement, pipelined; the first error, if any.
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending: Vec<_> = std::mem::take(&mut self.pending).into_iter().map(Queued::statement).collect();
        self.queued_rows = 0;
        let (conn, name) = (self.conn(), self.inner.name.as_str());
        block(&self.inner, async move {
            let mut statements = std::collections::HashMap::new();
            for (sql, _) in &pending {
                if !statements.contains_key(sql) {
                    let st = conn.prepare_cached(sql).await.map_err(|e| explain(name, e))?;
                    statements.insert(*sql, st);
                }
            }
            let sends = pending.iter().map(|(sql, params)| {
                let st = &statements[sql];
                async move {
                    let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| &**b as _).collect();
                    conn.execute(st, &params).await
                }
            });
            futures_util::future::try_join_all(sends).await.map_err(|e| explain(name, e))?;
            Ok(())
        })
    }

    /// Sends what is queued, then runs `f` on the connection.
    pub(super) fn read<R>(
        &mut self,
        f: impl for<'c> FnOnce(
            &'c deadpool_postgres::Object,
        ) -> futures_util::future::BoxFuture<'c, Result<R, tokio_postgres::Error>>,
    ) -> Result<R, StoreError> {
        self.flush()?;
        let conn = self.conn();
        block(&self.inner, f(conn)).map_err(|e| explain(&self.inner.name, e))
    }

    /// Takes [`FEED_LOCK`] before this transaction's first audit row.
    fn lock_feed(&mut self) -> Result<(), StoreError> {
        if !self.feed_locked {
            self.push("SELECT pg_advisory_xact_lock($1)", params![FEED_LOCK])?;
            self.feed_locked = true;
        }
        Ok(())
    }

    /// Opens the savepoint a write session's call runs under; what
    /// [`PgTx::back_to`] needs to return to it.
    pub(super) fn savepoint(&mut self) -> Result<Savepoint, StoreError> {
        self.simple("SAVEPOINT work")?;
        Ok(Savepoint { feed_locked: self.feed_locked })
    }

    /// Keeps what was written since the savepoint.
    pub(super) fn release(&mut self) -> Result<(), StoreError> {
        self.simple("RELEASE SAVEPOINT work")
    }

    /// Takes back what was written (or queued) since the savepoint.
    pub(super) fn back_to(&mut self, mark: Savepoint) -> Result<(), StoreError> {
        self.pending.clear();
        self.queued_rows = 0;
        // Locks taken since the savepoint are released with it.
        self.feed_locked = mark.feed_locked;
        self.simple("ROLLBACK TO SAVEPOINT work")
    }

    /// Sends what is queued, then one statement without parameters.
    fn simple(&mut self, sql: &'static str) -> Result<(), StoreError> {
        self.flush()?;
        let conn = self.conn();
        block(&self.inner, conn.batch_execute(sql)).map_err(|e| explain(&self.inner.name, e))
    }

    /// Sends what is queued and commits. After a bulk load (a first sync)
    /// the planner's statistics are refreshed at once: until autovacuum
    /// comes by, every lookup would be planned for empty tables.
    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        let name = self.inner.name.clone();
        let conn = self.conn.take().expect("committed once");
        let analyze = self.written >= ANALYZE_AFTER;
        block(&self.inner, async move {
            conn.batch_execute("COMMIT").await.map_err(|e| explain(&name, e))?;
            if analyze {
                let tables = "ANALYZE users, groups, user_groups, group_groups, audit";
                if let Err(e) = conn.batch_execute(tables).await {
                    tracing::warn!("statistics not refreshed after a bulk write: {}", explain(&name, e));
                }
            }
            Ok(())
        })
    }

    /// Rolls back (what is queued is dropped). A connection that cannot say
    /// so is closed instead, which rolls back too.
    pub(super) fn rollback(&mut self) {
        self.pending.clear();
        self.queued_rows = 0;
        if let Some(conn) = self.conn.take() {
            let ok = block(&self.inner, async { conn.batch_execute("ROLLBACK").await.is_ok() });
            if !ok {
                drop(deadpool_postgres::Object::take(conn));
            }
        }
    }

    /// Adds a push's counts and errors to a run's record.
    pub(super) fn record_push(&mut self, run_id: i64, c: [u64; 3], errors: &[EntryError]) -> Result<(), StoreError> {
        self.push(
            "UPDATE runs SET pushed = pushed + $2, push_failed = push_failed + $3, conflicts = conflicts + $4 WHERE id = $1",
            params![run_id, c[0] as i64, c[1] as i64, c[2] as i64],
        )?;
        for e in errors {
            self.push(
                "INSERT INTO run_errors (run_id, kind, dn, reason) VALUES ($1, 'error', $2, $3)",
                params![run_id, e.dn.clone(), e.reason.clone()],
            )?;
        }
        Ok(())
    }

    /// [`Store::queue_or_join`](crate::store::Store::queue_or_join) inside
    /// this transaction, serialized by an advisory lock.
    pub(super) fn queue_or_join(
        &mut self,
        sources: &str,
        me: &str,
        at: Timestamp,
        trigger: Option<&'static str>,
        instance: &Option<String>,
    ) -> Result<(i64, bool), StoreError> {
        let (sources, me, instance) = (sources.to_string(), me.to_string(), instance.clone());
        self.read(move |c| {
            Box::pin(async move {
                c.execute("SELECT pg_advisory_xact_lock($1)", &[&QUEUE_LOCK]).await?;
                let joined = c
                    .query_opt(
                        "SELECT id FROM runs r WHERE status IN ('queued', 'running') AND source = $1 AND instance <> $2                          AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted                            AND l.classid = $3::int4::oid AND l.objid = hashtext(r.instance)::oid AND l.objsubid = 2)                          ORDER BY id LIMIT 1",
                        &[&sources, &me, &super::connect::PRESENCE_CLASS],
                    )
                    .await?;
                if let Some(r) = joined {
                    return Ok((r.get(0), false));
                }
                let r = c
                    .query_one(
                        "INSERT INTO runs (started_at, source, status, forced, triggered_by, instance) VALUES ($1, $2, 'queued', false, $3, $4) RETURNING id",
                        &[&at, &sources, &trigger, &instance],
                    )
                    .await?;
                Ok((r.get(0), true))
            })
        })
    }

    /// One id for a row of `table` (users or groups), from the ids drawn ahead.
    fn next_id(&mut self, table: &'static str) -> Result<i64, StoreError> {
        let slot = usize::from(table == "groups");
        if self.spare_ids[slot].is_empty() {
            let mut ids = self.next_ids(table, ID_BLOCK)?;
            ids.reverse();
            self.spare_ids[slot] = ids;
        }
        Ok(self.spare_ids[slot].pop().expect("refilled"))
    }

    /// Draws `n` ids from `table`'s sequence in one round trip.
    fn next_ids(&mut self, table: &'static str, n: usize) -> Result<Vec<i64>, StoreError> {
        let sql = match table {
            "users" => "SELECT nextval('users_id_seq') FROM generate_series(1, $1::bigint)",
            "groups" => "SELECT nextval('groups_id_seq') FROM generate_series(1, $1::bigint)",
            _ => "SELECT nextval('audit_id_seq') FROM generate_series(1, $1::bigint)",
        };
        let n = n as i64;
        self.read(move |c| Box::pin(async move { Ok(c.query(sql, &[&n]).await?.iter().map(|r| r.get(0)).collect()) }))
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        self.rollback();
    }
}

/// A user's row values, owned, in the insert's column order.
fn user_params(u: &NewUser) -> Vec<Param> {
    let (core, custom) = split_fields(&u.fields);
    let core: Vec<Option<String>> = core.iter().map(|v| v.map(str::to_string)).collect();
    params![
        u.source.to_string(),
        u.external_id.to_string(),
        u.username.to_string(),
        name_key(&u.username),
        u.dn.to_string(),
        normalize_dn(&u.dn),
        u.status.as_str(),
        core[0].clone(),
        core[1].clone(),
        core[2].clone(),
        core[3].clone(),
        core[4].clone(),
        core[5].clone(),
        custom,
        split_fields(&u.dir_values).1,
    ]
}

const INSERT_USER: &str = "INSERT INTO users (id, source, external_id, username, username_key, dn, dn_key, status, full_name, email, department, office, card_number, card_number2, fields, dir_values, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)";

impl StoreTx for PgTx {
    /// The generation, locked until this transaction ends: a writer that
    /// compares it and sets the next one is not overtaken by another
    /// (which waits here, then reads the new value).
    fn generation(&mut self) -> Result<i64, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let r = c.query_one("SELECT value::bigint FROM meta WHERE key = 'generation' FOR UPDATE", &[]).await?;
                Ok(r.get(0))
            })
        })
    }

    fn set_generation(&mut self, generation: i64) -> Result<(), StoreError> {
        self.push("UPDATE meta SET value = $1 WHERE key = 'generation'", params![generation.to_string()])
    }

    fn insert_user(&mut self, u: &NewUser, now: Timestamp) -> Result<i64, StoreError> {
        let id = self.next_id("users")?;
        let mut p = params![id];
        p.extend(user_params(u));
        p.push(Box::new(now));
        self.push(INSERT_USER, p)?;
        Ok(id)
    }

    fn update_user(&mut self, id: i64, p: &UserPatch, now: Timestamp) -> Result<(), StoreError> {
        if let Some(name) = p.username {
            self.push(
                "UPDATE users SET username = $2, username_key = $3 WHERE id = $1",
                params![id, name.to_string(), name_key(name)],
            )?;
        }
        if let Some(src) = p.source {
            self.push("UPDATE users SET source = $2 WHERE id = $1", params![id, src.to_string()])?;
        }
        if let Some(ext) = p.external_id {
            self.push("UPDATE users SET external_id = $2 WHERE id = $1", params![id, ext.to_string()])?;
        }
        if let Some(dn) = p.dn {
            self.push(
                "UPDATE users SET dn = $2, dn_key = $3 WHERE id = $1",
                params![id, dn.to_string(), normalize_dn(dn)],
            )?;
        }
        if let Some(status) = p.status {
            self.push("UPDATE users SET status = $2 WHERE id = $1", params![id, status.as_str()])?;
        }
        if let Some(missing) = p.missing_since {
            self.push("UPDATE users SET missing_since = $2 WHERE id = $1", params![id, missing])?;
        }
        for (field, value) in &p.dir_values {
            self.set_json("dir_values", id, field, *value)?;
        }
        for (field, value) in &p.fields {
            match CORE_FIELDS.iter().position(|c| c == field) {
                Some(i) => self.push(CORE_UPDATES[i], params![id, value.map(str::to_string)])?,
                None => self.set_json("fields", id, field, *value)?,
            }
        }
        self.push("UPDATE users SET updated_at = $2 WHERE id = $1", params![id, now])
    }

    fn delete_user(&mut self, id: i64) -> Result<(), StoreError> {
        self.push("DELETE FROM user_groups WHERE user_id = $1", params![id])?;
        self.push("DELETE FROM users WHERE id = $1", params![id])
    }

    fn insert_group(&mut self, g: &NewGroup, now: Timestamp) -> Result<i64, StoreError> {
        let id = self.next_id("groups")?;
        self.push(
            "INSERT INTO groups (id, source, external_id, name, name_key, dn, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            params![id, g.source.clone(), g.external_id.clone(), g.name.clone(), name_key(&g.name), g.dn.clone(), now],
        )?;
        Ok(id)
    }

    fn update_group(&mut self, id: i64, name: &str, dn: &str, now: Timestamp) -> Result<(), StoreError> {
        self.push(
            "UPDATE groups SET name = $2, name_key = $3, dn = $4, updated_at = $5 WHERE id = $1",
            params![id, name.to_string(), name_key(name), dn.to_string(), now],
        )
    }

    fn delete_group(&mut self, id: i64) -> Result<(), StoreError> {
        self.push("DELETE FROM user_groups WHERE group_id = $1", params![id])?;
        self.push("DELETE FROM group_groups WHERE child_id = $1 OR parent_id = $1", params![id])?;
        self.push("DELETE FROM groups WHERE id = $1", params![id])
    }

    fn add_user_member(&mut self, user_id: i64, group_id: i64) -> Result<(), StoreError> {
        super::bulk::push_member(&mut self.pending, user_id, group_id);
        self.counted()
    }

    fn remove_user_member(&mut self, user_id: i64, group_id: i64) -> Result<(), StoreError> {
        self.push("DELETE FROM user_groups WHERE user_id = $1 AND group_id = $2", params![user_id, group_id])
    }

    fn add_group_member(&mut self, child_id: i64, parent_id: i64) -> Result<(), StoreError> {
        self.push(
            "INSERT INTO group_groups (child_id, parent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            params![child_id, parent_id],
        )
    }

    fn remove_group_member(&mut self, child_id: i64, parent_id: i64) -> Result<(), StoreError> {
        self.push("DELETE FROM group_groups WHERE child_id = $1 AND parent_id = $2", params![child_id, parent_id])
    }

    fn audit(&mut self, a: &AuditRecord) -> Result<(), StoreError> {
        self.lock_feed()?;
        super::bulk::push_audit(&mut self.pending, a);
        self.counted()
    }

    fn insert_created(
        &mut self,
        users: &[NewUser],
        run_id: Option<i64>,
        now: Timestamp,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        self.lock_feed()?;
        let user_ids = self.next_ids("users", users.len())?;
        let audit_ids = self.next_ids("audit", users.len())?;
        let rows = super::bulk::Created::new(users, &user_ids, &audit_ids, run_id, now);
        self.written += 2 * users.len();
        let name = self.inner.name.clone();
        let conn = self.conn();
        block(&self.inner, rows.write(conn)).map_err(|e| explain(&name, e))?;
        Ok(user_ids.into_iter().zip(audit_ids).collect())
    }

    fn remove_created(&mut self, user_id: i64, audit_id: i64) -> Result<(), StoreError> {
        self.push("DELETE FROM audit WHERE id = $1 AND user_id = $2", params![audit_id, user_id])?;
        self.delete_user(user_id)
    }

    fn replace_created(&mut self, user_id: i64, audit_id: i64, u: &NewUser, now: Timestamp) -> Result<(), StoreError> {
        let mut p = params![user_id];
        p.extend(user_params(u));
        p.push(Box::new(now));
        self.push(
            "UPDATE users SET source = $2, external_id = $3, username = $4, username_key = $5, dn = $6, dn_key = $7, status = $8, full_name = $9, email = $10, department = $11, office = $12, card_number = $13, card_number2 = $14, fields = $15, dir_values = $16, updated_at = $17 WHERE id = $1",
            p,
        )?;
        self.push(
            "UPDATE audit SET name = $3, new = $4 WHERE id = $1 AND user_id = $2",
            params![audit_id, user_id, u.username.to_string(), created_summary(u)],
        )
    }

    fn set_sync_state(&mut self, source: &str, s: &SavedState, full: bool, now: Timestamp) -> Result<(), StoreError> {
        self.push(
            "INSERT INTO sync_state (source, state, fingerprint, last_full_at, updated_at) \
             VALUES ($1, $2, $3, CASE WHEN $4 THEN $5 END, $5) \
             ON CONFLICT (source) DO UPDATE SET state = excluded.state, fingerprint = excluded.fingerprint, \
             updated_at = excluded.updated_at, last_full_at = CASE WHEN $4 THEN $5 ELSE sync_state.last_full_at END",
            params![source.to_string(), s.state.clone(), s.fingerprint.clone(), full, now],
        )
    }

    fn enqueue_writeback(&mut self, w: &NewWriteback, now: Timestamp) -> Result<(), StoreError> {
        let own = |v: Option<&str>| v.map(str::to_string);
        self.push(
            "INSERT INTO writeback (user_id, field, attribute, value, old_value, base_value, status, attempts, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) \
             ON CONFLICT (user_id, field) DO UPDATE SET attribute = excluded.attribute, value = excluded.value, \
             old_value = excluded.old_value, base_value = excluded.base_value, status = 'pending', attempts = 0, \
             last_code = NULL, last_error = NULL, next_attempt_at = NULL, updated_at = excluded.updated_at, done_at = NULL",
            params![w.user_id, w.field.to_string(), w.attribute.to_string(), own(w.value), own(w.old_value), own(w.base_value), now],
        )
    }

    fn field_values(&mut self, field: &str) -> Result<Vec<String>, StoreError> {
        let field = field.to_string();
        self.read(move |c| {
            Box::pin(async move {
                let rows = match CORE_FIELDS.iter().position(|f| *f == field) {
                    Some(i) => c.query(CORE_VALUES[i], &[]).await?,
                    None => {
                        c.query(
                            "SELECT fields::jsonb ->> $1 FROM users WHERE fields::jsonb ->> $1 IS NOT NULL",
                            &[&field],
                        )
                        .await?
                    }
                };
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    fn finish_run(&mut self, run: &RunRecord) -> Result<(), StoreError> {
        let c = &run.counts;
        let n = |v: u64| v as i64;
        self.push(
            "UPDATE runs SET finished_at = $2, status = $3, created = $4, updated = $5, renamed = $6, disabled = $7, deleted = $8, unchanged = $9, skipped = $10, groups_created = $11, groups_updated = $12, groups_deleted = $13, memberships_added = $14, memberships_removed = $15, message = $16, mode = $17 WHERE id = $1",
            params![
                run.id,
                run.finished_at,
                run.status.as_str(),
                n(c.created),
                n(c.updated),
                n(c.renamed),
                n(c.disabled),
                n(c.deleted),
                n(c.unchanged),
                n(c.skipped),
                n(c.groups_created),
                n(c.groups_updated),
                n(c.groups_deleted),
                n(c.memberships_added),
                n(c.memberships_removed),
                run.message.clone(),
                run.mode.as_str(),
            ],
        )?;
        for (kind, list) in [("error", &run.errors), ("warning", &run.warnings)] {
            for e in list {
                self.push(
                    "INSERT INTO run_errors (run_id, kind, dn, reason) VALUES ($1, $2, $3, $4)",
                    params![run.id, kind, e.dn.clone(), e.reason.clone()],
                )?;
            }
        }
        if let Some(slot) = run.origin.slot {
            for source in run.sources.names() {
                self.push(
                    "INSERT INTO schedule_slots (source, slot, run_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    params![source.clone(), slot, run.id],
                )?;
            }
        }
        Ok(())
    }

    fn record_removals(&mut self, run_id: i64, removals: &[PlannedRemoval]) -> Result<(), StoreError> {
        for r in removals {
            self.push(
                "INSERT INTO run_removals (run_id, kind, target_id, name, action) VALUES ($1, $2, $3, $4, $5)",
                params![run_id, r.kind.as_str(), r.target_id, r.name.clone(), r.action.as_str()],
            )?;
        }
        Ok(())
    }

    fn add_to_run(
        &mut self,
        run_id: i64,
        counts: &crate::model::records::Counts,
        errors: &[crate::model::EntryError],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.add_counts(run_id, counts, errors, at)
    }

    fn scim_put(&mut self, row: &crate::store::ScimRow) -> Result<(), StoreError> {
        self.put_scim(row)
    }

    fn scim_delete(&mut self, source: &str, id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.delete_scim(source, id, at)
    }

    fn user_image(&mut self, id: i64) -> Result<Option<crate::model::images::UserImage>, StoreError> {
        self.read_user_image(id)
    }

    fn group_image(&mut self, id: i64) -> Result<Option<crate::model::images::GroupImage>, StoreError> {
        self.read_group_image(id)
    }

    fn restore_user(&mut self, u: &crate::model::images::UserImage, now: Timestamp) -> Result<(), StoreError> {
        self.write_user_image(u, now)
    }

    fn restore_group(&mut self, g: &crate::model::images::GroupImage, now: Timestamp) -> Result<(), StoreError> {
        self.write_group_image(g, now)
    }

    fn record_plan(&mut self, run_id: i64, summary: &str) -> Result<(), StoreError> {
        self.push(
            "INSERT INTO run_plans (run_id, summary) VALUES ($1, $2) ON CONFLICT (run_id) DO UPDATE SET summary = excluded.summary",
            params![run_id, summary.to_string()],
        )
    }
}

impl PgTx {
    /// Sets or removes one key of a JSON column (`fields`, `dir_values`).
    fn set_json(&mut self, column: &str, id: i64, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        let (set, remove) = match column {
            "fields" => (
                "UPDATE users SET fields = (fields::jsonb || jsonb_build_object($2::text, $3::text))::text WHERE id = $1",
                "UPDATE users SET fields = (fields::jsonb - $2::text)::text WHERE id = $1",
            ),
            _ => (
                "UPDATE users SET dir_values = (dir_values::jsonb || jsonb_build_object($2::text, $3::text))::text WHERE id = $1",
                "UPDATE users SET dir_values = (dir_values::jsonb - $2::text)::text WHERE id = $1",
            ),
        };
        match value {
            Some(v) => self.push(set, params![id, key.to_string(), v.to_string()]),
            None => self.push(remove, params![id, key.to_string()]),
        }
    }
}

/// One update per core field (column names from the fixed list, never from input).
const CORE_UPDATES: [&str; 6] = [
    "UPDATE users SET full_name = $2 WHERE id = $1",
    "UPDATE users SET email = $2 WHERE id = $1",
    "UPDATE users SET department = $2 WHERE id = $1",
    "UPDATE users SET office = $2 WHERE id = $1",
    "UPDATE users SET card_number = $2 WHERE id = $1",
    "UPDATE users SET card_number2 = $2 WHERE id = $1",
];

/// Every value of one core field.
const CORE_VALUES: [&str; 6] = [
    "SELECT full_name FROM users WHERE full_name IS NOT NULL",
    "SELECT email FROM users WHERE email IS NOT NULL",
    "SELECT department FROM users WHERE department IS NOT NULL",
    "SELECT office FROM users WHERE office IS NOT NULL",
    "SELECT card_number FROM users WHERE card_number IS NOT NULL",
    "SELECT card_number2 FROM users WHERE card_number2 IS NOT NULL",
];
