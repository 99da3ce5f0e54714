//! `GET /Users` and `GET /Groups`: a source's resources filtered (RFC 7644
//! §3.4.2.2, the whole grammar), a page at a time (`startIndex`, `count`),
//! projected (`attributes`, `excludedAttributes`). `id`, `userName`,
//! `externalId` and a group's `displayName` compared with `eq` are looked
//! up by index; other filters read the source's resources in id order and
//! evaluate each.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::resources::{kind_of, present, store_error};
use super::{answer, authorize, base_url, query, QueryOf, Scim};
use crate::model::name_key;
use crate::scim::discovery::{self, ScimError, MAX_RESULTS};
use crate::scim::filter::Filter;
use crate::scim::resource::{self, Kind};
use crate::serve::AppState;
use crate::store::{on_store, ScimKey, ScimRow, Store, StoreError};

/// A list request's parameters.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ListParams {
    pub filter: Option<String>,
    #[serde(rename = "startIndex")]
    pub start_index: Option<String>,
    pub count: Option<String>,
    pub attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    pub excluded_attributes: Option<String>,
}

/// Rows read at a time while a filter is evaluated on every resource.
const SCAN: usize = 1000;

pub async fn users(State(st): State<AppState>, headers: HeaderMap, q: QueryOf<ListParams>) -> Result<Response, Scim> {
    list(st, headers, query(q)?, Some(true)).await
}

pub async fn groups(State(st): State<AppState>, headers: HeaderMap, q: QueryOf<ListParams>) -> Result<Response, Scim> {
    list(st, headers, query(q)?, Some(false)).await
}

/// `POST /Users/.search` and `POST /Groups/.search` (RFC 7644 §3.4.3): the
/// same query in a `SearchRequest` body.
pub async fn search<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Scim> {
    authorize(&st.config(), &headers)?;
    let q = search_request(&super::json_body(&headers, body)?);
    list(st, headers, q, Some(USER)).await
}

/// `POST /.search`: users, then groups.
pub async fn search_all(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Scim> {
    authorize(&st.config(), &headers)?;
    let q = search_request(&super::json_body(&headers, body)?);
    list(st, headers, q, None).await
}

/// A `SearchRequest` body's parameters (arrays of attributes joined).
fn search_request(b: &Value) -> ListParams {
    let text = |k: &str| -> Option<String> {
        match resource::get_ci(b, k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Array(a) => Some(a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
            _ => None,
        }
    };
    ListParams {
        filter: text("filter"),
        start_index: text("startIndex"),
        count: text("count"),
        attributes: text("attributes"),
        excluded_attributes: text("excludedAttributes"),
    }
}

/// A 1-based start and a page size as RFC 7644 §3.4.2.4 reads them: a
/// start below 1 is 1, a negative count is 0, and the count is capped.
fn paging(p: &ListParams) -> Result<(usize, usize), Scim> {
    let num = |v: &Option<String>, what: &str| -> Result<Option<i64>, Scim> {
        v.as_deref()
            .map(|s| s.trim().parse::<i64>())
            .transpose()
            .map_err(|_| Scim(ScimError::new(400, Some("invalidValue"), format!("{what} must be an integer"))))
    };
    let start = num(&p.start_index, "startIndex")?.unwrap_or(1).max(1) as usize;
    let count = num(&p.count, "count")?.unwrap_or(100).clamp(0, MAX_RESULTS as i64) as usize;
    Ok((start, count))
}

async fn list(st: AppState, headers: HeaderMap, p: ListParams, user: Option<bool>) -> Result<Response, Scim> {
    let cfg = st.config();
    let source = authorize(&cfg, &headers)?;
    let (start, count) = paging(&p)?;
    let filter = match p.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        None => None,
        Some(f) if f.contains('\0') => {
            return Err(Scim(ScimError::new(400, Some("invalidFilter"), "the filter holds a NUL character")))
        }
        Some(f) => Some(
            Filter::parse(f)
                .map_err(|e| Scim(ScimError::new(400, Some("invalidFilter"), format!("filter \"{f}\": {e}"))))?,
        ),
    };
    let base = base_url(&cfg, &headers);
    let kinds: Vec<Kind> = match user {
        Some(u) => vec![kind_of(u)],
        None => vec![Kind::User, Kind::Group],
    };
    let b = base.clone();
    let (total, page) = on_store(&*st.store, move |s| -> Result<_, StoreError> {
        // Each kind's part of the page, the start moved past the kinds before.
        let (mut total, mut page) = (0, Vec::new());
        for k in kinds {
            let from = start.saturating_sub(total).max(1);
            let (n, mut p) = select(s, &source, k, filter.as_ref(), &b, from, count - page.len())?;
            total += n;
            page.append(&mut p);
        }
        Ok((total, page))
    })
    .await
    .map_err(store_error)?;
    let shown: Vec<Value> = page
        .into_iter()
        .map(|mut v| {
            resource::project(&mut v, p.attributes.as_deref(), p.excluded_attributes.as_deref());
            v
        })
        .collect();
    Ok(answer(StatusCode::OK, &discovery::list(shown, total, start)))
}

/// The matching resources' count and the page from `start` (1-based).
fn select(
    store: &dyn Store,
    source: &str,
    kind: Kind,
    filter: Option<&Filter>,
    base: &str,
    start: usize,
    count: usize,
) -> Result<(usize, Vec<Value>), StoreError> {
    let matches = |v: &Value| filter.is_none_or(|f| f.matches(v, &resource::case_exact));
    let mut total = 0;
    let mut page = Vec::new();
    let mut take = |v: Value| {
        total += 1;
        if total >= start && page.len() < count {
            page.push(v);
        }
    };
    if let Some((key, value)) = filter.and_then(index_of(kind)) {
        for row in store.scim_find(source, kind.as_str(), key, &value)? {
            let v = present(&row, base);
            if matches(&v) {
                take(v);
            }
        }
        return Ok((total, page));
    }
    if filter.is_none() {
        // Without a filter only the page is read; the count comes from the store.
        let all = store.scim_count(source, kind.as_str())? as usize;
        let mut after: Option<String> = None;
        let mut seen = 0;
        while page.len() < count && seen < all {
            let rows: Vec<ScimRow> = store.scim_scan(source, kind.as_str(), after.as_deref(), SCAN)?;
            let Some(last) = rows.last() else { break };
            after = Some(last.id.clone());
            for row in rows {
                seen += 1;
                if seen >= start && page.len() < count {
                    page.push(present(&row, base));
                }
            }
        }
        return Ok((all, page));
    }
    let mut after: Option<String> = None;
    loop {
        let rows = store.scim_scan(source, kind.as_str(), after.as_deref(), SCAN)?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for row in &rows {
            let v = present(row, base);
            if matches(&v) {
                take(v);
            }
        }
    }
    Ok((total, page))
}

/// The indexed lookup a filter is, if it is one: `id`, `userName`,
/// `externalId`, or a group's `displayName`, compared with `eq`.
fn index_of(kind: Kind) -> impl Fn(&Filter) -> Option<(ScimKey, String)> {
    move |f| {
        let (attr, value) = resource::indexed_eq(f)?;
        match (attr, kind) {
            ("id", _) => Some((ScimKey::Id, value.to_string())),
            ("externalId", _) => Some((ScimKey::ExternalId, value.to_string())),
            ("userName", Kind::User) => Some((ScimKey::Name, name_key(value))),
            ("displayName", Kind::Group) => Some((ScimKey::Name, value.to_lowercase())),
            _ => None,
        }
    }
}
