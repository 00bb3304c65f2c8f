//! A node's NixOS system and rollouts on the wire.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::NodeId;
use crate::lifecycle::NodeState;
use crate::nixos::SwitchAction;
use crate::rollouts::view::RolloutView;
use crate::systems::{self, AttemptPhase, Source};

/// One node's system: what it should run, whether it is pinned, what it runs, and its latest attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeSystem {
    pub desired: Option<Desired>,
    pub pinned: Option<Pin>,
    /// The running system, as the agent last reported or confirmed it.
    pub current: Option<String>,
    /// The booted system, as the agent last reported it.
    pub booted: Option<String>,
    /// The latest decision the agent acted on.
    pub attempt: Option<Attempt>,
    /// The seq of the last event about the node's system.
    pub updated: u64,
}

/// A decision: the system a node should run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Desired {
    /// The seq of the deciding event; agent reports name it.
    pub seq: u64,
    /// A store path or a flake reference.
    pub system: String,
    pub action: SwitchAction,
    /// Who decided: `spec`, `operator`, `rollout` or `revert`.
    pub source: Source,
    /// The rollout that decided, for `rollout` and `revert` decisions.
    pub rollout: Option<u64>,
}

/// An operator's pin: the node keeps its system until unpinned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pin {
    pub seq: u64,
    pub reason: String,
}

/// How far the agent got with one decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    /// The seq of the decision it acts on.
    pub decision: u64,
    /// The store path being activated (known once prefetched).
    pub path: Option<String>,
    pub action: SwitchAction,
    /// The system remembered to roll back to.
    pub previous: Option<String>,
    pub phase: AttemptPhase,
    /// The last `switch-to-configuration` exit code (of the rollback, once rolled back).
    pub exit_code: Option<i32>,
    pub reboot_required: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The seq of the attempt's latest report.
    pub updated: u64,
}

impl From<&systems::Desired> for Desired {
    fn from(d: &systems::Desired) -> Desired {
        let systems::Desired { seq, system, action, source, rollout } = d;
        Desired { seq: *seq, system: system.clone(), action: *action, source: *source, rollout: *rollout }
    }
}

impl From<&systems::Pin> for Pin {
    fn from(p: &systems::Pin) -> Pin {
        let systems::Pin { seq, reason } = p;
        Pin { seq: *seq, reason: reason.clone() }
    }
}

impl From<&systems::Attempt> for Attempt {
    fn from(a: &systems::Attempt) -> Attempt {
        let systems::Attempt { decision, path, action, previous, phase, exit_code, reboot_required, error, updated } =
            a;
        Attempt {
            decision: *decision,
            path: path.clone(),
            action: *action,
            previous: previous.clone(),
            phase: *phase,
            exit_code: *exit_code,
            reboot_required: *reboot_required,
            error: error.clone(),
            updated: *updated,
        }
    }
}

impl From<&systems::NodeSystem> for NodeSystem {
    fn from(s: &systems::NodeSystem) -> NodeSystem {
        let systems::NodeSystem { desired, pinned, current, booted, attempt, updated } = s;
        NodeSystem {
            desired: desired.as_ref().map(Desired::from),
            pinned: pinned.as_ref().map(Pin::from),
            current: current.clone(),
            booted: booted.clone(),
            attempt: attempt.as_ref().map(Attempt::from),
            updated: *updated,
        }
    }
}

/// `GET /v1/nodes/{id}/system`: the node's desired and running system, pin and latest attempt, and where to fetch
/// closures from — what its `sendan-agent nix` acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeSystemView {
    pub seq: u64,
    pub node: NodeId,
    /// The node's lifecycle state.
    pub state: NodeState,
    pub system: NodeSystem,
    /// The live spec's `bootstrap.substituters` and `bootstrap.trustedPublicKeys`.
    pub substituters: Vec<String>,
    pub trusted_public_keys: Vec<String>,
    /// The open rollout the node is a member of.
    pub rollout: Option<u64>,
    /// A confirmed system that takes effect at a reboot the node has not had yet.
    #[serde(default)]
    pub reboot: Option<RebootView>,
}

/// A reboot a node waits for (`NodeSystem::pending_reboot`). Its agent reboots it only once the node is drained
/// (`drained`): by the rollout that moved it, or by an operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RebootView {
    /// The confirmed decision.
    pub decision: u64,
    /// The store path the reboot boots.
    pub system: String,
    /// The node is drained: nothing runs on it, and its agent may reboot it now.
    pub drained: bool,
}

/// `GET /v1/rollouts`: every rollout, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RolloutsView {
    pub seq: u64,
    pub rollouts: Vec<RolloutView>,
}

/// `POST /v1/rollouts/{id}/abort`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    /// Why, for the audit trail and `sendan rollout status`.
    pub reason: String,
    /// The event id to record the halt with (a retry sends the same one).
    pub id: Option<crate::ids::EventId>,
}
