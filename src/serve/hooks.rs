//! Webhooks under `dirsync serve`: each `[[server.webhooks]]` entry has one
//! task that follows the change feed from the webhook's cursor and POSTs
//! what it subscribes to, in commit order, in batches of at most 100
//! (`{changes, next}`, the feed's own objects), signed per Standard
//! Webhooks. A batch is made once and saved before its first attempt: every
//! retry, after a restart too, sends the same body under the same
//! `webhook-id`. A 2xx moves the cursor past it; anything else is tried
//! again with backoff (at most `max_retry_secs` between tries) while the
//! later changes wait. Runs never wait for a receiver: the tasks only read
//! the feed. Across the instances of one store, a claim gives each webhook
//! to one instance at a time. [`HookBoard`] holds what `GET /api/webhooks`,
//! the page and `/metrics` show.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Start, WebhookConfig};
use crate::serve::runner::{ConfigHandle, Runner};
use crate::store::{on_store, PendingBatch, Store, StoreError, WebhookState};
use crate::time::Timestamp;

/// Changes in one POST at most.
pub const BATCH: usize = 100;
const CLAIM_TTL: Duration = Duration::from_secs(60);
const CLAIM_EVERY: Duration = Duration::from_secs(15);
/// How often the feed is looked at when no run of this instance said it
/// changed (changes by another instance, the API or SCIM).
const FEED_POLL: Duration = Duration::from_millis(500);

/// One webhook's delivery status.
#[derive(Debug, Clone, Serialize, Default)]
pub struct HookStatus {
    pub name: String,
    pub url: String,
    /// The change-feed cursor delivered up to.
    pub cursor: i64,
    pub last_delivery: Option<Timestamp>,
    /// Failed attempts of the batch waiting.
    pub failures: u32,
    pub last_error: Option<String>,
    pub next_try: Option<Timestamp>,
    /// Changes waiting in the feed beyond the cursor.
    pub lag: i64,
    /// `delivering`, or `standby` while another instance delivers it.
    pub state: &'static str,
    /// Since this instance started.
    #[serde(skip)]
    pub delivered: u64,
    #[serde(skip)]
    pub failed_attempts: u64,
}

/// Every webhook's status, by name.
#[derive(Default)]
pub struct HookBoard(Mutex<BTreeMap<String, HookStatus>>);

impl HookBoard {
    pub fn list(&self) -> Vec<HookStatus> {
        self.0.lock().expect("hook board").values().cloned().collect()
    }

    /// One entry per configured webhook (what it knew of those it keeps).
    pub fn prepare(&self, hooks: &[WebhookConfig]) {
        let mut m = self.0.lock().expect("hook board");
        let old = std::mem::take(&mut *m);
        for w in hooks {
            let kept = old.get(&w.name).cloned().unwrap_or_default();
            m.insert(
                w.name.clone(),
                HookStatus { name: w.name.clone(), url: w.url.to_string(), state: "standby", ..kept },
            );
        }
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut HookStatus)) {
        if let Some(h) = self.0.lock().expect("hook board").get_mut(name) {
            f(h);
        }
    }

    fn show(&self, w: &WebhookState, head: i64) {
        self.update(&w.name, |h| {
            h.cursor = w.cursor;
            h.last_delivery = w.last_delivery;
            h.failures = w.failures;
            h.last_error = w.last_error.clone();
            h.next_try = w.next_try;
            h.lag = (head - w.cursor).max(0);
            h.state = "delivering";
        });
    }
}

/// Runs every webhook's task until `stop`; a reload restarts them. A
/// delivery in flight when `stop` comes finishes (the caller bounds the wait).
pub async fn drive(
    runner: Runner,
    cfg: ConfigHandle,
    store: Arc<dyn Store>,
    board: Arc<HookBoard>,
    mut reload: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dirsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with the default TLS settings");
    loop {
        let hooks = cfg.read().expect("config lock").server.clone().unwrap_or_default().webhooks;
        board.prepare(&hooks);
        let (inner_tx, inner_rx) = watch::channel(false);
        let tasks: Vec<_> = hooks
            .iter()
            .map(|w| {
                let d = Deliverer {
                    w: w.clone(),
                    store: store.clone(),
                    runner: runner.clone(),
                    board: board.clone(),
                    client: client.clone(),
                    stop: inner_rx.clone(),
                };
                tokio::spawn(d.run())
            })
            .collect();
        let mut outer = stop.clone();
        let stopping = tokio::select! {
            r = reload.changed() => r.is_err(),
            _ = outer.wait_for(|s| *s) => true,
        };
        let _ = inner_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let me = runner.instance();
        for w in &hooks {
            let (name, me) = (claim_name(&w.name), me.clone());
            let _ = on_store(&*store, move |s| s.release(&name, &me)).await;
        }
        if stopping {
            return;
        }
        info!("webhooks restarted with the reloaded configuration");
    }
}

fn claim_name(hook: &str) -> String {
    format!("webhook:{hook}")
}

/// One webhook's task.
struct Deliverer {
    w: WebhookConfig,
    store: Arc<dyn Store>,
    runner: Runner,
    board: Arc<HookBoard>,
    client: reqwest::Client,
    stop: watch::Receiver<bool>,
}

impl Deliverer {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits `d`, or less when the service stops; `true` when it stops.
    async fn pause(&mut self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = stop.wait_for(|s| *s) => true,
        }
    }

    async fn run(mut self) {
        let mut claimed_until = tokio::time::Instant::now();
        while !self.stopping() {
            if tokio::time::Instant::now() >= claimed_until {
                if !self.claim().await {
                    self.board.update(&self.w.name, |h| h.state = "standby");
                    if self.pause(CLAIM_EVERY).await {
                        return;
                    }
                    continue;
                }
                claimed_until = tokio::time::Instant::now() + CLAIM_EVERY;
            }
            match self.step().await {
                Ok(Some(wait)) => {
                    if self.pause_or_change(wait).await {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(webhook = %self.w.name, "the webhook's state could not be read or saved: {e}");
                    if self.pause(Duration::from_secs(5)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits `d` or until a run says the feed changed; `true` when stopping.
    async fn pause_or_change(&mut self, d: Duration) -> bool {
        let changed = self.runner.changed.clone();
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = changed.notified() => self.stopping(),
            _ = stop.wait_for(|s| *s) => true,
        }
    }

    async fn claim(&self) -> bool {
        let (name, me) = (claim_name(&self.w.name), self.runner.instance());
        let now = Timestamp::now();
        on_store(&*self.store, move |s| s.claim(&name, &me, now, now.plus(CLAIM_TTL))).await.unwrap_or(false)
    }

    /// One step: make a batch if none waits, then try it once. `Some(wait)`:
    /// nothing to do for that long (no change, or the next try is later).
    async fn step(&mut self) -> Result<Option<Duration>, StoreError> {
        let name = self.w.name.clone();
        let start = self.w.start;
        let (mut state, head) = on_store(&*self.store, move |s| -> Result<_, StoreError> {
            let head = s.change_head()?;
            let state = match s.webhook(&name)? {
                Some(st) => st,
                None => {
                    let cursor = if start == Start::Now { head } else { 0 };
                    let st = WebhookState { name: name.clone(), cursor, ..WebhookState::default() };
                    s.save_webhook(&st)?;
                    st
                }
            };
            Ok((state, head))
        })
        .await?;
        self.board.show(&state, head);
        if state.batch.is_none() {
            if head <= state.cursor {
                return Ok(Some(FEED_POLL));
            }
            self.make_batch(&mut state).await?;
            if state.batch.is_none() {
                return Ok(None);
            }
        }
        if let Some(wait) = state.next_try.map(|t| t.since(Timestamp::now())).filter(|d| !d.is_zero()) {
            return Ok(Some(wait.min(Duration::from_secs(5))));
        }
        self.attempt(state, head).await.map(|_| None)
    }

    /// The next batch after the cursor: the changes this webhook wants
    /// among the next [`BATCH`], saved before anything is sent. Changes it
    /// does not want move the cursor without a POST.
    async fn make_batch(&self, state: &mut WebhookState) -> Result<(), StoreError> {
        let since = state.cursor;
        let page = on_store(&*self.store, move |s| crate::engine::feed::page(s, since, BATCH)).await?;
        let Some(upto) = page.last().map(|(c, _)| *c) else { return Ok(()) };
        let wanted: Vec<serde_json::Value> = page
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| self.w.events.wants(v["action"].as_str().unwrap_or_default()))
            .collect();
        if wanted.is_empty() {
            state.cursor = upto;
        } else {
            let body = serde_json::json!({ "changes": wanted, "next": upto }).to_string();
            let id = batch_id(&self.w.name, since, upto);
            state.batch = Some(PendingBatch { id, upto, body, count: wanted.len() as u32 });
            (state.failures, state.last_error, state.next_try) = (0, None, None);
        }
        let saved = state.clone();
        on_store(&*self.store, move |s| s.save_webhook(&saved)).await
    }

    /// POSTs the waiting batch once; records the outcome.
    async fn attempt(&self, mut state: WebhookState, head: i64) -> Result<(), StoreError> {
        let Some(batch) = state.batch.clone() else { return Ok(()) };
        let ts = Timestamp::now().unix_seconds();
        let signature = self.w.secret.signature(&batch.id, ts, batch.body.as_bytes());
        let sent = self
            .client
            .post(self.w.url.clone())
            .timeout(self.w.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &batch.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(batch.body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("the receiver answered HTTP {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Some(format!("no answer within {} s", self.w.timeout.as_secs())),
            Err(e) if e.is_connect() => Some("the receiver could not be reached (connection refused or failed)".into()),
            Err(_) => Some("the delivery failed (the connection broke)".into()),
        };
        let now = Timestamp::now();
        match failure {
            None => {
                state.cursor = batch.upto;
                state.batch = None;
                (state.failures, state.last_error, state.next_try) = (0, None, None);
                state.last_delivery = Some(now);
                self.board.update(&self.w.name, |h| h.delivered += batch.count as u64);
            }
            Some(why) => {
                state.failures += 1;
                let wait = retry_wait(state.failures, self.w.max_retry);
                warn!(webhook = %self.w.name, id = %batch.id, failures = state.failures, retry_in_ms = wait.as_millis() as u64, "webhook delivery failed: {why}");
                state.last_error = Some(why);
                state.next_try = Some(now.plus(wait));
                self.board.update(&self.w.name, |h| h.failed_attempts += 1);
            }
        }
        self.board.show(&state, head);
        on_store(&*self.store, move |s| s.save_webhook(&state)).await
    }
}

/// The batch's id: the same for the same webhook and range, whoever makes
/// it (a restarted instance that lost the saved batch makes the same one).
fn batch_id(hook: &str, after: i64, upto: i64) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{hook}\n{after}\n{upto}").as_bytes());
    let hex: String = digest.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// The wait after the `n`th failure (1-based): 1 s doubling, jittered, at
/// most `max`.
fn retry_wait(n: u32, max: Duration) -> Duration {
    crate::serve::backoff(n.saturating_sub(1), max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_id_names_the_webhook_and_range() {
        assert_eq!(batch_id("print", 10, 20), batch_id("print", 10, 20));
        assert_ne!(batch_id("print", 10, 20), batch_id("print", 10, 21));
        assert_ne!(batch_id("print", 10, 20), batch_id("phones", 10, 20));
        assert!(batch_id("print", 0, 1).starts_with("msg_"));
    }

    #[test]
    fn retries_back_off_up_to_the_longest_wait() {
        let max = Duration::from_secs(3600);
        let d1 = retry_wait(1, max).as_secs_f64();
        assert!((0.8..=1.2).contains(&d1), "{d1}");
        assert!(retry_wait(30, max) <= max);
        assert!(retry_wait(30, max).as_secs() >= 2880);
        assert!(retry_wait(5, Duration::from_secs(2)) <= Duration::from_secs(2));
    }
}
