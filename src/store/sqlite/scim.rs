//! SQLite's SCIM tables: resources by id, name key and externalId (live
//! ones only), a source's resources in id order, the push guard's window,
//! and push runs gathered by source and time.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::tx::SqliteTx;
use super::SqliteStore;
use crate::model::records::{Counts, RunOrigin};
use crate::model::EntryError;
use crate::store::{PushWindow, ScimKey, ScimRow, StoreError};
use crate::time::Timestamp;

const COLUMNS: &str = "id, source, kind, name_key, external_id, body, created, modified, version";

fn row(r: &Row<'_>) -> rusqlite::Result<ScimRow> {
    Ok(ScimRow {
        id: r.get(0)?,
        source: r.get(1)?,
        kind: r.get(2)?,
        name_key: r.get(3)?,
        external_id: r.get(4)?,
        body: r.get(5)?,
        created: r.get(6)?,
        modified: r.get(7)?,
        version: r.get(8)?,
    })
}

fn rows(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    err: &dyn Fn(rusqlite::Error) -> StoreError,
) -> Result<Vec<ScimRow>, StoreError> {
    let mut st = conn.prepare_cached(sql).map_err(err)?;
    let found = st.query_map(p, row).map_err(err)?;
    found.collect::<Result<_, _>>().map_err(err)
}

impl SqliteStore {
    pub(super) fn scim_find_rows(
        &self,
        source: &str,
        kind: &str,
        key: ScimKey,
        value: &str,
    ) -> Result<Vec<ScimRow>, StoreError> {
        let err = self.err();
        let column = match key {
            ScimKey::Id => "id",
            ScimKey::Name => "name_key",
            ScimKey::ExternalId => "external_id",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM scim_resources WHERE source = ?1 AND kind = ?2 AND {column} = ?3 AND deleted IS NULL ORDER BY id"
        );
        self.read(|conn| rows(conn, &sql, params![source, kind, value], &err))
    }

    pub(super) fn scim_scan_rows(
        &self,
        source: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScimRow>, StoreError> {
        let err = self.err();
        let sql = format!(
            "SELECT {COLUMNS} FROM scim_resources WHERE source = ?1 AND kind = ?2 AND deleted IS NULL AND id > ?3 ORDER BY id LIMIT ?4"
        );
        self.read(|conn| rows(conn, &sql, params![source, kind, after.unwrap_or(""), limit as i64], &err))
    }

    pub(super) fn scim_count_rows(&self, source: &str, kind: &str) -> Result<u64, StoreError> {
        let err = self.err();
        self.read(|conn| {
            conn.query_row(
                "SELECT count(*) FROM scim_resources WHERE source = ?1 AND kind = ?2 AND deleted IS NULL",
                params![source, kind],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(&err)
        })
    }

    pub(super) fn push_window_of(&self, source: &str, since: Timestamp) -> Result<PushWindow, StoreError> {
        let err = self.err();
        self.read(|conn| {
            let removed: i64 = conn
                .query_row(
                    "SELECT count(*) FROM audit a JOIN runs r ON r.id = a.run_id WHERE r.source = ?1 AND r.mode IN ('push', 'live') AND r.started_at >= ?3 AND a.at >= ?2 AND a.action IN ('disable', 'delete')",
                    params![source, since, since.minus(crate::store::PUSH_RUN_SLACK)],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            let active: i64 = conn
                .query_row(
                    "SELECT count(*) FROM users WHERE source = ?1 AND status = 'active'",
                    [source],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            Ok(PushWindow { removed: removed as u64, active: active as u64 })
        })
    }

    pub(super) fn open_push_run(
        &self,
        source: &str,
        since: Timestamp,
        o: &RunOrigin,
        at: Timestamp,
        held: bool,
    ) -> Result<i64, StoreError> {
        let status = if held { "blocked" } else { "ok" };
        let err = self.err();
        let conn = self.write();
        let found: Option<i64> = conn
            .query_row(
                "SELECT id FROM runs WHERE source = ?1 AND mode = 'push' AND status = ?4 AND started_at >= ?2 AND instance IS ?3 ORDER BY id DESC LIMIT 1",
                params![source, since, o.instance, status],
                |r| r.get(0),
            )
            .optional()
            .map_err(&err)?;
        if let Some(id) = found {
            return Ok(id);
        }
        conn.execute(
            "INSERT INTO runs (started_at, finished_at, source, status, mode, triggered_by, instance) VALUES (?1, ?1, ?2, ?5, 'push', ?3, ?4)",
            params![at, source, o.trigger.map(|t| t.as_str()), o.instance, status],
        )
        .map_err(&err)?;
        Ok(conn.last_insert_rowid())
    }
}

impl SqliteStore {
    pub(super) fn approved_removals(&self, source: &str, since: Timestamp) -> Result<Vec<i64>, StoreError> {
        let err = self.err();
        self.read(|conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT rr.target_id FROM run_removals rr JOIN runs r ON r.id = rr.run_id WHERE r.source = ?1 AND r.mode = 'push' AND r.status = 'ok' AND r.started_at >= ?2 AND rr.kind = 'user'",
                )
                .map_err(&err)?;
            let ids = st.query_map(params![source, since], |r| r.get(0)).map_err(&err)?;
            ids.collect::<Result<_, _>>().map_err(&err)
        })
    }
}

impl SqliteTx<'_> {
    pub(super) fn add_counts(
        &mut self,
        run_id: i64,
        c: &Counts,
        errors: &[EntryError],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let n = |v: u64| v as i64;
        self.exec(
            "UPDATE runs SET finished_at = ?2, created = created + ?3, updated = updated + ?4, renamed = renamed + ?5, disabled = disabled + ?6, deleted = deleted + ?7, skipped = skipped + ?8, groups_created = groups_created + ?9, groups_updated = groups_updated + ?10, groups_deleted = groups_deleted + ?11, memberships_added = memberships_added + ?12, memberships_removed = memberships_removed + ?13 WHERE id = ?1",
            params![
                run_id,
                at,
                n(c.created),
                n(c.updated),
                n(c.renamed),
                n(c.disabled),
                n(c.deleted),
                n(c.skipped),
                n(c.groups_created),
                n(c.groups_updated),
                n(c.groups_deleted),
                n(c.memberships_added),
                n(c.memberships_removed)
            ],
        )?;
        for e in errors {
            self.exec(
                "INSERT INTO run_errors (run_id, kind, dn, reason) VALUES (?1, 'error', ?2, ?3)",
                params![run_id, e.dn, e.reason],
            )?;
        }
        Ok(())
    }

    pub(super) fn put_scim(&mut self, r: &ScimRow) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO scim_resources (id, source, kind, name_key, external_id, body, created, modified, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (id) DO UPDATE SET name_key = excluded.name_key, external_id = excluded.external_id, body = excluded.body, modified = excluded.modified, version = excluded.version, deleted = NULL",
            params![r.id, r.source, r.kind, r.name_key, r.external_id, r.body, r.created, r.modified, r.version],
        )
        .map(drop)
    }

    pub(super) fn delete_scim(&mut self, source: &str, id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.exec(
            "UPDATE scim_resources SET deleted = ?3, body = '{}' WHERE source = ?1 AND id = ?2 AND deleted IS NULL",
            params![source, id, at],
        )
        .map(drop)
    }
}
