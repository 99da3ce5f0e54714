//! The PostgreSQL schema as numbered migrations, one numbering with SQLite
//! (version N is the same tables on both). This backend began at version 7:
//! migration 1 creates what SQLite's 1 to 7 built, and 2 to 7 are empty
//! here. Each migration runs in its own transaction under an advisory lock,
//! so instances starting together migrate once; `dirsync_schema` records
//! how far the database is.

use super::{explain, Inner};
use crate::store::StoreError;

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the schema as of version 7 (users, groups, memberships, runs and
    // their errors, audit, sync positions, write-back, planned removals and plans)
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('generation', '0');
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    username TEXT NOT NULL,
    username_key TEXT COLLATE "C" NOT NULL UNIQUE,
    dn TEXT NOT NULL,
    dn_key TEXT COLLATE "C",
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    full_name TEXT, email TEXT, department TEXT, office TEXT, card_number TEXT, card_number2 TEXT,
    fields TEXT NOT NULL DEFAULT '{}',
    dir_values TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    missing_since TEXT,
    UNIQUE (source, external_id)
);
CREATE INDEX users_dn_key ON users (dn_key);
CREATE INDEX users_source_status ON users (source, status);
CREATE TABLE groups (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL,
    dn TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX groups_name ON groups (name_key);
-- Memberships carry no foreign keys here: PostgreSQL checks one row at a
-- time (2 s of a 100,000-user first sync). Deleting a user or a group
-- deletes its memberships in the same transaction (tx.rs), and
-- `dirsync check` looks for memberships that point nowhere.
CREATE TABLE user_groups (
    user_id BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups (group_id);
CREATE TABLE group_groups (
    child_id BIGINT NOT NULL,
    parent_id BIGINT NOT NULL,
    PRIMARY KEY (child_id, parent_id)
);
CREATE INDEX group_groups_parent ON group_groups (parent_id);
CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    forced BOOLEAN NOT NULL DEFAULT false,
    mode TEXT NOT NULL DEFAULT 'full',
    created BIGINT NOT NULL DEFAULT 0, updated BIGINT NOT NULL DEFAULT 0,
    renamed BIGINT NOT NULL DEFAULT 0, disabled BIGINT NOT NULL DEFAULT 0,
    deleted BIGINT NOT NULL DEFAULT 0, unchanged BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    groups_created BIGINT NOT NULL DEFAULT 0, groups_updated BIGINT NOT NULL DEFAULT 0,
    groups_deleted BIGINT NOT NULL DEFAULT 0,
    memberships_added BIGINT NOT NULL DEFAULT 0, memberships_removed BIGINT NOT NULL DEFAULT 0,
    pushed BIGINT NOT NULL DEFAULT 0, push_failed BIGINT NOT NULL DEFAULT 0, conflicts BIGINT NOT NULL DEFAULT 0,
    message TEXT
);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE run_errors (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('error', 'warning')),
    dn TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX run_errors_run ON run_errors (run_id);
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT REFERENCES runs (id),
    at TEXT NOT NULL,
    user_id BIGINT,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    field TEXT,
    old TEXT,
    new TEXT
);
CREATE INDEX audit_user ON audit (user_id);
CREATE INDEX audit_run ON audit (run_id);
CREATE TABLE sync_state (
    source TEXT PRIMARY KEY,
    state TEXT,
    fingerprint TEXT,
    last_full_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE writeback (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    field TEXT NOT NULL,
    attribute TEXT NOT NULL,
    value TEXT,
    old_value TEXT,
    base_value TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'conflict', 'done')),
    attempts BIGINT NOT NULL DEFAULT 0,
    last_code BIGINT,
    last_error TEXT,
    next_attempt_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    done_at TEXT,
    UNIQUE (user_id, field)
);
CREATE INDEX writeback_status ON writeback (status);
CREATE TABLE run_removals (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    target_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    action TEXT NOT NULL
);
CREATE INDEX run_removals_run ON run_removals (run_id);
CREATE TABLE run_plans (
    run_id BIGINT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    summary TEXT NOT NULL
);
"#,
    // 2 to 7: in migration 1 on this backend
    "",
    "",
    "",
    "",
    "",
    "",
    // 8: who started a run, the schedule slot it was for, the instance that
    // ran it; each slot of each source that was run (several instances)
    r#"
ALTER TABLE runs ADD COLUMN triggered_by TEXT;
ALTER TABLE runs ADD COLUMN slot TEXT;
ALTER TABLE runs ADD COLUMN instance TEXT;
CREATE TABLE schedule_slots (
    source TEXT NOT NULL,
    slot TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    PRIMARY KEY (source, slot)
);
"#,
    // 9: SCIM resources as identity providers pushed them (live and
    // deleted: ids are never reused), found by id, userName key, externalId
    // and displayName; push runs found by source and time
    r#"
CREATE TABLE scim_resources (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    name_key TEXT NOT NULL,
    external_id TEXT,
    body TEXT NOT NULL,
    created TEXT NOT NULL,
    modified TEXT NOT NULL,
    version BIGINT NOT NULL,
    deleted TEXT
);
CREATE UNIQUE INDEX scim_user_name ON scim_resources (source, name_key) WHERE kind = 'User' AND deleted IS NULL;
CREATE INDEX scim_name ON scim_resources (source, kind, name_key);
CREATE INDEX scim_external_id ON scim_resources (source, kind, external_id);
CREATE INDEX runs_source_mode ON runs (source, mode, started_at);
"#,
    // 10: each webhook's cursor and the batch it is delivering; claims
    // one instance holds at a time (a live connection, a webhook)
    r#"
CREATE TABLE webhooks (
    name TEXT PRIMARY KEY,
    cursor BIGINT NOT NULL,
    batch_id TEXT,
    batch_upto BIGINT,
    batch_body TEXT,
    batch_count BIGINT,
    failures BIGINT NOT NULL DEFAULT 0,
    last_delivery TEXT,
    last_error TEXT,
    next_try TEXT
);
CREATE TABLE claims (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until TEXT NOT NULL
);
"#,
    // 11: before-images in the audit trail (a deleted or re-linked user, a
    // deleted group; the group of a membership row), so a run can be undone
    "ALTER TABLE audit ADD COLUMN image TEXT;",
];

const _: () = assert!(MIGRATIONS.len() == crate::store::SCHEMA_VERSION);

/// Serializes migrations across instances (a transaction advisory lock).
const MIGRATE_LOCK: i64 = 0x6469_7273_796e_6300; // "dirsync" 0

/// The schema version recorded in the database; `None` when it has no
/// dirsync schema yet.
pub(super) async fn version(inner: &Inner) -> Result<Option<usize>, StoreError> {
    let conn = super::connect::pooled(inner).await?;
    let err = |e| explain(&inner.name, e);
    let exists: bool =
        conn.query_one("SELECT to_regclass('dirsync_schema') IS NOT NULL", &[]).await.map_err(err)?.get(0);
    if !exists {
        return Ok(None);
    }
    let v: i32 = conn.query_one("SELECT version FROM dirsync_schema", &[]).await.map_err(err)?.get(0);
    Ok(Some(v.max(0) as usize))
}

/// Refuses a schema newer than this build knows.
pub(super) fn refuse_newer(name: &str, version: usize) -> Result<(), StoreError> {
    if version > MIGRATIONS.len() {
        return Err(StoreError::TooNew { store: name.to_string(), found: version, known: MIGRATIONS.len() });
    }
    Ok(())
}

/// Applies each migration the database has not had, each in a transaction.
pub(super) async fn migrate(inner: &Inner) -> Result<(), StoreError> {
    let mut conn = super::connect::pooled(inner).await?;
    let err = |e| explain(&inner.name, e);
    loop {
        let tx = conn.transaction().await.map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK]).await.map_err(err)?;
        let exists: bool =
            tx.query_one("SELECT to_regclass('dirsync_schema') IS NOT NULL", &[]).await.map_err(err)?.get(0);
        if !exists {
            tx.batch_execute("CREATE TABLE dirsync_schema (version INTEGER NOT NULL)").await.map_err(err)?;
        }
        let row = tx.query_opt("SELECT version FROM dirsync_schema", &[]).await.map_err(err)?;
        let version = match row {
            Some(r) => r.get::<_, i32>(0).max(0) as usize,
            None => {
                tx.execute("INSERT INTO dirsync_schema (version) VALUES (0)", &[]).await.map_err(err)?;
                0
            }
        };
        refuse_newer(&inner.name, version)?;
        if version == MIGRATIONS.len() {
            return tx.commit().await.map_err(err);
        }
        tx.batch_execute(MIGRATIONS[version]).await.map_err(err)?;
        tx.execute("UPDATE dirsync_schema SET version = $1", &[&(version as i32 + 1)]).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
    }
}

/// What `dirsync check` can ask of PostgreSQL without extensions: the
/// schema's version, and that every table answers and every membership
/// points at a user and a group (the server checks pages itself).
pub(super) async fn integrity(inner: &Inner) -> Result<(), StoreError> {
    let conn = super::connect::pooled(inner).await?;
    let err = |e| explain(&inner.name, e);
    let v: i32 = conn.query_one("SELECT version FROM dirsync_schema", &[]).await.map_err(err)?.get(0);
    refuse_newer(&inner.name, v.max(0) as usize)?;
    let orphans: i64 = conn
        .query_one(
            "SELECT (SELECT count(*) FROM user_groups ug WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = ug.user_id)
                       OR NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = ug.group_id))
                  + (SELECT count(*) FROM group_groups gg WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = gg.child_id)
                       OR NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = gg.parent_id))
                  + (SELECT count(*) FROM writeback w WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = w.user_id))",
            &[],
        )
        .await
        .map_err(err)?
        .get(0);
    if orphans > 0 {
        return Err(StoreError::Backend {
            store: inner.name.clone(),
            message: format!("{orphans} rows point at users or groups that do not exist; restore from a backup"),
        });
    }
    Ok(())
}
