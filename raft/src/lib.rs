//! Sendan's replicated log: the openraft type configuration, the durable log store and state machine
//! over redb, snapshots, read queries over the applied event log, and the HTTP peer transport client.
//!
//! Only this crate names openraft and redb. The API crate serves the peer endpoints (it owns axum) and
//! calls [`Raft`] methods; everything it reads goes through [`Reader`].

mod error;
mod format;
mod log_store;
mod network;
mod node;
mod reader;
mod state;
pub mod tls;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use error::StoreError;
pub use log_store::LogStore;
pub use network::{FaultSwitch, Network, PEER_SECRET_HEADER, PeerError, PeerPath};
pub use node::{ClusterOptions, RaftNode, StartError, raft_config};
pub use reader::{EventQuery, Reader, VerifyReport};
pub use state::{StateMachine, open_stores};
pub use tls::{TlsError, Trust};

/// A cluster member's id, as in `--node-id` and `--initial-cluster 1=…`.
pub type MemberId = u64;

/// What the cluster knows about a member: where its API and peer endpoints listen.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    /// `host:port` serving both the HTTP API and the peer (Raft) endpoints.
    pub addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// What a Raft log entry asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// What entries written by releases before `cause` held (kept first: postcard records the variant's index);
    /// applied as [`Request::Append`] with no causes.
    AppendV1 { batches: Vec<Vec<sendan_core::upgrade::ProposalV1>> },
    /// Append client submissions, in order. Each inner batch is one client's submission and is atomic
    /// on its own (ids applied before are skipped); the leader groups concurrent submissions into one
    /// entry so that they share one round of replication and fsyncs.
    Append { batches: Vec<Vec<sendan_core::Proposal>> },
}

/// What applying an entry produced: one outcome per submission, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Appended(Vec<Outcome>),
    /// Blank and membership entries answer nothing.
    Nothing,
}

/// What happened to one submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Every proposal has its place in the log, in order; `duplicate` ones were there already.
    Appended(Vec<Receipt>),
    /// The submission was refused; nothing of it was applied.
    Rejected(sendan_core::log::BatchRejection),
}

/// Where an event sits in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: sendan_core::EventId,
    pub seq: u64,
    pub hash: sendan_core::Hash,
    pub duplicate: bool,
}

openraft::declare_raft_types!(
    /// Sendan's Raft types: the log carries [`Request`]s, members are [`Member`]s, snapshots are files.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = MemberId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// openraft types the API crate needs to name, re-exported so it does not depend on openraft.
pub mod types {
    use super::{Member, MemberId, TypeConfig};

    pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
    pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<MemberId>;
    pub type VoteRequest = openraft::raft::VoteRequest<MemberId>;
    pub type VoteResponse = openraft::raft::VoteResponse<MemberId>;
    pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
    pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<MemberId>;
    pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<MemberId, E>;
    pub type InstallSnapshotError = openraft::error::InstallSnapshotError;
    pub type ClientWriteError = openraft::error::ClientWriteError<MemberId, Member>;
    pub type ForwardToLeader = openraft::error::ForwardToLeader<MemberId, Member>;
    pub type RaftMetrics = openraft::RaftMetrics<MemberId, Member>;
    pub type ServerState = openraft::ServerState;
    pub type ChangeMembers = openraft::ChangeMembers<MemberId, Member>;
}
