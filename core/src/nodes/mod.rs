//! The node lifecycle aggregate: every declared node bound to a machine, its lifecycle state and its node token.
//! `events.rs` holds its events, `rules.rs` what `check` asks of them, `fold.rs` how `evolve` records them.
//!
//! Reads of other aggregates (is a machine free? does a node's layout fit its machine's disks? is a hash some
//! other credential?) go through [`crate::read::FleetRead`].

pub mod events;
pub mod fold;
pub mod rules;

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::ids::{Hash, MachineId, NodeId, Timestamp};
use crate::lifecycle::NodeState;

/// A declared node bound to a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    pub state: NodeState,
    pub machine: MachineId,
    pub class: Option<String>,
    pub pool: Option<String>,
    pub profile: Option<String>,
    /// The enrollment rule that bound it, if a rule did.
    pub rule: Option<String>,
    /// The seq of the event that moved it into `state`.
    pub since: u64,
    /// The seq of the last event about it.
    pub updated: u64,
    /// Why it last failed, while it is `failed`.
    pub reason: Option<String>,
    /// The hash of its live node token, if one was issued.
    pub token: Option<Hash>,
    /// While it is `active` and cordoned: the seq of the `NodeCordoned`, and why.
    pub cordon: Option<(u64, String)>,
    /// While it is `draining`: the drain's terms and progress.
    pub drain: Option<Drain>,
}

/// A drain: its terms and whether it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// The seq and time of the event that started it (or last set its terms).
    pub seq: u64,
    pub at: Timestamp,
    pub deadline: Option<Timestamp>,
    pub force: bool,
    /// The seq of its `NodeDrained`, once its agent reported every instance stopped.
    pub drained: Option<u64>,
    /// The rollout whose controller started it (its members are drained before a reboot, and uncordoned after).
    pub rollout: Option<u64>,
}

/// Every node, and the live node tokens by hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodesState {
    pub records: OrdMap<NodeId, Arc<NodeRecord>>,
    /// Live node tokens by hash.
    pub tokens: OrdMap<Hash, NodeId>,
}

impl NodesState {
    pub fn get(&self, id: &NodeId) -> Option<&NodeRecord> {
        self.records.get(id).map(Arc::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: &NodeId) -> Option<&mut NodeRecord> {
        self.records.get_mut(id).map(Arc::make_mut)
    }

    /// The node a token (by hash) speaks for.
    pub fn token_node(&self, token: &Hash) -> Option<&NodeId> {
        self.tokens.get(token)
    }

    /// Mark the node touched by the event at `seq` (its history's last event).
    pub(crate) fn touch(&mut self, id: &NodeId, seq: u64) {
        if let Some(n) = self.get_mut(id) {
            n.updated = seq;
        }
    }
}
