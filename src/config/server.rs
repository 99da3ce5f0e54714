//! `[server]` (where `dirsync serve` listens, its API clients with their
//! tokens and scopes, the authentication rate limits) and `[schedule]` (cron
//! patterns for full and incremental runs, per source overridable).

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use super::{ConfigError, CronPattern, Schedule, Section};
use crate::secret::Secret;

/// What an API client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Users, groups, runs, the change feed, the write-back queue.
    Read,
    /// Set fields (`PATCH /api/users/{name}`), push and resolve write-backs.
    Write,
    /// Start syncs.
    Sync,
    /// Check passwords (`POST /api/auth`).
    Auth,
    /// Everything, including approving blocked runs.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::Read, Scope::Write, Scope::Sync, Scope::Auth, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Sync => "sync",
            Scope::Auth => "auth",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[server.clients]]` entry.
#[derive(Debug, Clone)]
pub struct Client {
    pub name: String,
    pub token: Secret,
    pub scopes: BTreeSet<Scope>,
}

impl Client {
    /// Whether the client may use routes that need `scope` (admin may all).
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// `[server.auth]`: how many failed password checks are allowed per minute.
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    pub failures_per_user: u32,
    pub failures_per_address: u32,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits { failures_per_user: 5, failures_per_address: 30 }
    }
}

/// `[server.admin]`: the admin page's sign-in.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Members of this group (effective membership) sign in with their
    /// directory password.
    pub group: Option<String>,
    /// The local `admin` account's Argon2id hash (PHC string), from
    /// `password_file` (`dirsync admin-password FILE` writes it).
    pub password_hash: Option<Secret>,
    /// The source the group is looked for in (`None`: the one source that
    /// has a group of that name; none or several refuse group sign-in).
    pub source: Option<String>,
    /// How long a session lasts without being used.
    pub session: std::time::Duration,
    /// How long a session lasts at most, used or not.
    pub session_max: std::time::Duration,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Port 0 picks a free port (the bound address is logged).
    pub listen: SocketAddr,
    /// Listening beyond loopback without TLS was asked for explicitly.
    pub allow_plaintext: bool,
    pub clients: Vec<Client>,
    pub auth: AuthLimits,
    /// `[server.admin]`: who may sign in to the admin page.
    pub admin: AdminConfig,
    /// How long a running sync may go on after SIGTERM before it is
    /// stopped (its transaction rolled back).
    pub shutdown_grace: std::time::Duration,
    /// HTTPS: the certificate chain and key files (PEM), checked at load.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Connections served at once; more are refused at accept.
    pub max_connections: usize,
    /// A request head (its first byte, or a new connection, to its end)
    /// must arrive within this.
    pub header_timeout: std::time::Duration,
    /// A kept-alive connection with no request in progress is closed after this.
    pub idle_timeout: std::time::Duration,
    /// This instance's name in the run history (`None`: the host name and
    /// the port actually bound, `host:port`).
    pub instance: Option<String>,
    /// `[[server.webhooks]]`: where changes are POSTed.
    pub webhooks: Vec<super::webhooks::WebhookConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            allow_plaintext: false,
            clients: Vec::new(),
            auth: AuthLimits::default(),
            admin: AdminConfig::default(),
            shutdown_grace: std::time::Duration::from_secs(30),
            tls: None,
            max_connections: 512,
            header_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
            instance: None,
            webhooks: Vec::new(),
        }
    }
}

/// Reads `[schedule]` or `[sources.schedule]` over `base`.
pub(super) fn parse_schedule(s: &mut Section<'_>, base: &Schedule) -> Result<Schedule, ConfigError> {
    let mut out = base.clone();
    for (k, slot) in [("full", &mut out.full), ("incremental", &mut out.incremental)] {
        if let Some(t) = s.string(k)? {
            *slot = match t.trim() {
                "" => None,
                p => {
                    let cron = CronPattern::parse(p).map_err(|m| s.err(k, m))?;
                    if let Some(doubt) = cron.doubt() {
                        let at = s.err(k, doubt);
                        s.warnings.push(format!("{}: {}", at.key, at.message));
                    }
                    Some(cron)
                }
            };
        }
    }
    s.finish("a schedule (full, incremental)", &[])?;
    Ok(out)
}

/// The rustls server settings from PEM files; errors say which file and
/// what is wrong, never the content.
pub fn tls_server_config(cert: &std::path::Path, key: &std::path::Path) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain ({e})", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate (expected -----BEGIN CERTIFICATE----- blocks)", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| format!("{}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1)", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and the key do not go together: {e}"))
}

/// Reads `[server]` with its `[[server.clients]]` and `[server.auth]`.
pub(super) fn parse_server(s: &mut Section<'_>) -> Result<ServerConfig, ConfigError> {
    let mut out = ServerConfig::default();
    if let Some(l) = s.string("listen")? {
        out.listen = SocketAddr::from_str(l.trim()).map_err(|_| {
            s.err("listen", format!("expected an address and port such as \"127.0.0.1:8080\", got \"{l}\""))
        })?;
    }
    out.allow_plaintext = s.boolean("allow_plaintext")?.unwrap_or(false);
    if let Some(name) = s.string("instance")? {
        let ok = (1..=100).contains(&name.chars().count()) && name.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            return Err(s.err(
                "instance",
                "expected a name of 1 to 100 visible ASCII characters (no spaces), such as \"print1\"",
            ));
        }
        out.instance = Some(name);
    }
    if let Some(g) = s.integer("shutdown_grace_secs")? {
        if !(0..=86_400).contains(&g) {
            return Err(s.err("shutdown_grace_secs", format!("expected 0 to 86400 seconds, got {g}")));
        }
        out.shutdown_grace = std::time::Duration::from_secs(g as u64);
    }
    if let Some(n) = s.integer("max_connections")? {
        if !(1..=1_000_000).contains(&n) {
            return Err(s.err("max_connections", format!("expected 1 to 1000000, got {n}")));
        }
        out.max_connections = n as usize;
    }
    for (key, slot) in [("header_timeout_secs", &mut out.header_timeout), ("idle_timeout_secs", &mut out.idle_timeout)]
    {
        if let Some(t) = s.integer(key)? {
            if !(1..=3600).contains(&t) {
                return Err(s.err(key, format!("expected 1 to 3600 seconds, got {t}")));
            }
            *slot = std::time::Duration::from_secs(t as u64);
        }
    }
    let cert = s.string("tls_cert_file")?.map(|p| s.resolve(&p));
    let key = s.string("tls_key_file")?.map(|p| s.resolve(&p));
    out.tls = match (cert, key) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            tls_server_config(&c, &k).map_err(|m| s.err("tls_cert_file", m))?;
            Some((c, k))
        }
        (Some(_), None) => return Err(s.err("tls_key_file", "missing: tls_cert_file needs its private key")),
        (None, Some(_)) => return Err(s.err("tls_cert_file", "missing: tls_key_file needs its certificate chain")),
    };
    if !out.listen.ip().is_loopback() && !out.allow_plaintext && out.tls.is_none() {
        return Err(s.err(
            "listen",
            format!(
                "{} is not a loopback address: the API carries tokens and passwords, so beyond loopback it needs TLS (tls_cert_file and tls_key_file) or allow_plaintext = true",
                out.listen
            ),
        ));
    }
    out.admin = match s.sub("admin")? {
        Some(mut a) => parse_admin(&mut a)?,
        None => AdminConfig::default_sessions(),
    };
    if let Some(mut a) = s.sub("auth")? {
        out.auth = parse_auth(&mut a)?;
    }
    let clients = s.take_array("clients")?.unwrap_or_default();
    for (i, t) in clients.into_iter().enumerate() {
        let mut c = s.child(t, &format!("clients[{i}]"));
        let client = parse_client(&mut c, &out.clients)?;
        out.clients.push(client);
    }
    out.webhooks = super::webhooks::parse_webhooks(s)?;
    s.finish("[server]", &[])?;
    Ok(out)
}

impl AdminConfig {
    /// No `[server.admin]`: nobody signs in, sessions have their defaults.
    fn default_sessions() -> AdminConfig {
        AdminConfig {
            session: std::time::Duration::from_secs(3600),
            session_max: std::time::Duration::from_secs(8 * 3600),
            ..AdminConfig::default()
        }
    }
}

/// `[server.admin]`.
fn parse_admin(a: &mut Section<'_>) -> Result<AdminConfig, ConfigError> {
    let mut admin = AdminConfig::default_sessions();
    admin.group = a.string("group")?.filter(|g| !g.trim().is_empty());
    admin.source = a.string("source")?.filter(|g| !g.trim().is_empty());
    if let Some(h) = a.integer("session_max_hours")? {
        if !(1..=24 * 30).contains(&h) {
            return Err(a.err("session_max_hours", format!("expected 1 to 720 hours, got {h}")));
        }
        admin.session_max = std::time::Duration::from_secs(h as u64 * 3600);
    }
    if let Some(f) = a.string("password_file")? {
        let path = a.resolve(&f);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => format!("; write it with `dirsync admin-password {}`", path.display()),
                _ => String::new(),
            };
            a.err("password_file", format!("cannot read {}: {e}{hint}", path.display()))
        })?;
        let hash = text.trim().to_string();
        if argon2::PasswordHash::new(&hash).map(|h| h.algorithm.as_str() != "argon2id").unwrap_or(true) {
            return Err(a.err(
                "password_file",
                format!(
                    "{} does not hold an Argon2id hash (PHC string); write one with `dirsync admin-password FILE`",
                    path.display()
                ),
            ));
        }
        admin.password_hash = Some(Secret::new(hash));
    }
    if let Some(m) = a.integer("session_minutes")? {
        if !(1..=7 * 24 * 60).contains(&m) {
            return Err(a.err("session_minutes", format!("expected 1 to 10080 minutes, got {m}")));
        }
        admin.session = std::time::Duration::from_secs(m as u64 * 60);
    }
    a.finish("[server.admin]", &[])?;
    Ok(admin)
}

/// `[server.auth]`: failures allowed a minute.
fn parse_auth(a: &mut Section<'_>) -> Result<AuthLimits, ConfigError> {
    let mut auth = AuthLimits::default();
    for (k, slot) in
        [("failures_per_user", &mut auth.failures_per_user), ("failures_per_address", &mut auth.failures_per_address)]
    {
        if let Some(n) = a.integer(k)? {
            if !(1..=100_000).contains(&n) {
                return Err(a.err(k, format!("expected 1 to 100000 failures a minute, got {n}")));
            }
            *slot = n as u32;
        }
    }
    a.finish("[server.auth]", &[])?;
    Ok(auth)
}

/// One `[[server.clients]]`, checked against the clients before it.
fn parse_client(c: &mut Section<'_>, before: &[Client]) -> Result<Client, ConfigError> {
    let name = c.string("name")?.unwrap_or_default();
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(c.err("name", "expected a non-empty name"));
    }
    let token = c.secret("token")?.ok_or_else(|| c.err("token_file", "missing: give token_file or token_env"))?;
    if token.expose().len() < 16 {
        return Err(c.err(
            "token_file",
            "the token is shorter than 16 characters; use a long random one (e.g. `openssl rand -hex 32`)",
        ));
    }
    if token.expose().chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err(c.err(
            "token_file",
            "the token has blanks or control characters inside; use a long random one (e.g. `openssl rand -hex 32`)",
        ));
    }
    let bits = token_bits(token.expose());
    if bits < MIN_TOKEN_BITS {
        return Err(c.err(
            "token_file",
            format!("the token has about {bits:.0} bits of randomness (at least {MIN_TOKEN_BITS:.0} are needed: one repeated character or a short pattern is guessable); use a long random one (e.g. `openssl rand -hex 32`)"),
        ));
    }
    let mut scopes = BTreeSet::new();
    for sc in c.strings("scopes")?.ok_or_else(|| c.err("scopes", "missing (expected e.g. [\"read\"])"))? {
        let scope = Scope::ALL.into_iter().find(|x| x.as_str() == sc).ok_or_else(|| {
            c.err("scopes", format!("expected \"read\", \"write\", \"sync\", \"auth\" or \"admin\", got \"{sc}\""))
        })?;
        scopes.insert(scope);
    }
    c.finish("[[server.clients]]", &[])?;
    if before.iter().any(|o: &Client| o.name == name) {
        return Err(c.err("name", format!("\"{name}\" is used by two clients (names must be unique)")));
    }
    if before.iter().any(|o: &Client| o.token.expose() == token.expose()) {
        return Err(c.err("token_file", "two clients have the same token (each needs its own)"));
    }
    Ok(Client { name, token, scopes })
}

/// The least randomness a client token may have, in bits.
pub const MIN_TOKEN_BITS: f64 = 64.0;

/// A token's randomness as its length times the entropy of its characters'
/// distribution: a repeated character has none, `abab…` one bit a
/// character, 32 hex digits from a random source about 128.
pub fn token_bits(token: &str) -> f64 {
    let mut counts: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    let mut n = 0usize;
    for ch in token.chars() {
        *counts.entry(ch).or_default() += 1;
        n += 1;
    }
    let per_char: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n as f64;
            -p * p.log2()
        })
        .sum();
    per_char * n as f64
}

#[cfg(test)]
mod token_tests {
    use super::token_bits;

    #[test]
    fn guessable_tokens_have_few_bits_and_random_ones_many() {
        assert_eq!(token_bits(&"a".repeat(64)), 0.0);
        assert!(token_bits(&"ab".repeat(32)) <= 64.0);
        assert!(token_bits("reader-token-0123456789abcdef") > 64.0);
        assert!(token_bits("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08") > 200.0);
    }
}
