//! The plan's enrich step: rows of `role = "enrich"` sources set the fields
//! they map on users the primary sources own (stored, or created by this
//! plan), matched on `match_on` (the username, or another field, compared
//! like usernames: case and Unicode width folded). An enrich source never
//! creates, renames, disables or deletes anybody; a row that matches nobody,
//! or several users, or whose key another row of the same source also has,
//! is a warning and changes nothing.

use rustc_hash::FxHashMap as HashMap;

use super::{FieldChange, Plan, UserUpdate};
use crate::config::{Config, Role};
use crate::model::{name_key, EntryError, MappedUser, Snapshot, SourceBatch};

/// A user an enrich row can land on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Index into the snapshot's users.
    Stored(usize),
    /// Index into the plan's creates.
    New(usize),
}

/// Applies every enrich batch in `batches` to `plan`. `live[i]`: stored user
/// `i` was read from its owner in this run (and counted unchanged when the
/// plan has no update for it).
pub(super) fn apply_rows(cfg: &Config, snap: &Snapshot, batches: &[SourceBatch], live: &[bool], plan: &mut Plan) {
    for b in batches {
        let Some(scfg) = cfg.sources.iter().find(|s| s.name == b.source) else { continue };
        let Role::Enrich { match_on } = &scfg.role else { continue };
        let index = targets(snap, plan, match_on);
        let mut rows: HashMap<&str, Vec<&MappedUser>> = HashMap::default();
        for u in &b.users {
            rows.entry(u.username.key()).or_default().push(u);
        }
        let mut keys: Vec<&str> = rows.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let row = &rows[key];
            let what = |u: &MappedUser| format!("{match_on} \"{}\"", u.username.as_str());
            if row.len() > 1 {
                for u in row {
                    plan.warnings.push(EntryError::new(
                        &*u.dn,
                        format!(
                            "{} is on {} rows of enrich source \"{}\"; none of them is used until one is fixed",
                            what(u),
                            row.len(),
                            b.source
                        ),
                    ));
                }
                continue;
            }
            let u = row[0];
            let found = index.get(key).map(Vec::as_slice).unwrap_or_default();
            let target = match found {
                [t] => *t,
                [] => {
                    let reason = format!("{} matches no user; enrich source \"{}\" changes nobody", what(u), b.source);
                    plan.warnings.push(EntryError::new(&*u.dn, reason));
                    continue;
                }
                many => {
                    let reason = format!(
                        "{} matches {} users; enrich source \"{}\" changes none of them",
                        what(u),
                        many.len(),
                        b.source
                    );
                    plan.warnings.push(EntryError::new(&*u.dn, reason));
                    continue;
                }
            };
            // The mapped fields but the one matched on (spec 0 is username).
            let values = u.fields.iter().zip(scfg.fields.iter().skip(1)).filter(|((n, _), _)| ***n != **match_on);
            match target {
                Target::New(i) => {
                    for ((name, value), spec) in values {
                        if let (Some(v), true) = (value, spec.on_create) {
                            plan.creates[i].fields.insert(name.clone(), v.to_string());
                        }
                    }
                }
                Target::Stored(i) => {
                    let s = &snap.users[i];
                    let changes: Vec<FieldChange> = values
                        .filter(|((name, new), spec)| spec.on_update && *new != s.fields.get(name))
                        .map(|((name, new), _)| FieldChange {
                            field: name.to_string(),
                            old: s.fields.get(name).map(str::to_string),
                            new: new.map(str::to_string),
                        })
                        .collect();
                    if !changes.is_empty() {
                        add_changes(plan, s, live[i], changes);
                    }
                }
            }
        }
    }
}

/// Adds an enrich row's changes to stored user `s`'s update (one is made if
/// the user had none). `live`: an entry of its own source updates it, and
/// was counted unchanged.
fn add_changes(plan: &mut Plan, s: &crate::model::StoredUser, live: bool, changes: Vec<FieldChange>) {
    match plan.updates.iter_mut().find(|x| x.id == s.id) {
        Some(up) => {
            if up.is_silent() && live {
                plan.unchanged = plan.unchanged.saturating_sub(1);
            }
            up.changes.extend(changes);
        }
        None => {
            if live {
                plan.unchanged = plan.unchanged.saturating_sub(1);
            }
            plan.updates.push(UserUpdate {
                id: s.id,
                source: s.source.to_string(),
                username: s.username.to_string(),
                rename_to: None,
                relink_to: None,
                relink_from: None,
                enable: false,
                disable: false,
                changes,
                dir_changes: Vec::new(),
            });
        }
    }
}

/// Every user by the key an enrich row matches on, as it will be after the
/// plan's renames and field changes so far.
fn targets(snap: &Snapshot, plan: &Plan, match_on: &str) -> HashMap<String, Vec<Target>> {
    let updates: HashMap<i64, &UserUpdate> = plan.updates.iter().map(|u| (u.id, u)).collect();
    let removed: rustc_hash::FxHashSet<i64> = plan.removals.iter().map(|r| r.id).collect();
    let mut out: HashMap<String, Vec<Target>> = HashMap::default();
    for (i, s) in snap.users.iter().enumerate().filter(|(_, s)| !removed.contains(&s.id)) {
        let up = updates.get(&s.id);
        let key = if match_on == "username" {
            Some(up.and_then(|u| u.rename_to.clone()).unwrap_or_else(|| s.username.to_string()))
        } else {
            match up.and_then(|u| u.changes.iter().find(|c| c.field == match_on)) {
                Some(c) => c.new.clone(),
                None => s.fields.get(match_on).map(str::to_string),
            }
        };
        if let Some(k) = key {
            out.entry(name_key(&k)).or_default().push(Target::Stored(i));
        }
    }
    for (i, c) in plan.creates.iter().enumerate() {
        let key = if match_on == "username" { Some(&*c.username) } else { c.fields.get(match_on) };
        if let Some(k) = key {
            out.entry(name_key(k)).or_default().push(Target::New(i));
        }
    }
    out
}
