//! `dirsync serve`: the sync engine as a service. A thin HTTP layer
//! ([`app`], axum) over the library: the store's indexed reads, the run
//! queue ([`crate::serve::runner`]), the scheduler ([`crate::serve::schedule`]) and
//! directory authentication ([`crate::serve::dirauth`]). [`serve`] runs it until
//! SIGTERM or SIGINT (a running sync finishes, or is rolled back after the
//! grace period; queued ones are dropped) and reloads the config on SIGHUP
//! (a bad new config is refused and the old one kept).

pub mod api;
pub mod conn;
pub mod dirauth;
pub mod page;
pub mod runner;
pub mod schedule;
#[cfg(test)]
mod tests;
pub mod tls;

pub use api::{clients, error, openapi, ops, people, runs};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::kind::Registration;
use crate::serve::dirauth::Authenticator;
use crate::serve::runner::{ConfigHandle, Runner};
use crate::store::Store;

/// The largest request body accepted (bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// What every request handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub cfg: ConfigHandle,
    pub store: Arc<dyn Store>,
    pub runner: Runner,
    pub auth: Arc<Authenticator>,
    pub http: Arc<ops::HttpMetrics>,
    /// The admin page's sessions.
    pub sessions: Arc<crate::serve::page::session::Sessions>,
}

impl AppState {
    pub fn new(cfg: Config, store: Arc<dyn Store>) -> AppState {
        let cfg: ConfigHandle = Arc::new(RwLock::new(Arc::new(cfg)));
        AppState {
            runner: Runner::new(cfg.clone(), store.clone()),
            auth: Arc::new(Authenticator::new(cfg.clone(), store.clone())),
            http: Arc::default(),
            sessions: Arc::default(),
            cfg,
            store,
        }
    }

    /// The configuration now in force.
    pub fn config(&self) -> Arc<Config> {
        self.cfg.read().expect("config lock").clone()
    }
}

/// The routes.
pub fn app(state: AppState) -> Router {
    let page = crate::serve::page::router().layer(axum::middleware::from_fn(crate::serve::page::headers));
    openapi::router()
        .merge(page)
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(axum::middleware::from_fn(api_headers))
        .layer(axum::middleware::from_fn_with_state(state.clone(), ops::count_requests))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Every `/api` answer: never cached (it may carry users' data), never
/// sniffed as another type than the JSON it says it is.
async fn api_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let api = req.uri().path().starts_with("/api");
    let mut r = next.run(req).await;
    if api {
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }
    r
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// Runs the service until SIGTERM/SIGINT. `config_path` is read again on SIGHUP.
pub async fn serve(config_path: PathBuf, cfg: Config, store: Arc<dyn Store>) -> Result<(), ServeError> {
    serve_with(config_path, cfg, store, crate::sources::KINDS.to_vec()).await
}

/// [`serve`] for an application with source kinds of its own (`cfg` was read
/// with [`Config::parse_with`] and `kinds`): every reload reads with them too.
pub async fn serve_with(
    config_path: PathBuf,
    cfg: Config,
    store: Arc<dyn Store>,
    kinds: Vec<Registration>,
) -> Result<(), ServeError> {
    // The handlers first: a signal that arrives before them would take its
    // default action (SIGHUP and SIGTERM end the process on the spot).
    let sigs = Signals::install()?;
    let server = cfg.server.clone().unwrap_or_default();
    let state = AppState::new(cfg, store.clone());
    let at = crate::engine::history::now();
    // Runs a killed service left queued or running; a running one only when
    // nobody holds the lease (a CLI sync may be running right now).
    let left = crate::store::on_store(&*store, move |s| -> Result<(usize, usize), crate::store::StoreError> {
        let queued = s.abandon_queued(at)?;
        let running = match s.lease() {
            Ok(_lease) => s.mark_interrupted(at)?,
            Err(_) => 0,
        };
        Ok((queued, running))
    })
    .await;
    if let Ok((queued, running)) = left {
        if queued + running > 0 {
            warn!(queued, running, "runs left by a stopped service were marked interrupted");
        }
    }
    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .map_err(|source| ServeError::Bind { addr: server.listen, source })?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() && server.tls.is_none() {
        warn!("listening beyond loopback without TLS (allow_plaintext = true): tokens and passwords cross the network in clear");
    }
    // Checked at load; read again here (the files may have changed since).
    let tls = match &server.tls {
        None => None,
        Some((c, k)) => Some(crate::config::server::tls_server_config(c, k).map_err(ServeError::Tls)?),
    };
    info!("listening on {}://{bound}", if tls.is_some() { "https" } else { "http" });
    if server.clients.is_empty() {
        warn!("no [[server.clients]] configured: every /api route answers 401");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = watch::channel(0u64);
    let worker = {
        let r = state.runner.clone();
        tokio::spawn(async move { r.work().await })
    };
    let scheduler = tokio::spawn(crate::serve::schedule::drive(
        state.runner.clone(),
        state.cfg.clone(),
        reload_rx,
        stop_rx.clone(),
    ));
    let signals = tokio::spawn(signals(sigs, (config_path, kinds), state.cfg.clone(), reload_tx, stop_tx));

    let router = app(state.clone());
    let limits = conn::Limits {
        max_connections: server.max_connections,
        header_timeout: server.header_timeout,
        idle_timeout: server.idle_timeout,
    };
    let cap = Arc::new(tokio::sync::Semaphore::new(server.max_connections));
    let http_stop = stop_rx.clone();
    let http = match tls {
        None => {
            let incoming = conn::accept_plain(listener, cap);
            tokio::spawn(conn::serve(incoming, router, limits, http_stop))
        }
        Some(config) => {
            let incoming = tls::accept_tls(listener, config, cap);
            tokio::spawn(conn::serve(incoming, router, limits, http_stop))
        }
    };

    let mut stop = stop_rx;
    let _ = stop.wait_for(|s| *s).await;
    info!("stopping: no new work; a running sync may finish");
    state.runner.stop();
    scheduler.abort();
    let grace = server.shutdown_grace;
    let abort = worker.abort_handle();
    match tokio::time::timeout(grace, worker).await {
        Ok(_) => info!("the run queue stopped"),
        Err(_) => {
            // Dropping the sync's future stops its source reads and rolls back
            // any open transaction: nothing of it is applied.
            abort.abort();
            warn!("a sync was still running after {} s: stopped, nothing of it applied", grace.as_secs());
        }
    }
    let at = crate::engine::history::now();
    let _ = crate::store::on_store(&*store, move |s| -> Result<(), crate::store::StoreError> {
        s.abandon_queued(at)?;
        s.mark_interrupted(at).map(drop)
    })
    .await;
    if tokio::time::timeout(Duration::from_secs(10), http).await.is_err() {
        warn!("open HTTP connections did not close within 10 s");
    }
    signals.abort();
    info!("stopped");
    Ok(())
}

/// SIGTERM/SIGINT stop the service; SIGHUP reloads the config.
/// The service's signal handlers, installed before anything else.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Reloads read `path` with `kinds`.
async fn signals(
    sigs: Signals,
    (path, kinds): (PathBuf, Vec<Registration>),
    cfg: ConfigHandle,
    reload: watch::Sender<u64>,
    stop: watch::Sender<bool>,
) {
    let Signals { mut term, mut int, mut hup } = sigs;
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM received"); let _ = stop.send(true); return; }
            _ = int.recv() => { info!("SIGINT received"); let _ = stop.send(true); return; }
            _ = hup.recv() => {
                match Config::load_with(&path, &kinds) {
                    Ok(new) => {
                        let old_store = cfg.read().expect("config lock").store.path.clone();
                        if new.store.path != old_store {
                            warn!("SIGHUP: store.path changed; the new path is used after a restart, not now");
                        }
                        for w in &new.warnings {
                            warn!("{w}");
                        }
                        *cfg.write().expect("config lock") = Arc::new(new);
                        reload.send_modify(|n| *n += 1);
                        info!("SIGHUP: configuration reloaded from {}", path.display());
                    }
                    Err(e) => error!("SIGHUP: the new configuration is refused, the old one is kept: {e}"),
                }
            }
        }
    }
}
