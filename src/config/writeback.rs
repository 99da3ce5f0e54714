//! `[sources.writeback]` (pushing application-owned fields to the directory)
//! and `[codes]` (generated print codes and allocated numbers).

use std::collections::BTreeMap;

use super::{ConfigError, Section};
pub use crate::kind::settings::{OnConflict, Writeback, DEFAULT_IN_FLIGHT};

/// Reads `[sources.writeback]`; `None` unless `enabled = true`.
pub(super) fn parse_writeback(s: &mut Section<'_>) -> Result<Option<Writeback>, ConfigError> {
    let enabled = s.boolean("enabled")?;
    let bind_dn = s.string("bind_dn")?;
    let on_conflict = s.string("on_conflict")?;
    let in_flight = match s.integer("in_flight")? {
        None => DEFAULT_IN_FLIGHT,
        Some(n @ 1..=64) => n as usize,
        Some(n) => return Err(s.err("in_flight", format!("expected a number of items from 1 to 64, got {n}"))),
    };
    if enabled != Some(true) {
        // Switched off: the keys are checked for their type, the password is not read.
        for k in ["bind_password", "bind_password_file", "bind_password_env"] {
            s.string(k)?;
        }
        return Ok(None);
    }
    let bind_password = s.password()?;
    if bind_dn.is_some() != bind_password.is_some() {
        return Err(s.err("bind_dn", "give both bind_dn and a password (bind_password_file or bind_password_env), or neither to use the source's bind"));
    }
    let on_conflict = match on_conflict.as_deref().unwrap_or("report") {
        "report" => OnConflict::Report,
        "app" => OnConflict::App,
        "directory" => OnConflict::Directory,
        other => {
            return Err(s.err("on_conflict", format!("expected \"report\", \"app\" or \"directory\", got \"{other}\"")))
        }
    };
    Ok(Some(Writeback { bind_dn, bind_password, on_conflict, in_flight }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Digits,
    /// Upper-case letters and digits, without the look-alikes 0, O, 1, I.
    Alphanumeric,
}

impl Charset {
    pub fn symbols(self) -> &'static [u8] {
        match self {
            Charset::Digits => b"0123456789",
            Charset::Alphanumeric => b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789",
        }
    }
}

/// How a field's value is generated for users who lack one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeSpec {
    /// A random code from the OS's random source.
    Random { length: usize, charset: Charset, unique: bool },
    /// The lowest number in `lo..=hi` not in use.
    Allocate { lo: u64, hi: u64 },
}

pub(super) fn parse_codes(
    table: &toml::Table,
    err: &dyn Fn(String, String) -> ConfigError,
) -> Result<BTreeMap<String, CodeSpec>, ConfigError> {
    let mut out = BTreeMap::new();
    for (field, v) in table {
        let key = |k: &str| format!("codes.{field}.{k}");
        let t = v.as_table().ok_or_else(|| {
            err(format!("codes.{field}"), "expected a table such as { length = 6, charset = \"digits\", unique = true } or { allocate = \"2000-2999\" }".into())
        })?;
        let spec = if let Some(range) = t.get("allocate") {
            if t.len() > 1 {
                return Err(err(key("allocate"), "`allocate` takes no other keys".into()));
            }
            let r =
                range.as_str().ok_or_else(|| err(key("allocate"), "expected a range such as \"2000-2999\"".into()))?;
            let (lo, hi) = r
                .split_once('-')
                .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
                .filter(|(a, b)| a <= b)
                .ok_or_else(|| {
                    err(key("allocate"), format!("expected a range such as \"2000-2999\" (low-high), got \"{r}\""))
                })?;
            CodeSpec::Allocate { lo, hi }
        } else {
            for k in t.keys() {
                if !["length", "charset", "unique"].contains(&k.as_str()) {
                    return Err(err(key(k), "unknown key (expected length, charset, unique, or allocate)".into()));
                }
            }
            let length = t.get("length").and_then(|v| v.as_integer()).unwrap_or(6);
            if !(4..=32).contains(&length) {
                return Err(err(key("length"), format!("expected 4 to 32, got {length}")));
            }
            let charset = match t.get("charset").map(|v| v.as_str()) {
                None | Some(Some("digits")) => Charset::Digits,
                Some(Some("alphanumeric")) => Charset::Alphanumeric,
                _ => return Err(err(key("charset"), "expected \"digits\" or \"alphanumeric\"".into())),
            };
            let unique = match t.get("unique") {
                None => true,
                Some(v) => v.as_bool().ok_or_else(|| err(key("unique"), "expected true or false".into()))?,
            };
            CodeSpec::Random { length: length as usize, charset, unique }
        };
        out.insert(field.clone(), spec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Result<BTreeMap<String, CodeSpec>, ConfigError> {
        let t: toml::Table = toml::from_str(text).unwrap();
        parse_codes(&t, &|k, m| ConfigError::new("t.toml", k, m))
    }

    #[test]
    fn code_specs_parse_and_explain_mistakes() {
        let c = codes("print_code = { length = 6, charset = \"digits\", unique = true }\nextension = { allocate = \"2000-2999\" }").unwrap();
        assert_eq!(c["print_code"], CodeSpec::Random { length: 6, charset: Charset::Digits, unique: true });
        assert_eq!(c["extension"], CodeSpec::Allocate { lo: 2000, hi: 2999 });
        let e = codes("x = { allocate = \"3000-2000\" }").unwrap_err().to_string();
        assert!(e.contains("codes.x.allocate: expected a range"), "{e}");
        let e = codes("x = { length = 2 }").unwrap_err().to_string();
        assert!(e.contains("codes.x.length: expected 4 to 32"), "{e}");
        assert!(codes("x = { charset = \"emoji\" }").is_err());
    }
}
