//! The one interface through which an aggregate reads another: small views of nodes, machines, the live spec,
//! credentials, systems and rollouts. It sits below the aggregates and names none of their types; `FleetState`
//! implements it. Rules (`check`), planners and folds take `&dyn FleetRead` for everything outside their own
//! aggregate's state, so no aggregate imports another (`core/tests/tidy.rs` fails on an import cycle between
//! aggregate folders).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::facts::HardwareFacts;
use crate::ids::{Hash, InstanceId, MachineId, NodeId, Timestamp};
use crate::lifecycle::NodeState;
use crate::nixos::SwitchAction;
use crate::spec::{LiveSpec, ResolvedDisk};

/// A node as the other aggregates see it.
#[derive(Clone, Copy, Debug)]
pub struct NodeFacts<'a> {
    pub id: &'a NodeId,
    pub state: NodeState,
    pub machine: &'a MachineId,
    pub pool: Option<&'a str>,
    /// The seq of the event that moved it into `state`.
    pub since: u64,
    /// The seq of the last event about it.
    pub updated: u64,
    /// It is `active` and cordoned: it takes no new instances.
    pub cordoned: bool,
    /// Its drain, while it is `draining`.
    pub drain: Option<DrainFacts>,
}

/// A drain as the other aggregates see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainFacts {
    /// The seq of the event that started it (or last set its terms).
    pub seq: u64,
    pub deadline: Option<Timestamp>,
    pub force: bool,
    /// The seq of its `NodeDrained`.
    pub drained: Option<u64>,
    /// The rollout whose controller started it.
    pub rollout: Option<u64>,
}

impl DrainFacts {
    /// Whatever is left on the node is stopped without waiting for a replacement at `now`: `force` was given,
    /// or the deadline passed.
    pub fn forcing(&self, now: Timestamp) -> bool {
        self.force || self.deadline.is_some_and(|d| now >= d)
    }
}

/// A machine as the other aggregates see it.
#[derive(Clone, Copy, Debug)]
pub struct MachineFacts<'a> {
    pub id: &'a MachineId,
    pub facts: &'a HardwareFacts,
    /// The node bound to it, if any.
    pub node: Option<&'a NodeId>,
    /// The seq of the last event that recorded its facts.
    pub last_seen: u64,
}

/// A node's desired system: the decision that set it.
#[derive(Clone, Copy, Debug)]
pub struct DecisionFacts<'a> {
    /// The seq of the deciding event.
    pub seq: u64,
    pub system: &'a str,
    pub action: SwitchAction,
    /// The rollout that decided, for a wave's or a revert's decision.
    pub rollout: Option<u64>,
}

/// The context a rule judges a proposal in.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    /// The proposal's time (the leader's clock), raised to the last event's: what deadlines are judged against.
    pub now: Timestamp,
    pub actor: &'a crate::ids::Actor,
}

/// What one aggregate may read of the others.
pub trait FleetRead {
    /// The seq of the last event folded in.
    fn seq(&self) -> u64;
    fn node(&self, id: &NodeId) -> Option<NodeFacts<'_>>;
    /// Every node, in id order.
    fn nodes(&self) -> Box<dyn Iterator<Item = NodeFacts<'_>> + '_>;
    fn machine(&self, id: &MachineId) -> Option<MachineFacts<'_>>;
    /// Every machine, in id order.
    fn machines(&self) -> Box<dyn Iterator<Item = MachineFacts<'_>> + '_>;
    fn live_spec(&self) -> Option<&LiveSpec>;
    /// Whether some credential the log knows — a node token or a bootstrap token — has this hash.
    fn credential_in_use(&self, hash: &Hash) -> bool;
    /// The node's desired system, if a decision set one.
    fn decision(&self, node: &NodeId) -> Option<DecisionFacts<'_>>;
    /// The system the node runs, as its agent last reported.
    fn current_system(&self, node: &NodeId) -> Option<&str>;
    /// Why the node is pinned, if it is, and the seq of the `NodePinned`.
    fn pin(&self, node: &NodeId) -> Option<(u64, &str)>;
    /// The node's confirmed decision that waits for a reboot, and the system it boots (`NodeSystem::pending_reboot`).
    fn pending_reboot(&self, node: &NodeId) -> Option<(u64, &str)>;
    /// Whether the node's agent began activating `decision` (reported `SystemActivating` or later for it).
    fn activation_started(&self, node: &NodeId, decision: u64) -> bool;
    /// The open rollout `node` is a member of: its id and pool.
    fn rollout_of(&self, node: &NodeId) -> Option<(u64, &str)>;
    /// The instances the log still has on `node`: assigned, or asked to stop and not yet reported stopped.
    fn instances_on(&self, node: &NodeId) -> Vec<&InstanceId>;
    /// Whether taking the nodes `out` out of service now keeps every service within its disruption budget
    /// (`services::budget`); `Err` names the first service it would not, with its counts.
    fn disruption(&self, out: &BTreeSet<NodeId>) -> Result<(), String>;

    /// The pool's nodes in the live spec that the fleet knows and that are not retired, in name order.
    fn pool_members(&self, pool: &str) -> Vec<NodeId> {
        let Some(live) = self.live_spec() else { return Vec::new() };
        live.spec
            .nodes
            .iter()
            .filter(|(_, n)| n.pool.as_deref() == Some(pool))
            .filter_map(|(name, _)| NodeId::new(name.as_str()).ok())
            .filter(|id| self.node(id).is_some_and(|n| !n.state.is_terminal()))
            .collect()
    }

    /// Whether node `node`'s disk layout fits its machine's disks, as the fleet stands: the layout's name and its
    /// resolved disks, or why the node has no plan.
    fn layout_of(&self, node: &NodeId) -> Result<(String, BTreeMap<String, ResolvedDisk>), PlanUnavailable> {
        let live = self.live_spec().ok_or(PlanUnavailable::NoSpec)?;
        let record = self.node(node).ok_or_else(|| PlanUnavailable::UnknownNode { node: node.clone() })?;
        if !live.spec.nodes.contains_key(node.as_str()) {
            return Err(PlanUnavailable::NotDeclared { node: node.clone() });
        }
        let disks = self.machine(record.machine).map(|m| m.facts.disks.as_slice()).unwrap_or_default();
        let (layout, fit) = crate::spec::layout_fit(&live.spec, node.as_str(), disks)
            .ok_or_else(|| PlanUnavailable::Incomplete { node: node.clone() })?;
        match fit {
            Ok(resolved) => Ok((layout, resolved)),
            Err(reasons) => Err(PlanUnavailable::DoesNotFit {
                node: node.clone(),
                machine: record.machine.clone(),
                layout,
                reasons,
            }),
        }
    }
}

/// Why a node has no install plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanUnavailable {
    /// No spec has been applied.
    NoSpec,
    /// The node has not been bound to a machine.
    UnknownNode { node: NodeId },
    /// The live spec does not declare the node (it was bound by hand under another name).
    NotDeclared { node: NodeId },
    /// The live spec declares the node but leaves its plan undefined (it did not validate).
    Incomplete { node: NodeId },
    /// The layout's selectors do not find the disks they need among the machine's: refused before anything is
    /// written.
    DoesNotFit { node: NodeId, machine: MachineId, layout: String, reasons: Vec<String> },
}

impl fmt::Display for PlanUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanUnavailable::NoSpec => f.write_str("no cluster spec is live; apply one with `sendan apply`"),
            PlanUnavailable::UnknownNode { node } => write!(f, "node {node} is not bound to a machine"),
            PlanUnavailable::NotDeclared { node } => {
                write!(f, "the live spec does not declare node {node}, so it has no install plan")
            }
            PlanUnavailable::Incomplete { node } => {
                write!(f, "the live spec does not define an install plan for node {node}")
            }
            PlanUnavailable::DoesNotFit { node, machine, layout, reasons } => write!(
                f,
                "disk layout '{layout}' of node {node} does not fit the disks of machine {machine}: {}",
                reasons.join("; ")
            ),
        }
    }
}
