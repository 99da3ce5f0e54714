//! History: the record of a run (when, which sources, status, counts, the
//! entries it skipped and why) and of every change to a user (the audit
//! trail). Failed and blocked runs are recorded too; dry runs are not, since
//! they change nothing.

use crate::time::Timestamp;

use crate::engine::plan::{Plan, RemovalKind};
pub use crate::model::records::{AuditRecord, Counts, RunMode, RunRecord, RunSources, RunStatus};
use crate::model::SourceBatch;

/// What a plan counts as a run's changes (and the entries its batches skipped).
pub fn counts_of(plan: &Plan, batches: &[SourceBatch]) -> Counts {
    Counts {
        created: plan.creates.len() as u64,
        updated: plan.updated() as u64,
        renamed: plan.renamed() as u64,
        disabled: (plan.count(RemovalKind::Disable) + plan.disabled_in_source()) as u64,
        deleted: plan.count(RemovalKind::Delete) as u64,
        unchanged: plan.unchanged as u64,
        skipped: (plan.errors.len() + batches.iter().map(|b| b.user_entries - b.users.len()).sum::<usize>()) as u64,
        groups_created: plan.group_creates.len() as u64,
        groups_updated: plan.group_updates.len() as u64,
        groups_deleted: plan.group_deletes.len() as u64,
        memberships_added: plan.member_adds.len() as u64,
        memberships_removed: plan.member_removes.len() as u64,
        ..Counts::default()
    }
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now() -> Timestamp {
    Timestamp::now()
}
