//! The LDAP source's change channel (live sync): one long search the server
//! answers as changes happen, each answer a nudge. Which one depends on the
//! server: OpenLDAP's syncprov (RFC 4533 refreshAndPersist from the saved
//! cookie), Active Directory's change notifications (1.2.840.113556.1.4.528,
//! one search per naming context the source reads; Samba's AD DC has them
//! too), or a persistent search (2.16.840.1.113730.3.4.3: 389 Directory
//! Server). The data itself is read by the run a nudge triggers, with the
//! source's incremental read. A root DSE read every [`KEEPALIVE`] proves
//! the server still answers: a server that stalls is a lost connection,
//! not a quiet one.

use std::time::Duration;

use ldap3::controls::{RawControl, RefreshMode, SyncRequest};
use ldap3::{Ldap, Scope};
use tokio::sync::mpsc;

use super::proto::{describe, result_text};
use super::sync::{Cookies, SYNC_REQUEST_OID};
use super::LdapSource;
use crate::engine::sync::AbortOnDrop;
use crate::kind::live::{Nudge, WatchEnd};

pub const NOTIFICATION_OID: &str = "1.2.840.113556.1.4.528";
pub const PERSISTENT_SEARCH_OID: &str = "2.16.840.1.113730.3.4.3";
const REFRESH_REQUIRED: u32 = 4096;
/// How often an idle channel checks that the server still answers.
const KEEPALIVE: Duration = Duration::from_secs(20);

/// The channel a server offers, from its root DSE.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Channel {
    Syncprov,
    Notification(Vec<String>),
    Persistent,
}

/// What the root DSE says about channels.
struct Dse {
    controls: Vec<String>,
    openldap: bool,
    naming_contexts: Vec<String>,
}

impl LdapSource {
    /// Holds the server's change channel until it ends.
    pub(super) async fn watch_changes(&self, nudges: mpsc::Sender<Nudge>, since: Option<&str>) -> WatchEnd {
        let mut ldap = match self.connect().await {
            Ok(l) => l,
            Err(e) => return WatchEnd::Lost(e.message),
        };
        let timeout = Duration::from_secs(self.cfg.timeout_secs);
        let dse = match root_dse(&mut ldap, timeout).await {
            Ok(d) => d,
            Err(m) => return WatchEnd::Lost(m),
        };
        let channel = match choose(&dse, self.cfg.ad, &self.cfg.base_dns) {
            Some(c) => c,
            None => {
                let _ = ldap.unbind().await;
                return WatchEnd::Unsupported(format!(
                    "{} offers no change channel (no RFC 4533 syncprov, AD change notification or persistent search control)",
                    self.cfg.url
                ));
            }
        };
        let mut searches = Vec::new();
        // A persistent search names its entries: the run reads just those.
        let mut names: Option<Names> = None;
        let how = match &channel {
            Channel::Syncprov => {
                let cookie = since.and_then(Cookies::parse).and_then(|c| c.users).and_then(|c| Cookies::decode(&c));
                let ctrl: RawControl =
                    SyncRequest { mode: RefreshMode::RefreshAndPersist, cookie, reload_hint: false }.into();
                searches.push((self.cfg.base_dn.clone(), self.scope_filter(), vec![critical(ctrl)]));
                "RFC 4533 refreshAndPersist (syncprov)"
            }
            Channel::Notification(ncs) => {
                for nc in ncs {
                    let ctrl = RawControl { ctype: NOTIFICATION_OID.into(), crit: true, val: None };
                    searches.push((nc.clone(), "(objectClass=*)".to_string(), vec![ctrl, show_deleted()]));
                }
                "AD change notifications"
            }
            Channel::Persistent => {
                let ctrl = RawControl { ctype: PERSISTENT_SEARCH_OID.into(), crit: true, val: Some(psearch_value()) };
                let (interpret, id) = (self.interpret.clone(), self.cfg.query.id_attribute.clone());
                names = Some(Names {
                    attrs: vec![id.clone()],
                    identity: std::sync::Arc::new(move |mut e| {
                        interpret(crate::model::EntryKind::User, &mut e);
                        crate::engine::mapping::external_id(&e, &id).ok()
                    }),
                });
                for base in &self.cfg.base_dns {
                    searches.push((base.clone(), self.scope_filter(), vec![ctrl.clone()]));
                }
                "persistent search"
            }
        };
        let (ends_tx, mut ends) = mpsc::channel::<WatchEnd>(searches.len().max(1));
        let mut tasks = AbortOnDrop(Vec::new());
        for (base, filter, ctrl) in searches {
            let (l, n, e, names) = (ldap.clone(), nudges.clone(), ends_tx.clone(), names.clone());
            tasks.0.push(tokio::spawn(async move {
                let _ = e.send(follow(l, Search { base, filter, ctrls: ctrl }, names, n).await).await;
            }));
        }
        if nudges.send(Nudge::Listening { how: how.to_string() }).await.is_err() {
            return WatchEnd::Stopped;
        }
        let mut tick = tokio::time::interval(KEEPALIVE);
        tick.tick().await;
        loop {
            tokio::select! {
                end = ends.recv() => return end.unwrap_or(WatchEnd::Stopped),
                _ = tick.tick() => {
                    if let Err(m) = root_dse(&mut ldap, timeout).await {
                        return WatchEnd::Lost(format!("the server stopped answering: {m}"));
                    }
                }
                _ = nudges.closed() => return WatchEnd::Stopped,
            }
        }
    }

    /// Users and groups in one filter (the channel watches both).
    fn scope_filter(&self) -> String {
        match &self.group_filter {
            Some(g) => format!("(|{}{})", self.user_filter, g),
            None => self.user_filter.clone(),
        }
    }
}

/// One long search.
struct Search {
    base: String,
    filter: String,
    ctrls: Vec<RawControl>,
}

/// How a channel that names its entries gets their identities.
#[derive(Clone)]
struct Names {
    attrs: Vec<String>,
    identity: std::sync::Arc<dyn Fn(crate::model::RawEntry) -> Option<String> + Send + Sync>,
}

const ENTRY_CHANGE_OID: &str = "2.16.840.1.113730.3.4.7";

/// The change type of an Entry Change Notification control (1 add, 2
/// delete, 4 modify, 8 modDN): `SEQUENCE { changeType ENUMERATED, ... }`.
fn change_type(val: &[u8]) -> Option<u8> {
    match val {
        [0x30, len, 0x0a, 0x01, t, ..] if (*len as usize) + 2 == val.len() && *len < 0x80 => Some(*t),
        _ => None,
    }
}

/// What one entry of a persistent search says: the entry changed (its DN),
/// or was deleted (its identity).
fn touched(re: ldap3::ResultEntry, names: &Names) -> Option<Nudge> {
    let deleted = re.1.iter().any(|ldap3::controls::Control(_, raw)| {
        raw.ctype == ENTRY_CHANGE_OID && raw.val.as_deref().and_then(change_type) == Some(2)
    });
    let entry = super::proto::parse_entry(re).ok()?;
    let dn = entry.dn.clone();
    if deleted {
        let id = (names.identity)(entry)?;
        return Some(Nudge::Touched { dn, gone: Some(id) });
    }
    Some(Nudge::Touched { dn, gone: None })
}

/// AD's Show Deleted control: without it a deletion (the object moved to
/// Deleted Objects) is not notified.
fn show_deleted() -> RawControl {
    RawControl { ctype: "1.2.840.113556.1.4.417".into(), crit: false, val: None }
}

fn critical(mut c: RawControl) -> RawControl {
    c.crit = true;
    c
}

/// The persistent search control's value: every change type (add, delete,
/// modify, modDN), changes only, with entry change notifications.
fn psearch_value() -> Vec<u8> {
    vec![0x30, 0x09, 0x02, 0x01, 0x0f, 0x01, 0x01, 0xff, 0x01, 0x01, 0xff]
}

/// The channel to use: syncprov on OpenLDAP, notifications on AD (on the
/// naming contexts that hold the source's bases), else a persistent search.
fn choose(dse: &Dse, ad: bool, bases: &[String]) -> Option<Channel> {
    let has = |oid: &str| dse.controls.iter().any(|c| c == oid);
    if dse.openldap && has(SYNC_REQUEST_OID) {
        return Some(Channel::Syncprov);
    }
    if ad && has(NOTIFICATION_OID) {
        let mut ncs: Vec<String> = Vec::new();
        for b in bases {
            let nc = dse
                .naming_contexts
                .iter()
                .filter(|nc| ends_with_dn(b, nc))
                .max_by_key(|nc| nc.len())
                .cloned()
                .unwrap_or_else(|| b.clone());
            if !ncs.iter().any(|n| n.eq_ignore_ascii_case(&nc)) {
                ncs.push(nc);
            }
        }
        return Some(Channel::Notification(ncs));
    }
    has(PERSISTENT_SEARCH_OID).then_some(Channel::Persistent)
}

/// Whether `dn` is `suffix` or under it (case-insensitive, spaces after
/// commas ignored).
fn ends_with_dn(dn: &str, suffix: &str) -> bool {
    let norm = |s: &str| s.split(',').map(|p| p.trim().to_ascii_lowercase()).collect::<Vec<_>>();
    let (d, s) = (norm(dn), norm(suffix));
    d.len() >= s.len() && d[d.len() - s.len()..] == s[..]
}

async fn root_dse(ldap: &mut Ldap, timeout: Duration) -> Result<Dse, String> {
    ldap.with_timeout(timeout);
    let attrs = vec!["supportedControl", "objectClass", "namingContexts"];
    let (entries, _) = ldap
        .search("", Scope::Base, "(objectClass=*)", attrs)
        .await
        .and_then(|r| r.success())
        .map_err(|e| format!("reading the root DSE: {}", describe(&e)))?;
    let mut dse = Dse { controls: Vec::new(), openldap: false, naming_contexts: Vec::new() };
    for e in entries {
        for (k, v) in ldap3::SearchEntry::construct(e).attrs {
            match k.to_ascii_lowercase().as_str() {
                "supportedcontrol" => dse.controls.extend(v),
                "objectclass" => dse.openldap |= v.iter().any(|c| c.eq_ignore_ascii_case("OpenLDAProotDSE")),
                "namingcontexts" => dse.naming_contexts.extend(v),
                _ => {}
            }
        }
    }
    Ok(dse)
}

/// One long search: each entry it returns is a nudge; its end says why.
async fn follow(mut ldap: Ldap, s: Search, names: Option<Names>, nudges: mpsc::Sender<Nudge>) -> WatchEnd {
    let Search { base, filter, ctrls } = s;
    ldap.with_controls(ctrls);
    let attrs = names.as_ref().map(|n| n.attrs.clone()).unwrap_or_else(|| vec!["1.1".to_string()]);
    let mut stream = match ldap.streaming_search(&base, Scope::Subtree, &filter, attrs).await {
        Ok(s) => s,
        Err(e) => return WatchEnd::Lost(format!("the change channel under {base}: {}", describe(&e))),
    };
    loop {
        match stream.next().await {
            Ok(Some(re)) => {
                if re.is_intermediate() || re.is_ref() {
                    continue;
                }
                let sent = match names.as_ref().map(|n| touched(re, n)) {
                    // A named entry must arrive: waits for room.
                    Some(Some(n)) => nudges.send(n).await.is_ok(),
                    Some(None) => nudges.send(Nudge::Changed).await.is_ok(),
                    // A nudge already waiting covers this change too.
                    None => !matches!(nudges.try_send(Nudge::Changed), Err(mpsc::error::TrySendError::Closed(_))),
                };
                if !sent {
                    return WatchEnd::Stopped;
                }
            }
            Ok(None) => break,
            Err(e) => return WatchEnd::Lost(format!("the change channel under {base}: {}", describe(&e))),
        }
    }
    let res = stream.finish().await;
    match res.rc {
        REFRESH_REQUIRED => WatchEnd::Stale(result_text(res.rc, &res.text)),
        // slapd's answer to a cookie from its future (a restored backup).
        53 if res.text.contains("newer than provider") => WatchEnd::Stale(result_text(res.rc, &res.text)),
        0 => WatchEnd::Lost(format!("the server ended the change channel under {base}")),
        rc => {
            let why = result_text(rc, &res.text);
            match rc {
                // The control itself is refused: no channel here.
                12 | 53 => WatchEnd::Unsupported(format!("the server refused the change channel under {base}: {why}")),
                _ => WatchEnd::Lost(format!("the change channel under {base}: {why}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dse(controls: &[&str], openldap: bool, ncs: &[&str]) -> Dse {
        Dse {
            controls: controls.iter().map(|s| s.to_string()).collect(),
            openldap,
            naming_contexts: ncs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn each_server_gets_its_own_channel() {
        let bases = vec!["OU=Staff, DC=corp,DC=example".to_string(), "ou=pupils,dc=corp,dc=example".to_string()];
        let ad = dse(
            &[NOTIFICATION_OID, SYNC_REQUEST_OID],
            false,
            &["DC=corp,DC=example", "CN=Configuration,DC=corp,DC=example"],
        );
        assert_eq!(
            choose(&ad, true, &bases),
            Some(Channel::Notification(vec!["DC=corp,DC=example".into()])),
            "one search per naming context"
        );
        assert_eq!(choose(&dse(&[SYNC_REQUEST_OID], true, &[]), false, &bases), Some(Channel::Syncprov));
        let ds389 = dse(&[SYNC_REQUEST_OID, PERSISTENT_SEARCH_OID], false, &[]);
        assert_eq!(choose(&ds389, false, &bases), Some(Channel::Persistent), "RFC 4533 is trusted from OpenLDAP only");
        assert_eq!(choose(&dse(&[], true, &[]), false, &bases), None);
    }

    #[test]
    fn entry_change_notifications_say_their_change_type() {
        assert_eq!(change_type(&[0x30, 0x03, 0x0a, 0x01, 0x02]), Some(2), "delete");
        let moddn = [0x30, 0x0a, 0x0a, 0x01, 0x08, 0x04, 0x05, b'u', b'i', b'd', b'=', b'x'];
        assert_eq!(change_type(&moddn), Some(8), "modDN with its previous DN");
        assert_eq!(change_type(&[0x30, 0x05, 0x0a, 0x01]), None, "truncated");
        assert_eq!(change_type(&[]), None);
        assert_eq!(change_type(&[0x31, 0x03, 0x0a, 0x01, 0x02]), None);
    }

    #[test]
    fn dn_suffixes_are_compared_by_component() {
        assert!(ends_with_dn("ou=x, DC=a,dc=b", "dc=a,dc=b"));
        assert!(!ends_with_dn("ou=x,dc=xa,dc=b", "dc=a,dc=b"));
        assert!(ends_with_dn("dc=a,dc=b", "dc=a,dc=b"));
    }
}
