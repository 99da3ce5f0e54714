//! Write-back: application-owned fields (`owner = "app"`) are pushed to the
//! directory. A local change (`users set`, a generated code) and its queue
//! item are written in one transaction, so nothing is lost between the
//! change and the push. A push reads the directory's current value first:
//! equal means done (idempotent, no write); changed since the local change
//! and different from both local values means a conflict, resolved by
//! `on_conflict`; otherwise a write. Every item ends with its own outcome; a
//! refused write is retried later with backoff, and the message says what to
//! fix. Reading and writing go through a [`transport::Transport`] per source
//! kind (LDAP's is `sources::ldap::writeback`); the queue logic is here.

pub(crate) mod local;

pub use local::{set_field, set_fields, settable};

use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::kind::transport::{self, Transport};
use futures_util::StreamExt;
use serde::Serialize;

use crate::config::{Config, OnConflict, SourceConfig};
use crate::engine::codes::CodeError;
use crate::engine::history::now;
use crate::model::EntryError;
use crate::store::{on_store, PushOutcome, QueueStatus, Store, StoreError, WritebackItem};

#[derive(Debug, thiserror::Error)]
pub enum WritebackError {
    #[error("no user named \"{0}\"")]
    NoUser(String),
    #[error("{0}")]
    Refused(String),
    /// A value the field does not take: nothing of the change was set.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NoItem(String),
    /// A sync or another push holds the store's lease: nothing was pushed.
    #[error("a sync or push is running; try again in a moment")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Code(#[from] CodeError),
}

/// What `users set` assigns.
pub enum SetValue {
    Value(String),
    Clear,
    /// A value from the field's `[codes]` entry.
    Generate,
}

#[derive(Debug, Serialize)]
pub struct SetOutcome {
    pub username: String,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// Queued for write-back to this attribute.
    pub queued_for: Option<String>,
}

/// What one push did.
#[derive(Debug, Default, Serialize)]
pub struct PushReport {
    /// Written to the directory.
    pub pushed: u64,
    /// Already in the directory: nothing written.
    pub already: u64,
    pub failed: u64,
    pub conflicts: u64,
    /// Waiting for their backoff to pass.
    pub deferred: u64,
    /// One per failed or conflicting item: the entry and what to do.
    pub errors: Vec<EntryError>,
}

/// Backoff after `attempts` failures: 1, 2, 4 … minutes, at most 6 hours.
pub fn backoff(attempts: i64) -> Duration {
    let minutes = 1u64 << attempts.clamp(0, 9);
    Duration::from_secs((minutes * 60).min(6 * 3600))
}

/// Pushes the queue: pending items, and failed ones whose backoff has passed
/// (all failed ones with `retry_now`).
pub async fn push(cfg: &Config, store: &dyn Store, retry_now: bool) -> Result<PushReport, WritebackError> {
    let mut report = PushReport::default();
    let items = on_store(store, |s| s.writeback_items(&[QueueStatus::Pending, QueueStatus::Failed])).await?;
    let at = now();
    let mut by_source: BTreeMap<&str, Vec<&WritebackItem>> = BTreeMap::new();
    for item in &items {
        let due = retry_now || item.status == QueueStatus::Pending || item.next_attempt_at.is_none_or(|t| t <= at);
        if due {
            by_source.entry(&item.source).or_default().push(item);
        } else {
            report.deferred += 1;
        }
    }
    for (source, items) in by_source {
        let Some(scfg) = cfg.sources.iter().find(|s| s.name == source && s.writeback.is_some()) else {
            report.deferred += items.len() as u64; // write-back is off for this source now
            continue;
        };
        let policy = scfg.writeback.as_ref().expect("write-back source").on_conflict;
        push_source(scfg, store, &items, &mut report, policy).await?;
    }
    Ok(report)
}

/// Pushes the queue outside a sync (`POST /api/writeback/push`, the admin
/// page): with the store's lease, so one writer reaches the directory at a
/// time ([`WritebackError::Busy`] while a sync or push holds it).
pub async fn push_now(cfg: &Config, store: &dyn Store, retry_now: bool) -> Result<PushReport, WritebackError> {
    let _lease = lease(store).await?;
    push(cfg, store, retry_now).await
}

/// The store's lease for write-back outside a sync.
async fn lease(store: &dyn Store) -> Result<Box<dyn crate::store::Lease>, WritebackError> {
    on_store(store, |s| s.lease()).await.map_err(|e| match e {
        StoreError::Locked(_) => WritebackError::Busy,
        other => other.into(),
    })
}

/// What `keep` says in a conflict's resolution: `"app"` or `"directory"`;
/// `Err` is the message for the caller.
pub fn keep_of(keep: &str) -> Result<OnConflict, String> {
    match keep {
        "app" => Ok(OnConflict::App),
        "directory" => Ok(OnConflict::Directory),
        other => Err(format!("keep: expected \"app\" or \"directory\", got \"{other}\"")),
    }
}

/// Resolves a reported conflict (`writeback resolve`, `POST
/// /api/writeback/{id}/resolve`): [`OnConflict::App`] writes the
/// application's value over the directory's; [`OnConflict::Directory`]
/// takes the directory's current value locally (audited). Either way the
/// directory is read again first: if it now holds the application's value,
/// the item is simply done. It holds the store's lease while it works.
/// The answer says whether the item left the conflicts, and what the push did.
pub async fn resolve(
    cfg: &Config,
    store: &dyn Store,
    id: i64,
    keep: OnConflict,
) -> Result<(bool, PushReport), WritebackError> {
    let _lease = lease(store).await?;
    let items = on_store(store, |s| s.writeback_items(&[QueueStatus::Conflict])).await?;
    let item = items.iter().find(|i| i.id == id).ok_or_else(|| {
        WritebackError::NoItem(format!("no write-back conflict with id {id} (`dirsync writeback status` lists them)"))
    })?;
    let scfg = cfg.sources.iter().find(|s| s.name == item.source && s.writeback.is_some()).ok_or_else(|| {
        WritebackError::Refused(format!("source \"{}\" has no write-back configured now", item.source))
    })?;
    let mut report = PushReport::default();
    push_source(scfg, store, &[item], &mut report, keep).await?;
    let left = on_store(store, |s| s.writeback_items(&[QueueStatus::Conflict, QueueStatus::Failed])).await?;
    Ok((!left.iter().any(|i| i.id == id), report))
}

/// `writeback push` on its own: a push recorded as a run (mode
/// `writeback`) with its counts and per-item errors, under the store's lease.
pub async fn push_as_run(
    cfg: &Config,
    store: &dyn Store,
    origin: &crate::model::records::RunOrigin,
) -> Result<(i64, PushReport), WritebackError> {
    let _lease = lease(store).await?;
    let started = now();
    let sources = crate::engine::history::RunSources::new(
        cfg.sources.iter().filter(|s| s.writeback.is_some()).map(|s| s.name.as_str()),
    );
    let (names, at, o) = (sources.clone(), started, origin.clone());
    let run_id = on_store(store, move |s| s.start_run(&names, at, false, &o)).await?;
    let result = push(cfg, store, true).await;
    let (status, message, errors) = match &result {
        Ok(r) => (crate::engine::history::RunStatus::Ok, None, r.errors.clone()),
        Err(e) => (crate::engine::history::RunStatus::Failed, Some(e.to_string()), vec![]),
    };
    let record = crate::engine::history::RunRecord {
        id: run_id,
        started_at: started,
        finished_at: Some(now()),
        sources,
        status,
        forced: false,
        counts: Default::default(),
        errors,
        warnings: vec![],
        message,
        mode: crate::engine::history::RunMode::Writeback,
        origin: origin.clone(),
    };
    on_store(store, move |s| s.transaction(&mut |tx| tx.finish_run(&record))).await?;
    let report = result?;
    let counts = [report.pushed, report.failed, report.conflicts];
    on_store(store, move |s| s.record_push(run_id, counts, &[])).await?;
    Ok((run_id, report))
}

async fn push_source(
    scfg: &SourceConfig,
    store: &dyn Store,
    items: &[&WritebackItem],
    report: &mut PushReport,
    policy: OnConflict,
) -> Result<(), WritebackError> {
    let transport = match transport::open(scfg).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            // Refused at config load; an old queue item of such a source waits, said.
            report.deferred += items.len() as u64;
            report.errors.extend(items.iter().map(|i| {
                EntryError::new(&i.dn, format!("write-back of {}: source {} cannot be written to", i.field, scfg.name))
            }));
            return Ok(());
        }
        Err(e) => {
            // Nothing reached the directory: every item waits for the next try.
            let outcomes: Vec<_> = items.iter().map(|item| (*item, failed(item, None, e.message.clone()))).collect();
            return record(store, outcomes, report).await.map_err(Into::into);
        }
    };
    let in_flight = scfg.writeback.as_ref().map_or(1, |w| w.in_flight);
    push_items(transport.as_ref(), store, items, report, policy, in_flight).await?;
    transport.close().await;
    Ok(())
}

/// Pushes `items` through `t` with up to `in_flight` of them at once, each
/// read, compared and written in order; outcomes come back in queue order.
/// They are recorded in batches: a write whose outcome a crash loses is
/// found "already there" by the next push, so nothing is written twice.
async fn push_items(
    t: &dyn Transport,
    store: &dyn Store,
    items: &[&WritebackItem],
    report: &mut PushReport,
    policy: OnConflict,
    in_flight: usize,
) -> Result<(), StoreError> {
    let mut pushes = futures_util::stream::FuturesOrdered::new();
    let mut queue = items.iter().copied();
    let mut outcomes = Vec::with_capacity(RECORD_BATCH);
    loop {
        while pushes.len() < in_flight.max(1) {
            let Some(item) = queue.next() else { break };
            pushes.push_back(push_tagged(t, item, policy));
        }
        let Some((item, (outcome, wrote))) = pushes.next().await else { break };
        if matches!(outcome, PushOutcome::Done) {
            if wrote {
                report.pushed += 1;
            } else {
                report.already += 1;
            }
        }
        outcomes.push((item, outcome));
        if outcomes.len() >= RECORD_BATCH {
            record(store, std::mem::take(&mut outcomes), report).await?;
        }
    }
    record(store, outcomes, report).await
}

/// How many push outcomes one store transaction records.
const RECORD_BATCH: usize = 500;

fn failed(item: &WritebackItem, code: Option<u32>, error: String) -> PushOutcome {
    PushOutcome::Failed { code, error, retry_at: now().plus(backoff(item.attempts)) }
}

/// Counts the outcomes and records them in one store transaction, on a
/// blocking thread.
async fn record(
    store: &dyn Store,
    outcomes: Vec<(&WritebackItem, PushOutcome)>,
    report: &mut PushReport,
) -> Result<(), StoreError> {
    let mut items = Vec::with_capacity(outcomes.len());
    let mut results = Vec::with_capacity(outcomes.len());
    for (item, outcome) in outcomes {
        note(item, &outcome, report);
        items.push(item.clone());
        results.push(outcome);
    }
    on_store(store, move |s| {
        let done: Vec<(&WritebackItem, PushOutcome)> = items.iter().zip(results).collect();
        s.finish_writebacks(&done, now())
    })
    .await
}

/// Counts an outcome and, for failures and conflicts, says why.
fn note(item: &WritebackItem, outcome: &PushOutcome, report: &mut PushReport) {
    match outcome {
        PushOutcome::Done => {}
        PushOutcome::TookDirectory { value } => {
            report.conflicts += 1;
            let v = value.as_deref().unwrap_or("(none)");
            report.errors.push(EntryError::new(
                &item.dn,
                format!("write-back of {}: conflict resolved by taking the directory's value \"{v}\" (on_conflict = \"directory\")", item.field),
            ));
        }
        PushOutcome::Failed { error, .. } => {
            report.failed += 1;
            report.errors.push(EntryError::new(&item.dn, format!("write-back of {}: {error}", item.field)));
        }
        PushOutcome::Conflict { error } => {
            report.conflicts += 1;
            report.errors.push(EntryError::new(&item.dn, format!("write-back of {}: {error}", item.field)));
        }
    }
}

/// [`push_one`], with the item it pushed.
async fn push_tagged<'a>(
    t: &'a dyn Transport,
    item: &'a WritebackItem,
    policy: OnConflict,
) -> (&'a WritebackItem, (PushOutcome, bool)) {
    (item, push_one(t, item, policy).await)
}

/// One item: read, compare, write; the flag says whether it wrote.
async fn push_one(t: &dyn Transport, item: &WritebackItem, policy: OnConflict) -> (PushOutcome, bool) {
    let no = |o: PushOutcome| (o, false);
    let current = match t.read(item).await {
        Ok(v) => v,
        Err(e) => return no(failed(item, e.code, e.message)),
    };
    if current == item.value {
        return no(PushOutcome::Done); // already there: nothing to write
    }
    let changed_there = current != item.base_value;
    if changed_there && current != item.old_value {
        let show = |v: &Option<String>| v.as_deref().map(|s| format!("\"{s}\"")).unwrap_or_else(|| "(none)".into());
        let what = format!(
            "conflict: the directory's value changed to {} since the local change ({} → {})",
            show(&current),
            show(&item.old_value),
            show(&item.value)
        );
        match policy {
            OnConflict::Report => {
                return no(PushOutcome::Conflict {
                    error: format!(
                        "{what}; not written (on_conflict = \"report\"): set the value again with `dirsync users set`, or choose on_conflict = \"app\" or \"directory\""
                    ),
                })
            }
            OnConflict::Directory => return no(PushOutcome::TookDirectory { value: current }),
            OnConflict::App => {} // overwrite
        }
    }
    match t.write(item).await {
        Ok(()) => (PushOutcome::Done, true),
        Err(e) => no(failed(item, e.code, e.message)),
    }
}

/// What `writeback status` shows.
#[derive(Debug, Serialize)]
pub struct Status {
    pub pending: Vec<WritebackItem>,
    pub failed: Vec<WritebackItem>,
    pub conflicts: Vec<WritebackItem>,
    pub last_success: Option<Timestamp>,
}

pub fn status(store: &dyn Store) -> Result<Status, StoreError> {
    Ok(Status {
        pending: store.writeback_items(&[QueueStatus::Pending])?,
        failed: store.writeback_items(&[QueueStatus::Failed])?,
        conflicts: store.writeback_items(&[QueueStatus::Conflict])?,
        last_success: store.last_push_success()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of one value, counting writes (the queue logic's unit
    /// tests; the LDAP transport is tested against slapd and Samba).
    struct Memory {
        value: std::sync::Mutex<Option<String>>,
        writes: std::sync::atomic::AtomicUsize,
        refuse: Option<u32>,
    }

    impl Memory {
        fn new(value: Option<&str>, refuse: Option<u32>) -> Memory {
            Memory { value: std::sync::Mutex::new(value.map(Into::into)), writes: Default::default(), refuse }
        }
        fn writes(&self) -> usize {
            self.writes.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl Transport for Memory {
        async fn read(&self, _: &WritebackItem) -> Result<Option<String>, transport::TransportError> {
            Ok(self.value.lock().unwrap().clone())
        }
        async fn write(&self, item: &WritebackItem) -> Result<(), transport::TransportError> {
            if let Some(code) = self.refuse {
                return Err(transport::TransportError { code: Some(code), message: "refused".into() });
            }
            self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            *self.value.lock().unwrap() = item.value.clone();
            Ok(())
        }
        async fn close(self: Box<Self>) {}
    }

    fn item(value: &str, old: Option<&str>, base: Option<&str>) -> WritebackItem {
        WritebackItem {
            id: 1,
            user_id: 1,
            username: "amy".into(),
            source: "s".into(),
            external_id: "e1".into(),
            dn: "uid=amy".into(),
            field: "print_code".into(),
            attribute: "pager".into(),
            value: Some(value.into()),
            old_value: old.map(Into::into),
            base_value: base.map(Into::into),
            status: QueueStatus::Pending,
            attempts: 0,
            last_code: None,
            last_error: None,
            next_attempt_at: None,
            created_at: Default::default(),
            updated_at: Default::default(),
            done_at: None,
        }
    }

    fn run(t: &Memory, it: &WritebackItem, policy: OnConflict) -> (PushOutcome, bool) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(push_one(t, it, policy))
    }

    #[test]
    fn the_queue_logic_reads_compares_and_writes_through_any_transport() {
        // Not there yet: written once; then already there: no second write.
        let t = Memory::new(Some("1"), None);
        let it = item("2", Some("1"), Some("1"));
        assert!(matches!(run(&t, &it, OnConflict::Report), (PushOutcome::Done, true)));
        assert!(matches!(run(&t, &it, OnConflict::Report), (PushOutcome::Done, false)));
        assert_eq!(t.writes(), 1);
        // Changed in the directory meanwhile: the policy decides.
        let it = item("2", Some("1"), Some("1"));
        let t = Memory::new(Some("9"), None);
        assert!(matches!(run(&t, &it, OnConflict::Report), (PushOutcome::Conflict { .. }, false)));
        assert!(
            matches!(run(&t, &it, OnConflict::Directory), (PushOutcome::TookDirectory { value: Some(ref v) }, false) if v == "9")
        );
        assert!(matches!(run(&t, &it, OnConflict::App), (PushOutcome::Done, true)));
        // A refusal keeps its code and is retried later.
        let t = Memory::new(None, Some(50));
        let it = item("2", None, None);
        assert!(matches!(run(&t, &it, OnConflict::Report), (PushOutcome::Failed { code: Some(50), .. }, false)));
    }

    /// A directory that answers after a pause and counts how many reads it
    /// serves at once.
    struct Slow {
        now: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Transport for Slow {
        async fn read(&self, item: &WritebackItem) -> Result<Option<String>, transport::TransportError> {
            use std::sync::atomic::Ordering::SeqCst;
            let n = self.now.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(n, SeqCst);
            // Later items answer sooner: the order of answers is not the queue's.
            tokio::time::sleep(Duration::from_millis(40 - item.id as u64)).await;
            self.now.fetch_sub(1, SeqCst);
            Err(transport::TransportError { code: Some(52), message: format!("item {}", item.id) })
        }
        async fn write(&self, _: &WritebackItem) -> Result<(), transport::TransportError> {
            unreachable!("every read fails")
        }
        async fn close(self: Box<Self>) {}
    }

    #[test]
    fn several_items_are_in_flight_at_once_and_recorded_in_queue_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let items: Vec<WritebackItem> = (1..=20).map(|i| WritebackItem { id: i, ..item("2", None, None) }).collect();
        let refs: Vec<&WritebackItem> = items.iter().collect();
        for in_flight in [1, 8] {
            let t = Slow { now: Default::default(), most: Default::default() };
            let mut report = PushReport::default();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(push_items(&t, &store, &refs, &mut report, OnConflict::Report, in_flight)).unwrap();
            assert_eq!(t.most.into_inner(), in_flight, "at most in_flight reads at once, and that many");
            assert_eq!(report.failed, 20);
            let said: Vec<String> = report.errors.iter().map(|e| e.reason.clone()).collect();
            let expected: Vec<String> = (1..=20).map(|i| format!("write-back of print_code: item {i}")).collect();
            assert_eq!(said, expected, "outcomes in queue order");
        }
    }

    #[test]
    fn backoff_doubles_up_to_six_hours() {
        assert_eq!(backoff(0), Duration::from_secs(60));
        assert_eq!(backoff(1), Duration::from_secs(120));
        assert_eq!(backoff(3), Duration::from_secs(480));
        assert_eq!(backoff(50), Duration::from_secs(6 * 3600));
    }

    #[tokio::test]
    async fn a_push_or_resolve_outside_a_sync_waits_for_nobody_and_says_busy() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::Config::parse(
            "[[sources]]\nname = \"f\"\ntype = \"ldif\"\npath = \"d.ldif\"\n[sources.fields]\nusername = \"uid\"\nfull_name = \"cn\"\n",
            &dir.path().join("c.toml"),
        )
        .unwrap();
        let store = crate::store::open(&cfg.store).unwrap();
        let held = store.lease().unwrap();
        assert!(matches!(push_now(&cfg, &*store, true).await, Err(WritebackError::Busy)));
        assert!(matches!(resolve(&cfg, &*store, 1, OnConflict::App).await, Err(WritebackError::Busy)));
        let origin = crate::model::records::RunOrigin::default();
        assert!(matches!(push_as_run(&cfg, &*store, &origin).await, Err(WritebackError::Busy)));
        drop(held);
        assert_eq!(push_now(&cfg, &*store, true).await.unwrap().pushed, 0, "free again: an empty queue pushes nothing");
        assert!(matches!(resolve(&cfg, &*store, 1, OnConflict::App).await, Err(WritebackError::NoItem(_))));
    }
}
