//! Active Directory incremental reads by update sequence number. After a read
//! the DC's `highestCommittedUSN` (taken *before* the read, so nothing written
//! during it is skipped) and its `invocationId` are saved. The next read asks
//! for `(uSNChanged>=USN+1)` and finds deletions in the Deleted Objects
//! container with the Show Deleted control. USNs belong to one DC: another
//! invocationId (another DC, a restore) means a full read.
//!
//! What a USN query cannot see: an object moved out of the search bases or no
//! longer matching the filter. The periodic full read (`full_every`) catches
//! those; we chose the Deleted Objects container over a full comparison for
//! deletions because it costs what was deleted, not what exists.

use std::time::Duration;

use ldap3::adapters::PagedResults;
use ldap3::controls::RawControl;
use ldap3::{Ldap, Scope};
use serde::{Deserialize, Serialize};

use super::facts::guid_string;
use super::proto::{describe, parse_entry};
use crate::model::AttrValue;

const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";

/// The saved position: which DC, and how far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsnState {
    pub invocation_id: String,
    pub usn: u64,
}

impl UsnState {
    pub fn parse(s: &str) -> Option<UsnState> {
        serde_json::from_str(s).ok()
    }
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }
}

/// The DC's current position and its naming context.
pub struct DcPosition {
    pub state: UsnState,
    pub naming_context: String,
}

fn text(e: &crate::model::RawEntry, attr: &str) -> Option<String> {
    match e.first(attr)? {
        AttrValue::Text(t) => Some(t.clone()),
        AttrValue::Binary(_) => None,
    }
}

/// Reads highestCommittedUSN, the naming context and the DC's invocationId.
pub async fn position(ldap: &mut Ldap, timeout: Duration) -> Result<DcPosition, String> {
    ldap.with_timeout(timeout);
    let attrs = vec!["highestCommittedUSN", "dsServiceName", "defaultNamingContext"];
    let (entries, _) = ldap
        .search("", Scope::Base, "(objectClass=*)", attrs)
        .await
        .and_then(|r| r.success())
        .map_err(|e| format!("reading the root DSE: {}", describe(&e)))?;
    let root = parse_entry(entries.into_iter().next().ok_or("the root DSE is empty")?)?;
    let usn = text(&root, "highestcommittedusn")
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or("the root DSE has no highestCommittedUSN (not an Active Directory DC?)")?;
    let service = text(&root, "dsservicename").ok_or("the root DSE has no dsServiceName")?;
    let naming_context = text(&root, "defaultnamingcontext").ok_or("the root DSE has no defaultNamingContext")?;
    ldap.with_timeout(timeout);
    let (entries, _) = ldap
        .search(&service, Scope::Base, "(objectClass=*)", vec!["invocationId"])
        .await
        .and_then(|r| r.success())
        .map_err(|e| format!("reading the DC's invocationId: {}", describe(&e)))?;
    let ntds = parse_entry(entries.into_iter().next().ok_or("the DC's NTDS Settings object is missing")?)?;
    let id = ntds.first("invocationid").map(AttrValue::bytes).filter(|b| b.len() == 16).ok_or("no invocationId")?;
    Ok(DcPosition { state: UsnState { invocation_id: guid_string(id), usn }, naming_context })
}

/// The filter for objects changed after `usn`.
pub fn changed_since(filter: &str, usn: u64) -> String {
    format!("(&{filter}(uSNChanged>={}))", usn + 1)
}

/// objectGUIDs of objects deleted after `usn` (tombstones in Deleted Objects).
pub async fn deleted_since(
    ldap: &mut Ldap,
    naming_context: &str,
    usn: u64,
    page_size: i32,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let base = format!("CN=Deleted Objects,{naming_context}");
    let filter = format!("(&(isDeleted=TRUE)(uSNChanged>={}))", usn + 1);
    ldap.with_controls(vec![RawControl { ctype: SHOW_DELETED_OID.into(), crit: true, val: None }]);
    ldap.with_timeout(timeout);
    let err = |e: ldap3::LdapError| format!("reading deleted objects under {base}: {}", describe(&e));
    let mut stream = ldap
        .streaming_search_with(PagedResults::new(page_size), &base, Scope::Subtree, &filter, vec!["objectGUID"])
        .await
        .map_err(err)?;
    let mut ids = Vec::new();
    while let Some(re) = stream.next().await.map_err(err)? {
        if re.is_ref() || re.is_intermediate() {
            continue;
        }
        let e = parse_entry(re)?;
        if let Some(b) = e.first("objectguid").map(AttrValue::bytes).filter(|b| b.len() == 16) {
            ids.push(guid_string(b));
        }
    }
    let res = stream.finish().await;
    if res.rc != 0 {
        return Err(format!("reading deleted objects under {base}: {}", super::proto::result_text(res.rc, &res.text)));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_filters_compose() {
        let s = UsnState { invocation_id: "24ed9b8c-4379-4bb0-bc68-9c66471ebbde".into(), usn: 3991 };
        assert_eq!(UsnState::parse(&s.encode()), Some(s));
        assert!(UsnState::parse("{\"users\": \"x\"}").is_none(), "an RFC 4533 state is not a USN state");
        assert_eq!(changed_since("(objectClass=group)", 41), "(&(objectClass=group)(uSNChanged>=42))");
    }
}
