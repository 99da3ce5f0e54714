//! RFC 4533 content synchronization, refreshOnly mode, for the LDAP source
//! (OpenLDAP's `syncprov`). Without a cookie a refresh returns every entry in
//! scope and a cookie; with one, only what changed since: changed entries
//! (state add/modify), deletions (a syncIdSet or delete states, with
//! `refreshDeletes`), or a present phase (everything still there; the rest is
//! gone). `e-syncRefreshRequired` asks for a full refresh.
//!
//! A refresh is never combined with paged results: slapd then returns one
//! page and success (checked), which would look like a complete read. The
//! bind account needs no size limit instead. ldap3's control parsers panic on
//! malformed values, so each parse runs under `catch_unwind`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use base64::Engine;
use ldap3::controls::{
    parse_syncinfo, Control, ControlType, RawControl, RefreshMode, SyncDone, SyncInfo, SyncRequest, SyncState,
};
use ldap3::{Ldap, Scope};
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use super::proto::{describe, parse_entry, result_text};
use crate::model::EntryKind;
use crate::sources::EntrySink;

pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
const REFRESH_REQUIRED: u32 = 4096;

/// The saved position of an RFC 4533 source: one cookie per search.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Cookies {
    pub users: Option<String>,
    pub groups: Option<String>,
}

impl Cookies {
    pub fn parse(state: &str) -> Option<Cookies> {
        serde_json::from_str(state).ok()
    }
    pub fn encode(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD.decode(s).ok()
    }
}

/// What one refresh returned besides its entries (which went to the sink).
#[derive(Debug, Default)]
pub struct Refresh {
    pub entries: u64,
    pub cookie: Option<Vec<u8>>,
    /// Deleted identities (refreshDeletes).
    pub deleted: Vec<String>,
    /// Set when the server used a present phase: the identities still there,
    /// including those of the entries it sent.
    pub present: Option<FxHashSet<String>>,
}

pub enum RefreshError {
    /// The cookie is no longer valid: start over with a full refresh.
    RefreshRequired(String),
    Failed(String),
}

/// Whether RFC 4533 can be trusted on this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// OpenLDAP advertising the Sync Request control (syncprov).
    Syncprov,
    /// No Sync Request control.
    None,
    /// Advertised by a server that is not OpenLDAP (389 Directory Server
    /// ties cookies to filters, sends sync UUIDs that are not entryUUIDs and
    /// says `refreshDeletes=FALSE` after listing deletions): its answers
    /// cannot prove anybody absent, so it is read in full.
    Untrusted(String),
}

/// Reads the root DSE: the Sync Request control, and who the server is.
pub async fn supported(ldap: &mut Ldap, timeout: Duration) -> Result<Support, String> {
    ldap.with_timeout(timeout);
    let (entries, res) = ldap
        .search("", Scope::Base, "(objectClass=*)", vec!["supportedControl", "objectClass", "vendorName"])
        .await
        .map_err(|e| format!("reading the root DSE: {e}"))?
        .non_error()
        .map_err(|e| format!("reading the root DSE: {e}"))?;
    let _ = res;
    let text = |e: &crate::model::RawEntry, a: &str| -> Vec<String> {
        e.values(a)
            .iter()
            .filter_map(|v| match v {
                crate::model::AttrValue::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    };
    for re in entries {
        let e = parse_entry(re)?;
        if !text(&e, "supportedcontrol").iter().any(|t| t == SYNC_REQUEST_OID) {
            continue;
        }
        if text(&e, "objectclass").iter().any(|c| c.eq_ignore_ascii_case("OpenLDAProotDSE")) {
            return Ok(Support::Syncprov);
        }
        let vendor = text(&e, "vendorname").into_iter().next().unwrap_or_else(|| "an unknown vendor".into());
        return Ok(Support::Untrusted(vendor));
    }
    Ok(Support::None)
}

/// The textual form of a 16-byte entryUUID, as the `entryUUID` attribute shows it.
pub fn uuid_string(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if b.len() != 16 {
        return hex;
    }
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// One refreshOnly search; entries go to `sink` as `kind`.
#[allow(clippy::too_many_arguments)]
pub async fn refresh(
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    attrs: &[String],
    cookie: Option<Vec<u8>>,
    kind: EntryKind,
    sink: &EntrySink,
    timeout: Duration,
) -> Result<Refresh, RefreshError> {
    let incremental = cookie.is_some();
    let mut ctrl: RawControl = SyncRequest { mode: RefreshMode::RefreshOnly, cookie, reload_hint: false }.into();
    ctrl.crit = true;
    ldap.with_controls(vec![ctrl]);
    ldap.with_timeout(timeout);
    let failed = |e: ldap3::LdapError| {
        RefreshError::Failed(format!("sync refresh under {base} with {filter}: {}", describe(&e)))
    };
    let mut stream = ldap.streaming_search(base, Scope::Subtree, filter, attrs.to_vec()).await.map_err(failed)?;
    let mut out = Refresh::default();
    let mut present: Option<FxHashSet<String>> = None;
    let mut received: Vec<String> = Vec::new();
    let mut batcher = sink.batcher();
    while let Some(re) = stream.next().await.map_err(failed)? {
        if re.is_intermediate() {
            on_sync_info(re, &mut out, &mut present)?;
            continue;
        }
        if re.is_ref() {
            continue;
        }
        let (uuid, st) = entry_state(&re, &mut out)?;
        use ldap3::controls::EntryState;
        match st {
            Some(EntryState::Present) => {
                present.get_or_insert_default().extend(uuid);
            }
            Some(EntryState::Delete) => out.deleted.extend(uuid),
            _ => {
                let entry = parse_entry(re).map_err(|m| RefreshError::Failed(format!("malformed entry: {m}")))?;
                if incremental {
                    check_sync_uuid(&entry, uuid.as_deref())?;
                }
                received.extend(uuid);
                out.entries += 1;
                batcher.push(kind, entry).await.map_err(RefreshError::Failed)?;
            }
        }
    }
    let res = stream.finish().await;
    if res.rc == 32 && out.entries == 0 {
        let holds = super::naming_contexts(ldap).await;
        return Err(RefreshError::Failed(super::missing_base(base, &holds)));
    }
    // slapd refuses a cookie from its future (a directory restored from a
    // backup) as unwillingToPerform, "consumer state is newer than
    // provider": the cookie cannot be continued, only replaced.
    if incremental && res.rc == 53 {
        return Err(RefreshError::RefreshRequired(result_text(res.rc, &res.text)));
    }
    let done = sync_done(res, base, out.entries)?;
    if done.cookie.is_some() {
        out.cookie = done.cookie;
    }
    batcher.flush().await.map_err(RefreshError::Failed)?;
    // refreshDeletes = FALSE after a cookie: a present phase; whatever was
    // neither reported present nor sent is gone.
    if incremental && !done.refresh_deletes {
        let mut p = present.unwrap_or_default();
        p.extend(received);
        out.present = Some(p);
    }
    Ok(out)
}

/// A Sync Info message: a new cookie, deletions, or a present phase's ids.
fn on_sync_info(
    re: ldap3::ResultEntry,
    out: &mut Refresh,
    present: &mut Option<FxHashSet<String>>,
) -> Result<(), RefreshError> {
    let info = catch_unwind(AssertUnwindSafe(|| parse_syncinfo(re)))
        .map_err(|_| RefreshError::Failed("malformed Sync Info message from the server".into()))?;
    let (c, ids) = match info {
        SyncInfo::NewCookie(c) => (Some(c), None),
        SyncInfo::RefreshDelete { cookie, .. } => (cookie, None),
        SyncInfo::RefreshPresent { cookie, .. } => {
            present.get_or_insert_default();
            (cookie, None)
        }
        SyncInfo::SyncIdSet { cookie, refresh_deletes, sync_uuids } => (cookie, Some((refresh_deletes, sync_uuids))),
    };
    if c.is_some() {
        out.cookie = c;
    }
    if let Some((deletes, uuids)) = ids {
        let ids = uuids.iter().map(|u| uuid_string(u));
        if deletes {
            out.deleted.extend(ids);
        } else {
            present.get_or_insert_default().extend(ids);
        }
    }
    Ok(())
}

/// An entry's Sync State control: its sync UUID and state (a cookie in it
/// is kept).
fn entry_state(
    re: &ldap3::ResultEntry,
    out: &mut Refresh,
) -> Result<(Option<String>, Option<ldap3::controls::EntryState>), RefreshError> {
    let state =
        re.1.iter()
            .find_map(|Control(t, raw)| matches!(t, Some(ControlType::SyncState)).then_some(raw))
            .map(|raw| catch_unwind(AssertUnwindSafe(|| raw.parse::<SyncState>())))
            .transpose()
            .map_err(|_| RefreshError::Failed("malformed Sync State control from the server".into()))?;
    Ok(match state {
        Some(s) => {
            if s.cookie.is_some() {
                out.cookie = s.cookie;
            }
            (Some(uuid_string(&s.entry_uuid)), Some(s.state))
        }
        None => (None, None),
    })
}

/// In an incremental refresh, the sync UUID must be the entry's entryUUID,
/// or the server's deletions and present lists name other identities than
/// ours.
fn check_sync_uuid(entry: &crate::model::RawEntry, uuid: Option<&str>) -> Result<(), RefreshError> {
    let Some(u) = uuid else { return Ok(()) };
    let own = match entry.first("entryuuid") {
        Some(crate::model::AttrValue::Text(t)) => t.eq_ignore_ascii_case(u),
        _ => false,
    };
    if own {
        return Ok(());
    }
    Err(RefreshError::RefreshRequired(format!(
        "the server's sync answer for {} does not carry its entryUUID as the sync UUID; its deletions cannot be trusted",
        crate::model::short_dn(&entry.dn)
    )))
}

/// The search's end: its result code (e-syncRefreshRequired: read in full)
/// and the Sync Done control it must carry.
fn sync_done(res: ldap3::LdapResult, base: &str, entries: u64) -> Result<SyncDone, RefreshError> {
    if res.rc == REFRESH_REQUIRED {
        return Err(RefreshError::RefreshRequired(result_text(res.rc, &res.text)));
    }
    if res.rc != 0 {
        let hint = if res.rc == 4 {
            "; an RFC 4533 refresh cannot be paged, so the bind account needs no size limit (OpenLDAP: olcLimits size=unlimited), or set [sources.incremental] enabled = false"
        } else {
            ""
        };
        return Err(RefreshError::Failed(format!(
            "sync refresh under {base} failed after {entries} entries: {}{hint}",
            result_text(res.rc, &res.text)
        )));
    }
    let done = res
        .ctrls
        .iter()
        .find_map(|Control(t, raw)| matches!(t, Some(ControlType::SyncDone)).then_some(raw))
        .map(|raw| catch_unwind(AssertUnwindSafe(|| raw.parse::<SyncDone>())))
        .transpose()
        .map_err(|_| RefreshError::Failed("malformed Sync Done control from the server".into()))?;
    done.ok_or_else(|| RefreshError::Failed("the server did not answer the sync request (no Sync Done control)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_print_like_the_entryuuid_attribute() {
        let b = [0xf4, 0x74, 0xa5, 0x36, 0x7b, 0x44, 0x10, 0x41, 0x81, 0x1e, 0x47, 0xaa, 0xc3, 0x46, 0x94, 0x9d];
        assert_eq!(uuid_string(&b), "f474a536-7b44-1041-811e-47aac346949d");
        assert_eq!(uuid_string(&[1, 2]), "0102");
    }

    #[test]
    fn cookies_round_trip() {
        let c = Cookies { users: Some(Cookies::encode(b"rid=000,csn=1")), groups: None };
        let s = serde_json::to_string(&c).unwrap();
        let back = Cookies::parse(&s).unwrap();
        assert_eq!(Cookies::decode(back.users.as_deref().unwrap()).unwrap(), b"rid=000,csn=1");
        assert!(Cookies::parse("not json").is_none());
    }
}
