//! Connecting to an LDAP server: plain, StartTLS or LDAPS (with an optional
//! private CA), a simple bind, and Active Directory's reasons for a refused
//! bind. Used by the source and by write-back.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};

use super::proto::{describe, result_text};
use super::LdapConfig;
use crate::sources::SourceError;

/// Opens a connection per the config and binds.
pub async fn connect(name: &str, cfg: &LdapConfig) -> Result<Ldap, SourceError> {
    let err = |m: String| SourceError::new(name, m);
    let mut settings =
        LdapConnSettings::new().set_conn_timeout(Duration::from_secs(cfg.timeout_secs)).set_starttls(cfg.starttls);
    if let Some(ca) = &cfg.ca_file {
        settings = settings.set_config(Arc::new(crate::tls::client_config(ca).map_err(err)?));
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &cfg.url)
        .await
        .map_err(|e| err(format!("cannot connect to {}: {}", cfg.url, describe(&e))))?;
    ldap3::drive!(conn);
    ldap.with_timeout(Duration::from_secs(cfg.timeout_secs));
    if let (Some(dn), Some(pw)) = (&cfg.bind_dn, &cfg.bind_password) {
        // An empty password would be an unauthenticated bind; config refuses it.
        let res = ldap
            .simple_bind(dn, pw.expose())
            .await
            .map_err(|e| err(format!("bind as {dn} at {}: {}", cfg.url, describe(&e))))?;
        if res.rc != 0 {
            let why = ad_bind_reason(&res.text).map(|r| format!(" — {r}")).unwrap_or_default();
            return Err(err(format!("bind as {dn} refused by {}: {}{why}", cfg.url, result_text(res.rc, &res.text))));
        }
    }
    Ok(ldap)
}

/// Active Directory explains a refused bind with `data NNN` in its text.
pub fn ad_bind_reason(text: &str) -> Option<&'static str> {
    let code = text.split("data ").nth(1)?.split(|c: char| !c.is_ascii_hexdigit()).next()?;
    Some(match code.to_ascii_lowercase().as_str() {
        "525" => "AD: no such user (data 525)",
        "52e" => "AD: invalid credentials (data 52e)",
        "530" => "AD: logon not permitted at this time (data 530)",
        "531" => "AD: logon not permitted from this workstation (data 531)",
        "532" => "AD: password expired (data 532)",
        "533" => "AD: account disabled (data 533)",
        "568" => "AD: too many security IDs (data 568)",
        "701" => "AD: account expired (data 701)",
        "773" => "AD: the password must be reset (data 773)",
        "775" => "AD: account locked out (data 775)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_bind_reasons_are_named() {
        let t = "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563";
        assert_eq!(ad_bind_reason(t), Some("AD: invalid credentials (data 52e)"));
        assert_eq!(ad_bind_reason("... data 775, v893"), Some("AD: account locked out (data 775)"));
        assert_eq!(ad_bind_reason("invalid credentials"), None);
    }
}
