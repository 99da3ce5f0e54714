//! The configuration file (TOML), read in two stages: the raw values as the
//! admin typed them, then one validated [`Config`] that nothing re-checks.
//! Every error names the file, the key and what is expected; every path is
//! relative to the config file; secrets are read here into [`Secret`]s.

pub mod fields;
pub mod incremental;
pub mod section;
pub mod server;
mod source;
pub mod writeback;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

pub use fields::{FieldSource, FieldSpec, TemplatePart, Transform};
pub use incremental::{parse_duration, Incremental};
pub use section::Section;
pub use server::{AdminConfig, AuthLimits, Client, CronPattern, Schedule, Scope, ServerConfig};
pub use writeback::{Charset, CodeSpec, OnConflict, Writeback};

use crate::model::Name;
use crate::secret::Secret;
use crate::sources::kind::{Kind, Registration};

/// A configuration mistake: which file, which key, what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: impl Into<PathBuf>, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { file: file.into(), key: key.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

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

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
}

/// One `[[sources]]` table: what every source kind has. What is particular
/// to a kind (its connection, an LDAP-shaped query) is in its [`Kind`],
/// parsed by the kind's module (see `sources::KINDS`).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub kind: Arc<dyn Kind>,
    pub fields: Vec<FieldSpec>,
    pub incremental: Incremental,
    /// Create users that are disabled in the directory (AD's
    /// userAccountControl, 389 DS's nsAccountLock); default false.
    pub import_disabled: bool,
    /// Only effective members of these groups (names or DNs) are synced.
    pub scope_groups: Vec<String>,
    /// `[sources.writeback]` when enabled (sources that can be written to).
    pub writeback: Option<Writeback>,
    /// When `dirsync serve` runs this source: `[schedule]` with
    /// `[sources.schedule]` over it.
    pub schedule: Schedule,
    /// 1 is the highest: a username two sources claim belongs to the source
    /// with the higher priority. Default: the order in the file.
    pub priority: u32,
    /// Whether the source owns users or only adds fields to others' users.
    pub role: Role,
}

/// What a source does with its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Creates, updates, renames, disables and deletes the users it owns.
    Primary,
    /// Only sets the fields it maps on users of other sources, matched on
    /// `match_on` (a field name; its value is read into the `username` slot).
    Enrich { match_on: String },
}

impl SourceConfig {
    /// Whether the source only adds fields to other sources' users.
    pub fn is_enrich(&self) -> bool {
        matches!(self.role, Role::Enrich { .. })
    }
}

/// What an LDAP-shaped source (LDAP, AD, LDIF) is asked and how its entries
/// are read: filters, the group name, member and identity attributes. Every
/// kind has one (the filters are LDAP's; other kinds leave them empty);
/// attribute names are lower-case, as entries' attribute names are.
#[derive(Debug, Clone, Default)]
pub struct DirectoryQuery {
    pub user_filter: String,
    pub group_filter: Option<String>,
    pub group_name_attribute: String,
    pub member_attribute: String,
    /// What the member attribute's values are.
    pub member_syntax: MemberSyntax,
    pub id_attribute: String,
}

/// What a group's member values name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemberSyntax {
    /// Entries, by DN (`member`, `uniqueMember`), or by external id.
    #[default]
    Dn,
    /// Users, by username (`memberUid`, table-shaped kinds).
    Username,
}

impl SourceConfig {
    /// How the core reads the source's entries (see [`Kind::query`]).
    pub fn query(&self) -> &DirectoryQuery {
        self.kind.query()
    }

    /// The kind's own settings, for code that knows the kind
    /// (`cfg.settings::<LdapConfig>()`).
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        self.kind.as_any().downcast_ref()
    }

    /// A stable digest of what the source is asked and how its entries are
    /// mapped. A saved incremental position is only valid for the same one:
    /// a new filter, base or field mapping needs a full read.
    pub fn fingerprint(&self) -> String {
        // (The text of the digest is kept as it was: a changed digest forces a full read.)
        let place = self.kind.fingerprint_place();
        let q = self.query();
        let text = format!(
            "{place}|{}|{:?}|{}|{}|{}|{:?}",
            q.user_filter, q.group_filter, q.group_name_attribute, q.member_attribute, q.id_attribute, self.fields
        );
        // FNV-1a, 64 bits: stable across builds, unlike std's hasher.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in text.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }

    /// Whether group members are usernames (`memberUid`) rather than DNs.
    pub fn members_are_usernames(&self) -> bool {
        self.query().member_syntax == MemberSyntax::Username
    }

    /// The attributes a user search must return (lower-case, de-duplicated).
    pub fn user_attributes(&self) -> Vec<String> {
        let mut attrs = vec![self.query().id_attribute.clone()];
        for f in &self.fields {
            attrs.extend(f.attributes());
        }
        dedup(attrs)
    }

    /// The attributes a group search must return.
    pub fn group_attributes(&self) -> Vec<String> {
        let q = self.query();
        dedup(vec![q.id_attribute.clone(), q.group_name_attribute.clone(), q.member_attribute.clone()])
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.into_iter().filter(|a| seen.insert(a.clone())).collect()
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMissing {
    Disable,
    Delete,
    Keep,
}

#[derive(Debug, Clone)]
pub struct Safety {
    pub on_missing: OnMissing,
    pub max_delete_percent: f64,
    pub max_delete_count: u64,
}

impl Default for Safety {
    fn default() -> Self {
        Safety { on_missing: OnMissing::Disable, max_delete_percent: 20.0, max_delete_count: 500 }
    }
}

// ---- raw stage --------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: Option<RawStore>,
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
struct RawStore {
    path: Option<String>,
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
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, crate::sources::KINDS)
    }

    /// [`Config::load`] with another set of source kinds (see [`Config::parse_with`]).
    pub fn load_with(path: &Path, kinds: &[Registration]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, "", format!("cannot read the config file: {e}")))?;
        Config::parse_with(&text, path, kinds)
    }

    /// Validates config text as if read from `path` (relative paths resolve
    /// against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_with(text, path, crate::sources::KINDS)
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

        let store_path = raw.store.and_then(|s| s.path);
        let store_path = store_path.as_deref().unwrap_or("dirsync.db");
        if store_path.trim().is_empty() {
            return Err(err("store.path".into(), "expected the store file's path, got an empty string".into()));
        }
        let store = StoreConfig { path: resolve(store_path) };
        if store.path.is_dir() {
            return Err(err(
                "store.path".into(),
                format!("{} is a folder; expected a file (e.g. \"dirsync.db\")", store.path.display()),
            ));
        }

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

        if raw.sources.is_empty() {
            return Err(err("sources".into(), "no [[sources]] configured (expected at least one)".into()));
        }
        let mut names = HashSet::new();
        let mut sources = Vec::new();
        for (i, table) in raw.sources.into_iter().enumerate() {
            let mut section = Section::new(table, format!("sources[{i}]"), path, &resolve, &mut warnings);
            let s = source::parse_source(&mut section, kinds, &schedule)?;
            if !names.insert(s.name.clone()) {
                return Err(err(
                    format!("sources[{i}].name"),
                    format!("\"{}\" is used by two sources (names must be unique)", s.name),
                ));
            }
            sources.push(s);
        }
        source::settle_sources(&mut sources, path)?;
        if let Some(src) = server.as_ref().and_then(|s| s.admin.source.as_deref()) {
            if !sources.iter().any(|s| s.name == src) {
                return Err(err("server.admin.source".into(), format!("no source is named \"{src}\"")));
            }
        }

        let mut rules = Vec::new();
        for (i, rr) in raw.rules.into_iter().enumerate() {
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
                // A rule's value for a field the directory updates would be
                // overwritten at the next sync: every run would flip it back.
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
                if !names.contains(s) {
                    return Err(err(format!("rules[{i}].source"), format!("no source is named \"{s}\"")));
                }
            }
            rules.push(Rule { when_member_of: rr.when_member_of.map(Name::new), source: rr.source, set });
        }

        let mut safety = Safety::default();
        if let Some(rs) = raw.safety {
            if let Some(m) = rs.on_missing {
                safety.on_missing = match m.as_str() {
                    "disable" => OnMissing::Disable,
                    "delete" => OnMissing::Delete,
                    "keep" => OnMissing::Keep,
                    other => {
                        return Err(err(
                            "safety.on_missing".into(),
                            format!("expected \"disable\", \"delete\" or \"keep\", got \"{other}\""),
                        ))
                    }
                };
            }
            if let Some(p) = rs.max_delete_percent {
                if !(0.0..=100.0).contains(&p) {
                    return Err(err("safety.max_delete_percent".into(), format!("expected 0 to 100, got {p}")));
                }
                safety.max_delete_percent = p;
            }
            if let Some(c) = rs.max_delete_count {
                if c < 0 {
                    return Err(err("safety.max_delete_count".into(), format!("expected 0 or more, got {c}")));
                }
                safety.max_delete_count = c as u64;
            }
        }

        let codes = match &raw.codes {
            Some(t) => writeback::parse_codes(t, &|k, m| err(k, m))?,
            None => BTreeMap::new(),
        };
        Ok(Config { file: path.to_path_buf(), store, sources, rules, safety, codes, warnings, server, schedule })
    }
}

/// A secret given as a literal (`<base>`), a file (`<base>_file`) or an
/// environment variable (`<base>_env`), at most one; `where_` names its
/// table in the warning for a literal.
pub(crate) struct PasswordKeys<'a> {
    pub base: &'a str,
    pub literal: Option<&'a str>,
    pub file: Option<&'a str>,
    pub env: Option<&'a str>,
    pub where_: String,
}

pub(crate) fn read_password(
    keys: &PasswordKeys,
    resolve: &dyn Fn(&str) -> PathBuf,
    err: &dyn Fn(&str, String) -> ConfigError,
    warnings: &mut Vec<String>,
) -> Result<Option<Secret>, ConfigError> {
    let base = keys.base;
    let (file_key, env_key) = (format!("{base}_file"), format!("{base}_env"));
    let given = [keys.literal.is_some(), keys.file.is_some(), keys.env.is_some()].iter().filter(|b| **b).count();
    if given > 1 {
        return Err(err(&file_key, format!("give only one of {file_key}, {env_key} and {base}")));
    }
    if let Some(f) = keys.file {
        let p = resolve(f);
        let text =
            std::fs::read_to_string(&p).map_err(|e| err(&file_key, format!("cannot read {}: {e}", p.display())))?;
        let pw = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        if pw.is_empty() {
            return Err(err(&file_key, format!("{} is empty", p.display())));
        }
        return Ok(Some(Secret::new(pw)));
    }
    if let Some(var) = keys.env {
        let pw = std::env::var(var).map_err(|_| err(&env_key, format!("the environment variable {var} is not set")))?;
        if pw.is_empty() {
            return Err(err(&env_key, format!("the environment variable {var} is empty")));
        }
        return Ok(Some(Secret::new(pw)));
    }
    if let Some(pw) = keys.literal {
        if pw.is_empty() {
            let why = if base.contains("password") {
                "a bind with an empty password is an unauthenticated bind (give the password"
            } else {
                "(give the secret"
            };
            return Err(err(base, format!("is empty: {why}, or {file_key} / {env_key})")));
        }
        warnings.push(format!(
            "{}.{base}: the secret is written in the config file; prefer {file_key} or {env_key}",
            keys.where_
        ));
        return Ok(Some(Secret::new(pw)));
    }
    Ok(None)
}

/// Whether a config key holds a secret: its value is never quoted.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "credential"].iter().any(|w| k.contains(w))
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
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line.split('=').next().unwrap_or("").trim().trim_matches('"').trim_matches('\'').to_string();
    if !line.contains('=') || is_secret_key(line) {
        let what = if line.contains('=') && !key.is_empty() {
            format!("{key}: not a valid value (expected a quoted string such as \"...\"; the value is not shown because it may be a secret)")
        } else {
            "not a TOML key = value line (the line is not shown: is --config pointing at the right file?)".into()
        };
        return ConfigError::new(path, "", format!("line {line_no}: {what}"));
    }
    ConfigError::new(path, "", format!("line {line_no}: {}", scrub(text, e.message())))
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
