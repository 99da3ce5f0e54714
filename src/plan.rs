//! The plan: a pure diff between what the sources say (their [`SourceBatch`]es)
//! and what the store holds (a [`Snapshot`]). It decides creates, updates,
//! renames (same identity, new username), re-links (same username, new
//! identity, old one gone), disables/deletes of missing users, group changes
//! and membership changes, and applies provisioning rules to new users.
//! No I/O: it is tested without any server.

use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use serde::Serialize;

use crate::config::{Config, OnMissing, SourceConfig};
use crate::model::{EntryError, Fields, MappedUser, Snapshot, SourceBatch, Status};

/// A user or group the plan refers to: already stored, or created by this plan
/// (index into [`Plan::creates`] / [`Plan::group_creates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ref {
    Existing(i64),
    New(usize),
}

#[derive(Debug, Clone, Serialize)]
pub struct NewUser {
    pub source: String,
    pub external_id: String,
    pub dn: String,
    pub username: String,
    pub fields: Fields,
    /// App-owned fields: the directory's values as read.
    pub dir_values: Fields,
    /// `Disabled` for an AD user disabled in the directory (with import_disabled).
    pub status: Status,
    /// Names of the rules' groups that matched (for the plan display).
    pub rules_applied: Vec<String>,
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
pub struct NewGroup {
    pub source: String,
    pub external_id: String,
    pub name: String,
    pub dn: String,
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

#[derive(Debug, Clone, Serialize)]
pub struct MemberChange {
    pub member: Member,
    pub group: Ref,
    /// For display: the member's and the group's names.
    pub member_name: Arc<str>,
    pub group_name: Arc<str>,
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
    pub groups_before: usize,
    pub removals: usize,
    pub group_deletes: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
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
    pub sources: Vec<SourceSummary>,
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

struct Candidate<'a> {
    batch: usize,
    /// Index into the batch's users.
    index: usize,
    user: &'a MappedUser,
    /// Index into snapshot.users of the record this entry updates.
    target: Option<usize>,
    relink: bool,
    skipped: bool,
}

/// Builds the plan for `batches` against `snap`.
pub fn build(cfg: &Config, snap: &Snapshot, batches: &[SourceBatch]) -> Plan {
    let mut plan = Plan::default();
    let source_cfg = |name: &str| -> &SourceConfig {
        cfg.sources.iter().find(|s| s.name == name).expect("batch of a configured source")
    };

    let mut by_ext: HashMap<(&str, &str), usize> =
        HashMap::with_capacity_and_hasher(snap.users.len(), Default::default());
    for (i, u) in snap.users.iter().enumerate() {
        by_ext.insert((&u.source, &u.external_id), i);
    }

    let gone: Vec<Gone> = batches.iter().map(|b| gone(snap, b)).collect();

    // 1. Which stored record does each entry update?
    let mut cands: Vec<Candidate> = Vec::new();
    let mut targeted = vec![false; snap.users.len()];
    for (bi, b) in batches.iter().enumerate() {
        for (index, u) in b.users.iter().enumerate() {
            let target = by_ext.get(&(b.source.as_str(), u.external_id.as_str())).copied();
            if let Some(t) = target {
                targeted[t] = true;
            }
            cands.push(Candidate { batch: bi, index, user: u, target, relink: false, skipped: false });
        }
    }
    drop(by_ext);
    // 2. Re-link: a new identity with the username of a record whose identity is gone.
    if cands.iter().any(|c| c.target.is_none()) && !snap.users.is_empty() {
        let keys: Vec<String> = snap.users.iter().map(|u| u.username.to_lowercase()).collect();
        let by_key: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
        for c in cands.iter_mut().filter(|c| c.target.is_none()) {
            let b = &batches[c.batch];
            if let Some(&i) = by_key.get(c.user.username.key()) {
                let s = &snap.users[i];
                let old_gone = match &gone[c.batch].0 {
                    // A delta: only if reported deleted now, or gone since an earlier run.
                    Some(deleted) => deleted.contains(&s.external_id) || s.missing_since.is_some(),
                    None => !b.seen_user_ids.contains(&s.external_id),
                };
                if s.source == b.source && old_gone && !targeted[i] {
                    targeted[i] = true;
                    c.target = Some(i);
                    c.relink = true;
                }
            }
        }
    }
    // 3. Final usernames must be unique; every claimant of a contested name is
    //    skipped (repeat: a skip can leave an old name in place).
    let mut live = vec![false; snap.users.len()];
    loop {
        live.iter_mut().for_each(|l| *l = false);
        for t in cands.iter().filter(|c| !c.skipped).filter_map(|c| c.target) {
            live[t] = true;
        }
        // Stored users that keep their name, and everybody's claims.
        let kept: Vec<(usize, String)> =
            (0..snap.users.len()).filter(|&i| !live[i]).map(|i| (i, snap.users[i].username.to_lowercase())).collect();
        let mut claims: HashMap<&str, (Option<usize>, u32)> =
            HashMap::with_capacity_and_hasher(cands.len() + kept.len(), Default::default());
        for (i, k) in &kept {
            claims.entry(k.as_str()).or_default().0 = Some(*i);
        }
        for c in cands.iter().filter(|c| !c.skipped) {
            let user: &MappedUser = c.user;
            claims.entry(user.username.key()).or_default().1 += 1;
        }
        claims.retain(|_, (stored, n)| *n as usize + stored.is_some() as usize > 1);
        if claims.is_empty() {
            break;
        }
        let mut claimants: HashMap<&str, Vec<usize>> = HashMap::default();
        for (ci, c) in cands.iter().enumerate().filter(|(_, c)| !c.skipped) {
            let user: &MappedUser = c.user;
            if claims.contains_key(user.username.key()) {
                claimants.entry(user.username.key()).or_default().push(ci);
            }
        }
        let mut newly = Vec::new();
        for (key, cs) in &claimants {
            let stored = claims[key].0;
            for &ci in cs {
                let other = match stored {
                    Some(i) => {
                        let u = &snap.users[i];
                        format!("user {} (source {}, {})", u.username, u.source, u.dn)
                    }
                    None => cs
                        .iter()
                        .filter(|&&o| o != ci)
                        .map(|&o| format!("{} (source {})", cands[o].user.dn, batches[cands[o].batch].source))
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                newly.push((ci, format!("username \"{key}\" is already used by {other}; skipped")));
            }
        }
        newly.sort();
        for (ci, reason) in newly {
            cands[ci].skipped = true;
            plan.errors.push(EntryError::new(&cands[ci].user.dn, reason));
        }
    }
    let live_targets = live;

    // 4. Users: creates and updates.
    // Per batch, per user index: the record the entry maps to (None: skipped).
    let mut user_ref: Vec<Vec<Option<Ref>>> = batches.iter().map(|b| vec![None; b.users.len()]).collect();
    for c in cands.iter().filter(|c| !c.skipped) {
        let b = &batches[c.batch];
        let scfg = source_cfg(&b.source);
        match c.target {
            // Disabled in the directory and never synced: not imported by default.
            None if c.user.disabled && !scfg.import_disabled => continue,
            None => {
                let mut fields = Fields::default();
                let mut dir_values = Fields::default();
                // Mapped fields are in spec order, username (spec 0) left out.
                for ((name, value), spec) in c.user.fields.iter().zip(scfg.fields.iter().skip(1)) {
                    if let (Some(v), true) = (value, spec.on_create) {
                        fields.insert(name.clone(), v.clone());
                    }
                    if let (Some(v), true) = (value, spec.app_owned) {
                        dir_values.insert(name.clone(), v.clone());
                    }
                }
                user_ref[c.batch][c.index] = Some(Ref::New(plan.creates.len()));
                plan.creates.push(NewUser {
                    source: b.source.clone(),
                    external_id: c.user.external_id.clone(),
                    dn: c.user.dn.clone(),
                    username: c.user.username.as_str().to_string(),
                    fields,
                    dir_values,
                    status: if c.user.disabled { Status::Disabled } else { Status::Active },
                    rules_applied: Vec::new(),
                });
            }
            Some(i) => {
                let s = &snap.users[i];
                user_ref[c.batch][c.index] = Some(Ref::Existing(s.id));
                let mut changes = Vec::new();
                let new_name = c.user.username.as_str();
                let rename_to = (s.username.to_lowercase() != c.user.username.key()).then(|| new_name.to_string());
                if rename_to.is_none() && s.username != new_name {
                    changes.push(FieldChange {
                        field: "username".into(),
                        old: Some(s.username.clone()),
                        new: Some(new_name.into()),
                    });
                }
                let mut dir_changes = Vec::new();
                for ((name, new), spec) in c.user.fields.iter().zip(scfg.fields.iter().skip(1)) {
                    let old = s.fields.get(name);
                    if spec.app_owned {
                        // The application owns it: the directory only fills it in.
                        if old.is_none() && new.is_some() && spec.on_update {
                            changes.push(FieldChange { field: name.to_string(), old: None, new: new.clone() });
                        }
                        let seen = s.dir_values.get(name);
                        if new.as_deref() != seen {
                            dir_changes.push(FieldChange {
                                field: name.to_string(),
                                old: seen.map(str::to_string),
                                new: new.clone(),
                            });
                        }
                        continue;
                    }
                    if spec.on_update && new.as_deref() != old {
                        changes.push(FieldChange {
                            field: name.to_string(),
                            old: old.map(str::to_string),
                            new: new.clone(),
                        });
                    }
                }
                if s.dn != c.user.dn {
                    changes.push(FieldChange {
                        field: "dn".into(),
                        old: Some(s.dn.clone()),
                        new: Some(c.user.dn.clone()),
                    });
                }
                let enable = s.status == Status::Disabled && !c.user.disabled;
                let disable = s.status == Status::Active && c.user.disabled;
                if changes.is_empty() && rename_to.is_none() && !enable && !disable && !c.relink {
                    plan.unchanged += 1;
                    if dir_changes.is_empty() {
                        continue;
                    }
                }
                plan.updates.push(UserUpdate {
                    id: s.id,
                    source: b.source.clone(),
                    username: s.username.clone(),
                    rename_to,
                    relink_to: c.relink.then(|| c.user.external_id.clone()),
                    enable,
                    disable,
                    changes,
                    dir_changes,
                });
            }
        }
    }

    // 5. Users gone from their source.
    let mut removed: HashSet<i64> = HashSet::default();
    for (bi, b) in batches.iter().enumerate() {
        let on_missing = cfg.safety.on_missing;
        let mut summary = SourceSummary {
            source: b.source.clone(),
            incremental: b.delta.is_some(),
            users_returned: b.user_entries,
            users_usable: b.users.len(),
            groups_returned: b.group_entries,
            ..Default::default()
        };
        for (i, s) in snap.users.iter().enumerate().filter(|(_, s)| s.source == b.source) {
            if s.status == Status::Active {
                summary.active_before += 1;
            }
            let missing = match &gone[bi].0 {
                Some(deleted) => deleted.contains(&s.external_id),
                None => !b.seen_user_ids.contains(&s.external_id),
            };
            if !missing || live_targets[i] {
                continue;
            }
            let kind = match (on_missing, s.status) {
                (OnMissing::Keep, _) | (OnMissing::Disable, Status::Disabled) => continue,
                (OnMissing::Disable, Status::Active) => RemovalKind::Disable,
                (OnMissing::Delete, _) => RemovalKind::Delete,
            };
            if kind == RemovalKind::Delete {
                removed.insert(s.id);
            }
            summary.removals += 1;
            plan.removals.push(Removal { id: s.id, source: s.source.clone(), username: s.username.clone(), kind });
        }
        // Users the directory disabled count toward the thresholds too.
        summary.removals += plan.updates.iter().filter(|u| u.disable && u.source == b.source).count();
        if let Some(active) = &snap.active_by_source {
            // A partial snapshot holds only some users: the store counted them.
            summary.active_before = active.get(&b.source).copied().unwrap_or(0);
        }
        plan.sources.push(summary);
    }

    // 6. Groups, memberships and rules, per source.
    for (bi, b) in batches.iter().enumerate() {
        let ctx = SourceCtx {
            b,
            user_ref: &user_ref[bi],
            live: &live_targets,
            removed_users: &removed,
            gone_groups: gone[bi].1.as_ref(),
        };
        groups_and_members(cfg, snap, &ctx, &mut plan);
    }
    plan
}

/// What is gone from a delta batch's source: (users, groups) identities, the
/// reported deletions plus, after a present phase, every stored identity that
/// was neither present nor sent. `None` for a full batch.
type Gone = (Option<HashSet<String>>, Option<HashSet<String>>);

fn gone(snap: &Snapshot, b: &SourceBatch) -> Gone {
    let Some(d) = &b.delta else { return (None, None) };
    let users = snap.users.iter().map(|u| (u.source.as_str(), &u.external_id));
    let groups = snap.groups.iter().map(|g| (g.source.as_str(), &g.external_id));
    (
        Some(gone_ids(&d.deleted_users, d.present_users.as_ref(), users, &b.source, &b.seen_user_ids)),
        Some(gone_ids(&d.deleted_groups, d.present_groups.as_ref(), groups, &b.source, &b.seen_group_ids)),
    )
}

/// Reported deletions, plus after a present phase every stored identity of
/// the source that was neither present nor sent.
fn gone_ids<'a>(
    deleted: &rustc_hash::FxHashSet<String>,
    present: Option<&rustc_hash::FxHashSet<String>>,
    stored: impl Iterator<Item = (&'a str, &'a String)>,
    source: &str,
    seen: &rustc_hash::FxHashSet<String>,
) -> HashSet<String> {
    let mut out: HashSet<String> = deleted.iter().cloned().collect();
    if let Some(present) = present {
        out.extend(
            stored
                .filter(|(s, id)| *s == source && !present.contains(*id) && !seen.contains(*id))
                .map(|(_, id)| id.clone()),
        );
    }
    out
}

/// One source's part of the plan, for the group and membership step.
struct SourceCtx<'a> {
    b: &'a SourceBatch,
    user_ref: &'a [Option<Ref>],
    live: &'a [bool],
    removed_users: &'a HashSet<i64>,
    /// `Some` for a delta batch: the groups reported gone.
    gone_groups: Option<&'a HashSet<String>>,
}

fn groups_and_members(cfg: &Config, snap: &Snapshot, ctx: &SourceCtx, plan: &mut Plan) {
    let SourceCtx { b, user_ref, live, removed_users, gone_groups } = *ctx;
    let stored: HashMap<&str, &crate::model::StoredGroup> =
        snap.groups.iter().filter(|g| g.source == b.source).map(|g| (g.external_id.as_str(), g)).collect();
    let mut group_ref: Vec<Ref> = Vec::with_capacity(b.groups.len());
    let mut seen_ext: HashSet<&str> = HashSet::default();
    for g in &b.groups {
        seen_ext.insert(&g.external_id);
        match stored.get(g.external_id.as_str()) {
            None => {
                group_ref.push(Ref::New(plan.group_creates.len()));
                plan.group_creates.push(NewGroup {
                    source: b.source.clone(),
                    external_id: g.external_id.clone(),
                    name: g.name.as_str().to_string(),
                    dn: g.dn.clone(),
                });
            }
            Some(s) => {
                group_ref.push(Ref::Existing(s.id));
                if s.name != g.name.as_str() || s.dn != g.dn {
                    plan.group_updates.push(GroupUpdate {
                        id: s.id,
                        name: s.name.clone(),
                        new_name: g.name.as_str().into(),
                        new_dn: g.dn.clone(),
                    });
                }
            }
        }
    }
    let mut removed_groups = HashSet::default();
    for s in stored.values() {
        let missing = match gone_groups {
            Some(g) => g.contains(&s.external_id),
            None => !seen_ext.contains(s.external_id.as_str()) && !b.seen_group_ids.contains(&s.external_id),
        };
        if missing {
            removed_groups.insert(s.id);
            plan.group_deletes.push(GroupRemoval { id: s.id, name: s.name.clone() });
        }
    }
    plan.group_deletes.sort_by(|a, c| a.name.cmp(&c.name));
    if let Some(summary) = plan.sources.iter_mut().find(|s| s.source == b.source) {
        summary.groups_before = stored.len();
        summary.group_deletes = removed_groups.len();
    }

    // Names for display, shared between the changes that mention them.
    let batch_group_name: Vec<Arc<str>> = b.groups.iter().map(|g| Arc::from(g.name.as_str())).collect();
    let stored_group_name: HashMap<i64, Arc<str>> =
        snap.groups.iter().map(|g| (g.id, Arc::from(g.name.as_str()))).collect();
    let gname = |r: &Ref, batch_index: Option<u32>| -> Arc<str> {
        match (batch_index, r) {
            (Some(i), _) => batch_group_name[i as usize].clone(),
            (None, Ref::Existing(id)) => stored_group_name.get(id).cloned().unwrap_or_else(|| Arc::from("?")),
            (None, Ref::New(_)) => Arc::from("?"),
        }
    };
    // The groups whose member lists this batch states: all of the source's
    // for a full batch, only the groups in it for a delta.
    let source_group_ids: HashSet<i64> = match gone_groups {
        None => stored.values().map(|g| g.id).collect(),
        Some(_) => group_ref.iter().filter_map(|r| if let Ref::Existing(id) = r { Some(*id) } else { None }).collect(),
    };
    // Users and groups whose entries were skipped keep their memberships as they are.
    let frozen_users: HashSet<i64> = snap
        .users
        .iter()
        .enumerate()
        .filter(|(i, u)| !live[*i] && u.source == b.source && b.seen_user_ids.contains(&u.external_id))
        .map(|(_, u)| u.id)
        .collect();
    let frozen_groups: HashSet<i64> = b
        .seen_group_ids
        .iter()
        .filter(|ext| !seen_ext.contains(ext.as_str()))
        .filter_map(|ext| stored.get(ext.as_str()).map(|g| g.id))
        .collect();

    // Direct user memberships: desired (from the batch) against current (in
    // the store), as sorted id pairs; pairs with a new user or group are adds.
    let mut adds: Vec<MemberChange> = Vec::new();
    let mut desired: Vec<((i64, i64), (u32, u32))> = Vec::with_capacity(b.user_groups.len());
    let mut user_arc: Vec<Option<Arc<str>>> = vec![None; b.users.len()];
    let mut uname = |ui: u32| -> Arc<str> {
        user_arc[ui as usize].get_or_insert_with(|| Arc::from(b.users[ui as usize].username.as_str())).clone()
    };
    for &(ui, gi) in &b.user_groups {
        let Some(u) = user_ref[ui as usize] else { continue };
        let g = group_ref[gi as usize];
        match (u, g) {
            (Ref::Existing(uid), Ref::Existing(gid)) => desired.push(((uid, gid), (ui, gi))),
            _ => adds.push(MemberChange {
                member: Member::User(u),
                group: g,
                member_name: uname(ui),
                group_name: gname(&g, Some(gi)),
            }),
        }
    }
    // A delta names members that did not change: find them in the store.
    let mut stored_members: Vec<(Member, u32)> = Vec::new();
    if gone_groups.is_some() && !b.unresolved.is_empty() {
        let by_usernames = cfg.sources.iter().any(|s| s.name == b.source && s.members_are_usernames());
        let mut index: HashMap<String, Member> = HashMap::default();
        for u in snap.users.iter().filter(|u| u.source == b.source && !removed_users.contains(&u.id)) {
            let key = if by_usernames { u.username.to_lowercase() } else { crate::model::normalize_dn(&u.dn) };
            index.insert(key, Member::User(Ref::Existing(u.id)));
        }
        for g in snap.groups.iter().filter(|g| g.source == b.source) {
            index.entry(crate::model::normalize_dn(&g.dn)).or_insert(Member::Group(Ref::Existing(g.id)));
        }
        for (gi, key) in &b.unresolved {
            if let Some(m) = index.get(key) {
                stored_members.push((*m, *gi));
            }
        }
    }
    let stored_user_names: HashMap<i64, &str> = if stored_members.is_empty() {
        HashMap::default()
    } else {
        snap.users.iter().map(|u| (u.id, u.username.as_str())).collect()
    };
    let stored_name = |id: i64| -> Arc<str> { Arc::from(stored_user_names.get(&id).copied().unwrap_or("?")) };
    // Payload u32::MAX: a stored member, not a batch user.
    let mut stored_nested: Vec<(i64, u32)> = Vec::new();
    for &(m, gi) in &stored_members {
        let g = group_ref[gi as usize];
        match (m, g) {
            (Member::User(Ref::Existing(uid)), Ref::Existing(gid)) => desired.push(((uid, gid), (u32::MAX, gi))),
            (Member::User(u @ Ref::Existing(uid)), Ref::New(_)) => adds.push(MemberChange {
                member: Member::User(u),
                group: g,
                member_name: stored_name(uid),
                group_name: gname(&g, Some(gi)),
            }),
            (Member::Group(Ref::Existing(cid)), _) => stored_nested.push((cid, gi)),
            _ => {}
        }
    }
    let current: Vec<(i64, i64)> =
        snap.user_groups.iter().filter(|(_, g)| source_group_ids.contains(g)).copied().collect();
    let (new_pairs, gone_pairs) = diff_pairs(desired, current);
    for ((uid, gid), (ui, gi)) in new_pairs {
        let g = Ref::Existing(gid);
        adds.push(MemberChange {
            member: Member::User(Ref::Existing(uid)),
            group: g,
            member_name: if ui == u32::MAX { stored_name(uid) } else { uname(ui) },
            group_name: gname(&g, Some(gi)),
        });
    }
    let gone_pairs: Vec<(i64, i64)> = gone_pairs
        .into_iter()
        .filter(|(uid, gid)| {
            !frozen_users.contains(uid)
                && !frozen_groups.contains(gid)
                && !removed_users.contains(uid)
                && !removed_groups.contains(gid)
        })
        .collect();
    let stored_user_name: HashMap<i64, &str> = if gone_pairs.is_empty() {
        HashMap::default()
    } else {
        snap.users.iter().map(|u| (u.id, u.username.as_str())).collect()
    };
    let mut removes: Vec<MemberChange> = gone_pairs
        .into_iter()
        .map(|(uid, gid)| {
            let g = Ref::Existing(gid);
            MemberChange {
                member: Member::User(Ref::Existing(uid)),
                group: g,
                member_name: Arc::from(stored_user_name.get(&uid).copied().unwrap_or("?")),
                group_name: gname(&g, None),
            }
        })
        .collect();

    // A user gone from a delta's source is a member of nothing any more (AD
    // drops the links without touching the groups' uSNChanged).
    if gone_groups.is_some() {
        let gone_users: HashSet<i64> = plan
            .removals
            .iter()
            .filter(|r| r.source == b.source && r.kind == RemovalKind::Disable)
            .map(|r| r.id)
            .collect();
        let already: HashSet<(i64, i64)> = removes
            .iter()
            .filter_map(|m| match (m.member, m.group) {
                (Member::User(Ref::Existing(u)), Ref::Existing(g)) => Some((u, g)),
                _ => None,
            })
            .collect();
        let names: HashMap<i64, &str> = plan.removals.iter().map(|r| (r.id, r.username.as_str())).collect();
        for &(u, g) in &snap.user_groups {
            if gone_users.contains(&u) && !already.contains(&(u, g)) && !removed_groups.contains(&g) {
                removes.push(MemberChange {
                    member: Member::User(Ref::Existing(u)),
                    group: Ref::Existing(g),
                    member_name: Arc::from(names.get(&u).copied().unwrap_or("?")),
                    group_name: gname(&Ref::Existing(g), None),
                });
            }
        }
    }

    // Nested groups, the same way.
    let mut desired_gg: Vec<((i64, i64), (u32, u32))> = Vec::new();
    for &(ci, pi) in &b.group_groups {
        let (c, p) = (group_ref[ci as usize], group_ref[pi as usize]);
        match (c, p) {
            (Ref::Existing(cid), Ref::Existing(pid)) => desired_gg.push(((cid, pid), (ci, pi))),
            _ => adds.push(MemberChange {
                member: Member::Group(c),
                group: p,
                member_name: gname(&c, Some(ci)),
                group_name: gname(&p, Some(pi)),
            }),
        }
    }
    for &(cid, pi) in &stored_nested {
        let (c, p) = (Ref::Existing(cid), group_ref[pi as usize]);
        match p {
            Ref::Existing(pid) => desired_gg.push(((cid, pid), (u32::MAX, pi))),
            Ref::New(_) => adds.push(MemberChange {
                member: Member::Group(c),
                group: p,
                member_name: gname(&c, None),
                group_name: gname(&p, Some(pi)),
            }),
        }
    }
    let current_gg: Vec<(i64, i64)> =
        snap.group_groups.iter().filter(|(_, p)| source_group_ids.contains(p)).copied().collect();
    let (new_pairs, gone_pairs) = diff_pairs(desired_gg, current_gg);
    for ((cid, pid), (ci, pi)) in new_pairs {
        let (c, p) = (Ref::Existing(cid), Ref::Existing(pid));
        adds.push(MemberChange {
            member: Member::Group(c),
            group: p,
            member_name: gname(&c, (ci != u32::MAX).then_some(ci)),
            group_name: gname(&p, Some(pi)),
        });
    }
    removes.extend(
        gone_pairs
            .into_iter()
            .filter(|(cid, pid)| {
                !frozen_groups.contains(cid)
                    && !frozen_groups.contains(pid)
                    && !removed_groups.contains(cid)
                    && !removed_groups.contains(pid)
            })
            .map(|(cid, pid)| {
                let (c, p) = (Ref::Existing(cid), Ref::Existing(pid));
                MemberChange {
                    member: Member::Group(c),
                    group: p,
                    member_name: gname(&c, None),
                    group_name: gname(&p, None),
                }
            }),
    );
    let order =
        |a: &MemberChange, c: &MemberChange| (&a.group_name, &a.member_name).cmp(&(&c.group_name, &c.member_name));
    adds.sort_unstable_by(order);
    removes.sort_unstable_by(order);
    plan.member_adds.extend(adds);
    plan.member_removes.extend(removes);

    apply_rules(cfg, b, plan);
}

/// Compares desired id pairs (with a payload) against current ones: returns
/// the desired pairs that are missing and the current pairs that are not
/// desired. Sorted merge: no hash sets of 300,000 pairs.
type Pair = (i64, i64);

fn diff_pairs<T: Copy>(mut desired: Vec<(Pair, T)>, mut current: Vec<Pair>) -> (Vec<(Pair, T)>, Vec<Pair>) {
    desired.sort_unstable_by_key(|(k, _)| *k);
    desired.dedup_by_key(|(k, _)| *k);
    current.sort_unstable();
    current.dedup();
    let (mut new, mut gone) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < desired.len() || j < current.len() {
        match (desired.get(i), current.get(j)) {
            (Some(d), Some(c)) if d.0 == *c => {
                i += 1;
                j += 1;
            }
            (Some(d), Some(c)) if d.0 < *c => {
                new.push(*d);
                i += 1;
            }
            (Some(d), None) => {
                new.push(*d);
                i += 1;
            }
            (_, Some(c)) => {
                gone.push(*c);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (new, gone)
}

/// Provisioning rules, on create only: effective membership (nested groups
/// included, cycles tolerated) decides which rules match.
fn apply_rules(cfg: &Config, b: &SourceBatch, plan: &mut Plan) {
    let rules: Vec<_> = cfg.rules.iter().filter(|r| r.source.as_deref().is_none_or(|s| s == b.source)).collect();
    if rules.is_empty() {
        return;
    }
    let mut parents: Vec<Vec<u32>> = vec![Vec::new(); b.groups.len()];
    for &(c, p) in &b.group_groups {
        parents[c as usize].push(p);
    }
    let by_ext: HashMap<&str, usize> = b.users.iter().enumerate().map(|(i, u)| (u.external_id.as_str(), i)).collect();
    let mut direct: Vec<Vec<u32>> = vec![Vec::new(); b.users.len()];
    for &(u, g) in &b.user_groups {
        direct[u as usize].push(g);
    }
    for nu in plan.creates.iter_mut().filter(|u| u.source == b.source) {
        let Some(&ui) = by_ext.get(nu.external_id.as_str()) else { continue };
        let mut seen: HashSet<u32> = HashSet::default();
        let mut stack: Vec<u32> = direct[ui].clone();
        while let Some(g) = stack.pop() {
            if seen.insert(g) {
                stack.extend(parents[g as usize].iter().copied());
            }
        }
        let names: HashSet<&str> = seen.iter().map(|&g| b.groups[g as usize].name.key()).collect();
        for r in &rules {
            let matched = match &r.when_member_of {
                None => true,
                Some(n) => names.contains(n.key()),
            };
            if matched {
                for (k, v) in &r.set {
                    nu.fields.insert(Arc::from(k.as_str()), v.clone());
                }
                let name = r.when_member_of.as_ref().map(|n| n.as_str().to_string());
                nu.rules_applied.push(name.unwrap_or_else(|| "*".into()));
            }
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
