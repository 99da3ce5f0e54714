//! Write-back to Google Workspace: an application-owned value in a custom
//! schema field (`customSchemas.<schema>.<field>`), read with `users.get`
//! and written with `users.patch`, through the shared queue. It asks for
//! the `admin.directory.user` scope in a token of its own; reads keep their
//! read-only token.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};

use super::config::{GoogleConfig, WRITE_SCOPE};
use super::Directory;
use crate::config::SourceConfig;
use crate::kind::transport::{Transport, TransportError};
use crate::sources::cloud::{json as cjson, HttpError};
use crate::store::WritebackItem;

pub struct GoogleTransport {
    dir: Directory,
}

impl GoogleTransport {
    pub fn new(_cfg: &SourceConfig, g: &GoogleConfig) -> Self {
        GoogleTransport { dir: Directory::new(g, WRITE_SCOPE) }
    }

    fn user_url(&self, item: &WritebackItem) -> String {
        let id: String = url::form_urlencoded::byte_serialize(item.external_id.as_bytes()).collect();
        self.dir.url(&format!("/users/{id}"))
    }

    /// The custom schema and field the attribute names.
    fn target(&self, item: &WritebackItem) -> Result<(String, String), TransportError> {
        let spelled = self.dir.cfg.spell(&item.attribute);
        match spelled.split('.').collect::<Vec<_>>().as_slice() {
            [top, schema, field] if top.eq_ignore_ascii_case("customSchemas") => {
                Ok((schema.to_string(), field.to_string()))
            }
            _ => Err(TransportError {
                code: None,
                message: format!(
                    "\"{spelled}\" cannot be written back: Google write-back writes custom schema fields \
                     (customSchemas.<schema>.<field>)"
                ),
            }),
        }
    }
}

fn explain(e: HttpError) -> TransportError {
    let mut message = e.message;
    match e.status {
        Some(403) => message.push_str(
            " — the service account needs domain-wide delegation for https://www.googleapis.com/auth/admin.directory.user, \
             and admin_email must be allowed to edit users",
        ),
        Some(404) => message.push_str(" — the user is no longer in the domain"),
        _ => {}
    }
    TransportError { code: e.status.map(u32::from), message }
}

#[async_trait]
impl Transport for GoogleTransport {
    async fn read(&self, item: &WritebackItem) -> Result<Option<String>, TransportError> {
        self.target(item)?;
        let url = format!("{}?projection=full&fields=customSchemas", self.user_url(item));
        let v = self.dir.call(Method::GET, &url, None).await.map_err(explain)?;
        let mut e = crate::model::RawEntry::new("x");
        cjson::push_paths(&mut e, &v, std::iter::once(&item.attribute));
        Ok(e.values(&item.attribute).first().map(|v| String::from_utf8_lossy(v.bytes()).into_owned()))
    }

    async fn write(&self, item: &WritebackItem) -> Result<(), TransportError> {
        let (schema, field) = self.target(item)?;
        let value = item.value.clone().map(Value::String).unwrap_or(Value::Null);
        let body = json!({ "customSchemas": { schema: { field: value } } });
        self.dir.call(Method::PATCH, &self.user_url(item), Some(&body)).await.map_err(explain)?;
        Ok(())
    }

    async fn close(self: Box<Self>) {}
}
