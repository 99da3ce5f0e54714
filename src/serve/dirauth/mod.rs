//! Authentication of users against their directory, for applications
//! (`POST /api/auth`, `dirsync auth`). The store decides who may try (a user
//! it knows and holds active: the application's truth); the user's source
//! decides whether the password is right (a bind as the user). The answer
//! never says which of the two failed, and an unknown or disabled user costs
//! what a real check costs (a decoy check against a directory: a bind it
//! refuses, a call of the authentication program), not a delay.
//! Refused before anything is sent: an empty or blank password, one over
//! 1 KiB, a username with control characters. Attempts are rate-limited
//! ([`limiter`]): the API's by client and (client, user), the admin page's
//! by address and (address, user), apart, so failures on the page never
//! lock an application's users out. No password is logged, kept or stored.

pub mod limiter;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use crate::config::AuthLimits;
use crate::kind::{Account, PasswordCheck, Verdict};
use crate::model::{name_key, Status};
use crate::serve::runner::ConfigHandle;

use self::limiter::{Attempt, Limiter};
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

type Built = (Arc<dyn crate::kind::Kind>, Arc<dyn PasswordCheck>);

/// Checks passwords; one per service, shared by its requests.
pub struct Authenticator {
    cfg: ConfigHandle,
    store: Arc<dyn Store>,
    /// Per source: the settings it was built for, and the check.
    checks: Mutex<HashMap<String, Built>>,
    api: Limiter,
    page: Limiter,
    counts: Mutex<AuthCounts>,
}

/// Who asks for a password check, for its rate limits.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// `POST /api/auth` from this client.
    Api { client: &'a str },
    /// The admin page's sign-in, from this address.
    Page { address: Option<IpAddr> },
    /// `dirsync auth` on the command line.
    Cli,
}

impl Authenticator {
    pub fn new(cfg: ConfigHandle, store: Arc<dyn Store>) -> Authenticator {
        Authenticator {
            cfg,
            store,
            checks: Mutex::default(),
            api: Limiter::default(),
            page: Limiter::default(),
            counts: Mutex::default(),
        }
    }

    pub fn counts(&self) -> AuthCounts {
        self.counts.lock().expect("counts lock").clone()
    }

    fn limits_config(&self) -> AuthLimits {
        self.cfg.read().expect("config lock").server.as_ref().map(|s| s.auth).unwrap_or_default()
    }

    /// Takes the attempt's places in its rate limits (before any check), or
    /// says how long to wait.
    pub fn reserve(&self, username: &str, origin: Origin<'_>) -> Result<Attempt<'_>, AuthError> {
        let limits = self.limits_config();
        let user = name_key(username);
        let (limiter, keys) = match origin {
            Origin::Api { client } => (
                &self.api,
                vec![
                    (format!("user\0{client}\0{user}"), limits.failures_per_user),
                    (format!("client\0{client}"), limits.failures_per_address),
                ],
            ),
            Origin::Cli => (&self.api, vec![(format!("user\0\0{user}"), limits.failures_per_user)]),
            Origin::Page { address } => {
                let a = address.map(|a| a.to_string()).unwrap_or_default();
                (
                    &self.page,
                    vec![
                        (format!("user\0{a}\0{user}"), limits.failures_per_user),
                        (format!("address\0{a}"), limits.failures_per_address),
                    ],
                )
            }
        };
        limiter.begin(keys).map_err(|retry_after| {
            self.counts.lock().expect("counts lock").rate_limited += 1;
            AuthError::RateLimited { retry_after }
        })
    }

    /// Counts an outcome checked elsewhere (the page's local admin).
    pub fn count(&self, ok: bool) {
        let mut c = self.counts.lock().expect("counts lock");
        if ok {
            c.ok += 1;
        } else {
            c.invalid += 1;
        }
    }

    /// Checks `password` for `username`, within the rate limits of `origin`.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        origin: Origin<'_>,
    ) -> Result<Authenticated, AuthError> {
        let attempt = self.reserve(username, origin)?;
        let outcome = self.check(username, password).await;
        match &outcome {
            Err(AuthError::InvalidCredentials) => attempt.failed(),
            // A success, or a directory that could not be asked: not the caller's failure.
            _ => attempt.succeeded(),
        }
        outcome
    }

    /// Checks `password` for `username`, outside any rate limit (the caller
    /// holds an [`Attempt`]).
    pub async fn check(&self, username: &str, password: &str) -> Result<Authenticated, AuthError> {
        let outcome = self.verify(username, password).await;
        let mut counts = self.counts.lock().expect("counts lock");
        match &outcome {
            Ok(_) => counts.ok += 1,
            Err(AuthError::InvalidCredentials) => counts.invalid += 1,
            Err(AuthError::RateLimited { .. }) => counts.rate_limited += 1,
            Err(_) => counts.unavailable += 1,
        }
        outcome
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
            let Some(u) = s.user_by_name(&name)? else { return Ok(Err(None)) };
            if u.status != Status::Active {
                return Ok(Err(Some(u.source.to_string())));
            }
            let groups = s.groups_of_user(u.id)?;
            Ok(Ok((u, groups)))
        })
        .await?;
        // A disabled user costs what a check against its source costs.
        let found = match found {
            Ok(f) => Some(f),
            Err(Some(source)) => {
                self.decoy(Some(&source), password).await;
                return Err(AuthError::InvalidCredentials);
            }
            Err(None) => None,
        };
        let Some((user, groups)) = found else {
            self.decoy(None, password).await;
            return Err(AuthError::InvalidCredentials);
        };
        let Some(check) = self.check_for(&user.source) else {
            // The user's source cannot check passwords (an LDIF file, Entra ID).
            warn!(user = %user.username, source = %user.source, "{}", self.cannot_check(&user.source));
            self.decoy(None, password).await;
            return Err(AuthError::InvalidCredentials);
        };
        let who = Account { dn: &user.dn, username: &user.username, external_id: &user.external_id };
        match check.check(&who, password).await {
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

    /// A check that cannot succeed, costing what a real one costs: against
    /// `source` when it can check passwords, else the first source that can.
    async fn decoy(&self, source: Option<&str>, password: &str) {
        let cfg = self.cfg.read().expect("config lock").clone();
        let check =
            source.and_then(|s| self.check_for(s)).or_else(|| cfg.sources.iter().find_map(|s| self.check_for(&s.name)));
        if let Some(c) = check {
            c.decoy(password).await;
        }
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
