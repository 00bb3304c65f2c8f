//! What `check` asks of the node lifecycle's events: the lifecycle table's moves, one machine per node, layouts
//! that fit before an install is requested, and token hashes that belong to one credential.

use super::NodesState;
use std::collections::BTreeSet;

use super::events::{
    NodeCommissioned, NodeCordoned, NodeDrainStarted, NodeDrained, NodeInstallRequested, NodeRebound, NodeTokenIssued,
};
use crate::ids::{MachineId, NodeId};
use crate::kind::EventKind;
use crate::lifecycle;
use crate::read::{Ctx, FleetRead, NodeFacts, PlanUnavailable};
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

pub fn cordoned(read: &dyn FleetRead, p: &NodeCordoned) -> Result<(), Rejection> {
    let event = EventKind::NodeCordoned;
    let node = read.node(&p.node).ok_or_else(|| Rejection::UnknownNode { node: p.node.clone(), event })?;
    let refuse = |why: String| Rejection::NodeRefused { node: p.node.clone(), event, why };
    if node.state != lifecycle::NodeState::Active {
        return Err(refuse(format!("it is `{}`; only an `active` node is cordoned", node.state)));
    }
    if node.cordoned {
        return Err(refuse("it is cordoned already".into()));
    }
    Ok(())
}

/// `NodeUncordoned`: the table allows it from `active` and `draining`; an `active` node must be cordoned.
pub fn uncordoned(read: &dyn FleetRead, id: &NodeId) -> Result<(), Rejection> {
    let event = EventKind::NodeUncordoned;
    let node = transition(read, id, event)?;
    if node.state == lifecycle::NodeState::Active && !node.cordoned {
        return Err(Rejection::NodeRefused {
            node: id.clone(),
            event,
            why: "it is active and not cordoned; there is nothing to uncordon".into(),
        });
    }
    Ok(())
}

pub fn drain_started(read: &dyn FleetRead, ctx: &Ctx, p: &NodeDrainStarted) -> Result<(), Rejection> {
    let event = EventKind::NodeDrainStarted;
    transition(read, &p.node, event)?;
    if let Some(deadline) = p.deadline
        && deadline < ctx.now
    {
        return Err(Rejection::NodeRefused {
            node: p.node.clone(),
            event,
            why: format!("its deadline {deadline} is already past (now is {})", ctx.now),
        });
    }
    Ok(())
}

pub fn drained(read: &dyn FleetRead, p: &NodeDrained) -> Result<(), Rejection> {
    let event = EventKind::NodeDrained;
    let node = read.node(&p.node).ok_or_else(|| Rejection::UnknownNode { node: p.node.clone(), event })?;
    let refuse = |why: String| Rejection::NodeRefused { node: p.node.clone(), event, why };
    match node.drain {
        None => return Err(refuse(format!("it is `{}`, not draining", node.state))),
        Some(d) if d.drained.is_some() => {
            return Err(refuse(format!("it was recorded drained at seq {}", d.drained.unwrap_or_default())));
        }
        Some(_) => {}
    }
    let left = read.instances_on(&p.node);
    if !left.is_empty() {
        let names: Vec<&str> = left.iter().take(5).map(|i| i.as_str()).collect();
        return Err(refuse(format!(
            "its agent has not reported {} instance{} stopped: {}{}",
            left.len(),
            if left.len() == 1 { "" } else { "s" },
            names.join(", "),
            if left.len() > 5 { ", …" } else { "" }
        )));
    }
    Ok(())
}

/// A reprovision or a retirement takes the node out for good: the services on it must stay within budget (drain
/// it first to move them).
pub fn taken_out(read: &dyn FleetRead, id: &NodeId, event: EventKind) -> Result<(), Rejection> {
    transition(read, id, event)?;
    read.disruption(&BTreeSet::from([id.clone()])).map_err(|why| Rejection::OverBudget {
        event,
        why: format!("{why}; drain it first (`sendan node drain {id}`)"),
    })
}
