//! SQLite's snapshots: everything, or the rows a delta touches (its keys
//! in temporary tables that drive the joins), read in one read transaction
//! with statements prepared once per connection.

use std::path::Path;

use rusqlite::Connection;

use super::{backend, read_user, Interner, USER_COLUMNS};
use crate::model::{Snapshot, StoredGroup};
use crate::store::{SnapshotQuery, StoreError};

/// Reads everything, or with `q` only the rows a delta touches.
pub(super) fn read_snapshot_on(
    conn: &mut Connection,
    path: &Path,
    q: Option<&SnapshotQuery>,
) -> Result<Snapshot, StoreError> {
    let err = backend(path);
    let tx = conn.transaction().map_err(&err)?;
    let generation: i64 = tx
        .query_row("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'", [], |r| r.get(0))
        .map_err(&err)?;
    let mut snap = Snapshot { generation, ..Snapshot::default() };
    let (users_sql, edges_sql, nested_sql) = match q {
        None => (
            format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"),
            "SELECT user_id, group_id FROM user_groups".to_string(),
            "SELECT child_id, parent_id FROM group_groups".to_string(),
        ),
        Some(q) => partial_queries(&tx, q).map_err(&err)?,
    };
    read_rows(&tx, &mut snap, [&users_sql, &edges_sql, &nested_sql]).map_err(&err)?;
    if q.is_some_and(|q| !q.skip_active_counts) {
        let mut st = tx
            .prepare_cached("SELECT source, count(*) FROM users WHERE status = 'active' GROUP BY source")
            .map_err(&err)?;
        let counts = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize)))
            .map_err(&err)?
            .collect::<Result<_, _>>()
            .map_err(&err)?;
        snap.active_by_source = Some(counts);
    }
    tx.commit().map_err(&err)?;
    // No spare capacity is kept while the sources are still being read.
    snap.users.shrink_to_fit();
    snap.user_groups.shrink_to_fit();
    Ok(snap)
}

/// A partial snapshot's queries (users, memberships, nested groups): the
/// query's keys go into temporary tables and are joined.
fn partial_queries(tx: &rusqlite::Transaction, q: &SnapshotQuery) -> rusqlite::Result<(String, String, String)> {
    // One statement at a time, each prepared once per connection.
    for sql in [
        "CREATE TEMP TABLE IF NOT EXISTS q_user (source TEXT, ext TEXT)",
        "CREATE TEMP TABLE IF NOT EXISTS q_group (source TEXT, ext TEXT)",
        "CREATE TEMP TABLE IF NOT EXISTS q_key (k TEXT)",
        "DELETE FROM q_user",
        "DELETE FROM q_group",
        "DELETE FROM q_key",
    ] {
        tx.prepare_cached(sql)?.execute([])?;
    }
    let mut ins = tx.prepare_cached("INSERT INTO q_user VALUES (?1, ?2)")?;
    for (s, e) in &q.user_ids {
        ins.execute([s, e])?;
    }
    let mut ins = tx.prepare_cached("INSERT INTO q_group VALUES (?1, ?2)")?;
    for (s, e) in &q.group_ids {
        ins.execute([s, e])?;
    }
    let mut ins = tx.prepare_cached("INSERT INTO q_key VALUES (?1)")?;
    for k in q.username_keys.iter().chain(&q.dn_keys) {
        ins.execute([k])?;
    }
    // The temporary tables drive every join (CROSS JOIN keeps them outer):
    // without statistics, SQLite may otherwise scan `users` for a few keys.
    let changed_groups =
        "SELECT g.id FROM q_group q CROSS JOIN groups g ON g.source = q.source AND g.external_id = q.ext";
    Ok((
        format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id IN (
               SELECT u.id FROM q_user q CROSS JOIN users u ON u.source = q.source AND u.external_id = q.ext
               UNION SELECT u.id FROM q_key q CROSS JOIN users u ON u.username_key = q.k
               UNION SELECT u.id FROM q_key q CROSS JOIN users u ON u.dn_key = q.k
               UNION SELECT user_id FROM user_groups WHERE group_id IN ({changed_groups}))
             ORDER BY id"
        ),
        // The changed groups' edges, and the named users' (a deleted user
        // leaves every group).
        format!(
            "SELECT user_id, group_id FROM user_groups WHERE group_id IN ({changed_groups})
             UNION SELECT ug.user_id, ug.group_id FROM q_user q CROSS JOIN users u ON u.source = q.source AND u.external_id = q.ext
               CROSS JOIN user_groups ug ON ug.user_id = u.id"
        ),
        format!("SELECT child_id, parent_id FROM group_groups WHERE parent_id IN ({changed_groups})"),
    ))
}

/// Reads the snapshot's users, every group, and the memberships and nested
/// groups the queries select.
fn read_rows(
    tx: &rusqlite::Transaction,
    snap: &mut Snapshot,
    [users, edges, nested]: [&str; 3],
) -> rusqlite::Result<()> {
    let mut names = Interner::default();
    // Cached: a delta's snapshot (a push's) is read with the same statements each time.
    snap.users = tx.prepare_cached(users)?.query_map([], |r| read_user(r, &mut names))?.collect::<Result<_, _>>()?;
    let mut st = tx.prepare_cached("SELECT id, source, external_id, name, dn FROM groups ORDER BY id")?;
    snap.groups = st
        .query_map([], |r| {
            Ok(StoredGroup { id: r.get(0)?, source: r.get(1)?, external_id: r.get(2)?, name: r.get(3)?, dn: r.get(4)? })
        })?
        .collect::<Result<_, _>>()?;
    let pairs = |sql: &str| -> rusqlite::Result<Vec<(i64, i64)>> {
        tx.prepare_cached(sql)?.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
    };
    snap.user_groups = pairs(edges)?;
    snap.group_groups = pairs(nested)?;
    Ok(())
}
