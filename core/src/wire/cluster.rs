//! The audit, cluster membership and applied specs on the wire.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::chain::ChainBreak;
use crate::ids::Hash;
use crate::spec::{ClusterSpec, SpecDiff};

/// `GET /v1/audit/verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VerifyView {
    pub ok: bool,
    /// Events verified from seq 1.
    pub verified: u64,
    /// The recomputed hash of the last verified event.
    pub head: Hash,
    /// Where the chain breaks, if it does.
    pub broken: Option<ChainBreak>,
    /// The member that verified its copy.
    pub member: u64,
}

/// One member as it reports itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MemberStatus {
    pub id: u64,
    pub addr: String,
    /// `leader`, `follower`, `candidate`, `learner` or `unreachable`.
    pub role: String,
    pub voter: bool,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The last log index covered by this member's latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Raft log entries up to this index have been compacted away on this member.
    pub purged_index: Option<u64>,
    /// The last event seq applied, and its hash.
    pub seq: u64,
    pub head: Hash,
    /// Why the member could not be asked, when `role` is `unreachable`.
    pub error: Option<String>,
}

/// `GET /v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterStatus {
    pub leader: Option<u64>,
    pub term: u64,
    pub members: Vec<MemberStatus>,
}

/// `POST /v1/cluster/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub id: u64,
    /// Its `host:port` (HTTP and Raft share it).
    pub addr: String,
}

/// `GET /v1/spec` and `GET /v1/specs/{digest}`: an applied spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpecView {
    /// The seq of the `SpecApplied` event.
    pub seq: u64,
    pub digest: Hash,
    /// Whether it is the live spec (at the seq asked about).
    pub live: bool,
    /// The document as applied (its own casing: the attribute names of the Nix declaration).
    pub spec: ClusterSpec,
}

/// `POST /v1/spec/plan`: what applying a document would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanView {
    /// The live spec's digest, if a spec is live.
    pub live: Option<Hash>,
    /// The submitted document's digest.
    pub digest: Hash,
    pub diff: SpecDiff,
}

/// `GET /readyz`: 200 when the member knows a leader and has applied everything committed it knows of, else 503.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Readiness {
    pub ready: bool,
    pub leader: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
}
