//! The LDIF kind's part of a `[[sources]]` table (`type = "ldif"`): the
//! file, an optional base DN, and the LDAP-shaped query its entries are
//! selected and read with.

use std::any::Any;
use std::path::PathBuf;

use crate::config::{fields, ConfigError, DirectoryQuery, Section, SourceConfig};
use crate::kind::{Capabilities, Kind, Registration};
use crate::sources::Source;

/// `type = "ldif"`.
pub const REGISTRATION: Registration = Registration {
    types: &["ldif"],
    keys: &[
        "path",
        "base_dn",
        "user_filter",
        "group_filter",
        "group_name_attribute",
        "member_attribute",
        "id_attribute",
    ],
    parse,
};

#[derive(Debug, Clone)]
pub struct LdifConfig {
    pub path: PathBuf,
    pub base_dn: Option<String>,
    pub query: DirectoryQuery,
}

impl Kind for LdifConfig {
    fn type_name(&self) -> &'static str {
        "ldif"
    }

    fn place(&self) -> String {
        match &self.base_dn {
            Some(b) => format!("{} {b}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    fn fingerprint_place(&self) -> String {
        format!("{}|{:?}", self.path.display(), self.base_dn)
    }

    fn query(&self) -> &DirectoryQuery {
        &self.query
    }

    fn capabilities(&self) -> Capabilities {
        // Exports of 389 DS carry nsAccountLock, read as the server's.
        Capabilities { disabled_flag: true, ..Capabilities::default() }
    }

    fn check_field_source(&self, name: &str) -> Result<(), String> {
        fields::check_attr_name(name)
    }

    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(super::LdifSource::new(cfg, self))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn parse(_type_name: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let p = s.string("path")?.ok_or_else(|| s.err("path", "missing (expected the LDIF file's path)"))?;
    Ok(Box::new(LdifConfig {
        path: s.resolve(&p),
        base_dn: s.string("base_dn")?,
        query: crate::sources::ldap::config::parse_query(s, false)?,
    }))
}
