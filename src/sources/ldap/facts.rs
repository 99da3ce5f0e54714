//! What LDAP directories mean by their own attributes, turned into neutral
//! [`Facts`](crate::model::Facts) for the core: Active Directory's objectGUID (the identity, as
//! the standard GUID string), userAccountControl (disabled), primaryGroupID
//! and objectSid (a user's primary group, which is not in `member`), and
//! 389 Directory Server's nsAccountLock (disabled).

use std::sync::Arc;

use crate::model::{AttrValue, EntryKind, RawEntry};
use crate::sources::Interpret;

/// The attributes the interpretation needs, beyond the mapped ones.
pub fn extra_user_attributes(ad: bool) -> &'static [&'static str] {
    if ad {
        &["useraccountcontrol", "primarygroupid"]
    } else {
        &["nsaccountlock"]
    }
}

pub fn extra_group_attributes(ad: bool) -> &'static [&'static str] {
    if ad {
        &["objectsid"]
    } else {
        &[]
    }
}

/// The interpretation for a source: AD's, or plain LDAP's (389 DS locks).
/// `id_attribute` is the source's (lower-case).
pub fn interpreter(ad: bool, id_attribute: &str) -> Interpret {
    let guid_id = ad && id_attribute == "objectguid";
    Arc::new(move |kind, e: &mut RawEntry| {
        if guid_id {
            e.facts.id = Some(match e.first("objectguid").map(AttrValue::bytes) {
                Some(b) if b.len() == 16 => Ok(guid_string(b)),
                Some(_) => Err("objectGUID is not 16 bytes".into()),
                None => Err("missing identity attribute objectGUID".into()),
            });
        }
        match (ad, kind) {
            (true, EntryKind::User) => {
                e.facts.disabled = Some(number(e, "useraccountcontrol").is_some_and(|uac| uac & 0x2 != 0));
                if let Some(rid) = number(e, "primarygroupid") {
                    e.facts.member_of.push(format!("rid:{rid}"));
                }
            }
            (true, EntryKind::Group) => {
                if let Some(rid) = e.first("objectsid").and_then(|v| sid_rid(v.bytes())) {
                    e.facts.keys.push(format!("rid:{rid}"));
                }
            }
            (false, EntryKind::User) => {
                let locked = matches!(e.first("nsaccountlock"), Some(AttrValue::Text(t)) if t.trim().eq_ignore_ascii_case("true"));
                if locked {
                    e.facts.disabled = Some(true);
                }
            }
            (false, EntryKind::Group) => {}
        }
    })
}

fn number(entry: &RawEntry, attr: &str) -> Option<u64> {
    match entry.first(attr)? {
        AttrValue::Text(t) => t.trim().parse::<i64>().ok().map(|v| v as u64),
        AttrValue::Binary(_) => None,
    }
}

/// The standard text form of an AD objectGUID: the first three fields are
/// little-endian.
pub fn guid_string(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// The RID of an objectSid: its last sub-authority, little-endian.
pub fn sid_rid(b: &[u8]) -> Option<u32> {
    // revision, sub-authority count, 6-byte authority, then 4 bytes per sub-authority
    let count = *b.get(1)? as usize;
    if b.len() != 8 + 4 * count || count == 0 {
        return None;
    }
    let last = &b[b.len() - 4..];
    Some(u32::from_le_bytes([last[0], last[1], last[2], last[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_guids_and_sids() {
        let g = [0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0];
        assert_eq!(guid_string(&g), "12345678-1234-5678-1234-56789abcdef0");
        // S-1-5-21-1-2-3-513
        let mut sid = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21u32, 1, 2, 3, 513] {
            sid.extend(sub.to_le_bytes());
        }
        assert_eq!(sid_rid(&sid), Some(513));
        assert_eq!(sid_rid(&sid[..10]), None);
    }

    #[test]
    fn ad_entries_become_neutral_facts() {
        let f = interpreter(true, "objectguid");
        let mut u = RawEntry::new("cn=a");
        u.push("objectGUID", AttrValue::Binary(vec![1; 16]));
        u.push("userAccountControl", AttrValue::Text("514".into()));
        u.push("primaryGroupID", AttrValue::Text("513".into()));
        f(EntryKind::User, &mut u);
        assert_eq!(u.facts.id, Some(Ok("01010101-0101-0101-0101-010101010101".into())));
        assert_eq!((u.facts.disabled, u.facts.member_of.as_slice()), (Some(true), &["rid:513".to_string()][..]));
        let mut short = RawEntry::new("cn=b");
        short.push("objectGUID", AttrValue::Binary(vec![1; 3]));
        f(EntryKind::User, &mut short);
        assert_eq!(short.facts.id, Some(Err("objectGUID is not 16 bytes".into())));
        let plain = interpreter(false, "entryuuid");
        let mut locked = RawEntry::new("uid=c");
        locked.push("nsAccountLock", AttrValue::Text("TRUE".into()));
        plain(EntryKind::User, &mut locked);
        assert_eq!((locked.facts.disabled, locked.facts.id.clone()), (Some(true), None));
    }
}
