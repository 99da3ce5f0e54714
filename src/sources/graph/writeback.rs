//! Write-back to Entra ID: an application-owned value read with
//! `GET /v1.0/users/{id}?$select=<property>` and written with
//! `PATCH /v1.0/users/{id}`, through the shared queue (read-compare-write,
//! conflicts, retries). Errors say what to fix: a missing
//! `User.ReadWrite.All` permission, or a user mastered in on-premises AD
//! whose attribute must be written there.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::Graph;
use super::config::GraphConfig;
use crate::config::SourceConfig;
use crate::kind::transport::{Transport, TransportError};
use crate::sources::cloud::{json as cjson, HttpError};
use crate::store::WritebackItem;

pub struct GraphTransport {
    graph: Graph,
}

impl GraphTransport {
    pub fn new(_cfg: &SourceConfig, g: &GraphConfig) -> Self {
        GraphTransport { graph: Graph::new(g) }
    }

    fn user_url(&self, item: &WritebackItem, select: Option<&str>) -> String {
        let id: String = url::form_urlencoded::byte_serialize(item.external_id.as_bytes()).collect();
        let mut u = self.graph.url(&format!("/v1.0/users/{id}"));
        if let Some(s) = select {
            u.push_str("?$select=");
            u.push_str(&url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>());
        }
        u
    }
}

/// An error with what the admin should do about it.
fn explain(e: HttpError) -> TransportError {
    let mut message = e.message;
    match (e.status, e.code.as_deref()) {
        (Some(403), _) => message.push_str(
            " — the app registration needs the User.ReadWrite.All application permission (with admin consent) to write users",
        ),
        (Some(400), _) if message.contains("on-premises") || message.to_ascii_lowercase().contains("onpremises") => {
            message.push_str(
                " — this user is synchronised from on-premises Active Directory: write the attribute there (an LDAP/AD source with write-back)",
            )
        }
        (Some(404), _) => message.push_str(" — the user is no longer in the tenant"),
        _ => {}
    }
    TransportError { code: e.status.map(u32::from), message }
}

#[async_trait]
impl Transport for GraphTransport {
    async fn read(&self, item: &WritebackItem) -> Result<Option<String>, TransportError> {
        let prop = self.graph.cfg.spell(&item.attribute);
        let top = prop.split('.').next().unwrap_or(&prop).to_string();
        let v = self.graph.call(Method::GET, &self.user_url(item, Some(&top)), None).await.map_err(explain)?;
        let mut e = crate::model::RawEntry::new("x");
        cjson::push_paths(&mut e, &v, std::iter::once(&item.attribute));
        Ok(e.values(&item.attribute).first().map(|v| String::from_utf8_lossy(v.bytes()).into_owned()))
    }

    async fn write(&self, item: &WritebackItem) -> Result<(), TransportError> {
        let prop = self.graph.cfg.spell(&item.attribute);
        // A dotted path writes inside its object (onPremisesExtensionAttributes).
        let value = item.value.clone().map(Value::String).unwrap_or(Value::Null);
        let mut body = value;
        for seg in prop.rsplit('.') {
            body = json!({ seg: body });
        }
        self.graph.call(Method::PATCH, &self.user_url(item, None), Some(&body)).await.map_err(explain)?;
        Ok(())
    }

    async fn close(self: Box<Self>) {}
}
