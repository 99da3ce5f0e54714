//! One Entra user by username, for just-in-time provisioning: a `$filter`
//! on the property the username is mapped from (`eq`, the value quoted as
//! OData requires, so no input widens the query), the mapped `$select`,
//! then the groups that list the user directly (`memberOf`, groups only:
//! directory roles and administrative units are not groups), whose member
//! lists are read whole as in a delta, so nested groups resolve as in full
//! reads. A plain `eq` needs no `ConsistencyLevel: eventual`; it is sent
//! only with a `user_filter`, as for every read.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{client_path, enc, id_of, GraphSource, PAGE};
use crate::config::{FieldSource, SourceConfig, Transform};
use crate::model::{Delta, EntryKind};
use crate::sources::{EntrySink, FetchCounts, Fetched, SourceError};

/// The Graph property a username can be looked up by: the mapped attribute
/// when it is a top-level property and the mapping keeps its value (case and
/// blanks aside: Graph compares strings without regard to case).
pub(super) fn username_property(cfg: &SourceConfig, spell: impl Fn(&str) -> String) -> Option<String> {
    let f = cfg.fields.iter().find(|f| &*f.name == "username")?;
    let FieldSource::Attribute(a) = &f.source else { return None };
    let plain = f.transforms.iter().all(|t| matches!(t, Transform::Lower | Transform::Upper | Transform::Trim));
    (plain && !a.contains('.')).then(|| spell(a))
}

/// A string literal in an OData filter: quoted, a quote doubled.
pub(super) fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl GraphSource {
    pub(super) async fn lookup(&self, sink: EntrySink, username: &str) -> Result<Fetched, SourceError> {
        let Some(prop) = &self.username_property else {
            return Err(SourceError::new(
                &self.name,
                "the username is not mapped from one Graph property as it is: one user cannot be looked up",
            ));
        };
        let none = || Fetched { delta: Some(Delta::default()), ..Fetched::default() };
        if username.trim().is_empty() || username.chars().any(char::is_control) {
            return Ok(none());
        }
        let mut filter = format!("{prop} eq {}", odata_string(username));
        if let Some(f) = &self.graph.cfg.user_filter {
            filter = format!("({f}) and {filter}");
        }
        let mut u = url::Url::parse(&self.graph.url("/v1.0/users")).expect("graph_url was checked at load");
        u.query_pairs_mut().append_pair("$filter", &filter).append_pair("$select", &self.select);
        if self.graph.cfg.user_filter.is_some() {
            u.query_pairs_mut().append_pair("$count", "true");
        }
        let mut found: Vec<Value> = Vec::new();
        self.pages(u.to_string(), &mut |v| {
            found.push(v.clone());
            Ok(())
        })
        .await
        .map_err(|e| self.err(e))?;
        if found.is_empty() {
            return Ok(none());
        }
        let mut b = sink.batcher();
        let mut groups: BTreeMap<String, String> = BTreeMap::new();
        for v in &found {
            let at = |m: String| SourceError::new(&self.name, format!("{}: {m}", client_path(u.as_str())));
            let id = id_of(v).map_err(at)?.to_string();
            b.push(EntryKind::User, self.user_entry(v).map_err(at)?)
                .await
                .map_err(|m| SourceError::new(&self.name, m))?;
            let url = self.graph.url(&format!("/v1.0/users/{}/memberOf?$select=id,displayName&$top={PAGE}", enc(&id)));
            self.pages(url, &mut |g| {
                if g["@odata.type"].as_str() == Some("#microsoft.graph.group") {
                    groups.insert(id_of(g)?.to_string(), g["displayName"].as_str().unwrap_or("").to_string());
                }
                Ok(())
            })
            .await
            .map_err(|e| self.err(e))?;
        }
        let users = found.len() as u64;
        let groups = self.push_groups(&mut b, groups).await?;
        b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        Ok(Fetched {
            counts: FetchCounts { users, groups },
            delta: Some(Delta::default()),
            next_state: None,
            ..Fetched::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_odata_string_doubles_its_quotes_so_a_value_cannot_close_it() {
        assert_eq!(odata_string("o'brien@x"), "'o''brien@x'");
        assert_eq!(odata_string("' or true or '"), "''' or true or '''");
    }
}
