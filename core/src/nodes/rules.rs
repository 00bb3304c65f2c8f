//! What `check` asks of the node lifecycle's events: the lifecycle table's moves, one machine per node, layouts
//! that fit before an install is requested, and token hashes that belong to one credential.

use super::NodesState;
use super::events::{NodeCommissioned, NodeInstallRequested, NodeRebound, NodeTokenIssued};
use crate::ids::{MachineId, NodeId};
use crate::kind::EventKind;
use crate::lifecycle;
use crate::read::{FleetRead, NodeFacts, PlanUnavailable};
use crate::rejection::Rejection;

/// The node `id`, if `kind` is a legal move from its current state.
pub fn transition<'s>(read: &'s dyn FleetRead, id: &NodeId, kind: EventKind) -> Result<NodeFacts<'s>, Rejection> {
    let node = read.node(id).ok_or_else(|| Rejection::UnknownNode { node: id.clone(), event: kind })?;
    if lifecycle::next_state(node.state, kind).is_none() {
        let needs = lifecycle::row(kind).map(|t| t.from.to_vec()).unwrap_or_default();
        return Err(Rejection::IllegalTransition {
            node: id.clone(),
            state: node.state,
            event: kind,
            needs,
            allowed: lifecycle::allowed_events(node.state),
        });
    }
    Ok(node)
}

/// The machine exists and no node is bound to it.
fn free_machine(read: &dyn FleetRead, id: &MachineId) -> Result<(), Rejection> {
    match read.machine(id) {
        None => Err(Rejection::UnknownMachine { machine: id.clone() }),
        Some(m) => match m.node {
            Some(node) => Err(Rejection::MachineBound { machine: id.clone(), node: node.clone() }),
            None => Ok(()),
        },
    }
}

pub fn commissioned(nodes: &NodesState, read: &dyn FleetRead, p: &NodeCommissioned) -> Result<(), Rejection> {
    if let Some(existing) = nodes.get(&p.node) {
        return Err(Rejection::NodeExists { node: p.node.clone(), state: existing.state });
    }
    free_machine(read, &p.machine)
}

pub fn rebound(read: &dyn FleetRead, p: &NodeRebound) -> Result<(), Rejection> {
    let node = transition(read, &p.node, EventKind::NodeRebound)?;
    if *node.machine == p.machine {
        return Err(Rejection::SameMachine { node: p.node.clone(), machine: p.machine.clone() });
    }
    free_machine(read, &p.machine)
}

/// `NodeInstallRequested` for a node the live spec declares: its disk layout must fit its machine's disks.
pub fn install_requested(read: &dyn FleetRead, p: &NodeInstallRequested) -> Result<(), Rejection> {
    transition(read, &p.node, EventKind::NodeInstallRequested)?;
    match read.layout_of(&p.node) {
        Err(PlanUnavailable::DoesNotFit { node, machine, layout, reasons }) => {
            Err(Rejection::LayoutDoesNotFit { node, machine, layout, reasons })
        }
        _ => Ok(()),
    }
}

pub fn node_token_issued(read: &dyn FleetRead, p: &NodeTokenIssued) -> Result<(), Rejection> {
    let kind = EventKind::NodeTokenIssued;
    let node = read.node(&p.node).ok_or_else(|| Rejection::UnknownNode { node: p.node.clone(), event: kind })?;
    if read.credential_in_use(&p.token) {
        return Err(Rejection::TokenInUse { token: p.token });
    }
    if node.state.is_terminal() {
        return Err(Rejection::NodeRetired { node: p.node.clone(), event: kind });
    }
    Ok(())
}
