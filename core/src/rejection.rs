//! Why the log refused a proposal: business rejections, each with a stable machine-readable code and a
//! sentence a person can act on. Infrastructure failures are a different type, in the crates that do I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{Actor, Hash, MachineId, NodeId};
use crate::kind::EventKind;
use crate::lifecycle::NodeState;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    #[error(
        "node {node} is `{state}`; `{event}` needs {}; allowed now: {}",
        one_of(needs),
        if allowed.is_empty() { "nothing (the state is terminal)".to_owned() } else { all_of(allowed) }
    )]
    IllegalTransition {
        node: NodeId,
        state: NodeState,
        event: EventKind,
        needs: Vec<NodeState>,
        allowed: Vec<EventKind>,
    },

    #[error("node {node} does not exist; `{event}` needs a commissioned node (bind a machine to it first)")]
    UnknownNode { node: NodeId, event: EventKind },

    #[error("node {node} already exists and is `{state}`; a node id is bound to one machine and never reused")]
    NodeExists { node: NodeId, state: NodeState },

    #[error("machine {machine} has not been discovered; it must phone home (`MachineDiscovered`) first")]
    UnknownMachine { machine: MachineId },

    #[error("machine {machine} is already bound to node {node}; use `NodeRebound` to move a node to new hardware")]
    MachineBound { machine: MachineId, node: NodeId },

    #[error("node {node} is already bound to machine {machine}")]
    SameMachine { node: NodeId, machine: MachineId },

    #[error("node {node} is retired; `{event}` needs a node that is not")]
    NodeRetired { node: NodeId, event: EventKind },

    /// The actor may not emit this event (answered with 403, not 409).
    #[error("{actor} may not submit `{event}`: {why}")]
    Forbidden { actor: Actor, event: EventKind, why: String },

    #[error("the cluster spec is invalid: {reason}")]
    InvalidSpec { reason: String },

    #[error("spec {digest} is already the live spec (applied at seq {seq}); nothing to apply")]
    SpecUnchanged { digest: Hash, seq: u64 },

    // Systems and rollouts (fleet/systems.rs, rollout.rs).
    /// Answered with 400: the system string itself is malformed.
    #[error("`{system}` is not a system to run: {why}")]
    InvalidSystem { system: String, why: String },

    #[error("node {node} is pinned ({reason}); unpin it with `sendan node unpin {node}` first")]
    NodePinned { node: NodeId, reason: String },

    #[error("node {node} is not pinned")]
    NodeNotPinned { node: NodeId },

    #[error(
        "node {node} is a member of rollout {rollout} of pool {pool}, which decides its system; wait for it to end or halt it with `sendan rollout abort {pool}`"
    )]
    NodeInRollout { node: NodeId, rollout: u64, pool: String },

    #[error("`{event}` names decision {decision}, but node {node}'s desired system was decided {}; the agent re-reads it", desired.map(|d| format!("at seq {d}")).unwrap_or_else(|| "by nothing yet".into()))]
    StaleDecision { node: NodeId, event: EventKind, decision: u64, desired: Option<u64> },

    #[error("`{event}` does not fit node {node}'s activation of decision {decision}: {why}")]
    NoActivation { node: NodeId, event: EventKind, decision: u64, why: String },

    #[error("pool {pool} cannot be rolled out: {why}")]
    UnknownPool { pool: String, why: String },

    #[error(
        "pool {pool} already has rollout {rollout}, which is {state}; wait for it to end or halt it with `sendan rollout abort {pool}`"
    )]
    RolloutOpen { pool: String, rollout: u64, state: String },

    /// Answered with 400: the rollout's parameters are inconsistent.
    #[error("the rollout is not valid: {reason}")]
    InvalidRollout { reason: String },

    #[error("rollout {rollout} does not exist")]
    UnknownRollout { rollout: u64 },

    #[error("`{event}` for rollout {rollout} is refused: {reason}")]
    RolloutRefused { rollout: u64, event: EventKind, reason: String },

    // Bootstrap and enrollment (fleet/bootstrap.rs).
    /// Answered with 403: a bootstrap token phones home once.
    #[error(
        "this bootstrap token was already used: machine {machine} phoned home with it at seq {seq}; a bootstrap token works once, so netboot the machine again for a new one"
    )]
    BootstrapTokenUsed { machine: MachineId, seq: u64 },

    /// Answered with 403.
    #[error("the bootstrap token cannot be used: {why}")]
    BootstrapTokenRefused { why: String },

    #[error(
        "disk layout '{layout}' of node {node} does not fit the disks of machine {machine}: {}; nothing was written — change the layout or the hardware",
        reasons.join("; ")
    )]
    LayoutDoesNotFit { node: NodeId, machine: MachineId, layout: String, reasons: Vec<String> },

    #[error("`{event}` was decided on spec {spec}, but spec {live} is live now; it is decided again on the live spec")]
    StaleSpec { event: EventKind, spec: Hash, live: String },

    #[error("`{event}` does not hold: {why}")]
    DecisionDoesNotHold { event: EventKind, why: String },

    #[error("token hash {token} is already in use; generate a new token")]
    TokenInUse { token: Hash },

    /// Answered with 400: a field of the event is malformed.
    #[error("`{event}` is malformed: {why}")]
    MalformedEvent { event: EventKind, why: String },

    /// Answered with 403: a phone-home spoke for a machine its bootstrap token does not prove it is.
    #[error("the phone-home is refused: {refusal}")]
    IdentityRefused { refusal: IdentityRefusal },

    #[error("`{event}` for node {node} is refused: {why}")]
    NodeRefused { node: NodeId, event: EventKind, why: String },

    /// A voluntary disruption (a wave, a revert batch, a reprovision, a retirement) would take a service below
    /// its disruption budget.
    #[error("`{event}` would break a disruption budget: {why}")]
    OverBudget { event: EventKind, why: String },

    // Services and node agents (services/).
    #[error("`{event}` of service {service} on node {node} is refused: {}", reasons.join("; "))]
    PlacementRefused { service: String, node: NodeId, event: EventKind, reasons: Vec<String> },

    #[error("`{event}` for service {service} is refused: {reason}")]
    ServiceRefused { service: String, event: EventKind, reason: String },

    #[error("`{event}` for instance {instance} is refused: {reason}")]
    InstanceRefused { instance: crate::ids::InstanceId, event: EventKind, reason: String },

    #[error("`{event}` for node {node}'s agent is refused: {reason}")]
    AgentRefused { node: NodeId, event: EventKind, reason: String },

    /// Answered with 409: an event id is an idempotency key for one event, not a name to reuse.
    #[error(
        "event id {id} was already applied at seq {seq} with different content; an id names one event — resend the original to get its receipt, or use a new id"
    )]
    IdReused { id: crate::ids::EventId, seq: u64 },
}

impl Rejection {
    /// The stable, machine-readable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::IllegalTransition { .. } => "illegal_transition",
            Rejection::UnknownNode { .. } => "unknown_node",
            Rejection::NodeExists { .. } => "node_exists",
            Rejection::UnknownMachine { .. } => "unknown_machine",
            Rejection::MachineBound { .. } => "machine_bound",
            Rejection::SameMachine { .. } => "same_machine",
            Rejection::NodeRetired { .. } => "node_retired",
            Rejection::Forbidden { .. } => "forbidden",
            Rejection::InvalidSpec { .. } => "invalid_spec",
            Rejection::SpecUnchanged { .. } => "spec_unchanged",
            Rejection::InvalidSystem { .. } => "invalid_system",
            Rejection::NodePinned { .. } => "node_pinned",
            Rejection::NodeNotPinned { .. } => "node_not_pinned",
            Rejection::NodeInRollout { .. } => "node_in_rollout",
            Rejection::StaleDecision { .. } => "stale_decision",
            Rejection::NoActivation { .. } => "no_activation",
            Rejection::UnknownPool { .. } => "unknown_pool",
            Rejection::RolloutOpen { .. } => "rollout_open",
            Rejection::InvalidRollout { .. } => "invalid_rollout",
            Rejection::UnknownRollout { .. } => "unknown_rollout",
            Rejection::RolloutRefused { .. } => "rollout_refused",
            Rejection::BootstrapTokenUsed { .. } => "bootstrap_token_used",
            Rejection::BootstrapTokenRefused { .. } => "bootstrap_token_refused",
            Rejection::LayoutDoesNotFit { .. } => "layout_does_not_fit",
            Rejection::StaleSpec { .. } => "stale_spec",
            Rejection::DecisionDoesNotHold { .. } => "decision_does_not_hold",
            Rejection::TokenInUse { .. } => "token_in_use",
            Rejection::MalformedEvent { .. } => "malformed_event",
            Rejection::IdentityRefused { .. } => "identity_refused",
            Rejection::IdReused { .. } => "id_reused",
            Rejection::PlacementRefused { .. } => "placement_refused",
            Rejection::ServiceRefused { .. } => "service_refused",
            Rejection::InstanceRefused { .. } => "instance_refused",
            Rejection::AgentRefused { .. } => "agent_refused",
            Rejection::NodeRefused { .. } => "node_refused",
            Rejection::OverBudget { .. } => "over_budget",
        }
    }
}

/// Why a phone-home with a bootstrap token for the NIC `mac` may not speak for the machine its facts describe.
/// A bootstrap token proves only that its holder netbooted (or asked the netboot endpoint) with that MAC, so a
/// phone-home may speak for a machine that is new, or for the one the log already associates with that MAC — and
/// then only while its node is to be installed. Anything else is a claim the token does not back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum IdentityRefusal {
    #[error("the facts do not list the NIC with MAC {mac}, which the bootstrap token was issued for")]
    NicNotReported { mac: String },
    #[error(
        "the facts identify machine {machine}, which the log knows by other NICs, not by MAC {mac}; if its NIC was \
         replaced, an operator accepts the new facts (`sendan machines --refused`, then `sendan machines --accept-refused ID`)"
    )]
    NotThisMachinesNic { machine: MachineId, mac: String },
    #[error(
        "MAC {mac} belongs to machine {owner}, but the facts identify machine {machine}; if the board was replaced, an \
         operator binds the node to the new machine (`sendan node rebind`)"
    )]
    NicOfAnotherMachine { mac: String, owner: MachineId, machine: MachineId },
    #[error("the facts claim the {what} `{value}` of machine {owner}, and a bootstrap token cannot prove that")]
    IdentityOfAnotherMachine { what: String, value: String, owner: MachineId },
    #[error(
        "machine {machine} is bound to node {node}, which is `{state}`: it boots from its disk, and no installer speaks \
         for it (reprovision the node first)"
    )]
    NodeNotInstalling { machine: MachineId, node: NodeId, state: NodeState },
}

fn backticked<T: fmt::Display>(items: &[T]) -> Vec<String> {
    items.iter().map(|i| format!("`{i}`")).collect()
}

/// "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
pub(crate) fn one_of<T: fmt::Display>(items: &[T]) -> String {
    let v = backticked(items);
    match v.len() {
        0 => "nothing".to_owned(),
        1 => v[0].clone(),
        2 => format!("{} or {}", v[0], v[1]),
        _ => format!("one of {}", v.join(", ")),
    }
}

pub(crate) fn all_of<T: fmt::Display>(items: &[T]) -> String {
    backticked(items).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn illegal_transition_reads_like_a_sentence() {
        let r = Rejection::IllegalTransition {
            node: NodeId::new("n-17").unwrap(),
            state: NodeState::Installing,
            event: EventKind::NodeDrainRequested,
            needs: vec![NodeState::Active],
            allowed: vec![EventKind::NodeInstallFailed, EventKind::NodeActivated],
        };
        assert_eq!(
            r.to_string(),
            "node n-17 is `installing`; `NodeDrainRequested` needs `active`; \
             allowed now: `NodeInstallFailed`, `NodeActivated`"
        );
        assert_eq!(r.code(), "illegal_transition");
    }
}
