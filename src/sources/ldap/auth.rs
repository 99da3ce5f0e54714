//! Checking a password against an LDAP or AD source: a simple bind as the
//! user's DN on connections of its own (a small pool, never the sync's).
//! When the bind is refused and the entry may have moved (the stored DN no
//! longer exists; OpenLDAP says "invalid credentials" for that too), the user is
//! searched again with the sync's account and an RFC 4515-escaped filter,
//! so `*`, `(`, `)`, `\` and NUL in a username cannot widen the search.
//! The caller refuses empty and blank passwords before anything is sent: a
//! simple bind with an empty password is an unauthenticated bind.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope};

use super::proto::describe;
use super::{ad_bind_reason, LdapConfig};
use crate::config::{FieldSource, SourceConfig};
use crate::sources::kind::{PasswordCheck, Verdict};

/// Idle connections kept for the next check.
const POOL: usize = 8;

pub struct LdapPasswordCheck {
    name: String,
    cfg: LdapConfig,
    /// The attribute the username is mapped from (`None`: a template; no search fallback).
    username_attribute: Option<String>,
    idle: Mutex<Vec<Ldap>>,
}

impl LdapPasswordCheck {
    pub fn new(cfg: &SourceConfig, l: &LdapConfig) -> LdapPasswordCheck {
        let username_attribute = cfg.fields.iter().find(|f| &*f.name == "username").and_then(|f| match &f.source {
            FieldSource::Attribute(a) => Some(a.clone()),
            _ => None,
        });
        LdapPasswordCheck { name: cfg.name.clone(), cfg: l.clone(), username_attribute, idle: Mutex::new(Vec::new()) }
    }

    /// A connection without a bind (the pool's, or a new one).
    async fn connection(&self) -> Result<(Ldap, bool), String> {
        if let Some(c) = self.idle.lock().expect("pool lock").pop() {
            return Ok((c, true));
        }
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(self.cfg.timeout_secs))
            .set_starttls(self.cfg.starttls);
        if let Some(ca) = &self.cfg.ca_file {
            settings = settings.set_config(std::sync::Arc::new(super::tls_config(ca)?));
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url)
            .await
            .map_err(|e| format!("cannot connect to {}: {}", self.cfg.url, describe(&e)))?;
        ldap3::drive!(conn);
        ldap.with_timeout(Duration::from_secs(self.cfg.timeout_secs));
        Ok((ldap, false))
    }

    fn give_back(&self, c: Ldap) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < POOL {
            idle.push(c);
        }
    }

    /// One bind; `Err` is a transport failure (the connection is dropped).
    async fn bind(&self, dn: &str, password: &str) -> Result<(u32, String), String> {
        // A pooled connection may have been closed by the server: one retry on a new one.
        for _ in 0..2 {
            let (mut c, pooled) = self.connection().await?;
            match c.simple_bind(dn, password).await {
                Ok(res) => {
                    self.give_back(c);
                    return Ok((res.rc, res.text));
                }
                Err(e) if pooled => {
                    tracing::debug!(source = %self.name, "a pooled connection failed ({}); reconnecting", describe(&e))
                }
                Err(e) => return Err(format!("bind at {}: {}", self.cfg.url, describe(&e))),
            }
        }
        Err(format!("bind at {}: the connection failed twice", self.cfg.url))
    }

    /// The user's current DN, searched with the sync's account.
    async fn find(&self, username: &str) -> Result<Option<String>, String> {
        let Some(attr) = &self.username_attribute else { return Ok(None) };
        let mut ldap = super::connect(&self.name, &self.cfg).await.map_err(|e| e.message)?;
        let filter = format!("(&{}({attr}={}))", self.cfg.query.user_filter, ldap3::ldap_escape(username));
        let mut found = Vec::new();
        for base in &self.cfg.base_dns {
            let res = ldap
                .search(base, Scope::Subtree, &filter, vec!["1.1"])
                .await
                .map_err(|e| format!("search at {}: {}", self.cfg.url, describe(&e)))?;
            let (entries, r) = (res.0, res.1);
            if r.rc != 0 && r.rc != 32 {
                return Err(format!("search at {}: {}", self.cfg.url, super::result_text(r.rc, &r.text)));
            }
            found.extend(entries.into_iter().map(|e| ldap3::SearchEntry::construct(e).dn));
        }
        let _ = ldap.unbind().await;
        Ok(if found.len() == 1 { found.pop() } else { None })
    }
}

#[async_trait]
impl PasswordCheck for LdapPasswordCheck {
    async fn check(&self, dn: &str, username: &str, password: &str) -> Result<Verdict, String> {
        let (rc, text) = self.bind(dn, password).await?;
        let refused = match rc {
            0 => return Ok(Verdict::Accepted),
            // No such object (AD, some servers), or invalid credentials, which
            // OpenLDAP also answers for a DN that no longer exists.
            32 => Verdict::Refused(Some("the user's entry is no longer at its DN".into())),
            49 => Verdict::Refused(ad_bind_reason(&text).map(str::to_string)),
            51 | 52 => return Err(format!("the directory is busy or unavailable (LDAP result {rc})")),
            _ => return Ok(Verdict::Refused(Some(super::result_text(rc, &text)))),
        };
        // The entry may have moved since the last sync: find it again, and
        // try once more only if it now lives elsewhere.
        let Some(current) = self.find(username).await? else { return Ok(refused) };
        if crate::model::normalize_dn(&current) == crate::model::normalize_dn(dn) {
            return Ok(refused);
        }
        match self.bind(&current, password).await? {
            (0, _) => Ok(Verdict::Accepted),
            (51 | 52, _) => Err("the directory is busy or unavailable".into()),
            (_, text) => Ok(Verdict::Refused(ad_bind_reason(&text).map(str::to_string))),
        }
    }
}
