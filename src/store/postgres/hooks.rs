//! PostgreSQL's webhook states and claims: SQLite's statements in
//! PostgreSQL's spelling.

use tokio_postgres::Row;

use super::{explain, PgStore};
use crate::store::{PendingBatch, StoreError, WebhookState};
use crate::time::Timestamp;

const COLUMNS: &str =
    "name, cursor, batch_id, batch_upto, batch_body, batch_count, failures, last_delivery, last_error, next_try";

fn row(r: &Row) -> WebhookState {
    let batch = match (r.get::<_, Option<String>>(2), r.get::<_, Option<i64>>(3), r.get::<_, Option<String>>(4)) {
        (Some(id), Some(upto), Some(body)) => {
            Some(PendingBatch { id, upto, body, count: r.get::<_, Option<i64>>(5).unwrap_or(0) as u32 })
        }
        _ => None,
    };
    WebhookState {
        name: r.get(0),
        cursor: r.get(1),
        batch,
        failures: r.get::<_, i64>(6) as u32,
        last_delivery: r.get(7),
        last_error: r.get(8),
        next_try: r.get(9),
    }
}

impl PgStore {
    pub(super) fn webhook_row(&self, name: &str) -> Result<Option<WebhookState>, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE name = $1");
            let found = conn.query_opt(&sql, &[&name]).await.map_err(|e| explain(&self.inner.name, e))?;
            Ok(found.as_ref().map(row))
        })
    }

    pub(super) fn save_webhook_row(&self, w: &WebhookState) -> Result<(), StoreError> {
        let b = w.batch.as_ref();
        let (id, upto, body, count) =
            (b.map(|b| &b.id), b.map(|b| b.upto), b.map(|b| &b.body), b.map(|b| b.count as i64));
        let failures = w.failures as i64;
        let sql = format!(
            "INSERT INTO webhooks ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (name) DO UPDATE SET cursor = $2, batch_id = $3, batch_upto = $4, batch_body = $5,
             batch_count = $6, failures = $7, last_delivery = $8, last_error = $9, next_try = $10"
        );
        self.exec(
            &sql,
            &[&w.name, &w.cursor, &id, &upto, &body, &count, &failures, &w.last_delivery, &w.last_error, &w.next_try],
        )
        .map(drop)
    }

    pub(super) fn change_head_id(&self) -> Result<i64, StoreError> {
        self.block(async {
            let conn = self.conn().await?;
            let r = conn
                .query_one("SELECT coalesce(max(id), 0)::BIGINT FROM audit", &[])
                .await
                .map_err(|e| explain(&self.inner.name, e))?;
            Ok(r.get(0))
        })
    }

    pub(super) fn claim_row(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = self.exec(
            "INSERT INTO claims (name, owner, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
             WHERE claims.owner = excluded.owner OR claims.until < $4",
            &[&name, &owner, &until, &now],
        )?;
        Ok(n == 1)
    }

    pub(super) fn release_row(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM claims WHERE name = $1 AND owner = $2", &[&name, &owner]).map(drop)
    }
}
