//! The machines and bootstrap aggregate: every machine that phoned home (its facts and the node bound to it),
//! bootstrap tokens by hash and each machine's installer session, why an unbound machine was not enrolled, why a
//! node's install plan was refused, install progress and the SSH host keys nodes reported. `events.rs` holds its
//! events, `rules.rs` what `check` asks of them, `fold.rs` how `evolve` records them, `identity.rs` the rule every
//! phone-home passes, `enrollment.rs` the enrollment controller's planner, `install.rs` the served install plan and
//! `netboot.rs` what a MAC boots.
//!
//! A bootstrap token is made for a MAC (netboot, stateless), used once by the machine that phones home with it
//! (its installer session: fetch the plan, report install progress for the machine's node, nothing else), and
//! spent once when the installer exchanges it for the node token.

pub mod enrollment;
pub mod events;
pub mod fold;
pub mod identity;
pub mod install;
pub mod netboot;
pub mod rules;

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::facts::HardwareFacts;
use crate::ids::{EventId, Hash, MachineId, NodeId, Timestamp};
use crate::lifecycle::NodeState;
use events::InstallStep;

/// A physical machine that phoned home.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRecord {
    pub id: MachineId,
    pub facts: HardwareFacts,
    /// The node bound to it; `None` means the machine is `discovered` (or was released by a rebind).
    pub node: Option<NodeId>,
    pub first_seen: u64,
    pub last_seen: u64,
}

impl MachineRecord {
    /// A machine's own lifecycle state: `discovered` until a node is bound to it.
    pub fn state(&self) -> Option<NodeState> {
        self.node.is_none().then_some(NodeState::Discovered)
    }
}

/// Every machine, and what the log knows about bootstrapping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachinesState {
    pub records: OrdMap<MachineId, Arc<MachineRecord>>,
    pub bootstrap: BootstrapState,
}

impl MachinesState {
    pub fn get(&self, id: &MachineId) -> Option<&MachineRecord> {
        self.records.get(id).map(Arc::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: &MachineId) -> Option<&mut MachineRecord> {
        self.records.get_mut(id).map(Arc::make_mut)
    }

    /// Machines no node is bound to: the `discovered` list an operator accepts from.
    pub fn unbound(&self) -> impl Iterator<Item = &MachineRecord> {
        self.records.values().map(Arc::as_ref).filter(|m| m.node.is_none())
    }
}

/// The longest a bootstrap token may be issued for.
pub const MAX_TOKEN_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// The longest free-text detail of an install progress report.
pub const MAX_DETAIL: usize = 4096;

/// What the log knows about bootstrapping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapState {
    /// Bootstrap tokens by hash: unclaimed ones (until they expire and a later issue prunes them), installer
    /// sessions, and spent ones (so a spent token is answered with why it no longer works).
    pub tokens: OrdMap<Hash, Arc<BootToken>>,
    /// The unclaimed token of each MAC.
    pub unclaimed: OrdMap<String, Hash>,
    /// The live installer session (claimed token) of each machine.
    pub sessions: OrdMap<MachineId, Hash>,
    /// Why an unbound machine was not bound, as last decided.
    pub enrollment: OrdMap<MachineId, Arc<EnrollmentProblem>>,
    /// Why a node's install plan was refused, as last decided.
    pub refusals: OrdMap<NodeId, Arc<PlanRefusal>>,
    /// The last install step each node reported.
    pub progress: OrdMap<NodeId, Arc<Progress>>,
    /// The SSH host public key each node reported when its installer spent its token.
    pub host_keys: OrdMap<NodeId, Arc<HostKey>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootToken {
    pub hash: Hash,
    pub mac: String,
    /// The seq and id of the `BootstrapTokenIssued` event (the server derives the token from the id, so it can
    /// hand the same token out again while it is unclaimed).
    pub issued: u64,
    pub issued_id: EventId,
    pub expires: Timestamp,
    pub status: TokenStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenStatus {
    Unclaimed,
    /// The machine's installer session.
    Claimed {
        machine: MachineId,
        seq: u64,
    },
    /// Spent for the node token.
    Exchanged {
        node: NodeId,
        seq: u64,
    },
    /// The machine phoned home again with a newer token, which ended this session.
    Replaced {
        seq: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentProblem {
    pub seq: u64,
    /// The spec digest and the machine's `last_seen` it was decided on.
    pub spec: Hash,
    pub seen: u64,
    pub problem: Problem,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Problem {
    Conflict { priority: u32, rules: Vec<String> },
    Refused { rule: String, reasons: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRefusal {
    pub seq: u64,
    /// The spec digest, the node's `since` and its machine's `last_seen` it was decided on.
    pub spec: Hash,
    pub since: u64,
    pub seen: u64,
    pub layout: String,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub seq: u64,
    pub step: InstallStep,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKey {
    pub seq: u64,
    pub key: String,
}

/// Why a bootstrap token the log knows no longer works, in a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnded {
    /// It was never used and its time ran out (the caller is not authenticated: 401).
    Expired(String),
    /// It was used up: exchanged for the node token, or replaced by a newer session (authenticated, but it may do
    /// nothing more: 403).
    Spent(String),
}

impl SessionEnded {
    pub fn why(&self) -> &str {
        match self {
            SessionEnded::Expired(w) | SessionEnded::Spent(w) => w,
        }
    }
}

/// A bootstrap token that authenticates a request, and the machine whose installer session it is (none
/// before it phoned home).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session<'a> {
    pub token: &'a BootToken,
    pub machine: Option<&'a MachineId>,
}

impl BootstrapState {
    pub fn token(&self, hash: &Hash) -> Option<&BootToken> {
        self.tokens.get(hash).map(Arc::as_ref)
    }

    /// The token `hash` as a credential at `now`, or why it no longer works. `None` when the log holds no such
    /// bootstrap token: it never phoned home (a stateless token, which the server checks by its signature), or
    /// it was an issued token pruned after expiring.
    pub fn session(&self, hash: &Hash, now: Timestamp) -> Option<Result<Session<'_>, SessionEnded>> {
        let token = self.token(hash)?;
        Some(match &token.status {
            TokenStatus::Unclaimed if now >= token.expires => Err(SessionEnded::Expired(format!(
                "this bootstrap token expired at {} before its machine phoned home; netboot the machine again for \
                 a new one",
                token.expires
            ))),
            TokenStatus::Unclaimed => Ok(Session { token, machine: None }),
            TokenStatus::Claimed { machine, .. } => Ok(Session { token, machine: Some(machine) }),
            TokenStatus::Exchanged { node, seq } => Err(SessionEnded::Spent(format!(
                "this bootstrap token was exchanged for node {node}'s token at seq {seq}; a bootstrap token works once"
            ))),
            TokenStatus::Replaced { seq } => Err(SessionEnded::Spent(format!(
                "this bootstrap token's installer session ended at seq {seq}, when the machine phoned home with a \
                 newer token"
            ))),
        })
    }

    /// The unclaimed token of `mac` that still works at `now`.
    pub fn unclaimed_for(&self, mac: &str, now: Timestamp) -> Option<&BootToken> {
        let token = self.token(self.unclaimed.get(mac)?)?;
        (token.status == TokenStatus::Unclaimed && now < token.expires).then_some(token)
    }
}
