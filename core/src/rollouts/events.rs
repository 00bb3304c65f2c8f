//! Pool rollout events: a pool starts moving to a new system, waves move its members, a halt puts them back in
//! budgeted batches, members leave, and the rollout ends completed or reverted. The rules are in `rules.rs`, the
//! planner that proposes them in `planner.rs`.
//!
//! Stored format: every struct here is postcard-encoded in the log; changes get a new record version and an
//! upgrade in `crate::upgrade`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::emitters::{Emitters, EventData};
use crate::ids::NodeId;
use crate::nixos::SwitchAction;

/// A pool starts moving to a new system (`sendan rollout start`); the rollout's id is this event's seq. Operator
/// only. Keeps: a live spec declares the pool and it has active members; no other rollout of the pool is running;
/// `1 ≤ max_unavailable`, `canary ≤ max_unavailable`, `health_timeout_secs ≥ 1`; the system is valid. Its members
/// are fixed now: the pool's nodes in the live spec, in name order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutStarted {
    pub pool: String,
    pub system: String,
    #[serde(default)]
    pub action: SwitchAction,
    /// At most this many members are away from a healthy system at once.
    pub max_unavailable: u32,
    /// How many members go first, alone, before any other member moves; a failing canary stops the rollout.
    #[serde(default)]
    pub canary: u32,
    /// Failed members tolerated after the canaries; one more stops the rollout and reverts the pool.
    #[serde(default)]
    pub max_failures: u32,
    /// How long a member of a wave has to confirm its new system before it counts as failed.
    pub health_timeout_secs: u32,
}

impl EventData for RolloutStarted {
    const EMITTERS: Emitters = Emitters::NONE;
}

/// The rollout controller moved a wave of members to the rollout's system: each one's desired system is now the
/// rollout's (a decision at this seq), and what it wanted before is remembered for a revert. System (the rollout
/// controller) or operator. Keeps: the rollout is running; waves are numbered 1, 2, … in order; every earlier
/// wave has settled; the nodes are members not yet moved, active and not pinned; the first wave holds at most
/// `canary` nodes when there are canaries; the wave plus the members already unhealthy fit in `max_unavailable`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutWaveStarted {
    pub rollout: u64,
    pub wave: u32,
    pub nodes: Vec<NodeId>,
}

impl EventData for RolloutWaveStarted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// Every member that was not skipped runs the rollout's system. System (the rollout controller). Keeps: the
/// rollout is running, no member is pending or in flight, and failures stayed within `max_failures`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutCompleted {
    pub rollout: u64,
}

impl EventData for RolloutCompleted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// The rollout stops moving members: a canary failed, more than `max_failures` members failed, the budget is used
/// up by unhealthy members, or an operator halted it (`sendan rollout abort`). It turns to reverting: the moved
/// members not confirmed on the new system, listed in `revert`, are put back at once (a decision at this seq: what
/// each wanted before its wave); confirmed ones follow in `RolloutNodesReverted` batches; members never moved keep
/// their system. System (the rollout controller) or operator (`POST /v1/rollouts/{id}/abort` fills `revert` in).
/// Keeps: the rollout is running; `revert` is exactly the moved members still moving or failed on the rollout's
/// decision (`rollouts::planner::halt_reverts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutHalted {
    pub rollout: u64,
    pub reason: String,
    /// The members put back at once, in name order. (Records of releases before this field carry none; the
    /// upgrader derives the list as that release's fold did.)
    #[serde(default)]
    pub revert: Vec<NodeId>,
}

impl EventData for RolloutHalted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// A halted rollout puts a batch of confirmed members back on what they wanted before (decisions at this seq).
/// System (the rollout controller) or operator. Keeps: the rollout is reverting; the nodes are members confirmed
/// on the rollout's decision (still theirs) and not yet put back; the batch plus the members already unavailable
/// fit in `max_unavailable`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutNodesReverted {
    pub rollout: u64,
    pub nodes: Vec<NodeId>,
}

impl EventData for RolloutNodesReverted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// A halted rollout ended: no moved member is left to put back or still being put back. System (the rollout
/// controller) or operator. Keeps: the rollout is reverting and nothing of it is in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutReverted {
    pub rollout: u64,
}

impl EventData for RolloutReverted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// The operator asks the pool's open rollout, which has not started a wave yet, to drain each member before
/// its wave and uncordon it once it confirms — as a rollout whose action needs a reboot does (`sendan rollout start
/// --drain`, submitted in one batch with its `RolloutStarted`). Operator. Keeps: the pool has an open rollout, it is
/// running and has started no wave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutDrainsMembers {
    pub pool: String,
}

impl EventData for RolloutDrainsMembers {
    const EMITTERS: Emitters = Emitters::NONE;
}

/// A member leaves its rollout: its node was pinned before its agent started on the wave's decision, or another
/// decision (a new spec) replaced the rollout's. The rollout neither counts it nor puts it back. System (the
/// rollout controller). Keeps: the rollout is open, the node is a member still counted, and the reason holds
/// (`rollouts::planner::leaving`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutMemberLeft {
    pub rollout: u64,
    pub node: NodeId,
    pub why: String,
}

impl EventData for RolloutMemberLeft {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}
