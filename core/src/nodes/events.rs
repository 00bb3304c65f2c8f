//! Node lifecycle and access events: a machine is bound to a node, installed, run, drained, rescued,
//! reprovisioned, failed and retired, and a node is given its token. The legal moves between states are in
//! [`crate::lifecycle`]; the rules are in `rules.rs`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::emitters::{Emitters, EventData};
use crate::ids::{Hash, MachineId, NodeId, Timestamp};

/// A discovered machine was bound to a declared node id (by an enrollment rule, or by hand with
/// `sendan node accept`). Keeps: one machine ↔ one node id; a node id is never reused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCommissioned {
    pub node: NodeId,
    pub machine: MachineId,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    /// The enrollment rule that matched, when a rule did the binding.
    #[serde(default)]
    pub rule: Option<String>,
}

impl EventData for NodeCommissioned {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
    fn machine(&self) -> Option<&MachineId> {
        Some(&self.machine)
    }
}

/// The node should be (re)installed: its install plan may now be handed out. Operator or system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeInstallRequested {
    pub node: NodeId,
}
about_node!(NodeInstallRequested, Emitters::SYSTEM);

/// The installer began writing the node's disks. Emitted by the installer on the node (with its bootstrap
/// token, or the node's token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeInstallStarted {
    pub node: NodeId,
}
about_node!(NodeInstallStarted, Emitters::NODE.or(Emitters::BOOTSTRAP));

/// The install could not finish; the node needs an operator (rescue or reprovision). Installer (bootstrap or
/// node token) or system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeInstallFailed {
    pub node: NodeId,
    pub reason: String,
}
about_node!(NodeInstallFailed, Emitters::NODE.or(Emitters::SYSTEM).or(Emitters::BOOTSTRAP));

/// The node booted its installed system and checked in (first boot, or leaving rescue). Node agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeActivated {
    pub node: NodeId,
}
about_node!(NodeActivated, Emitters::NODE);

/// Stop placing work on the node and move what runs there away, with no deadline: a drain as
/// [`NodeDrainStarted`] without one (the form of releases before it, still accepted). Operator or system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDrainRequested {
    pub node: NodeId,
}
about_node!(NodeDrainRequested, Emitters::SYSTEM);

/// A draining or cordoned node takes work again: it is `active` and uncordoned, and a drain in progress ends
/// (instances already handed over stay where they went). Operator or system. Keeps: the node is draining, or
/// active and cordoned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeUncordoned {
    pub node: NodeId,
}
about_node!(NodeUncordoned, Emitters::SYSTEM);

/// The node takes no new instances; what runs there stays (`sendan node cordon`). Not a lifecycle move: the node
/// stays `active`. Operator or system. Keeps: the node is active and not cordoned already.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCordoned {
    pub node: NodeId,
    pub reason: String,
}
about_node!(NodeCordoned, Emitters::SYSTEM);

/// A drain with its terms (`sendan node drain`): the node takes no new instances and each one there is handed
/// over to a replacement elsewhere under its service's migrate limit (`update.maxParallel` at a time, the old
/// one stopped only once the replacement has been healthy for `minHealthySeconds`). At `deadline`, or at once
/// with `force`, whatever is left is stopped without waiting, and the stop requests say so. The node is drained
/// (`NodeDrained`) when its agent has reported every instance stopped. Operator or system. Keeps: the node is
/// active, or already draining (the new terms replace the old: a deadline moved, `force` given); a deadline is
/// not before the proposal's time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDrainStarted {
    pub node: NodeId,
    /// When whatever is left is stopped without waiting for its replacement; none: no deadline.
    #[serde(default)]
    pub deadline: Option<Timestamp>,
    /// Stop everything now, without waiting for replacements.
    #[serde(default)]
    pub force: bool,
}
about_node!(NodeDrainStarted, Emitters::SYSTEM);

/// A draining node's agent reported every instance that ran there stopped: nothing of the services runs on it
/// any more — not merely asked to stop. System (the scheduler). Keeps: the node is draining, not drained yet,
/// and the log assigns no instance to it that its agent has not reported stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDrained {
    pub node: NodeId,
}
about_node!(NodeDrained, Emitters::SYSTEM);

/// Wipe and install the node again on the same hardware. Operator only; a node must be drained first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeReprovisionRequested {
    pub node: NodeId,
}
about_node!(NodeReprovisionRequested, Emitters::NONE);

/// Boot the node into the rescue image on its next boot. Operator only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRescueRequested {
    pub node: NodeId,
}
about_node!(NodeRescueRequested, Emitters::NONE);

/// The node is broken and out of service. Operator, system (health) or the node itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeFailed {
    pub node: NodeId,
    pub reason: String,
}
about_node!(NodeFailed, Emitters::NODE.or(Emitters::SYSTEM));

/// The node leaves the fleet for good; `retired` is terminal and its id is never reused. Operator only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRetired {
    pub node: NodeId,
}
about_node!(NodeRetired, Emitters::NONE);

/// Replacement hardware: the node is bound to another discovered machine, and the old machine is
/// released. The node goes back to `commissioned` to be installed on the new machine. Operator only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRebound {
    pub node: NodeId,
    pub machine: MachineId,
}

impl EventData for NodeRebound {
    const EMITTERS: Emitters = Emitters::NONE;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
    fn machine(&self) -> Option<&MachineId> {
        Some(&self.machine)
    }
}

/// A node token was issued; it replaces the node's previous token, which stops working. Operator
/// (`sendan node token`) or system (the bootstrap exchange). Keeps: the node exists and is not retired; a
/// token hash belongs to one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeTokenIssued {
    pub node: NodeId,
    /// sha256 of the token; the token itself is given to the node once and never stored.
    pub token: Hash,
}

impl EventData for NodeTokenIssued {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}
