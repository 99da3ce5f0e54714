//! The write operations of one SQLite transaction ([`StoreTx`]): users,
//! groups, memberships, audit rows, sync positions, the write-back queue and
//! the run's record. Used by `transaction`, write sessions and the queue.

use crate::time::Timestamp;
use std::path::Path;

use rusqlite::{params, Transaction};

use super::backend;
use crate::model::images::{GroupImage, UserImage};
use crate::model::records::{AuditRecord, RunRecord};
use crate::model::{name_key, normalize_dn, CORE_FIELDS};
use crate::model::{NewGroup, NewUser};
use crate::store::row::{created_summary, image_columns, image_fields, json_map, split_fields};
use crate::store::{NewWriteback, SavedState, StoreError, StoreTx, UserPatch};

pub(super) struct SqliteTx<'c> {
    pub(super) tx: Transaction<'c>,
    pub(super) path: &'c Path,
}

impl SqliteTx<'_> {
    pub(super) fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize, StoreError> {
        let mut st = self.tx.prepare_cached(sql).map_err(backend(self.path))?;
        st.execute(p).map_err(backend(self.path))
    }
}

impl StoreTx for SqliteTx<'_> {
    fn generation(&mut self) -> Result<i64, StoreError> {
        self.tx
            .query_row("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'", [], |r| r.get(0))
            .map_err(backend(self.path))
    }

    fn set_generation(&mut self, generation: i64) -> Result<(), StoreError> {
        self.exec("UPDATE meta SET value = ?1 WHERE key = 'generation'", [generation.to_string()]).map(drop)
    }

    fn insert_user(&mut self, u: &NewUser, now: Timestamp) -> Result<i64, StoreError> {
        let (core, custom) = split_fields(&u.fields);
        self.exec(
            "INSERT INTO users (source, external_id, username, username_key, dn, dn_key, status, full_name, email, department, office, card_number, card_number2, fields, created_at, updated_at, dir_values) VALUES (?1, ?2, ?3, ?4, ?5, ?14, ?15, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?16)",
            params![u.source, u.external_id, u.username, name_key(&u.username), u.dn, core[0], core[1], core[2], core[3], core[4], core[5], custom, now, normalize_dn(&u.dn), u.status.as_str(), split_fields(&u.dir_values).1],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    fn update_user(&mut self, id: i64, p: &UserPatch, now: Timestamp) -> Result<(), StoreError> {
        if let Some(name) = p.username {
            self.exec(
                "UPDATE users SET username = ?2, username_key = ?3 WHERE id = ?1",
                params![id, name, name_key(name)],
            )?;
        }
        if let Some(src) = p.source {
            self.exec("UPDATE users SET source = ?2 WHERE id = ?1", params![id, src])?;
        }
        if let Some(ext) = p.external_id {
            self.exec("UPDATE users SET external_id = ?2 WHERE id = ?1", params![id, ext])?;
        }
        if let Some(dn) = p.dn {
            self.exec("UPDATE users SET dn = ?2, dn_key = ?3 WHERE id = ?1", params![id, dn, normalize_dn(dn)])?;
        }
        if let Some(status) = p.status {
            self.exec("UPDATE users SET status = ?2 WHERE id = ?1", params![id, status.as_str()])?;
        }
        if let Some(missing) = p.missing_since {
            self.exec("UPDATE users SET missing_since = ?2 WHERE id = ?1", params![id, missing])?;
        }
        for (field, value) in &p.dir_values {
            let path = format!("$.\"{field}\"");
            match value {
                Some(v) => self.exec(
                    "UPDATE users SET dir_values = json_set(dir_values, ?2, ?3) WHERE id = ?1",
                    params![id, path, v],
                )?,
                None => self.exec(
                    "UPDATE users SET dir_values = json_remove(dir_values, ?2) WHERE id = ?1",
                    params![id, path],
                )?,
            };
        }
        for (field, value) in &p.fields {
            if CORE_FIELDS.contains(field) {
                // Column names come from the fixed CORE_FIELDS list, never from input.
                self.exec(&format!("UPDATE users SET {field} = ?2 WHERE id = ?1"), params![id, value])?;
            } else {
                let path = format!("$.\"{field}\"");
                match value {
                    Some(v) => self.exec(
                        "UPDATE users SET fields = json_set(fields, ?2, ?3) WHERE id = ?1",
                        params![id, path, v],
                    )?,
                    None => {
                        self.exec("UPDATE users SET fields = json_remove(fields, ?2) WHERE id = ?1", params![id, path])?
                    }
                };
            }
        }
        self.exec("UPDATE users SET updated_at = ?2 WHERE id = ?1", params![id, now]).map(drop)
    }

    fn delete_user(&mut self, id: i64) -> Result<(), StoreError> {
        self.exec("DELETE FROM users WHERE id = ?1", [id]).map(drop)
    }

    fn insert_group(&mut self, g: &NewGroup, now: Timestamp) -> Result<i64, StoreError> {
        self.exec(
            "INSERT INTO groups (source, external_id, name, name_key, dn, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![g.source, g.external_id, g.name, name_key(&g.name), g.dn, now],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    fn update_group(&mut self, id: i64, name: &str, dn: &str, now: Timestamp) -> Result<(), StoreError> {
        self.exec(
            "UPDATE groups SET name = ?2, name_key = ?3, dn = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, name, name_key(name), dn, now],
        )
        .map(drop)
    }

    fn delete_group(&mut self, id: i64) -> Result<(), StoreError> {
        self.exec("DELETE FROM groups WHERE id = ?1", [id]).map(drop)
    }

    fn add_user_member(&mut self, user_id: i64, group_id: i64) -> Result<(), StoreError> {
        self.exec("INSERT OR IGNORE INTO user_groups (user_id, group_id) VALUES (?1, ?2)", [user_id, group_id])
            .map(drop)
    }

    fn remove_user_member(&mut self, user_id: i64, group_id: i64) -> Result<(), StoreError> {
        self.exec("DELETE FROM user_groups WHERE user_id = ?1 AND group_id = ?2", [user_id, group_id]).map(drop)
    }

    fn add_group_member(&mut self, child_id: i64, parent_id: i64) -> Result<(), StoreError> {
        self.exec("INSERT OR IGNORE INTO group_groups (child_id, parent_id) VALUES (?1, ?2)", [child_id, parent_id])
            .map(drop)
    }

    fn remove_group_member(&mut self, child_id: i64, parent_id: i64) -> Result<(), StoreError> {
        self.exec("DELETE FROM group_groups WHERE child_id = ?1 AND parent_id = ?2", [child_id, parent_id]).map(drop)
    }

    fn audit(&mut self, a: &AuditRecord) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO audit (run_id, at, user_id, name, action, field, old, new, image) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![a.run_id, a.at, a.user_id, a.name, a.action, a.field, a.old, a.new, a.image],
        )
        .map(drop)
    }

    fn insert_created(
        &mut self,
        users: &[NewUser],
        run_id: Option<i64>,
        now: Timestamp,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut ids = Vec::with_capacity(users.len());
        for u in users {
            let id = self.insert_user(u, now)?;
            self.exec(
                "INSERT INTO audit (run_id, at, user_id, name, action, new) VALUES (?1, ?2, ?3, ?4, 'create', ?5)",
                params![run_id, now, id, u.username, created_summary(u)],
            )?;
            ids.push((id, self.tx.last_insert_rowid()));
        }
        Ok(ids)
    }

    fn remove_created(&mut self, user_id: i64, audit_id: i64) -> Result<(), StoreError> {
        self.exec("DELETE FROM audit WHERE id = ?1 AND user_id = ?2", [audit_id, user_id])?;
        self.delete_user(user_id)
    }

    fn replace_created(&mut self, user_id: i64, audit_id: i64, u: &NewUser, now: Timestamp) -> Result<(), StoreError> {
        let (core, custom) = split_fields(&u.fields);
        self.exec(
            "UPDATE users SET source = ?2, external_id = ?3, username = ?4, username_key = ?5, dn = ?6, dn_key = ?7, status = ?8, full_name = ?9, email = ?10, department = ?11, office = ?12, card_number = ?13, card_number2 = ?14, fields = ?15, dir_values = ?16, updated_at = ?17 WHERE id = ?1",
            params![user_id, u.source, u.external_id, u.username, name_key(&u.username), u.dn, normalize_dn(&u.dn), u.status.as_str(), core[0], core[1], core[2], core[3], core[4], core[5], custom, split_fields(&u.dir_values).1, now],
        )?;
        self.exec(
            "UPDATE audit SET name = ?3, new = ?4 WHERE id = ?1 AND user_id = ?2",
            params![audit_id, user_id, u.username, created_summary(u)],
        )
        .map(drop)
    }

    fn set_sync_state(
        &mut self,
        source: &str,
        saved: &SavedState,
        full: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO sync_state (source, state, fingerprint, last_full_at, updated_at) \
             VALUES (?1, ?2, ?3, CASE WHEN ?4 THEN ?5 END, ?5) \
             ON CONFLICT (source) DO UPDATE SET state = excluded.state, fingerprint = excluded.fingerprint, \
             updated_at = excluded.updated_at, last_full_at = CASE WHEN ?4 THEN ?5 ELSE sync_state.last_full_at END",
            params![source, saved.state, saved.fingerprint, full, now],
        )
        .map(drop)
    }

    fn enqueue_writeback(&mut self, w: &NewWriteback, now: Timestamp) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO writeback (user_id, field, attribute, value, old_value, base_value, status, attempts, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7) \
             ON CONFLICT (user_id, field) DO UPDATE SET attribute = excluded.attribute, value = excluded.value, \
             old_value = excluded.old_value, base_value = excluded.base_value, status = 'pending', attempts = 0, \
             last_code = NULL, last_error = NULL, next_attempt_at = NULL, updated_at = excluded.updated_at, done_at = NULL",
            params![w.user_id, w.field, w.attribute, w.value, w.old_value, w.base_value, now],
        )
        .map(drop)
    }

    fn field_values(&mut self, field: &str) -> Result<Vec<String>, StoreError> {
        let core = CORE_FIELDS.contains(&field);
        // A core column name comes from the fixed CORE_FIELDS list, never from input.
        let value = if core { field.to_string() } else { "json_extract(fields, ?1)".to_string() };
        let sql = format!("SELECT {value} FROM users WHERE {value} IS NOT NULL");
        let mut st = self.tx.prepare_cached(&sql).map_err(backend(self.path))?;
        let path = format!("$.\"{field}\"");
        let values: rusqlite::Result<Vec<String>> = if core {
            st.query_map([], |r| r.get(0)).map_err(backend(self.path))?.collect()
        } else {
            st.query_map([&path], |r| r.get(0)).map_err(backend(self.path))?.collect()
        };
        values.map_err(backend(self.path))
    }

    fn record_removals(&mut self, run_id: i64, removals: &[crate::store::PlannedRemoval]) -> Result<(), StoreError> {
        for r in removals {
            self.exec(
                "INSERT INTO run_removals (run_id, kind, target_id, name, action) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, r.kind.as_str(), r.target_id, r.name, r.action.as_str()],
            )?;
        }
        Ok(())
    }

    fn add_to_run(
        &mut self,
        run_id: i64,
        counts: &crate::model::records::Counts,
        errors: &[crate::model::EntryError],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.add_counts(run_id, counts, errors, at)
    }

    fn scim_put(&mut self, row: &crate::store::ScimRow) -> Result<(), StoreError> {
        self.put_scim(row)
    }

    fn scim_delete(&mut self, source: &str, id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.delete_scim(source, id, at)
    }

    fn user_image(&mut self, id: i64) -> Result<Option<crate::model::images::UserImage>, StoreError> {
        self.read_user_image(id)
    }

    fn group_image(&mut self, id: i64) -> Result<Option<crate::model::images::GroupImage>, StoreError> {
        self.read_group_image(id)
    }

    fn restore_user(&mut self, u: &crate::model::images::UserImage, now: Timestamp) -> Result<(), StoreError> {
        self.write_user_image(u, now)
    }

    fn restore_group(&mut self, g: &crate::model::images::GroupImage, now: Timestamp) -> Result<(), StoreError> {
        self.write_group_image(g, now)
    }

    fn record_plan(&mut self, run_id: i64, summary: &str) -> Result<(), StoreError> {
        self.exec("INSERT OR REPLACE INTO run_plans (run_id, summary) VALUES (?1, ?2)", params![run_id, summary])
            .map(drop)
    }

    fn finish_run(&mut self, run: &RunRecord) -> Result<(), StoreError> {
        let c = &run.counts;
        let n = |v: u64| v as i64;
        self.exec(
            "UPDATE runs SET finished_at = ?2, status = ?3, created = ?4, updated = ?5, renamed = ?6, disabled = ?7, deleted = ?8, unchanged = ?9, skipped = ?10, groups_created = ?11, groups_updated = ?12, groups_deleted = ?13, memberships_added = ?14, memberships_removed = ?15, message = ?16, mode = ?17 WHERE id = ?1",
            params![
                run.id,
                run.finished_at,
                run.status.as_str(),
                n(c.created),
                n(c.updated),
                n(c.renamed),
                n(c.disabled),
                n(c.deleted),
                n(c.unchanged),
                n(c.skipped),
                n(c.groups_created),
                n(c.groups_updated),
                n(c.groups_deleted),
                n(c.memberships_added),
                n(c.memberships_removed),
                run.message,
                run.mode.as_str()
            ],
        )?;
        for (kind, list) in [("error", &run.errors), ("warning", &run.warnings)] {
            for e in list {
                self.exec(
                    "INSERT INTO run_errors (run_id, kind, dn, reason) VALUES (?1, ?2, ?3, ?4)",
                    params![run.id, kind, e.dn, e.reason],
                )?;
            }
        }
        if let Some(slot) = run.origin.slot {
            for source in run.sources.names() {
                self.exec(
                    "INSERT OR IGNORE INTO schedule_slots (source, slot, run_id) VALUES (?1, ?2, ?3)",
                    params![source, slot, run.id],
                )?;
            }
        }
        Ok(())
    }
}

/// Before-images of users and groups, and their restoration with the same
/// ids (undoing a run).
impl SqliteTx<'_> {
    fn ids(&self, sql: &str, id: i64) -> Result<Vec<i64>, StoreError> {
        let mut st = self.tx.prepare_cached(sql).map_err(backend(self.path))?;
        let rows = st.query_map([id], |r| r.get(0)).map_err(backend(self.path))?;
        rows.collect::<Result<_, _>>().map_err(backend(self.path))
    }

    pub(super) fn read_user_image(&mut self, id: i64) -> Result<Option<UserImage>, StoreError> {
        use rusqlite::OptionalExtension;
        let row = self
            .tx
            .query_row(
                "SELECT source, external_id, username, dn, status, missing_since, full_name, email, department, office, card_number, card_number2, fields, dir_values, created_at FROM users WHERE id = ?1",
                [id],
                |r| {
                    let core: [Option<String>; 6] = [r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?];
                    Ok(UserImage {
                        id,
                        source: r.get(0)?,
                        external_id: r.get(1)?,
                        username: r.get(2)?,
                        dn: r.get(3)?,
                        status: r.get(4)?,
                        missing_since: r.get(5)?,
                        fields: image_fields(core, &r.get::<_, String>(12)?),
                        dir_values: json_map(&r.get::<_, String>(13)?),
                        created_at: r.get(14)?,
                        groups: Vec::new(),
                    })
                },
            )
            .optional()
            .map_err(backend(self.path))?;
        let Some(mut u) = row else { return Ok(None) };
        u.groups = self.ids("SELECT group_id FROM user_groups WHERE user_id = ?1 ORDER BY group_id", id)?;
        Ok(Some(u))
    }

    pub(super) fn read_group_image(&mut self, id: i64) -> Result<Option<GroupImage>, StoreError> {
        use rusqlite::OptionalExtension;
        let row = self
            .tx
            .query_row("SELECT source, external_id, name, dn, created_at FROM groups WHERE id = ?1", [id], |r| {
                Ok(GroupImage {
                    id,
                    source: r.get(0)?,
                    external_id: r.get(1)?,
                    name: r.get(2)?,
                    dn: r.get(3)?,
                    created_at: r.get(4)?,
                    members: Vec::new(),
                    children: Vec::new(),
                    parents: Vec::new(),
                })
            })
            .optional()
            .map_err(backend(self.path))?;
        let Some(mut g) = row else { return Ok(None) };
        g.members = self.ids("SELECT user_id FROM user_groups WHERE group_id = ?1 ORDER BY user_id", id)?;
        g.children = self.ids("SELECT child_id FROM group_groups WHERE parent_id = ?1 ORDER BY child_id", id)?;
        g.parents = self.ids("SELECT parent_id FROM group_groups WHERE child_id = ?1 ORDER BY parent_id", id)?;
        Ok(Some(g))
    }

    pub(super) fn write_user_image(&mut self, u: &UserImage, now: Timestamp) -> Result<(), StoreError> {
        let (core, custom, dir) = image_columns(u);
        self.exec(
            "INSERT INTO users (id, source, external_id, username, username_key, dn, dn_key, status, missing_since, full_name, email, department, office, card_number, card_number2, fields, dir_values, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            params![u.id, u.source, u.external_id, u.username, name_key(&u.username), u.dn, normalize_dn(&u.dn), u.status, u.missing_since, core[0], core[1], core[2], core[3], core[4], core[5], custom, dir, u.created_at, now],
        )?;
        for g in &u.groups {
            // A group deleted since is left out.
            self.exec(
                "INSERT OR IGNORE INTO user_groups (user_id, group_id) SELECT ?1, id FROM groups WHERE id = ?2",
                params![u.id, g],
            )?;
        }
        Ok(())
    }

    pub(super) fn write_group_image(&mut self, g: &GroupImage, now: Timestamp) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO groups (id, source, external_id, name, name_key, dn, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![g.id, g.source, g.external_id, g.name, name_key(&g.name), g.dn, g.created_at, now],
        )?;
        for m in &g.members {
            self.exec(
                "INSERT OR IGNORE INTO user_groups (user_id, group_id) SELECT id, ?2 FROM users WHERE id = ?1",
                params![m, g.id],
            )?;
        }
        for c in &g.children {
            self.exec(
                "INSERT OR IGNORE INTO group_groups (child_id, parent_id) SELECT id, ?2 FROM groups WHERE id = ?1",
                params![c, g.id],
            )?;
        }
        for p in &g.parents {
            self.exec(
                "INSERT OR IGNORE INTO group_groups (child_id, parent_id) SELECT ?1, id FROM groups WHERE id = ?2",
                params![g.id, p],
            )?;
        }
        Ok(())
    }
}
