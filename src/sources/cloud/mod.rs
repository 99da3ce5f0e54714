//! What the cloud kinds (Microsoft Graph, Google's Directory API) share: an
//! HTTPS client whose endpoints the config may point elsewhere (sovereign
//! clouds, tests), one request with throttling honoured inside a per-run
//! wait budget, errors that say what the service said (never a token), a
//! cached access token, RS256-signed JWTs, and JSON values read by dotted
//! paths into entry attributes; the config keys both kinds share ([`settings`])
//! and one authorised request with its token renewed on 401 ([`Api`]).

pub mod http;
pub mod json;
pub mod jwt;
pub mod settings;

pub use http::{check_url, Budget, HttpError, Throttle};

use std::time::{Duration, Instant};

use crate::secret::Secret;

/// An access token kept until shortly before it expires.
#[derive(Debug, Default)]
pub struct TokenCache {
    slot: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

impl TokenCache {
    /// The cached token, or a new one from `fetch` (token, seconds it lasts).
    /// Concurrent callers wait for one fetch.
    pub async fn get<F>(&self, fetch: F) -> Result<Secret, HttpError>
    where
        F: std::future::Future<Output = Result<(Secret, u64), HttpError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((t, until)) = &*slot {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let (token, lasts) = fetch.await?;
        // Renewed a minute early (or at half time for short-lived tokens).
        let margin = if lasts > 120 { 60 } else { lasts / 2 };
        *slot = Some((token.clone(), Instant::now() + Duration::from_secs(lasts - margin)));
        Ok(token)
    }

    /// Forgets the token (the service refused it: 401).
    pub async fn clear(&self) {
        *self.slot.lock().await = None;
    }
}

/// Reads a token endpoint's answer: `access_token` and `expires_in`.
pub fn token_answer(what: &str, body: &[u8]) -> Result<(Secret, u64), HttpError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: String,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
    }
    let a: Answer = serde_json::from_slice(body)
        .map_err(|_| HttpError::new(format!("{what}: the answer is not a token (no access_token)")))?;
    let lasts = match a.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(3600),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3600),
        _ => 3600,
    };
    Ok((Secret::new(a.access_token), lasts.max(10)))
}

/// One cloud API for one source and one credential: the HTTP client, the
/// cached token, the run's wait budget and what the service calls throttling.
pub struct Api {
    pub http: reqwest::Client,
    token: TokenCache,
    pub budget: Budget,
    throttled: Throttle,
}

impl Api {
    pub fn new(limits: &settings::Limits, throttled: Throttle) -> Self {
        Api {
            http: http::client(Duration::from_secs(limits.timeout_secs)),
            token: TokenCache::default(),
            budget: Budget::new(Duration::from_secs(limits.max_retry_wait_secs)),
            throttled,
        }
    }

    /// Sends a request without the token (the token request itself).
    pub async fn send(
        &self,
        what: &str,
        build: &(dyn Fn() -> reqwest::RequestBuilder + Sync),
    ) -> Result<Vec<u8>, HttpError> {
        http::send(what, build, &self.budget, self.throttled).await.map(|(_, body)| body)
    }

    /// Sends one request with the token `fetch` gets (cached); a 401 renews
    /// it once. `extra` adds the service's own headers. The answer as JSON
    /// (`Null` when empty).
    pub async fn call<F, Fut>(
        &self,
        fetch: F,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
        extra: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync),
    ) -> Result<serde_json::Value, HttpError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(Secret, u64), HttpError>>,
    {
        let what = http::describe(&method, url);
        let mut renewed = false;
        loop {
            let token = self.token.get(fetch()).await?;
            let build = || {
                let r = extra(self.http.request(method.clone(), url).bearer_auth(token.expose()));
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            };
            match http::send(&what, &build, &self.budget, self.throttled).await {
                Ok((_, bytes)) if bytes.is_empty() => return Ok(serde_json::Value::Null),
                Ok((_, bytes)) => {
                    return serde_json::from_slice(&bytes)
                        .map_err(|e| HttpError::new(format!("{what}: the answer is not JSON ({e})")))
                }
                Err(e) if e.status == Some(401) && !renewed => {
                    renewed = true;
                    self.token.clear().await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
