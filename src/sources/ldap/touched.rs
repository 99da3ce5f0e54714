//! The LDAP source's read of the entries a persistent search named (live
//! sync on 389 Directory Server): each changed DN read again as a user and
//! as a group, the groups that list it, and the identities that are gone
//! (deleted, or moved out of the filters) as the delta's deletions. The
//! nightly full read stays the safety net.

use ldap3::{Ldap, Scope};

use super::proto::{describe, parse_entry};
use super::LdapSource;
use crate::kind::live::Touched;
use crate::kind::source::{EntrySink, FetchCounts, Fetched, SourceError};
use crate::model::{Delta, EntryKind, RawEntry};

impl LdapSource {
    pub(super) async fn read_touched(&self, sink: EntrySink, touched: &Touched) -> Result<Fetched, SourceError> {
        let sink = sink.interpreted(self.interpret.clone());
        let mut ldap = self.connect().await?;
        ldap.with_timeout(std::time::Duration::from_secs(self.cfg.timeout_secs));
        let mut batcher = sink.batcher();
        let mut delta = Delta::default();
        let mut counts = FetchCounts::default();
        let mut groups_sent: rustc_hash::FxHashSet<String> = Default::default();
        for dn in &touched.dns {
            match self.one(&mut ldap, dn, &self.user_filter, &self.user_attrs).await? {
                Found::Entry(e) => {
                    counts.users += 1;
                    batcher.push(EntryKind::User, e).await.map_err(|m| self.err(m))?;
                }
                Found::OutOfScope(id) => {
                    delta.deleted_users.insert(id);
                }
                Found::Missing => {}
            }
            if let Some(gf) = &self.group_filter {
                match self.one(&mut ldap, dn, gf, &self.group_attrs).await? {
                    Found::Entry(e) => {
                        if groups_sent.insert(e.dn.to_ascii_lowercase()) {
                            counts.groups += 1;
                            batcher.push(EntryKind::Group, e).await.map_err(|m| self.err(m))?;
                        }
                    }
                    Found::OutOfScope(id) => {
                        delta.deleted_groups.insert(id);
                    }
                    Found::Missing => {}
                }
                // The groups that list it, whole (their member lists are kept whole).
                let f = format!("(&{gf}({}={}))", self.member_attribute, ldap3::ldap_escape(dn.as_str()));
                for base in &self.cfg.base_dns {
                    for e in self.all(&mut ldap, base, Scope::Subtree, &f, &self.group_attrs).await? {
                        if groups_sent.insert(e.dn.to_ascii_lowercase()) {
                            counts.groups += 1;
                            batcher.push(EntryKind::Group, e).await.map_err(|m| self.err(m))?;
                        }
                    }
                }
            }
        }
        for id in &touched.gone {
            delta.deleted_users.insert(id.clone());
            delta.deleted_groups.insert(id.clone());
        }
        batcher.flush().await.map_err(|m| self.err(m))?;
        let _ = ldap.unbind().await;
        Ok(Fetched { counts, delta: Some(delta), next_state: None, ..Fetched::default() })
    }

    /// One entry by DN: as `filter` sees it, or its identity when it exists
    /// but the filter no longer matches it.
    async fn one(&self, ldap: &mut Ldap, dn: &str, filter: &str, attrs: &[String]) -> Result<Found, SourceError> {
        if let Some(e) = self.all(ldap, dn, Scope::Base, filter, attrs).await?.pop() {
            return Ok(Found::Entry(e));
        }
        let id_attr = vec![self.cfg.query.id_attribute.clone()];
        let Some(e) = self.all(ldap, dn, Scope::Base, "(objectClass=*)", &id_attr).await?.pop() else {
            return Ok(Found::Missing);
        };
        Ok(self.identity(e).map(Found::OutOfScope).unwrap_or(Found::Missing))
    }

    /// Every entry of one search (small: a base read, or the groups of one DN).
    async fn all(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<RawEntry>, SourceError> {
        let res = ldap
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| self.err(format!("reading {base}: {}", describe(&e))))?;
        // The entry is gone since it was named (noSuchObject): nothing to read.
        if res.1.rc == 32 {
            return Ok(Vec::new());
        }
        let (entries, _) = res.success().map_err(|e| self.err(format!("reading {base}: {}", describe(&e))))?;
        entries.into_iter().map(|re| parse_entry(re).map_err(|m| self.err(format!("malformed entry: {m}")))).collect()
    }
}

impl LdapSource {
    /// An entry's identity as a read would compute it.
    pub(super) fn identity(&self, mut e: RawEntry) -> Option<String> {
        (self.interpret)(EntryKind::User, &mut e);
        crate::engine::mapping::external_id(&e, &self.cfg.query.id_attribute).ok()
    }
}

enum Found {
    Entry(RawEntry),
    /// It exists, outside the filter: its identity.
    OutOfScope(String),
    Missing,
}
