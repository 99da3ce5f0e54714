//! Reaching the database: the connection settings (the URL, a password
//! from the config or `PGPASSWORD`, TLS with the server's name verified
//! against `ca_file`), the pool, the sync lease on a connection of its own,
//! and PostgreSQL's errors put in words an admin can act on, with their kind
//! kept (busy, constraint, unavailable) and never a password.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use super::{Inner, PgConfig};
use crate::store::StoreError;

/// How long a caller waits for a pooled connection, and for a new one.
const WAIT: Duration = Duration::from_secs(30);
const CONNECT: Duration = Duration::from_secs(10);

/// The session lock that is the sync lease (one sync at a time per store).
const LEASE_LOCK: i64 = 0x6469_7273_796e_6302; // "dirsync" 2

/// Connection settings and TLS, ready to open connections.
pub(super) struct Connector {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// The URL without its password or query, for messages.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "the PostgreSQL store ([store] url)".into(),
    }
}

impl Connector {
    pub(super) fn new(cfg: &PgConfig, name: &str) -> Result<Connector, StoreError> {
        let bad = |m: String| StoreError::Backend { store: name.to_string(), message: m };
        let mut config = tokio_postgres::Config::from_str(&cfg.url)
            .map_err(|_| bad("[store] url is not a PostgreSQL URL (postgres://user@host:port/database)".into()))?;
        if let Some(p) = &cfg.password {
            config.password(p.expose());
        } else if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            }
        }
        config.application_name("dirsync");
        config.connect_timeout(CONNECT);
        config.keepalives_idle(Duration::from_secs(30));
        // A writer waits at most this long for another's lock (as SQLite's
        // busy timeout). No JIT: dirsync's statements are short, and
        // compiling one costs more than it saves (100 ms for a user's groups).
        config.options("-c lock_timeout=30000 -c jit=off");
        let tls = match &cfg.ca_file {
            None => None,
            Some(ca) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = crate::tls::client_config(ca).map_err(bad)?;
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            }
        };
        Ok(Connector { config, tls })
    }

    /// The pool (`size` connections at most); made inside the store's runtime.
    pub(super) fn pool(&self, size: usize) -> Result<deadpool_postgres::Pool, StoreError> {
        let mc = deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast };
        let manager = match &self.tls {
            Some(tls) => deadpool_postgres::Manager::from_config(self.config.clone(), tls.clone(), mc),
            None => deadpool_postgres::Manager::from_config(self.config.clone(), tokio_postgres::NoTls, mc),
        };
        deadpool_postgres::Pool::builder(manager)
            .max_size(size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(CONNECT))
            .recycle_timeout(Some(CONNECT))
            .build()
            .map_err(|e| StoreError::Backend { store: String::new(), message: format!("cannot build the pool: {e}") })
    }

    /// One connection outside the pool, its I/O driven on the store's runtime.
    async fn connect(&self, name: &str) -> Result<tokio_postgres::Client, StoreError> {
        let (client, task) = match &self.tls {
            Some(tls) => {
                let (c, conn) = self.config.connect(tls.clone()).await.map_err(|e| explain(name, e))?;
                (c, tokio::spawn(async move { drop(conn.await) }))
            }
            None => {
                let (c, conn) = self.config.connect(tokio_postgres::NoTls).await.map_err(|e| explain(name, e))?;
                (c, tokio::spawn(async move { drop(conn.await) }))
            }
        };
        drop(task);
        Ok(client)
    }
}

/// A pooled connection, or [`StoreError::Unavailable`] with why.
pub(super) async fn pooled(inner: &Inner) -> Result<deadpool_postgres::Object, StoreError> {
    use deadpool_postgres::PoolError;
    inner.pool.get().await.map_err(|e| match e {
        PoolError::Backend(e) => explain(&inner.name, e),
        PoolError::Timeout(_) => StoreError::Unavailable {
            store: inner.name.clone(),
            message: "no database connection could be had in time (is PostgreSQL up, and the pool big enough?)".into(),
        },
        e => StoreError::Unavailable { store: inner.name.clone(), message: e.to_string() },
    })
}

/// The sync lease: a session advisory lock on a connection of its own. It
/// is released when the lease is dropped, and by the server when the
/// holder's connection dies with its process.
struct PgLease {
    _client: tokio_postgres::Client,
    /// The runtime that drives the lease's connection lives while it does.
    _store: std::sync::Arc<Inner>,
}

impl crate::store::Lease for PgLease {}

impl Drop for PgLease {
    /// Lets go at once (closing the connection would too, but a moment
    /// later, when the server notices).
    fn drop(&mut self) {
        let unlock = self._client.batch_execute("SELECT pg_advisory_unlock_all()");
        let _ = super::block(&self._store, async { tokio::time::timeout(Duration::from_secs(5), unlock).await });
    }
}

pub(super) async fn lease(inner: &std::sync::Arc<Inner>) -> Result<Box<dyn crate::store::Lease>, StoreError> {
    let client = inner.cfg.connect(&inner.name).await?;
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LEASE_LOCK])
        .await
        .map_err(|e| explain(&inner.name, e))?;
    match row.get::<_, bool>(0) {
        true => Ok(Box::new(PgLease { _client: client, _store: inner.clone() })),
        false => Err(StoreError::Locked(format!("advisory lock {LEASE_LOCK} on {}", inner.name))),
    }
}

/// The first key of each instance's presence lock (the second is a hash of its name).
pub(super) const PRESENCE_CLASS: i32 = 0x6473_796e; // "dsyn"

/// An instance's presence: a session advisory lock keyed by its name, held
/// on a connection of its own while it lives.
pub(super) async fn presence(
    inner: &std::sync::Arc<Inner>,
    instance: &str,
) -> Result<Box<dyn crate::store::Lease>, StoreError> {
    let client = inner.cfg.connect(&inner.name).await?;
    client
        .execute("SELECT pg_advisory_lock($1, hashtext($2))", &[&PRESENCE_CLASS, &instance])
        .await
        .map_err(|e| explain(&inner.name, e))?;
    Ok(Box::new(PgLease { _client: client, _store: inner.clone() }))
}

/// A store error for PostgreSQL's `e`, with its kind.
pub(crate) fn explain(name: &str, e: tokio_postgres::Error) -> StoreError {
    let store = name.to_string();
    let Some(db) = e.as_db_error() else {
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        return match (e.is_closed(), io || e.to_string().contains("timed out")) {
            (true, _) => StoreError::Unavailable { store, message: "the connection to the database was lost".into() },
            (false, true) => StoreError::Unavailable { store, message: format!("cannot reach the database: {e}") },
            (false, false) => StoreError::Backend { store, message: e.to_string() },
        };
    };
    let mut message = db.message().to_string();
    if let Some(d) = db.detail() {
        message = format!("{message} ({d})");
    }
    let code = db.code();
    if [
        SqlState::UNIQUE_VIOLATION,
        SqlState::FOREIGN_KEY_VIOLATION,
        SqlState::CHECK_VIOLATION,
        SqlState::NOT_NULL_VIOLATION,
    ]
    .contains(code)
    {
        return StoreError::Constraint { store, message };
    }
    if [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED, SqlState::LOCK_NOT_AVAILABLE]
        .contains(code)
    {
        return StoreError::Busy { store, message };
    }
    if code == &SqlState::INVALID_PASSWORD || code == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        let message = format!(
            "{message}: check the user in [store] url and its password (password_file, password_env or PGPASSWORD)"
        );
        return StoreError::Unavailable { store, message };
    }
    if code == &SqlState::INVALID_CATALOG_NAME {
        let message = format!("{message}: create the database first (createdb), then run `dirsync migrate`");
        return StoreError::Unavailable { store, message };
    }
    let down = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::DISK_FULL,
        SqlState::READ_ONLY_SQL_TRANSACTION,
    ];
    match down.contains(code) {
        true => StoreError::Unavailable { store, message },
        false => StoreError::Backend { store, message },
    }
}
