//! Authentication of users against their directory, for applications
//! (`POST /api/auth`, `dirsync auth`). The store decides who may try (a user
//! it knows and holds active: the application's truth); the user's source
//! decides whether the password is right (a bind as the user). The answer
//! never says which of the two failed, and an unknown user costs about what
//! a known one does (a wait as long as recent directory checks took).
//! Refused before anything is sent: an empty or blank password, one over
//! 1 KiB, a username with control characters. Failures are rate-limited per
//! username and per client address; the limit grows each time it trips.
//! No password is logged, kept or stored.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::AuthLimits;
use crate::model::{name_key, Status};
use crate::runner::ConfigHandle;
use crate::sources::kind::{PasswordCheck, Verdict};
use crate::store::{on_store, Store, StoreError};

/// The longest password accepted (bytes).
pub const MAX_PASSWORD: usize = 1024;

/// A user the directory accepted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Authenticated {
    /// The username as the store holds it.
    pub username: String,
    /// Effective groups, sorted.
    pub groups: Vec<String>,
}

/// Why a check did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong password, unknown or disabled user, a refused input: one answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failures for this username or address.
    #[error("too many failed attempts; try again in {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// The directory could not be asked: never a wrong password.
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Outcomes counted for the metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuthCounts {
    pub ok: u64,
    pub invalid: u64,
    pub rate_limited: u64,
    pub unavailable: u64,
}

/// Failures per key in a sliding minute, with a block that doubles each
/// time the limit trips (reset by a quiet hour).
#[derive(Default)]
struct Window {
    failures: Vec<Instant>,
    blocked_until: Option<Instant>,
    trips: u32,
    last_trip: Option<Instant>,
}

impl Window {
    fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.blocked_until.filter(|t| *t > now).map(|t| t - now)
    }

    fn fail(&mut self, now: Instant, limit: u32) {
        self.failures.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
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
}

#[derive(Default)]
struct Limits {
    users: HashMap<String, Window>,
    addresses: HashMap<IpAddr, Window>,
}

type Built = (Arc<dyn crate::sources::kind::Kind>, Arc<dyn PasswordCheck>);

/// Checks passwords; one per service, shared by its requests.
pub struct Authenticator {
    cfg: ConfigHandle,
    store: Arc<dyn Store>,
    /// Per source: the settings it was built for, and the check.
    checks: Mutex<HashMap<String, Built>>,
    limits: Mutex<Limits>,
    /// How long recent directory checks took (for unknown users' wait).
    typical: Mutex<Duration>,
    counts: Mutex<AuthCounts>,
}

impl Authenticator {
    pub fn new(cfg: ConfigHandle, store: Arc<dyn Store>) -> Authenticator {
        Authenticator {
            cfg,
            store,
            checks: Mutex::default(),
            limits: Mutex::default(),
            typical: Mutex::new(Duration::from_millis(5)),
            counts: Mutex::default(),
        }
    }

    pub fn counts(&self) -> AuthCounts {
        self.counts.lock().expect("counts lock").clone()
    }

    fn limits_config(&self) -> AuthLimits {
        self.cfg.read().expect("config lock").server.as_ref().map(|s| s.auth).unwrap_or_default()
    }

    /// How long `username` (or `address`) must wait before trying again, if
    /// a rate limit holds it (for sign-ins checked elsewhere: the page's
    /// local admin account).
    pub fn limited(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let l = self.limits.lock().expect("limits lock");
        let by_user = l.users.get(&name_key(username)).and_then(|w| w.retry_after(now));
        let by_addr = address.and_then(|a| l.addresses.get(&a)).and_then(|w| w.retry_after(now));
        by_user.max(by_addr)
    }

    /// Counts a failed sign-in checked elsewhere against the rate limits.
    pub fn failed(&self, username: &str, address: Option<IpAddr>) {
        let limits = self.limits_config();
        let now = Instant::now();
        let mut l = self.limits.lock().expect("limits lock");
        l.users.entry(name_key(username)).or_default().fail(now, limits.failures_per_user);
        if let Some(a) = address {
            l.addresses.entry(a).or_default().fail(now, limits.failures_per_address);
        }
        self.counts.lock().expect("counts lock").invalid += 1;
    }

    /// Checks `password` for `username` (from `address`, when known).
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<Authenticated, AuthError> {
        let key = name_key(username);
        let outcome = self.attempt(&key, username, password, address).await;
        let mut counts = self.counts.lock().expect("counts lock");
        match &outcome {
            Ok(_) => counts.ok += 1,
            Err(AuthError::InvalidCredentials) => counts.invalid += 1,
            Err(AuthError::RateLimited { .. }) => counts.rate_limited += 1,
            Err(_) => counts.unavailable += 1,
        }
        outcome
    }

    async fn attempt(
        &self,
        key: &str,
        username: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<Authenticated, AuthError> {
        let now = Instant::now();
        {
            let l = self.limits.lock().expect("limits lock");
            let by_user = l.users.get(key).and_then(|w| w.retry_after(now));
            let by_addr = address.and_then(|a| l.addresses.get(&a)).and_then(|w| w.retry_after(now));
            if let Some(retry_after) = by_user.max(by_addr) {
                return Err(AuthError::RateLimited { retry_after });
            }
        }
        let result = self.verify(username, password).await;
        if matches!(result, Err(AuthError::InvalidCredentials)) {
            let limits = self.limits_config();
            let mut l = self.limits.lock().expect("limits lock");
            // Bounded memory under a spray of names: forget quiet windows.
            if l.users.len() > 100_000 {
                l.users.retain(|_, w| w.blocked_until.is_some_and(|t| t > now) || !w.failures.is_empty());
            }
            if l.addresses.len() > 100_000 {
                l.addresses.retain(|_, w| w.blocked_until.is_some_and(|t| t > now) || !w.failures.is_empty());
            }
            l.users.entry(key.to_string()).or_default().fail(now, limits.failures_per_user);
            if let Some(a) = address {
                l.addresses.entry(a).or_default().fail(now, limits.failures_per_address);
            }
        }
        result
    }

    async fn verify(&self, username: &str, password: &str) -> Result<Authenticated, AuthError> {
        let refused_input = password.trim().is_empty()
            || password.len() > MAX_PASSWORD
            || username.trim().is_empty()
            || username.len() > 1024
            || username.chars().any(char::is_control)
            || password.contains('\0');
        if refused_input {
            return Err(AuthError::InvalidCredentials);
        }
        // The user and its groups in one trip to the store (the groups are
        // only answered after the directory accepted the password).
        let name = username.to_string();
        let found = on_store(&*self.store, move |s| -> Result<_, StoreError> {
            let Some(u) = s.user_by_name(&name)?.filter(|u| u.status == Status::Active) else { return Ok(None) };
            let groups = s.groups_of_user(u.id)?;
            Ok(Some((u, groups)))
        })
        .await?;
        let Some((user, groups)) = found else {
            self.pretend().await;
            return Err(AuthError::InvalidCredentials);
        };
        let Some(check) = self.check_for(&user.source) else {
            // The user's source cannot check passwords (an LDIF file, Entra ID).
            warn!(user = %user.username, source = %user.source, "{}", self.cannot_check(&user.source));
            self.pretend().await;
            return Err(AuthError::InvalidCredentials);
        };
        let t0 = Instant::now();
        let verdict = check.check(&user.dn, &user.username, password).await;
        let took = t0.elapsed();
        {
            let mut t = self.typical.lock().expect("typical lock");
            *t = (*t * 7 + took) / 8;
        }
        match verdict {
            Ok(Verdict::Accepted) => {
                tracing::debug!(user = %user.username, "password accepted");
                Ok(Authenticated { username: user.username.into(), groups: groups.all })
            }
            Ok(Verdict::Refused(reason)) => {
                info!(user = %user.username, reason = reason.as_deref().unwrap_or("wrong password"), "password refused");
                Err(AuthError::InvalidCredentials)
            }
            Err(e) => {
                warn!(source = %user.source, "password check impossible: {e}");
                Err(AuthError::Unavailable(format!("source \"{}\" cannot be reached", user.source)))
            }
        }
    }

    /// Why a source's users cannot be checked here, for the admin: the
    /// source's kind says what to use instead.
    pub fn cannot_check(&self, source: &str) -> String {
        let cfg = self.cfg.read().expect("config lock").clone();
        let kind = cfg.sources.iter().find(|s| s.name == source).map(|s| s.kind.clone());
        let (type_name, note) = match &kind {
            Some(k) => (k.type_name(), k.password_note()),
            None => ("?", None),
        };
        let mut m = format!("source \"{source}\" (type = \"{type_name}\") cannot check passwords");
        if let Some(n) = note {
            m.push_str(": ");
            m.push_str(n);
        }
        m
    }

    /// The source of an active user whose source cannot check passwords
    /// (`None`: unknown user, or its source can check them).
    pub async fn uncheckable_source(&self, username: &str) -> Result<Option<String>, StoreError> {
        let name = username.to_string();
        let user = on_store(&*self.store, move |s| s.user_by_name(&name)).await?;
        Ok(user
            .filter(|u| u.status == Status::Active)
            .map(|u| u.source.to_string())
            .filter(|s| self.check_for(s).is_none()))
    }

    /// About as long as a real check takes.
    async fn pretend(&self) {
        let t = *self.typical.lock().expect("typical lock");
        tokio::time::sleep(t.min(Duration::from_secs(2))).await;
    }

    /// The source's password check, built once per source settings.
    fn check_for(&self, source: &str) -> Option<Arc<dyn PasswordCheck>> {
        let cfg = self.cfg.read().expect("config lock").clone();
        let s = cfg.sources.iter().find(|s| s.name == source)?;
        // Built for these very settings (a reload makes new ones, and a new
        // check; the entry holds the settings, so their address is not reused).
        let mut checks = self.checks.lock().expect("checks lock");
        if let Some((k, c)) = checks.get(source) {
            if Arc::ptr_eq(k, &s.kind) {
                return Some(c.clone());
            }
        }
        let c = s.kind.password_check(s)?;
        checks.insert(source.to_string(), (s.kind.clone(), c.clone()));
        Some(c)
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
}
