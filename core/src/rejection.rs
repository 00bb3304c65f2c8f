//! Why the log refused a proposal: business rejections, each with a stable machine-readable code and a
//! sentence a person can act on. Infrastructure failures are a different type, in the crates that do I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::ids::{Actor, Hash, MachineId, NodeId};
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
        }
    }
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
