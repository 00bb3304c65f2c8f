//! Node system events: which system a node should run (an operator's choice; the spec and pool rollouts decide
//! too, with their own events), pinning, and what the node's `sendan-agent nix` reports at every step of an
//! activation.
//!
//! A *decision* is the event that last set a node's desired system; its seq identifies it. Every agent report
//! names the decision it acts on, so reports, rollouts and confirmations refer to one activation unambiguously.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::emitters::Emitters;
use crate::ids::NodeId;
pub use crate::nixos::{SwitchAction, SystemKind, switch_succeeded, system_kind};

/// An operator chose the node's system explicitly (`sendan node set-system`). Operator only. Keeps: the system
/// is a store path or a flake reference; the node exists, is not retired, is not pinned and is in no running
/// rollout. It becomes the node's desired system (a decision).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSystemSet {
    pub node: NodeId,
    pub system: String,
    #[serde(default)]
    pub action: SwitchAction,
}
about_node!(NodeSystemSet, Emitters::NONE);

/// The node is pinned: its agent and the rollout controller leave its system alone until it is unpinned
/// (an activation already under way still finishes). Operator only. Keeps: the node exists and is not pinned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePinned {
    pub node: NodeId,
    /// Why, for the next operator.
    pub reason: String,
}
about_node!(NodePinned, Emitters::NONE);

/// The node follows its desired system again. Operator only. Keeps: the node is pinned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeUnpinned {
    pub node: NodeId,
}
about_node!(NodeUnpinned, Emitters::NONE);

/// The agent says which system the node runs (`/run/current-system`) and booted (`/run/booted-system`), when it
/// starts and whenever that differs from what the log says. Node agent. Keeps: the paths are store paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemReported {
    pub node: NodeId,
    pub current: Option<String>,
    pub booted: Option<String>,
}
about_node!(SystemReported, Emitters::NODE);

/// The agent fetched the decided system's closure (a store path from the substituters, signatures checked, or a
/// flake output built). Node agent. Keeps: `decision` is the node's desired decision and `system` its system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemPrefetched {
    pub node: NodeId,
    pub decision: u64,
    pub system: String,
    /// The store path fetched (for a flake, the one it built).
    pub path: String,
}
about_node!(SystemPrefetched, Emitters::NODE);

/// The closure could not be fetched (unreachable or unsigned substituters, wrong signatures, a failed build);
/// nothing was activated and the agent gives this decision up. Node agent. Keeps: as `SystemPrefetched`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemPrefetchFailed {
    pub node: NodeId,
    pub decision: u64,
    pub system: String,
    pub error: String,
}
about_node!(SystemPrefetchFailed, Emitters::NODE);

/// The agent is about to activate `path`, remembering `previous` (the running system) to roll back to. The
/// agent touches nothing before the log accepts this, so the control plane can still refuse an activation.
/// Node agent. Keeps: `decision` is the node's desired decision; the node is not pinned; no other activation of
/// the node is unfinished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemActivating {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub action: SwitchAction,
    pub previous: Option<String>,
}
about_node!(SystemActivating, Emitters::NODE);

/// The system profile now points at `path` (`nix-env --profile … --set`). Node agent. Keeps: it belongs to the
/// node's unfinished activation of `decision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemProfileSet {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub profile: String,
}
about_node!(SystemProfileSet, Emitters::NODE);

/// `switch-to-configuration` finished: exit 0 (ok) or 100 (ok, reboot required) succeed; 1 (error),
/// 2 (activation failed), 4 (units failed) and anything else (or a timeout, reported as -1) fail and lead to a
/// rollback. `reboot_required` also compares the booted kernel, initrd and modules with the new ones. Node agent.
/// Keeps: it belongs to the node's unfinished activation of `decision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemSwitched {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub exit_code: i32,
    pub reboot_required: bool,
}
about_node!(SystemSwitched, Emitters::NODE);

impl SystemSwitched {
    pub fn succeeded(&self) -> bool {
        switch_succeeded(self.exit_code)
    }
}

/// The health gate failed within its deadline (systemd units, HTTP probes, commands). The agent rolls back next.
/// Node agent. Keeps: it belongs to the node's unfinished activation of `decision`, whose switch succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemHealthFailed {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub failures: Vec<String>,
}
about_node!(SystemHealthFailed, Emitters::NODE);

/// The node runs its decided system, healthy: the confirmation round-trip. Accepting it is the control plane's
/// acknowledgement; an agent that gets none within its deadline rolls back. `switched` is false when the node
/// already ran the system and nothing was activated. Node agent. Keeps: with `switched`, it finishes the node's
/// unfinished activation of `decision`, whose switch succeeded; without, `decision` is the node's desired one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemConfirmed {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub switched: bool,
}
about_node!(SystemConfirmed, Emitters::NODE);

/// The agent re-activated the remembered system `to` (profile reset, `<to>/bin/switch-to-configuration`) after
/// the activation of `decision` failed, timed out or lost its confirmation. `exit_code` is the rollback switch's;
/// when it is not 0 or 100 the node needs an operator. Node agent. Keeps: it belongs to the node's activation of
/// `decision`, which it finishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemRolledBack {
    pub node: NodeId,
    pub decision: u64,
    pub path: String,
    pub to: String,
    pub reason: String,
    pub exit_code: i32,
}
about_node!(SystemRolledBack, Emitters::NODE);
