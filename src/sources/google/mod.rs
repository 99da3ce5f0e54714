//! Google Workspace through the Directory API (`type = "google"`). The
//! service account signs a JWT (RS256, `sub` = the admin it acts for, the
//! read-only directory scopes) and trades it for a token, cached until it
//! expires. A read pages `users.list` (`maxResults=500`, `fields=` asking
//! only for the mapped properties, `projection=full` only when custom
//! schemas are mapped), `groups.list`, and every group's `members.list`
//! (users and nested groups), all to the last `nextPageToken`, a bounded
//! number of groups at once. The API has no delta for users: every read is
//! full. `id` is the identity; `suspended = true` is disabled. Throttling
//! (429, 403 `rateLimitExceeded`/`userRateLimitExceeded`, 503) backs off
//! exponentially within the run's wait budget; other errors fail the run
//! before anything is removed.

pub mod config;
mod lookup;
pub mod writeback;

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::{json, Value};

use self::config::{GoogleConfig, READ_SCOPES};
use crate::config::SourceConfig;
use crate::model::{EntryKind, MemberRef, RawEntry};
use crate::secret::Secret;
use crate::sources::cloud::http::describe;
use crate::sources::cloud::{json as cjson, jwt, token_answer, Api, HttpError};
use crate::sources::{Batcher, EntrySink, FetchCounts, Fetched, Source, SourceError};

/// Google's throttling answers.
fn throttled(status: u16, code: Option<&str>) -> bool {
    status == 429
        || status == 503
        || (status == 403 && matches!(code, Some("rateLimitExceeded" | "userRateLimitExceeded")))
}

/// The Directory API for one source, with one scope's token.
pub struct Directory {
    pub cfg: GoogleConfig,
    api: Api,
    scope: &'static str,
}

impl Directory {
    pub fn new(cfg: &GoogleConfig, scope: &'static str) -> Self {
        Directory { cfg: cfg.clone(), api: Api::new(&cfg.limits, throttled), scope }
    }

    /// `{api_url}/admin/directory/v1{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/admin/directory/v1{path}", self.cfg.api_url)
    }

    async fn fetch_token(&self) -> Result<(Secret, u64), HttpError> {
        let c = &self.cfg;
        let now = jwt::now_secs();
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(k) = &c.key_id {
            header["kid"] = json!(k);
        }
        let claims = json!({
            "iss": c.client_email, "sub": c.admin_email, "scope": self.scope,
            "aud": c.token_url, "iat": now, "exp": now + 3600,
        });
        let assertion = c.key.sign(&header, &claims).map_err(HttpError::new)?;
        let form =
            [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string()), ("assertion", assertion)];
        let what = format!("token request to {}", describe(&Method::POST, &c.token_url));
        let build = || self.api.http.post(&c.token_url).form(&form);
        let body = self.api.send(&what, &build).await.map_err(|mut e| {
            match e.code.as_deref() {
                Some("unauthorized_client") => e.message.push_str(
                    " (give the service account domain-wide delegation for these scopes in the Admin console)",
                ),
                Some("invalid_grant") => e.message.push_str(" (check admin_email and the service account's key)"),
                _ => {}
            }
            e
        })?;
        token_answer(&what, &body)
    }

    /// One API request with the token; a 401 renews it once.
    pub async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Value, HttpError> {
        self.api.call(|| self.fetch_token(), method, url, body, &|r| r).await
    }

    /// One page of a list: its `items` and the next page's token.
    async fn page(
        &self,
        path: &str,
        query: &[(&str, String)],
        items: &str,
        token: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), HttpError> {
        let mut u = url::Url::parse(&self.url(path)).expect("api_url was checked at load");
        u.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        if let Some(t) = token {
            u.query_pairs_mut().append_pair("pageToken", t);
        }
        let mut page = self.call(Method::GET, u.as_str(), None).await?;
        let list = match page.get_mut(items).map(Value::take) {
            Some(Value::Array(a)) => a,
            None | Some(Value::Null) => Vec::new(), // an empty list has no array
            Some(_) => return Err(HttpError::new(format!("GET {path}: \"{items}\" is not a list"))),
        };
        Ok((list, page["nextPageToken"].as_str().filter(|t| !t.is_empty()).map(str::to_string)))
    }

    /// Every page of a list, each item to `each`, to the last `nextPageToken`.
    async fn list(
        &self,
        path: &str,
        query: &[(&str, String)],
        items: &str,
        each: &mut (dyn FnMut(Value) -> Result<(), String> + Send),
    ) -> Result<(), HttpError> {
        let mut token: Option<String> = None;
        loop {
            let (list, next) = self.page(path, query, items, token.as_deref()).await?;
            for v in list {
                each(v).map_err(|m| HttpError::new(format!("GET {path}: {m}")))?;
            }
            match next {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
    }
}

pub struct GoogleSource {
    name: String,
    dir: Directory,
    paths: Vec<String>,
    /// `fields=` for users.list.
    user_fields: String,
    custom: bool,
    /// How a username maps to a primary email ([`lookup::email_mapping`]).
    email_mapping: Option<bool>,
}

impl GoogleSource {
    pub fn new(cfg: &SourceConfig, g: &GoogleConfig) -> Self {
        let mut paths: Vec<String> = cfg.fields.iter().flat_map(|f| f.attributes()).collect();
        paths.sort();
        paths.dedup();
        let mut tops = vec!["id".to_string(), "primaryEmail".to_string(), "suspended".to_string()];
        for p in &paths {
            let top = g.spell(p).split('.').next().unwrap_or("").to_string();
            if !tops.iter().any(|t| t.eq_ignore_ascii_case(&top)) {
                tops.push(top);
            }
        }
        let custom = tops.iter().any(|t| t == "customSchemas");
        GoogleSource {
            name: cfg.name.clone(),
            dir: Directory::new(g, READ_SCOPES),
            paths,
            user_fields: format!("nextPageToken,users({})", tops.join(",")),
            custom,
            email_mapping: lookup::email_mapping(cfg),
        }
    }

    fn err(&self, e: HttpError) -> SourceError {
        SourceError::new(&self.name, e.message)
    }

    fn user_entry(&self, v: &Value) -> Result<RawEntry, String> {
        cjson::user_entry(v, &self.paths, v["suspended"].as_bool(), v["primaryEmail"].as_str())
    }

    /// The groups a `groups.list` query names, each with its whole member
    /// list, into the batcher; returns how many.
    async fn push_groups(&self, b: &mut Batcher, query: &[(&str, String)]) -> Result<u64, SourceError> {
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        self.dir
            .list("/groups", query, "groups", &mut |g| {
                let id = g["id"].as_str().ok_or("a group without an \"id\"")?;
                names.insert(id.to_string(), g["name"].as_str().or(g["email"].as_str()).unwrap_or("").to_string());
                Ok(())
            })
            .await
            .map_err(|e| self.err(e))?;
        let lists: Vec<(String, Vec<MemberRef>)> = stream::iter(names.keys().cloned().collect::<Vec<_>>())
            .map(|id| self.members_of(id))
            .buffer_unordered(self.dir.cfg.limits.concurrency)
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        let groups = lists.len() as u64;
        for (id, members) in lists {
            let e = cjson::group_entry(&id, "name", names.get(&id).map(String::as_str), members);
            b.push(EntryKind::Group, e).await.map_err(|m| SourceError::new(&self.name, m))?;
        }
        Ok(groups)
    }

    async fn members_of(&self, id: String) -> Result<(String, Vec<MemberRef>), HttpError> {
        let mut members = Vec::new();
        let path =
            format!("/groups/{}/members", url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
        let q = [("maxResults", "200".to_string()), ("fields", "nextPageToken,members(id,type)".to_string())];
        self.dir
            .list(&path, &q, "members", &mut |m| {
                if matches!(m["type"].as_str(), Some("USER" | "GROUP")) {
                    let id = m["id"].as_str().ok_or("a member without an \"id\"")?;
                    members.push(MemberRef::ExternalId(id.to_string()));
                }
                Ok(())
            })
            .await?;
        Ok((id, members))
    }
}

#[async_trait]
impl Source for GoogleSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// A user's `id` never changes, so two entries with one id are one user
    /// read twice (a listing that shifted while it was paged): the last wins.
    fn replays(&self) -> bool {
        true
    }

    async fn fetch(&self, sink: EntrySink, _since: Option<&str>) -> Result<Fetched, SourceError> {
        let c = &self.dir.cfg;
        let mut q = vec![
            ("customer", c.customer.clone()),
            ("maxResults", "500".to_string()),
            ("projection", if self.custom { "full" } else { "basic" }.to_string()),
            ("fields", self.user_fields.clone()),
        ];
        if let Some(query) = &c.query {
            q.push(("query", query.clone()));
        }
        // A page's users go to the sink before the next page is asked for.
        let mut b = sink.batcher();
        let mut users = 0u64;
        let mut token: Option<String> = None;
        loop {
            let (list, next) = self.dir.page("/users", &q, "users", token.as_deref()).await.map_err(|e| self.err(e))?;
            for v in list {
                let e = self.user_entry(&v).map_err(|m| SourceError::new(&self.name, format!("GET /users: {m}")))?;
                b.push(EntryKind::User, e).await.map_err(|m| SourceError::new(&self.name, m))?;
                users += 1;
            }
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let gq = [
            ("customer", c.customer.clone()),
            ("maxResults", "200".to_string()),
            ("fields", "nextPageToken,groups(id,name,email)".to_string()),
        ];
        let groups = self.push_groups(&mut b, &gq).await?;
        b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        Ok(Fetched { counts: FetchCounts { users, groups }, delta: None, next_state: None, ..Fetched::default() })
    }

    async fn fetch_user(&self, sink: EntrySink, username: &str) -> Result<Fetched, SourceError> {
        self.lookup(sink, username).await
    }

    async fn probe(&self) -> Result<Option<String>, SourceError> {
        let c = &self.dir.cfg;
        let mut u = url::Url::parse(&self.dir.url("/users")).expect("checked at load");
        u.query_pairs_mut()
            .append_pair("customer", &c.customer)
            .append_pair("maxResults", "1")
            .append_pair("fields", "users(id)");
        self.dir.call(Method::GET, u.as_str(), None).await.map_err(|e| self.err(e))?;
        Ok(Some(format!("signed in as {} for {} and read the users", c.client_email, c.admin_email)))
    }
}
