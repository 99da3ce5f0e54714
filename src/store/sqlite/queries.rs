//! Indexed reads: one user by name, a user's direct and effective groups
//! (recursive, cycles tolerated), a page of users with filters and a cursor,
//! runs by page, a user's audit trail. What the CLI shows of one user, and
//! what an HTTP API serves, costs what it returns, not the whole store.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{backend, read_user, Interner, USER_COLUMNS};
use crate::model::records::{AuditRecord, Counts, RunMode, RunOrigin, RunRecord, RunSources, RunStatus, Trigger};
use crate::model::{name_key, EntryError, Status, StoredGroup, StoredUser};
use crate::store::row::{add_group, like_escape, tidy};
use crate::store::{Change, GroupRelations, StoreError, UserGroups, UserQuery};

/// One user by username (compared by its key).
pub(super) fn user_by_name(conn: &Connection, path: &Path, name: &str) -> Result<Option<StoredUser>, StoreError> {
    let err = backend(path);
    let mut names = Interner::default();
    // Cached statements: the API reads one user per request.
    let mut st =
        conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = ?1")).map_err(&err)?;
    st.query_row([name_key(name)], |r| read_user(r, &mut names)).optional().map_err(err)
}

/// A user's groups by name: direct, and effective (nested groups followed to
/// any depth; `UNION` stops at a cycle).
pub(super) fn groups_of_user(conn: &Connection, path: &Path, user_id: i64) -> Result<UserGroups, StoreError> {
    let err = backend(path);
    let names = |sql: &str| -> Result<Vec<String>, StoreError> {
        let mut st = conn.prepare_cached(sql).map_err(&err)?;
        let rows = st.query_map([user_id], |r| r.get::<_, String>(0)).map_err(&err)?;
        let mut v: Vec<String> = rows.collect::<Result<_, _>>().map_err(&err)?;
        v.sort_by_key(|n| name_key(n));
        v.dedup();
        Ok(v)
    };
    Ok(UserGroups {
        direct: names("SELECT g.name FROM user_groups ug JOIN groups g ON g.id = ug.group_id WHERE ug.user_id = ?1")?,
        all: names(
            "WITH RECURSIVE up(id) AS (
               SELECT group_id FROM user_groups WHERE user_id = ?1
               UNION SELECT gg.parent_id FROM group_groups gg JOIN up ON gg.child_id = up.id)
             SELECT name FROM groups WHERE id IN (SELECT id FROM up)",
        )?,
    })
}

/// Whether the user is in the group, directly or through nested groups.
pub(super) fn is_member(conn: &Connection, path: &Path, user_id: i64, group_id: i64) -> Result<bool, StoreError> {
    let mut st = conn
        .prepare_cached(
            "WITH RECURSIVE up(id) AS (
               SELECT group_id FROM user_groups WHERE user_id = ?1
               UNION SELECT gg.parent_id FROM group_groups gg JOIN up ON gg.child_id = up.id)
             SELECT EXISTS (SELECT 1 FROM up WHERE id = ?2)",
        )
        .map_err(backend(path))?;
    st.query_row([user_id, group_id], |r| r.get(0)).map_err(backend(path))
}

/// [`groups_of_user`] for many users in one query: each user's groups,
/// walked up through nesting, with whether the user is a direct member.
pub(super) fn groups_of_users(
    conn: &Connection,
    path: &Path,
    user_ids: &[i64],
) -> Result<std::collections::HashMap<i64, UserGroups>, StoreError> {
    let err = backend(path);
    let ids = serde_json::to_string(user_ids).expect("numbers");
    let mut st = conn
        .prepare_cached(
            "WITH RECURSIVE up(user_id, id, direct) AS (
               SELECT user_id, group_id, 1 FROM user_groups WHERE user_id IN (SELECT value FROM json_each(?1))
               UNION SELECT up.user_id, gg.parent_id, 0 FROM group_groups gg JOIN up ON gg.child_id = up.id)
             SELECT up.user_id, g.name, max(up.direct) FROM up JOIN groups g ON g.id = up.id
             GROUP BY up.user_id, g.id",
        )
        .map_err(&err)?;
    let rows = st
        .query_map([ids], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)? == 1)))
        .map_err(&err)?;
    let mut out: std::collections::HashMap<i64, UserGroups> =
        user_ids.iter().map(|&id| (id, UserGroups::default())).collect();
    for row in rows {
        let (user, name, direct) = row.map_err(&err)?;
        add_group(out.entry(user).or_default(), name, direct);
    }
    out.values_mut().for_each(tidy);
    Ok(out)
}

/// A page of users in username order after the cursor, filtered.
pub(super) fn users_page(conn: &Connection, path: &Path, q: &UserQuery) -> Result<Vec<StoredUser>, StoreError> {
    let err = backend(path);
    let sql = format!(
        "WITH RECURSIVE down(id) AS (
           SELECT id FROM groups WHERE name_key = ?5
           UNION SELECT gg.child_id FROM group_groups gg JOIN down ON gg.parent_id = down.id)
         SELECT {USER_COLUMNS} FROM users
         WHERE username_key > ?1 AND (?2 IS NULL OR source = ?2) AND (?3 IS NULL OR status = ?3)
           AND (?7 IS NULL OR (username_key >= ?7 AND username_key < ?7 || char(1114111))
                OR lower(full_name) LIKE ?8 ESCAPE '!' OR lower(email) LIKE ?8 ESCAPE '!')
           AND (?5 IS NULL OR id IN (SELECT user_id FROM user_groups WHERE group_id IN (
                 SELECT id FROM down WHERE ?6 = 0 UNION SELECT id FROM groups WHERE ?6 = 1 AND name_key = ?5)))
         ORDER BY username_key LIMIT ?4"
    );
    let mut st = conn.prepare_cached(&sql).map_err(&err)?;
    let mut names = Interner::default();
    let rows = st
        .query_map(
            params![
                q.after.as_deref().map(name_key).unwrap_or_default(),
                q.source,
                q.status.map(|s| s.as_str()),
                q.limit.max(1) as i64,
                q.group.as_deref().map(name_key),
                q.direct,
                q.prefix.as_deref().map(name_key),
                q.prefix.as_deref().map(|p| format!("{}%", like_escape(&p.to_lowercase()))),
            ],
            |r| read_user(r, &mut names),
        )
        .map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}

/// Runs, newest first, older than `before` (a run id) when given.
pub(super) fn runs(conn: &Connection, path: &Path, q: &crate::store::RunQuery) -> Result<Vec<RunRecord>, StoreError> {
    let err = backend(path);
    // A run's sources are kept comma-separated; names hold no comma.
    let mut st = conn
            .prepare_cached(
                "SELECT id, started_at, finished_at, source, status, forced, created, updated, renamed, disabled, deleted, unchanged, skipped, groups_created, groups_updated, groups_deleted, memberships_added, memberships_removed, message, mode, pushed, push_failed, conflicts, triggered_by, slot, instance FROM runs \
                 WHERE id < ?2 AND (?3 IS NULL OR instr(',' || source || ',', ',' || ?3 || ',') > 0) AND (?4 IS NULL OR status = ?4) \
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(&err)?;
    let mut runs: Vec<RunRecord> = st
        .query_map(params![q.limit as i64, q.before.unwrap_or(i64::MAX), q.source, q.status.map(|s| s.as_str())], |r| {
            let c = |i| r.get::<_, i64>(i).map(|v| v as u64);
            Ok(RunRecord {
                id: r.get(0)?,
                started_at: r.get(1)?,
                finished_at: r.get(2)?,
                sources: RunSources::parse(&r.get::<_, String>(3)?),
                status: RunStatus::parse(&r.get::<_, String>(4)?),
                forced: r.get(5)?,
                counts: Counts {
                    created: c(6)?,
                    updated: c(7)?,
                    renamed: c(8)?,
                    disabled: c(9)?,
                    deleted: c(10)?,
                    unchanged: c(11)?,
                    skipped: c(12)?,
                    groups_created: c(13)?,
                    groups_updated: c(14)?,
                    groups_deleted: c(15)?,
                    memberships_added: c(16)?,
                    memberships_removed: c(17)?,
                    pushed: c(20)?,
                    push_failed: c(21)?,
                    conflicts: c(22)?,
                },
                errors: vec![],
                warnings: vec![],
                message: r.get(18)?,
                mode: {
                    let m: String = r.get(19)?;
                    RunMode::parse(&m).ok_or_else(|| {
                        let why = format!("not a run mode: {m:?}");
                        rusqlite::Error::FromSqlConversionFailure(19, rusqlite::types::Type::Text, why.into())
                    })?
                },
                origin: RunOrigin {
                    trigger: r.get::<_, Option<String>>(23)?.as_deref().and_then(Trigger::parse),
                    slot: r.get(24)?,
                    instance: r.get(25)?,
                },
            })
        })
        .map_err(&err)?
        .collect::<Result<_, _>>()
        .map_err(&err)?;
    let mut st = conn
        .prepare_cached("SELECT kind, dn, reason FROM run_errors WHERE run_id = ?1 ORDER BY rowid")
        .map_err(&err)?;
    for run in &mut runs {
        let rows = st
            .query_map([run.id], |r| {
                Ok((r.get::<_, String>(0)?, EntryError::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            })
            .map_err(&err)?;
        for row in rows {
            let (kind, e) = row.map_err(&err)?;
            if kind == "warning" {
                run.warnings.push(e);
            } else {
                run.errors.push(e);
            }
        }
    }
    Ok(runs)
}

/// The audit trail of one user, newest first.
pub(super) fn audit_of(
    conn: &Connection,
    path: &Path,
    user_id: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    audit_rows(conn, path, "WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2", user_id, limit)
}

/// One run's audit rows, in the order they were written.
/// The eight columns of an audit row from `at` on (run_id, at, user_id,
/// name, action, field, old, new).
fn audit_at(r: &rusqlite::Row, at: usize) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        run_id: r.get(at)?,
        at: r.get(at + 1)?,
        user_id: r.get(at + 2)?,
        name: r.get(at + 3)?,
        action: r.get(at + 4)?,
        field: r.get(at + 5)?,
        old: r.get(at + 6)?,
        new: r.get(at + 7)?,
        image: None,
    })
}

/// A run's audit rows in id order, with their ids and before-images.
pub(super) fn run_audit(conn: &Connection, path: &Path, run_id: i64) -> Result<Vec<Change>, StoreError> {
    let err = backend(path);
    let mut st = conn
        .prepare_cached(
            "SELECT id, run_id, at, user_id, name, action, field, old, new, image FROM audit WHERE run_id = ?1 ORDER BY id",
        )
        .map_err(&err)?;
    let rows = st
        .query_map([run_id], |r| {
            Ok(Change {
                cursor: r.get(0)?,
                record: AuditRecord { image: r.get(9)?, ..audit_at(r, 1)? },
                status_now: None,
            })
        })
        .map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}

pub(super) fn run_changes(
    conn: &Connection,
    path: &Path,
    run_id: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    audit_rows(conn, path, "WHERE run_id = ?1 ORDER BY id LIMIT ?2", run_id, limit)
}

/// Audit rows selected by `tail` (a fixed clause with `?1` and `?2`).
fn audit_rows(
    conn: &Connection,
    path: &Path,
    tail: &str,
    key: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let err = backend(path);
    let sql = format!("SELECT run_id, at, user_id, name, action, field, old, new FROM audit {tail}");
    let mut st = conn.prepare_cached(&sql).map_err(&err)?;
    let rows = st.query_map(params![key, limit as i64], |r| audit_at(r, 0)).map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}

fn read_group(r: &rusqlite::Row) -> rusqlite::Result<StoredGroup> {
    Ok(StoredGroup { id: r.get(0)?, source: r.get(1)?, external_id: r.get(2)?, name: r.get(3)?, dn: r.get(4)? })
}

/// A page of groups in name order after the cursor (a name, then an id).
pub(super) fn groups_page(
    conn: &Connection,
    path: &Path,
    after: Option<(&str, i64)>,
    limit: usize,
) -> Result<Vec<StoredGroup>, StoreError> {
    let err = backend(path);
    let (key, id) = after.map(|(n, id)| (name_key(n), id)).unwrap_or_default();
    let mut st = conn
        .prepare_cached(
            "SELECT id, source, external_id, name, dn FROM groups
             WHERE name_key > ?1 OR (name_key = ?1 AND id > ?2) ORDER BY name_key, id LIMIT ?3",
        )
        .map_err(&err)?;
    let rows = st.query_map(params![key, id, limit.max(1) as i64], read_group).map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}

/// The groups with this name (case and Unicode forms folded), oldest first.
pub(super) fn groups_by_name(conn: &Connection, path: &Path, name: &str) -> Result<Vec<StoredGroup>, StoreError> {
    let err = backend(path);
    let mut st = conn
        .prepare_cached("SELECT id, source, external_id, name, dn FROM groups WHERE name_key = ?1 ORDER BY id")
        .map_err(&err)?;
    let rows = st.query_map([name_key(name)], read_group).map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}

/// A group's member counts and its place among groups.
pub(super) fn group_relations(conn: &Connection, path: &Path, id: i64) -> Result<GroupRelations, StoreError> {
    let err = backend(path);
    let count = |sql: &str| conn.query_row(sql, [id], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(&err);
    let names = |sql: &str| -> Result<Vec<String>, StoreError> {
        let mut st = conn.prepare_cached(sql).map_err(&err)?;
        let rows = st.query_map([id], |r| r.get::<_, String>(0)).map_err(&err)?;
        let mut v: Vec<String> = rows.collect::<Result<_, _>>().map_err(&err)?;
        v.sort_by_key(|n| name_key(n));
        Ok(v)
    };
    Ok(GroupRelations {
        direct_members: count("SELECT count(*) FROM user_groups WHERE group_id = ?1")?,
        all_members: count(
            "WITH RECURSIVE down(id) AS (SELECT ?1 UNION SELECT gg.child_id FROM group_groups gg JOIN down ON gg.parent_id = down.id)
             SELECT count(DISTINCT user_id) FROM user_groups WHERE group_id IN (SELECT id FROM down)",
        )?,
        member_of: names("SELECT g.name FROM group_groups gg JOIN groups g ON g.id = gg.parent_id WHERE gg.child_id = ?1")?,
        subgroups: names("SELECT g.name FROM group_groups gg JOIN groups g ON g.id = gg.child_id WHERE gg.parent_id = ?1")?,
    })
}

/// Audit records after `cursor` (an audit id) in commit order: one writer
/// at a time assigns the ids, so a reader that saw id n has seen every
/// change committed before it.
pub(super) fn changes(conn: &Connection, path: &Path, cursor: i64, limit: usize) -> Result<Vec<Change>, StoreError> {
    let err = backend(path);
    let mut st = conn
        .prepare_cached(
            "SELECT a.id, a.run_id, a.at, a.user_id, a.name, a.action, a.field, a.old, a.new, u.status
             FROM audit a LEFT JOIN users u ON a.action = 'create' AND u.id = a.user_id
             WHERE a.id > ?1 ORDER BY a.id LIMIT ?2",
        )
        .map_err(&err)?;
    let rows = st
        .query_map(params![cursor, limit.max(1) as i64], |r| {
            Ok(Change {
                cursor: r.get(0)?,
                record: audit_at(r, 1)?,
                status_now: r.get::<_, Option<String>>(9)?.as_deref().and_then(Status::parse),
            })
        })
        .map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}

/// Users by (source, status), and the number of groups.
pub(super) fn counts(conn: &Connection, path: &Path) -> Result<crate::store::StoreCounts, StoreError> {
    let err = backend(path);
    let mut st =
        conn.prepare_cached("SELECT source, status, count(*) FROM users GROUP BY source, status").map_err(&err)?;
    let rows = st
        .query_map([], |r| {
            let status = if r.get::<_, String>(1)? == "disabled" { Status::Disabled } else { Status::Active };
            Ok(((r.get::<_, String>(0)?, status), r.get::<_, i64>(2)? as u64))
        })
        .map_err(&err)?;
    let users = rows.collect::<Result<_, _>>().map_err(&err)?;
    let groups = conn.query_row("SELECT count(*) FROM groups", [], |r| r.get::<_, i64>(0)).map_err(&err)? as u64;
    Ok((users, groups))
}

/// What a blocked run would have removed.
pub(super) fn removals_of(
    conn: &Connection,
    path: &Path,
    run_id: i64,
) -> Result<Vec<crate::store::PlannedRemoval>, StoreError> {
    let err = backend(path);
    let mut st = conn
        .prepare_cached("SELECT kind, target_id, name, action FROM run_removals WHERE run_id = ?1 ORDER BY rowid")
        .map_err(&err)?;
    let rows = st
        .query_map([run_id], |r| {
            let bad = |i: usize, v: &str| {
                let why = format!("not a planned removal's kind or action: {v:?}");
                rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, why.into())
            };
            let (kind, action): (String, String) = (r.get(0)?, r.get(3)?);
            Ok(crate::store::PlannedRemoval {
                kind: crate::store::RemovalTarget::parse(&kind).ok_or_else(|| bad(0, &kind))?,
                target_id: r.get(1)?,
                name: r.get(2)?,
                action: crate::store::RemovalAction::parse(&action).ok_or_else(|| bad(3, &action))?,
            })
        })
        .map_err(&err)?;
    rows.collect::<Result<_, _>>().map_err(&err)
}
