//! Live sync under `dirsync serve`: for each source with `[sources.live]`,
//! one task holds the source's change channel ([`crate::kind::Source::watch`])
//! and turns its nudges into live runs through the run queue, so live
//! changes and scheduled reads take turns and never wait on each other's
//! connections. Nudges within `debounce_ms` of the first become one run;
//! nudges during a run become the next. A lost channel is reconnected with
//! backoff (1 s doubling to 5 min, jittered), a stale position read in
//! full, a source without a channel polled every `poll_secs`. A live run
//! the guards block holds the source (scheduled runs go on) until a run of
//! it succeeds again (the approval). Across the instances of one store, a
//! claim in the store gives each source's channel to one instance.
//! [`LiveBoard`] says where each source is, for `GET /api/live`, the
//! dashboard and the metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{Config, SourceConfig};
use crate::engine::history::RunStatus;
use crate::kind::live::{Nudge, WatchEnd};
use crate::serve::runner::{ConfigHandle, QueueError, RunRequest, Runner};
use crate::store::{on_store, Store};
use crate::time::Timestamp;

/// How long a claim on a source's channel lasts without renewal.
const CLAIM_TTL: Duration = Duration::from_secs(30);
/// How often a held claim is renewed (and a standby instance tries).
const CLAIM_EVERY: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Where a source's live sync is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveState {
    /// The change channel is open.
    Live,
    /// The channel was lost; the next try is at `next_try`.
    Reconnecting,
    /// No channel: read every `poll_secs`.
    Polling,
    /// A live run was blocked by the guards: live changes wait for an
    /// approval; scheduled runs go on.
    Held,
    /// Another instance of the store holds the channel.
    Standby,
    /// Live sync is not enabled for the source (or the service is stopping).
    Off,
}

impl LiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Live => "live",
            LiveState::Reconnecting => "reconnecting",
            LiveState::Polling => "polling",
            LiveState::Held => "held",
            LiveState::Standby => "standby",
            LiveState::Off => "off",
        }
    }
}

/// One source's live status.
#[derive(Debug, Clone, Serialize)]
pub struct LiveStatus {
    pub name: String,
    pub state: LiveState,
    /// Why it is not live (the lost connection's error, the blocked run).
    pub reason: Option<String>,
    /// When the channel is tried again, or the next poll.
    pub next_try: Option<Timestamp>,
    /// When the source last told of a change.
    pub last_change: Option<Timestamp>,
    /// How the source is listened to ("RFC 4533 refreshAndPersist (syncprov)").
    pub channel: Option<String>,
}

/// Every source's live status.
#[derive(Default)]
pub struct LiveBoard(Mutex<BTreeMap<String, LiveStatus>>);

impl LiveBoard {
    /// The sources' statuses, by name.
    pub fn list(&self) -> Vec<LiveStatus> {
        self.0.lock().expect("live board").values().cloned().collect()
    }

    /// One entry per source that is not pushed to, all `off` until their
    /// tasks say otherwise.
    pub fn reset(&self, cfg: &Config) {
        let mut m = self.0.lock().expect("live board");
        m.clear();
        for s in cfg.sources.iter().filter(|s| !s.is_pushed()) {
            let state = LiveState::Off;
            let reason = (!s.live.enabled).then(|| "[sources.live] is not enabled".to_string());
            let st =
                LiveStatus { name: s.name.clone(), state, reason, next_try: None, last_change: None, channel: None };
            m.insert(s.name.clone(), st);
        }
    }

    fn set(&self, name: &str, state: LiveState, reason: Option<String>, next_try: Option<Timestamp>) {
        if let Some(s) = self.0.lock().expect("live board").get_mut(name) {
            (s.state, s.reason, s.next_try) = (state, reason, next_try);
            if state != LiveState::Live {
                s.channel = None;
            }
        }
    }

    fn listening(&self, name: &str, how: &str) {
        if let Some(s) = self.0.lock().expect("live board").get_mut(name) {
            (s.state, s.reason, s.next_try, s.channel) = (LiveState::Live, None, None, Some(how.to_string()));
        }
    }

    fn changed(&self, name: &str) {
        if let Some(s) = self.0.lock().expect("live board").get_mut(name) {
            s.last_change = Some(Timestamp::now());
        }
    }
}

/// What every source's task shares.
#[derive(Clone)]
struct Ctx {
    runner: Runner,
    store: Arc<dyn Store>,
    board: Arc<LiveBoard>,
}

/// Holds every live source's channel until `stop`; a reload restarts them
/// with the new configuration.
pub async fn drive(
    runner: Runner,
    cfg: ConfigHandle,
    store: Arc<dyn Store>,
    board: Arc<LiveBoard>,
    mut reload: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let ctx = Ctx { runner, store, board };
    loop {
        let config = cfg.read().expect("config lock").clone();
        ctx.board.reset(&config);
        let live: Vec<SourceConfig> =
            config.sources.iter().filter(|s| s.live.enabled && !s.is_pushed()).cloned().collect();
        let tasks: Vec<_> = live.iter().map(|s| tokio::spawn(source_loop(ctx.clone(), s.clone()))).collect();
        let stopping = tokio::select! {
            r = reload.changed() => r.is_err(),
            _ = stop.wait_for(|s| *s) => true,
        };
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let me = ctx.runner.instance();
        for s in &live {
            let (name, me) = (claim_name(&s.name), me.clone());
            let _ = on_store(&*ctx.store, move |st| st.release(&name, &me)).await;
        }
        if stopping {
            for s in &live {
                ctx.board.set(&s.name, LiveState::Off, Some("the service is stopping".into()), None);
            }
            info!("live channels closed");
            return;
        }
        info!("live channels restarted with the reloaded configuration");
    }
}

fn claim_name(source: &str) -> String {
    format!("live:{source}")
}

impl Ctx {
    /// Takes or renews this instance's claim on a source's channel.
    async fn claim(&self, source: &str) -> Result<bool, String> {
        let (name, me) = (claim_name(source), self.runner.instance());
        let now = Timestamp::now();
        on_store(&*self.store, move |s| s.claim(&name, &me, now, now.plus(CLAIM_TTL))).await.map_err(|e| e.to_string())
    }

    /// Renews the claim until it is lost (another instance took it after
    /// this one failed to renew in time, or the store is unreachable).
    async fn hold_claim(&self, source: &str) -> String {
        loop {
            tokio::time::sleep(CLAIM_EVERY).await;
            match self.claim(source).await {
                Ok(true) => {}
                Ok(false) => return "another instance took over the source's live connection".into(),
                Err(e) => return format!("the claim on the live connection could not be renewed: {e}"),
            }
        }
    }
}

/// One source: claim, watch (or poll), reconnect, forever.
async fn source_loop(ctx: Ctx, s: SourceConfig) {
    let attempts = AtomicU32::new(0);
    loop {
        match ctx.claim(&s.name).await {
            Ok(true) => {}
            other => {
                let why = match other {
                    Err(e) => format!("the store could not be asked who holds the live connection: {e}"),
                    _ => "another instance holds this source's live connection".to_string(),
                };
                ctx.board.set(&s.name, LiveState::Standby, Some(why), Some(Timestamp::now().plus(CLAIM_EVERY)));
                tokio::time::sleep(CLAIM_EVERY).await;
                continue;
            }
        }
        let name = s.name.clone();
        let saved = on_store(&*ctx.store, move |st| st.sync_state(&name)).await.ok().flatten().and_then(|x| x.state);
        let (tx, rx) = mpsc::channel(16);
        let source = crate::kind::source::open(&s);
        let session = async {
            let (end, ()) = tokio::join!(source.watch(tx, saved.as_deref()), follow(&ctx, &s, rx, &attempts));
            end
        };
        let end = tokio::select! {
            end = session => end,
            why = ctx.hold_claim(&s.name) => WatchEnd::Lost(why),
        };
        match end {
            WatchEnd::Unsupported(why) => {
                info!(source = %s.name, reason = %why, every_secs = s.live.poll.as_secs(), "no change channel: polling");
                let why = tokio::select! {
                    () = poll(&ctx, &s, &why) => return,
                    why = ctx.hold_claim(&s.name) => why,
                };
                ctx.board.set(&s.name, LiveState::Standby, Some(why), None);
            }
            WatchEnd::Lost(why) => {
                let wait = backoff(attempts.fetch_add(1, Ordering::Relaxed));
                warn!(source = %s.name, reason = %why, retry_in_ms = wait.as_millis() as u64, "live connection lost");
                let next = Timestamp::now().plus(wait);
                ctx.board.set(&s.name, LiveState::Reconnecting, Some(why), Some(next));
                tokio::time::sleep(wait).await;
            }
            WatchEnd::Stale(why) => {
                warn!(source = %s.name, reason = %why, "the saved position is too old for the server: reading in full");
                ctx.board.set(&s.name, LiveState::Reconnecting, Some(format!("{why}; reading in full")), None);
                if attempts.fetch_add(1, Ordering::Relaxed) > 0 {
                    tokio::time::sleep(backoff(attempts.load(Ordering::Relaxed))).await;
                }
                let req = RunRequest { full: true, ..RunRequest::live(&s.name) };
                let _ = run_until_done(&ctx, &s, req).await;
            }
            WatchEnd::Stopped => return,
        }
    }
}

/// The wait before reconnection attempt `n` (0-based): 1 s doubling to 5
/// minutes, jittered.
fn backoff(n: u32) -> Duration {
    crate::serve::backoff(n, BACKOFF_MAX)
}

/// Turns nudges into runs: the first of a window waits `debounce`, then one
/// run covers all; until the channel closes.
async fn follow(ctx: &Ctx, s: &SourceConfig, mut rx: mpsc::Receiver<Nudge>, attempts: &AtomicU32) {
    loop {
        let Some(first) = rx.recv().await else { return };
        let mut window = Window::default();
        window.note(ctx, s, first, attempts);
        let deadline = tokio::time::Instant::now() + s.live.debounce;
        let mut closed = false;
        while let Ok(got) = tokio::time::timeout_at(deadline, rx.recv()).await {
            match got {
                Some(n) => window.note(ctx, s, n, attempts),
                None => {
                    closed = true;
                    break;
                }
            }
        }
        let req = match window.touched.filter(|_| !window.whole) {
            Some(t) => RunRequest { touched: Some(Arc::new(t)), ..RunRequest::live(&s.name) },
            None => RunRequest::live(&s.name),
        };
        if !run_until_done(ctx, s, req).await || closed {
            return;
        }
    }
}

/// More entries than this in one window are read with the source's usual
/// read instead, one by one being slower then.
const MAX_TOUCHED: usize = 500;

/// What the nudges of one debounce window asked for.
#[derive(Default)]
struct Window {
    /// The source's usual read (a nudge that named nothing, a new channel).
    whole: bool,
    touched: Option<crate::kind::live::Touched>,
}

impl Window {
    fn note(&mut self, ctx: &Ctx, s: &SourceConfig, n: Nudge, attempts: &AtomicU32) {
        match n {
            Nudge::Listening { how } => {
                info!(source = %s.name, channel = %how, "live: listening");
                attempts.store(0, Ordering::Relaxed);
                ctx.board.listening(&s.name, &how);
                // What changed while nobody listened is read the usual way.
                self.whole = true;
            }
            Nudge::Changed => {
                ctx.board.changed(&s.name);
                self.whole = true;
            }
            Nudge::Touched { dn, gone } => {
                ctx.board.changed(&s.name);
                // Past the cap the usual read follows: no need to keep more.
                let t = self.touched.get_or_insert_default();
                if t.dns.len() + t.gone.len() <= MAX_TOUCHED {
                    t.add(dn, gone);
                } else {
                    self.whole = true;
                }
            }
        }
    }
}

/// Reads a source without a channel every `poll_secs`.
async fn poll(ctx: &Ctx, s: &SourceConfig, why: &str) {
    loop {
        let next = Timestamp::now().plus(s.live.poll);
        ctx.board.set(&s.name, LiveState::Polling, Some(why.to_string()), Some(next));
        if !run_until_done(ctx, s, RunRequest::live(&s.name)).await {
            return;
        }
        ctx.board.set(&s.name, LiveState::Polling, Some(why.to_string()), Some(next));
        tokio::time::sleep_until(tokio::time::Instant::now() + next.since(Timestamp::now())).await;
    }
}

/// Queues a live run and waits for it; a failed one is tried again with
/// backoff, a blocked one waits for the approval. `false` when the service
/// is stopping.
async fn run_until_done(ctx: &Ctx, s: &SourceConfig, req: RunRequest) -> bool {
    let mut failures = 0u32;
    loop {
        let mut finished = ctx.runner.finished_runs();
        let id = match ctx.runner.submit(req.clone()).await {
            Ok((id, _)) => id,
            Err(QueueError::Stopping) => return false,
            Err(e) => {
                warn!(source = %s.name, "a live run could not be queued: {e}");
                tokio::time::sleep(backoff(failures)).await;
                failures += 1;
                continue;
            }
        };
        let status = loop {
            match finished.recv().await {
                Ok((done, status)) if done == id => break status,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let run = on_store(&*ctx.store, move |st| st.run_by_id(id)).await.ok().flatten();
                    if let Some(r) = run.filter(|r| r.status != RunStatus::Running && r.status != RunStatus::Queued) {
                        break r.status;
                    }
                }
                Err(_) => return false,
            }
        };
        match status {
            RunStatus::Blocked => {
                wait_for_approval(ctx, s, id).await;
                failures = 0;
            }
            RunStatus::Failed | RunStatus::Interrupted => {
                let wait = backoff(failures);
                failures += 1;
                warn!(source = %s.name, run = id, retry_in_ms = wait.as_millis() as u64, "a live run failed; trying again");
                tokio::time::sleep(wait).await;
            }
            _ => return true,
        }
    }
}

/// A blocked live run holds the source until one of its runs succeeds
/// after it (the approved run, or a scheduled one the admin let through).
async fn wait_for_approval(ctx: &Ctx, s: &SourceConfig, run: i64) {
    let since = Timestamp::now();
    let reason = format!(
        "live run {run} was blocked by the guards: live changes wait (scheduled runs go on) until an admin approves it"
    );
    warn!(source = %s.name, run, "{reason}");
    let before = ctx.board.list().into_iter().find(|x| x.name == s.name).map(|x| (x.state, x.reason, x.next_try));
    ctx.board.set(&s.name, LiveState::Held, Some(reason), None);
    let mut finished = ctx.runner.finished_runs();
    loop {
        let ok = ctx.runner.health().get(&s.name).and_then(|h| h.last_ok_at).is_some_and(|at| at > since);
        if ok {
            break;
        }
        if let Err(tokio::sync::broadcast::error::RecvError::Closed) = finished.recv().await {
            return;
        }
    }
    info!(source = %s.name, "the blocked live run was dealt with: live changes resume");
    if let Some((state, reason, next)) = before {
        ctx.board.set(&s.name, state, reason, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes_with_jitter() {
        for (n, secs) in [(0u32, 1.0f64), (1, 2.0), (3, 8.0), (8, 256.0), (9, 300.0), (40, 300.0)] {
            let d = backoff(n).as_secs_f64();
            assert!(d >= secs * 0.8 - 1e-9 && d <= secs * 1.2 + 1e-9, "attempt {n}: {d} s");
        }
    }
}
