//! `POST /api/auth` (a user's password checked against the directory),
//! `/healthz`, `/readyz`, `/metrics` (Prometheus text format) and the
//! middleware that counts requests by route and status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::clients::authorize;
use super::error::ApiError;
use crate::config::Scope;
use crate::engine::history::RunStatus;
use crate::serve::dirauth::{AuthError, Origin};
use crate::serve::runner::Histogram;
use crate::serve::AppState;
use crate::store::on_store;

#[derive(Deserialize)]
pub struct AuthBody {
    username: String,
    password: String,
}

/// `POST /api/auth`: 200 `{username, groups}`, 401 `invalid_credentials`
/// (whatever was wrong), 429 with `Retry-After`, 503 `directory_unavailable`.
pub async fn auth(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = authorize(&st, &headers, Scope::Auth)?;
    let b: AuthBody = crate::serve::api::error::object_body(body)?;
    match st.auth.authenticate(&b.username, &b.password, Origin::Api { client: &caller.name }).await {
        Ok(a) => Ok(Json(json!({ "username": a.username, "groups": a.groups }))),
        Err(AuthError::InvalidCredentials) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the username or the password is not right",
        )),
        Err(AuthError::RateLimited { retry_after }) => Err(ApiError {
            retry_after: Some(retry_after.as_secs().max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many failed attempts; try again later")
        }),
        Err(AuthError::Unavailable(m)) => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "directory_unavailable", m))
        }
        Err(AuthError::Store(e)) => Err(e.into()),
    }
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the store answers and no source failed its last run.
pub async fn readyz(State(st): State<AppState>) -> Response {
    let store_ok = on_store(&*st.store, |s| s.runs(1)).await.is_ok();
    let failing: Vec<String> = st
        .runner
        .health()
        .into_iter()
        .filter(|(_, h)| h.last_status == Some(RunStatus::Failed))
        .map(|(s, _)| s)
        .collect();
    let ready = store_ok && failing.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": ready, "store": store_ok, "failing_sources": failing }))).into_response()
}

/// Requests by route and status, with a latency histogram per route.
#[derive(Default)]
pub struct HttpMetrics {
    inner: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

pub async fn count_requests(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    // Labels stay bounded: a client may send any method name.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PATCH" | "PUT" | "DELETE" | "HEAD" | "OPTIONS") => m.to_string(),
        _ => "other".to_string(),
    };
    let t0 = Instant::now();
    let res = next.run(req).await;
    let took = t0.elapsed().as_secs_f64();
    tracing::debug!(%method, %route, status = res.status().as_u16(), ms = took * 1000.0, "request");
    *st.http.inner.lock().expect("metrics lock").entry((route.clone(), method, res.status().as_u16())).or_default() +=
        1;
    st.http.latency.lock().expect("metrics lock").entry(route).or_default().observe(took);
    res
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0;
    let sep = if labels.is_empty() { "" } else { "," };
    for (b, c) in Histogram::BOUNDS.iter().zip(h.counts) {
        cumulative += c;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count);
}

/// `GET /metrics`, Prometheus text format.
/// Live sources' states and webhooks' deliveries.
fn live_metrics(o: &mut String, st: &AppState) {
    o.push_str("# HELP dirsync_live_state Each live source's state (1 for the state it is in).\n# TYPE dirsync_live_state gauge\n");
    for s in st.live.list() {
        let _ = writeln!(o, "dirsync_live_state{{source=\"{}\",state=\"{}\"}} 1", label(&s.name), s.state.as_str());
    }
    o.push_str("# HELP dirsync_webhook_delivered_total Changes delivered (acknowledged) since start.\n# TYPE dirsync_webhook_delivered_total counter\n");
    let hooks = st.hooks.list();
    for h in &hooks {
        let _ = writeln!(o, "dirsync_webhook_delivered_total{{webhook=\"{}\"}} {}", label(&h.name), h.delivered);
    }
    o.push_str("# HELP dirsync_webhook_failed_attempts_total Deliveries that failed since start.\n# TYPE dirsync_webhook_failed_attempts_total counter\n");
    for h in &hooks {
        let _ = writeln!(
            o,
            "dirsync_webhook_failed_attempts_total{{webhook=\"{}\"}} {}",
            label(&h.name),
            h.failed_attempts
        );
    }
    o.push_str("# HELP dirsync_webhook_failures Failed attempts of the batch waiting.\n# TYPE dirsync_webhook_failures gauge\n");
    for h in &hooks {
        let _ = writeln!(o, "dirsync_webhook_failures{{webhook=\"{}\"}} {}", label(&h.name), h.failures);
    }
    o.push_str("# HELP dirsync_webhook_lag Changes in the feed beyond the webhook's cursor.\n# TYPE dirsync_webhook_lag gauge\n");
    for h in &hooks {
        let _ = writeln!(o, "dirsync_webhook_lag{{webhook=\"{}\"}} {}", label(&h.name), h.lag);
    }
}

pub async fn metrics(State(st): State<AppState>) -> Result<Response, ApiError> {
    let mut o = String::new();
    let (finished, durations) = st.runner.finished();
    o.push_str(
        "# HELP dirsync_runs_total Finished runs by sources, mode and status.\n# TYPE dirsync_runs_total counter\n",
    );
    for ((sources, mode, status), n) in &finished {
        let _ = writeln!(
            o,
            "dirsync_runs_total{{sources=\"{}\",mode=\"{}\",status=\"{}\"}} {n}",
            label(sources),
            label(mode),
            status.as_str()
        );
    }
    o.push_str(
        "# HELP dirsync_run_duration_seconds How long runs took.\n# TYPE dirsync_run_duration_seconds histogram\n",
    );
    histogram(&mut o, "dirsync_run_duration_seconds", "", &durations);
    o.push_str("# HELP dirsync_source_last_success_timestamp_seconds When a source last finished a run that did not fail.\n# TYPE dirsync_source_last_success_timestamp_seconds gauge\n");
    o.push_str("# HELP dirsync_source_failures Failed runs in a row.\n# TYPE dirsync_source_failures gauge\n");
    for (s, h) in st.runner.health() {
        if let Some(t) = h.last_ok_at {
            let secs = t.since(crate::time::Timestamp::parse("1970-01-01T00:00:00Z").expect("epoch")).as_secs();
            let _ = writeln!(o, "dirsync_source_last_success_timestamp_seconds{{source=\"{}\"}} {secs}", label(&s));
        }
        let _ = writeln!(o, "dirsync_source_failures{{source=\"{}\"}} {}", label(&s), h.failures);
    }
    let (users, groups, queue) = on_store(&*st.store, |s| -> Result<_, crate::store::StoreError> {
        let (users, groups) = s.counts()?;
        Ok((users, groups, s.writeback_counts()?))
    })
    .await?;
    o.push_str("# HELP dirsync_users Users by source and status.\n# TYPE dirsync_users gauge\n");
    for ((source, status), n) in users {
        let _ = writeln!(o, "dirsync_users{{source=\"{}\",status=\"{}\"}} {n}", label(&source), status.as_str());
    }
    let _ = writeln!(o, "# HELP dirsync_groups Groups.\n# TYPE dirsync_groups gauge\ndirsync_groups {groups}");
    o.push_str("# HELP dirsync_writeback_items Write-back queue by status.\n# TYPE dirsync_writeback_items gauge\n");
    for (k, n) in ["pending", "failed", "conflict"].into_iter().zip(queue) {
        let _ = writeln!(o, "dirsync_writeback_items{{status=\"{k}\"}} {n}");
    }
    live_metrics(&mut o, &st);
    let a = st.auth.counts();
    o.push_str(
        "# HELP dirsync_auth_attempts_total Password checks by outcome.\n# TYPE dirsync_auth_attempts_total counter\n",
    );
    for (k, n) in
        [("ok", a.ok), ("invalid", a.invalid), ("rate_limited", a.rate_limited), ("unavailable", a.unavailable)]
    {
        let _ = writeln!(o, "dirsync_auth_attempts_total{{outcome=\"{k}\"}} {n}");
    }
    o.push_str("# HELP dirsync_http_requests_total HTTP requests by route, method and status.\n# TYPE dirsync_http_requests_total counter\n");
    for ((route, method, status), n) in st.http.inner.lock().expect("metrics lock").iter() {
        let _ = writeln!(
            o,
            "dirsync_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
            label(route)
        );
    }
    o.push_str("# HELP dirsync_http_request_duration_seconds HTTP latency by route.\n# TYPE dirsync_http_request_duration_seconds histogram\n");
    for (route, h) in st.http.latency.lock().expect("metrics lock").iter() {
        histogram(&mut o, "dirsync_http_request_duration_seconds", &format!("route=\"{}\"", label(route)), h);
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], o).into_response())
}
