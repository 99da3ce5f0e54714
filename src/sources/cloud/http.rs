//! One HTTP request to a cloud API, retried while the service throttles it
//! (429, 503, 504 and what the kind calls throttling) for as long as the
//! run's wait budget lasts; any other failure is an [`HttpError`] that names
//! the request (method and path, never a token) and the service's own error
//! code and message.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use tracing::warn;

/// A request that failed, explained.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// The HTTP status, when the service answered.
    pub status: Option<u16>,
    /// The service's error code (Graph's `error.code`, Google's `reason`).
    pub code: Option<String>,
    pub message: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl HttpError {
    pub fn new(message: impl Into<String>) -> Self {
        HttpError { status: None, code: None, message: message.into() }
    }
}

/// Whether an answer means "slow down": Graph's 429/503/504, Google's 429
/// and 403 `rateLimitExceeded`. Given the status and the service's code.
pub type Throttle = fn(u16, Option<&str>) -> bool;

/// The total time one run may spend waiting on throttled requests, shared by
/// all its requests; beyond it the run fails (it never waits forever).
#[derive(Debug)]
pub struct Budget {
    left: Mutex<Duration>,
    total: Duration,
}

impl Budget {
    pub fn new(total: Duration) -> Self {
        Budget { left: Mutex::new(total), total }
    }

    /// Takes `wait` from the budget or fails the request `what` (a throttled
    /// part of a batch, which [`send`] does not see).
    pub fn take_or_fail(&self, what: &str, wait: Duration) -> Result<(), HttpError> {
        self.take(wait).map_err(|left| HttpError {
            status: Some(429),
            code: None,
            message: format!(
                "{what}: throttled; waiting {} s more would pass max_retry_wait_secs ({} s in all, {} s left)",
                wait.as_secs(),
                self.total.as_secs(),
                left.as_secs()
            ),
        })
    }

    /// Takes `wait` from the budget, or says how much is left.
    fn take(&self, wait: Duration) -> Result<(), Duration> {
        let mut left = self.left.lock().expect("budget lock");
        if wait > *left {
            return Err(*left);
        }
        *left -= wait;
        Ok(())
    }
}

/// `https://…`, or `http://` to this machine only (tests, a local proxy):
/// tokens and secrets never cross a network in the clear.
pub fn check_url(url: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(url).map_err(|e| format!("expected an https:// URL, got \"{url}\" ({e})"))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match u.scheme() {
        "https" if u.host().is_some() => Ok(u),
        "http" if loopback => Ok(u),
        "http" => Err(format!(
            "\"{url}\" is plain http to another machine: tokens would cross the network in the clear (use https://)"
        )),
        _ => Err(format!("expected an https:// URL, got \"{url}\"")),
    }
}

/// The client every cloud request goes through (rustls; `timeout` per request).
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(15).min(timeout))
        .user_agent(concat!("dirsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with the default TLS settings")
}

/// How long the service asked us to wait: `Retry-After` in seconds (or an
/// HTTP date), else `fallback`.
fn retry_after(headers: &reqwest::header::HeaderMap, fallback: Duration) -> Duration {
    let Some(v) = headers.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()) else { return fallback };
    if let Ok(s) = v.trim().parse::<u64>() {
        return Duration::from_secs(s);
    }
    chrono::DateTime::parse_from_rfc2822(v.trim())
        .ok()
        .and_then(|t| (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok())
        .unwrap_or(fallback)
}

/// The path of a URL for messages (no query: it may hold page tokens).
pub fn describe(method: &Method, url: &str) -> String {
    let path = url::Url::parse(url).map(|u| u.path().to_string()).unwrap_or_else(|_| "?".into());
    format!("{method} {path}")
}

/// The service's error code and message from a JSON error body (Graph's
/// `{"error":{"code","message"}}`, Google's `{"error":{"errors":[{"reason"}],"message"}}`,
/// OAuth's `{"error","error_description"}`).
pub fn error_of(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return (None, None) };
    let e = &v["error"];
    if let Some(code) = e.as_str() {
        let msg = v["error_description"].as_str().map(|d| d.lines().next().unwrap_or(d).to_string());
        return (Some(code.to_string()), msg);
    }
    let code = e["errors"][0]["reason"].as_str().or(e["code"].as_str()).or(e["status"].as_str()).map(str::to_string);
    let code = code.or_else(|| e["code"].as_u64().map(|c| c.to_string()));
    (code, e["message"].as_str().map(|m| m.chars().take(300).collect()))
}

/// Sends the request `build` makes (anew for each attempt), waiting and
/// retrying while `throttled` says so and the budget lasts. Exponential
/// waits (1 s, 2 s, 4 s … capped at 32 s) when the service gives no
/// `Retry-After`. `Ok`: the successful answer's status and body.
pub async fn send(
    what: &str,
    build: &(dyn Fn() -> RequestBuilder + Sync),
    budget: &Budget,
    throttled: Throttle,
) -> Result<(StatusCode, Vec<u8>), HttpError> {
    let mut attempt = 0u32;
    loop {
        let resp = build().send().await.map_err(|e| {
            let why = if e.is_timeout() { "no answer in time".to_string() } else { without_url(&e) };
            HttpError::new(format!("{what}: {why}"))
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| HttpError::new(format!("{what}: reading the answer: {}", without_url(&e))))?;
        if status.is_success() {
            return Ok((status, body.to_vec()));
        }
        let (code, message) = error_of(&body);
        if throttled(status.as_u16(), code.as_deref()) {
            let wait = retry_after(&headers, Duration::from_secs(1 << attempt.min(5)));
            if let Err(left) = budget.take(wait) {
                return Err(HttpError {
                    status: Some(status.as_u16()),
                    code,
                    message: format!(
                        "{what}: throttled (HTTP {}); waiting {} s more would pass max_retry_wait_secs ({} s in all, {} s left)",
                        status.as_u16(),
                        wait.as_secs(),
                        budget.total.as_secs(),
                        left.as_secs()
                    ),
                });
            }
            warn!(request = %what, status = status.as_u16(), wait_s = wait.as_secs_f64(), "throttled: waiting as asked");
            tokio::time::sleep(wait).await;
            attempt += 1;
            continue;
        }
        let detail = match (&code, &message) {
            (Some(c), Some(m)) => format!(": {c}: {m}"),
            (Some(c), None) => format!(": {c}"),
            (None, Some(m)) => format!(": {m}"),
            (None, None) => String::new(),
        };
        return Err(HttpError {
            status: Some(status.as_u16()),
            code,
            message: format!("{what}: HTTP {}{detail}", status.as_u16()),
        });
    }
}

/// A transport error's text without the URL reqwest puts in it (page
/// tokens and query values stay out of messages).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = match e.url() {
        Some(u) => e.to_string().replace(&format!(" ({u})"), "").replace(u.as_str(), "the URL"),
        None => e.to_string(),
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_beyond_this_machine() {
        assert!(check_url("https://graph.microsoft.com").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://[::1]:8080").is_ok());
        assert!(check_url("http://localhost:1").is_ok());
        assert!(check_url("http://graph.microsoft.com").unwrap_err().contains("in the clear"));
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("graph.microsoft.com").is_err());
    }

    #[test]
    fn error_bodies_of_each_service_are_read() {
        let graph = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}}"#;
        assert_eq!(
            error_of(graph),
            (Some("Authorization_RequestDenied".into()), Some("Insufficient privileges".into()))
        );
        let google = br#"{"error":{"code":403,"message":"Rate","errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert_eq!(error_of(google).0.as_deref(), Some("rateLimitExceeded"));
        let oauth =
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret.\r\nTrace"}"#;
        assert_eq!(
            error_of(oauth),
            (Some("invalid_client".into()), Some("AADSTS7000215: Invalid client secret.".into()))
        );
        assert_eq!(error_of(b"<html>"), (None, None));
    }

    #[test]
    fn the_budget_refuses_a_wait_longer_than_what_is_left() {
        let b = Budget::new(Duration::from_secs(10));
        assert!(b.take(Duration::from_secs(6)).is_ok());
        assert_eq!(b.take(Duration::from_secs(6)), Err(Duration::from_secs(4)));
        assert!(b.take(Duration::from_secs(4)).is_ok());
    }
}
