//! One `[[sources]]` table: its connection (`type = "ldap" | "ad" | "ldif"`,
//! with AD's defaults), filters, field mappings, incremental and write-back
//! settings, validated into a [`SourceConfig`]. Errors name the key.

use std::path::PathBuf;

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) name: String,
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
pub(super) struct RawIncremental {
    enabled: Option<bool>,
    full_every: Option<String>,
}

/// Validates source number `i` (its name was checked by the caller).
pub(super) fn parse_source(
    i: usize,
    rs: &RawSource,
    resolve: &dyn Fn(&str) -> PathBuf,
    err: &dyn Fn(String, String) -> ConfigError,
    warnings: &mut Vec<String>,
) -> Result<SourceConfig, ConfigError> {
    let key = |k: &str| format!("sources[{i}].{k}");
    let mut kind = match rs.kind.as_str() {
        "ldap" | "ad" => {
            for (k, present) in [("path", rs.path.is_some())] {
                if present {
                    return Err(err(key(k), format!("is not used by type = \"{}\"", rs.kind)));
                }
            }

            let url = rs
                .url
                .clone()
                .ok_or_else(|| err(key("url"), "missing (expected ldap://host:port or ldaps://host:port)".into()))?;
            check_url(&url).map_err(|m| err(key("url"), m))?;
            let starttls = rs.starttls.unwrap_or(false);
            if starttls && url.starts_with("ldaps://") {
                return Err(err(key("starttls"), "cannot be used with an ldaps:// url (TLS is already on)".into()));
            }
            let ca_file = rs.ca_file.as_deref().map(resolve);
            if let Some(ca) = &ca_file {
                if !ca.is_file() {
                    return Err(err(key("ca_file"), format!("{} does not exist or is not a file", ca.display())));
                }
                crate::sources::ldap::tls_config(ca).map_err(|_| {
                    err(
                        key("ca_file"),
                        format!(
                            "{} holds no usable PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)",
                            ca.display()
                        ),
                    )
                })?;
            }
            let keys = PasswordKeys {
                literal: rs.bind_password.as_deref(),
                file: rs.bind_password_file.as_deref(),
                env: rs.bind_password_env.as_deref(),
                where_: format!("sources[{i}]"),
            };
            let bind_password = read_password(&keys, resolve, &|k, m| err(key(k), m), warnings)?;
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
                query: DirectoryQuery::default(), // filled in below
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
            let p =
                rs.path.as_deref().ok_or_else(|| err(key("path"), "missing (expected the LDIF file's path)".into()))?;
            SourceKind::Ldif(LdifConfig {
                path: resolve(p),
                base_dn: rs.base_dn.clone(),
                query: DirectoryQuery::default(),
            })
        }
        other => return Err(err(key("type"), format!("expected \"ldap\", \"ad\" or \"ldif\", got \"{other}\""))),
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
            return Err(err(key("fields"), "missing: add [sources.fields] with at least username and full_name".into()))
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
    // LDAP-shaped kinds (ldap, ad, ldif) read LDAP attribute names only.
    for f in &fields {
        for a in f.attributes() {
            fields::check_attr_name(&a).map_err(|m| err(key(&format!("fields.{}", f.name)), m))?;
        }
    }
    if let Some(f) = fields.iter().find(|f| f.app_owned) {
        if !crate::writeback::transport::supported(&kind) {
            return Err(err(
                key(&format!("fields.{}.owner", f.name)),
                format!(
                    "owner = \"app\" needs a source dirsync can write the value back to (type = \"ldap\" or \"ad\"); type = \"{}\" has none",
                    kind.type_name()
                ),
            ));
        }
    }
    // username first, so mapping can name the user in messages.
    fields.sort_by_key(|f| &*f.name != "username");
    if let Some(f) = fields.iter_mut().find(|f| &*f.name == "full_name") {
        if !fields_table.get("full_name").and_then(|v| v.as_table()).is_some_and(|t| t.contains_key("required")) {
            f.required = true;
        }
    }
    let query = DirectoryQuery {
        user_filter,
        group_filter,
        group_name_attribute: rs.group_name_attribute.clone().unwrap_or_else(|| "cn".into()).to_ascii_lowercase(),
        member_attribute,
        id_attribute: rs
            .id_attribute
            .clone()
            .unwrap_or_else(|| if ad { "objectGUID" } else { "entryUUID" }.into())
            .to_ascii_lowercase(),
    };
    match &mut kind {
        SourceKind::Ldap(l) => l.query = query,
        SourceKind::Ldif(l) => l.query = query,
    }
    Ok(SourceConfig {
        name: rs.name.clone(),
        kind,
        import_disabled: rs.import_disabled.unwrap_or(false),
        scope_groups: rs.scope_groups.clone().unwrap_or_default(),
        writeback: match &rs.writeback {
            None => None,
            Some(w) => writeback::parse_writeback(
                w,
                &format!("sources[{i}].writeback"),
                resolve,
                &|k, m| err(key(&format!("writeback.{k}")), m),
                warnings,
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
