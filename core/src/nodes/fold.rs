//! How `evolve` records the node lifecycle's events: rule-free — what `check` accepted is written down, and a
//! record the event names that does not exist is left alone.

use std::sync::Arc;

use super::events::{NodeCommissioned, NodeCordoned, NodeTokenIssued};
use super::{Drain, NodeRecord, NodesState};
use crate::ids::{MachineId, NodeId, Timestamp};
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
            cordon: None,
            drain: None,
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
    // Cordons and drains belong to `active` and `draining`; any move ends them (a drain's own event sets its terms
    // after this).
    n.cordon = None;
    n.drain = None;
    // A retired node's credentials stop working.
    if to.is_terminal()
        && let Some(token) = n.token.take()
    {
        nodes.tokens.remove(&token);
    }
}

/// A drain starts, or its terms change; a drain without terms (`NodeDrainRequested`) has no deadline.
pub fn drain_started(
    nodes: &mut NodesState,
    seq: u64,
    at: Timestamp,
    node: &NodeId,
    terms: Option<(Option<Timestamp>, bool)>,
    rollout: Option<u64>,
) {
    let Some(n) = nodes.get_mut(node) else { return };
    if n.state != lifecycle::NodeState::Draining {
        n.state = lifecycle::NodeState::Draining;
        n.since = seq;
        n.reason = None;
    }
    n.cordon = None;
    let (deadline, force) = terms.unwrap_or((None, false));
    n.drain = Some(Drain { seq, at, deadline, force, drained: None, rollout });
}

pub fn cordoned(nodes: &mut NodesState, seq: u64, p: &NodeCordoned) {
    let Some(n) = nodes.get_mut(&p.node) else { return };
    n.cordon = Some((seq, p.reason.clone()));
}

pub fn drained(nodes: &mut NodesState, seq: u64, node: &NodeId) {
    if let Some(d) = nodes.get_mut(node).and_then(|n| n.drain.as_mut()) {
        d.drained = Some(seq);
    }
}
