//! A plan as people read it: per kind of change, how many and the first
//! hundred, in plain names (updates field by field). The admin page shows it
//! for previews and blocked runs; blocked runs keep it in the store (so
//! their page and `GET /api/runs/{id}` show what was held back).

use serde::{Deserialize, Serialize};

use super::{Plan, RemovalKind};

/// How many of each kind are listed.
pub const FIRST: usize = 100;

/// A count and the first [`FIRST`] items.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed<T> {
    pub total: usize,
    pub first: Vec<T>,
}

impl<T> Listed<T> {
    fn of<'a, S: 'a>(items: &'a [S], n: usize, f: impl Fn(&'a S) -> T) -> Listed<T> {
        Listed { total: items.len(), first: items.iter().take(n).map(f).collect() }
    }

    /// Whether some items are not listed.
    pub fn cut(&self) -> bool {
        self.total > self.first.len()
    }
}

/// One user's update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateLine {
    pub username: String,
    pub rename_to: Option<String>,
    pub relink_to: Option<String>,
    pub enable: bool,
    pub disable: bool,
    /// (field, old, new)
    pub changes: Vec<(String, Option<String>, Option<String>)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub creates: Listed<String>,
    pub updates: Listed<UpdateLine>,
    /// (username, `disable` | `delete`)
    pub removals: Listed<(String, String)>,
    pub group_creates: Listed<String>,
    /// (old name, new name)
    pub group_updates: Listed<(String, String)>,
    pub group_deletes: Listed<String>,
    /// (member, group)
    pub member_adds: Listed<(String, String)>,
    pub member_removes: Listed<(String, String)>,
}

impl PlanSummary {
    /// The first [`FIRST`] of each kind.
    pub fn of(plan: &Plan) -> PlanSummary {
        PlanSummary::first(plan, FIRST)
    }

    /// Whether any kind lists fewer than it counts.
    pub fn cut(&self) -> bool {
        self.creates.cut()
            || self.updates.cut()
            || self.removals.cut()
            || self.group_creates.cut()
            || self.group_updates.cut()
            || self.group_deletes.cut()
            || self.member_adds.cut()
            || self.member_removes.cut()
    }

    /// The first `n` of each kind (`usize::MAX`: all).
    pub fn first(plan: &Plan, n: usize) -> PlanSummary {
        let pair = |m: &super::MemberChange| {
            let (member, group) = plan.names_of(m);
            (member.to_string(), group.to_string())
        };
        PlanSummary {
            creates: Listed::of(&plan.creates, n, |u| u.username.to_string()),
            updates: Listed::of(&plan.updates, n, |u| UpdateLine {
                username: u.username.clone(),
                rename_to: u.rename_to.clone(),
                relink_to: u.relink_to.clone(),
                enable: u.enable,
                disable: u.disable,
                changes: u.changes.iter().map(|c| (c.field.clone(), c.old.clone(), c.new.clone())).collect(),
            }),
            removals: Listed::of(&plan.removals, n, |r| {
                let action = match r.kind {
                    RemovalKind::Disable => "disable",
                    RemovalKind::Delete => "delete",
                };
                (r.username.clone(), action.to_string())
            }),
            group_creates: Listed::of(&plan.group_creates, n, |g| g.name.clone()),
            group_updates: Listed::of(&plan.group_updates, n, |g| (g.name.clone(), g.new_name.clone())),
            group_deletes: Listed::of(&plan.group_deletes, n, |g| g.name.clone()),
            member_adds: Listed::of(&plan.member_adds, n, pair),
            member_removes: Listed::of(&plan.member_removes, n, pair),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::{Removal, UserUpdate};

    #[test]
    fn a_summary_counts_all_lists_the_first_hundred_and_round_trips() {
        let removal = |i: usize| Removal {
            id: i as i64,
            source: "s".into(),
            username: format!("u{i}"),
            kind: RemovalKind::Delete,
        };
        let plan = Plan {
            removals: (0..150).map(removal).collect(),
            updates: vec![UserUpdate {
                id: 1,
                source: "s".into(),
                username: "bob".into(),
                rename_to: Some("rob".into()),
                relink_to: None,
                relink_from: None,
                enable: false,
                disable: false,
                changes: vec![crate::engine::plan::FieldChange {
                    field: "full_name".into(),
                    old: Some("Bob".into()),
                    new: Some("Rob".into()),
                }],
                dir_changes: vec![],
            }],
            ..Plan::default()
        };
        let s = PlanSummary::of(&plan);
        assert_eq!((s.removals.total, s.removals.first.len()), (150, FIRST));
        assert_eq!(s.removals.first[0], ("u0".to_string(), "delete".to_string()));
        assert_eq!(s.updates.first[0].changes, [("full_name".into(), Some("Bob".into()), Some("Rob".into()))]);
        let back: PlanSummary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(s.cut(), "150 removals, 100 listed");
        let all = PlanSummary::first(&plan, usize::MAX);
        assert!(!all.cut() && all.removals.first.len() == 150, "every change listed");
    }
}
