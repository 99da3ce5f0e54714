//! The configuration file (TOML), read in two stages: the raw values as the
//! admin typed them, then one validated [`Config`] that nothing re-checks.
//! Every error names the file, the key and what is expected; every path is
//! relative to the config file; secrets are read here into [`Secret`](crate::secret::Secret)s.

pub mod server;
mod source;
pub mod webhooks;
pub mod writeback;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::kind::fields::{self, FieldSource, FieldSpec, TemplatePart, Transform};
pub use crate::kind::incremental::{self, parse_duration, Incremental};
pub use crate::kind::live::Live;
pub use crate::kind::schedule::{CronPattern, Schedule};
pub use crate::kind::section::{self, Section};
pub use crate::kind::settings::{
    is_secret_key, ConfigError, DirectoryQuery, MemberSyntax, OnMissing, Role, Safety, SafetyOverride, SourceConfig,
};
pub use server::{AdminConfig, AuthLimits, Client, Scope, ServerConfig};
pub use webhooks::{Events, Start, WebhookConfig};
pub use writeback::{Charset, CodeSpec, OnConflict, Writeback};

use crate::kind::Registration;
use crate::model::Name;
pub use crate::store::StoreConfig;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    pub store: StoreConfig,
    pub sources: Vec<SourceConfig>,
    pub rules: Vec<Rule>,
    pub safety: Safety,
    /// `[codes]`: generated values per field name.
    pub codes: BTreeMap<String, CodeSpec>,
    /// Things that work but deserve attention (e.g. a literal password).
    pub warnings: Vec<String>,
    /// `[server]`, for `dirsync serve` (`None`: the defaults, no API clients).
    pub server: Option<ServerConfig>,
    /// `[schedule]`: the default for every source.
    pub schedule: Schedule,
}

/// A provisioning rule, applied when a user is created.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Effective membership (nested groups included); `None`: every new user.
    pub when_member_of: Option<Name>,
    /// Only users from this source; `None`: any source.
    pub source: Option<String>,
    pub set: BTreeMap<String, String>,
}

// ---- raw stage --------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: Option<toml::Table>,
    #[serde(default)]
    sources: Vec<toml::Table>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    safety: Option<RawSafety>,
    #[serde(default)]
    codes: Option<toml::Table>,
    #[serde(default)]
    server: Option<toml::Table>,
    #[serde(default)]
    schedule: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    when_member_of: Option<String>,
    source: Option<String>,
    set: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSafety {
    on_missing: Option<String>,
    max_delete_percent: Option<f64>,
    max_delete_count: Option<i64>,
}

// ---- loading -----------------------------------------------------------------

impl Config {
    /// [`Config::load`] with another set of source kinds (see [`Config::parse_with`]).
    pub fn load_with(path: &Path, kinds: &[Registration]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => " (`dirsync init` writes an example; --config names another file)",
                _ => "",
            };
            ConfigError::new(path, "", format!("cannot read the config file: {e}{hint}"))
        })?;
        Config::parse_with(&text, path, kinds)
    }

    /// [`Config::parse`] with another set of source kinds (an application's
    /// own kinds next to dirsync's: `[KINDS, &[mine]].concat()`).
    pub fn parse_with(text: &str, path: &Path, kinds: &[Registration]) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, path, &e))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };
        let err = |key: String, msg: String| ConfigError::new(path, key, msg);
        let mut warnings = Vec::new();
        let store = match raw.store {
            None => StoreConfig::sqlite(resolve("dirsync.db")),
            Some(t) => parse_store(&mut Section::new(t, "store", path, &resolve, &mut warnings))?,
        };
        let schedule = match raw.schedule {
            None => Schedule::default(),
            Some(t) => {
                let mut sec = Section::new(t, "schedule", path, &resolve, &mut warnings);
                server::parse_schedule(&mut sec, &Schedule::default())?
            }
        };
        let server = match raw.server {
            None => None,
            Some(t) => Some(server::parse_server(&mut Section::new(t, "server", path, &resolve, &mut warnings))?),
        };
        let read = SourcesRead { kinds, schedule: &schedule, path, resolve: &resolve, err: &err };
        let sources = read.parse(raw.sources, &mut warnings)?;
        if let Some(src) = server.as_ref().and_then(|s| s.admin.source.as_deref()) {
            if !sources.iter().any(|s| s.name == src) {
                return Err(err("server.admin.source".into(), format!("no source is named \"{src}\"")));
            }
        }
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| parse_rule(i, r, &sources, &err))
            .collect::<Result<_, _>>()?;
        let safety = parse_safety(raw.safety, &err)?;
        let codes = match &raw.codes {
            Some(t) => writeback::parse_codes(t, &|k, m| err(k, m))?,
            None => BTreeMap::new(),
        };
        Ok(Config { file: path.to_path_buf(), store, sources, rules, safety, codes, warnings, server, schedule })
    }
}

/// What a config mistake is reported with: the key and what is expected.
type KeyError<'a> = dyn Fn(String, String) -> ConfigError + 'a;

/// `[store]`: a SQLite file (`path`, default `dirsync.db` beside the
/// config) or a PostgreSQL database (`url` with `password`, `ca_file` and
/// `pool_size`).
fn parse_store(sec: &mut Section) -> Result<StoreConfig, ConfigError> {
    const KNOWN: &[&str] = &["path", "url", "password", "password_file", "password_env", "ca_file", "pool_size"];
    let store_path = sec.string("path")?;
    let Some(url) = sec.string("url")? else {
        sec.finish("a SQLite store ([store] path; PostgreSQL's keys go with [store] url)", KNOWN)?;
        let store_path = store_path.as_deref().unwrap_or("dirsync.db");
        if store_path.trim().is_empty() {
            return Err(sec.err("path", "expected the store file's path, got an empty string"));
        }
        let store = StoreConfig::sqlite(sec.resolve(store_path));
        if let Some(p) = store.sqlite_path().filter(|p| p.is_dir()) {
            return Err(sec.err("path", format!("{} is a folder; expected a file (e.g. \"dirsync.db\")", p.display())));
        }
        return Ok(store);
    };
    if store_path.is_some() {
        return Err(sec.err("path", "give either path (a SQLite file) or url (PostgreSQL), not both"));
    }
    let shown = crate::store::postgres::describe_url(&url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) || url.parse::<url::Url>().is_err() {
        return Err(
            sec.err("url", format!("expected a PostgreSQL URL (postgres://user@host:port/database), got {shown}"))
        );
    }
    let password = sec.secret("password")?;
    let ca_file = sec.string("ca_file")?.map(|p| sec.resolve(&p));
    if let Some(ca) = ca_file.as_ref().filter(|p| !p.is_file()) {
        return Err(sec.err("ca_file", format!("{} is not a readable file", ca.display())));
    }
    let wants_tls = url.parse::<url::Url>().is_ok_and(|u| {
        u.query_pairs().any(|(k, v)| k == "sslmode" && matches!(&*v, "require" | "verify-ca" | "verify-full"))
    });
    if wants_tls && ca_file.is_none() {
        return Err(sec.err(
            "ca_file",
            "missing: the url asks for TLS (sslmode); set ca_file to the CA that signed the server's certificate (its name is verified)",
        ));
    }
    let pool_size = match sec.integer("pool_size")? {
        None => 8,
        Some(n) if (2..=1000).contains(&n) => n as usize,
        Some(n) => {
            let why = "a sync's write session holds one connection while the rest of dirsync reads with another";
            return Err(
                sec.err("pool_size", format!("expected a number of connections from 2 to 1000 ({why}), got {n}"))
            );
        }
    };
    sec.finish("a PostgreSQL store ([store] url)", KNOWN)?;
    Ok(StoreConfig::Postgres(crate::store::postgres::PgConfig { url, password, ca_file, pool_size }))
}

/// What reading the `[[sources]]` tables needs from the file around them.
struct SourcesRead<'a> {
    kinds: &'a [Registration],
    schedule: &'a Schedule,
    path: &'a Path,
    resolve: &'a dyn Fn(&str) -> PathBuf,
    err: &'a KeyError<'a>,
}

impl SourcesRead<'_> {
    /// Every `[[sources]]` table (at least one, names unique), then checked
    /// against each other.
    fn parse(&self, tables: Vec<toml::Table>, warnings: &mut Vec<String>) -> Result<Vec<SourceConfig>, ConfigError> {
        let err = self.err;
        if tables.is_empty() {
            return Err(err("sources".into(), "no [[sources]] configured (expected at least one)".into()));
        }
        let mut names = HashSet::new();
        let mut sources = Vec::new();
        for (i, table) in tables.into_iter().enumerate() {
            let mut section = Section::new(table, format!("sources[{i}]"), self.path, self.resolve, warnings);
            let s = source::parse_source(&mut section, self.kinds, self.schedule)?;
            if !names.insert(s.name.clone()) {
                return Err(err(
                    format!("sources[{i}].name"),
                    format!("\"{}\" is used by two sources (names must be unique)", s.name),
                ));
            }
            sources.push(s);
        }
        source::settle_sources(&mut sources, self.path)?;
        Ok(sources)
    }
}

/// One `[[rules]]` table. A rule may not set the username, nor a field a
/// source updates from the directory (every run would flip it back).
fn parse_rule(i: usize, rr: RawRule, sources: &[SourceConfig], err: &KeyError) -> Result<Rule, ConfigError> {
    let mut set = BTreeMap::new();
    for (k, v) in rr.set {
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(err(
                    format!("rules[{i}].set.{k}"),
                    format!("expected a string or number, got {}", other.type_str()),
                ))
            }
        };
        if k == "username" {
            return Err(err(format!("rules[{i}].set.username"), "rules cannot set the username".into()));
        }
        for (si, src) in sources.iter().enumerate() {
            if rr.source.as_ref().is_some_and(|s| *s != src.name) {
                continue;
            }
            if src.fields.iter().any(|f| *f.name == *k && f.on_update) {
                return Err(err(
                    format!("rules[{i}].set.{k}"),
                    format!("sources[{si}].fields.{k} is mapped from the directory on update, so the rule's value would be overwritten at the next sync; map it with on = [\"create\"] or drop it from the rule"),
                ));
            }
        }
        set.insert(k, s);
    }
    if let Some(s) = &rr.source {
        if !sources.iter().any(|src| src.name == *s) {
            return Err(err(format!("rules[{i}].source"), format!("no source is named \"{s}\"")));
        }
    }
    Ok(Rule { when_member_of: rr.when_member_of.map(Name::new), source: rr.source, set })
}

/// `[safety]`: what happens to users gone from their source, and the
/// thresholds above which a run is held.
fn parse_safety(raw: Option<RawSafety>, err: &KeyError) -> Result<Safety, ConfigError> {
    let Some(rs) = raw else { return Ok(Safety::default()) };
    let over = crate::kind::settings::parse_safety_values(
        rs.on_missing.as_deref(),
        rs.max_delete_percent,
        rs.max_delete_count,
        &|k, m| err(format!("safety.{k}"), m),
    )?;
    Ok(Safety::default().with(&over))
}

/// A TOML syntax or type error as a [`ConfigError`]: the line and what is
/// wrong, never the offending text. The parser's own message quotes the
/// line (and type errors quote the value), which for `bind_password = …`
/// would print the password, and for `--config` pointing at a password file
/// the file's content: on such lines only the key and what is expected are
/// said.
fn toml_error(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let Some(span) = e.span() else {
        return ConfigError::new(path, "", format!("not valid TOML: {}", scrub(text, e.message())));
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let column = text[..start].rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line.split('=').next().unwrap_or("").trim().trim_matches('"').trim_matches('\'').to_string();
    if !line.contains('=') || is_secret_key(line) {
        let what = if line.contains('=') && !key.is_empty() {
            format!("{key}: not a valid value (expected a quoted string such as \"...\"; the value is not shown because it may be a secret)")
        } else {
            "not a TOML key = value line (the line is not shown: is --config pointing at the right file?)".into()
        };
        return ConfigError::new(path, "", format!("line {line_no}, column {column}: {what}"));
    }
    ConfigError::new(path, "", format!("line {line_no}, column {column}: {}", scrub(text, e.message())))
}

/// Removes from `message` any value written on a secret key's line.
fn scrub(text: &str, message: &str) -> String {
    let mut m = message.to_string();
    for line in text.lines().filter(|l| is_secret_key(l)) {
        if let Some((_, v)) = line.split_once('=') {
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'' || c == '{' || c == '}').trim();
            if !v.is_empty() && m.contains(v) {
                m = m.replace(v, "***");
            }
        }
    }
    m
}

#[cfg(test)]
mod tests;
