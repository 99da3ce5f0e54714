//! Recording how write-back pushes ended on PostgreSQL: the item's status,
//! and the user's directory value (or field, when the directory's value was
//! taken), in the caller's transaction.

use super::tx::PgTx;
use crate::model::records::AuditRecord;
use crate::store::{PushOutcome, StoreError, StoreTx, UserPatch, WritebackItem};
use crate::time::Timestamp;

pub(super) fn finish_one(
    tx: &mut PgTx,
    item: &WritebackItem,
    outcome: &PushOutcome,
    now: Timestamp,
) -> Result<(), StoreError> {
    match outcome {
        PushOutcome::Done => {
            let patch = UserPatch { dir_values: vec![(&item.field, item.value.as_deref())], ..UserPatch::default() };
            tx.update_user(item.user_id, &patch, now)?;
            tx.push(
                "UPDATE writeback SET status = 'done', done_at = $2, updated_at = $2, last_error = NULL, last_code = NULL WHERE id = $1",
                vec![Box::new(item.id), Box::new(now)],
            )
        }
        PushOutcome::Failed { code, error, retry_at } => tx.push(
            "UPDATE writeback SET status = 'failed', attempts = attempts + 1, last_code = $2, last_error = $3, \
             next_attempt_at = $4, updated_at = $5 WHERE id = $1",
            vec![
                Box::new(item.id),
                Box::new(code.map(i64::from)),
                Box::new(error.clone()),
                Box::new(*retry_at),
                Box::new(now),
            ],
        ),
        PushOutcome::Conflict { error } => tx.push(
            "UPDATE writeback SET status = 'conflict', last_error = $2, updated_at = $3 WHERE id = $1",
            vec![Box::new(item.id), Box::new(error.clone()), Box::new(now)],
        ),
        PushOutcome::TookDirectory { value } => {
            let patch = UserPatch {
                fields: vec![(&item.field, value.as_deref())],
                dir_values: vec![(&item.field, value.as_deref())],
                ..UserPatch::default()
            };
            tx.update_user(item.user_id, &patch, now)?;
            tx.audit(&AuditRecord {
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
            tx.push(
                "UPDATE writeback SET status = 'done', done_at = $2, updated_at = $2, \
                 last_error = 'conflict: the directory''s value was taken (on_conflict = \"directory\")' WHERE id = $1",
                vec![Box::new(item.id), Box::new(now)],
            )
        }
    }
}
