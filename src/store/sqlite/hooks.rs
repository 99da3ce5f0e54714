//! SQLite's webhook states and claims.

use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::store::{PendingBatch, StoreError, WebhookState};
use crate::time::Timestamp;

const COLUMNS: &str =
    "name, cursor, batch_id, batch_upto, batch_body, batch_count, failures, last_delivery, last_error, next_try";

fn row(r: &Row<'_>) -> rusqlite::Result<WebhookState> {
    let batch = match (r.get::<_, Option<String>>(2)?, r.get::<_, Option<i64>>(3)?, r.get::<_, Option<String>>(4)?) {
        (Some(id), Some(upto), Some(body)) => {
            Some(PendingBatch { id, upto, body, count: r.get::<_, Option<i64>>(5)?.unwrap_or(0) as u32 })
        }
        _ => None,
    };
    Ok(WebhookState {
        name: r.get(0)?,
        cursor: r.get(1)?,
        batch,
        failures: r.get::<_, i64>(6)? as u32,
        last_delivery: r.get(7)?,
        last_error: r.get(8)?,
        next_try: r.get(9)?,
    })
}

impl SqliteStore {
    pub(super) fn webhook_row(&self, name: &str) -> Result<Option<WebhookState>, StoreError> {
        let err = self.err();
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM webhooks WHERE name = ?1"))
                .and_then(|mut st| st.query_row([name], row).optional())
                .map_err(&err)
        })
    }

    pub(super) fn save_webhook_row(&self, w: &WebhookState) -> Result<(), StoreError> {
        let err = self.err();
        let b = w.batch.as_ref();
        self.write()
            .execute(
                &format!(
                    "INSERT OR REPLACE INTO webhooks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    w.name,
                    w.cursor,
                    b.map(|b| &b.id),
                    b.map(|b| b.upto),
                    b.map(|b| &b.body),
                    b.map(|b| b.count as i64),
                    w.failures as i64,
                    w.last_delivery,
                    w.last_error,
                    w.next_try
                ],
            )
            .map_err(err)
            .map(drop)
    }

    pub(super) fn change_head_id(&self) -> Result<i64, StoreError> {
        let err = self.err();
        self.read(|conn| conn.query_row("SELECT coalesce(max(id), 0) FROM audit", [], |r| r.get(0)).map_err(&err))
    }

    pub(super) fn claim_row(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let err = self.err();
        let n = self
            .write()
            .execute(
                "INSERT INTO claims (name, owner, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
                 WHERE claims.owner = excluded.owner OR claims.until < ?4",
                params![name, owner, until, now],
            )
            .map_err(err)?;
        Ok(n == 1)
    }

    pub(super) fn release_row(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let err = self.err();
        self.write().execute("DELETE FROM claims WHERE name = ?1 AND owner = ?2", params![name, owner]).map_err(err)?;
        Ok(())
    }
}
