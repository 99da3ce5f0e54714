//! Guards: the checks between a plan and its apply. A source that returned no
//! users, or whose read (a delta too) would leave it with no active user,
//! never removes anybody (this cannot be forced); a plan that would
//! disable or delete more than `max_delete_percent` of a source's users, or
//! more than `max_delete_count` in all, is blocked unless forced. Each
//! block names the source it holds back (`None`: the whole run); the sync
//! leaves such a source out and applies the others (a `partial` run).

use serde::Serialize;

use crate::config::{Config, Safety};
use crate::engine::plan::Plan;

/// Why a plan was blocked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    pub reason: String,
    /// Whether `--force` lifts it.
    pub forceable: bool,
    /// The source it holds back (`None`: the whole run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Checks a plan against `[safety]` (each source with what its
/// `[sources.safety]` sets over it); returns every reason to block it
/// (empty: go ahead).
pub fn check(plan: &Plan, cfg: &Config, force: bool) -> Vec<Block> {
    let of = |name: &str| match cfg.sources.iter().find(|s| s.name == name) {
        Some(s) => cfg.safety.with(&s.safety),
        None => cfg.safety.clone(),
    };
    check_with(plan, &cfg.safety, &of, force)
}

/// [`check`] with the run's `[safety]` and each source's own.
pub fn check_with(plan: &Plan, safety: &Safety, of: &dyn Fn(&str) -> Safety, force: bool) -> Vec<Block> {
    let mut blocks = Vec::new();
    for s in &plan.sources {
        let own = of(&s.source);
        // A delta with no entries is normal (nothing changed); its deletions
        // are explicit and meet the thresholds below.
        if !s.incremental && s.users_usable == 0 && s.removals > 0 {
            let what = if s.users_returned == 0 {
                "returned no users".to_string()
            } else {
                format!("returned no usable users ({} entries, all skipped)", s.users_returned)
            };
            blocks.push(Block {
                source: Some(s.source.clone()),
                reason: format!(
                    "source \"{}\" {what}; refusing to disable or delete its {} user(s) (a source that returns nothing never removes anybody, even with --force)",
                    s.source, s.removals
                ),
                forceable: false,
            });
            continue;
        }
        // The same for a delta that brings nothing usable and would leave the
        // source with no active user: an emptied directory is an empty source,
        // whether it is read in full or incrementally.
        if s.incremental && s.users_usable == 0 && s.active_before > 0 && s.active_after == 0 && s.removals > 0 {
            blocks.push(Block {
                source: Some(s.source.clone()),
                reason: format!(
                    "source \"{}\": an incremental read would disable or delete all {} of its active users, leaving none; refusing (a source that returns nothing never removes anybody, even with --force; check the directory, then use on_missing = \"keep\" or remove the source if this is intended)",
                    s.source, s.active_before
                ),
                forceable: false,
            });
            continue;
        }
        if !s.incremental && s.groups_returned == 0 && s.group_deletes > 0 {
            blocks.push(Block {
                source: Some(s.source.clone()),
                reason: format!(
                    "source \"{}\" returned no groups; refusing to delete its {} group(s) (check group_filter; --force allows it)",
                    s.source, s.group_deletes
                ),
                forceable: true,
            });
        }
        if s.active_before > 0 && s.removals > 0 {
            let pct = 100.0 * s.removals as f64 / s.active_before as f64;
            if pct > own.max_delete_percent {
                blocks.push(Block {
                source: Some(s.source.clone()),
                    reason: format!(
                        "source \"{}\": {} of {} users ({pct:.1}%) would be disabled or deleted, above max_delete_percent = {}",
                        s.source, s.removals, s.active_before, own.max_delete_percent
                    ),
                    forceable: true,
                });
            }
        }
        if own.max_delete_count < safety.max_delete_count && s.removals as u64 > own.max_delete_count {
            blocks.push(Block {
                source: Some(s.source.clone()),
                reason: format!(
                    "source \"{}\": {} users would be disabled or deleted, above its max_delete_count = {}",
                    s.source, s.removals, own.max_delete_count
                ),
                forceable: true,
            });
        }
    }
    let total = plan.removals.len() as u64;
    if total > safety.max_delete_count {
        blocks.push(Block {
            source: None,
            reason: format!(
                "{total} users would be disabled or deleted, above max_delete_count = {}",
                safety.max_delete_count
            ),
            forceable: true,
        });
    }
    if force {
        blocks.retain(|b| !b.forceable);
    }
    blocks
}

/// What a live source removed within the last hour, before this run.
#[derive(Debug, Clone, Copy, Default)]
pub struct HourWindow {
    pub removed: u64,
    pub active: u64,
}

/// The hourly guard of live runs: removals by this source's live runs
/// within the hour plus this run's, against its thresholds over the active
/// users it had when the hour began. Lifted by `force` (an approval).
pub fn check_live(
    plan: &Plan,
    cfg: &Config,
    windows: &std::collections::HashMap<String, HourWindow>,
    force: bool,
) -> Vec<Block> {
    let mut blocks = Vec::new();
    for s in plan.sources.iter().filter(|s| s.removals > 0 && !force) {
        let (Some(w), Some(own)) = (windows.get(&s.source), cfg.sources.iter().find(|c| c.name == s.source)) else {
            continue;
        };
        let safety = cfg.safety.with(&own.safety);
        let base = w.active + w.removed;
        let limit = ((base as f64 * safety.max_delete_percent / 100.0).floor() as u64).min(safety.max_delete_count);
        if w.removed + s.removals as u64 <= limit {
            continue;
        }
        blocks.push(Block {
            source: Some(s.source.clone()),
            reason: format!(
                "source \"{}\": {} user(s) disabled or deleted by live runs within the last hour, and this run would remove {} more, above max_delete_percent = {} of {base} active users or max_delete_count = {}; live changes wait (scheduled runs go on) until an admin approves this run",
                s.source, w.removed, s.removals, safety.max_delete_percent, safety.max_delete_count
            ),
            forceable: true,
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::{Removal, RemovalKind, SourceSummary};

    fn plan(returned: usize, before: usize, removals: usize) -> Plan {
        Plan {
            removals: (0..removals)
                .map(|i| Removal {
                    id: i as i64,
                    source: "s".into(),
                    username: format!("u{i}"),
                    kind: RemovalKind::Disable,
                })
                .collect(),
            sources: vec![SourceSummary {
                source: "s".into(),
                users_returned: returned,
                users_usable: returned,
                groups_returned: 1,
                active_before: before,
                active_after: before.saturating_sub(removals),
                removals,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn empty_source_never_removes_even_forced() {
        let b = check_with(&plan(0, 10, 10), &Safety::default(), &|_| Safety::default(), true);
        assert_eq!(b.len(), 1);
        assert!(!b[0].forceable);
        assert!(check_with(&plan(0, 0, 0), &Safety::default(), &|_| Safety::default(), false).is_empty());
    }

    #[test]
    fn a_source_whose_entries_are_all_skipped_counts_as_empty() {
        let mut p = plan(10, 10, 10);
        p.sources[0].users_usable = 0;
        let b = check_with(&p, &Safety::default(), &|_| Safety::default(), true);
        assert_eq!(b.len(), 1);
        assert!(!b[0].forceable);
        assert!(b[0].reason.contains("no usable users (10 entries, all skipped)"), "{}", b[0].reason);
    }

    #[test]
    fn a_delta_that_empties_the_source_is_the_empty_source_case_even_forced() {
        let mut p = plan(0, 1000, 1000);
        p.sources[0].incremental = true;
        p.sources[0].active_after = 0;
        let b = check_with(&p, &Safety::default(), &|_| Safety::default(), true);
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(!b[0].forceable && b[0].reason.contains("leaving none"), "{b:?}");
        // One user left: the thresholds apply, and --force lifts them.
        p.sources[0].active_after = 1;
        assert!(check_with(&p, &Safety::default(), &|_| Safety::default(), true).is_empty());
        assert!(!check_with(&p, &Safety::default(), &|_| Safety::default(), false).is_empty());
    }

    #[test]
    fn deltas_meet_the_thresholds_but_not_the_empty_rule() {
        let mut p = plan(0, 10, 1);
        p.sources[0].incremental = true;
        assert!(
            check_with(&p, &Safety::default(), &|_| Safety::default(), false).is_empty(),
            "one deletion in ten, nothing else changed"
        );
        let mut p = plan(0, 10, 6);
        p.sources[0].incremental = true;
        let b = check_with(&p, &Safety::default(), &|_| Safety::default(), false);
        assert_eq!(b.len(), 1);
        assert!(b[0].forceable && b[0].reason.contains("60.0%"), "{b:?}");
    }

    #[test]
    fn percent_and_count_thresholds_block_unless_forced() {
        let safety = Safety { max_delete_percent: 20.0, max_delete_count: 3, ..Safety::default() };
        assert!(check_with(&plan(8, 10, 2), &safety, &|_| safety.clone(), false).is_empty());
        let b = check_with(&plan(7, 10, 3), &safety, &|_| safety.clone(), false);
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(b[0].reason.contains("30.0%"));
        let b = check_with(&plan(96, 100, 4), &safety, &|_| safety.clone(), false);
        assert!(b[0].reason.contains("max_delete_count = 3"), "{b:?}");
        assert!(check_with(&plan(7, 10, 3), &safety, &|_| safety.clone(), true).is_empty());
    }

    #[test]
    fn a_sources_own_safety_is_held_to_its_own_thresholds() {
        let global = Safety::default();
        let strict = Safety { max_delete_percent: 5.0, max_delete_count: 2, ..Safety::default() };
        // 3 of 100 is under the global 20% and 500, over the source's 5%? no: 3% < 5%, but 3 > 2.
        let b = check_with(&plan(97, 100, 3), &global, &|_| strict.clone(), false);
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(b[0].reason.contains("its max_delete_count = 2") && b[0].forceable, "{}", b[0].reason);
        let b = check_with(&plan(90, 100, 10), &global, &|_| Safety { max_delete_count: 500, ..strict.clone() }, false);
        assert!(b.iter().any(|b| b.reason.contains("above max_delete_percent = 5")), "{b:?}");
        assert!(check_with(&plan(90, 100, 10), &global, &|_| global.clone(), false).is_empty());
    }
}
