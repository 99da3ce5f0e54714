//! The plan's user steps, in order: which stored record each entry updates
//! ([`Inputs::candidates`]), re-links of a new identity to a record whose
//! identity is gone ([`Inputs::relink`]), unique final usernames
//! ([`Inputs::settle_usernames`]), then creates and updates
//! ([`Inputs::users`]).

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::members::{gone, Gone};
use super::{index, new_user, FieldChange, Plan, Ref, UserUpdate};
use crate::config::{Config, SourceConfig};
use crate::model::{name_key, EntryError, MappedUser, Snapshot, SourceBatch, Status, StoredUser};

/// What one plan is built from: the config, the store's snapshot, the
/// sources' batches, and what each batch says is gone.
pub(super) struct Inputs<'a> {
    pub(super) cfg: &'a Config,
    pub(super) snap: &'a Snapshot,
    pub(super) batches: &'a [SourceBatch],
    /// Per batch: the users and groups a delta reports gone (`None`: a full read).
    pub(super) gone: Vec<Gone>,
}

/// One usable entry of a primary source, and the stored record it updates.
pub(super) struct Candidate<'a> {
    batch: usize,
    /// Index into the batch's users.
    index: usize,
    user: &'a MappedUser,
    /// Index into snapshot.users of the record this entry updates.
    target: Option<usize>,
    relink: bool,
    skipped: bool,
}

/// What one round of username checks decided.
#[derive(Default)]
struct Verdicts {
    /// (candidate, reason, a warning rather than an error) to skip.
    skip: Vec<(usize, String, bool)>,
    /// (candidate, record): a higher-priority newcomer takes the record over.
    takeovers: Vec<(usize, usize)>,
}

impl<'a> Inputs<'a> {
    pub(super) fn new(cfg: &'a Config, snap: &'a Snapshot, batches: &'a [SourceBatch]) -> Self {
        let gone = batches.iter().map(|b| gone(snap, b)).collect();
        Inputs { cfg, snap, batches, gone }
    }

    pub(super) fn source_cfg(&self, name: &str) -> &'a SourceConfig {
        self.cfg.sources.iter().find(|s| s.name == name).expect("batch of a configured source")
    }

    pub(super) fn is_enrich(&self, b: &SourceBatch) -> bool {
        self.source_cfg(&b.source).is_enrich()
    }

    fn priority(&self, b: &SourceBatch) -> u32 {
        self.source_cfg(&b.source).priority
    }

    /// Step 1: every usable entry of a primary source, with the stored
    /// record of the same identity it updates.
    pub(super) fn candidates(&self) -> Vec<Candidate<'a>> {
        let by_ext = index::ByIdentity::new(self.snap);
        let mut cands = Vec::with_capacity(self.batches.iter().map(|b| b.users.len()).sum());
        for (bi, b) in self.batches.iter().enumerate().filter(|(_, b)| !self.is_enrich(b)) {
            for (index, u) in b.users.iter().enumerate() {
                let target = by_ext.get(&b.source, &u.external_id);
                cands.push(Candidate { batch: bi, index, user: u, target, relink: false, skipped: false });
            }
        }
        cands
    }

    /// Step 2: a new identity with the username of a record whose identity
    /// is gone from its owner (read in this run) re-links to it; the source
    /// with the higher priority first, when several claim it.
    pub(super) fn relink(&self, cands: &mut [Candidate]) {
        let (snap, batches) = (self.snap, self.batches);
        if !cands.iter().any(|c| c.target.is_none()) || snap.users.is_empty() {
            return;
        }
        let mut targeted = vec![false; snap.users.len()];
        for t in cands.iter().filter_map(|c| c.target) {
            targeted[t] = true;
        }
        let keys: Vec<String> = snap.users.iter().map(|u| name_key(&u.username)).collect();
        let by_key: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
        let mut order: Vec<usize> = (0..cands.len()).filter(|&ci| cands[ci].target.is_none()).collect();
        order.sort_by_key(|&ci| self.priority(&batches[cands[ci].batch]));
        for ci in order {
            let c = &mut cands[ci];
            let Some(&i) = by_key.get(c.user.username.key()) else { continue };
            let s = &snap.users[i];
            let Some(ob) = batches.iter().position(|x| *x.source == *s.source && !self.is_enrich(x)) else { continue };
            let owner = &batches[ob];
            let old_gone = match &self.gone[ob].0 {
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

    /// Step 3: final usernames must be unique; every claimant of a contested
    /// name is skipped (repeated: a skip can leave an old name in place).
    /// Returns which stored records an entry updates.
    pub(super) fn settle_usernames(&self, cands: &mut [Candidate], plan: &mut Plan) -> Vec<bool> {
        let snap = self.snap;
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
            let mut verdicts = Verdicts::default();
            for (key, cs) in &claimants {
                self.judge(key, claims[key], cs, cands, &mut verdicts);
            }
            for (w, t) in verdicts.takeovers {
                (cands[w].target, cands[w].relink) = (Some(t), true);
            }
            verdicts.skip.sort();
            for (ci, reason, warning) in verdicts.skip {
                cands[ci].skipped = true;
                let list = if warning { &mut plan.warnings } else { &mut plan.errors };
                list.push(EntryError::new(&*cands[ci].user.dn, reason));
            }
        }
        live
    }

    /// Who of the claimants `cs` of name `key` keeps it (`stored`: the
    /// record that holds it and keeps it), and why the others are skipped.
    fn judge(&self, key: &str, stored: Option<usize>, cs: &[usize], cands: &[Candidate], out: &mut Verdicts) {
        let snap = self.snap;
        // The claimant already linked by identity to the record holding this
        // name keeps it: only newcomers are the conflict, so one crafted
        // entry cannot freeze another user.
        let mut incumbent = match stored {
            Some(_) => None,
            None => cs.iter().copied().find(|&ci| {
                let c = &cands[ci];
                !c.relink && c.target.is_some_and(|t| name_key(&snap.users[t].username) == *key)
            }),
        };
        // Claimants from several sources: the one claimant of the source with
        // the highest priority owns the name (taking over the incumbent's
        // record when it is a newcomer).
        let src = |ci: usize| &self.batches[cands[ci].batch];
        let best = cs.iter().map(|&ci| self.priority(src(ci))).min().unwrap_or(0);
        let top: Vec<usize> = cs.iter().copied().filter(|&ci| self.priority(src(ci)) == best).collect();
        let several = cs.iter().any(|&ci| src(ci).source != src(top[0]).source);
        if stored.is_none() && several && top.len() == 1 {
            let w = top[0];
            match incumbent {
                Some(inc) if inc != w && cands[w].target.is_none() => {
                    out.takeovers.push((w, cands[inc].target.expect("an incumbent has a record")));
                    incumbent = Some(w);
                }
                Some(inc) if inc != w => {} // the winner is another record: the incumbent keeps it
                _ => incumbent = Some(w),
            }
        }
        for &ci in cs.iter().filter(|&&ci| Some(ci) != incumbent) {
            let holder_src =
                stored.map(|i| &*snap.users[i].source).or_else(|| incumbent.map(|w| src(w).source.as_str()));
            if let Some(hs) = holder_src.filter(|hs| *hs != src(ci).source) {
                let reason = format!(
                    "username \"{key}\" belongs to source \"{hs}\" (priority {}); this entry of source \"{}\" (priority {}) is skipped",
                    self.cfg.sources.iter().find(|s| s.name == hs).map_or(0, |s| s.priority),
                    src(ci).source,
                    self.priority(src(ci)),
                );
                out.skip.push((ci, reason, true));
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
                        .map(|&o| format!("{} (source {})", cands[o].user.dn, self.batches[cands[o].batch].source));
                    let claimed = crate::model::claims::also_claimed_by(cs.len(), others);
                    format!("duplicate username \"{key}\": {claimed}; all claimants skipped until one is fixed")
                }
            };
            out.skip.push((ci, reason, false));
        }
    }

    /// Step 4: creates and updates. Returns, per batch and user index, the
    /// record the entry maps to (`None`: skipped or not imported).
    pub(super) fn users(&self, cands: &[Candidate], plan: &mut Plan) -> Vec<Vec<Option<Ref>>> {
        let batches = self.batches;
        let mut user_ref: Vec<Vec<Option<Ref>>> = batches.iter().map(|b| vec![None; b.users.len()]).collect();
        let source_names: Vec<Arc<str>> = batches.iter().map(|b| Arc::from(b.source.as_str())).collect();
        // No spare capacity: a first sync creates every user (peak RSS).
        plan.creates.reserve_exact(cands.iter().filter(|c| !c.skipped && c.target.is_none()).count());
        for c in cands.iter().filter(|c| !c.skipped) {
            let b = &batches[c.batch];
            let scfg = self.source_cfg(&b.source);
            match c.target {
                // Disabled in the directory and never synced: not imported by default.
                None => {
                    let Some(nu) = new_user(scfg, &source_names[c.batch], c.user) else { continue };
                    user_ref[c.batch][c.index] = Some(Ref::New(plan.creates.len()));
                    plan.creates.push(nu);
                }
                Some(i) => {
                    let s = &self.snap.users[i];
                    user_ref[c.batch][c.index] = Some(Ref::Existing(s.id));
                    if let Some(update) = update_of(c, s, b, scfg, &mut plan.unchanged) {
                        plan.updates.push(update);
                    }
                }
            }
        }
        user_ref
    }
}

/// What changes on stored user `s` that entry `c` of batch `b` updates;
/// `None` when nothing does (counted in `unchanged`, with the directory's
/// values of app-owned fields unchanged too).
fn update_of(
    c: &Candidate,
    s: &StoredUser,
    b: &SourceBatch,
    scfg: &SourceConfig,
    unchanged: &mut usize,
) -> Option<UserUpdate> {
    let new_name = c.user.username.as_str();
    let rename_to = (name_key(&s.username) != c.user.username.key()).then(|| new_name.to_string());
    let mut changes = Vec::new();
    if rename_to.is_none() && &*s.username != new_name {
        changes.push(FieldChange {
            field: "username".into(),
            old: Some(s.username.to_string()),
            new: Some(new_name.into()),
        });
    }
    let dir_changes = field_changes(c.user, s, scfg, &mut changes);
    if *s.dn != *c.user.dn {
        changes.push(FieldChange { field: "dn".into(), old: Some(s.dn.to_string()), new: Some(c.user.dn.to_string()) });
    }
    let enable = s.status == Status::Disabled && !c.user.disabled;
    let disable = s.status == Status::Active && c.user.disabled;
    if changes.is_empty() && rename_to.is_none() && !enable && !disable && !c.relink {
        *unchanged += 1;
        if dir_changes.is_empty() {
            return None;
        }
    }
    Some(UserUpdate {
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
    })
}

/// The mapped fields' changes on `s`, pushed onto `changes`; returns the
/// changes of the directory's values of application-owned fields (which the
/// directory only fills in when the application has none).
fn field_changes(
    u: &MappedUser,
    s: &StoredUser,
    scfg: &SourceConfig,
    changes: &mut Vec<FieldChange>,
) -> Vec<FieldChange> {
    let change = |name: &str, old: Option<&str>, new: Option<&str>| FieldChange {
        field: name.to_string(),
        old: old.map(str::to_string),
        new: new.map(str::to_string),
    };
    let mut dir_changes = Vec::new();
    for ((name, new), spec) in u.fields.iter().zip(scfg.fields.iter().skip(1)) {
        let old = s.fields.get(name);
        if spec.app_owned {
            if old.is_none() && new.is_some() && spec.on_update {
                changes.push(change(name, None, new));
            }
            let seen = s.dir_values.get(name);
            if new != seen {
                dir_changes.push(change(name, seen, new));
            }
        } else if spec.on_update && new != old {
            changes.push(change(name, old, new));
        }
    }
    dir_changes
}
