//! Write-back over LDAP (and AD): a connection bound as the write-back
//! account (or the source's bind), a base search to read the current value,
//! a modify (replace) to write it, and LDAP result codes put in words an
//! admin can act on.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use ldap3::{Ldap, Mod, Scope};

use super::LdapConfig;
use super::{connect, parse_entry, result_text};
use crate::config::SourceConfig;
use crate::kind::transport::{Transport, TransportError};
use crate::model::AttrValue;
use crate::store::WritebackItem;

pub struct LdapTransport {
    ldap: Ldap,
    /// The account that writes, for messages.
    bind: String,
    timeout: Duration,
}

impl LdapTransport {
    pub async fn open(cfg: &SourceConfig, l: &LdapConfig) -> Result<LdapTransport, TransportError> {
        let mut lcfg = l.clone();
        if let Some(wb) = &cfg.writeback {
            if let Some(dn) = &wb.bind_dn {
                lcfg.bind_dn = Some(dn.clone());
                lcfg.bind_password = wb.bind_password.clone();
            }
        }
        let bind = lcfg.bind_dn.clone().unwrap_or_else(|| "the anonymous bind".into());
        let timeout = Duration::from_secs(lcfg.timeout_secs);
        let ldap =
            connect(&cfg.name, &lcfg).await.map_err(|e| TransportError { code: None, message: e.to_string() })?;
        Ok(LdapTransport { ldap, bind, timeout })
    }

    /// A refused operation, in words an admin can act on.
    fn explain(&self, rc: u32, text: &str, item: &WritebackItem) -> TransportError {
        let server = result_text(rc, text);
        let message = match rc {
            50 => format!(
                "the write-back account {} lacks write access to attribute {} on entry {} ({server}); grant it, then it is retried",
                self.bind, item.attribute, item.dn
            ),
            32 => format!("entry {} no longer exists ({server})", item.dn),
            16 | 17 | 19 | 21 | 65 => {
                format!("the directory refused the value for {} on {} ({server})", item.attribute, item.dn)
            }
            _ => format!("writing {} on {} failed ({server})", item.attribute, item.dn),
        };
        TransportError { code: Some(rc), message }
    }
}

#[async_trait]
impl Transport for LdapTransport {
    async fn read(&self, item: &WritebackItem) -> Result<Option<String>, TransportError> {
        let failed = |m: String| TransportError {
            code: None,
            message: format!("reading {} on {}: {m}", item.attribute, item.dn),
        };
        // A clone of the handle: several operations share the connection.
        let mut ldap = self.ldap.clone();
        ldap.with_timeout(self.timeout);
        let read = ldap.search(&item.dn, Scope::Base, "(objectClass=*)", vec![item.attribute.as_str()]).await;
        match read.map(|r| r.success()) {
            Ok(Ok((entries, _))) => match entries.into_iter().next().map(parse_entry) {
                Some(Ok(e)) => Ok(e.first(&item.attribute.to_ascii_lowercase()).map(|v| match v {
                    AttrValue::Text(t) => t.clone(),
                    AttrValue::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                })),
                Some(Err(m)) => Err(failed(m)),
                None => Ok(None),
            },
            Ok(Err(ldap3::LdapError::LdapResult { result })) => Err(self.explain(result.rc, &result.text, item)),
            Ok(Err(e)) | Err(e) => Err(failed(e.to_string())),
        }
    }

    async fn write(&self, item: &WritebackItem) -> Result<(), TransportError> {
        let values: HashSet<String> = item.value.iter().cloned().collect();
        let mut ldap = self.ldap.clone();
        ldap.with_timeout(self.timeout);
        match ldap.modify(&item.dn, vec![Mod::Replace(item.attribute.clone(), values)]).await {
            Ok(res) if res.rc == 0 => Ok(()),
            Ok(res) => Err(self.explain(res.rc, &res.text, item)),
            Err(e) => {
                Err(TransportError { code: None, message: format!("writing {} on {}: {e}", item.attribute, item.dn) })
            }
        }
    }

    async fn close(mut self: Box<Self>) {
        let _ = self.ldap.unbind().await;
    }
}
