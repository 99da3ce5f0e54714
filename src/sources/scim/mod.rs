//! The SCIM kind: users and groups an identity provider pushes (Entra ID,
//! Okta, OneLogin, JumpCloud, Keycloak) rather than a directory dirsync
//! reads. Its settings ([`config`]) hold the bearer token; [`user_entry`]
//! and [`group_entry`] turn a stored SCIM resource into the entry the
//! mapping step reads, the mapped attribute paths evaluated on its JSON.
//! The service's `/scim/v2` endpoint (`serve::scim`) and the engine's push
//! (`engine::push`) do the rest; a sync never reads this source.

pub mod config;

use async_trait::async_trait;
use serde_json::Value;

pub use config::ScimConfig;

use super::{EntrySink, Fetched, Source, SourceError};
use crate::config::SourceConfig;
use crate::model::{AttrValue, Facts, MemberRef, RawEntry};
use crate::scim::filter::PatchPath;
use crate::scim::resource::{get_ci, texts};

pub struct ScimSource {
    name: String,
}

#[async_trait]
impl Source for ScimSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, _sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        Err(SourceError::new(&self.name, "a SCIM source is pushed to by its identity provider; it cannot be read"))
    }
}

/// The attribute paths a source's fields read (their config spelling, lower-case).
pub fn mapped_paths(cfg: &SourceConfig) -> Vec<String> {
    cfg.user_attributes().into_iter().filter(|a| a != "id").collect()
}

/// A user resource as an entry: identity its SCIM `id`, each mapped path's
/// values, disabled when `active` is false.
pub fn user_entry(id: &str, resource: &Value, paths: &[String]) -> RawEntry {
    let mut e = RawEntry::new(format!("Users/{id}"));
    for p in paths {
        let Ok(parsed) = PatchPath::parse(p) else { continue };
        let mut vals = texts(resource, &parsed);
        if vals.is_empty() && p.eq_ignore_ascii_case("name.formatted") {
            vals.extend(formatted_name(resource));
        }
        for v in vals {
            e.push(p, AttrValue::Text(v));
        }
    }
    let name = get_ci(resource, "userName").and_then(Value::as_str).unwrap_or("");
    e.facts = Facts {
        id: Some(Ok(id.to_string())),
        disabled: Some(!crate::scim::resource::is_active(resource)),
        origin: Some(format!("Users/{id} ({name})")),
        ..Facts::default()
    };
    e
}

/// A name for a user without `name.formatted`: `displayName`, else
/// `givenName familyName`, else its `userName` (identity providers may
/// send nothing else).
fn formatted_name(resource: &Value) -> Option<String> {
    if let Some(d) = get_ci(resource, "displayName").and_then(Value::as_str).filter(|d| !d.trim().is_empty()) {
        return Some(d.to_string());
    }
    let part = |k: &str| {
        let name = get_ci(resource, "name")?;
        get_ci(name, k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    };
    let joined: Vec<&str> = [part("givenName"), part("familyName")].into_iter().flatten().collect();
    if !joined.is_empty() {
        return Some(joined.join(" "));
    }
    get_ci(resource, "userName").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(str::to_string)
}

/// A group resource as an entry: identity its SCIM `id`, its
/// `displayName`, members by SCIM id (users and groups of the same source).
pub fn group_entry(id: &str, resource: &Value) -> RawEntry {
    let name = get_ci(resource, "displayName").and_then(Value::as_str);
    let members = match get_ci(resource, "members") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|m| get_ci(m, "value").and_then(Value::as_str))
            .map(|v| MemberRef::ExternalId(v.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    let mut e = crate::sources::cloud::json::group_entry(id, "displayname", name, members);
    e.dn = format!("Groups/{id}");
    e.facts.origin = Some(format!("Groups/{id} ({})", name.unwrap_or("")));
    e
}
