//! The SQLite schema as numbered migrations, applied in order, each in its
//! own transaction (`PRAGMA user_version` records how far a file is).

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('generation', '0');
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    dn TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    full_name TEXT, email TEXT, department TEXT, office TEXT, card_number TEXT, card_number2 TEXT,
    fields TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (source, external_id)
);
CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    dn TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX groups_name ON groups (name_key);
CREATE TABLE user_groups (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
) WITHOUT ROWID;
CREATE INDEX user_groups_group ON user_groups (group_id);
CREATE TABLE group_groups (
    child_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    parent_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (child_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX group_groups_parent ON group_groups (parent_id);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    forced INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0, updated INTEGER NOT NULL DEFAULT 0,
    renamed INTEGER NOT NULL DEFAULT 0, disabled INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0, unchanged INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    groups_created INTEGER NOT NULL DEFAULT 0, groups_updated INTEGER NOT NULL DEFAULT 0,
    groups_deleted INTEGER NOT NULL DEFAULT 0,
    memberships_added INTEGER NOT NULL DEFAULT 0, memberships_removed INTEGER NOT NULL DEFAULT 0,
    message TEXT
);
CREATE TABLE run_errors (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('error', 'warning')),
    dn TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX run_errors_run ON run_errors (run_id);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs (id),
    at TEXT NOT NULL,
    user_id INTEGER,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    field TEXT,
    old TEXT,
    new TEXT
);
CREATE INDEX audit_user ON audit (user_id);
"#,
    // 2: incremental sync: where each source left off, and each run's mode
    r#"
CREATE TABLE sync_state (
    source TEXT PRIMARY KEY,
    state TEXT,
    fingerprint TEXT,
    last_full_at TEXT,
    updated_at TEXT NOT NULL
);
ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'full';
ALTER TABLE users ADD COLUMN missing_since TEXT;
ALTER TABLE users ADD COLUMN dn_key TEXT;
CREATE INDEX users_dn_key ON users (dn_key);
-- the guards' base for a delta, counted without reading every user row
CREATE INDEX users_source_status ON users (source, status);
"#,
    // 3: write-back of application-owned fields
    r#"
-- The directory's value of each app-owned field as last read (for conflicts).
ALTER TABLE users ADD COLUMN dir_values TEXT NOT NULL DEFAULT '{}';
CREATE TABLE writeback (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    field TEXT NOT NULL,
    attribute TEXT NOT NULL,
    value TEXT,
    old_value TEXT,
    base_value TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'conflict', 'done')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_code INTEGER,
    last_error TEXT,
    next_attempt_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    done_at TEXT,
    UNIQUE (user_id, field)
);
CREATE INDEX writeback_status ON writeback (status);
ALTER TABLE runs ADD COLUMN pushed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN push_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
"#,
    // 4: name keys are Unicode caseless (NFC + full case folding) and DN keys
    // sort multi-valued RDNs: both are recomputed in Rust (see `rekey`).
    "SELECT 1;",
    // 5: what a blocked run would have removed, so it can be approved
    r#"
CREATE TABLE run_removals (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    target_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    action TEXT NOT NULL
);
CREATE INDEX run_removals_run ON run_removals (run_id);
"#,
    // 6: a blocked run's plan as people read it (plan::summary), for review
    r#"
CREATE TABLE run_plans (
    run_id INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    summary TEXT NOT NULL
);
"#,
    // 7: a run's changes, read by run (its page lists them)
    "CREATE INDEX audit_run ON audit (run_id);",
    // 8: who started a run, the schedule slot it was for, the instance that
    // ran it; each slot of each source that was run (several instances)
    r#"
ALTER TABLE runs ADD COLUMN triggered_by TEXT;
ALTER TABLE runs ADD COLUMN slot TEXT;
ALTER TABLE runs ADD COLUMN instance TEXT;
CREATE TABLE schedule_slots (
    source TEXT NOT NULL,
    slot TEXT NOT NULL,
    run_id INTEGER NOT NULL,
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

/// The migration after which [`rekey`] runs, in the same transaction.
pub(super) const REKEY_AT: usize = 4;

/// Recomputes every key that Rust derives (`username_key`, `dn_key`,
/// `name_key`) with today's functions. Two users whose names now fold to one
/// key (NFC and NFD forms) keep their old keys, with a warning: the planner
/// reports them as a username conflict.
pub(super) fn rekey(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    use crate::model::{name_key, normalize_dn};
    let users: Vec<(i64, String, String)> = {
        let mut st = tx.prepare("SELECT id, username, dn FROM users")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut upd = tx.prepare("UPDATE users SET username_key = ?2, dn_key = ?3 WHERE id = ?1")?;
    let mut dn_only = tx.prepare("UPDATE users SET dn_key = ?2 WHERE id = ?1")?;
    for (id, username, dn) in &users {
        match upd.execute(rusqlite::params![id, name_key(username), normalize_dn(dn)]) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                tracing::warn!(user = %username, "another user's name folds to the same key; kept the old key");
                dn_only.execute(rusqlite::params![id, normalize_dn(dn)])?;
            }
            Err(e) => return Err(e),
        }
    }
    let groups: Vec<(i64, String)> = {
        let mut st = tx.prepare("SELECT id, name FROM groups")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut upd = tx.prepare("UPDATE groups SET name_key = ?2 WHERE id = ?1")?;
    for (id, name) in &groups {
        upd.execute(rusqlite::params![id, name_key(name)])?;
    }
    Ok(())
}
