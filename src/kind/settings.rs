//! The settings every source has, whatever its kind: one `[[sources]]`
//! table's common part ([`SourceConfig`]), the query a kind answers
//! ([`DirectoryQuery`]), and the error a config mistake is reported with
//! ([`ConfigError`]: the file, the key, what is expected), with the reader
//! of secrets every section shares.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

pub use super::error::ConfigError;
use super::fields::FieldSpec;
use super::incremental::Incremental;
use super::schedule::Schedule;
use super::Kind;
use crate::secret::Secret;

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
    /// `[sources.safety]`: what this source sets over `[safety]`.
    pub safety: SafetyOverride,
    /// `[sources.live]`: changes applied as they happen under `dirsync serve`.
    pub live: super::live::Live,
}

/// What happens to a user gone from its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMissing {
    Disable,
    Delete,
    Keep,
}

/// `[safety]`: what happens to users gone from their source, and the
/// thresholds above which removals are held.
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

impl Safety {
    /// These settings with what `over` sets in their place.
    pub fn with(&self, over: &SafetyOverride) -> Safety {
        Safety {
            on_missing: over.on_missing.unwrap_or(self.on_missing),
            max_delete_percent: over.max_delete_percent.unwrap_or(self.max_delete_percent),
            max_delete_count: over.max_delete_count.unwrap_or(self.max_delete_count),
        }
    }
}

/// What a source's `[sources.safety]` sets (the rest comes from `[safety]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SafetyOverride {
    pub on_missing: Option<OnMissing>,
    pub max_delete_percent: Option<f64>,
    pub max_delete_count: Option<u64>,
}

/// Checks the values a `[safety]` or `[sources.safety]` table gives;
/// `err` is given the key (`on_missing`) and what is expected.
pub fn parse_safety_values(
    on_missing: Option<&str>,
    max_delete_percent: Option<f64>,
    max_delete_count: Option<i64>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<SafetyOverride, ConfigError> {
    let on_missing = match on_missing {
        None => None,
        Some("disable") => Some(OnMissing::Disable),
        Some("delete") => Some(OnMissing::Delete),
        Some("keep") => Some(OnMissing::Keep),
        Some(other) => {
            return Err(err("on_missing", format!("expected \"disable\", \"delete\" or \"keep\", got \"{other}\"")))
        }
    };
    if let Some(p) = max_delete_percent.filter(|p| !(0.0..=100.0).contains(p)) {
        return Err(err("max_delete_percent", format!("expected 0 to 100, got {p}")));
    }
    if let Some(c) = max_delete_count.filter(|c| *c < 0) {
        return Err(err("max_delete_count", format!("expected 0 or more, got {c}")));
    }
    Ok(SafetyOverride { on_missing, max_delete_percent, max_delete_count: max_delete_count.map(|c| c as u64) })
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

    /// Whether the source's entries are pushed to dirsync (SCIM), never read.
    pub fn is_pushed(&self) -> bool {
        self.kind.capabilities().pushed
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

/// What to do when the directory's value changed since the last sync and
/// differs from both the old and the new local value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Push the application's value anyway.
    App,
    /// Take the directory's value locally.
    Directory,
    /// Record the conflict and change nothing until an admin acts (default).
    Report,
}

#[derive(Debug, Clone)]
pub struct Writeback {
    /// A separate account with write rights; `None`: the source's bind.
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    pub on_conflict: OnConflict,
    /// How many items are pushed at once (each still read, compared and
    /// written in order); 1 pushes one after another.
    pub in_flight: usize,
}

/// Items pushed at once unless `in_flight` says otherwise.
pub const DEFAULT_IN_FLIGHT: usize = 8;
