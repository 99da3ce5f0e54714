//! `dirsync store copy`: moves a deployment from one store to another
//! (SQLite to PostgreSQL, or back, or between two of a kind), every table
//! with its ids: users, groups, memberships, runs and their errors, the
//! audit trail (so change-feed cursors stay valid), sync positions, the
//! write-back queue, planned removals and plans. Both stores are brought
//! to this build's schema first; the destination must be empty; both
//! leases are held (no sync writes meanwhile); each table's row count is
//! compared at the end.

use std::sync::Arc;

use super::{StoreConfig, StoreError};

/// One value of a row, as both backends hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
}

/// A column's kind (SQLite keeps booleans as integers, PostgreSQL as booleans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bool,
    Text,
}

/// A table as copied: its name, columns in order, the order rows are read
/// in, and whether its `id` is drawn from a sequence to move on afterwards.
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    pub order: &'static str,
    pub serial_id: bool,
}

use Kind::{Bool, Int, Text};

/// Every table, parents before children.
pub const TABLES: &[Table] = &[
    Table { name: "meta", columns: &[("key", Text), ("value", Text)], order: "key", serial_id: false },
    Table {
        name: "users",
        columns: &[
            ("id", Int),
            ("source", Text),
            ("external_id", Text),
            ("username", Text),
            ("username_key", Text),
            ("dn", Text),
            ("dn_key", Text),
            ("status", Text),
            ("full_name", Text),
            ("email", Text),
            ("department", Text),
            ("office", Text),
            ("card_number", Text),
            ("card_number2", Text),
            ("fields", Text),
            ("dir_values", Text),
            ("created_at", Text),
            ("updated_at", Text),
            ("missing_since", Text),
        ],
        order: "id",
        serial_id: true,
    },
    Table {
        name: "groups",
        columns: &[
            ("id", Int),
            ("source", Text),
            ("external_id", Text),
            ("name", Text),
            ("name_key", Text),
            ("dn", Text),
            ("created_at", Text),
            ("updated_at", Text),
        ],
        order: "id",
        serial_id: true,
    },
    Table {
        name: "user_groups",
        columns: &[("user_id", Int), ("group_id", Int)],
        order: "user_id, group_id",
        serial_id: false,
    },
    Table {
        name: "group_groups",
        columns: &[("child_id", Int), ("parent_id", Int)],
        order: "child_id, parent_id",
        serial_id: false,
    },
    Table {
        name: "runs",
        columns: &[
            ("id", Int),
            ("started_at", Text),
            ("finished_at", Text),
            ("source", Text),
            ("status", Text),
            ("forced", Bool),
            ("mode", Text),
            ("created", Int),
            ("updated", Int),
            ("renamed", Int),
            ("disabled", Int),
            ("deleted", Int),
            ("unchanged", Int),
            ("skipped", Int),
            ("groups_created", Int),
            ("groups_updated", Int),
            ("groups_deleted", Int),
            ("memberships_added", Int),
            ("memberships_removed", Int),
            ("pushed", Int),
            ("push_failed", Int),
            ("conflicts", Int),
            ("message", Text),
            ("triggered_by", Text),
            ("slot", Text),
            ("instance", Text),
        ],
        order: "id",
        serial_id: true,
    },
    Table {
        name: "run_errors",
        columns: &[("run_id", Int), ("kind", Text), ("dn", Text), ("reason", Text)],
        // SQLite's rowid, PostgreSQL's id: the order they were written in.
        order: "@rowid",
        serial_id: false,
    },
    Table {
        name: "audit",
        columns: &[
            ("id", Int),
            ("run_id", Int),
            ("at", Text),
            ("user_id", Int),
            ("name", Text),
            ("action", Text),
            ("field", Text),
            ("old", Text),
            ("new", Text),
            ("image", Text),
        ],
        order: "id",
        serial_id: true,
    },
    Table {
        name: "sync_state",
        columns: &[
            ("source", Text),
            ("state", Text),
            ("fingerprint", Text),
            ("last_full_at", Text),
            ("updated_at", Text),
        ],
        order: "source",
        serial_id: false,
    },
    Table {
        name: "writeback",
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("field", Text),
            ("attribute", Text),
            ("value", Text),
            ("old_value", Text),
            ("base_value", Text),
            ("status", Text),
            ("attempts", Int),
            ("last_code", Int),
            ("last_error", Text),
            ("next_attempt_at", Text),
            ("created_at", Text),
            ("updated_at", Text),
            ("done_at", Text),
        ],
        order: "id",
        serial_id: true,
    },
    Table {
        name: "run_removals",
        columns: &[("run_id", Int), ("kind", Text), ("target_id", Int), ("name", Text), ("action", Text)],
        order: "@rowid",
        serial_id: false,
    },
    Table { name: "run_plans", columns: &[("run_id", Int), ("summary", Text)], order: "run_id", serial_id: false },
    Table {
        name: "schedule_slots",
        columns: &[("source", Text), ("slot", Text), ("run_id", Int)],
        order: "source, slot",
        serial_id: false,
    },
    Table {
        name: "scim_resources",
        columns: &[
            ("id", Text),
            ("source", Text),
            ("kind", Text),
            ("name_key", Text),
            ("external_id", Text),
            ("body", Text),
            ("created", Text),
            ("modified", Text),
            ("version", Int),
            ("deleted", Text),
        ],
        order: "id",
        serial_id: false,
    },
    Table {
        name: "webhooks",
        columns: &[
            ("name", Text),
            ("cursor", Int),
            ("batch_id", Text),
            ("batch_upto", Int),
            ("batch_body", Text),
            ("batch_count", Int),
            ("failures", Int),
            ("last_delivery", Text),
            ("last_error", Text),
            ("next_try", Text),
        ],
        order: "name",
        serial_id: false,
    },
];

/// Rows a backend reads or writes in one go.
pub const BATCH: usize = 1000;

/// What a backend does for a copy (its SQL stays in its module).
pub trait Portable {
    /// Calls `f` with each row of `table`, in its order.
    fn each_row(&self, table: &Table, f: &mut dyn FnMut(Vec<Cell>) -> Result<(), StoreError>)
        -> Result<(), StoreError>;
    /// Inserts rows into `table` (with their ids).
    fn insert_rows(&self, table: &Table, rows: &[Vec<Cell>]) -> Result<(), StoreError>;
    /// Rows in `table`.
    fn count_rows(&self, table: &Table) -> Result<u64, StoreError>;
    /// Empties `table` (the destination's `meta`, which migrations filled).
    fn clear(&self, table: &Table) -> Result<(), StoreError>;
    /// Moves id sequences past the copied ids.
    fn after_copy(&self) -> Result<(), StoreError>;
    /// The store as the rest of dirsync sees it (for its lease).
    fn store(&self) -> Arc<dyn super::Store>;
}

/// What was copied: each table's row count.
pub type CopyReport = Vec<(&'static str, u64)>;

/// Copies the store `from` into the empty store `to`.
pub fn copy(from: &StoreConfig, to: &StoreConfig) -> Result<CopyReport, StoreError> {
    if super::describe(from) == super::describe(to) {
        return Err(refused(to, "is also the source; name another store"));
    }
    let src = open(from, true)?;
    let dst = open(to, false)?;
    let _leases = (src.store().lease()?, dst.store().lease()?);
    let held = dst.count_rows(&TABLES[1])? + dst.count_rows(&TABLES[5])?;
    if held > 0 {
        return Err(refused(to, &format!("already holds {held} users and runs; copy into an empty store")));
    }
    let mut report = Vec::new();
    for t in TABLES {
        if t.name == "meta" {
            dst.clear(t)?;
        }
        let mut batch = Vec::with_capacity(BATCH);
        src.each_row(t, &mut |row| {
            batch.push(row);
            if batch.len() == BATCH {
                dst.insert_rows(t, &batch)?;
                batch.clear();
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            dst.insert_rows(t, &batch)?;
        }
        let (n, m) = (src.count_rows(t)?, dst.count_rows(t)?);
        if n != m {
            return Err(refused(
                to,
                &format!("table {}: {n} rows read but {m} written; the copy is incomplete", t.name),
            ));
        }
        report.push((t.name, n));
    }
    dst.after_copy()?;
    Ok(report)
}

fn refused(cfg: &StoreConfig, message: &str) -> StoreError {
    StoreError::Backend { store: super::describe(cfg), message: message.to_string() }
}

/// A store as [`Portable`]: the source must exist; the destination is
/// created (or migrated) when needed.
fn open(cfg: &StoreConfig, existing: bool) -> Result<Box<dyn Portable>, StoreError> {
    match cfg {
        StoreConfig::Sqlite { path } => {
            if existing && !path.exists() {
                return Err(StoreError::NotCreated { store: path.display().to_string() });
            }
            Ok(Box::new(super::sqlite::SqliteStore::open(path)?))
        }
        StoreConfig::Postgres(pg) => match existing {
            true => Ok(Box::new(super::postgres::PgStore::open_existing(pg)?)),
            false => Ok(Box::new(super::postgres::PgStore::open(pg)?)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// What a copy must keep, read through the store's API.
    fn contents(s: &dyn Store) -> String {
        let mut snap = s.snapshot().unwrap();
        snap.user_groups.sort();
        snap.group_groups.sort();
        let runs = s.runs(1000).unwrap();
        let feed = s.changes(0, 100_000).unwrap();
        let queue = s
            .writeback_items(&[
                crate::store::QueueStatus::Pending,
                crate::store::QueueStatus::Failed,
                crate::store::QueueStatus::Conflict,
                crate::store::QueueStatus::Done,
            ])
            .unwrap();
        format!(
            "{} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            snap.generation,
            snap.users,
            snap.groups,
            snap.user_groups,
            snap.group_groups,
            runs,
            feed.iter().map(|c| (c.cursor, &c.record)).collect::<Vec<_>>(),
            queue
        )
    }

    #[test]
    fn a_copy_to_postgresql_and_back_keeps_every_row_and_id() {
        let dir = tempfile::tempdir().unwrap();
        let from = StoreConfig::sqlite(dir.path().join("from.db"));
        crate::store::suite::run_all(&*crate::store::open(&from).unwrap());
        let pg = StoreConfig::Postgres(crate::store::postgres::testing::fresh_database());
        let report = copy(&from, &pg).unwrap();
        assert!(report.iter().any(|(t, n)| *t == "audit" && *n > 0), "{report:?}");
        let (a, b) = (crate::store::open(&from).unwrap(), crate::store::open(&pg).unwrap());
        assert!(contents(&*a) == contents(&*b), "the copy differs");
        // New ids continue after the copied ones.
        let next = b.start_run(
            &crate::model::records::RunSources::parse("x"),
            crate::time::Timestamp::now(),
            false,
            &Default::default(),
        );
        assert!(next.unwrap() > a.runs(1).unwrap()[0].id);
        let back = StoreConfig::sqlite(dir.path().join("back.db"));
        copy(&pg, &back).unwrap();
        let c = crate::store::open(&back).unwrap();
        assert!(contents(&*b) == contents(&*c), "the copy back differs");
    }

    #[test]
    fn a_copy_into_a_store_that_holds_users_or_into_itself_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let from = StoreConfig::sqlite(dir.path().join("from.db"));
        crate::store::suite::run_all(&*crate::store::open(&from).unwrap());
        let to = StoreConfig::sqlite(dir.path().join("to.db"));
        copy(&from, &to).unwrap();
        let e = copy(&from, &to).unwrap_err().to_string();
        assert!(e.contains("already holds") && e.contains("empty store"), "{e}");
        let e = copy(&from, &from).unwrap_err().to_string();
        assert!(e.contains("also the source"), "{e}");
        let missing = StoreConfig::sqlite(dir.path().join("missing.db"));
        assert!(matches!(copy(&missing, &to), Err(StoreError::NotCreated { .. })));
    }
}
