//! Approval of a blocked run: what a blocked run planned to remove (recorded
//! with it), and the check that an approved run removes nobody else.

use crate::engine::guards;
use crate::engine::plan::Plan;

/// What an admin approved: the removals a blocked run planned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    /// The blocked run.
    pub run_id: i64,
    pub users: std::collections::HashSet<i64>,
    pub groups: std::collections::HashSet<i64>,
}

/// The removals of a plan, as a blocked run records them.
pub(super) fn planned_removals(plan: &Plan) -> Vec<crate::store::PlannedRemoval> {
    let users = plan.removals.iter().map(|r| crate::store::PlannedRemoval {
        kind: "user".into(),
        target_id: r.id,
        name: r.username.clone(),
        action: match r.kind {
            crate::engine::plan::RemovalKind::Disable => "disable".into(),
            crate::engine::plan::RemovalKind::Delete => "delete".into(),
        },
    });
    let groups = plan.group_deletes.iter().map(|g| crate::store::PlannedRemoval {
        kind: "group".into(),
        target_id: g.id,
        name: g.name.clone(),
        action: "delete".into(),
    });
    users.chain(groups).collect()
}

/// A block when the plan removes anybody the approved run did not plan.
pub(super) fn check(a: &Approval, plan: &Plan) -> Option<guards::Block> {
    let new: Vec<String> = plan
        .removals
        .iter()
        .filter(|r| !a.users.contains(&r.id))
        .map(|r| format!("user {}", r.username))
        .chain(plan.group_deletes.iter().filter(|g| !a.groups.contains(&g.id)).map(|g| format!("group {}", g.name)))
        .collect();
    if !new.is_empty() {
        let shown = new.iter().take(20).cloned().collect::<Vec<_>>().join(", ");
        let more = if new.len() > 20 { format!(" and {} more", new.len() - 20) } else { String::new() };
        return Some(guards::Block {
            source: None,
            reason: format!(
                "not approved: {} removal(s) that run {} did not plan: {shown}{more} (review this run and approve it instead)",
                new.len(),
                a.run_id
            ),
            forceable: false,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::{GroupRemoval, Removal, RemovalKind};

    #[test]
    fn an_approval_covers_its_removals_and_names_any_other() {
        let removal =
            |id, name: &str| Removal { id, source: "s".into(), username: name.into(), kind: RemovalKind::Disable };
        let plan = Plan {
            removals: vec![removal(1, "bob"), removal(2, "carol")],
            group_deletes: vec![GroupRemoval { id: 7, name: "Old".into() }],
            ..Plan::default()
        };
        let mut a = Approval { run_id: 9, ..Approval::default() };
        a.users.extend([1, 2]);
        a.groups.insert(7);
        assert!(check(&a, &plan).is_none(), "the same removals: approved");
        a.users.remove(&2);
        a.groups.clear();
        let b = check(&a, &plan).expect("blocked");
        assert!(!b.forceable);
        assert!(b.reason.contains("2 removal(s) that run 9 did not plan: user carol, group Old"), "{}", b.reason);
        let recorded = planned_removals(&plan);
        assert_eq!(
            recorded.iter().map(|r| (r.kind.as_str(), r.target_id)).collect::<Vec<_>>(),
            [("user", 1), ("user", 2), ("group", 7)]
        );
    }
}
