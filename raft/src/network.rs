//! The peer transport: Raft RPCs as postcard over HTTP (HTTPS when the cluster has TLS), authenticated with the
//! cluster secret.
//!
//! The API crate serves the other end (`/raft/*` routes) and uses [`Network::post`] to forward client
//! submissions from followers to the leader over the same authenticated channel.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::tls::Trust;
use crate::types::*;
use crate::{Member, MemberId, TypeConfig};

/// The header carrying the cluster secret on every peer request.
pub const PEER_SECRET_HEADER: &str = "x-sendan-cluster-secret";

/// The peer endpoints, all `POST` with postcard bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerPath {
    Append,
    Vote,
    Snapshot,
    /// A follower forwarding client submissions to the leader.
    Submit,
    /// A follower forwarding a membership change to the leader.
    Membership,
    /// A member's own view of itself, for `GET /v1/cluster`.
    Status,
    /// A follower passing a node agent's heartbeat on to the leader.
    Heartbeat,
}

impl PeerPath {
    pub fn path(self) -> &'static str {
        match self {
            PeerPath::Append => "/raft/append",
            PeerPath::Vote => "/raft/vote",
            PeerPath::Snapshot => "/raft/snapshot",
            PeerPath::Submit => "/raft/submit",
            PeerPath::Membership => "/raft/membership",
            PeerPath::Status => "/raft/status",
            PeerPath::Heartbeat => "/raft/heartbeat",
        }
    }
}

/// Cuts links between members, for fault tests of an in-process cluster. Production code never
/// isolates anyone; the switch is empty unless a test flips it.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    isolated: RwLock<HashSet<MemberId>>,
}

impl FaultSwitch {
    pub fn isolate(&self, id: MemberId) {
        self.isolated.write().expect("fault switch").insert(id);
    }
    pub fn heal(&self, id: MemberId) {
        self.isolated.write().expect("fault switch").remove(&id);
    }
    pub fn blocks(&self, from: MemberId, to: MemberId) -> bool {
        let iso = self.isolated.read().expect("fault switch");
        from != to && (iso.contains(&from) || iso.contains(&to))
    }
}

/// Why a peer request failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("peer {addr} is unreachable")]
    Unreachable {
        addr: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the link to member {to} is cut by a fault test")]
    Isolated { to: MemberId },
    #[error("peer {addr} answered HTTP {status}: {body}")]
    Status { addr: String, status: u16, body: String },
    #[error("peer {addr} sent a body that does not decode")]
    Decode {
        addr: String,
        #[source]
        source: postcard::Error,
    },
    #[error("reading the answer of peer {addr} failed")]
    Body {
        addr: String,
        #[source]
        source: reqwest::Error,
    },
}

/// This member's view of the peer network. Cloning shares the connection pool.
#[derive(Clone)]
pub struct Network {
    me: MemberId,
    client: reqwest::Client,
    secret: Arc<str>,
    faults: Arc<FaultSwitch>,
    trust: Trust,
}

impl Network {
    /// Members are reached over `trust`'s scheme (HTTPS verified against the cluster's roots, or plain HTTP).
    pub fn new(me: MemberId, secret: &str, faults: Arc<FaultSwitch>, trust: Trust) -> Network {
        let client = trust
            .http_builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .expect("an HTTP client with a preconfigured TLS config builds");
        Network { me, client, secret: Arc::from(secret), faults, trust }
    }

    pub fn faults(&self) -> &Arc<FaultSwitch> {
        &self.faults
    }

    /// POST a postcard body to peer `to` at `addr` and decode its postcard answer.
    pub async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: MemberId,
        addr: &str,
        path: PeerPath,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        if self.faults.blocks(self.me, to) {
            return Err(PeerError::Isolated { to });
        }
        let body = postcard::to_allocvec(req).expect("postcard encoding into a Vec");
        let url = format!("{}{}", self.trust.base_url(addr), path.path());
        let resp = self
            .client
            .post(url)
            .header(PEER_SECRET_HEADER, &*self.secret)
            .header("content-type", "application/x-postcard")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|source| PeerError::Unreachable { addr: addr.to_owned(), source })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|source| PeerError::Body { addr: addr.to_owned(), source })?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            return Err(PeerError::Status { addr: addr.to_owned(), status: status.as_u16(), body });
        }
        postcard::from_bytes(&bytes).map_err(|source| PeerError::Decode { addr: addr.to_owned(), source })
    }
}

/// A client for one peer, made by openraft through [`RaftNetworkFactory`].
pub struct PeerClient {
    net: Network,
    target: MemberId,
    member: Member,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: MemberId, node: &Member) -> PeerClient {
        PeerClient { net: self.clone(), target, member: node.clone() }
    }
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        path: PeerPath,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<MemberId, Member, RaftError<MemberId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Result<Resp, RaftError<MemberId, E>>, PeerError> =
            self.net.post(self.target, &self.member.addr, path, req, option.hard_ttl()).await;
        match answer {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => {
                Err(RPCError::RemoteError(RemoteError::new_with_node(self.target, self.member.clone(), remote)))
            }
            Err(e @ (PeerError::Unreachable { .. } | PeerError::Isolated { .. })) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RPCError<MemberId, Member, RaftError<MemberId>>> {
        self.call(PeerPath::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse, RPCError<MemberId, Member, RaftError<MemberId, InstallSnapshotError>>> {
        self.call(PeerPath::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RPCError<MemberId, Member, RaftError<MemberId>>> {
        self.call(PeerPath::Vote, &rpc, &option).await
    }
}
