//! The plan's removal step: users gone from their source are disabled or
//! deleted (`[safety] on_missing`), unless an entry updates them or a
//! skipped entry could be them; and each source's summary, which the guards
//! judge.

use rustc_hash::FxHashSet as HashSet;

use super::users::Inputs;
use super::{Plan, Removal, RemovalKind, SourceSummary};
use crate::config::OnMissing;
use crate::model::{SourceBatch, Status};

impl Inputs<'_> {
    /// Step 5: the removals of every primary source and every source's
    /// summary. `live`: stored records an entry updates. Returns the ids of
    /// users deleted (their memberships go with them).
    pub(super) fn removals(&self, live: &[bool], plan: &mut Plan) -> HashSet<i64> {
        let mut removed = HashSet::default();
        for (bi, b) in self.batches.iter().enumerate() {
            if self.is_enrich(b) {
                plan.sources.push(SourceSummary {
                    source: b.source.clone(),
                    users_returned: b.user_entries,
                    users_usable: b.users.len(),
                    ..Default::default()
                });
                continue;
            }
            let summary = self.removals_of(bi, b, live, &mut removed, plan);
            plan.sources.push(summary);
        }
        removed
    }

    /// One primary source's removals, and its summary.
    fn removals_of(
        &self,
        bi: usize,
        b: &SourceBatch,
        live: &[bool],
        removed: &mut HashSet<i64>,
        plan: &mut Plan,
    ) -> SourceSummary {
        let snap = self.snap;
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
            let missing = match &self.gone[bi].0 {
                Some(deleted) => deleted.contains(&*s.external_id),
                None => !b.saw_user(&s.external_id),
            };
            // A skipped entry protects the user it could be (same identity,
            // DN or username): a skipped entry is never a missing one.
            if !missing || live[i] || b.protects(s) {
                continue;
            }
            let kind = match (self.cfg.safety.with(&self.source_cfg(&b.source).safety).on_missing, s.status) {
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
        summary
    }
}
