//! The plan: a pure diff between what the sources say (their [`SourceBatch`]es)
//! and what the store holds (a [`Snapshot`]). It decides creates, updates,
//! renames (same identity, new username), re-links (same username, new
//! identity, old one gone), disables/deletes of missing users, group changes
//! and membership changes, and applies provisioning rules to new users.
//! No I/O: it is tested without any server.

use std::sync::Arc;

use serde::Serialize;

use crate::config::{Config, SourceConfig};
use crate::model::{EntryError, Fields, MappedUser, Snapshot, SourceBatch, Status};

mod enrich;
mod index;
mod members;
mod names;
mod removals;
pub mod summary;
mod users;
pub use crate::model::{NewGroup, NewUser};
#[cfg(test)]
use members::diff_pairs;
use members::{groups_and_members, SourceCtx};
pub use names::Names;
use users::Inputs;

/// A user or group the plan refers to: already stored, or created by this plan
/// (index into [`Plan::creates`] / [`Plan::group_creates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ref {
    Existing(i64),
    New(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserUpdate {
    pub id: i64,
    pub source: String,
    /// The username before this run.
    pub username: String,
    /// Set when the username changes to another name (a rename).
    pub rename_to: Option<String>,
    /// Set when a new directory identity takes over this record (re-link).
    pub relink_to: Option<String>,
    /// On a re-link to another source (`source` is the new owner): the old one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relink_from: Option<String>,
    pub enable: bool,
    /// Disabled in the directory (AD userAccountControl) while active here.
    pub disable: bool,
    /// Field changes; `username` (case only) and `dn` appear here too.
    pub changes: Vec<FieldChange>,
    /// App-owned fields whose directory value changed (kept for conflict
    /// detection; the application's value stays).
    pub dir_changes: Vec<FieldChange>,
}

impl UserUpdate {
    /// Only the directory's copy of app-owned fields moved: nothing to count.
    pub fn is_silent(&self) -> bool {
        self.changes.is_empty()
            && self.rename_to.is_none()
            && self.relink_to.is_none()
            && !self.enable
            && !self.disable
            && !self.dir_changes.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovalKind {
    Disable,
    Delete,
}

#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    pub id: i64,
    pub source: String,
    pub username: String,
    pub kind: RemovalKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupUpdate {
    pub id: i64,
    pub name: String,
    pub new_name: String,
    pub new_dn: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupRemoval {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "ref", rename_all = "lowercase")]
pub enum Member {
    User(Ref),
    Group(Ref),
}

/// A membership to add or remove; its names for display are the plan's
/// ([`Plan::member_name`], [`Plan::group_name`]): 40 bytes, and a first sync
/// of 1,000,000 users has 3,000,000 of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberChange {
    pub member: Member,
    pub group: Ref,
}

/// Per-source figures the guards look at.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceSummary {
    pub source: String,
    /// Whether this source's read was incremental (a delta).
    pub incremental: bool,
    pub users_returned: usize,
    /// Users that mapped and validated (entries minus skipped ones).
    pub users_usable: usize,
    pub groups_returned: usize,
    pub active_before: usize,
    /// Active users the source would have after the plan.
    pub active_after: usize,
    pub groups_before: usize,
    pub removals: usize,
    pub group_deletes: usize,
}

/// Serialized by `names.rs` (each member change with its names).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub creates: Vec<NewUser>,
    pub updates: Vec<UserUpdate>,
    pub removals: Vec<Removal>,
    pub group_creates: Vec<NewGroup>,
    pub group_updates: Vec<GroupUpdate>,
    pub group_deletes: Vec<GroupRemoval>,
    pub member_adds: Vec<MemberChange>,
    pub member_removes: Vec<MemberChange>,
    pub unchanged: usize,
    /// Entries skipped by the planner (username conflicts); mapping skips are in the batches.
    pub errors: Vec<EntryError>,
    /// Entries of a lower-priority source whose username another source owns,
    /// and enrich rows that match nobody: reported on every run.
    pub warnings: Vec<EntryError>,
    pub sources: Vec<SourceSummary>,
    /// Display names of the stored users and groups the member changes name.
    pub names: Names,
}

impl Plan {
    pub fn renamed(&self) -> usize {
        self.updates.iter().filter(|u| u.rename_to.is_some()).count()
    }
    /// Updates that only disable a user the directory disabled (not renames).
    pub fn disabled_in_source(&self) -> usize {
        self.updates.iter().filter(|u| u.disable && u.rename_to.is_none()).count()
    }
    pub fn updated(&self) -> usize {
        self.updates.len()
            - self.renamed()
            - self.disabled_in_source()
            - self.updates.iter().filter(|u| u.is_silent()).count()
    }
    pub fn count(&self, kind: RemovalKind) -> usize {
        self.removals.iter().filter(|r| r.kind == kind).count()
    }
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty()
            && self.updates.is_empty()
            && self.removals.is_empty()
            && self.group_creates.is_empty()
            && self.group_updates.is_empty()
            && self.group_deletes.is_empty()
            && self.member_adds.is_empty()
            && self.member_removes.is_empty()
    }
}

/// The record a new entry of source `scfg` is created as; `None` for an
/// entry disabled in the directory, which is not imported unless the source
/// says `import_disabled`. (The plan adds provisioning rules' fields later.)
/// `source` is the source's name, shared by its new users.
pub fn new_user(scfg: &SourceConfig, source: &Arc<str>, u: &MappedUser) -> Option<NewUser> {
    if u.disabled && !scfg.import_disabled {
        return None;
    }
    // Mapped fields are in spec order, username (spec 0) left out. Values
    // are shared with the mapped entry when every one is kept (the usual case).
    let spec = |i: usize| &scfg.fields[i + 1];
    let fields = Fields::from_mapped(&u.fields, |i| spec(i).on_create);
    let dir_values = Fields::from_mapped(&u.fields, |i| spec(i).app_owned);
    Some(NewUser {
        source: source.clone(),
        external_id: u.external_id.clone(),
        dn: u.dn.clone(),
        username: u.username.shared().clone(),
        fields,
        dir_values,
        status: if u.disabled { Status::Disabled } else { Status::Active },
        rules_applied: Vec::new(),
        seq: u.seq,
    })
}

/// Builds the plan for `batches` against `snap`, step by step (the steps
/// are named in `plan/users.rs` and `plan/removals.rs`; groups and
/// memberships in `plan/members.rs`).
pub fn build(cfg: &Config, snap: &Snapshot, batches: &[SourceBatch]) -> Plan {
    let mut plan = Plan::default();
    let run = Inputs::new(cfg, snap, batches);
    // Users: which record each entry updates, re-links, unique usernames,
    // then creates and updates.
    let mut cands = run.candidates();
    run.relink(&mut cands);
    let live = run.settle_usernames(&mut cands, &mut plan);
    let user_ref = run.users(&cands, &mut plan);
    // Every later step works from `user_ref`: the candidates (48 bytes an
    // entry) go before the membership changes are made (peak RSS).
    drop(cands);
    enrich::apply_rows(cfg, snap, batches, &live, &mut plan);
    let removed = run.removals(&live, &mut plan);
    // Groups, memberships and rules, per source.
    for (bi, b) in batches.iter().enumerate().filter(|(_, b)| !run.is_enrich(b)) {
        let ctx = SourceCtx {
            b,
            user_ref: &user_ref[bi],
            live: &live,
            removed_users: &removed,
            gone_groups: run.gone[bi].1.as_ref(),
        };
        groups_and_members(cfg, snap, &ctx, &mut plan);
    }
    plan.warnings.extend(unknown_rule_groups(cfg, snap, batches));
    plan
}

/// A rule whose `when_member_of` names a group no source has never
/// applies: one note per such rule, with the closest group names.
fn unknown_rule_groups(cfg: &Config, snap: &Snapshot, batches: &[SourceBatch]) -> Vec<EntryError> {
    let wanted: Vec<(usize, &crate::model::Name)> =
        cfg.rules.iter().enumerate().filter_map(|(i, r)| r.when_member_of.as_ref().map(|n| (i, n))).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let mut names: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for g in batches.iter().flat_map(|b| &b.groups) {
        names.insert(g.name.key().to_string(), g.name.as_str().to_string());
    }
    for g in &snap.groups {
        names.entry(crate::model::name_key(&g.name)).or_insert_with(|| g.name.clone());
    }
    let shown: Vec<String> = names.values().cloned().collect();
    wanted
        .into_iter()
        .filter(|(_, n)| !names.contains_key(n.key()))
        .map(|(i, n)| {
            let near = crate::engine::batch::coverage::closest(n.as_str(), &shown);
            let hint = if near.is_empty() { String::new() } else { format!("; the closest: {}", near.join(", ")) };
            EntryError::run_level(format!(
                "rules[{i}]: when_member_of = \"{}\" names a group no source has, so the rule applies to nobody{hint}",
                n.as_str()
            ))
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
