//! Microsoft Graph over HTTPS for one source: the app's token (client
//! credentials with a secret or a signed certificate assertion, cached,
//! renewed once on 401), GETs of pages (a `nextLink` must stay on the
//! configured Graph host: the token goes nowhere else), JSON batches of up
//! to 20 requests with their throttled parts retried, and PATCH.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::config::{Credential, GraphConfig};
use crate::secret::Secret;
use crate::sources::cloud::http::describe;
use crate::sources::cloud::{jwt, token_answer, Api, HttpError};

/// Graph's throttling answers: 429, 503, 504.
fn throttled(status: u16, _code: Option<&str>) -> bool {
    matches!(status, 429 | 503 | 504)
}

/// Whether a Graph error says the delta token is no longer valid.
pub fn expired_delta(e: &HttpError) -> bool {
    e.status == Some(410)
        || matches!(e.code.as_deref(), Some("syncStateNotFound" | "resyncRequired" | "syncStateInvalid"))
}

pub struct Graph {
    pub cfg: Arc<GraphConfig>,
    api: Api,
}

/// One answer inside a `$batch` response.
pub struct Part {
    pub status: u16,
    pub body: Value,
}

impl Graph {
    pub fn new(cfg: &GraphConfig) -> Self {
        Graph { cfg: Arc::new(cfg.clone()), api: Api::new(&cfg.limits, throttled) }
    }

    /// The absolute URL of a Graph path (`/v1.0/users`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.graph_url)
    }

    async fn fetch_token(&self) -> Result<(Secret, u64), HttpError> {
        let c = &self.cfg;
        let token_url = c.token_url();
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", c.client_id.clone()),
            ("scope", format!("{}/.default", c.graph_url)),
        ];
        // The scope names Graph's public host even when tests move the URL.
        if !c.graph_url.starts_with("https://") {
            form[2].1 = "https://graph.microsoft.com/.default".into();
        }
        match &c.credential {
            Credential::Secret(s) => form.push(("client_secret", s.expose().to_string())),
            Credential::Certificate { thumbprint, key } => {
                let now = jwt::now_secs();
                let header = json!({"alg": "RS256", "typ": "JWT", "x5t": thumbprint});
                let claims = json!({
                    "aud": token_url, "iss": c.client_id, "sub": c.client_id,
                    "jti": jwt::random_id(), "nbf": now, "iat": now, "exp": now + 600,
                });
                let assertion = key.sign(&header, &claims).map_err(HttpError::new)?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion));
            }
        }
        let what = format!("token request to {}", describe(&Method::POST, &token_url));
        let build = || self.api.http.post(&token_url).form(&form);
        let body = self.api.send(&what, &build).await.map_err(|mut e| {
            if e.code.as_deref() == Some("invalid_client") || e.status == Some(401) {
                e.message.push_str(" (check client_id and the client secret or certificate of the app registration)");
            }
            e
        })?;
        token_answer(&what, &body)
    }

    /// Sends one Graph request with the token; a 401 renews it once.
    pub async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Value, HttpError> {
        if !url.starts_with(&format!("{}/", self.cfg.graph_url)) {
            return Err(HttpError::new(format!(
                "Graph sent a link outside graph_url ({}): not followed (the token is only sent to graph_url)",
                describe(&method, url)
            )));
        }
        let consistency = self.cfg.user_filter.is_some();
        let extra = |r: reqwest::RequestBuilder| if consistency { r.header("ConsistencyLevel", "eventual") } else { r };
        self.api.call(|| self.fetch_token(), method, url, body, &extra).await
    }

    pub async fn get(&self, url: &str) -> Result<Value, HttpError> {
        self.call(Method::GET, url, None).await
    }

    /// Sends up to 20 GET requests (Graph-relative URLs such as
    /// `/groups/{id}/members`) as one `$batch`; parts Graph throttled are
    /// sent again after their `Retry-After`, within the run's budget.
    pub async fn batch(&self, urls: &[String]) -> Result<Vec<Part>, HttpError> {
        let mut out: Vec<Option<Part>> = (0..urls.len()).map(|_| None).collect();
        let mut todo: Vec<usize> = (0..urls.len()).collect();
        let batch_url = self.url("/v1.0/$batch");
        while !todo.is_empty() {
            let requests: Vec<Value> =
                todo.iter().map(|&i| json!({"id": i.to_string(), "method": "GET", "url": urls[i]})).collect();
            let answer = self.call(Method::POST, &batch_url, Some(&json!({ "requests": requests }))).await?;
            let parts = answer["responses"]
                .as_array()
                .ok_or_else(|| HttpError::new("POST /v1.0/$batch: the answer has no responses"))?;
            let mut again = Vec::new();
            let mut wait = Duration::ZERO;
            for p in parts {
                let i: usize =
                    p["id"].as_str().and_then(|s| s.parse().ok()).filter(|i| *i < urls.len()).ok_or_else(|| {
                        HttpError::new("POST /v1.0/$batch: a response with an id that was not asked for")
                    })?;
                let status = p["status"].as_u64().unwrap_or(0) as u16;
                if throttled(status, None) {
                    let after = p["headers"]["Retry-After"].as_str().and_then(|s| s.parse().ok()).unwrap_or(1);
                    wait = wait.max(Duration::from_secs(after));
                    again.push(i);
                } else {
                    out[i] = Some(Part { status, body: p["body"].clone() });
                }
            }
            let missing = todo.iter().filter(|&&i| out[i].is_none() && !again.contains(&i)).count();
            if missing > 0 {
                return Err(HttpError::new(format!("POST /v1.0/$batch: {missing} of the requests got no response")));
            }
            if !again.is_empty() {
                self.api.budget.take_or_fail("POST /v1.0/$batch", wait)?;
                tokio::time::sleep(wait).await;
            }
            todo = again;
        }
        Ok(out.into_iter().map(|p| p.expect("every part answered")).collect())
    }
}
