//! The configuration file (TOML), read in two stages: the raw values as the
//! admin typed them, then one validated [`Config`] that nothing re-checks.
//! Every error names the file, the key and what is expected; every path is
//! relative to the config file; secrets are read here into [`Secret`]s.

pub mod fields;
pub mod incremental;
pub mod writeback;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use fields::{FieldSource, FieldSpec, TemplatePart, Transform};
pub use incremental::{parse_duration, Incremental};
pub use writeback::{Charset, CodeSpec, OnConflict, Writeback};

use crate::model::Name;
use crate::secret::Secret;

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
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    pub user_filter: String,
    pub group_filter: Option<String>,
    pub group_name_attribute: String,
    pub member_attribute: String,
    pub id_attribute: String,
    pub fields: Vec<FieldSpec>,
    pub incremental: Incremental,
    /// Active Directory: userAccountControl, primaryGroupID, objectGUID.
    pub ad: bool,
    /// AD: create users that are disabled in the directory (default false).
    pub import_disabled: bool,
    /// Only effective members of these groups (names or DNs) are synced.
    pub scope_groups: Vec<String>,
    /// `[sources.writeback]` when enabled (LDAP and AD sources).
    pub writeback: Option<Writeback>,
}

/// Active Directory's user filter: people, not computers.
pub const AD_USER_FILTER: &str = "(&(objectCategory=person)(objectClass=user)(!(objectClass=computer)))";

/// Field mappings for `type = "ad"` without a [sources.fields] table.
const AD_FIELDS: &str = r#"
username = "sAMAccountName"
full_name = "cn"
email = "mail"
department = "department"
office = "physicalDeliveryOfficeName"
"#;

impl SourceConfig {
    /// A stable digest of what the source is asked and how its entries are
    /// mapped. A saved incremental position is only valid for the same one:
    /// a new filter, base or field mapping needs a full read.
    pub fn fingerprint(&self) -> String {
        let place = match &self.kind {
            SourceKind::Ldap(l) => format!("{}|{}", l.url, l.base_dn),
            SourceKind::Ldif(l) => format!("{}|{:?}", l.path.display(), l.base_dn),
        };
        let text = format!(
            "{place}|{}|{:?}|{}|{}|{}|{:?}",
            self.user_filter,
            self.group_filter,
            self.group_name_attribute,
            self.member_attribute,
            self.id_attribute,
            self.fields
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
        self.member_attribute == "memberuid"
    }

    /// The attributes a user search must return (lower-case, de-duplicated).
    pub fn user_attributes(&self) -> Vec<String> {
        let mut attrs = vec![self.id_attribute.clone()];
        if self.ad {
            attrs.extend(["useraccountcontrol".to_string(), "primarygroupid".to_string()]);
        }
        for f in &self.fields {
            attrs.extend(f.attributes());
        }
        dedup(attrs)
    }

    /// The attributes a group search must return.
    pub fn group_attributes(&self) -> Vec<String> {
        let mut attrs =
            vec![self.id_attribute.clone(), self.group_name_attribute.clone(), self.member_attribute.clone()];
        if self.ad {
            attrs.push("objectsid".into());
        }
        dedup(attrs)
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.into_iter().filter(|a| seen.insert(a.clone())).collect()
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    Ldap(LdapConfig),
    Ldif(LdifConfig),
}

impl SourceKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceKind::Ldap(l) if l.ad => "ad",
            SourceKind::Ldap(_) => "ldap",
            SourceKind::Ldif(_) => "ldif",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LdapConfig {
    pub url: String,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    /// The first search base (for messages).
    pub base_dn: String,
    /// Every search base (users and groups are read under each).
    pub base_dns: Vec<String>,
    /// Active Directory (`type = "ad"`).
    pub ad: bool,
    pub page_size: i32,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone)]
pub struct LdifConfig {
    pub path: PathBuf,
    pub base_dn: Option<String>,
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
    sources: Vec<RawSource>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    safety: Option<RawSafety>,
    #[serde(default)]
    codes: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    starttls: Option<bool>,
    ca_file: Option<String>,
    bind_dn: Option<String>,
    bind_password: Option<String>,
    bind_password_file: Option<String>,
    bind_password_env: Option<String>,
    base_dn: Option<String>,
    path: Option<String>,
    user_filter: Option<String>,
    group_filter: Option<String>,
    group_name_attribute: Option<String>,
    member_attribute: Option<String>,
    id_attribute: Option<String>,
    page_size: Option<i64>,
    timeout_secs: Option<u64>,
    fields: Option<toml::Table>,
    incremental: Option<RawIncremental>,
    base_dns: Option<Vec<String>>,
    import_disabled: Option<bool>,
    scope_groups: Option<Vec<String>>,
    writeback: Option<writeback::RawWriteback>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncremental {
    enabled: Option<bool>,
    full_every: Option<String>,
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
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, "", format!("cannot read the config file: {e}")))?;
        Config::parse(&text, path)
    }

    /// Validates config text as if read from `path` (relative paths resolve
    /// against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::new(path, "", e.to_string().trim_end().to_string()))?;
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

        let store = StoreConfig { path: resolve(raw.store.and_then(|s| s.path).as_deref().unwrap_or("dirsync.db")) };

        if raw.sources.is_empty() {
            return Err(err("sources".into(), "no [[sources]] configured (expected at least one)".into()));
        }
        let mut names = HashSet::new();
        let mut sources = Vec::new();
        for (i, rs) in raw.sources.into_iter().enumerate() {
            let key = |k: &str| format!("sources[{i}].{k}");
            if rs.name.trim().is_empty() || rs.name.chars().any(char::is_control) {
                return Err(err(key("name"), "expected a non-empty name".into()));
            }
            if !names.insert(rs.name.clone()) {
                return Err(err(key("name"), format!("\"{}\" is used by two sources (names must be unique)", rs.name)));
            }
            let kind = match rs.kind.as_str() {
                "ldap" | "ad" => {
                    for (k, present) in [("path", rs.path.is_some())] {
                        if present {
                            return Err(err(key(k), format!("is not used by type = \"{}\"", rs.kind)));
                        }
                    }
                    if rs.kind != "ad" && rs.import_disabled.is_some() {
                        return Err(err(key("import_disabled"), "is only used by type = \"ad\"".into()));
                    }
                    let url = rs.url.clone().ok_or_else(|| {
                        err(key("url"), "missing (expected ldap://host:port or ldaps://host:port)".into())
                    })?;
                    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
                        return Err(err(
                            key("url"),
                            format!("expected ldap://host:port or ldaps://host:port, got \"{url}\""),
                        ));
                    }
                    let starttls = rs.starttls.unwrap_or(false);
                    if starttls && url.starts_with("ldaps://") {
                        return Err(err(
                            key("starttls"),
                            "cannot be used with an ldaps:// url (TLS is already on)".into(),
                        ));
                    }
                    let ca_file = rs.ca_file.as_deref().map(resolve);
                    if let Some(ca) = &ca_file {
                        if !ca.is_file() {
                            return Err(err(
                                key("ca_file"),
                                format!("{} does not exist or is not a file", ca.display()),
                            ));
                        }
                    }
                    let keys = PasswordKeys {
                        literal: rs.bind_password.as_deref(),
                        file: rs.bind_password_file.as_deref(),
                        env: rs.bind_password_env.as_deref(),
                        where_: format!("sources[{i}]"),
                    };
                    let bind_password = read_password(&keys, &resolve, &|k, m| err(key(k), m), &mut warnings)?;
                    if bind_password.is_some() && rs.bind_dn.is_none() {
                        return Err(err(key("bind_dn"), "missing: a bind password is given but no bind_dn".into()));
                    }
                    if rs.bind_dn.is_some() && bind_password.is_none() {
                        return Err(err(
                            key("bind_password_file"),
                            "missing: bind_dn is given without a password (set bind_password_file or bind_password_env)".into(),
                        ));
                    }
                    let base_dns = match (&rs.base_dn, &rs.base_dns) {
                        (Some(b), None) => vec![b.clone()],
                        (None, Some(bs)) if !bs.is_empty() => bs.clone(),
                        (Some(_), Some(_)) => {
                            return Err(err(key("base_dns"), "give either base_dn or base_dns, not both".into()))
                        }
                        _ => {
                            return Err(err(
                                key("base_dn"),
                                "missing (expected e.g. \"dc=example,dc=com\", or base_dns = [...] for several)".into(),
                            ))
                        }
                    };
                    let base_dn = base_dns[0].clone();
                    let page_size = rs.page_size.unwrap_or(500);
                    if !(1..=100_000).contains(&page_size) {
                        return Err(err(key("page_size"), format!("expected 1 to 100000, got {page_size}")));
                    }
                    SourceKind::Ldap(LdapConfig {
                        url,
                        starttls,
                        ca_file,
                        bind_dn: rs.bind_dn.clone(),
                        bind_password,
                        base_dn,
                        base_dns,
                        ad: rs.kind == "ad",
                        page_size: page_size as i32,
                        timeout_secs: rs.timeout_secs.unwrap_or(60).max(1),
                    })
                }
                "ldif" => {
                    for (k, present) in [
                        ("incremental", rs.incremental.is_some()),
                        ("url", rs.url.is_some()),
                        ("starttls", rs.starttls.is_some()),
                        ("ca_file", rs.ca_file.is_some()),
                        ("bind_dn", rs.bind_dn.is_some()),
                        ("bind_password", rs.bind_password.is_some()),
                        ("bind_password_file", rs.bind_password_file.is_some()),
                        ("bind_password_env", rs.bind_password_env.is_some()),
                        ("page_size", rs.page_size.is_some()),
                        ("base_dns", rs.base_dns.is_some()),
                        ("import_disabled", rs.import_disabled.is_some()),
                        ("writeback", rs.writeback.is_some()),
                    ] {
                        if present {
                            return Err(err(key(k), "is not used by type = \"ldif\"".into()));
                        }
                    }
                    let p = rs
                        .path
                        .as_deref()
                        .ok_or_else(|| err(key("path"), "missing (expected the LDIF file's path)".into()))?;
                    SourceKind::Ldif(LdifConfig { path: resolve(p), base_dn: rs.base_dn.clone() })
                }
                other => {
                    return Err(err(key("type"), format!("expected \"ldap\", \"ad\" or \"ldif\", got \"{other}\"")))
                }
            };
            let ad = rs.kind == "ad";
            let user_filter = rs
                .user_filter
                .clone()
                .unwrap_or_else(|| if ad { AD_USER_FILTER } else { "(objectClass=inetOrgPerson)" }.into());
            crate::filter::Filter::parse(&user_filter).map_err(|m| err(key("user_filter"), m))?;
            let group_filter = match rs.group_filter.as_deref() {
                Some("") => None,
                Some(f) => Some(f.to_string()),
                None => Some(if ad { "(objectClass=group)" } else { "(objectClass=groupOfNames)" }.into()),
            };
            if let Some(f) = &group_filter {
                crate::filter::Filter::parse(f).map_err(|m| err(key("group_filter"), m))?;
            }
            let member_attribute = rs.member_attribute.clone().unwrap_or_else(|| "member".into()).to_ascii_lowercase();
            if !["member", "uniquemember", "memberuid"].contains(&member_attribute.as_str()) {
                return Err(err(
                    key("member_attribute"),
                    format!("expected \"member\", \"uniqueMember\" or \"memberUid\", got \"{member_attribute}\""),
                ));
            }
            let fields_table = match (rs.fields.clone(), ad) {
                (Some(t), _) => t,
                (None, true) => toml::from_str(AD_FIELDS).expect("valid default AD fields"),
                (None, false) => {
                    return Err(err(
                        key("fields"),
                        "missing: add [sources.fields] with at least username and full_name".into(),
                    ))
                }
            };
            let mut fields = Vec::new();
            for (fname, fval) in &fields_table {
                if !fname.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || fname.is_empty() {
                    return Err(err(key(&format!("fields.{fname}")), "field names use letters, digits and '_'".into()));
                }
                let ferr = |k: &str, m: String| {
                    let full = if k.is_empty() { format!("fields.{fname}") } else { format!("fields.{fname}.{k}") };
                    err(key(&full), m)
                };
                let spec = fields::parse_field(fname, fval, &ferr)?;
                if fname == "username" && (!spec.required || !spec.on_update || !spec.on_create) {
                    return Err(err(
                        key("fields.username"),
                        "username is always required and always mapped (drop `required`/`on`)".into(),
                    ));
                }
                fields.push(spec);
            }
            for needed in ["username", "full_name"] {
                if !fields.iter().any(|f| &*f.name == needed) {
                    return Err(err(
                        key(&format!("fields.{needed}")),
                        "missing: every source must map username and full_name".into(),
                    ));
                }
            }
            // username first, so mapping can name the user in messages.
            fields.sort_by_key(|f| &*f.name != "username");
            if let Some(f) = fields.iter_mut().find(|f| &*f.name == "full_name") {
                if !fields_table.get("full_name").and_then(|v| v.as_table()).is_some_and(|t| t.contains_key("required"))
                {
                    f.required = true;
                }
            }
            sources.push(SourceConfig {
                name: rs.name.clone(),
                kind,
                user_filter,
                group_filter,
                group_name_attribute: rs
                    .group_name_attribute
                    .clone()
                    .unwrap_or_else(|| "cn".into())
                    .to_ascii_lowercase(),
                member_attribute,
                id_attribute: rs
                    .id_attribute
                    .clone()
                    .unwrap_or_else(|| if ad { "objectGUID" } else { "entryUUID" }.into())
                    .to_ascii_lowercase(),
                ad,
                import_disabled: rs.import_disabled.unwrap_or(false),
                scope_groups: rs.scope_groups.clone().unwrap_or_default(),
                writeback: match &rs.writeback {
                    None => None,
                    Some(w) => writeback::parse_writeback(
                        w,
                        &format!("sources[{i}].writeback"),
                        &resolve,
                        &|k, m| err(key(&format!("writeback.{k}")), m),
                        &mut warnings,
                    )?,
                },
                fields,
                incremental: match &rs.incremental {
                    None => Incremental::default(),
                    Some(ri) => Incremental {
                        enabled: ri.enabled.unwrap_or(true),
                        full_every: match &ri.full_every {
                            None => Incremental::default().full_every,
                            Some(s) => parse_duration(s).map_err(|m| err(key("incremental.full_every"), m))?,
                        },
                    },
                },
            });
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
        Ok(Config { file: path.to_path_buf(), store, sources, rules, safety, codes, warnings })
    }
}

/// A bind password given as a literal, a file or an environment variable
/// (at most one); `where_` names its table in the warning for a literal.
pub(crate) struct PasswordKeys<'a> {
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
    let given = [keys.literal.is_some(), keys.file.is_some(), keys.env.is_some()].iter().filter(|b| **b).count();
    if given > 1 {
        return Err(err(
            "bind_password_file",
            "give only one of bind_password_file, bind_password_env and bind_password".into(),
        ));
    }
    if let Some(f) = keys.file {
        let p = resolve(f);
        let text = std::fs::read_to_string(&p)
            .map_err(|e| err("bind_password_file", format!("cannot read {}: {e}", p.display())))?;
        let pw = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        if pw.is_empty() {
            return Err(err("bind_password_file", format!("{} is empty", p.display())));
        }
        return Ok(Some(Secret::new(pw)));
    }
    if let Some(var) = keys.env {
        let pw = std::env::var(var)
            .map_err(|_| err("bind_password_env", format!("the environment variable {var} is not set")))?;
        if pw.is_empty() {
            return Err(err("bind_password_env", format!("the environment variable {var} is empty")));
        }
        return Ok(Some(Secret::new(pw)));
    }
    if let Some(pw) = keys.literal {
        warnings.push(format!(
            "{}.bind_password: the password is written in the config file; prefer bind_password_file or bind_password_env",
            keys.where_
        ));
        return Ok(Some(Secret::new(pw)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
