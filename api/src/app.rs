//! One running member: its configuration, Raft node, tokens and metrics, the HTTP router, and starting
//! and stopping it on an already-bound listener.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::MethodRouter;
use sendan_raft::{FaultSwitch, Member, RaftNode};
use tokio::net::TcpListener;

use crate::auth::{self, Tokens};
use crate::config::{ClusterState, ServerConfig};
use crate::metrics::Metrics;
use crate::openapi::Group;
use crate::routes;

/// Shared by every request handler of a member.
pub struct App {
    pub config: ServerConfig,
    pub node: RaftNode,
    pub tokens: Tokens,
    pub cluster_secret: String,
    pub metrics: Metrics,
    pub proposer: crate::write::Proposer,
    pub started: Instant,
    /// Flipped to `true` when the member stops, ending long-lived responses (watch streams).
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// What the member serves HTTPS with; `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections open, accepted and refused.
    pub conns: Arc<crate::serve::ConnStats>,
    /// The rate limit of the netboot and installer endpoints.
    pub bootstrap_limiter: crate::guard::RateLimiter,
    /// Recent phone-homes refused for claiming an identity their token does not prove.
    pub refusals: std::sync::Mutex<crate::guard::Refusals>,
    /// Node agents' heartbeats (meaningful on the leader).
    pub liveness: crate::liveness::Liveness,
}

/// Largest body a peer may send (Raft entries carry whole client batches).
const PEER_BODY_LIMIT: usize = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("{0}")]
    Secret(String),
    #[error("cannot start the Raft member")]
    Raft(#[from] sendan_raft::StartError),
    #[error("cannot set up TLS")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot serve")]
    Serve(#[source] std::io::Error),
}

/// What a started member tells the operator.
#[derive(Clone, Debug)]
pub struct Started {
    pub addr: SocketAddr,
    pub admin_token_file: std::path::PathBuf,
    pub admin_token_created: bool,
    pub initialized_cluster: bool,
}

/// Open the member's stores and secrets and build its shared state (nothing is served yet).
pub async fn open(
    config: ServerConfig,
    faults: Arc<FaultSwitch>,
) -> Result<(Arc<App>, std::path::PathBuf, bool), StartError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir { path: dir.display().to_string(), source })?;
    let secret_file = config.cluster_secret_file.clone().unwrap_or_else(|| dir.join("cluster.secret"));
    let cluster_secret = if config.cluster_secret_file.is_some() {
        auth::read_secret(&secret_file).map_err(StartError::Secret)?
    } else {
        auth::read_or_create_secret(&secret_file, "cluster").map_err(StartError::Secret)?.0
    };
    let token_file = config.admin_token_file.clone().unwrap_or_else(|| dir.join("admin.token"));
    let (admin_token, created) = if config.admin_token_file.is_some() {
        (auth::read_secret(&token_file).map_err(StartError::Secret)?, false)
    } else {
        auth::read_or_create_secret(&token_file, "admin").map_err(StartError::Secret)?
    };
    let (tls, trust) = match &config.tls {
        Some(files) => {
            let t = crate::tls::load(files)?;
            (Some(t.server), t.trust)
        }
        None => (None, sendan_raft::Trust::plain()),
    };
    let node = RaftNode::start(config.node_id, dir, &cluster_secret, faults, &config.raft, trust).await?;
    let app = App {
        bootstrap_limiter: crate::guard::RateLimiter::new(config.bootstrap_rate_limit),
        refusals: std::sync::Mutex::new(crate::guard::Refusals::new(crate::guard::Refusals::MAX)),
        liveness: crate::liveness::Liveness::default(),
        conns: Arc::default(),
        config,
        proposer: crate::write::Proposer::start(node.clone()),
        node,
        tokens: Tokens::new(&admin_token, &cluster_secret),
        cluster_secret,
        metrics: Metrics::default(),
        started: Instant::now(),
        shutdown: tokio::sync::watch::channel(false).0,
        tls,
    };
    Ok((Arc::new(app), token_file, created))
}

/// The HTTP router: every route of [`crate::openapi::routes`], in three groups with their own body limits (and,
/// for the bootstrap edge, a per-address rate limit), then metrics around all of it.
pub fn router(app: Arc<App>) -> Router {
    let group = |g: Group| {
        let mut by_path: BTreeMap<&'static str, MethodRouter<Arc<App>>> = BTreeMap::new();
        for r in crate::openapi::routes().into_iter().filter(|r| r.group == g) {
            let mr = r.method_router();
            let merged = match by_path.remove(r.path) {
                Some(existing) => existing.merge(mr),
                None => mr,
            };
            by_path.insert(r.path, merged);
        }
        by_path.into_iter().fold(Router::new(), |router, (path, mr)| router.route(path, mr))
    };
    let api = group(Group::Api).layer(DefaultBodyLimit::max(app.config.max_body_bytes));
    // The edge a machine on the provisioning network reaches with nothing but what netboot hands out.
    let bootstrap = group(Group::Bootstrap)
        .layer(axum::middleware::from_fn_with_state(app.clone(), crate::guard::bootstrap_rate_limit))
        .layer(DefaultBodyLimit::max(crate::extract::BOOTSTRAP_BODY_LIMIT));
    let peer = group(Group::Peer).layer(DefaultBodyLimit::max(PEER_BODY_LIMIT));
    api.merge(bootstrap)
        .merge(peer)
        .fallback(routes::health::not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), crate::metrics::track))
        .with_state(app)
}

/// Serve `app` on `listener` until `shutdown` resolves, joining the initial cluster once serving.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<bool, StartError> {
    let router = router(app.clone());
    let stopping = app.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.shutdown.send_replace(true);
    };
    tokio::spawn(shutdown);
    let serving = tokio::spawn(crate::serve::serve(
        listener,
        app.tls.clone(),
        router,
        app.config.http,
        app.conns.clone(),
        app.shutdown.subscribe(),
    ));
    crate::controller::spawn_all(&app);
    let initialized = match app.config.cluster_state {
        ClusterState::New => {
            let members: BTreeMap<u64, Member> =
                app.config.initial_cluster.iter().map(|(id, addr)| (*id, Member { addr: addr.clone() })).collect();
            app.node.join_initial(members).await?
        }
        ClusterState::Existing => false,
    };
    if let Err(e) = serving.await {
        tracing::error!(error = %e, "the HTTP server stopped");
    }
    let _ = app.node.raft.shutdown().await;
    Ok(initialized)
}

/// A member running in this process (tests, `sendan bench`): stop it with [`Running::stop`].
pub struct Running {
    pub app: Arc<App>,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<bool, StartError>>,
}

impl Running {
    /// Start a member on an already-bound listener.
    pub async fn start(
        config: ServerConfig,
        listener: TcpListener,
        faults: Arc<FaultSwitch>,
    ) -> Result<Running, StartError> {
        let (app, _, _) = open(config, faults).await?;
        Ok(Running::serve(app, listener))
    }

    /// Serve an opened member on an already-bound listener.
    pub fn serve(app: Arc<App>, listener: TcpListener) -> Running {
        let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(app.clone(), listener, async move {
            let _ = rx.await;
        }));
        Running { app, addr, stop: Some(tx), task }
    }

    /// Stop serving and shut Raft down; the stores are closed when the last handle drops.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        let _ = self.app.node.raft.shutdown().await;
    }
}
