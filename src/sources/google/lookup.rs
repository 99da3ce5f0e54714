//! One Google Workspace user by username, for just-in-time provisioning:
//! `users.get` by primary email (a username mapped from `primaryEmail`
//! without its domain is looked up as `name@domain`, the source's `domain`),
//! or `users.list` with the source's `query` and `email='…'` when a query
//! limits the source, so a user outside it is not found. Then the groups
//! that list the user directly (`groups.list?userKey=`), whose member lists
//! are read whole, so nested groups resolve as in full reads.

use reqwest::Method;
use serde_json::Value;

use super::GoogleSource;
use crate::config::{FieldSource, SourceConfig, Transform};
use crate::model::{Delta, EntryKind};
use crate::sources::{EntrySink, FetchCounts, Fetched, SourceError};

/// How usernames map to primary emails: `None` when the username is not
/// mapped from `primaryEmail`; `Some(true)` when its domain is cut off.
pub(super) fn email_mapping(cfg: &SourceConfig) -> Option<bool> {
    let f = cfg.fields.iter().find(|f| &*f.name == "username")?;
    let FieldSource::Attribute(a) = &f.source else { return None };
    if a != "primaryemail" {
        return None;
    }
    let mut cut = false;
    for t in &f.transforms {
        match t {
            Transform::Lower | Transform::Upper | Transform::Trim => {}
            Transform::Replace { regex, with } if regex.as_str() == "^([^@]+)@.*$" && with == "$1" => cut = true,
            _ => return None,
        }
    }
    Some(cut)
}

impl GoogleSource {
    /// The primary email `username` stands for (`None`: no user can have it).
    fn email_of(&self, username: &str, cut: bool) -> Option<String> {
        let bad = |c: char| c.is_control() || c.is_whitespace() || matches!(c, '\'' | '"' | '\\' | '/' | '?' | '#');
        if username.is_empty() || username.chars().any(bad) {
            return None;
        }
        match (cut, username.contains('@')) {
            (true, true) => None, // a name without its domain never has one
            (true, false) => Some(format!("{username}@{}", self.dir.cfg.domain)),
            (false, _) => Some(username.to_string()),
        }
    }

    pub(super) async fn lookup(&self, sink: EntrySink, username: &str) -> Result<Fetched, SourceError> {
        let Some(cut) = self.email_mapping else {
            return Err(SourceError::new(
                &self.name,
                "the username is not mapped from primaryEmail: one user cannot be looked up",
            ));
        };
        let none = || Fetched { delta: Some(Delta::default()), ..Fetched::default() };
        let Some(email) = self.email_of(username, cut) else { return Ok(none()) };
        let Some(user) = self.get_user(&email).await.map_err(|e| self.err(e))? else { return Ok(none()) };
        let mut b = sink.batcher();
        let entry = self.user_entry(&user).map_err(|m| SourceError::new(&self.name, format!("GET /users: {m}")))?;
        b.push(EntryKind::User, entry).await.map_err(|m| SourceError::new(&self.name, m))?;
        let id = user["id"].as_str().unwrap_or_default().to_string();
        let gq = [
            ("userKey", id),
            ("maxResults", "200".to_string()),
            ("fields", "nextPageToken,groups(id,name,email)".to_string()),
        ];
        let groups = self.push_groups(&mut b, &gq).await?;
        b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        Ok(Fetched {
            counts: FetchCounts { users: 1, groups },
            delta: Some(Delta::default()),
            next_state: None,
            ..Fetched::default()
        })
    }

    /// The user with this primary email, if the source has one.
    async fn get_user(&self, email: &str) -> Result<Option<Value>, crate::sources::cloud::HttpError> {
        let c = &self.dir.cfg;
        let projection = if self.custom { "full" } else { "basic" };
        let user_fields = self.user_fields.trim_start_matches("nextPageToken,users(").trim_end_matches(')');
        if let Some(query) = &c.query {
            let q = [
                ("customer", c.customer.clone()),
                ("maxResults", "500".to_string()),
                ("projection", projection.to_string()),
                ("fields", self.user_fields.clone()),
                ("query", format!("{query} email='{email}'")),
            ];
            let (list, _) = self.dir.page("/users", &q, "users", None).await?;
            return Ok(list
                .into_iter()
                .find(|u| u["primaryEmail"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email))));
        }
        let mut u = url::Url::parse(&self.dir.url("/users")).expect("api_url was checked at load");
        u.path_segments_mut().expect("an http url").push(email);
        u.query_pairs_mut().append_pair("projection", projection).append_pair("fields", user_fields);
        match self.dir.call(Method::GET, u.as_str(), None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
