//! The pool rollout aggregate: a pool moving to a new system in waves, within a budget, halted and put back when
//! members fail. `events.rs` holds its events, `planner.rs` where each member stands and what the controller
//! proposes next (the same pure functions `rules.rs` checks its events with), `fold.rs` how `evolve` records
//! them, `view.rs` what `sendan rollout status` shows. The members' systems are the node systems aggregate's; a
//! wave's decisions reach it through `fleet`, and its reports come back the same way.

/// The name the rollout controller proposes under (`system:rollout`).
pub const CONTROLLER: &str = "rollout";

pub mod events;
pub mod fold;
pub mod planner;
pub mod rules;
pub mod view;

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, Timestamp};
use crate::nixos::SwitchAction;

/// Every rollout, and the open one of each pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutsState {
    /// Every rollout, by id (the seq of its `RolloutStarted`).
    pub rollouts: OrdMap<u64, Arc<Rollout>>,
    /// The rollout of each pool that has not ended (running or reverting).
    pub open: OrdMap<String, u64>,
}

impl RolloutsState {
    pub fn get(&self, id: u64) -> Option<&Rollout> {
        self.rollouts.get(&id).map(Arc::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Rollout> {
        self.rollouts.get_mut(&id).map(Arc::make_mut)
    }

    /// The rollout of `pool` that has not ended.
    pub fn open_for(&self, pool: &str) -> Option<&Rollout> {
        self.open.get(pool).and_then(|id| self.get(*id))
    }

    /// The open rollout `node` is a member of.
    pub fn of_node(&self, node: &NodeId) -> Option<&Rollout> {
        self.open.values().filter_map(|id| self.get(*id)).find(|r| r.members.contains(node))
    }

    /// The open rollouts.
    pub fn open(&self) -> impl Iterator<Item = &Rollout> {
        self.open.values().filter_map(|id| self.get(*id))
    }
}

impl Rollout {
    /// The wave member `node`, with its wave.
    pub fn moved(&self, node: &NodeId) -> Option<(&Wave, &WaveNode)> {
        self.waves.iter().find_map(|w| w.nodes.iter().find(|wn| &wn.node == node).map(|wn| (w, wn)))
    }

    pub(crate) fn moved_mut(&mut self, node: &NodeId) -> Option<&mut WaveNode> {
        self.waves.iter_mut().flat_map(|w| w.nodes.iter_mut()).find(|wn| &wn.node == node)
    }
}

/// A pool rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The seq of its `RolloutStarted`.
    pub id: u64,
    pub pool: String,
    pub system: String,
    pub action: SwitchAction,
    pub max_unavailable: u32,
    pub canary: u32,
    pub max_failures: u32,
    pub health_timeout_secs: u32,
    pub started_at: Timestamp,
    /// The pool's nodes when it started, in name order.
    pub members: Vec<NodeId>,
    pub waves: Vec<Wave>,
    pub state: RolloutState,
    /// Why it was halted.
    pub reason: Option<String>,
    /// The seq of the event that halted it, and of the event that ended it.
    pub halted: Option<u64>,
    pub ended: Option<u64>,
    /// Revert batches: the seq and time of each `RolloutHalted` / `RolloutNodesReverted` that reverted nodes.
    pub reverts: Vec<(u64, Timestamp)>,
    /// The operator asked it to drain each member first (`--drain`), whatever its action.
    pub drain: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    /// Moving members wave by wave.
    Running,
    /// Halted: putting moved members back, within the budget.
    Reverting,
    /// Every eligible member runs the rollout's system.
    Completed,
    /// Halted, and every moved member was put back (or could not be).
    Reverted,
}

impl RolloutState {
    pub fn is_open(self) -> bool {
        matches!(self, RolloutState::Running | RolloutState::Reverting)
    }

    pub fn name(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Reverting => "reverting",
            RolloutState::Completed => "completed",
            RolloutState::Reverted => "reverted",
        }
    }
}

/// One wave: the members it moved, at `seq` (their decision) and `time`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    pub number: u32,
    pub seq: u64,
    pub time: Timestamp,
    /// A canary wave: it started before any member had confirmed the rollout's system. A failure in it halts
    /// the rollout whatever `max_failures` says.
    pub canary: bool,
    pub nodes: Vec<WaveNode>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveNode {
    pub node: NodeId,
    /// What the node wanted before the wave, put back by a revert (`None`: nothing known to put back).
    pub previous: Option<String>,
    pub previous_action: SwitchAction,
    pub outcome: MemberOutcome,
    /// The seq of the report (or the event) that settled `outcome`; 0 while it is in flight.
    pub settled: u64,
    /// The revert of this node, once decided.
    pub revert: Option<Revert>,
}

/// A moved member put back on what it wanted before its wave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revert {
    /// The seq of the reverting decision (a `RolloutHalted` or `RolloutNodesReverted`).
    pub decision: u64,
    pub outcome: MemberOutcome,
    /// The seq of the report that settled `outcome`; 0 while it is in flight.
    pub settled: u64,
}

/// How a member's decision (the wave's, or its revert) went, from its agent's reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberOutcome {
    /// Decided; no final report yet.
    InFlight,
    /// The agent confirmed the system.
    Confirmed,
    /// The attempt failed. `healthy`: the node is back on a working system (rolled back, or never switched).
    Failed { healthy: bool, why: String },
    /// Another decision replaced this one, or the node was pinned before its agent started: it left the rollout.
    Left { why: String },
}
