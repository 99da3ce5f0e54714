//! The write-back queue's SQL: listing items with their users, and recording
//! push outcomes (the directory's value, or the user's field when the
//! directory's value was taken).

use crate::time::Timestamp;
use std::path::Path;

use rusqlite::{params, Connection};

use super::{backend, SqliteTx};
use crate::model::records::AuditRecord;
use crate::store::{PushOutcome, QueueStatus, StoreError, StoreTx, UserPatch, WritebackItem};

/// Items with one of `statuses`, oldest first.
pub(super) fn items(
    conn: &Connection,
    path: &Path,
    statuses: &[QueueStatus],
) -> Result<Vec<WritebackItem>, StoreError> {
    let err = backend(path);
    let placeholders = (1..=statuses.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT w.id, w.user_id, u.username, u.source, u.dn, w.field, w.attribute, w.value, w.old_value, w.base_value, \
         w.status, w.attempts, w.last_code, w.last_error, w.next_attempt_at, w.created_at, w.updated_at, w.done_at, \
         u.external_id \
         FROM writeback w JOIN users u ON u.id = w.user_id WHERE w.status IN ({placeholders}) ORDER BY w.id"
    );
    let mut st = conn.prepare(&sql).map_err(&err)?;
    let rows = st
        .query_map(rusqlite::params_from_iter(statuses.iter().map(|s| s.as_str())), |r| {
            Ok(WritebackItem {
                id: r.get(0)?,
                user_id: r.get(1)?,
                username: r.get(2)?,
                source: r.get(3)?,
                dn: r.get(4)?,
                field: r.get(5)?,
                attribute: r.get(6)?,
                value: r.get(7)?,
                old_value: r.get(8)?,
                base_value: r.get(9)?,
                status: {
                    let s: String = r.get(10)?;
                    QueueStatus::parse(&s).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            10,
                            rusqlite::types::Type::Text,
                            format!("queue status {s:?}").into(),
                        )
                    })?
                },
                attempts: r.get(11)?,
                last_code: r.get(12)?,
                last_error: r.get(13)?,
                next_attempt_at: r.get(14)?,
                created_at: r.get(15)?,
                updated_at: r.get(16)?,
                done_at: r.get(17)?,
                external_id: r.get(18)?,
            })
        })
        .map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}

/// Records one push outcome inside a write-back transaction.
pub(super) fn finish_one(
    stx: &mut SqliteTx,
    item: &WritebackItem,
    outcome: &PushOutcome,
    now: Timestamp,
) -> Result<(), StoreError> {
    match outcome {
        PushOutcome::Done => {
            let patch = UserPatch { dir_values: vec![(&item.field, item.value.as_deref())], ..UserPatch::default() };
            stx.update_user(item.user_id, &patch, now)?;
            stx.exec(
                "UPDATE writeback SET status = 'done', done_at = ?2, updated_at = ?2, last_error = NULL, last_code = NULL WHERE id = ?1",
                params![item.id, now],
            )?;
        }
        PushOutcome::Failed { code, error, retry_at } => {
            stx.exec(
                "UPDATE writeback SET status = 'failed', attempts = attempts + 1, last_code = ?2, last_error = ?3, \
                 next_attempt_at = ?4, updated_at = ?5 WHERE id = ?1",
                params![item.id, code, error, retry_at, now],
            )?;
        }
        PushOutcome::Conflict { error } => {
            stx.exec(
                "UPDATE writeback SET status = 'conflict', last_error = ?2, updated_at = ?3 WHERE id = ?1",
                params![item.id, error, now],
            )?;
        }
        PushOutcome::TookDirectory { value } => {
            let patch = UserPatch {
                fields: vec![(&item.field, value.as_deref())],
                dir_values: vec![(&item.field, value.as_deref())],
                ..UserPatch::default()
            };
            stx.update_user(item.user_id, &patch, now)?;
            stx.audit(&AuditRecord {
                run_id: None,
                at: now,
                user_id: Some(item.user_id),
                name: item.username.clone(),
                action: "conflict_directory_wins".into(),
                field: Some(item.field.clone()),
                old: item.value.clone(),
                new: value.clone(),
                image: None,
            })?;
            stx.exec(
                "UPDATE writeback SET status = 'done', done_at = ?2, updated_at = ?2, \
                 last_error = 'conflict: the directory''s value was taken (on_conflict = \"directory\")' WHERE id = ?1",
                params![item.id, now],
            )?;
        }
    }
    Ok(())
}
