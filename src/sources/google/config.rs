//! The Google kind's part of a `[[sources]]` table (`type = "google"`,
//! Google Workspace's Directory API): the service account's JSON key (its
//! private key signs the token requests), the admin it acts for, the
//! customer, the optional `users.list` query, the endpoints (overridable for
//! tests) and the limits on throttling waits, request time and concurrent
//! member reads. Field sources are Directory API user properties or dotted
//! paths into them (`customSchemas.Printing.CardNumber`,
//! `organizations.0.department`), spelled as in the config file on the wire.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::config::{ConfigError, DirectoryQuery, Section, SourceConfig};
use crate::kind::transport::{Transport, TransportError};
use crate::kind::{Capabilities, Kind, Registration};
use crate::sources::cloud::{jwt, settings};
use crate::sources::Source;

/// `type = "google"`.
pub const REGISTRATION: Registration = Registration {
    types: &["google"],
    keys: &[
        "service_account_file",
        "admin_email",
        "customer",
        "domain",
        "query",
        "token_url",
        "api_url",
        "max_retry_wait_secs",
        "timeout_secs",
        "concurrency",
    ],
    parse,
};

/// PaperCut's choice: the username is the primary email without its domain.
const DEFAULT_FIELDS: &str = r#"
username = { attribute = "primaryEmail", regex = "^([^@]+)@.*$", replace = "$1" }
full_name = "name.fullName"
email = "primaryEmail"
"#;

/// The Directory API's user properties: a field source starts with one.
pub const USER_PROPERTIES: &[&str] = &[
    "addresses",
    "agreedToTerms",
    "aliases",
    "archived",
    "changePasswordAtNextLogin",
    "creationTime",
    "customSchemas",
    "customerId",
    "emails",
    "externalIds",
    "gender",
    "id",
    "ims",
    "includeInGlobalAddressList",
    "ipWhitelisted",
    "isAdmin",
    "isDelegatedAdmin",
    "isEnforcedIn2Sv",
    "isEnrolledIn2Sv",
    "isMailboxSetup",
    "keywords",
    "languages",
    "lastLoginTime",
    "locations",
    "name",
    "nonEditableAliases",
    "notes",
    "orgUnitPath",
    "organizations",
    "phones",
    "posixAccounts",
    "primaryEmail",
    "recoveryEmail",
    "recoveryPhone",
    "relations",
    "suspended",
    "thumbnailPhotoUrl",
    "websites",
];

/// The read-only scopes the reads ask for.
pub const READ_SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly \
https://www.googleapis.com/auth/admin.directory.group.readonly \
https://www.googleapis.com/auth/admin.directory.group.member.readonly";
/// The scope write-back asks for, in a token of its own.
pub const WRITE_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user";

#[derive(Debug, Clone)]
pub struct GoogleConfig {
    pub client_email: String,
    pub key_id: Option<String>,
    pub key: Arc<jwt::Signer>,
    pub admin_email: String,
    pub customer: String,
    /// The domain a username mapped from `primaryEmail` without its domain
    /// belongs to, for looking one user up (default: `admin_email`'s).
    pub domain: String,
    pub query: Option<String>,
    pub token_url: String,
    /// Without a trailing slash.
    pub api_url: String,
    /// `concurrency`: groups whose members are read at once.
    pub limits: settings::Limits,
    pub spelling: HashMap<String, String>,
    pub directory: DirectoryQuery,
}

impl GoogleConfig {
    /// A path as the config spells it (custom schema names are case-sensitive).
    pub fn spell(&self, lower: &str) -> String {
        if let Some(s) = self.spelling.get(lower) {
            return s.clone();
        }
        let mut segs: Vec<String> = lower.split('.').map(str::to_string).collect();
        if let Some(p) = USER_PROPERTIES.iter().find(|p| p.eq_ignore_ascii_case(&segs[0])) {
            segs[0] = p.to_string();
        }
        segs.join(".")
    }
}

impl Kind for GoogleConfig {
    fn type_name(&self) -> &'static str {
        "google"
    }

    fn place(&self) -> String {
        format!("{} customer {}", self.api_url, self.customer)
    }

    fn query(&self) -> &DirectoryQuery {
        &self.directory
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { incremental: false, disabled_flag: true, writeback: true, pushed: false }
    }

    fn default_fields(&self) -> Option<&'static str> {
        Some(DEFAULT_FIELDS)
    }

    fn check_field_source(&self, name: &str) -> Result<(), String> {
        let top = name.split('.').next().unwrap_or(name);
        if USER_PROPERTIES.iter().any(|p| p.eq_ignore_ascii_case(top)) {
            Ok(())
        } else {
            Err(format!(
                "\"{top}\" is not a Directory API user property (expected one such as primaryEmail, name.fullName, \
                 organizations.0.department or customSchemas.<schema>.<field>)"
            ))
        }
    }

    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(super::GoogleSource::new(cfg, self))
    }

    fn open_writeback<'a>(
        &'a self,
        cfg: &'a SourceConfig,
    ) -> Option<BoxFuture<'a, Result<Box<dyn Transport>, TransportError>>> {
        Some(Box::pin(
            async move { Ok(Box::new(super::writeback::GoogleTransport::new(cfg, self)) as Box<dyn Transport>) },
        ))
    }

    fn password_note(&self) -> Option<&'static str> {
        Some(
            "Google Workspace does not check passwords for applications: sign users in with the application's own \
             SSO (OpenID Connect or SAML with Google), or check passwords against an LDAP or AD source",
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[derive(serde::Deserialize)]
struct KeyFile {
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

fn parse(_type_name: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let file = s
        .string("service_account_file")?
        .ok_or_else(|| s.err("service_account_file", "missing (expected the service account's JSON key file)"))?;
    let path = s.resolve(&file);
    let text = std::fs::read(&path)
        .map_err(|e| s.err("service_account_file", format!("cannot read {}: {e}", path.display())))?;
    // Parse errors could quote the key: say only where.
    let kf: KeyFile = serde_json::from_slice(&text).map_err(|e| {
        s.err(
            "service_account_file",
            format!("{} is not a service account JSON key (line {}, column {})", path.display(), e.line(), e.column()),
        )
    })?;
    let (Some(client_email), Some(pem)) = (kf.client_email, kf.private_key) else {
        return Err(s.err(
            "service_account_file",
            format!(
                "{} has no client_email or private_key (download a JSON key for the service account)",
                path.display()
            ),
        ));
    };
    let key = jwt::Signer::from_pem(pem.as_bytes())
        .map_err(|m| s.err("service_account_file", format!("{}: private_key: {m}", path.display())))?;
    let admin_email = s.string("admin_email")?.ok_or_else(|| {
        s.err(
            "admin_email",
            "missing (expected the email of an admin the service account acts for, with domain-wide delegation)",
        )
    })?;
    if !admin_email.contains('@') || admin_email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(s.err("admin_email", "expected an email address such as admin@school.example"));
    }
    let customer = s.string("customer")?.unwrap_or_else(|| "my_customer".into());
    if customer.is_empty() || !customer.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(s.err("customer", "expected my_customer or a customer id such as C01234567"));
    }
    let domain = match s.string("domain")? {
        None => admin_email.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default(),
        Some(d) if !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') => d,
        Some(_) => return Err(s.err("domain", "expected a domain name such as school.example")),
    };
    let query = s.string("query")?.filter(|q| !q.trim().is_empty());
    let default_token = kf.token_uri.unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
    let token_url = settings::endpoint(s, "token_url", &default_token)?;
    let api_url = settings::endpoint(s, "api_url", "https://admin.googleapis.com")?;
    let limits = settings::Limits::parse(s)?;
    settings::refuse_write_account(s, "google", "the service account (scope admin.directory.user)")?;
    let spelling = settings::spellings(s.peek("fields"));
    Ok(Box::new(GoogleConfig {
        directory: DirectoryQuery {
            user_filter: query.clone().unwrap_or_default(),
            group_filter: None,
            group_name_attribute: "name".into(),
            member_attribute: "members".into(),
            id_attribute: "id".into(),
            ..DirectoryQuery::default()
        },
        client_email,
        key_id: kf.private_key_id,
        key: Arc::new(key),
        admin_email,
        customer,
        domain,
        query,
        token_url,
        api_url,
        limits,
        spelling,
    }))
}
