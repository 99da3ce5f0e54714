//! The Graph kind's part of a `[[sources]]` table (`type = "graph"`, Entra
//! ID): tenant and app registration, its credential (a client secret, or a
//! certificate and its private key for a signed client assertion), the
//! endpoints (overridable for sovereign clouds and tests), the optional
//! OData user filter, and the limits on throttling waits, request time and
//! concurrent batches. Field sources are Graph user properties or dotted
//! paths into them; their spelling in the config file is kept for `$select`
//! and write-back.

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::config::{ConfigError, DirectoryQuery, Section, SourceConfig};
use crate::kind::transport::{Transport, TransportError};
use crate::kind::{Capabilities, Kind, Registration};
use crate::secret::Secret;
use crate::sources::cloud::{jwt, settings};
use crate::sources::Source;

/// `type = "graph"`.
pub const REGISTRATION: Registration = Registration {
    types: &["graph"],
    keys: &[
        "tenant_id",
        "client_id",
        "client_secret",
        "client_secret_file",
        "client_secret_env",
        "certificate_file",
        "private_key_file",
        "authority_url",
        "graph_url",
        "user_filter",
        "max_retry_wait_secs",
        "timeout_secs",
        "concurrency",
    ],
    parse,
};

/// The fields mapped when `[sources.fields]` is not given.
const DEFAULT_FIELDS: &str = r#"
username = "userPrincipalName"
full_name = "displayName"
email = "mail"
department = "department"
office = "officeLocation"
"#;

/// Graph's user properties (v1.0) as Graph spells them: a field source must
/// start with one of these or be a directory extension (`extension_<app>_<name>`).
pub const USER_PROPERTIES: &[&str] = &[
    "aboutMe",
    "accountEnabled",
    "ageGroup",
    "businessPhones",
    "city",
    "companyName",
    "consentProvidedForMinor",
    "country",
    "createdDateTime",
    "creationType",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeId",
    "employeeLeaveDateTime",
    "employeeOrgData",
    "employeeType",
    "externalUserState",
    "faxNumber",
    "givenName",
    "id",
    "identities",
    "imAddresses",
    "jobTitle",
    "legalAgeGroupClassification",
    "mail",
    "mailNickname",
    "mobilePhone",
    "officeLocation",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesImmutableId",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "postalCode",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "securityIdentifier",
    "showInAddressList",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
];

/// How dirsync proves it is the app registration.
#[derive(Debug, Clone)]
pub enum Credential {
    Secret(Secret),
    /// A client assertion signed with the key, naming the certificate by its thumbprint.
    Certificate {
        thumbprint: String,
        key: Arc<jwt::Signer>,
    },
}

#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub credential: Credential,
    /// Without a trailing slash.
    pub authority_url: String,
    pub graph_url: String,
    pub user_filter: Option<String>,
    /// `concurrency`: `$batch` requests in flight at once.
    pub limits: settings::Limits,
    /// Lower-case property name → as the config file spells it.
    pub spelling: HashMap<String, String>,
    pub query: DirectoryQuery,
}

impl GraphConfig {
    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority_url, self.tenant_id)
    }

    /// A property as Graph spells it: the config file's spelling, Graph's
    /// own for the known properties, else as given.
    pub fn spell(&self, lower: &str) -> String {
        if let Some(s) = self.spelling.get(lower) {
            return s.clone();
        }
        USER_PROPERTIES.iter().find(|p| p.eq_ignore_ascii_case(lower)).map(|p| p.to_string()).unwrap_or(lower.into())
    }
}

impl Kind for GraphConfig {
    fn type_name(&self) -> &'static str {
        "graph"
    }

    fn place(&self) -> String {
        format!("{} tenant {}", self.graph_url, self.tenant_id)
    }

    fn query(&self) -> &DirectoryQuery {
        &self.query
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { incremental: true, disabled_flag: true, writeback: true, pushed: false }
    }

    fn default_fields(&self) -> Option<&'static str> {
        Some(DEFAULT_FIELDS)
    }

    fn check_field_source(&self, name: &str) -> Result<(), String> {
        let top = name.split('.').next().unwrap_or(name);
        if top.starts_with("extension_") || USER_PROPERTIES.iter().any(|p| p.eq_ignore_ascii_case(top)) {
            Ok(())
        } else {
            Err(format!(
                "\"{top}\" is not a Microsoft Graph user property (expected one such as userPrincipalName, displayName, \
                 employeeId, onPremisesExtensionAttributes.extensionAttribute1, or a directory extension \
                 extension_<app id>_<name>)"
            ))
        }
    }

    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(super::GraphSource::new(cfg, self))
    }

    fn open_writeback<'a>(
        &'a self,
        cfg: &'a SourceConfig,
    ) -> Option<BoxFuture<'a, Result<Box<dyn Transport>, TransportError>>> {
        Some(Box::pin(
            async move { Ok(Box::new(super::writeback::GraphTransport::new(cfg, self)) as Box<dyn Transport>) },
        ))
    }

    fn password_note(&self) -> Option<&'static str> {
        Some(
            "Entra ID does not check passwords for applications (the password grant is deprecated and fails with \
             MFA): sign users in with the application's own SSO (OpenID Connect), or check passwords against an \
             LDAP or AD source",
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn parse(_type_name: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let tenant_id = s.string("tenant_id")?.ok_or_else(|| {
        s.err("tenant_id", "missing (expected the tenant's domain such as contoso.onmicrosoft.com, or its GUID)")
    })?;
    if tenant_id.is_empty() || !tenant_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return Err(s.err("tenant_id", "expected a domain such as contoso.onmicrosoft.com or a GUID"));
    }
    let client_id = s
        .string("client_id")?
        .ok_or_else(|| s.err("client_id", "missing (expected the app registration's application (client) id)"))?;
    if client_id.trim().is_empty() || client_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(s.err("client_id", "expected the app registration's application (client) id, a GUID"));
    }
    let secret = s.secret("client_secret")?;
    let cert = s.string("certificate_file")?.map(|p| s.resolve(&p));
    let key = s.string("private_key_file")?.map(|p| s.resolve(&p));
    let credential = match (secret, cert, key) {
        (Some(sec), None, None) => Credential::Secret(sec),
        (None, Some(c), Some(k)) => {
            let read = |p: &PathBuf, key: &str| {
                std::fs::read(p).map_err(|e| s.err(key, format!("cannot read {}: {e}", p.display())))
            };
            let thumbprint = jwt::thumbprint(&read(&c, "certificate_file")?)
                .map_err(|m| s.err("certificate_file", format!("{}: {m}", c.display())))?;
            let key = jwt::Signer::from_pem(&read(&k, "private_key_file")?)
                .map_err(|m| s.err("private_key_file", format!("{}: {m}", k.display())))?;
            Credential::Certificate { thumbprint, key: Arc::new(key) }
        }
        (None, Some(_), None) => {
            return Err(s.err("private_key_file", "missing: certificate_file needs its private key"))
        }
        (None, None, Some(_)) => {
            return Err(s.err("certificate_file", "missing: private_key_file needs its certificate"))
        }
        (Some(_), _, _) => {
            return Err(s.err(
                "client_secret_file",
                "give either a client secret or certificate_file + private_key_file, not both",
            ))
        }
        (None, None, None) => {
            return Err(s.err(
                "client_secret_file",
                "missing: give client_secret_file or client_secret_env, or certificate_file + private_key_file",
            ))
        }
    };
    let authority_url = settings::endpoint(s, "authority_url", "https://login.microsoftonline.com")?;
    let graph_url = settings::endpoint(s, "graph_url", "https://graph.microsoft.com")?;
    let user_filter = s.string("user_filter")?.filter(|f| !f.trim().is_empty());
    if user_filter.is_some()
        && s.peek("incremental").and_then(|i| i.get("enabled")).and_then(|e| e.as_bool()) == Some(true)
    {
        return Err(s.err(
            "user_filter",
            "cannot be used with [sources.incremental] enabled = true: Graph's users/delta cannot filter (drop the \
             filter, or use scope_groups; sources with user_filter are read in full)",
        ));
    }
    let limits = settings::Limits::parse(s)?;
    settings::refuse_write_account(s, "graph", "the app registration's token (User.ReadWrite.All)")?;
    let spelling = settings::spellings(s.peek("fields"));
    Ok(Box::new(GraphConfig {
        query: DirectoryQuery {
            user_filter: user_filter.clone().unwrap_or_default(),
            group_filter: None,
            group_name_attribute: "displayname".into(),
            member_attribute: "members".into(),
            id_attribute: "id".into(),
            ..DirectoryQuery::default()
        },
        tenant_id,
        client_id,
        credential,
        authority_url,
        graph_url,
        user_filter,
        limits,
        spelling,
    }))
}
