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
pub mod hooks;
pub mod live;
pub mod page;
pub mod runner;
pub mod schedule;
pub mod scim;
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
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::kind::Registration;
use crate::serve::dirauth::Authenticator;
use crate::serve::runner::{ConfigHandle, Runner};
use crate::store::Store;

/// The wait before try `attempt + 1` of something that keeps failing (a
/// live connection, a webhook delivery): 1 s doubling up to `max`, within
/// ±20 % so many waiters do not retry in step.
pub(crate) fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << attempt.min(20)).min(max);
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b).map(|_| u16::from_le_bytes(b) as f64 / u16::MAX as f64).unwrap_or(0.5);
    base.mul_f64(0.8 + 0.4 * r)
}

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
    /// Why the config file's last reload was refused (`None`: the file is
    /// the configuration in force, or was not reloaded).
    pub refused_reload: Arc<RwLock<Option<String>>>,
    /// The SCIM endpoint's per-source locks.
    pub scim: Arc<crate::serve::scim::ScimState>,
    /// Each source's live status.
    pub live: Arc<crate::serve::live::LiveBoard>,
    /// Each webhook's delivery status.
    pub hooks: Arc<crate::serve::hooks::HookBoard>,
}

impl AppState {
    pub fn new(cfg: Config, store: Arc<dyn Store>) -> AppState {
        let cfg: ConfigHandle = Arc::new(RwLock::new(Arc::new(cfg)));
        AppState {
            runner: Runner::new(cfg.clone(), store.clone()),
            auth: Arc::new(Authenticator::new(cfg.clone(), store.clone())),
            http: Arc::default(),
            sessions: Arc::default(),
            refused_reload: Arc::default(),
            scim: Arc::default(),
            live: Arc::default(),
            hooks: Arc::default(),
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
        .merge(crate::serve::scim::router())
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
    let control = Control::from_signals()?;
    let listen = cfg.server.clone().unwrap_or_default().listen;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| ServeError::Bind { addr: listen, source })?;
    run(listener, cfg, store, Reload { path: config_path, kinds }, control).await
}

/// What a running service is told by its caller: when to stop, and when to
/// read its config again. `dirsync serve` feeds them from signals
/// ([`Control::from_signals`]); a test or an embedding application from its
/// own channels.
pub struct Control {
    /// Resolves when the service is to stop.
    pub shutdown: futures_util::future::BoxFuture<'static, ()>,
    /// Each message: read the config file again.
    pub reload: mpsc::Receiver<()>,
}

impl Control {
    /// SIGTERM and SIGINT stop the service; SIGHUP reloads its config.
    pub fn from_signals() -> std::io::Result<Control> {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
        let mut hup = signal(SignalKind::hangup())?;
        let (tx, reload) = mpsc::channel(1);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                info!("SIGHUP received");
                // One pending reload is enough: it reads the file as it is then.
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(()) {
                    return;
                }
            }
        });
        let shutdown = Box::pin(async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received"),
                _ = int.recv() => info!("SIGINT received"),
            }
        });
        Ok(Control { shutdown, reload })
    }
}

/// Where a reload reads the config, and with which source kinds.
pub struct Reload {
    pub path: PathBuf,
    pub kinds: Vec<Registration>,
}

/// Runs the service on `listener` until `control.shutdown` resolves: a
/// running sync finishes, or is rolled back after the grace period; queued
/// ones are dropped. Each `control.reload` reads the config again (a bad new
/// config is refused and the old one kept).
pub async fn run(
    listener: tokio::net::TcpListener,
    cfg: Config,
    store: Arc<dyn Store>,
    from: Reload,
    control: Control,
) -> Result<(), ServeError> {
    let server = cfg.server.clone().unwrap_or_default();
    announce_schedules(&cfg);
    let state = AppState::new(cfg, store.clone());
    let instance = match &server.instance {
        Some(name) => name.clone(),
        None => format!("{}:{}", crate::model::records::host_name(), listener.local_addr()?.port()),
    };
    state.runner.set_instance(instance.clone());
    info!(%instance, store = %store_name(&state), "instance");
    let me = instance.clone();
    let _present = match crate::store::on_store(&*store, move |s| s.presence(&me)).await {
        Ok(p) => Some(p),
        Err(e) => {
            warn!("this instance's presence could not be marked in the store: {e}");
            None
        }
    };
    settle_left_runs(&*store).await;
    state.live.reset(&state.config());
    state.hooks.prepare(&server.webhooks);
    let tls = announce(&listener, &server)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = watch::channel(0u64);
    let worker = {
        let r = state.runner.clone();
        tokio::spawn(async move { r.work().await })
    };
    let scheduler = tokio::spawn(crate::serve::schedule::drive(
        state.runner.clone(),
        state.cfg.clone(),
        reload_rx.clone(),
        stop_rx.clone(),
    ));
    let live = tokio::spawn(crate::serve::live::drive(
        state.runner.clone(),
        state.cfg.clone(),
        store.clone(),
        state.live.clone(),
        reload_rx.clone(),
        stop_rx.clone(),
    ));
    let hooks = tokio::spawn(crate::serve::hooks::drive(
        state.runner.clone(),
        state.cfg.clone(),
        store.clone(),
        state.hooks.clone(),
        reload_rx.clone(),
        stop_rx.clone(),
    ));
    let reloader = tokio::spawn(reloads(control.reload, from, state.clone(), reload_tx));
    let limits = conn::Limits {
        max_connections: server.max_connections,
        header_timeout: server.header_timeout,
        idle_timeout: server.idle_timeout,
    };
    let cap = Arc::new(tokio::sync::Semaphore::new(server.max_connections));
    let router = app(state.clone());
    let (http, accepting) = match tls {
        None => {
            let (incoming, accepting) = conn::accept_plain(listener, cap);
            (tokio::spawn(conn::serve(incoming, router, limits, stop_rx)), accepting)
        }
        Some(config) => {
            let (incoming, accepting) = tls::accept_tls(listener, config, cap);
            (tokio::spawn(conn::serve(incoming, router, limits, stop_rx)), accepting)
        }
    };
    control.shutdown.await;
    let _ = stop_tx.send(true);
    info!("stopping: no new work; a running sync may finish");
    state.runner.stop();
    scheduler.abort();
    reloader.abort();
    // The live channels close; a webhook delivery in flight may finish
    // within the grace period (an unacknowledged batch is sent again after
    // a restart).
    let _ = live.await;
    let grace = server.shutdown_grace;
    let mut hooks = hooks;
    let (deliveries, ()) =
        tokio::join!(tokio::time::timeout(grace, &mut hooks), wind_down(&*store, worker, grace, instance));
    if deliveries.is_err() {
        hooks.abort();
        warn!("a webhook delivery was still in flight after the grace period: it is sent again after a restart");
    }
    if tokio::time::timeout(Duration::from_secs(10), http).await.is_err() {
        warn!("open HTTP connections did not close within 10 s");
    }
    // The listener is closed when `run` returns: the port can be bound again.
    accepting.abort();
    let _ = accepting.await;
    info!("stopped");
    Ok(())
}

/// The store's name as the config gives it (no password).
fn store_name(st: &AppState) -> String {
    crate::store::describe(&st.config().store)
}

/// Logs when each source will be read on its own (local time, with its
/// offset), so nobody is surprised by a sync on defaults nobody wrote.
fn announce_schedules(cfg: &Config) {
    let now = chrono::Local::now();
    let next = |p: &Option<crate::config::CronPattern>| match p.as_ref().and_then(|p| p.next_after(now).map(|t| (p, t)))
    {
        Some((p, t)) => format!("{} (\"{}\")", t.format("%Y-%m-%d %H:%M:%S%:z"), p.text),
        None => "never".to_string(),
    };
    for s in &cfg.sources {
        let incremental = match s.kind.capabilities().incremental && s.incremental.enabled {
            true => next(&s.schedule.incremental),
            false => "never (the source reads in full)".to_string(),
        };
        info!(source = %s.name, full = %next(&s.schedule.full), incremental = %incremental, "schedule: next runs");
    }
}

/// Runs a killed service left queued or running are marked interrupted; a
/// running one only when nobody holds the lease (a CLI sync may be running
/// right now).
async fn settle_left_runs(store: &dyn Store) {
    let at = crate::engine::history::now();
    let left = crate::store::on_store(store, move |s| -> Result<(usize, usize), crate::store::StoreError> {
        // Queued by instances that are gone (this one's last life among them).
        let queued = s.abandon_queued(at, None)?;
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
}

/// Says where the service listens and what deserves a warning; returns the
/// TLS settings, read again (the files may have changed since the config
/// was checked).
fn announce(
    listener: &tokio::net::TcpListener,
    server: &crate::config::ServerConfig,
) -> Result<Option<rustls::ServerConfig>, ServeError> {
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() && server.tls.is_none() {
        warn!("listening beyond loopback without TLS (allow_plaintext = true): tokens and passwords cross the network in clear");
    }
    let tls = match &server.tls {
        None => None,
        Some((c, k)) => Some(crate::config::server::tls_server_config(c, k).map_err(ServeError::Tls)?),
    };
    info!("listening on {}://{bound}", if tls.is_some() { "https" } else { "http" });
    if server.clients.is_empty() {
        warn!("no [[server.clients]] configured: every /api route answers 401");
    }
    Ok(tls)
}

/// Waits up to `grace` for the run queue to stop; a sync still running then
/// is dropped (its source reads stop, its open transaction rolls back:
/// nothing of it is applied). Runs left queued or running are marked.
async fn wind_down(store: &dyn Store, mut worker: tokio::task::JoinHandle<()>, grace: Duration, instance: String) {
    match tokio::time::timeout(grace, &mut worker).await {
        Ok(_) => info!("the run queue stopped"),
        Err(_) => {
            worker.abort();
            // Resolves once the run's future is dropped: its transaction
            // rolled back, its lease let go.
            let _ = worker.await;
            warn!("a sync was still running after {} s: stopped, nothing of it applied", grace.as_secs());
        }
    }
    let at = crate::engine::history::now();
    let _ = crate::store::on_store(store, move |s| s.abandon_queued(at, Some(&instance))).await;
    // Runs left running are marked only under the lease: another instance
    // may be running a sync now. A lease taken on a blocking thread when the
    // run was stopped is let go a moment later: a few tries.
    for _ in 0..40 {
        let marked = crate::store::on_store(store, move |s| match s.lease() {
            Ok(_lease) => s.mark_interrupted(at).map(|_| true),
            Err(_) => Ok(false),
        })
        .await;
        if !matches!(marked, Ok(false)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads the config again on each message; a refused one leaves the old in
/// force. The scheduler is told through `reloaded`.
async fn reloads(mut asked: mpsc::Receiver<()>, from: Reload, st: AppState, reloaded: watch::Sender<u64>) {
    let Reload { path, kinds } = from;
    let cfg = st.cfg.clone();
    while asked.recv().await.is_some() {
        match Config::load_with(&path, &kinds) {
            Ok(new) => {
                let old_store = crate::store::describe(&cfg.read().expect("config lock").store);
                if crate::store::describe(&new.store) != old_store {
                    warn!("reload: [store] changed; the new store is used after a restart, not now");
                }
                for w in &new.warnings {
                    warn!("{w}");
                }
                *cfg.write().expect("config lock") = Arc::new(new);
                *st.refused_reload.write().expect("reload lock") = None;
                reloaded.send_modify(|n| *n += 1);
                info!("configuration reloaded from {}", path.display());
            }
            Err(e) => {
                error!("reload: the new configuration is refused, the old one is kept: {e}");
                *st.refused_reload.write().expect("reload lock") = Some(e.to_string());
            }
        }
    }
}
