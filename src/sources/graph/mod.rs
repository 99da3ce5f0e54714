//! Entra ID through Microsoft Graph (`type = "graph"`). A full read pages
//! through `/v1.0/users` (only the mapped properties, `id` and
//! `accountEnabled` in `$select`) and `/v1.0/groups`, then reads every
//! group's members with JSON batches, a bounded number in flight. With
//! incremental reads on, it first takes the `latest` delta links of users
//! and groups, so the next run reads `/users/delta` and `/groups/delta`
//! from there: changed users, `@removed` users and groups (gone from the
//! source either way), and the groups whose members or names changed, whose
//! member lists are then read again in full (the plan compares whole member
//! lists, so a delta cannot drift). An expired delta token is a full read in
//! the same run. The object `id` is the identity; `accountEnabled = false`
//! is disabled.

pub mod client;
pub mod config;
mod lookup;
pub mod writeback;

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;

use self::client::{expired_delta, Graph};
use self::config::GraphConfig;
use crate::config::SourceConfig;
use crate::model::{Delta, EntryKind, MemberRef, RawEntry};
use crate::sources::cloud::{json, HttpError};
use crate::sources::{Batcher, EntrySink, FetchCounts, Fetched, Source, SourceError};

/// Graph's largest page.
const PAGE: usize = 999;
/// Requests in one `$batch` (Graph's limit).
const BATCH: usize = 20;

pub struct GraphSource {
    name: String,
    graph: Graph,
    /// The mapped attribute paths (lower-case).
    paths: Vec<String>,
    /// `$select` for users: `id,accountEnabled` and the mapped properties.
    select: String,
    /// Whether a full read also takes delta links for the next run.
    incremental: bool,
    /// The property usernames are looked up by (`None`: they cannot be).
    username_property: Option<String>,
}

/// The saved position: the two delta links.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    users: String,
    groups: String,
}

impl GraphSource {
    pub fn new(cfg: &SourceConfig, g: &GraphConfig) -> Self {
        let mut paths: Vec<String> = cfg.fields.iter().flat_map(|f| f.attributes()).collect();
        paths.sort();
        paths.dedup();
        let mut select = vec!["id".to_string(), "accountEnabled".to_string()];
        for p in &paths {
            let top = g.spell(p.split('.').next().unwrap_or(p));
            if !select.iter().any(|s| s.eq_ignore_ascii_case(&top)) {
                select.push(top);
            }
        }
        GraphSource {
            name: cfg.name.clone(),
            graph: Graph::new(g),
            paths,
            select: select.join(","),
            incremental: cfg.incremental.enabled && g.user_filter.is_none(),
            username_property: lookup::username_property(cfg, |a| g.spell(a)),
        }
    }

    fn err(&self, e: HttpError) -> SourceError {
        SourceError::new(&self.name, e.message)
    }

    fn users_url(&self) -> String {
        let mut u = url::Url::parse(&self.graph.url("/v1.0/users")).expect("graph_url was checked at load");
        u.query_pairs_mut().append_pair("$select", &self.select).append_pair("$top", &PAGE.to_string());
        if let Some(f) = &self.graph.cfg.user_filter {
            u.query_pairs_mut().append_pair("$filter", f).append_pair("$count", "true");
        }
        u.to_string()
    }

    fn delta_url(&self, what: &str, select: &str, latest: bool) -> String {
        let mut u = url::Url::parse(&self.graph.url(&format!("/v1.0/{what}/delta"))).expect("checked at load");
        u.query_pairs_mut().append_pair("$select", select);
        if latest {
            u.query_pairs_mut().append_pair("$deltatoken", "latest");
        }
        u.to_string()
    }

    /// Pages from `url` to the end, handing each object to `each`; returns
    /// the `@odata.deltaLink` when the pages end with one.
    async fn pages(
        &self,
        url: String,
        each: &mut (dyn FnMut(&Value) -> Result<(), String> + Send),
    ) -> Result<Option<String>, HttpError> {
        let mut p = Pager::new(url);
        while let Some(items) = self.next_page(&mut p).await? {
            for v in &items {
                each(v).map_err(|m| HttpError::new(format!("{}: {m}", client_path(&p.last))))?;
            }
        }
        Ok(p.delta_link)
    }

    /// The next page's objects (`None` after the last page).
    async fn next_page(&self, p: &mut Pager) -> Result<Option<Vec<Value>>, HttpError> {
        let Some(url) = p.next.take() else { return Ok(None) };
        let mut page = self.graph.get(&url).await?;
        let items = match page.get_mut("value").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => return Err(HttpError::new(format!("{}: a page without \"value\"", client_path(&url)))),
        };
        p.next = page["@odata.nextLink"].as_str().map(str::to_string);
        if p.next.is_none() {
            p.delta_link = page["@odata.deltaLink"].as_str().map(str::to_string);
        }
        p.last = url;
        Ok(Some(items))
    }

    /// Users page by page into the batcher; in a delta round, `@removed`
    /// ones as removals (a user can come several times in one round: the
    /// batch keeps the last).
    async fn push_users(&self, b: &mut Batcher, url: String, delta: bool) -> Result<(u64, Option<String>), HttpError> {
        let mut p = Pager::new(url);
        let mut n = 0;
        while let Some(items) = self.next_page(&mut p).await? {
            for v in &items {
                let at = |m: String| HttpError::new(format!("{}: {m}", client_path(&p.last)));
                if delta && v.get("@removed").is_some() {
                    b.gone(EntryKind::User, id_of(v).map_err(at)?.to_string()).await.map_err(HttpError::new)?;
                } else {
                    b.push(EntryKind::User, self.user_entry(v).map_err(at)?).await.map_err(HttpError::new)?;
                    n += 1;
                }
            }
        }
        Ok((n, p.delta_link))
    }

    fn user_entry(&self, v: &Value) -> Result<RawEntry, String> {
        let disabled = v["accountEnabled"].as_bool().map(|on| !on);
        json::user_entry(v, &self.paths, disabled, v["userPrincipalName"].as_str())
    }

    /// The members of each group (users and nested groups, by id), read
    /// with batches of 20, `concurrency` batches at once, each list paged
    /// to the end.
    async fn members(&self, ids: Vec<String>) -> Result<Vec<(String, Vec<MemberRef>)>, HttpError> {
        let chunks: Vec<Vec<String>> = ids.chunks(BATCH).map(|c| c.to_vec()).collect();
        let lists: Vec<Vec<(String, Vec<MemberRef>)>> = stream::iter(chunks)
            .map(|chunk| self.members_of(chunk))
            .buffer_unordered(self.graph.cfg.limits.concurrency)
            .try_collect()
            .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    async fn members_of(&self, ids: Vec<String>) -> Result<Vec<(String, Vec<MemberRef>)>, HttpError> {
        let urls: Vec<String> =
            ids.iter().map(|id| format!("/groups/{}/members?$select=id&$top={PAGE}", enc(id))).collect();
        let parts = self.graph.batch(&urls).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, part) in ids.into_iter().zip(parts) {
            if part.status == 404 {
                continue; // deleted since it was listed: the next read sees it gone
            }
            if part.status != 200 {
                let (code, msg) = (part.body["error"]["code"].as_str(), part.body["error"]["message"].as_str());
                return Err(HttpError {
                    status: Some(part.status),
                    code: code.map(str::to_string),
                    message: format!(
                        "GET /groups/{id}/members (in a batch): HTTP {}{}",
                        part.status,
                        code.map(|c| format!(": {c}: {}", msg.unwrap_or(""))).unwrap_or_default()
                    ),
                });
            }
            let mut members = Vec::new();
            let mut page = part.body;
            loop {
                let items = page["value"]
                    .as_array()
                    .ok_or_else(|| HttpError::new(format!("GET /groups/{id}/members: a page without \"value\"")))?;
                for m in items {
                    let kind = m["@odata.type"].as_str().unwrap_or("");
                    if kind == "#microsoft.graph.user" || kind == "#microsoft.graph.group" {
                        members.push(MemberRef::ExternalId(id_of(m).map_err(HttpError::new)?.to_string()));
                    }
                }
                match page["@odata.nextLink"].as_str() {
                    Some(next) => page = self.graph.get(next).await?,
                    None => break,
                }
            }
            out.push((id, members));
        }
        Ok(out)
    }

    async fn push_groups(&self, b: &mut Batcher, names: BTreeMap<String, String>) -> Result<u64, SourceError> {
        let lists = self.members(names.keys().cloned().collect()).await.map_err(|e| self.err(e))?;
        let n = lists.len() as u64;
        for (id, members) in lists {
            let e = json::group_entry(&id, "displayname", names.get(&id).map(String::as_str), members);
            b.push(EntryKind::Group, e).await.map_err(|m| SourceError::new(&self.name, m))?;
        }
        Ok(n)
    }

    async fn full(&self, sink: EntrySink) -> Result<Fetched, SourceError> {
        // The delta links first: what changes during the read is read again next time.
        let next_state = if self.incremental {
            let users = self.latest("users", &self.select).await?;
            let groups = self.latest("groups", "displayName,members").await?;
            Some(serde_json::to_string(&State { users, groups }).expect("serializable"))
        } else {
            None
        };
        let mut b = sink.batcher();
        let (user_count, _) = self.push_users(&mut b, self.users_url(), false).await.map_err(|e| self.err(e))?;
        let mut names = BTreeMap::new();
        let groups_url = self.graph.url(&format!("/v1.0/groups?$select=id,displayName&$top={PAGE}"));
        self.pages(groups_url, &mut |v| {
            names.insert(id_of(v)?.to_string(), v["displayName"].as_str().unwrap_or("").to_string());
            Ok(())
        })
        .await
        .map_err(|e| self.err(e))?;
        let groups = self.push_groups(&mut b, names).await?;
        b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        Ok(Fetched { counts: FetchCounts { users: user_count, groups }, delta: None, next_state, ..Fetched::default() })
    }

    /// The delta link for "from now on" (`$deltatoken=latest`).
    async fn latest(&self, what: &str, select: &str) -> Result<String, SourceError> {
        let link = self.pages(self.delta_url(what, select, true), &mut |_| Ok(())).await.map_err(|e| self.err(e))?;
        link.ok_or_else(|| SourceError::new(&self.name, format!("GET /v1.0/{what}/delta: no deltaLink in the answer")))
    }

    async fn delta(&self, sink: EntrySink, state: &str) -> Result<Fetched, SourceError> {
        let Ok(st) = serde_json::from_str::<State>(state) else {
            return Err(SourceError::refresh_required(&self.name, "the saved delta links are unreadable"));
        };
        let fail = |e: HttpError| {
            if expired_delta(&e) {
                SourceError::refresh_required(&self.name, format!("the delta token expired: {}", e.message))
            } else {
                self.err(e)
            }
        };
        let mut delta = Delta::default();
        let mut b = sink.batcher();
        let (user_count, users_link) = self.push_users(&mut b, st.users, true).await.map_err(fail)?;
        let users_link = users_link.ok_or_else(|| {
            SourceError::new(&self.name, "GET /v1.0/users/delta: the pages ended without a deltaLink")
        })?;
        let mut changed: BTreeMap<String, String> = BTreeMap::new();
        let groups_link = self
            .pages(st.groups, &mut |v| {
                let id = id_of(v)?.to_string();
                // The last of a group's appearances in the round wins.
                if v.get("@removed").is_some() {
                    changed.remove(&id);
                    delta.deleted_groups.insert(id);
                } else {
                    delta.deleted_groups.remove(&id);
                    let name = v["displayName"].as_str().map(str::to_string);
                    let slot = changed.entry(id).or_default();
                    if let Some(n) = name {
                        *slot = n;
                    }
                }
                Ok(())
            })
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                SourceError::new(&self.name, "GET /v1.0/groups/delta: the pages ended without a deltaLink")
            })?;
        // Names a delta page left out are read with the members.
        let unnamed: Vec<String> = changed.iter().filter(|(_, n)| n.is_empty()).map(|(id, _)| id.clone()).collect();
        for chunk in unnamed.chunks(BATCH) {
            let urls: Vec<String> =
                chunk.iter().map(|id| format!("/groups/{}?$select=id,displayName", enc(id))).collect();
            for (id, part) in chunk.iter().zip(self.graph.batch(&urls).await.map_err(|e| self.err(e))?) {
                match part.body["displayName"].as_str() {
                    Some(n) if part.status == 200 => {
                        changed.insert(id.clone(), n.to_string());
                    }
                    _ => {
                        changed.remove(id);
                    }
                }
            }
        }
        let groups = self.push_groups(&mut b, changed).await?;
        b.flush().await.map_err(|m| SourceError::new(&self.name, m))?;
        let next = serde_json::to_string(&State { users: users_link, groups: groups_link }).expect("serializable");
        Ok(Fetched {
            counts: FetchCounts { users: user_count, groups },
            delta: Some(delta),
            next_state: Some(next),
            ..Fetched::default()
        })
    }
}

/// Where a paged read is.
struct Pager {
    next: Option<String>,
    delta_link: Option<String>,
    /// The page last read, for messages.
    last: String,
}

impl Pager {
    fn new(url: String) -> Self {
        Pager { next: Some(url), delta_link: None, last: String::new() }
    }
}

/// An object's `id`, which every Graph object has.
fn id_of(v: &Value) -> Result<&str, String> {
    v["id"].as_str().filter(|s| !s.is_empty()).ok_or_else(|| "an object without an \"id\"".to_string())
}

/// A path segment, percent-encoded.
fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn client_path(url: &str) -> String {
    crate::sources::cloud::http::describe(&reqwest::Method::GET, url)
}

#[async_trait]
impl Source for GraphSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Graph's delta rounds may return an object several times (its delta
    /// documentation says so): the last one wins.
    fn replays(&self) -> bool {
        true
    }

    async fn fetch(&self, sink: EntrySink, since: Option<&str>) -> Result<Fetched, SourceError> {
        match since {
            Some(state) if self.incremental => self.delta(sink, state).await,
            _ => self.full(sink).await,
        }
    }

    async fn fetch_user(&self, sink: EntrySink, username: &str) -> Result<Fetched, SourceError> {
        self.lookup(sink, username).await
    }

    async fn probe(&self) -> Result<Option<String>, SourceError> {
        let url = self.graph.url("/v1.0/users?$select=id&$top=1");
        self.graph.get(&url).await.map_err(|e| self.err(e))?;
        Ok(Some(format!("signed in to tenant {} and read its users", self.graph.cfg.tenant_id)))
    }
}
