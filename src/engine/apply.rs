//! Apply: carries out a plan in one store transaction, with an audit row for
//! every change and the run's final record, so a crash at any moment leaves
//! the previous state or the new one. It first checks that the store is still
//! at the generation the plan was made from (optimistic concurrency).

use crate::engine::history::{AuditRecord, RunRecord};
use crate::engine::plan::{Member, NewUser, Plan, Ref, RemovalKind};
use crate::model::Status;
use crate::store::{Store, StoreError, StoreTx, UserPatch};
use crate::time::Timestamp;
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

/// What the apply needs to provision new users beyond the plan: generated
/// codes, and which app-owned fields are written back (source → field →
/// attribute).
#[derive(Default)]
pub struct Provisioning<'a> {
    pub codes: Option<&'a std::collections::BTreeMap<String, crate::config::CodeSpec>>,
    pub writeback: std::collections::HashMap<&'a str, Vec<(&'a str, &'a str)>>,
}

impl<'a> Provisioning<'a> {
    pub fn from_config(cfg: &'a crate::config::Config) -> Self {
        let mut writeback = std::collections::HashMap::new();
        for s in cfg.sources.iter().filter(|s| s.writeback.is_some()) {
            let fields: Vec<(&str, &str)> = s
                .fields
                .iter()
                .filter(|f| f.app_owned)
                .filter_map(|f| match &f.source {
                    crate::config::FieldSource::Attribute(a) => Some((&*f.name, a.as_str())),
                    _ => None,
                })
                .collect();
            writeback.insert(s.name.as_str(), fields);
        }
        Provisioning { codes: Some(&cfg.codes), writeback }
    }

    /// The attribute an app-owned field of `source` is written back to.
    pub fn writeback_attribute(&self, source: &str, field: &str) -> Option<&'a str> {
        self.writeback.get(source)?.iter().find(|(f, _)| *f == field).map(|(_, a)| *a)
    }
}

/// Users a run wrote while its sources were still being read (in the same,
/// still uncommitted transaction; see `sync::early`): by source and mapped
/// entry ([`NewUser::seq`]: its place in the order the source's entries
/// came), the rows written and a digest of what they say. The apply keeps
/// those its plan creates as they are, rewrites those the plan creates
/// otherwise (a provisioning rule's field) and takes back the rest, before
/// anything else. A vector by place, not a map by identity: 24 bytes a user
/// (a map was 84 MB at 1,000,000 users).
#[derive(Default)]
pub struct EarlyWrites {
    hasher: std::hash::RandomState,
    pub rows: HashMap<Arc<str>, Vec<Written>>,
}

/// One user written early: its row, its `create` audit row, and a digest.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub user_id: i64,
    pub audit_id: i64,
    pub digest: u64,
}

impl Written {
    /// No row written for this place.
    pub const NONE: Written = Written { user_id: 0, audit_id: 0, digest: 0 };

    pub fn is_none(&self) -> bool {
        self.user_id == 0
    }
}

impl EarlyWrites {
    /// A digest of everything a created row holds (keyed per run).
    pub fn digest(&self, u: &NewUser) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((&u.source, &u.external_id, &u.dn, &u.username, &u.fields, &u.dir_values, u.status))
    }

    pub fn get(&self, u: &NewUser) -> Option<Written> {
        self.rows.get(&*u.source)?.get(u.seq as usize).copied().filter(|w| !w.is_none())
    }

    /// Records the row written for `u`.
    pub fn insert(&mut self, u: &NewUser, w: Written) {
        let rows = self.rows.entry(u.source.clone()).or_default();
        let at = u.seq as usize;
        if rows.len() <= at {
            rows.resize(at + 1, Written::NONE);
        }
        rows[at] = w;
    }

    pub fn len(&self) -> usize {
        self.rows.values().flatten().filter(|w| !w.is_none()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a source's read left off, saved with the data it describes.
pub struct Cursor<'a> {
    pub source: &'a str,
    pub saved: crate::store::SavedState,
    /// Whether the read was a full one.
    pub full: bool,
}

/// Applies `plan` (made from a snapshot at `generation`), records `run` and
/// saves the sources' cursors, all in one transaction: a failed run never
/// advances a cursor.
pub fn apply(
    store: &dyn Store,
    plan: &Plan,
    generation: i64,
    run: &RunRecord,
    now: Timestamp,
    cursors: &[Cursor],
    prov: &Provisioning,
) -> Result<(), StoreError> {
    store.transaction(&mut |tx| apply_with(tx, plan, generation, run, now, cursors, prov, None))
}

/// [`apply`] inside a transaction already open (a write session), where
/// `early` users may have been written already.
#[allow(clippy::too_many_arguments)]
pub fn apply_with(
    tx: &mut dyn StoreTx,
    plan: &Plan,
    generation: i64,
    run: &RunRecord,
    now: Timestamp,
    cursors: &[Cursor],
    prov: &Provisioning,
    early: Option<&EarlyWrites>,
) -> Result<(), StoreError> {
    apply_in(tx, plan, generation, run, now, prov, early)?;
    for c in cursors {
        tx.set_sync_state(c.source, &c.saved, c.full, now)?;
    }
    Ok(())
}

/// Creates the plan's new users: those written early are kept (or rewritten
/// when the plan says otherwise), the others inserted. Returns their ids in
/// plan order.
fn create_users(
    tx: &mut dyn StoreTx,
    plan: &Plan,
    early: Option<&EarlyWrites>,
    run_id: i64,
    now: Timestamp,
) -> Result<Vec<i64>, StoreError> {
    let Some(early) = early.filter(|e| !e.is_empty()) else {
        return Ok(tx.insert_created(&plan.creates, Some(run_id), now)?.into_iter().map(|(id, _)| id).collect());
    };
    let mut ids = Vec::with_capacity(plan.creates.len());
    for u in &plan.creates {
        let id = match early.get(u) {
            Some(w) if w.digest == early.digest(u) => w.user_id,
            Some(w) => {
                tx.replace_created(w.user_id, w.audit_id, u, now)?;
                w.user_id
            }
            None => tx.insert_created(std::slice::from_ref(u), Some(run_id), now)?[0].0,
        };
        ids.push(id);
    }
    Ok(ids)
}

fn apply_in(
    tx: &mut dyn StoreTx,
    plan: &Plan,
    generation: i64,
    run: &RunRecord,
    now: Timestamp,
    prov: &Provisioning,
    early: Option<&EarlyWrites>,
) -> Result<(), StoreError> {
    apply_changes(tx, plan, generation, run.id, now, prov, early)?;
    tx.finish_run(run)
}

/// A push's plan in a transaction already open, its audit rows under the
/// push run `run_id` (whose record the caller adds to): the same steps as
/// a run's apply, without writing the run's record. Returns the ids of the
/// users it created, in plan order.
pub fn apply_push(
    tx: &mut dyn StoreTx,
    plan: &Plan,
    generation: i64,
    run_id: i64,
    now: Timestamp,
    prov: &Provisioning,
) -> Result<Vec<i64>, StoreError> {
    apply_changes(tx, plan, generation, run_id, now, prov, None)
}

/// Everything of an apply but the run's record; the created users' ids.
fn apply_changes(
    tx: &mut dyn StoreTx,
    plan: &Plan,
    generation: i64,
    run_id: i64,
    now: Timestamp,
    prov: &Provisioning,
    early: Option<&EarlyWrites>,
) -> Result<Vec<i64>, StoreError> {
    let found = tx.generation()?;
    if found != generation {
        return Err(StoreError::Conflict { expected: generation, found });
    }
    tx.set_generation(generation + 1)?;
    if let Some(early) = early {
        take_back_unplanned(tx, plan, early)?;
    }
    let audit = Audit { run_id, at: now };
    remove(tx, plan, &audit, now)?;
    let group_ids = write_groups(tx, plan, &audit, now)?;
    update_users(tx, plan, &audit, now)?;
    let user_ids = create_users(tx, plan, early, run_id, now)?;
    generate_codes(tx, plan, &user_ids, run_id, now, prov)?;
    write_memberships(tx, plan, &audit, &user_ids, &group_ids)?;
    Ok(user_ids)
}

/// Audit rows of one run, all at one time.
struct Audit {
    run_id: i64,
    at: Timestamp,
}

impl Audit {
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        tx: &mut dyn StoreTx,
        user_id: Option<i64>,
        name: &str,
        action: &str,
        field: Option<&str>,
        old: Option<&str>,
        new: Option<&str>,
    ) -> Result<(), StoreError> {
        self.row_with(tx, user_id, name, action, (field, old, new), None)
    }

    /// A row with a before-image (or a group's id) for an undo to read.
    fn row_with(
        &self,
        tx: &mut dyn StoreTx,
        user_id: Option<i64>,
        name: &str,
        action: &str,
        (field, old, new): (Option<&str>, Option<&str>, Option<&str>),
        image: Option<String>,
    ) -> Result<(), StoreError> {
        tx.audit(&AuditRecord {
            run_id: Some(self.run_id),
            at: self.at,
            user_id,
            name: name.to_string(),
            action: action.to_string(),
            field: field.map(str::to_string),
            old: old.map(str::to_string),
            new: new.map(str::to_string),
            image,
        })
    }
}

/// `{"group": id}`, and `"child"` for a nested group: which group a
/// membership or group row is about, whatever its name later.
fn group_ref(group: i64, child: Option<i64>) -> Option<String> {
    Some(match child {
        Some(c) => format!("{{\"group\":{group},\"child\":{c}}}"),
        None => format!("{{\"group\":{group}}}"),
    })
}

/// Users written early that the plan does not create (a source that failed
/// or was held back, a duplicate found at the end) go first, so their names
/// are free for the renames and creations that follow.
fn take_back_unplanned(tx: &mut dyn StoreTx, plan: &Plan, early: &EarlyWrites) -> Result<(), StoreError> {
    for (source, rows) in &early.rows {
        let mut planned = vec![false; rows.len()];
        for u in plan.creates.iter().filter(|u| *u.source == **source) {
            if let Some(p) = planned.get_mut(u.seq as usize) {
                *p = true;
            }
        }
        for (w, _) in rows.iter().zip(&planned).filter(|(w, p)| !w.is_none() && !**p) {
            tx.remove_created(w.user_id, w.audit_id)?;
        }
    }
    Ok(())
}

/// Groups deleted, users disabled or deleted.
fn remove(tx: &mut dyn StoreTx, plan: &Plan, audit: &Audit, now: Timestamp) -> Result<(), StoreError> {
    for g in &plan.group_deletes {
        let image = tx.group_image(g.id)?.and_then(|i| serde_json::to_string(&i).ok());
        tx.delete_group(g.id)?;
        audit.row_with(tx, None, &g.name, "group_delete", (None, None, None), image)?;
    }
    for r in &plan.removals {
        match r.kind {
            RemovalKind::Disable => {
                let patch = UserPatch {
                    status: Some(Status::Disabled),
                    missing_since: Some(Some(now)),
                    ..UserPatch::default()
                };
                tx.update_user(r.id, &patch, now)?;
                audit.row(tx, Some(r.id), &r.username, "disable", Some("status"), Some("active"), Some("disabled"))?;
            }
            RemovalKind::Delete => {
                let image = tx.user_image(r.id)?.and_then(|i| serde_json::to_string(&i).ok());
                tx.delete_user(r.id)?;
                audit.row_with(tx, Some(r.id), &r.username, "delete", (None, None, None), image)?;
            }
        }
    }
    Ok(())
}

/// Groups created and renamed; the new groups' ids in plan order.
fn write_groups(tx: &mut dyn StoreTx, plan: &Plan, audit: &Audit, now: Timestamp) -> Result<Vec<i64>, StoreError> {
    let mut group_ids = Vec::with_capacity(plan.group_creates.len());
    for g in &plan.group_creates {
        let id = tx.insert_group(g, now)?;
        group_ids.push(id);
        let what = (Some("source"), None, Some(g.source.as_str()));
        audit.row_with(tx, None, &g.name, "group_create", what, group_ref(id, None))?;
    }
    for g in &plan.group_updates {
        // A rename's before-image (its DN too), for an undo.
        let image = match g.name != g.new_name {
            true => tx.group_image(g.id)?.and_then(|i| serde_json::to_string(&i).ok()),
            false => None,
        };
        tx.update_group(g.id, &g.new_name, &g.new_dn, now)?;
        if g.name != g.new_name {
            let what = (Some("name"), Some(g.name.as_str()), Some(g.new_name.as_str()));
            audit.row_with(tx, None, &g.new_name, "group_update", what, image)?;
        }
    }
    Ok(group_ids)
}

/// Existing users renamed, re-linked, enabled, disabled and changed.
fn update_users(tx: &mut dyn StoreTx, plan: &Plan, audit: &Audit, now: Timestamp) -> Result<(), StoreError> {
    // Renames go through a placeholder first, so two users may swap names.
    for u in plan.updates.iter().filter(|u| u.rename_to.is_some()) {
        let placeholder = format!("\u{1}renaming:{}", u.id);
        tx.update_user(u.id, &UserPatch { username: Some(&placeholder), ..UserPatch::default() }, now)?;
    }
    for u in &plan.updates {
        let mut patch = UserPatch {
            username: u.rename_to.as_deref(),
            external_id: u.relink_to.as_deref(),
            source: u.relink_from.as_ref().map(|_| u.source.as_str()),
            status: if u.enable {
                Some(Status::Active)
            } else if u.disable {
                Some(Status::Disabled)
            } else {
                None
            },
            missing_since: (u.enable || u.relink_to.is_some()).then_some(None),
            ..UserPatch::default()
        };
        patch.dir_values = u.dir_changes.iter().map(|c| (c.field.as_str(), c.new.as_deref())).collect();
        for c in &u.changes {
            match c.field.as_str() {
                "username" => patch.username = c.new.as_deref(),
                "dn" => patch.dn = c.new.as_deref(),
                f => patch.fields.push((f, c.new.as_deref())),
            }
        }
        // A re-link's before-image: the identity it had.
        let image = match u.relink_to.is_some() {
            true => tx.user_image(u.id)?.and_then(|i| serde_json::to_string(&i).ok()),
            false => None,
        };
        tx.update_user(u.id, &patch, now)?;
        audit_update(tx, audit, u, image)?;
    }
    Ok(())
}

/// The audit rows of one existing user's update.
fn audit_update(
    tx: &mut dyn StoreTx,
    audit: &Audit,
    u: &crate::engine::plan::UserUpdate,
    image: Option<String>,
) -> Result<(), StoreError> {
    let name = u.rename_to.as_deref().unwrap_or(&u.username);
    if let Some(to) = &u.rename_to {
        audit.row(tx, Some(u.id), name, "rename", Some("username"), Some(&u.username), Some(to))?;
    }
    if let Some(ext) = &u.relink_to {
        match &u.relink_from {
            None => {
                let what = (Some("external_id"), None, Some(ext.as_str()));
                audit.row_with(tx, Some(u.id), name, "relink", what, image)?
            }
            Some(from) => {
                let to = format!("{}:{ext}", u.source);
                audit.row_with(tx, Some(u.id), name, "relink", (Some("source"), Some(from), Some(&to)), image)?
            }
        }
    }
    if u.enable {
        audit.row(tx, Some(u.id), name, "enable", Some("status"), Some("disabled"), Some("active"))?;
    }
    if u.disable {
        audit.row(tx, Some(u.id), name, "disable", Some("status"), Some("active"), Some("disabled"))?;
    }
    for c in &u.changes {
        audit.row(tx, Some(u.id), name, "update", Some(&c.field), c.old.as_deref(), c.new.as_deref())?;
    }
    Ok(())
}

/// Memberships removed and added (users' and nested groups').
fn write_memberships(
    tx: &mut dyn StoreTx,
    plan: &Plan,
    audit: &Audit,
    user_ids: &[i64],
    group_ids: &[i64],
) -> Result<(), StoreError> {
    let resolve_user = |r: Ref| match r {
        Ref::Existing(id) => id,
        Ref::New(i) => user_ids[i],
    };
    let resolve_group = |r: Ref| match r {
        Ref::Existing(id) => id,
        Ref::New(i) => group_ids[i],
    };
    for m in &plan.member_removes {
        let g = resolve_group(m.group);
        let (member, group) = plan.names_of(m);
        match m.member {
            Member::User(u) => {
                let uid = resolve_user(u);
                tx.remove_user_member(uid, g)?;
                let what = (Some("group"), Some(group), None);
                audit.row_with(tx, Some(uid), member, "group_remove", what, group_ref(g, None))?;
            }
            Member::Group(c) => {
                let child = resolve_group(c);
                tx.remove_group_member(child, g)?;
                let what = (Some("group"), Some(group), None);
                audit.row_with(tx, None, member, "subgroup_remove", what, group_ref(g, Some(child)))?;
            }
        }
    }
    // Inserted in key order: the membership table's B-tree then grows at its
    // end instead of splitting pages all over (measured: see BENCHMARKS.md).
    // Each row carries the change to audit (an existing user's; a new user's
    // memberships are not audited one by one), or NONE: looking the change up
    // again in this order would miss the cache at every row (1,000,000 users).
    const NONE: usize = usize::MAX;
    let mut user_adds: Vec<(i64, i64, usize)> = Vec::with_capacity(plan.member_adds.len());
    for (i, m) in plan.member_adds.iter().enumerate() {
        let g = resolve_group(m.group);
        match m.member {
            Member::User(u @ Ref::Existing(_)) => user_adds.push((resolve_user(u), g, i)),
            Member::User(u) => user_adds.push((resolve_user(u), g, NONE)),
            Member::Group(c) => {
                let child_id = resolve_group(c);
                tx.add_group_member(child_id, g)?;
                let (child, parent) = plan.names_of(m);
                let what = (Some("group"), None, Some(parent));
                audit.row_with(tx, None, child, "subgroup_add", what, group_ref(g, Some(child_id)))?;
            }
        }
    }
    user_adds.sort_unstable();
    for (uid, gid, i) in user_adds {
        tx.add_user_member(uid, gid)?;
        if i != NONE {
            let (member, group) = plan.names_of(&plan.member_adds[i]);
            let what = (Some("group"), None, Some(group));
            audit.row_with(tx, Some(uid), member, "group_add", what, group_ref(gid, None))?;
        }
    }
    Ok(())
}

/// `[codes]` for new users who lack the field; a generated value of an
/// app-owned field is queued for write-back in the same transaction.
fn generate_codes(
    tx: &mut dyn StoreTx,
    plan: &Plan,
    user_ids: &[i64],
    run_id: i64,
    now: Timestamp,
    prov: &Provisioning,
) -> Result<(), StoreError> {
    let Some(codes) = prov.codes else { return Ok(()) };
    for (field, spec) in codes {
        let lacking: Vec<usize> =
            (0..plan.creates.len()).filter(|&i| !plan.creates[i].fields.contains_key(field)).collect();
        if lacking.is_empty() {
            continue;
        }
        let mut generator = crate::engine::codes::Generator::load(tx, field, spec)
            .map_err(|e| StoreError::Provisioning(e.to_string()))?;
        for i in lacking {
            let u = &plan.creates[i];
            let value = generator.next_value().map_err(|e| StoreError::Provisioning(e.to_string()))?;
            let patch = UserPatch { fields: vec![(field, Some(&value))], ..UserPatch::default() };
            tx.update_user(user_ids[i], &patch, now)?;
            tx.audit(&AuditRecord {
                run_id: Some(run_id),
                at: now,
                user_id: Some(user_ids[i]),
                name: u.username.to_string(),
                action: "generate".into(),
                field: Some(field.clone()),
                old: None,
                new: Some(value.clone()),
                image: None,
            })?;
            if let Some(attribute) = prov.writeback_attribute(&u.source, field) {
                tx.enqueue_writeback(
                    &crate::store::NewWriteback {
                        user_id: user_ids[i],
                        field,
                        attribute,
                        value: Some(&value),
                        old_value: None,
                        base_value: u.dir_values.get(field),
                    },
                    now,
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(source: &str, id: &str, seq: u32) -> NewUser {
        NewUser {
            source: source.into(),
            external_id: id.into(),
            dn: id.into(),
            username: id.into(),
            fields: Default::default(),
            dir_values: Default::default(),
            status: Status::Active,
            rules_applied: vec![],
            seq,
        }
    }

    #[test]
    fn early_rows_are_found_by_source_and_place_and_a_gap_is_no_row() {
        let mut early = EarlyWrites::default();
        let (a, b) = (user("s", "a", 0), user("s", "b", 3));
        early.insert(&a, Written { user_id: 10, audit_id: 20, digest: early.digest(&a) });
        early.insert(&b, Written { user_id: 11, audit_id: 21, digest: 7 });
        assert_eq!(early.get(&a).map(|w| w.user_id), Some(10));
        assert_eq!(early.get(&b).map(|w| w.user_id), Some(11));
        assert!(early.get(&user("s", "gap", 1)).is_none(), "a place between two rows has none");
        assert!(early.get(&user("s", "past", 9)).is_none());
        assert!(early.get(&user("other", "a", 0)).is_none(), "another source's place 0 is another entry");
        assert_eq!(early.len(), 2);
        assert_eq!(early.get(&a).map(|w| w.digest), Some(early.digest(&a)));
    }
}
