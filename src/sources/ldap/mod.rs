//! The LDAP source: binds (plain, StartTLS or LDAPS, with an optional private
//! CA), then reads users and groups with RFC 2696 paged searches on two
//! connections at once (a paging cookie belongs to one search on one
//! connection). Only the attributes the mapping needs are requested. A search
//! that ends with anything but success (size or time limit, a dropped
//! connection) is an error, never "fewer users".
//!
//! The folder, bottom up: [`config`] (the kind's settings), `proto` (result codes, entry parsing), `conn`
//! (connect and bind), [`facts`] (AD's and 389 DS's attributes as neutral
//! facts), then [`range`] (AD range retrieval), [`sync`] (RFC 4533), [`usn`]
//! (AD uSNChanged), `live` and `touched` (live sync's change channel and
//! its read of the entries it names), [`writeback`]
//! (the write-back transport), and this
//! module, the source itself.

use std::time::Duration;

use async_trait::async_trait;
use ldap3::adapters::PagedResults;
use ldap3::{Ldap, LdapError, Scope};
use tracing::{debug, instrument};

pub mod auth;
pub mod config;
mod conn;
pub mod facts;
mod live;
mod proto;
pub mod range;
pub mod sync;
mod touched;
pub mod usn;
pub mod writeback;

pub use conn::{ad_bind_reason, connect};
pub use proto::result_text;
pub(crate) use proto::{describe, parse_entry};

use super::{EntrySink, FetchCounts, Fetched, Source, SourceError};
pub use config::LdapConfig;

use crate::config::{MemberSyntax, SourceConfig};
use crate::model::{Delta, EntryKind, RawEntry};
use sync::{self as ldap_sync, Cookies, RefreshError};
use usn::{self as ad_usn, UsnState};

pub struct LdapSource {
    name: String,
    cfg: LdapConfig,
    /// RFC 4533 when the server offers it (needs entryUUID as the identity).
    incremental: bool,
    /// AD: uSNChanged reads (need objectGUID as the identity).
    usn_incremental: bool,
    user_filter: String,
    group_filter: Option<String>,
    user_attrs: Vec<String>,
    group_attrs: Vec<String>,
    member_attribute: String,
    /// The attribute the username is mapped from (`None`: a template).
    username_attribute: Option<String>,
    /// AD's (or 389 DS's) attributes as neutral facts.
    interpret: super::Interpret,
}

/// The mapped attributes plus those the interpretation reads.
fn with_extra(mut attrs: Vec<String>, extra: &[&str]) -> Vec<String> {
    for a in extra {
        if !attrs.iter().any(|x| x == a) {
            attrs.push(a.to_string());
        }
    }
    attrs
}

impl LdapSource {
    pub fn new(cfg: &SourceConfig, l: &LdapConfig) -> Self {
        LdapSource {
            name: cfg.name.clone(),
            cfg: l.clone(),
            // RFC 4533 needs entryUUID as the identity and one search base.
            incremental: cfg.incremental.enabled && l.query.id_attribute == "entryuuid" && l.base_dns.len() == 1,
            usn_incremental: cfg.incremental.enabled && l.ad && l.query.id_attribute == "objectguid",
            user_filter: l.query.user_filter.clone(),
            group_filter: l.query.group_filter.clone(),
            user_attrs: with_extra(cfg.user_attributes(), facts::extra_user_attributes(l.ad)),
            group_attrs: with_extra(cfg.group_attributes(), facts::extra_group_attributes(l.ad)),
            member_attribute: l.query.member_attribute.clone(),
            username_attribute: cfg.fields.iter().find(|f| &*f.name == "username").and_then(|f| match &f.source {
                crate::config::FieldSource::Attribute(a) => Some(a.clone()),
                _ => None,
            }),
            interpret: facts::interpreter(l.ad, &l.query.id_attribute),
        }
    }

    fn err(&self, msg: impl Into<String>) -> SourceError {
        SourceError::new(&self.name, msg)
    }

    /// Connects and binds; the error says which step failed and why, never the password.
    pub async fn connect(&self) -> Result<Ldap, SourceError> {
        connect(&self.name, &self.cfg).await
    }

    #[instrument(skip(self, sink), fields(source = %self.name))]
    /// One paged search per base DN; entries under two bases are sent once.
    /// Groups whose members come in ranges (AD) are completed after the paged
    /// search, on the same connection, before they are sent.
    async fn search(
        &self,
        kind: EntryKind,
        filter: &str,
        attrs: &[String],
        sink: &EntrySink,
    ) -> Result<u64, SourceError> {
        let what = match kind {
            EntryKind::User => "users",
            EntryKind::Group => "groups",
        };
        let mut ldap = self.connect().await?;
        let timeout = Duration::from_secs(self.cfg.timeout_secs);
        let mut batcher = sink.batcher();
        let mut seen: rustc_hash::FxHashSet<String> = Default::default();
        let mut n = 0u64;
        for base in &self.cfg.base_dns {
            // Per received entry (ldap3 applies it to each read of the stream), so a
            // server that stops answering mid-search fails the run instead of hanging.
            ldap.with_timeout(timeout);
            let search_err =
                |e: LdapError| self.err(format!("searching {what} under {base} with {filter}: {}", describe(&e)));
            let mut stream = ldap
                .streaming_search_with(
                    PagedResults::new(self.cfg.page_size),
                    base,
                    Scope::Subtree,
                    filter,
                    attrs.to_vec(),
                )
                .await
                .map_err(search_err)?;
            let mut ranged: Vec<(RawEntry, u32)> = Vec::new();
            let mut count = 0u64;
            while let Some(re) = stream.next().await.map_err(search_err)? {
                if re.is_ref() || re.is_intermediate() {
                    continue;
                }
                let mut entry =
                    parse_entry(re).map_err(|m| self.err(format!("malformed entry from the server: {m}")))?;
                count += 1;
                if self.cfg.base_dns.len() > 1 && !seen.insert(crate::model::normalize_dn(&entry.dn)) {
                    continue; // under two of the bases
                }
                if kind == EntryKind::Group {
                    if let Some(next) = range::collect(&mut entry, &self.member_attribute) {
                        ranged.push((entry, next));
                        continue;
                    }
                }
                n += 1;
                batcher.push(kind, entry).await.map_err(|m| self.err(m))?;
            }
            let res = stream.finish().await;
            if res.rc == 32 && count == 0 {
                let holds = naming_contexts(&mut ldap).await;
                return Err(self.err(missing_base(base, &holds)));
            }
            if res.rc != 0 {
                let hint = match res.rc {
                    4 => "; the server stopped at its size limit: raise it for the bind account (OpenLDAP: olcLimits size=unlimited; AD: MaxPageSize) — a truncated read never counts as the whole directory",
                    3 => "; the server stopped at its time limit",
                    32 => "; check base_dn",
                    _ => "",
                };
                return Err(self.err(format!(
                    "searching {what} under {base} failed after {count} entries: {}{hint}",
                    result_text(res.rc, &res.text)
                )));
            }
            for (mut entry, next) in ranged {
                range::complete(&mut ldap, &mut entry, &self.member_attribute, next, timeout)
                    .await
                    .map_err(|m| self.err(format!("reading the members of {}: {m}", entry.dn)))?;
                n += 1;
                batcher.push(kind, entry).await.map_err(|m| self.err(m))?;
            }
        }
        batcher.flush().await.map_err(|m| self.err(m))?;
        let _ = ldap.unbind().await;
        debug!(what, n, "search done");
        Ok(n)
    }
}

/// What the server says it holds (the root DSE's `namingContexts`); empty
/// when it does not say.
pub(super) async fn naming_contexts(ldap: &mut Ldap) -> Vec<String> {
    let Ok(res) = ldap.search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"]).await else {
        return Vec::new();
    };
    let Ok((entries, _)) = res.success() else { return Vec::new() };
    entries
        .into_iter()
        .flat_map(|e| ldap3::SearchEntry::construct(e).attrs.into_iter())
        .filter(|(k, _)| k.eq_ignore_ascii_case("namingContexts"))
        .flat_map(|(_, v)| v)
        .collect()
}

/// A search base the server does not have, said with what it does have.
pub(super) fn missing_base(base: &str, holds: &[String]) -> String {
    match holds {
        [] => format!("base_dn {base} does not exist on the server (noSuchObject); check base_dn"),
        _ => format!("base_dn {base} does not exist on the server; it holds {}", holds.join(", ")),
    }
}

#[async_trait]
impl Source for LdapSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// One user entry's attribute names, all of them (`*`): a read asks
    /// only for the mapped ones.
    async fn sample_attributes(&self) -> Result<Vec<String>, SourceError> {
        let mut ldap = self.connect().await?;
        ldap.with_timeout(Duration::from_secs(self.cfg.timeout_secs));
        let base = self.cfg.base_dns.first().map(String::as_str).unwrap_or_default();
        let opts = ldap3::SearchOptions::new().sizelimit(1);
        let found = ldap.with_search_options(opts).search(base, Scope::Subtree, &self.user_filter, vec!["*"]).await;
        let _ = ldap.unbind().await;
        // A size limit of 1 ends the search with rc 4 after the one entry.
        let entries = found.map_err(|e| self.err(describe(&e)))?.0;
        Ok(entries.into_iter().flat_map(|e| ldap3::SearchEntry::construct(e).attrs.into_keys()).collect())
    }

    async fn watch(
        &self,
        nudges: tokio::sync::mpsc::Sender<crate::kind::live::Nudge>,
        since: Option<&str>,
    ) -> crate::kind::live::WatchEnd {
        self.watch_changes(nudges, since).await
    }

    async fn fetch_touched(
        &self,
        sink: EntrySink,
        touched: &crate::kind::live::Touched,
    ) -> Result<Fetched, SourceError> {
        self.read_touched(sink, touched).await
    }

    async fn fetch(&self, sink: EntrySink, since: Option<&str>) -> Result<Fetched, SourceError> {
        let sink = sink.interpreted(self.interpret.clone());
        if self.usn_incremental {
            return self.fetch_ad(sink, since).await;
        }
        if self.incremental {
            let mut probe = self.connect().await?;
            let timeout = Duration::from_secs(self.cfg.timeout_secs);
            let support = ldap_sync::supported(&mut probe, timeout).await.map_err(|m| self.err(m))?;
            let _ = probe.unbind().await;
            match support {
                ldap_sync::Support::Syncprov => return self.fetch_sync(sink, since).await,
                ldap_sync::Support::None => {
                    debug!(source = %self.name, "no RFC 4533 support on the server: paged full read")
                }
                ldap_sync::Support::Untrusted(vendor) => tracing::info!(
                    source = %self.name,
                    vendor = %vendor,
                    "the server advertises RFC 4533 but is not OpenLDAP; dirsync trusts its deletions only from OpenLDAP's syncprov: paged full read"
                ),
            }
        }
        self.fetch_paged(sink).await
    }

    async fn fetch_user(&self, sink: EntrySink, username: &str) -> Result<Fetched, SourceError> {
        let sink = sink.interpreted(self.interpret.clone());
        let Some(attr) = &self.username_attribute else {
            return Err(self.err("the username is mapped from a template: one user cannot be looked up"));
        };
        // Escaped (RFC 4515): `*`, `(`, `)`, `\\` and NUL cannot widen the search.
        let user_filter = format!("(&{}({attr}={}))", self.user_filter, ldap3::ldap_escape(username));
        // The DNs first (a small search), to ask for the groups that list them.
        let mut ldap = self.connect().await?;
        let mut dns = Vec::new();
        for base in &self.cfg.base_dns {
            let (entries, _) = ldap
                .search(base, Scope::Subtree, &user_filter, vec!["1.1"])
                .await
                .and_then(|r| r.success())
                .map_err(|e| self.err(format!("looking up {username:?} under {base}: {}", describe(&e))))?;
            dns.extend(entries.into_iter().map(|e| ldap3::SearchEntry::construct(e).dn));
        }
        let _ = ldap.unbind().await;
        if dns.is_empty() {
            return Ok(Fetched {
                counts: FetchCounts::default(),
                delta: Some(Delta::default()),
                next_state: None,
                ..Fetched::default()
            });
        }
        let users = self.search(EntryKind::User, &user_filter, &self.user_attrs, &sink).await?;
        let groups = match &self.group_filter {
            None => 0,
            Some(gf) => {
                let m = &self.member_attribute;
                let refs: String = if self.cfg.query.member_syntax == MemberSyntax::Username {
                    format!("({m}={})", ldap3::ldap_escape(username))
                } else {
                    dns.iter().map(|dn| format!("({m}={})", ldap3::ldap_escape(dn.as_str()))).collect()
                };
                let f = format!("(&{gf}(|{refs}))");
                self.search(EntryKind::Group, &f, &self.group_attrs, &sink).await?
            }
        };
        Ok(Fetched {
            counts: FetchCounts { users, groups },
            delta: Some(Delta::default()),
            next_state: None,
            ..Fetched::default()
        })
    }
}

impl LdapSource {
    /// Everything, by paged searches (users and groups on two connections).
    async fn fetch_paged(&self, sink: EntrySink) -> Result<Fetched, SourceError> {
        let users = self.search(EntryKind::User, &self.user_filter, &self.user_attrs, &sink);
        let groups = async {
            match &self.group_filter {
                Some(f) => self.search(EntryKind::Group, f, &self.group_attrs, &sink).await,
                None => Ok(0),
            }
        };
        let (users, groups) = tokio::try_join!(users, groups)?;
        Ok(Fetched { counts: FetchCounts { users, groups }, delta: None, next_state: None, ..Fetched::default() })
    }

    /// Active Directory: everything, or what changed after the saved USN on
    /// the same DC, plus the deletions since; then the DC's position as of
    /// before the read.
    async fn fetch_ad(&self, sink: EntrySink, since: Option<&str>) -> Result<Fetched, SourceError> {
        let timeout = Duration::from_secs(self.cfg.timeout_secs);
        let mut ldap = self.connect().await?;
        let pos = ad_usn::position(&mut ldap, timeout).await.map_err(|m| self.err(m))?;
        let _ = ldap.unbind().await;
        let resume = match since.and_then(UsnState::parse) {
            Some(s) if s.invocation_id == pos.state.invocation_id && s.usn <= pos.state.usn => Some(s.usn),
            Some(s) => {
                tracing::info!(
                    source = %self.name, saved = %s.invocation_id, now = %pos.state.invocation_id,
                    "another domain controller (or a restore): reading in full"
                );
                None
            }
            None => None,
        };
        let (user_filter, group_filter) = match resume {
            Some(usn) => (
                ad_usn::changed_since(&self.user_filter, usn),
                self.group_filter.as_deref().map(|f| ad_usn::changed_since(f, usn)),
            ),
            None => (self.user_filter.clone(), self.group_filter.clone()),
        };
        let users = self.search(EntryKind::User, &user_filter, &self.user_attrs, &sink);
        let groups = async {
            match &group_filter {
                Some(f) => self.search(EntryKind::Group, f, &self.group_attrs, &sink).await,
                None => Ok(0),
            }
        };
        let deleted = async {
            let Some(usn) = resume else { return Ok(None) };
            let mut ldap = self.connect().await?;
            let ids = ad_usn::deleted_since(&mut ldap, &pos.naming_context, usn, self.cfg.page_size, timeout)
                .await
                .map_err(|m| self.err(m))?;
            let _ = ldap.unbind().await;
            Ok::<_, SourceError>(Some(ids))
        };
        let (users, groups, deleted) = tokio::try_join!(users, groups, deleted)?;
        // A deleted object's kind is unknown here; identities do not collide.
        let delta = deleted.map(|ids| Delta {
            deleted_users: ids.iter().cloned().collect(),
            deleted_groups: ids.into_iter().collect(),
            ..Delta::default()
        });
        Ok(Fetched {
            counts: FetchCounts { users, groups },
            delta,
            next_state: Some(pos.state.encode()),
            ..Fetched::default()
        })
    }

    /// Reads through RFC 4533 refreshes: in full without cookies, else what
    /// changed since them.
    async fn fetch_sync(&self, sink: EntrySink, since: Option<&str>) -> Result<Fetched, SourceError> {
        let saved = since.and_then(Cookies::parse).unwrap_or_default();
        let users_cookie = saved.users.as_deref().and_then(Cookies::decode);
        let groups_cookie = saved.groups.as_deref().and_then(Cookies::decode);
        // Incremental only when every search has its cookie; else both start over.
        let incremental = users_cookie.is_some() && (self.group_filter.is_none() || groups_cookie.is_some());
        let timeout = Duration::from_secs(self.cfg.timeout_secs);
        let map_err = |e: RefreshError| match e {
            RefreshError::RefreshRequired(m) => SourceError::refresh_required(&self.name, m),
            RefreshError::Failed(m) => self.err(m),
        };
        if !incremental {
            // A full read stays paged (bounded memory, size-limit friendly). Its
            // cookie comes first, from a refresh that matches nothing: slapd's
            // cookie is the database's contextCSN whatever the filter, and what
            // changes during the read is sent again next time. A server whose
            // cookies depend on the filter answers refresh-required next time,
            // which means another full read, never a wrong one.
            let mut ldap = self.connect().await?;
            // Whatever the probe returns is thrown away, not synced.
            let (discard, mut rx) = EntrySink::channel(Default::default());
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let probe = ldap_sync::refresh(
                &mut ldap,
                &self.cfg.base_dn,
                "(!(objectClass=*))",
                &["1.1".to_string()],
                None,
                EntryKind::User,
                &discard,
                timeout,
            )
            .await
            .map_err(map_err)?;
            let _ = ldap.unbind().await;
            let mut fetched = self.fetch_paged(sink).await?;
            let cookie = probe.cookie.as_deref().map(Cookies::encode);
            let next = Cookies { users: cookie.clone(), groups: cookie };
            fetched.next_state = next.users.is_some().then(|| serde_json::to_string(&next).expect("serializable"));
            return Ok(fetched);
        }
        let (uc, gc) = (users_cookie, groups_cookie);
        let users = async {
            let mut ldap = self.connect().await?;
            let r = ldap_sync::refresh(
                &mut ldap,
                &self.cfg.base_dn,
                &self.user_filter,
                &self.user_attrs,
                uc,
                EntryKind::User,
                &sink,
                timeout,
            )
            .await
            .map_err(map_err)?;
            let _ = ldap.unbind().await;
            Ok::<_, SourceError>(r)
        };
        let groups = async {
            let Some(filter) = &self.group_filter else { return Ok(None) };
            let mut ldap = self.connect().await?;
            let r = ldap_sync::refresh(
                &mut ldap,
                &self.cfg.base_dn,
                filter,
                &self.group_attrs,
                gc,
                EntryKind::Group,
                &sink,
                timeout,
            )
            .await
            .map_err(map_err)?;
            let _ = ldap.unbind().await;
            Ok(Some(r))
        };
        let (u, g) = tokio::try_join!(users, groups)?;
        let g = g.unwrap_or_default();
        // A refresh with nothing new may carry no cookie: keep the old one.
        let next = Cookies {
            users: u.cookie.as_deref().map(Cookies::encode).or(if incremental { saved.users.clone() } else { None }),
            groups: g.cookie.as_deref().map(Cookies::encode).or(if incremental { saved.groups.clone() } else { None }),
        };
        let next_state = next.users.is_some().then(|| serde_json::to_string(&next).expect("serializable"));
        let delta = incremental.then(|| Delta {
            deleted_users: u.deleted.into_iter().collect(),
            deleted_groups: g.deleted.into_iter().collect(),
            present_users: u.present,
            present_groups: g.present,
        });
        debug!(source = %self.name, incremental, users = u.entries, groups = g.entries, "sync refresh done");
        Ok(Fetched {
            counts: FetchCounts { users: u.entries, groups: g.entries },
            delta,
            next_state,
            ..Fetched::default()
        })
    }
}
