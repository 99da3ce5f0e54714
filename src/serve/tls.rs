//! HTTPS for `dirsync serve` (`[server] tls_cert_file` + `tls_key_file`,
//! rustls): the certificate chain and key are read and checked at config
//! load (`config::server::tls_server_config`); handshakes run on tasks of
//! their own with a time limit, so a client that connects and says nothing
//! holds up nobody, and each takes its place under the connection cap from
//! the moment it is accepted ([`accept_tls`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::conn::{accept_loop, Accepted};

/// Accepts TCP connections (closing those beyond the cap) and hands over
/// those whose TLS handshake finished within 10 s.
pub fn accept_tls(
    tcp: TcpListener,
    config: rustls::ServerConfig,
    cap: Arc<Semaphore>,
) -> super::conn::Incoming<TlsStream<TcpStream>> {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = mpsc::channel(64);
    let served = tx.clone();
    let until = async move { served.closed().await };
    let task = tokio::spawn(accept_loop(tcp, cap, until, move |stream, addr, permit| {
        if tx.is_closed() {
            return false;
        }
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(io)) => {
                    let _ = tx.send(Accepted { io, addr, permit }).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        });
        true
    }));
    (rx, task)
}
