//! The LDAP kinds' part of a `[[sources]]` table (`type = "ldap"` and
//! `type = "ad"`, with AD's defaults): connection, bind, search bases and the
//! LDAP-shaped [`DirectoryQuery`] (filters, group name, member and identity
//! attributes), which the LDIF kind reads too ([`parse_query`]).

use std::any::Any;
use std::path::PathBuf;

use futures_util::future::BoxFuture;

use crate::config::{fields, ConfigError, DirectoryQuery, MemberSyntax, Section, SourceConfig};
use crate::kind::transport::{Transport, TransportError};
use crate::kind::{Capabilities, Kind, Registration};
use crate::secret::Secret;
use crate::sources::Source;

/// `type = "ldap"` and `type = "ad"`.
pub const REGISTRATION: Registration = Registration {
    types: &["ldap", "ad"],
    keys: &[
        "url",
        "starttls",
        "ca_file",
        "bind_dn",
        "bind_password",
        "bind_password_file",
        "bind_password_env",
        "base_dn",
        "base_dns",
        "page_size",
        "timeout_secs",
        "user_filter",
        "group_filter",
        "group_name_attribute",
        "member_attribute",
        "id_attribute",
    ],
    parse,
};

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
    pub query: DirectoryQuery,
}

impl Kind for LdapConfig {
    fn type_name(&self) -> &'static str {
        if self.ad {
            "ad"
        } else {
            "ldap"
        }
    }

    fn place(&self) -> String {
        format!("{} {}", self.url, self.base_dn)
    }

    fn fingerprint_place(&self) -> String {
        format!("{}|{}", self.url, self.base_dn)
    }

    fn query(&self) -> &DirectoryQuery {
        &self.query
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { incremental: true, disabled_flag: true, writeback: true, pushed: false }
    }

    fn default_fields(&self) -> Option<&'static str> {
        self.ad.then_some(AD_FIELDS)
    }

    fn check_field_source(&self, name: &str) -> Result<(), String> {
        fields::check_attr_name(name)
    }

    fn open(&self, cfg: &SourceConfig) -> Box<dyn Source> {
        Box::new(super::LdapSource::new(cfg, self))
    }

    fn open_writeback<'a>(
        &'a self,
        cfg: &'a SourceConfig,
    ) -> Option<BoxFuture<'a, Result<Box<dyn Transport>, TransportError>>> {
        Some(Box::pin(async move {
            super::writeback::LdapTransport::open(cfg, self).await.map(|t| Box::new(t) as Box<dyn Transport>)
        }))
    }

    fn password_check(&self, cfg: &SourceConfig) -> Option<std::sync::Arc<dyn crate::kind::PasswordCheck>> {
        Some(std::sync::Arc::new(super::auth::LdapPasswordCheck::new(cfg, self)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn parse(type_name: &str, s: &mut Section<'_>) -> Result<Box<dyn Kind>, ConfigError> {
    let ad = type_name == "ad";
    let url =
        s.string("url")?.ok_or_else(|| s.err("url", "missing (expected ldap://host:port or ldaps://host:port)"))?;
    check_url(&url).map_err(|m| s.err("url", m))?;
    let starttls = s.boolean("starttls")?.unwrap_or(false);
    if starttls && url.starts_with("ldaps://") {
        return Err(s.err("starttls", "cannot be used with an ldaps:// url (TLS is already on)"));
    }
    let ca_file = s.string("ca_file")?.map(|p| s.resolve(&p));
    if let Some(ca) = &ca_file {
        if !ca.is_file() {
            return Err(s.err("ca_file", format!("{} does not exist or is not a file", ca.display())));
        }
        crate::tls::client_config(ca).map_err(|_| {
            s.err(
                "ca_file",
                format!(
                    "{} holds no usable PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)",
                    ca.display()
                ),
            )
        })?;
    }
    let bind_dn = s.string("bind_dn")?;
    let bind_password = s.password()?;
    if bind_password.is_some() && bind_dn.is_none() {
        return Err(s.err("bind_dn", "missing: a bind password is given but no bind_dn"));
    }
    if bind_dn.is_some() && bind_password.is_none() {
        return Err(s.err(
            "bind_password_file",
            "missing: bind_dn is given without a password (set bind_password_file or bind_password_env)",
        ));
    }
    let key = if s.has("base_dns") { "base_dns" } else { "base_dn" };
    let base_dns = match (s.string("base_dn")?, s.strings("base_dns")?) {
        (Some(b), None) => vec![b],
        (None, Some(bs)) if !bs.is_empty() => bs,
        (Some(_), Some(_)) => return Err(s.err("base_dns", "give either base_dn or base_dns, not both")),
        _ => {
            return Err(
                s.err("base_dn", "missing (expected e.g. \"dc=example,dc=com\", or base_dns = [...] for several)")
            )
        }
    };
    if let Some(b) = base_dns.iter().find(|b| !looks_like_dn(b)) {
        return Err(s.err(key, format!("expected a DN such as \"dc=example,dc=com\", got \"{b}\"")));
    }
    let page_size = s.integer("page_size")?.unwrap_or(500);
    if !(1..=100_000).contains(&page_size) {
        return Err(s.err("page_size", format!("expected 1 to 100000, got {page_size}")));
    }
    let timeout_secs = s.integer("timeout_secs")?.unwrap_or(60);
    if timeout_secs < 0 {
        return Err(s.err("timeout_secs", format!("expected 0 or more seconds, got {timeout_secs}")));
    }
    Ok(Box::new(LdapConfig {
        url,
        starttls,
        ca_file,
        bind_dn,
        bind_password,
        base_dn: base_dns[0].clone(),
        base_dns,
        ad,
        page_size: page_size as i32,
        timeout_secs: (timeout_secs as u64).max(1),
        query: parse_query(s, ad)?,
    }))
}

/// The LDAP-shaped query keys, with LDAP's (or AD's) defaults.
pub fn parse_query(s: &mut Section<'_>, ad: bool) -> Result<DirectoryQuery, ConfigError> {
    let user_filter = s
        .string("user_filter")?
        .unwrap_or_else(|| if ad { AD_USER_FILTER } else { "(objectClass=inetOrgPerson)" }.into());
    crate::filter::Filter::parse(&user_filter)
        .map_err(|m| s.err("user_filter", crate::filter::explain(&user_filter, &m)))?;
    let group_filter = match s.string("group_filter")?.as_deref() {
        Some("") => None,
        Some(f) => Some(f.to_string()),
        None => Some(if ad { "(objectClass=group)" } else { "(objectClass=groupOfNames)" }.into()),
    };
    if let Some(f) = &group_filter {
        crate::filter::Filter::parse(f).map_err(|m| s.err("group_filter", crate::filter::explain(f, &m)))?;
    }
    let member_attribute = s.string("member_attribute")?.unwrap_or_else(|| "member".into()).to_ascii_lowercase();
    if !["member", "uniquemember", "memberuid"].contains(&member_attribute.as_str()) {
        return Err(s.err(
            "member_attribute",
            format!("expected \"member\", \"uniqueMember\" or \"memberUid\", got \"{member_attribute}\""),
        ));
    }
    let mut attr = |k: &str, default: &str| -> Result<String, ConfigError> {
        let v = s.string(k)?.unwrap_or_else(|| default.into()).to_ascii_lowercase();
        if v != "dn" {
            fields::check_attr_name(&v).map_err(|m| s.err(k, m))?;
        }
        Ok(v)
    };
    Ok(DirectoryQuery {
        user_filter,
        group_filter,
        group_name_attribute: attr("group_name_attribute", "cn")?,
        // memberUid (RFC 2307) names users by uid; member and uniqueMember name entries.
        member_syntax: if member_attribute == "memberuid" { MemberSyntax::Username } else { MemberSyntax::Dn },
        member_attribute,
        id_attribute: attr("id_attribute", if ad { "objectGUID" } else { "entryUUID" })?,
    })
}

/// An LDAP URL the connection code can use: `ldap://` or `ldaps://`, a host,
/// a port from 1 to 65535, nothing else (no base DN, no credentials).
fn check_url(url: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected ldap://host:port or ldaps://host:port";
    // Credentials in a URL are a secret: never quote such a URL.
    let shown = if url.contains('@') { "(not shown: it holds an '@')".to_string() } else { format!("\"{url}\"") };
    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
        return Err(format!("{EXPECTED}, got {shown}"));
    }
    let u = url::Url::parse(url).map_err(|e| format!("{EXPECTED}, got {shown} ({e})"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err("credentials do not belong in the url (use bind_dn and bind_password_file)".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{EXPECTED}: {shown} has no host"));
    }
    if u.port() == Some(0) {
        return Err(format!("{EXPECTED}: port 0 in {shown}"));
    }
    if !matches!(u.path(), "" | "/") || u.query().is_some() || u.fragment().is_some() {
        return Err(format!("{EXPECTED}: {shown} has more than a host and port (put the search base in base_dn)"));
    }
    Ok(())
}

/// A DN: comma-separated `attribute=value` parts, each with an attribute
/// name (`example.com` and `dc=` are not). The empty DN (the root) is not a
/// search base dirsync reads users from.
fn looks_like_dn(s: &str) -> bool {
    !s.trim().is_empty()
        && rdns(s).iter().all(|rdn| match rdn.split_once('=') {
            Some((attr, value)) => {
                let attr = attr.trim();
                !attr.is_empty()
                    && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                    && !value.trim().is_empty()
            }
            None => false,
        })
}

/// The parts of a DN between unescaped commas (`cn=Doe\, John` is one).
fn rdns(s: &str) -> Vec<&str> {
    let (mut parts, mut start, mut escaped) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}
