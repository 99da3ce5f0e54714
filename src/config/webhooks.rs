//! `[[server.webhooks]]`: where dirsync POSTs its changes. Each webhook has
//! a unique name (its cursor is kept under it), an `https` URL (plain
//! `http` only to loopback), a Standard Webhooks secret read from a file
//! (never shown), the kinds of change it wants, where a new webhook starts
//! in the feed, and its timeouts.

use std::sync::Arc;
use std::time::Duration;

use crate::kind::section::Section;
use crate::kind::ConfigError;
use crate::webhook::SigningSecret;

/// The kinds of change a webhook can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    /// create, update, rename, relink, enable, disable, delete (and fields
    /// set or generated on a user).
    pub user: bool,
    /// group create, update (rename), delete.
    pub group: bool,
    /// group_add, group_remove (users and nested groups).
    pub membership: bool,
}

impl Events {
    pub const ALL: Events = Events { user: true, group: true, membership: true };

    /// Whether a change-feed action is of a kind this set holds.
    pub fn wants(&self, action: &str) -> bool {
        match action {
            "group_create" | "group_update" | "group_delete" => self.group,
            "group_add" | "group_remove" | "subgroup_add" | "subgroup_remove" => self.membership,
            _ => self.user,
        }
    }
}

/// Where a new webhook's cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the feed's end when the webhook is first seen.
    Now,
    /// At the feed's beginning: every change ever recorded is replayed.
    Beginning,
}

/// One `[[server.webhooks]]` table.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub name: String,
    pub url: url::Url,
    pub secret: Arc<SigningSecret>,
    pub events: Events,
    pub start: Start,
    /// One delivery's time limit.
    pub timeout: Duration,
    /// The longest wait between two tries.
    pub max_retry: Duration,
}

/// Reads `[[server.webhooks]]` (an array of tables).
pub(super) fn parse_webhooks(s: &mut Section<'_>) -> Result<Vec<WebhookConfig>, ConfigError> {
    let tables = s.take_array("webhooks")?.unwrap_or_default();
    let mut out: Vec<WebhookConfig> = Vec::new();
    for (i, t) in tables.into_iter().enumerate() {
        let mut w = s.child(t, &format!("webhooks[{i}]"));
        let hook = parse_webhook(&mut w)?;
        if out.iter().any(|o| o.name == hook.name) {
            return Err(w.err("name", format!("\"{}\" names two webhooks; each needs its own name", hook.name)));
        }
        out.push(hook);
    }
    Ok(out)
}

fn parse_webhook(w: &mut Section<'_>) -> Result<WebhookConfig, ConfigError> {
    let name = w.string("name")?.ok_or_else(|| w.err("name", "missing: each webhook needs a name"))?;
    let ok = (1..=64).contains(&name.chars().count())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(w.err("name", "expected 1 to 64 letters, digits, '-', '_' or '.', such as \"print-server\""));
    }
    let raw = w.string("url")?.ok_or_else(|| w.err("url", "missing: where the changes are POSTed"))?;
    let url = parse_url(&raw).map_err(|m| w.err("url", m))?;
    let file = w.string("secret_file")?.ok_or_else(|| {
        w.err("secret_file", "missing: a file holding the Standard Webhooks secret (\"whsec_\" + base64)")
    })?;
    let path = w.resolve(&file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| w.err("secret_file", format!("cannot read {}: {e}", path.display())))?;
    let secret = SigningSecret::parse(&text).map_err(|m| w.err("secret_file", format!("{}: {m}", path.display())))?;
    let events = match w.strings("events")? {
        None => Events::ALL,
        Some(list) => parse_events(&list).map_err(|m| w.err("events", m))?,
    };
    let start = match w.string("start")?.as_deref().map(str::trim) {
        None | Some("now") => Start::Now,
        Some("beginning") => Start::Beginning,
        Some(other) => return Err(w.err("start", format!("expected \"now\" or \"beginning\", got \"{other}\""))),
    };
    let timeout = secs(w, "timeout_secs", 10, 1..=300)?;
    let max_retry = secs(w, "max_retry_secs", 3600, 1..=7 * 86400)?;
    w.finish("a webhook (name, url, secret_file, events, start, timeout_secs, max_retry_secs)", &[])?;
    Ok(WebhookConfig { name, url, secret: Arc::new(secret), events, start, timeout, max_retry })
}

fn secs(
    w: &mut Section<'_>,
    key: &str,
    default: u64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Duration, ConfigError> {
    match w.integer(key)? {
        None => Ok(Duration::from_secs(default)),
        Some(n) if range.contains(&n) => Ok(Duration::from_secs(n as u64)),
        Some(n) => Err(w.err(key, format!("expected {} to {} seconds, got {n}", range.start(), range.end()))),
    }
}

/// An `https` URL, or `http` to a loopback address (a receiver on the same
/// machine): anything else would carry the changes in clear.
fn parse_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("expected an https URL, got \"{raw}\" ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL with a user name or password in it is refused: the signature authenticates dirsync".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(format!(
            "{} is not a loopback address: webhooks beyond this machine need https",
            url.host_str().unwrap_or("")
        )),
        other => Err(format!("expected an https URL, got scheme \"{other}\"")),
    }
}

fn parse_events(list: &[String]) -> Result<Events, String> {
    let mut e = Events { user: false, group: false, membership: false };
    for k in list {
        match k.trim() {
            "user" => e.user = true,
            "group" => e.group = true,
            "membership" => e.membership = true,
            other => return Err(format!("expected \"user\", \"group\" or \"membership\", got \"{other}\"")),
        }
    }
    if e == (Events { user: false, group: false, membership: false }) {
        return Err("an empty list: name at least one of \"user\", \"group\", \"membership\"".into());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_need_https_beyond_loopback() {
        assert!(parse_url("https://print.example/hooks").is_ok());
        assert!(parse_url("http://127.0.0.1:9000/h").is_ok());
        assert!(parse_url("http://[::1]:9000/h").is_ok());
        assert!(parse_url("http://localhost/h").is_ok());
        assert!(parse_url("http://print.example/h").unwrap_err().contains("need https"));
        assert!(parse_url("http://127.0.0.1.example/h").is_err(), "a look-alike host is not loopback");
        assert!(parse_url("ftp://print.example/h").is_err());
        assert!(parse_url("https://u:p@print.example/h").is_err());
    }

    #[test]
    fn events_sort_actions_into_their_kinds() {
        let m = parse_events(&["membership".into()]).unwrap();
        assert!(m.wants("group_add") && m.wants("subgroup_remove"));
        assert!(!m.wants("create") && !m.wants("group_create"));
        let g = parse_events(&["group".into()]).unwrap();
        assert!(g.wants("group_update") && !g.wants("disable"));
        assert!(Events::ALL.wants("set") && Events::ALL.wants("relink"));
        assert!(parse_events(&[]).is_err());
        assert!(parse_events(&["users".into()]).unwrap_err().contains("\"users\""));
    }
}
