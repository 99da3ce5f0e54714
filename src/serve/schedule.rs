//! The scheduler of `dirsync serve`: for each source, the next full and
//! incremental slot of its cron patterns (local time, so a nightly run stays
//! at 00:55 across daylight-saving changes); at each slot a run is queued
//! through the [`Runner`] (coalesced with an equal one). A source whose last
//! run failed is retried with backoff (1, 2, 4 … minutes, at most an hour)
//! before its next slot.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Local};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::serve::runner::{ConfigHandle, RunRequest, Runner, Trigger};
use crate::time::Timestamp;

/// How long after the `n`th failure in a row a source is retried.
pub fn retry_backoff(failures: u32) -> Duration {
    let minutes = 1u64 << failures.saturating_sub(1).min(6);
    Duration::from_secs(minutes.min(60) * 60)
}

/// One thing due at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub source: String,
    pub full: bool,
    pub trigger: Trigger,
    /// The slot on the cron grid (the same on every instance).
    pub slot: Timestamp,
}

/// What is due in `(after, now]` by the config's patterns, and the next
/// time anything will be (by pattern; retries are computed by the caller).
pub fn due_between(
    cfg: &crate::config::Config,
    after: DateTime<Local>,
    now: DateTime<Local>,
) -> (Vec<Due>, Option<DateTime<Local>>) {
    let mut due = Vec::new();
    let mut next: Option<DateTime<Local>> = None;
    for s in cfg.sources.iter().filter(|s| !s.is_pushed()) {
        let incremental_ok = s.kind.capabilities().incremental && s.incremental.enabled;
        for (pattern, full) in [(&s.schedule.full, true), (&s.schedule.incremental, false)] {
            let Some(p) = pattern else { continue };
            if !full && !incremental_ok {
                continue;
            }
            if let Some(t) = p.next_after(after) {
                if t <= now {
                    let slot = Timestamp::from(t.with_timezone(&chrono::Utc));
                    due.push(Due { source: s.name.clone(), full, trigger: Trigger::Schedule, slot });
                }
            }
            if let Some(t) = p.next_after(now) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
    }
    // A full read covers an incremental one of the same source.
    let fulls: Vec<String> = due.iter().filter(|d| d.full).map(|d| d.source.clone()).collect();
    due.retain(|d| d.full || !fulls.contains(&d.source));
    (due, next)
}

/// Runs the schedule until `stop` turns true. `reload` ticks when the
/// config was replaced (the next slots are computed again).
pub async fn drive(
    runner: Runner,
    cfg: ConfigHandle,
    mut reload: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor = Local::now();
    // Per source: the failed run a retry was already queued for.
    let mut retried: BTreeMap<String, Timestamp> = BTreeMap::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Local::now();
        let config = cfg.read().expect("config lock").clone();
        let (due, next) = due_between(&config, cursor, now);
        cursor = now;
        for d in due {
            let req = RunRequest { slot: Some(d.slot), ..RunRequest::new(vec![d.source.clone()], d.full, d.trigger) };
            if let Err(e) = runner.submit(req).await {
                warn!(source = %d.source, "a scheduled run could not be queued: {e}");
            }
        }
        // Retries of failed sources, before their next slot.
        let mut wake = next.map(|t| (t - now).to_std().unwrap_or_default()).unwrap_or(Duration::from_secs(3600));
        let at = Timestamp::now();
        for (source, h) in runner.health() {
            let Some(last) = h.last_run_at.filter(|_| h.failures > 0) else { continue };
            if retried.get(&source) == Some(&last) || !config.sources.iter().any(|s| s.name == source) {
                continue;
            }
            let retry_at = last.plus(retry_backoff(h.failures));
            if retry_at <= at {
                retried.insert(source.clone(), last);
                let req = RunRequest::new(vec![source.clone()], false, Trigger::Retry);
                if let Err(e) = runner.submit(req).await {
                    warn!(%source, "a retry could not be queued: {e}");
                }
            } else {
                wake = wake.min(retry_at.since(at));
            }
        }
        // Wake at the next slot, a minute at most (a retry may become due;
        // the clock may jump).
        let wake = wake.clamp(Duration::from_millis(50), Duration::from_secs(60));
        debug!(secs = wake.as_secs_f64(), "scheduler sleeping");
        tokio::select! {
            _ = tokio::time::sleep(wake) => {}
            _ = reload.changed() => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cfg(extra: &str) -> crate::config::Config {
        let text = format!(
            "[schedule]\nfull = \"55 0 * * *\"\nincremental = \"*/15 * * * *\"\n[[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://h\"\nbase_dn = \"dc=x\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n[[sources]]\nname = \"file\"\ntype = \"ldif\"\npath = \"x.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n{extra}"
        );
        crate::config::Config::parse(&text, std::path::Path::new("/c.toml")).unwrap()
    }

    fn local(h: u32, m: u32, s: u32) -> DateTime<Local> {
        Local.with_ymd_and_hms(2026, 3, 10, h, m, s).single().unwrap()
    }

    #[test]
    fn slots_fire_once_and_a_full_read_covers_the_incremental_one() {
        let c = cfg("");
        let (due, next) = due_between(&c, local(0, 50, 0), local(0, 55, 0));
        // corp: full at 00:55 (its incremental slot at 01:00 is not yet due);
        // file (LDIF) has no incremental reads, so only its full read.
        let mut got: Vec<(String, bool)> = due.iter().map(|d| (d.source.clone(), d.full)).collect();
        got.sort();
        assert_eq!(got, [("corp".to_string(), true), ("file".to_string(), true)]);
        assert_eq!(next, Some(local(1, 0, 0)));
        // Evaluated again right after: nothing fires twice.
        assert!(due_between(&c, local(0, 55, 0), local(0, 55, 1)).0.is_empty());
        // 00:59 → 01:00: corp's incremental slot.
        let (due, _) = due_between(&c, local(0, 59, 0), local(1, 0, 0));
        let slot = Timestamp::from(local(1, 0, 0).with_timezone(&chrono::Utc));
        assert_eq!(due, [Due { source: "corp".into(), full: false, trigger: Trigger::Schedule, slot }]);
    }

    #[test]
    fn an_empty_pattern_turns_a_slot_off_per_source() {
        let c = cfg("[sources.schedule]\nfull = \"\"\n");
        let (due, _) = due_between(&c, local(0, 50, 0), local(0, 55, 0));
        assert_eq!(due.iter().map(|d| d.source.as_str()).collect::<Vec<_>>(), ["corp"]);
    }

    #[test]
    fn retries_back_off_up_to_an_hour() {
        assert_eq!(retry_backoff(1), Duration::from_secs(60));
        assert_eq!(retry_backoff(3), Duration::from_secs(240));
        assert_eq!(retry_backoff(30), Duration::from_secs(3600));
    }
}
