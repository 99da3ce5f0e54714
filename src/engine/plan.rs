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
use crate::model::{name_key, EntryError, Fields, MappedUser, Snapshot, SourceBatch, Status};

mod enrich;
mod index;
mod members;
mod names;
pub mod summary;
pub use crate::model::{NewGroup, NewUser};
#[cfg(test)]
use members::diff_pairs;
use members::{gone, groups_and_members, Gone, SourceCtx};
pub use names::Names;

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

    let by_ext = index::ByIdentity::new(snap);

    let gone: Vec<Gone> = batches.iter().map(|b| gone(snap, b)).collect();

    // 1. Which stored record does each entry update?
    let mut cands: Vec<Candidate> = Vec::with_capacity(batches.iter().map(|b| b.users.len()).sum());
    let mut targeted = vec![false; snap.users.len()];
    let enrich = |b: &SourceBatch| source_cfg(&b.source).is_enrich();
    let prio = |b: &SourceBatch| source_cfg(&b.source).priority;
    for (bi, b) in batches.iter().enumerate().filter(|(_, b)| !enrich(b)) {
        for (index, u) in b.users.iter().enumerate() {
            let target = by_ext.get(&b.source, &u.external_id);
            if let Some(t) = target {
                targeted[t] = true;
            }
            cands.push(Candidate { batch: bi, index, user: u, target, relink: false, skipped: false });
        }
    }
    drop(by_ext);
    // 2. Re-link: a new identity with the username of a record whose identity
    //    is gone from its owner (read in this run); the source with the
    //    higher priority first, when several claim it.
    if cands.iter().any(|c| c.target.is_none()) && !snap.users.is_empty() {
        let keys: Vec<String> = snap.users.iter().map(|u| name_key(&u.username)).collect();
        let by_key: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
        let mut order: Vec<usize> = (0..cands.len()).filter(|&ci| cands[ci].target.is_none()).collect();
        order.sort_by_key(|&ci| prio(&batches[cands[ci].batch]));
        for ci in order {
            let c = &mut cands[ci];
            if let Some(&i) = by_key.get(c.user.username.key()) {
                let s = &snap.users[i];
                let Some(ob) = batches.iter().position(|x| *x.source == *s.source && !enrich(x)) else { continue };
                let owner = &batches[ob];
                let old_gone = match &gone[ob].0 {
                    // A delta: only if reported deleted now, or gone since an earlier run.
                    Some(deleted) => deleted.contains(&*s.external_id) || s.missing_since.is_some(),
                    None => !owner.saw_user(&s.external_id),
                } && (ob == c.batch || !owner.protects(s));
                if old_gone && !targeted[i] {
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
            (0..snap.users.len()).filter(|&i| !live[i]).map(|i| (i, name_key(&snap.users[i].username))).collect();
        // Contested names only (a map over every claim took 80 MB at a million).
        let claims = index::contested(&kept, cands.len(), |ci| {
            let user: &MappedUser = cands[ci].user;
            (!cands[ci].skipped).then(|| user.username.key())
        });
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
        let mut takeovers = Vec::new();
        for (key, cs) in &claimants {
            let stored = claims[key];
            // The claimant already linked by identity to the record holding
            // this name keeps it: only newcomers are the conflict, so one
            // crafted entry cannot freeze another user.
            let mut incumbent = match stored {
                Some(_) => None,
                None => cs.iter().copied().find(|&ci| {
                    let c = &cands[ci];
                    !c.relink && c.target.is_some_and(|t| name_key(&snap.users[t].username) == **key)
                }),
            };
            // Claimants from several sources: the one claimant of the source
            // with the highest priority owns the name (taking over the
            // incumbent's record when it is a newcomer).
            let src = |ci: usize| &batches[cands[ci].batch];
            let best = cs.iter().map(|&ci| prio(src(ci))).min().unwrap_or(0);
            let top: Vec<usize> = cs.iter().copied().filter(|&ci| prio(src(ci)) == best).collect();
            let several = cs.iter().any(|&ci| src(ci).source != src(top[0]).source);
            if stored.is_none() && several && top.len() == 1 {
                let w = top[0];
                match incumbent {
                    Some(inc) if inc != w && cands[w].target.is_none() => {
                        takeovers.push((w, cands[inc].target.expect("an incumbent has a record")));
                        incumbent = Some(w);
                    }
                    Some(inc) if inc != w => {} // the winner is another record: the incumbent keeps it
                    _ => incumbent = Some(w),
                }
            }
            for &ci in cs {
                if Some(ci) == incumbent {
                    continue;
                }
                let holder_src =
                    stored.map(|i| &*snap.users[i].source).or_else(|| incumbent.map(|w| src(w).source.as_str()));
                if let Some(hs) = holder_src.filter(|hs| *hs != src(ci).source) {
                    let reason = format!(
                        "username \"{key}\" belongs to source \"{hs}\" (priority {}); this entry of source \"{}\" (priority {}) is skipped",
                        cfg.sources.iter().find(|s| s.name == hs).map_or(0, |s| s.priority),
                        src(ci).source,
                        prio(src(ci)),
                    );
                    newly.push((ci, reason, true));
                    continue;
                }
                let holder = stored.or_else(|| incumbent.and_then(|inc| cands[inc].target));
                let reason = match holder {
                    Some(i) => {
                        let u = &snap.users[i];
                        format!(
                            "username \"{key}\" is already used by user {} (source {}, {}); skipped",
                            u.username, u.source, u.dn
                        )
                    }
                    None => {
                        let others = cs
                            .iter()
                            .filter(|&&o| o != ci)
                            .map(|&o| format!("{} (source {})", cands[o].user.dn, batches[cands[o].batch].source));
                        let claimed = crate::model::claims::also_claimed_by(cs.len(), others);
                        format!("duplicate username \"{key}\": {claimed}; all claimants skipped until one is fixed")
                    }
                };
                newly.push((ci, reason, false));
            }
        }
        for (w, t) in takeovers {
            (cands[w].target, cands[w].relink) = (Some(t), true);
        }
        newly.sort();
        for (ci, reason, warning) in newly {
            cands[ci].skipped = true;
            let list = if warning { &mut plan.warnings } else { &mut plan.errors };
            list.push(EntryError::new(&*cands[ci].user.dn, reason));
        }
    }
    let live_targets = live;

    // 4. Users: creates and updates.
    // Per batch, per user index: the record the entry maps to (None: skipped).
    let mut user_ref: Vec<Vec<Option<Ref>>> = batches.iter().map(|b| vec![None; b.users.len()]).collect();
    let source_names: Vec<Arc<str>> = batches.iter().map(|b| Arc::from(b.source.as_str())).collect();
    // No spare capacity: a first sync creates every user (peak RSS).
    plan.creates.reserve_exact(cands.iter().filter(|c| !c.skipped && c.target.is_none()).count());
    for c in cands.iter().filter(|c| !c.skipped) {
        let b = &batches[c.batch];
        let scfg = source_cfg(&b.source);
        match c.target {
            // Disabled in the directory and never synced: not imported by default.
            None => {
                let Some(nu) = new_user(scfg, &source_names[c.batch], c.user) else { continue };
                user_ref[c.batch][c.index] = Some(Ref::New(plan.creates.len()));
                plan.creates.push(nu);
            }
            Some(i) => {
                let s = &snap.users[i];
                user_ref[c.batch][c.index] = Some(Ref::Existing(s.id));
                let mut changes = Vec::new();
                let new_name = c.user.username.as_str();
                let rename_to = (name_key(&s.username) != c.user.username.key()).then(|| new_name.to_string());
                if rename_to.is_none() && &*s.username != new_name {
                    changes.push(FieldChange {
                        field: "username".into(),
                        old: Some(s.username.to_string()),
                        new: Some(new_name.into()),
                    });
                }
                let mut dir_changes = Vec::new();
                for ((name, new), spec) in c.user.fields.iter().zip(scfg.fields.iter().skip(1)) {
                    let old = s.fields.get(name);
                    if spec.app_owned {
                        // The application owns it: the directory only fills it in.
                        if old.is_none() && new.is_some() && spec.on_update {
                            changes.push(FieldChange {
                                field: name.to_string(),
                                old: None,
                                new: new.map(str::to_string),
                            });
                        }
                        let seen = s.dir_values.get(name);
                        if new != seen {
                            dir_changes.push(FieldChange {
                                field: name.to_string(),
                                old: seen.map(str::to_string),
                                new: new.map(str::to_string),
                            });
                        }
                        continue;
                    }
                    if spec.on_update && new != old {
                        changes.push(FieldChange {
                            field: name.to_string(),
                            old: old.map(str::to_string),
                            new: new.map(str::to_string),
                        });
                    }
                }
                if *s.dn != *c.user.dn {
                    changes.push(FieldChange {
                        field: "dn".into(),
                        old: Some(s.dn.to_string()),
                        new: Some(c.user.dn.to_string()),
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
                    username: s.username.to_string(),
                    rename_to,
                    relink_to: c.relink.then(|| c.user.external_id.to_string()),
                    relink_from: (c.relink && *s.source != *b.source).then(|| s.source.to_string()),
                    enable,
                    disable,
                    changes,
                    dir_changes,
                });
            }
        }
    }
    // Every later step works from `user_ref`: the candidates (48 bytes an
    // entry) go before the membership changes are made (peak RSS).
    drop(cands);

    // 4b. Fields from enrich sources, on the users the others own.
    enrich::apply_rows(cfg, snap, batches, &live_targets, &mut plan);

    // 5. Users gone from their source.
    let mut removed: HashSet<i64> = HashSet::default();
    for (bi, b) in batches.iter().enumerate() {
        if enrich(b) {
            plan.sources.push(SourceSummary {
                source: b.source.clone(),
                users_returned: b.user_entries,
                users_usable: b.users.len(),
                ..Default::default()
            });
            continue;
        }
        let on_missing = cfg.safety.on_missing;
        let mut summary = SourceSummary {
            source: b.source.clone(),
            incremental: b.delta.is_some(),
            users_returned: b.user_entries,
            users_usable: b.users.len(),
            groups_returned: b.group_entries,
            ..Default::default()
        };
        let mut removed_active = 0;
        for (i, s) in snap.users.iter().enumerate().filter(|(_, s)| *s.source == *b.source) {
            if s.status == Status::Active {
                summary.active_before += 1;
            }
            let missing = match &gone[bi].0 {
                Some(deleted) => deleted.contains(&*s.external_id),
                None => !b.saw_user(&s.external_id),
            };
            // A skipped entry protects the user it could be (same identity,
            // DN or username): a skipped entry is never a missing one.
            if !missing || live_targets[i] || b.protects(s) {
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
            if s.status == Status::Active {
                removed_active += 1;
            }
            summary.removals += 1;
            plan.removals.push(Removal {
                id: s.id,
                source: s.source.to_string(),
                username: s.username.to_string(),
                kind,
            });
        }
        // Users the directory disabled count toward the thresholds too.
        let disabled = plan.updates.iter().filter(|u| u.disable && u.source == b.source).count();
        summary.removals += disabled;
        if let Some(active) = &snap.active_by_source {
            // A partial snapshot holds only some users: the store counted them.
            summary.active_before = active.get(&b.source).copied().unwrap_or(0);
        }
        let enabled = plan.updates.iter().filter(|u| u.enable && u.source == b.source).count();
        let created = plan.creates.iter().filter(|c| *c.source == *b.source && c.status == Status::Active).count();
        summary.active_after = (summary.active_before + enabled + created).saturating_sub(removed_active + disabled);
        plan.sources.push(summary);
    }

    // 6. Groups, memberships and rules, per source.
    for (bi, b) in batches.iter().enumerate().filter(|(_, b)| !enrich(b)) {
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

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
