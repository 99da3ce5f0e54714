//! The snapshot a plan starts from, read in one repeatable-read transaction:
//! everything, or only the rows a delta can touch (the delta's keys go as
//! arrays and are joined on the server). Rows are streamed, not collected.

use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::types::ToSql;

use super::explain;
use crate::model::{Fields, Snapshot, Status, StoredGroup, StoredUser, CORE_FIELDS};
use crate::store::row::{json_object, Interner, USER_COLUMNS};
use crate::store::{SnapshotQuery, StoreError};

/// Reads a snapshot (all of it, or what `q` selects) on `conn`.
pub(super) async fn read(
    conn: &mut deadpool_postgres::ClientWrapper,
    name: &str,
    q: Option<&SnapshotQuery>,
) -> Result<Snapshot, StoreError> {
    let err = |e| explain(name, e);
    let tx = conn
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(err)?;
    // Statements prepared once per connection: a delta's snapshot (a push's)
    // is read with the same ones each time, in one round trip each.
    let st = tx.prepare_cached("SELECT value::bigint FROM meta WHERE key = 'generation'").await.map_err(err)?;
    let generation: i64 = tx.query_one(&st, &[]).await.map_err(err)?.get(0);
    let mut snap = Snapshot { generation, ..Snapshot::default() };
    let keys = q.map(Keys::of);
    let params: Vec<&(dyn ToSql + Sync)> = match &keys {
        None => Vec::new(),
        Some(k) => vec![&k.user_sources, &k.user_ids, &k.group_sources, &k.group_ids, &k.keys],
    };
    let (users, edges, nested) = match q {
        None => (
            format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"),
            "SELECT user_id, group_id FROM user_groups".to_string(),
            "SELECT child_id, parent_id FROM group_groups".to_string(),
        ),
        Some(_) => partial_queries(),
    };
    let mut names = Interner::default();
    let st = tx.prepare_cached(&users).await.map_err(err)?;
    let rows = tx.query_raw(&st, params.iter().copied()).await.map_err(err)?;
    pin_mut!(rows);
    while let Some(r) = rows.try_next().await.map_err(err)? {
        snap.users.push(read_user(&r, &mut names));
    }
    let st =
        tx.prepare_cached("SELECT id, source, external_id, name, dn FROM groups ORDER BY id").await.map_err(err)?;
    let groups = tx.query(&st, &[]).await.map_err(err)?;
    snap.groups = groups.iter().map(read_group).collect();
    // The edges' query takes the first four arrays, the nested groups' the
    // changed groups' two.
    let (edge_params, nested_params) = match params.len() {
        0 => (&params[..], &params[..]),
        _ => (&params[..4], &params[2..4]),
    };
    for (sql, p, out) in
        [(&edges, edge_params, &mut snap.user_groups), (&nested, nested_params, &mut snap.group_groups)]
    {
        let st = tx.prepare_cached(sql).await.map_err(err)?;
        let rows = tx.query_raw(&st, p.iter().copied()).await.map_err(err)?;
        pin_mut!(rows);
        while let Some(r) = rows.try_next().await.map_err(err)? {
            out.push((r.get(0), r.get(1)));
        }
    }
    if q.is_some_and(|q| !q.skip_active_counts) {
        let st = tx
            .prepare_cached("SELECT source, count(*) FROM users WHERE status = 'active' GROUP BY source")
            .await
            .map_err(err)?;
        let rows = tx.query(&st, &[]).await.map_err(err)?;
        snap.active_by_source = Some(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as usize)).collect());
    }
    tx.commit().await.map_err(err)?;
    snap.users.shrink_to_fit();
    snap.user_groups.shrink_to_fit();
    Ok(snap)
}

/// A delta's keys as column arrays.
struct Keys {
    user_sources: Vec<String>,
    user_ids: Vec<String>,
    group_sources: Vec<String>,
    group_ids: Vec<String>,
    /// Username keys and DN keys (both are looked up in either column).
    keys: Vec<String>,
}

impl Keys {
    fn of(q: &SnapshotQuery) -> Keys {
        let (user_sources, user_ids) = q.user_ids.iter().cloned().unzip();
        let (group_sources, group_ids) = q.group_ids.iter().cloned().unzip();
        let keys = q.username_keys.iter().chain(&q.dn_keys).cloned().collect();
        Keys { user_sources, user_ids, group_sources, group_ids, keys }
    }
}

/// The partial snapshot's users, memberships and nested groups: the named
/// users, those whose name or DN key is asked for, and the members of the
/// changed groups; those groups' edges and the named users' edges.
fn partial_queries() -> (String, String, String) {
    let changed = "SELECT g.id FROM groups g JOIN unnest($3::text[], $4::text[]) AS q(s, e) ON g.source = q.s AND g.external_id = q.e";
    let named = "SELECT u.id FROM users u JOIN unnest($1::text[], $2::text[]) AS q(s, e) ON u.source = q.s AND u.external_id = q.e";
    (
        format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id IN (
               {named}
               UNION SELECT id FROM users WHERE username_key = ANY($5::text[])
               UNION SELECT id FROM users WHERE dn_key = ANY($5::text[])
               UNION SELECT user_id FROM user_groups WHERE group_id IN ({changed}))
             ORDER BY id"
        ),
        format!(
            "SELECT user_id, group_id FROM user_groups WHERE group_id IN ({changed})
             UNION SELECT user_id, group_id FROM user_groups WHERE user_id IN ({named})"
        ),
        format!(
            "SELECT child_id, parent_id FROM group_groups WHERE parent_id IN ({})",
            changed.replace("$3", "$1").replace("$4", "$2")
        ),
    )
}

/// A user row ([`USER_COLUMNS`] order).
pub(super) fn read_user(r: &tokio_postgres::Row, names: &mut Interner) -> StoredUser {
    let mut fields: Vec<(crate::model::FieldName, &str)> = Vec::with_capacity(CORE_FIELDS.len());
    for (i, name) in CORE_FIELDS.iter().enumerate() {
        if let Some(v) = r.get::<_, Option<&str>>(6 + i) {
            fields.push((names.get(name), v));
        }
    }
    let custom = json_object(r.get(12), names);
    fields.extend(custom.iter().map(|(k, v)| (k.clone(), v.as_str())));
    StoredUser {
        id: r.get(0),
        source: names.get(r.get(1)),
        external_id: r.get(2),
        username: r.get(3),
        dn: r.get(4),
        status: Status::parse(r.get(5)).unwrap_or(Status::Disabled),
        missing_since: r.get(15),
        dir_values: Fields::from_pairs(json_object(r.get(16), names)),
        fields: Fields::from_pairs(fields),
        created_at: r.get(13),
        updated_at: r.get(14),
    }
}

pub(super) fn read_group(r: &tokio_postgres::Row) -> StoredGroup {
    StoredGroup { id: r.get(0), source: r.get(1), external_id: r.get(2), name: r.get(3), dn: r.get(4) }
}
