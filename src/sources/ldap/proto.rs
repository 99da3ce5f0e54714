//! LDAP protocol helpers at the bottom of the LDAP source: result codes in
//! words, ldap3 errors in words, and search entries parsed without panicking.

use ldap3::asn1::{StructureTag, PL};
use ldap3::{LdapError, ResultEntry};

use crate::model::{AttrValue, RawEntry};

/// An LDAP result code with its name and the server's text.
pub fn result_text(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        11 => "adminLimitExceeded",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        _ => "error",
    };
    if text.is_empty() {
        format!("{name} (rc={rc})")
    } else {
        format!("{name} (rc={rc}): {text}")
    }
}

/// A readable reason for an ldap3 error (connection, TLS, timeout, result).
pub(crate) fn describe(e: &LdapError) -> String {
    match e {
        LdapError::LdapResult { result } => result_text(result.rc, &result.text),
        LdapError::Timeout { .. } => "timed out".into(),
        other => other.to_string(),
    }
}

/// Turns a SearchResultEntry into a [`RawEntry`] without panicking on
/// malformed data (ldap3's `SearchEntry::construct` panics).
pub(crate) fn parse_entry(re: ResultEntry) -> Result<RawEntry, String> {
    let tags = match re.0.match_id(4).and_then(|t| t.expect_constructed()) {
        Some(t) => t,
        None => return Err("not a SearchResultEntry".into()),
    };
    let mut tags = tags.into_iter();
    let dn = prim(tags.next()).ok_or("missing DN")?;
    let dn = String::from_utf8(dn).map_err(|_| "DN is not UTF-8".to_string())?;
    let mut entry = RawEntry::new(dn);
    let attrs = tags.next().and_then(|t| t.expect_constructed()).ok_or("missing attribute list")?;
    for pa in attrs {
        let mut parts = pa.expect_constructed().ok_or("bad attribute")?.into_iter();
        let name = prim(parts.next()).ok_or("bad attribute name")?;
        let mut name = String::from_utf8(name).map_err(|_| "attribute name is not UTF-8".to_string())?;
        let vals = parts.next().and_then(|t| t.expect_constructed()).ok_or("bad attribute values")?;
        name.make_ascii_lowercase();
        let mut values = Vec::with_capacity(vals.len());
        for v in vals {
            let bytes = prim(Some(v)).ok_or("bad attribute value")?;
            values.push(match String::from_utf8(bytes) {
                Ok(s) => AttrValue::Text(s),
                Err(e) => AttrValue::Binary(e.into_bytes()),
            });
        }
        match entry.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, vs)) => vs.extend(values),
            None => entry.attrs.push((name, values)),
        }
    }
    Ok(entry)
}

fn prim(t: Option<StructureTag>) -> Option<Vec<u8>> {
    match t?.payload {
        PL::P(bytes) => Some(bytes),
        PL::C(_) => None,
    }
}
