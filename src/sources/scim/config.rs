//! The SCIM kind's part of a `[[sources]]` table (`type = "scim"`): the
//! bearer token the identity provider presents (`token_file` or
//! `token_env`, at least 32 characters), and field sources that are SCIM
//! attribute paths (RFC 7643: `userName`, `name.formatted`,
//! `emails[primary eq true].value`, `urn:…:enterprise:2.0:User:department`).
//! A SCIM source is never read: `dirsync serve` takes what is pushed to it.

use std::any::Any;

use crate::config::{ConfigError, DirectoryQuery, MemberSyntax, Section, SourceConfig};
use crate::kind::{Capabilities, Kind, Registration};
use crate::scim::filter::PatchPath;
use crate::secret::Secret;
use crate::sources::Source;

/// `type = "scim"`.
pub const REGISTRATION: Registration =
    Registration { types: &["scim"], keys: &["token", "token_file", "token_env"], parse };

/// The shortest token accepted: a guessable token opens the door to every
/// user of the source.
pub const MIN_TOKEN: usize = 32;

/// The fields mapped when `[sources.fields]` is not given (merged as for
/// every kind). `name.formatted` falls back to `displayName`, then
/// `givenName familyName`, then `userName` (see [`super::user_entry`]).
const DEFAULT_FIELDS: &str = r#"
username = "userName"
full_name = "name.formatted"
email = { attribute = 'emails[primary eq true].value', required = false }
department = { attribute = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", required = false }
card_number = { attribute = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", required = false }
"#;

#[derive(Debug, Clone)]
pub struct ScimConfig {
    pub token: Secret,
    pub query: DirectoryQuery,
}

impl Kind for ScimConfig {
    fn type_name(&self) -> &'static str {
        "scim"
    }

    fn place(&self) -> String {
        "pushed to /scim/v2 by its identity provider".into()
    }

    fn query(&self) -> &DirectoryQuery {
        &self.query
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { disabled_flag: true, pushed: true, ..Capabilities::default() }
    }

    fn default_fields(&self) -> Option<&'static str> {
        Some(DEFAULT_FIELDS)
    }

    fn check_field_source(&self, name: &str) -> Result<(), String> {
        PatchPath::parse(name).map(|_| ()).map_err(|e| {
            format!("\"{name}\" is not a SCIM attribute path such as userName or emails[type eq \"work\"].value: {e}")
        })
    }

    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(super::ScimSource { name: cfg.name.clone() })
    }

    fn password_note(&self) -> Option<&'static str> {
        Some("a SCIM source holds no passwords (the identity provider checks them)")
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn parse(_type_name: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let token = s.secret("token")?.ok_or_else(|| {
        s.err("token_file", "missing: give token_file or token_env, the bearer token the identity provider presents")
    })?;
    let n = token.expose().chars().count();
    if n < MIN_TOKEN {
        return Err(s.err(
            "token_file",
            format!("the token has {n} characters; at least {MIN_TOKEN} are needed (e.g. `openssl rand -hex 32`)"),
        ));
    }
    let query = DirectoryQuery {
        user_filter: String::new(),
        group_filter: None,
        group_name_attribute: "displayname".into(),
        member_attribute: "members".into(),
        member_syntax: MemberSyntax::Dn,
        id_attribute: "id".into(),
    };
    Ok(Box::new(ScimConfig { token, query }))
}
