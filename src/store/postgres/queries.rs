//! Indexed reads on PostgreSQL: one user by name, users' direct and
//! effective groups (recursive, cycles tolerated), pages of users, groups
//! and runs, audit trails, the change feed, the write-back queue. Each
//! costs what it returns, as on SQLite.

use std::collections::HashMap;

use tokio_postgres::Row;

use super::explain;
use super::snapshot::{read_group, read_user};
use crate::model::records::{AuditRecord, Counts, RunMode, RunOrigin, RunRecord, RunSources, RunStatus, Trigger};
use crate::model::{name_key, EntryError, Status, StoredGroup, StoredUser};
use crate::store::row::{add_group, like_escape, tidy, Interner, USER_COLUMNS};
use crate::store::{
    Change, GroupRelations, PlannedRemoval, QueueStatus, RemovalAction, RemovalTarget, RunQuery, StoreCounts,
    StoreError, UserGroups, UserQuery, WritebackItem,
};

type Conn = deadpool_postgres::ClientWrapper;

/// Runs a query through the connection's statement cache.
async fn query(
    c: &Conn,
    name: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(|e| explain(name, e))?;
    c.query(&st, params).await.map_err(|e| explain(name, e))
}

pub(super) async fn user_by_name(c: &Conn, name: &str, user: &str) -> Result<Option<StoredUser>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1");
    let rows = query(c, name, &sql, &[&name_key(user)]).await?;
    Ok(rows.first().map(|r| read_user(r, &mut Interner::default())))
}

pub(super) async fn is_member(c: &Conn, name: &str, user_id: i64, group_id: i64) -> Result<bool, StoreError> {
    let rows = query(
        c,
        name,
        "WITH RECURSIVE up(id) AS (
           SELECT group_id FROM user_groups WHERE user_id = $1
           UNION SELECT gg.parent_id FROM group_groups gg JOIN up ON gg.child_id = up.id)
         SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)",
        &[&user_id, &group_id],
    )
    .await?;
    Ok(rows[0].get(0))
}

/// One user's groups: direct, and effective (nested groups followed; a
/// scalar parameter, so the statement's plan is kept across calls).
pub(super) async fn groups_of_user(c: &Conn, name: &str, user_id: i64) -> Result<UserGroups, StoreError> {
    let rows = query(
        c,
        name,
        "WITH RECURSIVE up(id, direct) AS (
           SELECT group_id, true FROM user_groups WHERE user_id = $1
           UNION SELECT gg.parent_id, false FROM group_groups gg JOIN up ON gg.child_id = up.id)
         SELECT g.name, bool_or(up.direct) FROM up JOIN groups g ON g.id = up.id GROUP BY g.id, g.name",
        &[&user_id],
    )
    .await?;
    let mut out = UserGroups::default();
    for r in &rows {
        add_group(&mut out, r.get(0), r.get(1));
    }
    tidy(&mut out);
    Ok(out)
}

/// Each user's groups, walked up through nesting, with whether the user is
/// a direct member (one query for a page of users).
pub(super) async fn groups_of_users(
    c: &Conn,
    name: &str,
    user_ids: &[i64],
) -> Result<HashMap<i64, UserGroups>, StoreError> {
    let rows = query(
        c,
        name,
        "WITH RECURSIVE up(user_id, id, direct) AS (
           SELECT user_id, group_id, true FROM user_groups WHERE user_id = ANY($1)
           UNION SELECT up.user_id, gg.parent_id, false FROM group_groups gg JOIN up ON gg.child_id = up.id)
         SELECT up.user_id, g.name, bool_or(up.direct) FROM up JOIN groups g ON g.id = up.id
         GROUP BY up.user_id, g.id, g.name",
        &[&user_ids],
    )
    .await?;
    let mut out: HashMap<i64, UserGroups> = user_ids.iter().map(|&id| (id, UserGroups::default())).collect();
    for r in &rows {
        add_group(out.entry(r.get(0)).or_default(), r.get(1), r.get(2));
    }
    out.values_mut().for_each(tidy);
    Ok(out)
}

/// A page of users in username order after the cursor, filtered.
pub(super) async fn users_page(c: &Conn, name: &str, q: &UserQuery) -> Result<Vec<StoredUser>, StoreError> {
    let sql = format!(
        "WITH RECURSIVE down(id) AS (
           SELECT id FROM groups WHERE name_key = $5
           UNION SELECT gg.child_id FROM group_groups gg JOIN down ON gg.parent_id = down.id)
         SELECT {USER_COLUMNS} FROM users
         WHERE username_key > $1 AND ($2::text IS NULL OR source = $2) AND ($3::text IS NULL OR status = $3)
           AND ($7::text IS NULL OR (username_key >= $7 AND username_key < $7 || chr(1114111))
                OR lower(full_name) LIKE $8 ESCAPE '!' OR lower(email) LIKE $8 ESCAPE '!')
           AND ($5::text IS NULL OR id IN (SELECT user_id FROM user_groups WHERE group_id IN (
                 SELECT id FROM down WHERE NOT $6 UNION SELECT id FROM groups WHERE $6 AND name_key = $5)))
         ORDER BY username_key LIMIT $4"
    );
    let after = q.after.as_deref().map(name_key).unwrap_or_default();
    let status = q.status.map(|s| s.as_str());
    let group = q.group.as_deref().map(name_key);
    let prefix = q.prefix.as_deref().map(name_key);
    let like = q.prefix.as_deref().map(|p| format!("{}%", like_escape(&p.to_lowercase())));
    let rows = query(
        c,
        name,
        &sql,
        &[&after, &q.source, &status, &(q.limit.max(1) as i64), &group, &q.direct, &prefix, &like],
    )
    .await?;
    let mut names = Interner::default();
    Ok(rows.iter().map(|r| read_user(r, &mut names)).collect())
}

/// Runs, newest first, with their errors and warnings.
pub(super) async fn runs(c: &Conn, name: &str, q: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
    let rows = query(
        c,
        name,
        "SELECT id, started_at, finished_at, source, status, forced, created, updated, renamed, disabled, deleted, unchanged, skipped, groups_created, groups_updated, groups_deleted, memberships_added, memberships_removed, message, mode, pushed, push_failed, conflicts, triggered_by, slot, instance FROM runs \
         WHERE id < $2 AND ($3::text IS NULL OR $3 = ANY(string_to_array(source, ','))) AND ($4::text IS NULL OR status = $4) \
         ORDER BY id DESC LIMIT $1",
        &[&(q.limit as i64), &q.before.unwrap_or(i64::MAX), &q.source, &q.status.map(|s| s.as_str())],
    )
    .await?;
    let mut runs = rows.iter().map(|r| read_run(r, name)).collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let errors =
        query(c, name, "SELECT run_id, kind, dn, reason FROM run_errors WHERE run_id = ANY($1) ORDER BY id", &[&ids])
            .await?;
    let by_id: HashMap<i64, usize> = runs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    for r in &errors {
        let run = &mut runs[by_id[&r.get::<_, i64>(0)]];
        let e = EntryError::new(r.get::<_, String>(2), r.get::<_, String>(3));
        match r.get::<_, &str>(1) {
            "warning" => run.warnings.push(e),
            _ => run.errors.push(e),
        }
    }
    Ok(runs)
}

fn read_run(r: &Row, name: &str) -> Result<RunRecord, StoreError> {
    let c = |i: usize| r.get::<_, i64>(i) as u64;
    let mode: &str = r.get(19);
    Ok(RunRecord {
        id: r.get(0),
        started_at: r.get(1),
        finished_at: r.get(2),
        sources: RunSources::parse(r.get(3)),
        status: RunStatus::parse(r.get(4)),
        forced: r.get(5),
        counts: Counts {
            created: c(6),
            updated: c(7),
            renamed: c(8),
            disabled: c(9),
            deleted: c(10),
            unchanged: c(11),
            skipped: c(12),
            groups_created: c(13),
            groups_updated: c(14),
            groups_deleted: c(15),
            memberships_added: c(16),
            memberships_removed: c(17),
            pushed: c(20),
            push_failed: c(21),
            conflicts: c(22),
        },
        errors: vec![],
        warnings: vec![],
        message: r.get(18),
        mode: RunMode::parse(mode).ok_or_else(|| StoreError::Backend {
            store: name.to_string(),
            message: format!("not a run mode: {mode:?}"),
        })?,
        origin: RunOrigin {
            trigger: r.get::<_, Option<&str>>(23).and_then(Trigger::parse),
            slot: r.get(24),
            instance: r.get(25),
        },
    })
}

/// Audit rows selected by `tail` (a fixed clause with `$1` and `$2`).
pub(super) async fn audit_rows(
    c: &Conn,
    name: &str,
    tail: &str,
    key: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = format!("SELECT run_id, at, user_id, name, action, field, old, new FROM audit {tail}");
    let rows = query(c, name, &sql, &[&key, &(limit as i64)]).await?;
    Ok(rows.iter().map(|r| read_audit(r, 0)).collect())
}

/// A run's audit rows in id order, with their ids and before-images.
pub(super) async fn run_audit(c: &Conn, name: &str, run_id: i64) -> Result<Vec<Change>, StoreError> {
    let rows = query(
        c,
        name,
        "SELECT id, run_id, at, user_id, name, action, field, old, new, image FROM audit WHERE run_id = $1 ORDER BY id",
        &[&run_id],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut record = read_audit(r, 1);
            record.image = r.get(9);
            Change { cursor: r.get(0), record, status_now: None }
        })
        .collect())
}

fn read_audit(r: &Row, at: usize) -> AuditRecord {
    AuditRecord {
        run_id: r.get(at),
        at: r.get(at + 1),
        user_id: r.get(at + 2),
        name: r.get(at + 3),
        action: r.get(at + 4),
        field: r.get(at + 5),
        old: r.get(at + 6),
        new: r.get(at + 7),
        image: None,
    }
}

/// Audit records after `cursor` in id order. Ids are commit order here
/// too: every transaction takes the feed lock before its first audit row
/// and holds it until it commits, so no id below one a reader has seen can
/// still be in flight.
pub(super) async fn changes(c: &Conn, name: &str, cursor: i64, limit: usize) -> Result<Vec<Change>, StoreError> {
    let rows = query(
        c,
        name,
        "SELECT a.id, a.run_id, a.at, a.user_id, a.name, a.action, a.field, a.old, a.new, u.status
         FROM audit a LEFT JOIN users u ON a.action = 'create' AND u.id = a.user_id
         WHERE a.id > $1 ORDER BY a.id LIMIT $2",
        &[&cursor, &(limit.max(1) as i64)],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| Change {
            cursor: r.get(0),
            record: read_audit(r, 1),
            status_now: r.get::<_, Option<&str>>(9).and_then(Status::parse),
        })
        .collect())
}

pub(super) async fn groups_page(
    c: &Conn,
    name: &str,
    after: Option<(&str, i64)>,
    limit: usize,
) -> Result<Vec<StoredGroup>, StoreError> {
    let (key, id) = after.map(|(n, id)| (name_key(n), id)).unwrap_or_default();
    let rows = query(
        c,
        name,
        "SELECT id, source, external_id, name, dn FROM groups
         WHERE name_key > $1 OR (name_key = $1 AND id > $2) ORDER BY name_key, id LIMIT $3",
        &[&key, &id, &(limit.max(1) as i64)],
    )
    .await?;
    Ok(rows.iter().map(read_group).collect())
}

pub(super) async fn groups_by_name(c: &Conn, name: &str, group: &str) -> Result<Vec<StoredGroup>, StoreError> {
    let rows = query(
        c,
        name,
        "SELECT id, source, external_id, name, dn FROM groups WHERE name_key = $1 ORDER BY id",
        &[&name_key(group)],
    )
    .await?;
    Ok(rows.iter().map(read_group).collect())
}

pub(super) async fn group_relations(c: &Conn, name: &str, id: i64) -> Result<GroupRelations, StoreError> {
    let count = |sql: &'static str| async move {
        Ok::<_, StoreError>(query(c, name, sql, &[&id]).await?[0].get::<_, i64>(0) as u64)
    };
    let names = |sql: &'static str| async move {
        let mut v: Vec<String> = query(c, name, sql, &[&id]).await?.iter().map(|r| r.get(0)).collect();
        v.sort_by_key(|n| name_key(n));
        Ok::<_, StoreError>(v)
    };
    Ok(GroupRelations {
        direct_members: count("SELECT count(*) FROM user_groups WHERE group_id = $1").await?,
        all_members: count(
            "WITH RECURSIVE down(id) AS (SELECT $1::bigint UNION SELECT gg.child_id FROM group_groups gg JOIN down ON gg.parent_id = down.id)
             SELECT count(DISTINCT user_id) FROM user_groups WHERE group_id IN (SELECT id FROM down)",
        )
        .await?,
        member_of: names(
            "SELECT g.name FROM group_groups gg JOIN groups g ON g.id = gg.parent_id WHERE gg.child_id = $1",
        )
        .await?,
        subgroups: names("SELECT g.name FROM group_groups gg JOIN groups g ON g.id = gg.child_id WHERE gg.parent_id = $1")
            .await?,
    })
}

pub(super) async fn counts(c: &Conn, name: &str) -> Result<StoreCounts, StoreError> {
    let rows = query(c, name, "SELECT source, status, count(*) FROM users GROUP BY source, status", &[]).await?;
    let users = rows
        .iter()
        .map(|r| {
            let status = if r.get::<_, &str>(1) == "disabled" { Status::Disabled } else { Status::Active };
            ((r.get(0), status), r.get::<_, i64>(2) as u64)
        })
        .collect();
    let groups = query(c, name, "SELECT count(*) FROM groups", &[]).await?[0].get::<_, i64>(0) as u64;
    Ok((users, groups))
}

pub(super) async fn removals_of(c: &Conn, name: &str, run_id: i64) -> Result<Vec<PlannedRemoval>, StoreError> {
    let rows = query(
        c,
        name,
        "SELECT kind, target_id, name, action FROM run_removals WHERE run_id = $1 ORDER BY id",
        &[&run_id],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let (kind, action): (&str, &str) = (r.get(0), r.get(3));
            let bad = || StoreError::Backend {
                store: name.to_string(),
                message: format!("not a planned removal's kind or action: {kind:?} {action:?}"),
            };
            Ok(PlannedRemoval {
                kind: RemovalTarget::parse(kind).ok_or_else(bad)?,
                target_id: r.get(1),
                name: r.get(2),
                action: RemovalAction::parse(action).ok_or_else(bad)?,
            })
        })
        .collect()
}

pub(super) async fn writeback_counts(c: &Conn, name: &str) -> Result<[u64; 3], StoreError> {
    let rows = query(c, name, "SELECT status, count(*) FROM writeback GROUP BY status", &[]).await?;
    let mut out = [0u64; 3];
    for r in &rows {
        let n = r.get::<_, i64>(1) as u64;
        match QueueStatus::parse(r.get(0)) {
            Some(QueueStatus::Pending) => out[0] = n,
            Some(QueueStatus::Failed) => out[1] = n,
            Some(QueueStatus::Conflict) => out[2] = n,
            _ => {}
        }
    }
    Ok(out)
}

/// Items with one of `statuses`, oldest first.
pub(super) async fn writeback_items(
    c: &Conn,
    name: &str,
    statuses: &[QueueStatus],
) -> Result<Vec<WritebackItem>, StoreError> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let rows = query(
        c,
        name,
        "SELECT w.id, w.user_id, u.username, u.source, u.dn, w.field, w.attribute, w.value, w.old_value, w.base_value, \
         w.status, w.attempts, w.last_code, w.last_error, w.next_attempt_at, w.created_at, w.updated_at, w.done_at, \
         u.external_id \
         FROM writeback w JOIN users u ON u.id = w.user_id WHERE w.status = ANY($1) ORDER BY w.id",
        &[&statuses],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let status: &str = r.get(10);
            Ok(WritebackItem {
                id: r.get(0),
                user_id: r.get(1),
                username: r.get(2),
                source: r.get(3),
                dn: r.get(4),
                field: r.get(5),
                attribute: r.get(6),
                value: r.get(7),
                old_value: r.get(8),
                base_value: r.get(9),
                status: QueueStatus::parse(status).ok_or_else(|| StoreError::Backend {
                    store: name.to_string(),
                    message: format!("queue status {status:?}"),
                })?,
                attempts: r.get(11),
                last_code: r.get(12),
                last_error: r.get(13),
                next_attempt_at: r.get(14),
                created_at: r.get(15),
                updated_at: r.get(16),
                done_at: r.get(17),
                external_id: r.get(18),
            })
        })
        .collect()
}
