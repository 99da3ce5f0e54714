//! An undo's steps carried out in one store transaction, each with the
//! audit rows a sync would write for the same change (and the before-images
//! an undo of the undo needs), app-owned fields queued for write-back. A
//! dry run does the same and rolls back: its preview is exactly what the
//! undo would do now.

use std::collections::HashMap;

use serde::Serialize;

use super::steps::Step;
use crate::config::{Config, OnMissing};
use crate::engine::apply::Provisioning;
use crate::engine::writeback::local::directory_owned;
use crate::model::images::UserImage;
use crate::model::records::{AuditRecord, Counts, PlannedRemoval, RemovalAction, RemovalTarget};
use crate::model::Status;
use crate::store::{NewWriteback, StoreError, StoreTx, UserPatch};
use crate::time::Timestamp;

/// One change the undo makes, for the preview and the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UndoChange {
    pub name: String,
    pub action: String,
    pub field: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// A directory-owned value: the next sync sets it again unless the
    /// directory says the same by then.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub next_sync_overwrites: bool,
}

/// What the steps did.
#[derive(Debug, Default)]
pub struct Done {
    pub counts: Counts,
    pub changes: Vec<UndoChange>,
    /// Users the undo removes, by source (for the guards).
    pub removals: HashMap<String, u64>,
    /// The same users, one by one (what an approval approves).
    pub removed: Vec<PlannedRemoval>,
    /// Steps with nothing to act on any more (a user deleted since).
    pub skipped: Vec<String>,
}

/// Writes the steps, audited under `run_id` (`None` in a dry run).
pub struct Writer<'a> {
    pub cfg: &'a Config,
    pub run_id: Option<i64>,
    pub at: Timestamp,
    pub done: Done,
    groups: HashMap<i64, Option<String>>,
    /// Which fields are written back, and to which attribute.
    prov: Provisioning<'a>,
}

impl<'a> Writer<'a> {
    pub fn new(cfg: &'a Config, run_id: Option<i64>, at: Timestamp) -> Self {
        Writer { cfg, run_id, at, done: Done::default(), groups: HashMap::new(), prov: Provisioning::from_config(cfg) }
    }

    #[allow(clippy::too_many_arguments)]
    fn audit(
        &mut self,
        tx: &mut dyn StoreTx,
        user: Option<i64>,
        name: &str,
        action: &str,
        (field, old, new): (Option<&str>, Option<&str>, Option<&str>),
        image: Option<String>,
        next_sync: bool,
    ) -> Result<(), StoreError> {
        tx.audit(&AuditRecord {
            run_id: self.run_id,
            at: self.at,
            user_id: user,
            name: name.to_string(),
            action: action.to_string(),
            field: field.map(str::to_string),
            old: old.map(str::to_string),
            new: new.map(str::to_string),
            image,
        })?;
        self.done.changes.push(UndoChange {
            name: name.to_string(),
            action: action.to_string(),
            field: field.map(str::to_string),
            from: old.map(str::to_string),
            to: new.map(str::to_string),
            next_sync_overwrites: next_sync,
        });
        Ok(())
    }

    /// A group's name now (`None`: it is gone).
    fn group_name(&mut self, tx: &mut dyn StoreTx, id: i64) -> Result<Option<String>, StoreError> {
        if let Some(n) = self.groups.get(&id) {
            return Ok(n.clone());
        }
        let n = tx.group_image(id)?.map(|g| g.name);
        self.groups.insert(id, n.clone());
        Ok(n)
    }

    /// Whether `field` of a `source` user is the directory's (a sync sets it).
    fn directory_owned(&self, source: &str, field: &str) -> bool {
        self.cfg.sources.iter().find(|s| s.name == source).is_some_and(|s| directory_owned(s, field))
    }

    /// Counts a user the undo removes, for the guards and an approval.
    fn removal(&mut self, source: &str, id: i64, name: &str, action: RemovalAction) {
        *self.done.removals.entry(source.to_string()).or_default() += 1;
        let r = PlannedRemoval { kind: RemovalTarget::User, target_id: id, name: name.to_string(), action };
        self.done.removed.push(r);
    }

    /// Records a step with nothing left to act on.
    fn skip(&mut self, what: String) -> Result<(), StoreError> {
        self.done.skipped.push(what);
        Ok(())
    }

    /// Carries out one step.
    pub fn step(&mut self, tx: &mut dyn StoreTx, s: &Step) -> Result<(), StoreError> {
        match s {
            Step::Uncreate { user, name } => self.uncreate(tx, *user, name),
            Step::Restore(img) => self.restore(tx, img),
            Step::Field { user, name, field, to } => self.field(tx, *user, name, field, to.as_deref()),
            Step::Rename { user, from, to } => {
                let Some(cur) = tx.user_image(*user)? else { return self.skip(format!("{from}: gone since")) };
                tx.update_user(*user, &UserPatch { username: Some(to), ..UserPatch::default() }, self.at)?;
                self.done.counts.renamed += 1;
                let next = self.cfg.sources.iter().any(|s| s.name == cur.source && !s.is_pushed());
                self.audit(tx, Some(*user), to, "rename", (Some("username"), Some(&cur.username), Some(to)), None, next)
            }
            Step::Relink { user, name, source, external_id } => {
                let Some(cur) = tx.user_image(*user)? else { return self.skip(format!("{name}: gone since")) };
                let patch = UserPatch { source: Some(source), external_id: Some(external_id), ..UserPatch::default() };
                tx.update_user(*user, &patch, self.at)?;
                self.done.counts.updated += 1;
                let (from, to) = (format!("{}:{}", cur.source, cur.external_id), format!("{source}:{external_id}"));
                let image = serde_json::to_string(&cur).ok();
                self.audit(tx, Some(*user), name, "relink", (Some("source"), Some(&from), Some(&to)), image, false)
            }
            Step::Status { user, name, active } => self.status(tx, *user, name, *active),
            Step::Member { user, name, group, group_name, add } => {
                self.member(tx, *user, name, *group, group_name, *add)
            }
            Step::Subgroup { child, parent, name, parent_name, add } => {
                if self.group_name(tx, *child)?.is_none() || self.group_name(tx, *parent)?.is_none() {
                    return self.skip(format!("group {name} in {parent_name}: a group is gone since"));
                }
                let (action, what) = match add {
                    true => {
                        tx.add_group_member(*child, *parent)?;
                        self.done.counts.memberships_added += 1;
                        ("subgroup_add", (Some("group"), None, Some(parent_name.as_str())))
                    }
                    false => {
                        tx.remove_group_member(*child, *parent)?;
                        self.done.counts.memberships_removed += 1;
                        ("subgroup_remove", (Some("group"), Some(parent_name.as_str()), None))
                    }
                };
                let r = format!("{{\"group\":{parent},\"child\":{child}}}");
                self.audit(tx, None, name, action, what, Some(r), false)
            }
            Step::Ungroup { group, name } => {
                let Some(img) = tx.group_image(*group)? else {
                    return self.skip(format!("group {name}: gone since"));
                };
                tx.delete_group(*group)?;
                self.groups.insert(*group, None);
                self.done.counts.groups_deleted += 1;
                self.audit(
                    tx,
                    None,
                    &img.name,
                    "group_delete",
                    (None, None, None),
                    serde_json::to_string(&img).ok(),
                    false,
                )
            }
            Step::GroupRename { group, from, to, dn } => {
                let Some(img) = tx.group_image(*group)? else {
                    return self.skip(format!("group {from}: gone since"));
                };
                tx.update_group(*group, to, dn, self.at)?;
                self.groups.insert(*group, Some(to.clone()));
                self.done.counts.groups_updated += 1;
                let image = serde_json::to_string(&img).ok();
                self.audit(tx, None, to, "group_update", (Some("name"), Some(&img.name), Some(to)), image, false)
            }
            Step::GroupRestore(img) => {
                tx.restore_group(img, self.at)?;
                self.groups.insert(img.id, Some(img.name.clone()));
                self.done.counts.groups_created += 1;
                let r = format!("{{\"group\":{}}}", img.id);
                self.audit(
                    tx,
                    None,
                    &img.name,
                    "group_create",
                    (Some("source"), None, Some(&img.source)),
                    Some(r),
                    false,
                )
            }
        }
    }

    /// A user the run created, removed as a sync removes one gone from its
    /// source: disabled and out of every group, or deleted.
    fn uncreate(&mut self, tx: &mut dyn StoreTx, user: i64, name: &str) -> Result<(), StoreError> {
        let Some(img) = tx.user_image(user)? else { return self.skip(format!("{name}: gone since")) };
        let on_missing = match self.cfg.sources.iter().find(|s| s.name == img.source) {
            Some(s) => self.cfg.safety.with(&s.safety).on_missing,
            None => self.cfg.safety.on_missing,
        };
        let action = if on_missing == OnMissing::Delete { RemovalAction::Delete } else { RemovalAction::Disable };
        self.removal(&img.source, user, &img.username, action);
        let image = serde_json::to_string(&img).ok();
        if on_missing == OnMissing::Delete {
            tx.delete_user(user)?;
            self.done.counts.deleted += 1;
            return self.audit(tx, Some(user), &img.username, "delete", (None, None, None), image, false);
        }
        for g in &img.groups {
            let Some(gname) = self.group_name(tx, *g)? else { continue };
            tx.remove_user_member(user, *g)?;
            self.done.counts.memberships_removed += 1;
            let r = format!("{{\"group\":{g}}}");
            self.audit(
                tx,
                Some(user),
                &img.username,
                "group_remove",
                (Some("group"), Some(&gname), None),
                Some(r),
                false,
            )?;
        }
        if img.status == "active" {
            let patch = UserPatch {
                status: Some(Status::Disabled),
                missing_since: Some(Some(self.at)),
                ..UserPatch::default()
            };
            tx.update_user(user, &patch, self.at)?;
            self.done.counts.disabled += 1;
            self.audit(
                tx,
                Some(user),
                &img.username,
                "disable",
                (Some("status"), Some("active"), Some("disabled")),
                None,
                false,
            )?;
        }
        Ok(())
    }

    /// A user the run deleted, back with its id; its app-owned fields
    /// queued for write-back as any local value is.
    fn restore(&mut self, tx: &mut dyn StoreTx, img: &UserImage) -> Result<(), StoreError> {
        tx.restore_user(img, self.at)?;
        self.done.counts.created += 1;
        for g in &img.groups {
            if self.group_name(tx, *g)?.is_some() {
                self.done.counts.memberships_added += 1;
            }
        }
        let fields = serde_json::to_string(&img.fields).unwrap_or_default();
        let r = "{\"restored\":true}".to_string();
        self.audit(tx, Some(img.id), &img.username, "create", (None, None, Some(&fields)), Some(r), false)?;
        for (field, value) in &img.fields {
            if let Some(attribute) = self.prov.writeback_attribute(&img.source, field) {
                let base = img.dir_values.get(field).map(String::as_str);
                let item = NewWriteback {
                    user_id: img.id,
                    field,
                    attribute,
                    value: Some(value),
                    old_value: None,
                    base_value: base,
                };
                tx.enqueue_writeback(&item, self.at)?;
            }
        }
        Ok(())
    }

    fn field(
        &mut self,
        tx: &mut dyn StoreTx,
        user: i64,
        name: &str,
        field: &str,
        to: Option<&str>,
    ) -> Result<(), StoreError> {
        let Some(cur) = tx.user_image(user)? else { return self.skip(format!("{name}: gone since")) };
        let now = match field {
            "dn" => Some(cur.dn.clone()),
            "username" => Some(cur.username.clone()),
            _ => cur.fields.get(field).cloned(),
        };
        if now.as_deref() == to {
            return Ok(());
        }
        let patch = match (field, to) {
            ("dn", Some(dn)) => UserPatch { dn: Some(dn), ..UserPatch::default() },
            ("username", Some(name)) => UserPatch { username: Some(name), ..UserPatch::default() },
            // A DN or username is never cleared.
            ("dn" | "username", None) => return Ok(()),
            _ => UserPatch { fields: vec![(field, to)], ..UserPatch::default() },
        };
        tx.update_user(user, &patch, self.at)?;
        self.done.counts.updated += 1;
        let next = self.directory_owned(&cur.source, field);
        self.audit(tx, Some(user), &cur.username, "update", (Some(field), now.as_deref(), to), None, next)?;
        if let Some(attribute) = self.prov.writeback_attribute(&cur.source, field) {
            let base = cur.dir_values.get(field).map(String::as_str);
            let item = NewWriteback {
                user_id: user,
                field,
                attribute,
                value: to,
                old_value: now.as_deref(),
                base_value: base,
            };
            tx.enqueue_writeback(&item, self.at)?;
        }
        Ok(())
    }

    fn status(&mut self, tx: &mut dyn StoreTx, user: i64, name: &str, active: bool) -> Result<(), StoreError> {
        let Some(cur) = tx.user_image(user)? else { return self.skip(format!("{name}: gone since")) };
        if (cur.status == "active") == active {
            return Ok(());
        }
        let patch = match active {
            true => UserPatch { status: Some(Status::Active), missing_since: Some(None), ..UserPatch::default() },
            false => {
                UserPatch { status: Some(Status::Disabled), missing_since: Some(Some(self.at)), ..UserPatch::default() }
            }
        };
        tx.update_user(user, &patch, self.at)?;
        let next = self.cfg.sources.iter().any(|s| s.name == cur.source && !s.is_pushed());
        match active {
            true => {
                self.done.counts.updated += 1;
                self.audit(
                    tx,
                    Some(user),
                    &cur.username,
                    "enable",
                    (Some("status"), Some("disabled"), Some("active")),
                    None,
                    next,
                )
            }
            false => {
                self.done.counts.disabled += 1;
                self.removal(&cur.source, user, &cur.username, RemovalAction::Disable);
                self.audit(
                    tx,
                    Some(user),
                    &cur.username,
                    "disable",
                    (Some("status"), Some("active"), Some("disabled")),
                    None,
                    next,
                )
            }
        }
    }

    fn member(
        &mut self,
        tx: &mut dyn StoreTx,
        user: i64,
        name: &str,
        group: i64,
        group_name: &str,
        add: bool,
    ) -> Result<(), StoreError> {
        let Some(cur) = tx.user_image(user)? else { return self.skip(format!("{name}: gone since")) };
        let Some(gname) = self.group_name(tx, group)? else {
            return self.skip(format!("{name} in {group_name}: the group is gone since"));
        };
        if cur.groups.contains(&group) == add {
            return Ok(());
        }
        let r = Some(format!("{{\"group\":{group}}}"));
        let next = self.cfg.sources.iter().any(|s| s.name == cur.source && !s.is_pushed());
        match add {
            true => {
                tx.add_user_member(user, group)?;
                self.done.counts.memberships_added += 1;
                self.audit(tx, Some(user), &cur.username, "group_add", (Some("group"), None, Some(&gname)), r, next)
            }
            false => {
                tx.remove_user_member(user, group)?;
                self.done.counts.memberships_removed += 1;
                self.audit(tx, Some(user), &cur.username, "group_remove", (Some("group"), Some(&gname), None), r, next)
            }
        }
    }
}
