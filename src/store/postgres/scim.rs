//! PostgreSQL's SCIM tables: resources by id, name key and externalId
//! (live ones only), a source's resources in id order, the push guard's
//! window, and push runs gathered by source and time. The same statements
//! as SQLite's, in PostgreSQL's spelling.

use tokio_postgres::Row;

use super::bulk::Param;
use super::tx::PgTx;
use super::{explain, PgStore};
use crate::model::records::{Counts, RunOrigin};
use crate::model::EntryError;
use crate::store::{PushWindow, ScimKey, ScimRow, StoreError};
use crate::time::Timestamp;

const COLUMNS: &str = "id, source, kind, name_key, external_id, body, created, modified, version";

fn row(r: &Row) -> ScimRow {
    ScimRow {
        id: r.get(0),
        source: r.get(1),
        kind: r.get(2),
        name_key: r.get(3),
        external_id: r.get(4),
        body: r.get(5),
        created: r.get(6),
        modified: r.get(7),
        version: r.get(8),
    }
}

impl PgStore {
    async fn scim_rows(
        &self,
        sql: &str,
        p: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<ScimRow>, StoreError> {
        let conn = self.conn().await?;
        let st = conn.prepare_cached(sql).await.map_err(|e| explain(&self.inner.name, e))?;
        let rows = conn.query(&st, p).await.map_err(|e| explain(&self.inner.name, e))?;
        Ok(rows.iter().map(row).collect())
    }

    pub(super) fn scim_find_rows(
        &self,
        source: &str,
        kind: &str,
        key: ScimKey,
        value: &str,
    ) -> Result<Vec<ScimRow>, StoreError> {
        let column = match key {
            ScimKey::Id => "id",
            ScimKey::Name => "name_key",
            ScimKey::ExternalId => "external_id",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM scim_resources WHERE source = $1 AND kind = $2 AND {column} = $3 AND deleted IS NULL ORDER BY id"
        );
        self.block(self.scim_rows(&sql, &[&source, &kind, &value]))
    }

    pub(super) fn scim_scan_rows(
        &self,
        source: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScimRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM scim_resources WHERE source = $1 AND kind = $2 AND deleted IS NULL AND id > $3 ORDER BY id LIMIT $4"
        );
        let (after, limit) = (after.unwrap_or(""), limit as i64);
        self.block(self.scim_rows(&sql, &[&source, &kind, &after, &limit]))
    }

    async fn count(&self, sql: &str, p: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        let st = conn.prepare_cached(sql).await.map_err(|e| explain(&self.inner.name, e))?;
        let r = conn.query_one(&st, p).await.map_err(|e| explain(&self.inner.name, e))?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    pub(super) fn scim_count_rows(&self, source: &str, kind: &str) -> Result<u64, StoreError> {
        self.block(self.count(
            "SELECT count(*) FROM scim_resources WHERE source = $1 AND kind = $2 AND deleted IS NULL",
            &[&source, &kind],
        ))
    }

    pub(super) fn push_window_of(&self, source: &str, since: Timestamp) -> Result<PushWindow, StoreError> {
        let runs_since = since.minus(crate::store::PUSH_RUN_SLACK);
        self.block(async {
            let removed = self
                .count(
                    "SELECT count(*) FROM audit a JOIN runs r ON r.id = a.run_id WHERE r.source = $1 AND r.mode IN ('push', 'live') AND r.started_at >= $3 AND a.at >= $2 AND a.action IN ('disable', 'delete')",
                    &[&source, &since, &runs_since],
                )
                .await?;
            let active =
                self.count("SELECT count(*) FROM users WHERE source = $1 AND status = 'active'", &[&source]).await?;
            Ok(PushWindow { removed, active })
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
        let trigger = o.trigger.map(|t| t.as_str());
        self.block(async {
            let conn = self.conn().await?;
            let err = |e| explain(&self.inner.name, e);
            let found = conn
                .query_opt(
                    "SELECT id FROM runs WHERE source = $1 AND mode = 'push' AND status = $4 AND started_at >= $2 AND instance IS NOT DISTINCT FROM $3 ORDER BY id DESC LIMIT 1",
                    &[&source, &since, &o.instance, &status],
                )
                .await
                .map_err(err)?;
            if let Some(r) = found {
                return Ok(r.get(0));
            }
            let r = conn
                .query_one(
                    "INSERT INTO runs (started_at, finished_at, source, status, mode, triggered_by, instance) VALUES ($1, $1, $2, $5, 'push', $3, $4) RETURNING id",
                    &[&at, &source, &trigger, &o.instance, &status],
                )
                .await
                .map_err(err)?;
            Ok(r.get(0))
        })
    }
}

impl PgStore {
    pub(super) fn approved_removals(&self, source: &str, since: Timestamp) -> Result<Vec<i64>, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let rows = conn
                .query(
                    "SELECT rr.target_id FROM run_removals rr JOIN runs r ON r.id = rr.run_id WHERE r.source = $1 AND r.mode = 'push' AND r.status = 'ok' AND r.started_at >= $2 AND rr.kind = 'user'",
                    &[&source, &since],
                )
                .await
                .map_err(|e| explain(&self.inner.name, e))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

impl PgTx {
    pub(super) fn add_counts(
        &mut self,
        run_id: i64,
        c: &Counts,
        errors: &[EntryError],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let n = |v: u64| v as i64;
        let p: Vec<Param> = vec![
            Box::new(run_id),
            Box::new(at),
            Box::new(n(c.created)),
            Box::new(n(c.updated)),
            Box::new(n(c.renamed)),
            Box::new(n(c.disabled)),
            Box::new(n(c.deleted)),
            Box::new(n(c.skipped)),
            Box::new(n(c.groups_created)),
            Box::new(n(c.groups_updated)),
            Box::new(n(c.groups_deleted)),
            Box::new(n(c.memberships_added)),
            Box::new(n(c.memberships_removed)),
        ];
        self.push(
            "UPDATE runs SET finished_at = $2, created = created + $3, updated = updated + $4, renamed = renamed + $5, disabled = disabled + $6, deleted = deleted + $7, skipped = skipped + $8, groups_created = groups_created + $9, groups_updated = groups_updated + $10, groups_deleted = groups_deleted + $11, memberships_added = memberships_added + $12, memberships_removed = memberships_removed + $13 WHERE id = $1",
            p,
        )?;
        for e in errors {
            let p: Vec<Param> = vec![Box::new(run_id), Box::new(e.dn.clone()), Box::new(e.reason.clone())];
            self.push("INSERT INTO run_errors (run_id, kind, dn, reason) VALUES ($1, 'error', $2, $3)", p)?;
        }
        Ok(())
    }

    pub(super) fn put_scim(&mut self, r: &ScimRow) -> Result<(), StoreError> {
        let p: Vec<Param> = vec![
            Box::new(r.id.clone()),
            Box::new(r.source.clone()),
            Box::new(r.kind.clone()),
            Box::new(r.name_key.clone()),
            Box::new(r.external_id.clone()),
            Box::new(r.body.clone()),
            Box::new(r.created),
            Box::new(r.modified),
            Box::new(r.version),
        ];
        self.push(
            "INSERT INTO scim_resources (id, source, kind, name_key, external_id, body, created, modified, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET name_key = excluded.name_key, external_id = excluded.external_id, body = excluded.body, modified = excluded.modified, version = excluded.version, deleted = NULL",
            p,
        )
    }

    pub(super) fn delete_scim(&mut self, source: &str, id: &str, at: Timestamp) -> Result<(), StoreError> {
        let p: Vec<Param> = vec![Box::new(source.to_string()), Box::new(id.to_string()), Box::new(at)];
        self.push(
            "UPDATE scim_resources SET deleted = $3, body = '{}' WHERE source = $1 AND id = $2 AND deleted IS NULL",
            p,
        )
    }
}
