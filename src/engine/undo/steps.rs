//! An undo's plan: the run's audit rows, newest first, each turned into the
//! step that puts back what was there before it, unless a later change
//! touched the same thing (then that later value is kept and reported as
//! a conflict, or, with `force_over_later`, overwritten and audited).

use std::collections::HashSet;

use serde::Serialize;

use crate::model::images::{GroupImage, UserImage};
use crate::model::records::AuditRecord;
use crate::store::Change;

/// A later value the undo kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub username: String,
    pub field: String,
    /// What the store holds now (a later change's).
    pub kept: Option<String>,
    /// What the undo would have put back.
    pub run_value: Option<String>,
}

/// One thing the undo does, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A user the run created: removed per `on_missing` (disabled and out
    /// of every group, or deleted).
    Uncreate {
        user: i64,
        name: String,
    },
    /// A user the run deleted: put back whole, with its id.
    Restore(Box<UserImage>),
    /// A field set back.
    Field {
        user: i64,
        name: String,
        field: String,
        to: Option<String>,
    },
    Rename {
        user: i64,
        from: String,
        to: String,
    },
    /// An identity re-linked back (source and external id).
    Relink {
        user: i64,
        name: String,
        source: String,
        external_id: String,
    },
    /// Enabled (`true`) or disabled again.
    Status {
        user: i64,
        name: String,
        active: bool,
    },
    Member {
        user: i64,
        name: String,
        group: i64,
        group_name: String,
        add: bool,
    },
    Subgroup {
        child: i64,
        parent: i64,
        name: String,
        parent_name: String,
        add: bool,
    },
    /// A group the run created: deleted.
    Ungroup {
        group: i64,
        name: String,
    },
    GroupRename {
        group: i64,
        from: String,
        to: String,
        dn: String,
    },
    GroupRestore(Box<GroupImage>),
}

/// What a later change touched: user fields (`status`, `username`,
/// `external_id` and `*` for the user as a whole among them), memberships,
/// groups.
#[derive(Default)]
pub struct Later {
    fields: HashSet<(i64, String)>,
    users: HashSet<i64>,
    members: HashSet<(i64, i64)>,
    groups: HashSet<i64>,
}

impl Later {
    /// Reads the changes after the run's last row.
    pub fn of(changes: &[Change]) -> Later {
        let mut l = Later::default();
        for c in changes {
            let r = &c.record;
            let gref = group_ref(r);
            if let Some(u) = r.user_id {
                l.users.insert(u);
                let f = match r.action.as_str() {
                    "rename" => "username".to_string(),
                    "enable" | "disable" => "status".to_string(),
                    "relink" => "external_id".to_string(),
                    "delete" | "create" => "*".to_string(),
                    _ => r.field.clone().unwrap_or_default(),
                };
                l.fields.insert((u, f));
                if let (Some((g, _)), "group_add" | "group_remove") = (gref, r.action.as_str()) {
                    l.members.insert((u, g));
                }
            }
            if let Some((g, child)) = gref {
                l.groups.insert(g);
                if let Some(c) = child {
                    l.groups.insert(c);
                }
            }
        }
        l
    }

    fn field(&self, user: i64, field: &str) -> bool {
        self.fields.contains(&(user, field.to_string())) || self.fields.contains(&(user, "*".to_string()))
    }
}

/// `{"group": id, "child": id}` of a membership or group row.
pub fn group_ref(r: &AuditRecord) -> Option<(i64, Option<i64>)> {
    let v: serde_json::Value = serde_json::from_str(r.image.as_deref()?).ok()?;
    if let Some(g) = v.get("group").and_then(|g| g.as_i64()) {
        return Some((g, v.get("child").and_then(|c| c.as_i64())));
    }
    // A group's whole before-image.
    v.get("id").and_then(|g| g.as_i64()).filter(|_| v.get("members").is_some()).map(|g| (g, None))
}

/// What an undo plan holds besides its steps.
#[derive(Debug, Default)]
pub struct Planned {
    pub steps: Vec<Step>,
    pub conflicts: Vec<Conflict>,
    /// Rows that cannot be undone (recorded before the audit kept
    /// before-images), said per user or group.
    pub notes: Vec<String>,
}

/// The undo of a run's rows, newest first.
pub fn plan(rows: &[Change], later: &Later, over_later: bool) -> Planned {
    let mut p = Planned::default();
    for c in rows.iter().rev() {
        step(&c.record, later, over_later, &mut p);
    }
    p
}

fn conflict(p: &mut Planned, username: &str, field: &str, kept: Option<&str>, run_value: Option<&str>) {
    p.conflicts.push(Conflict {
        username: username.to_string(),
        field: field.to_string(),
        kept: kept.map(str::to_string),
        run_value: run_value.map(str::to_string),
    });
}

/// The step that undoes one row (or a conflict, or a note).
fn step(r: &AuditRecord, later: &Later, over: bool, p: &mut Planned) {
    let name = r.name.clone();
    let gref = group_ref(r);
    let Some(user) = r.user_id else {
        return group_step(r, gref, later, over, p);
    };
    let touched = |f: &str| !over && later.field(user, f);
    match r.action.as_str() {
        "create" => match touched("*") || (!over && later.users.contains(&user)) {
            true => conflict(p, &name, "(created by the run)", Some("changed since"), None),
            false => p.steps.push(Step::Uncreate { user, name }),
        },
        "delete" => match r.image.as_deref().and_then(|i| serde_json::from_str::<UserImage>(i).ok()) {
            Some(img) if !touched("*") => p.steps.push(Step::Restore(Box::new(img))),
            Some(_) => conflict(p, &name, "(deleted by the run)", Some("changed since"), None),
            None => p.notes.push(format!("{name}: deleted by a run recorded before undo was possible; not re-created")),
        },
        "rename" => match touched("username") {
            true => conflict(p, &name, "username", r.new.as_deref(), r.old.as_deref()),
            false => {
                let (from, to) = (r.new.clone().unwrap_or_default(), r.old.clone().unwrap_or_default());
                p.steps.push(Step::Rename { user, from, to })
            }
        },
        "relink" => match r.image.as_deref().and_then(|i| serde_json::from_str::<UserImage>(i).ok()) {
            Some(_) if touched("external_id") => conflict(p, &name, "external_id", r.new.as_deref(), r.old.as_deref()),
            Some(img) => p.steps.push(Step::Relink { user, name, source: img.source, external_id: img.external_id }),
            None => p.notes.push(format!("{name}: re-linked by a run recorded before undo was possible; kept")),
        },
        "enable" | "disable" => match touched("status") {
            true => conflict(p, &name, "status", r.new.as_deref(), r.old.as_deref()),
            false => p.steps.push(Step::Status { user, name, active: r.action == "disable" }),
        },
        "group_add" | "group_remove" => {
            let Some((group, _)) = gref else {
                return p.notes.push(format!("{name}: a membership change recorded before undo was possible; kept"));
            };
            let add = r.action == "group_remove";
            let group_name = r.old.clone().or_else(|| r.new.clone()).unwrap_or_default();
            match !over && later.members.contains(&(user, group)) {
                true => conflict(
                    p,
                    &name,
                    &format!("group {group_name}"),
                    None,
                    Some(if add { "member" } else { "not a member" }),
                ),
                false => p.steps.push(Step::Member { user, name, group, group_name, add }),
            }
        }
        // update, set, generate, conflict_directory_wins: one field's value.
        _ => {
            let Some(field) = r.field.clone() else { return };
            match touched(&field) {
                true => conflict(p, &name, &field, r.new.as_deref(), r.old.as_deref()),
                false => p.steps.push(Step::Field { user, name, field, to: r.old.clone() }),
            }
        }
    }
}

/// The undo of a group row or a nested membership.
fn group_step(r: &AuditRecord, gref: Option<(i64, Option<i64>)>, later: &Later, over: bool, p: &mut Planned) {
    let name = r.name.clone();
    let Some((group, child)) = gref else {
        return p.notes.push(format!("group {name}: a change recorded before undo was possible; kept"));
    };
    let touched = !over && later.groups.contains(&group);
    match r.action.as_str() {
        "group_create" if touched => {
            conflict(p, &format!("group {name}"), "(created by the run)", Some("changed since"), None)
        }
        "group_create" => p.steps.push(Step::Ungroup { group, name }),
        "group_update" | "group_delete" => {
            let Some(img) = r.image.as_deref().and_then(|i| serde_json::from_str::<GroupImage>(i).ok()) else { return };
            match (r.action.as_str(), touched) {
                (_, true) => conflict(p, &format!("group {name}"), "name", r.new.as_deref(), Some(&img.name)),
                ("group_update", false) => {
                    p.steps.push(Step::GroupRename { group, from: name, to: img.name.clone(), dn: img.dn.clone() })
                }
                _ => p.steps.push(Step::GroupRestore(Box::new(img))),
            }
        }
        "subgroup_add" | "subgroup_remove" => {
            let Some(child) = child else { return };
            let add = r.action == "subgroup_remove";
            let parent_name = r.old.clone().or_else(|| r.new.clone()).unwrap_or_default();
            p.steps.push(Step::Subgroup { child, parent: group, name, parent_name, add });
        }
        _ => {}
    }
}
