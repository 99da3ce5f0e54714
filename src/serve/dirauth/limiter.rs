//! Rate limits on password checks. An attempt takes its place in every
//! window it is counted in **before** the check runs ([`Limiter::begin`]),
//! so parallel attempts cannot all slip past a limit that only counts
//! finished failures: within a minute, at most `limit` attempts of a key
//! are ever under way or failed. A success gives its place back; a failure
//! (or an attempt dropped unfinished) keeps it for the minute. When a key's
//! failures reach the limit it is blocked for a minute, twice as long each
//! time it trips again (reset by a quiet hour).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// One key's minute.
#[derive(Default)]
pub(super) struct Window {
    failures: Vec<Instant>,
    in_flight: u32,
    blocked_until: Option<Instant>,
    trips: u32,
    last_trip: Option<Instant>,
}

impl Window {
    pub(super) fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.blocked_until.filter(|t| *t > now).map(|t| t - now)
    }

    fn prune(&mut self, now: Instant) {
        self.failures.retain(|t| now.duration_since(*t) < MINUTE);
    }

    /// Whether one more attempt fits; if not, how long until one may.
    fn room(&mut self, now: Instant, limit: u32) -> Result<(), Duration> {
        if let Some(wait) = self.retry_after(now) {
            return Err(wait);
        }
        self.prune(now);
        if self.failures.len() as u32 + self.in_flight < limit.max(1) {
            return Ok(());
        }
        // Full of attempts under way (or failures): until the oldest failure leaves the minute.
        Err(self.failures.first().map_or(Duration::from_secs(1), |t| MINUTE.saturating_sub(now.duration_since(*t))))
    }

    pub(super) fn fail(&mut self, now: Instant, limit: u32) {
        self.prune(now);
        self.failures.push(now);
        if self.last_trip.is_some_and(|t| now.duration_since(t) > Duration::from_secs(3600)) {
            self.trips = 0;
        }
        if self.failures.len() as u32 >= limit {
            self.trips += 1;
            self.last_trip = Some(now);
            let secs = 60u64 << (self.trips - 1).min(6);
            self.blocked_until = Some(now + Duration::from_secs(secs));
            self.failures.clear();
        }
    }

    fn quiet(&self, now: Instant) -> bool {
        self.in_flight == 0
            && self.retry_after(now).is_none()
            && self.failures.iter().all(|t| now.duration_since(*t) >= MINUTE)
    }
}

/// Windows by key; one limiter per kind of caller (the API's, the page's).
#[derive(Default)]
pub struct Limiter {
    windows: Mutex<HashMap<String, Window>>,
}

/// An attempt holding its places; settle it with [`Attempt::succeeded`] or
/// [`Attempt::failed`] (dropped unsettled, it counts as a failure).
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    keys: Vec<(String, u32)>,
    settled: bool,
}

impl Limiter {
    /// Takes a place in each `(key, limit)` window, or none: `Err` says how
    /// long until there is room.
    pub fn begin(&self, keys: Vec<(String, u32)>) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let mut w = self.windows.lock().expect("limits lock");
        // Bounded memory under a spray of names: forget quiet windows.
        if w.len() > 100_000 {
            w.retain(|_, x| !x.quiet(now));
        }
        let mut wait: Option<Duration> = None;
        for (k, limit) in &keys {
            if let Err(d) = w.entry(k.clone()).or_default().room(now, *limit) {
                wait = Some(wait.map_or(d, |x| x.max(d)));
            }
        }
        if let Some(d) = wait {
            return Err(d.max(Duration::from_secs(1)));
        }
        for (k, _) in &keys {
            w.get_mut(k).expect("just made").in_flight += 1;
        }
        Ok(Attempt { limiter: self, keys, settled: false })
    }

    /// How long `key` is blocked, if it is.
    pub fn blocked(&self, key: &str) -> Option<Duration> {
        let w = self.windows.lock().expect("limits lock");
        w.get(key).and_then(|x| x.retry_after(Instant::now()))
    }
}

impl Attempt<'_> {
    pub fn succeeded(mut self) {
        self.settle(false);
    }

    pub fn failed(mut self) {
        self.settle(true);
    }

    fn settle(&mut self, failed: bool) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let now = Instant::now();
        let mut w = self.limiter.windows.lock().expect("limits lock");
        for (k, limit) in &self.keys {
            if let Some(x) = w.get_mut(k) {
                x.in_flight = x.in_flight.saturating_sub(1);
                if failed {
                    x.fail(now, *limit);
                }
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.settle(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_trips_at_the_limit_and_the_block_grows() {
        let mut w = Window::default();
        let t = Instant::now();
        for _ in 0..4 {
            w.fail(t, 5);
        }
        assert!(w.retry_after(t).is_none(), "4 of 5 allowed");
        w.fail(t, 5);
        assert_eq!(w.retry_after(t), Some(Duration::from_secs(60)));
        let later = t + Duration::from_secs(61);
        assert!(w.retry_after(later).is_none(), "the block ends");
        for _ in 0..5 {
            w.fail(later, 5);
        }
        assert_eq!(w.retry_after(later), Some(Duration::from_secs(120)), "the second block is twice as long");
    }

    #[test]
    fn attempts_under_way_count_so_parallel_ones_cannot_pass_the_limit() {
        let l = Limiter::default();
        let key = || vec![("u".to_string(), 5)];
        let held: Vec<Attempt> = (0..5).map(|_| l.begin(key()).expect("room")).collect();
        assert!(l.begin(key()).is_err(), "a sixth, while five are under way");
        drop(held); // unsettled: failures
        assert!(l.blocked("u").is_some(), "five failures trip the block");
    }

    #[test]
    fn a_success_gives_its_place_back() {
        let l = Limiter::default();
        for _ in 0..20 {
            l.begin(vec![("u".to_string(), 2)]).expect("room").succeeded();
        }
        assert!(l.blocked("u").is_none());
    }

    #[test]
    fn an_attempt_takes_a_place_in_every_window_or_in_none() {
        let l = Limiter::default();
        let _a = l.begin(vec![("addr".to_string(), 1)]).unwrap();
        assert!(l.begin(vec![("user".to_string(), 5), ("addr".to_string(), 1)]).is_err());
        // The user's window was not touched by the refused attempt.
        let held: Vec<Attempt> = (0..5).map(|_| l.begin(vec![("user".to_string(), 5)]).expect("room")).collect();
        assert_eq!(held.len(), 5);
    }
}
