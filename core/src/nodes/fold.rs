//! How `evolve` records the node lifecycle's events: rule-free — what `check` accepted is written down, and a
//! record the event names that does not exist is left alone.

use std::sync::Arc;

use super::events::{NodeCommissioned, NodeTokenIssued};
use super::{NodeRecord, NodesState};
use crate::ids::{MachineId, NodeId};
use crate::kind::EventKind;
use crate::lifecycle;

pub fn commissioned(nodes: &mut NodesState, seq: u64, p: &NodeCommissioned) {
    nodes.records.insert(
        p.node.clone(),
        Arc::new(NodeRecord {
            id: p.node.clone(),
            state: lifecycle::NodeState::Commissioned,
            machine: p.machine.clone(),
            class: p.class.clone(),
            pool: p.pool.clone(),
            profile: p.profile.clone(),
            rule: p.rule.clone(),
            since: seq,
            updated: seq,
            reason: None,
            token: None,
        }),
    );
}

/// The node moves to new hardware and back to `commissioned`; the machine it leaves.
pub fn rebound(nodes: &mut NodesState, seq: u64, node: &NodeId, machine: &MachineId) -> Option<MachineId> {
    let n = nodes.get_mut(node)?;
    let old = std::mem::replace(&mut n.machine, machine.clone());
    n.state = lifecycle::NodeState::Commissioned;
    n.since = seq;
    n.updated = seq;
    n.reason = None;
    Some(old)
}

pub fn node_token_issued(nodes: &mut NodesState, seq: u64, p: &NodeTokenIssued) {
    let Some(node) = nodes.get_mut(&p.node) else { return };
    node.updated = seq;
    let old = node.token.replace(p.token);
    if let Some(old) = old {
        nodes.tokens.remove(&old);
    }
    nodes.tokens.insert(p.token, p.node.clone());
}

/// A lifecycle move by the table (`kind` is a lifecycle event other than commissioning and rebinding); `reason`
/// is why a failure happened.
pub fn moved(nodes: &mut NodesState, seq: u64, node: &NodeId, kind: EventKind, reason: Option<&str>) {
    let Some(n) = nodes.get_mut(node) else { return };
    n.updated = seq;
    let Some(to) = lifecycle::row(kind).map(|t| t.to) else { return };
    n.state = to;
    n.since = seq;
    n.reason = reason.map(str::to_owned);
    // A retired node's credentials stop working.
    if to.is_terminal()
        && let Some(token) = n.token.take()
    {
        nodes.tokens.remove(&token);
    }
}
