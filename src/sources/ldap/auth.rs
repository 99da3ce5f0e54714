//! Checking a password against an LDAP or AD source: a simple bind as the
//! user's DN on connections of its own (a small pool, never the sync's).
//! When the bind is refused and the entry may have moved (the stored DN no
//! longer exists; OpenLDAP says "invalid credentials" for that too), the user is
//! searched again with the sync's account and an RFC 4515-escaped filter,
//! so `*`, `(`, `)`, `\` and NUL in a username cannot widen the search.
//! An entry found again must carry the stored user's identity, and so must
//! the entry a bind succeeds as (read back as the user): an entry put in
//! place of a deleted one, under the same name or DN, is another person.
//! The caller refuses empty and blank passwords before anything is sent: a
//! simple bind with an empty password is an unauthenticated bind.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope};

use super::proto::describe;
use super::{ad_bind_reason, LdapConfig};
use crate::config::{FieldSource, SourceConfig};
use crate::kind::{Account, PasswordCheck, Verdict};

/// Idle connections kept for the next check.
const POOL: usize = 8;

pub struct LdapPasswordCheck {
    name: String,
    cfg: LdapConfig,
    /// The attribute the username is mapped from (`None`: a template; no search fallback).
    username_attribute: Option<String>,
    idle: Mutex<Vec<Ldap>>,
    /// The source's own reading of an entry (AD's objectGUID as a GUID).
    interpret: crate::sources::Interpret,
}

impl LdapPasswordCheck {
    pub fn new(cfg: &SourceConfig, l: &LdapConfig) -> LdapPasswordCheck {
        let username_attribute = cfg.fields.iter().find(|f| &*f.name == "username").and_then(|f| match &f.source {
            FieldSource::Attribute(a) => Some(a.clone()),
            _ => None,
        });
        let interpret = super::facts::interpreter(l.ad, &l.query.id_attribute);
        LdapPasswordCheck {
            name: cfg.name.clone(),
            cfg: l.clone(),
            username_attribute,
            idle: Mutex::new(Vec::new()),
            interpret,
        }
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
            settings = settings.set_config(std::sync::Arc::new(crate::tls::client_config(ca)?));
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
    /// With `who`, a successful bind is checked to be the stored user's
    /// entry ([`BOUND_AS_OTHER`] when it is not).
    async fn bind(&self, dn: &str, password: &str, who: Option<&Account<'_>>) -> Result<(u32, String), String> {
        // A pooled connection may have been closed by the server: one retry on a new one.
        for _ in 0..2 {
            let (mut c, pooled) = self.connection().await?;
            match c.simple_bind(dn, password).await {
                Ok(res) => {
                    let mut rc = res.rc;
                    if let (0, Some(who)) = (rc, who) {
                        if let Verdict::Refused(_) = self.accept_as(&mut c, dn, who).await {
                            rc = BOUND_AS_OTHER;
                        }
                    }
                    self.give_back(c);
                    return Ok((rc, res.text));
                }
                Err(e) if pooled => {
                    tracing::debug!(source = %self.name, "a pooled connection failed ({}); reconnecting", describe(&e))
                }
                Err(e) => return Err(format!("bind at {}: {}", self.cfg.url, describe(&e))),
            }
        }
        Err(format!("bind at {}: the connection failed twice", self.cfg.url))
    }

    /// The identity of the entry at `dn` as `ldap` (bound as the user) may
    /// read it, computed as a sync computes it (`None`: not readable).
    async fn identity(&self, ldap: &mut Ldap, dn: &str) -> Option<String> {
        let id_attr = self.cfg.query.id_attribute.clone();
        let (entries, _) =
            ldap.search(dn, Scope::Base, "(objectClass=*)", vec![id_attr.as_str()]).await.ok()?.success().ok()?;
        let entry = super::proto::parse_entry(entries.into_iter().next()?).ok()?;
        self.id_of(entry)
    }

    fn id_of(&self, mut entry: crate::model::RawEntry) -> Option<String> {
        (self.interpret)(crate::model::EntryKind::User, &mut entry);
        crate::engine::mapping::external_id(&entry, &self.cfg.query.id_attribute).ok()
    }

    /// The user's current DN and identity, searched with the sync's account.
    async fn find(&self, username: &str) -> Result<Option<(String, Option<String>)>, String> {
        let Some(attr) = &self.username_attribute else { return Ok(None) };
        let mut ldap = super::connect(&self.name, &self.cfg).await.map_err(|e| e.message)?;
        let filter = format!("(&{}({attr}={}))", self.cfg.query.user_filter, ldap3::ldap_escape(username));
        let mut found = Vec::new();
        for base in &self.cfg.base_dns {
            let res = ldap
                .search(base, Scope::Subtree, &filter, vec![self.cfg.query.id_attribute.as_str()])
                .await
                .map_err(|e| format!("search at {}: {}", self.cfg.url, describe(&e)))?;
            let (entries, r) = (res.0, res.1);
            if r.rc != 0 && r.rc != 32 {
                return Err(format!("search at {}: {}", self.cfg.url, super::result_text(r.rc, &r.text)));
            }
            for e in entries {
                if let Ok(e) = super::proto::parse_entry(e) {
                    found.push((e.dn.clone(), self.id_of(e)));
                }
            }
        }
        let _ = ldap.unbind().await;
        Ok(if found.len() == 1 { found.pop() } else { None })
    }

    /// A bind that succeeded as `dn`: accepted only if the entry there is
    /// still the stored user (not another entry put at its DN).
    async fn accept_as(&self, ldap: &mut Ldap, dn: &str, who: &Account<'_>) -> Verdict {
        match self.identity(ldap, dn).await {
            Some(id) if id != who.external_id => {
                tracing::warn!(
                    source = %self.name, user = %who.username, dn,
                    "the entry that accepted the password is not the stored user (another identity); refused"
                );
                Verdict::Refused(Some("the entry at the user's DN has another identity".into()))
            }
            _ => Verdict::Accepted,
        }
    }
}

#[async_trait]
impl PasswordCheck for LdapPasswordCheck {
    async fn check(&self, who: &Account<'_>, password: &str) -> Result<Verdict, String> {
        let (rc, text) = self.bind(who.dn, password, Some(who)).await?;
        let refused = match rc {
            BOUND_AS_USER => return Ok(Verdict::Accepted),
            BOUND_AS_OTHER => return Ok(Verdict::Refused(Some("another identity at the user's DN".into()))),
            // No such object (AD, some servers), or invalid credentials, which
            // OpenLDAP also answers for a DN that no longer exists.
            32 => Verdict::Refused(Some("the user's entry is no longer at its DN".into())),
            49 => Verdict::Refused(ad_bind_reason(&text).map(str::to_string)),
            51 | 52 => return Err(format!("the directory is busy or unavailable (LDAP result {rc})")),
            _ => return Ok(Verdict::Refused(Some(super::result_text(rc, &text)))),
        };
        // The entry may have moved since the last sync: find it again, and
        // try once more only if it now lives elsewhere and is the same
        // entry (its identity): a new entry with the same name is another
        // person, whatever password it was given.
        let Some((current, id)) = self.find(who.username).await? else { return Ok(refused) };
        if crate::model::normalize_dn(&current) == crate::model::normalize_dn(who.dn) {
            return Ok(refused);
        }
        if id.as_deref() != Some(who.external_id) {
            tracing::warn!(
                source = %self.name, user = %who.username, found = %current,
                "an entry with this username but another identity was found where the user's entry was expected; the password is not checked against it"
            );
            return Ok(refused);
        }
        match self.bind(&current, password, Some(who)).await? {
            (BOUND_AS_USER, _) => Ok(Verdict::Accepted),
            (BOUND_AS_OTHER, _) => Ok(Verdict::Refused(Some("another identity at the user's DN".into()))),
            (51 | 52, _) => Err("the directory is busy or unavailable".into()),
            (_, text) => Ok(Verdict::Refused(ad_bind_reason(&text).map(str::to_string))),
        }
    }

    /// A bind of a DN no entry has, under the first base DN: the directory
    /// refuses it the way it refuses a wrong password.
    async fn decoy(&self, password: &str) {
        let base = self.cfg.base_dns.first().map(String::as_str).unwrap_or("");
        let dn = format!("cn=dirsync-decoy-{},{base}", crate::sources::program::reap::new_tag());
        let _ = self.bind(&dn, password, None).await;
    }
}

/// [`LdapPasswordCheck::bind`]'s answers besides LDAP result codes: bound,
/// and the entry is (or may be) the stored user; bound, but it is another.
const BOUND_AS_USER: u32 = 0;
const BOUND_AS_OTHER: u32 = u32::MAX;
