//! The Unix kind's part of a `[[sources]]` table (`type = "unix"`): the
//! passwd and group files (default `/etc/passwd`, `/etc/group`) or `nss =
//! true` (the NSS databases through `getent`, so NIS, SSSD, winbind and
//! LDAP-backed NSS work too), the uid range, whether accounts with a
//! `nologin`/`false` shell are read, and the identity (uid number or name).

use std::any::Any;
use std::path::PathBuf;

use crate::config::{ConfigError, DirectoryQuery, Section, SourceConfig};
use crate::kind::{Kind, Registration};
use crate::sources::{tabular, Source};

/// `type = "unix"`.
pub const REGISTRATION: Registration = Registration {
    types: &["unix"],
    keys: &["passwd_file", "group_file", "nss", "min_uid", "max_uid", "include_nologin", "id"],
    parse,
};

/// What a passwd line offers to `[sources.fields]`; the GECOS field is split
/// into its usual parts (full name, room, work phone, home phone, other).
pub const COLUMNS: &[&str] = &[
    "username",
    "uid",
    "gid",
    "gecos",
    "full_name",
    "office",
    "work_phone",
    "home_phone",
    "other",
    "home_directory",
    "shell",
];

const DEFAULT_FIELDS: &str = r#"
username = "username"
full_name = { attribute = "full_name", required = false }
office = "office"
"#;

#[derive(Debug, Clone)]
pub enum Databases {
    Files {
        passwd: PathBuf,
        group: PathBuf,
    },
    /// `getent passwd` and `getent group`.
    Nss,
}

#[derive(Debug, Clone)]
pub struct UnixConfig {
    pub databases: Databases,
    pub min_uid: u32,
    pub max_uid: u32,
    pub include_nologin: bool,
    /// The identity is the username instead of the uid number.
    pub id_is_username: bool,
    pub query: DirectoryQuery,
}

impl Kind for UnixConfig {
    fn type_name(&self) -> &'static str {
        "unix"
    }

    fn place(&self) -> String {
        match &self.databases {
            Databases::Files { passwd, group } => format!("{} {}", passwd.display(), group.display()),
            Databases::Nss => "NSS (getent passwd, getent group)".into(),
        }
    }

    fn fingerprint_place(&self) -> String {
        format!("{}|{}-{}|{}|{}", self.place(), self.min_uid, self.max_uid, self.include_nologin, self.id_is_username)
    }

    fn query(&self) -> &DirectoryQuery {
        &self.query
    }

    fn default_fields(&self) -> Option<&'static str> {
        Some(DEFAULT_FIELDS)
    }

    fn check_field_source(&self, name: &str) -> Result<(), String> {
        tabular::check_column(name, COLUMNS, "unix")
    }

    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(super::UnixSource { name: cfg.name.clone(), cfg: self.clone() })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn parse(_type_name: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let nss = s.boolean("nss")?.unwrap_or(false);
    let passwd = s.string("passwd_file")?;
    let group = s.string("group_file")?;
    let databases = match (nss, passwd, group) {
        (true, Some(_), _) => return Err(s.err("passwd_file", "give either nss = true or the files, not both")),
        (true, _, Some(_)) => return Err(s.err("group_file", "give either nss = true or the files, not both")),
        (true, None, None) => Databases::Nss,
        (false, p, g) => Databases::Files {
            passwd: s.resolve(p.as_deref().unwrap_or("/etc/passwd")),
            group: s.resolve(g.as_deref().unwrap_or("/etc/group")),
        },
    };
    let mut uid = |k: &str, default: u32| -> Result<u32, ConfigError> {
        match s.integer(k)? {
            None => Ok(default),
            Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(n as u32),
            Some(n) => Err(s.err(k, format!("expected a uid (0 to {}), got {n}", u32::MAX))),
        }
    };
    let min_uid = uid("min_uid", 1000)?;
    let max_uid = uid("max_uid", 60000)?;
    if min_uid > max_uid {
        return Err(s.err("max_uid", format!("expected at least min_uid ({min_uid}), got {max_uid}")));
    }
    let include_nologin = s.boolean("include_nologin")?.unwrap_or(false);
    let id_is_username = match s.string("id")?.as_deref() {
        None | Some("uid") => false,
        Some("username") => true,
        Some(o) => return Err(s.err("id", format!("expected \"uid\" (the uid number) or \"username\", got \"{o}\""))),
    };
    Ok(Box::new(UnixConfig { databases, min_uid, max_uid, include_nologin, id_is_username, query: tabular::query() }))
}
