//! The config keys both cloud kinds read the same way: an endpoint URL
//! (checked by [`check_url`], no trailing slash), the limits on throttling
//! waits, request time and concurrency, the refusal of an LDAP write-back
//! account, and the field sources as the config file spells them.

use std::collections::HashMap;

use super::check_url;
use crate::config::{ConfigError, Section};

/// `max_retry_wait_secs`, `timeout_secs`, `concurrency`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total wait on throttling per run (0 to 3600, default 120).
    pub max_retry_wait_secs: u64,
    /// Per request (1 to 3600, default 60).
    pub timeout_secs: u64,
    /// Requests in flight (1 to 32, default 4).
    pub concurrency: usize,
}

impl Limits {
    pub fn parse(s: &mut Section<'_>) -> Result<Limits, ConfigError> {
        let mut int = |k: &str, default: i64, min: i64, max: i64| -> Result<i64, ConfigError> {
            match s.integer(k)? {
                None => Ok(default),
                Some(v) if (min..=max).contains(&v) => Ok(v),
                Some(v) => Err(s.err(k, format!("expected {min} to {max}, got {v}"))),
            }
        };
        Ok(Limits {
            max_retry_wait_secs: int("max_retry_wait_secs", 120, 0, 3600)? as u64,
            timeout_secs: int("timeout_secs", 60, 1, 3600)? as u64,
            concurrency: int("concurrency", 4, 1, 32)? as usize,
        })
    }
}

/// Endpoint `k` (or `default`), checked, without a trailing slash.
pub fn endpoint(s: &mut Section<'_>, k: &str, default: &str) -> Result<String, ConfigError> {
    let u = s.string(k)?.unwrap_or_else(|| default.to_string());
    check_url(&u).map_err(|m| s.err(k, m))?;
    Ok(u.trim_end_matches('/').to_string())
}

/// Refuses `[sources.writeback]` keys for an LDAP write account: a cloud
/// kind writes back with its own credential (`uses` says which).
pub fn refuse_write_account(s: &Section<'_>, type_name: &str, uses: &str) -> Result<(), ConfigError> {
    for k in ["bind_dn", "bind_password", "bind_password_file", "bind_password_env"] {
        if s.peek("writeback").and_then(|w| w.get(k)).is_some() {
            return Err(s.err(
                &format!("writeback.{k}"),
                format!("is not used by type = \"{type_name}\": write-back uses {uses}"),
            ));
        }
    }
    Ok(())
}

/// The field sources as the config file spells them (strings, `attribute`
/// and `{name}` in templates), keyed by their lower-case form.
pub fn spellings(fields: Option<&toml::Value>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut add = |a: &str| {
        out.insert(a.to_ascii_lowercase(), a.to_string());
    };
    for v in fields.and_then(|f| f.as_table()).into_iter().flat_map(|t| t.values()) {
        match v {
            toml::Value::String(a) => add(a),
            toml::Value::Table(t) => {
                if let Some(a) = t.get("attribute").and_then(|a| a.as_str()) {
                    add(a);
                }
                if let Some(tpl) = t.get("template").and_then(|a| a.as_str()) {
                    for part in tpl.split('{').skip(1) {
                        if let Some((name, _)) = part.split_once('}') {
                            add(name.trim());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}
