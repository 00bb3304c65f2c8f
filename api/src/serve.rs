//! Serving the router on an already-bound listener, with bounds on what a client can hold: at most
//! `max_connections` connections at once (past that a new one is closed at once, with a log line), a TLS handshake
//! within [`HANDSHAKE_TIMEOUT`], request headers within `header_timeout` — which also closes a keep-alive
//! connection that stays idle that long — and, in the body extractors, a whole body within `body_timeout`.
//! Each request carries the peer's address (`ConnectInfo`), for rate limits and logs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service;

/// A client that does not finish its TLS handshake in this time is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish their requests once the member stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What one client may hold of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    /// Request headers must arrive within this, counted from the connection's start or the end of its previous
    /// response (so it is also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// A request body must arrive whole within this.
    pub body_timeout: Duration,
}

impl HttpLimits {
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
}

/// Counters of the serving loop, for `/metrics`.
#[derive(Default)]
pub struct ConnStats {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: AtomicU64,
    pub accept_errors: AtomicU64,
}

/// Raise this process's open-file limit to its hard limit, and return the soft limit it ends up with.
pub fn raise_fd_limit() -> Option<u64> {
    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }
    unsafe extern "C" {
        fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
    }
    const RLIMIT_NOFILE: i32 = 7;
    let mut l = RLimit { cur: 0, max: 0 };
    // SAFETY: getrlimit and setrlimit read and write one rlimit struct we own.
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut l) != 0 {
            return None;
        }
        if l.cur < l.max {
            let raised = RLimit { cur: l.max, max: l.max };
            if setrlimit(RLIMIT_NOFILE, &raised) == 0 {
                l.cur = l.max;
            }
        }
    }
    Some(l.cur)
}

/// The default connection limit: what the open-file limit leaves after files, peers and the stores, at most
/// 16,384 and at least 64.
pub fn default_max_connections() -> usize {
    let files = raise_fd_limit().unwrap_or(1024);
    (files.saturating_sub(256) as usize).clamp(64, 16_384)
}

/// Serve `router` on `listener` until `stop` turns true; then stop accepting and give open connections
/// [`DRAIN_TIMEOUT`] to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: HttpLimits,
    stats: Arc<ConnStats>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut conns = JoinSet::new();
    let mut last_full_log: Option<Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        // One line per ten seconds at most: a flood must not flood the log too.
                        if last_full_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            last_full_log = Some(Instant::now());
                            tracing::warn!(
                                %peer,
                                limit = limits.max_connections,
                                refused = stats.refused.load(Ordering::Relaxed),
                                "connection limit reached: {} connections are open, so new ones are closed at once \
                                 (raise --max-connections, or find who holds them)",
                                limits.max_connections
                            );
                        }
                        drop(tcp);
                        continue;
                    };
                    let (router, acceptor, stats, stop) = (router.clone(), acceptor.clone(), stats.clone(), stop.clone());
                    conns.spawn(async move {
                        stats.open.fetch_add(1, Ordering::Relaxed);
                        connection(tcp, peer, acceptor, router, limits, stop).await;
                        stats.open.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cannot accept a connection");
                    // Out of file descriptors (or another resource): give closing connections a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await; // backoff after a failed accept
                }
            },
            () = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        conns.abort_all();
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    limits: HttpLimits,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    match acceptor {
        None => http1(tcp, peer, router, limits, stop).await,
        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => http1(tls, peer, router, limits, stop).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
    }
}

async fn http1<IO>(io: IO, peer: SocketAddr, router: Router, limits: HttpLimits, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
