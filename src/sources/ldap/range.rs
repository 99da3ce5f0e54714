//! Range retrieval (MS-ADTS 3.1.1.3.1.3.3): Active Directory returns a large
//! multi-valued attribute (a group's `member` past 1,500 values) as
//! `member;range=0-1499` with no plain `member`; the rest is read with
//! `member;range=1500-*` and so on until a range ends in `*`.

use std::time::Duration;

use ldap3::{Ldap, Scope};

use crate::model::RawEntry;

/// Folds any `ATTR;range=lo-hi` values of `entry` into `ATTR`; returns the
/// next range start when values remain on the server.
pub fn collect(entry: &mut RawEntry, attr: &str) -> Option<u32> {
    let prefix = format!("{attr};range=");
    let pos = entry.attrs.iter().position(|(n, _)| n.starts_with(&prefix))?;
    let (name, values) = entry.attrs.remove(pos);
    let next = next_start(&name[prefix.len()..]);
    match entry.attrs.iter_mut().find(|(n, _)| n == attr) {
        Some((_, vs)) => vs.extend(values),
        None => entry.attrs.push((attr.to_string(), values)),
    }
    next
}

/// "0-1499" → Some(1500); "1500-*" → None.
fn next_start(range: &str) -> Option<u32> {
    let (_, hi) = range.split_once('-')?;
    if hi == "*" {
        return None;
    }
    hi.parse::<u32>().ok().map(|h| h + 1)
}

/// Reads the remaining ranges of `attr` on `entry`'s object.
pub async fn complete(
    ldap: &mut Ldap,
    entry: &mut RawEntry,
    attr: &str,
    mut start: u32,
    timeout: Duration,
) -> Result<(), String> {
    loop {
        ldap.with_timeout(timeout);
        let wanted = format!("{attr};range={start}-*");
        let (entries, _) = ldap
            .search(&entry.dn, Scope::Base, "(objectClass=*)", vec![wanted.as_str()])
            .await
            .map_err(|e| e.to_string())?
            .success()
            .map_err(|e| e.to_string())?;
        let Some(re) = entries.into_iter().next() else { return Err("the object is gone".into()) };
        let mut part = super::proto::parse_entry(re)?;
        let next = collect(&mut part, attr);
        let values = part.attrs.into_iter().find(|(n, _)| n == attr).map(|(_, v)| v).unwrap_or_default();
        if let Some((_, vs)) = entry.attrs.iter_mut().find(|(n, _)| n == attr) {
            vs.extend(values);
        }
        match next {
            None => return Ok(()),
            Some(n) if n > start => start = n,
            Some(_) => return Err(format!("the server's ranges do not advance past {start}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttrValue;

    #[test]
    fn ranged_values_fold_into_the_attribute() {
        let mut e = RawEntry::new("cn=g");
        e.push("member;range=0-1", AttrValue::Text("a".into()));
        e.push("member;range=0-1", AttrValue::Text("b".into()));
        assert_eq!(collect(&mut e, "member"), Some(2));
        assert_eq!(e.values("member").len(), 2);
        let mut last = RawEntry::new("cn=g");
        last.push("member;range=2-*", AttrValue::Text("c".into()));
        assert_eq!(collect(&mut last, "member"), None);
        assert_eq!(last.values("member").len(), 1);
        let mut plain = RawEntry::new("cn=g");
        plain.push("member", AttrValue::Text("a".into()));
        assert_eq!(collect(&mut plain, "member"), None);
    }
}
