//! Approval of a blocked run: what a blocked run planned to remove (recorded
//! with it), what approving it asks for ([`approval_of`]), and the check that
//! an approved run removes nobody else.

use crate::config::Config;
use crate::engine::guards;
use crate::engine::history::{RunMode, RunStatus};
use crate::engine::plan::Plan;
use crate::store::{on_store, PlannedRemoval, RemovalAction, RemovalTarget, Store};

/// What an admin approved: the removals a blocked run planned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    /// The blocked run.
    pub run_id: i64,
    pub users: std::collections::HashSet<i64>,
    pub groups: std::collections::HashSet<i64>,
}

/// Why a run cannot be approved.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("no run {0}")]
    NoRun(i64),
    #[error("run {id} is {status}, not blocked: there is nothing to approve")]
    NotBlocked { id: i64, status: &'static str },
    #[error("run {id} read source \"{name}\", which is no longer configured")]
    SourceGone { id: i64, name: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What approving a blocked run asks for: the same sources read the same
/// way, with the thresholds lifted for exactly the removals it planned.
#[derive(Debug)]
pub struct Approved {
    pub approval: Approval,
    pub sources: Vec<String>,
    /// Read in full (as the blocked run was).
    pub full: bool,
    /// What the blocked run planned to remove.
    pub removals: Vec<PlannedRemoval>,
}

/// The approval of blocked run `id` (the API's and the admin page's): the
/// run must be blocked, and every source it read still configured.
pub async fn approval_of(cfg: &Config, store: &dyn Store, id: i64) -> Result<Approved, ApproveError> {
    let found = on_store(store, move |s| -> Result<_, crate::store::StoreError> {
        let run = s.run_by_id(id)?;
        Ok(match run {
            None => None,
            Some(r) => Some((r, s.removals_of(id)?)),
        })
    })
    .await?;
    let (run, removals) = found.ok_or(ApproveError::NoRun(id))?;
    if run.status != RunStatus::Blocked {
        return Err(ApproveError::NotBlocked { id, status: run.status.as_str() });
    }
    let mut approval = Approval { run_id: id, ..Default::default() };
    for r in &removals {
        match r.kind {
            RemovalTarget::User => approval.users.insert(r.target_id),
            RemovalTarget::Group => approval.groups.insert(r.target_id),
        };
    }
    let sources = run.sources.names().to_vec();
    if let Some(n) = sources.iter().find(|n| !cfg.sources.iter().any(|s| &s.name == *n)) {
        return Err(ApproveError::SourceGone { id, name: n.clone() });
    }
    Ok(Approved { approval, sources, full: run.mode == RunMode::Full, removals })
}

/// The removals of a plan, as a blocked run records them.
pub(super) fn planned_removals(plan: &Plan) -> Vec<crate::store::PlannedRemoval> {
    let users = plan.removals.iter().map(|r| crate::store::PlannedRemoval {
        kind: RemovalTarget::User,
        target_id: r.id,
        name: r.username.clone(),
        action: match r.kind {
            crate::engine::plan::RemovalKind::Disable => RemovalAction::Disable,
            crate::engine::plan::RemovalKind::Delete => RemovalAction::Delete,
        },
    });
    let groups = plan.group_deletes.iter().map(|g| crate::store::PlannedRemoval {
        kind: RemovalTarget::Group,
        target_id: g.id,
        name: g.name.clone(),
        action: RemovalAction::Delete,
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
