//! Serving connections, for plain HTTP and HTTPS alike: a cap on how many
//! are served at once (beyond it a new connection is closed at accept,
//! never queued), a deadline for each request head (from a new
//! connection, or the first byte of a next request, to the head's end), and
//! an idle deadline for kept-alive connections with no request in progress.
//! So neither idle nor slow-header clients can starve `/healthz` or
//! `/api/auth` for everyone. On stop, every connection is shut down
//! gracefully (in-flight requests finish).

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// The limits a connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// An accepted connection and its place under the cap.
pub struct Accepted<IO> {
    pub io: IO,
    pub addr: SocketAddr,
    pub permit: OwnedSemaphorePermit,
}

/// A place under the cap, or `None` when every place is taken (the caller
/// closes the connection at once).
pub fn place(cap: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    cap.clone().try_acquire_owned().ok()
}

/// Accepts TCP connections for ever, closing those beyond the cap at once,
/// and hands each other one with its place to `take` (which returns `false`
/// when nobody wants connections any more).
pub async fn accept_loop(
    tcp: tokio::net::TcpListener,
    cap: Arc<Semaphore>,
    until: impl std::future::Future<Output = ()>,
    mut take: impl FnMut(tokio::net::TcpStream, SocketAddr, OwnedSemaphorePermit) -> bool,
) {
    // The listener closes as soon as nobody serves its connections any
    // more, not at the next connection attempt.
    tokio::pin!(until);
    loop {
        let accepted = tokio::select! {
            a = tcp.accept() => a,
            () = &mut until => return,
        };
        let (io, addr) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, mostly: wait for some to be freed.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = place(&cap) else {
            refused(addr);
            continue; // dropped: closed
        };
        if !take(io, addr, permit) {
            return;
        }
    }
}

/// Accepted connections, and the task that accepts them (it ends, closing
/// the listener, once the receiver is dropped).
pub type Incoming<IO> = (mpsc::Receiver<Accepted<IO>>, tokio::task::JoinHandle<()>);

/// Plain TCP: the accepted connections, as they come.
pub fn accept_plain(tcp: tokio::net::TcpListener, cap: Arc<Semaphore>) -> Incoming<tokio::net::TcpStream> {
    let (tx, rx) = mpsc::channel(64);
    let served = tx.clone();
    let until = async move { served.closed().await };
    let task = tokio::spawn(accept_loop(tcp, cap, until, move |io, addr, permit| {
        match tx.try_send(Accepted { io, addr, permit }) {
            Ok(()) => true,
            // The server is behind: the connection waits its turn (it holds its place).
            Err(mpsc::error::TrySendError::Full(a)) => {
                let tx = tx.clone();
                tokio::spawn(async move { tx.send(a).await });
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }));
    (rx, task)
}

/// A connection refused at the cap (logged at most once a second).
pub fn refused(addr: SocketAddr) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(%addr, "max_connections reached: a new connection was closed");
    }
}

/// Serves every accepted connection until `stop`, then shuts them down
/// gracefully and returns once they are closed.
pub async fn serve<IO>(
    mut incoming: mpsc::Receiver<Accepted<IO>>,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (close_tx, close_rx) = watch::channel(());
    loop {
        let a = tokio::select! {
            a = incoming.recv() => match a { Some(a) => a, None => break },
            _ = stop.wait_for(|s| *s) => break,
        };
        let (router, stop, close_rx) = (router.clone(), stop.clone(), close_rx.clone());
        tokio::spawn(async move {
            one(a, router, limits, stop).await;
            drop(close_rx);
        });
    }
    drop(close_rx);
    close_tx.closed().await;
}

/// What a connection did last, for its deadlines (milliseconds since `born`).
struct Activity {
    born: Instant,
    /// The last byte read or written.
    last: AtomicU64,
    /// When the head being read began (`u64::MAX`: no head under way).
    head_since: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn now(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// The moment the connection is past a deadline, as of now.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |ms: u64, d: Duration| self.born + Duration::from_millis(ms) + d;
        match self.head_since.load(Ordering::Acquire) {
            u64::MAX => Some(at(self.last.load(Ordering::Acquire), limits.idle_timeout)),
            since => Some(at(since, limits.header_timeout)),
        }
    }
}

async fn one<IO>(a: Accepted<IO>, router: Router, limits: Limits, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted { io, addr, permit } = a;
    let act = Arc::new(Activity {
        born: Instant::now(),
        last: AtomicU64::new(0),
        head_since: AtomicU64::new(0), // a new connection owes its first head
        in_flight: AtomicUsize::new(0),
    });
    let io = TokioIo::new(Watched { io, act: act.clone() });
    let svc_act = act.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let act = svc_act.clone();
        act.head_since.store(u64::MAX, Ordering::Release);
        act.in_flight.fetch_add(1, Ordering::AcqRel);
        req.extensions_mut().insert(ConnectInfo(addr));
        let call = router.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let r = call.await;
            act.last.store(act.now(), Ordering::Release);
            act.in_flight.fetch_sub(1, Ordering::AcqRel);
            r
        }
    });
    let mut conn = pin!(hyper::server::conn::http1::Builder::new().serve_connection(io, svc));
    let mut stopping = false;
    loop {
        let deadline = act.deadline(&limits).unwrap_or_else(|| Instant::now() + limits.idle_timeout);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!(%addr, "connection ended: {e}");
                }
                break;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(deadline) => {
                if act.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%addr, "connection closed: no request head in time, or idle");
                    break; // dropping the connection closes it
                }
            }
        }
    }
    drop(permit);
}

/// The connection's stream, noting when bytes pass and when a new request
/// head starts arriving.
struct Watched<IO> {
    io: IO,
    act: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            let (act, now) = (&self.act, self.act.now());
            act.last.store(now, Ordering::Release);
            if act.in_flight.load(Ordering::Acquire) == 0 {
                // The first byte of a next request: its head is under way.
                let _ = act.head_since.compare_exchange(u64::MAX, now, Ordering::AcqRel, Ordering::Acquire);
            }
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.act.last.store(self.act.now(), Ordering::Release);
        }
        r
    }

    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
