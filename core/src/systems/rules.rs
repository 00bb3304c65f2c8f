//! What `check` asks of the node systems events: systems that are store paths or flake references, decisions
//! only for live nodes that are neither pinned nor in a rollout, and agent reports that belong to the node's
//! current decision and the step its attempt is at.

use super::events::*;
use super::{Attempt, AttemptPhase, Desired, SystemsState};
use crate::ids::NodeId;
use crate::kind::EventKind;
use crate::nixos::{SystemKind, system_kind};
use crate::read::FleetRead;
use crate::rejection::Rejection;

fn valid_system(system: &str) -> Result<SystemKind, Rejection> {
    system_kind(system).map_err(|why| Rejection::InvalidSystem { system: short(system), why })
}

fn valid_path(path: &str) -> Result<(), Rejection> {
    match valid_system(path)? {
        SystemKind::StorePath => Ok(()),
        SystemKind::Flake => Err(Rejection::InvalidSystem {
            system: short(path),
            why: "a report names the store path the node runs, not a flake reference".into(),
        }),
    }
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

/// The node, if it exists and is not retired.
fn live_node(read: &dyn FleetRead, id: &NodeId, event: EventKind) -> Result<(), Rejection> {
    let node = read.node(id).ok_or_else(|| Rejection::UnknownNode { node: id.clone(), event })?;
    if node.state.is_terminal() {
        return Err(Rejection::NodeRetired { node: id.clone(), event });
    }
    Ok(())
}

fn not_pinned(sys: &SystemsState, node: &NodeId) -> Result<(), Rejection> {
    match sys.get(node).and_then(|s| s.pinned.as_ref()) {
        Some(pin) => Err(Rejection::NodePinned { node: node.clone(), reason: pin.reason.clone() }),
        None => Ok(()),
    }
}

/// The node's desired decision, which `decision` must be.
fn current_decision<'s>(
    sys: &'s SystemsState,
    node: &NodeId,
    decision: u64,
    event: EventKind,
) -> Result<&'s Desired, Rejection> {
    let desired = sys.get(node).and_then(|s| s.desired.as_ref());
    match desired {
        Some(d) if d.seq == decision => Ok(d),
        other => Err(Rejection::StaleDecision { node: node.clone(), event, decision, desired: other.map(|d| d.seq) }),
    }
}

/// The node's attempt of `decision`, which must be between `SystemActivating` and its end (or, with
/// `confirmed_too`, confirmed) and activating `path`.
fn open_attempt<'s>(
    sys: &'s SystemsState,
    node: &NodeId,
    decision: u64,
    path: &str,
    event: EventKind,
    confirmed_too: bool,
) -> Result<&'s Attempt, Rejection> {
    let refuse = |why: String| Rejection::NoActivation { node: node.clone(), event, decision, why };
    let Some(a) = sys.get(node).and_then(|s| s.attempt.as_ref()).filter(|a| a.decision == decision) else {
        return Err(refuse("the agent reported no `SystemActivating` for it".into()));
    };
    if a.phase == AttemptPhase::Prefetched {
        return Err(refuse(
            "the agent reported no `SystemActivating` for it (the attempt is only `prefetched`)".into(),
        ));
    }
    let open = a.phase.is_activating() || (confirmed_too && a.phase == AttemptPhase::Confirmed);
    if !open {
        return Err(refuse(format!("that attempt is `{}`", a.phase.name())));
    }
    if a.path.as_deref() != Some(path) {
        return Err(refuse(format!("it activates {}, not {path}", a.path.as_deref().unwrap_or("nothing"))));
    }
    Ok(a)
}

/// The attempt must be open and its last switch must have succeeded.
fn switched_attempt(
    sys: &SystemsState,
    node: &NodeId,
    decision: u64,
    path: &str,
    event: EventKind,
) -> Result<(), Rejection> {
    let a = open_attempt(sys, node, decision, path, event, false)?;
    if a.phase == AttemptPhase::Switched {
        Ok(())
    } else {
        Err(Rejection::NoActivation {
            node: node.clone(),
            event,
            decision,
            why: format!("its switch has not succeeded (the attempt is `{}`)", a.phase.name()),
        })
    }
}

fn same_system(node: &NodeId, event: EventKind, decision: u64, d: &Desired, system: &str) -> Result<(), Rejection> {
    if d.system == system {
        Ok(())
    } else {
        Err(Rejection::NoActivation {
            node: node.clone(),
            event,
            decision,
            why: format!("the decision is {}, not {system}", d.system),
        })
    }
}

/// A decision of a store path must be activated as exactly that path (a flake's is whatever it built).
fn decided_path(node: &NodeId, event: EventKind, decision: u64, d: &Desired, path: &str) -> Result<(), Rejection> {
    if system_kind(&d.system) == Ok(SystemKind::StorePath) && d.system != path {
        return Err(Rejection::NoActivation {
            node: node.clone(),
            event,
            decision,
            why: format!("the decision is {}, not {path}", d.system),
        });
    }
    Ok(())
}

pub fn system_set(sys: &SystemsState, read: &dyn FleetRead, p: &NodeSystemSet) -> Result<(), Rejection> {
    live_node(read, &p.node, EventKind::NodeSystemSet)?;
    valid_system(&p.system)?;
    not_pinned(sys, &p.node)?;
    if let Some((rollout, pool)) = read.rollout_of(&p.node) {
        return Err(Rejection::NodeInRollout { node: p.node.clone(), rollout, pool: pool.to_owned() });
    }
    Ok(())
}

pub fn pinned(sys: &SystemsState, read: &dyn FleetRead, p: &NodePinned) -> Result<(), Rejection> {
    live_node(read, &p.node, EventKind::NodePinned)?;
    not_pinned(sys, &p.node)
}

pub fn unpinned(sys: &SystemsState, read: &dyn FleetRead, p: &NodeUnpinned) -> Result<(), Rejection> {
    if read.node(&p.node).is_none() {
        return Err(Rejection::UnknownNode { node: p.node.clone(), event: EventKind::NodeUnpinned });
    }
    match sys.get(&p.node).and_then(|s| s.pinned.as_ref()) {
        Some(_) => Ok(()),
        None => Err(Rejection::NodeNotPinned { node: p.node.clone() }),
    }
}

pub fn reported(read: &dyn FleetRead, p: &SystemReported) -> Result<(), Rejection> {
    live_node(read, &p.node, EventKind::SystemReported)?;
    for path in p.current.iter().chain(&p.booted) {
        valid_path(path)?;
    }
    Ok(())
}

pub fn prefetched(sys: &SystemsState, read: &dyn FleetRead, p: &SystemPrefetched) -> Result<(), Rejection> {
    let kind = EventKind::SystemPrefetched;
    live_node(read, &p.node, kind)?;
    valid_path(&p.path)?;
    let d = current_decision(sys, &p.node, p.decision, kind)?;
    same_system(&p.node, kind, p.decision, d, &p.system)
}

pub fn prefetch_failed(sys: &SystemsState, read: &dyn FleetRead, p: &SystemPrefetchFailed) -> Result<(), Rejection> {
    let kind = EventKind::SystemPrefetchFailed;
    live_node(read, &p.node, kind)?;
    let d = current_decision(sys, &p.node, p.decision, kind)?;
    same_system(&p.node, kind, p.decision, d, &p.system)
}

pub fn activating(sys: &SystemsState, read: &dyn FleetRead, p: &SystemActivating) -> Result<(), Rejection> {
    let kind = EventKind::SystemActivating;
    live_node(read, &p.node, kind)?;
    valid_path(&p.path)?;
    if let Some(prev) = &p.previous {
        valid_path(prev)?;
    }
    let d = current_decision(sys, &p.node, p.decision, kind)?;
    decided_path(&p.node, kind, p.decision, d, &p.path)?;
    not_pinned(sys, &p.node)
}

pub fn profile_set(sys: &SystemsState, read: &dyn FleetRead, p: &SystemProfileSet) -> Result<(), Rejection> {
    let kind = EventKind::SystemProfileSet;
    live_node(read, &p.node, kind)?;
    open_attempt(sys, &p.node, p.decision, &p.path, kind, false).map(|_| ())
}

pub fn switched(sys: &SystemsState, read: &dyn FleetRead, p: &SystemSwitched) -> Result<(), Rejection> {
    let kind = EventKind::SystemSwitched;
    live_node(read, &p.node, kind)?;
    open_attempt(sys, &p.node, p.decision, &p.path, kind, false).map(|_| ())
}

pub fn health_failed(sys: &SystemsState, read: &dyn FleetRead, p: &SystemHealthFailed) -> Result<(), Rejection> {
    let kind = EventKind::SystemHealthFailed;
    live_node(read, &p.node, kind)?;
    switched_attempt(sys, &p.node, p.decision, &p.path, kind)
}

pub fn confirmed(sys: &SystemsState, read: &dyn FleetRead, p: &SystemConfirmed) -> Result<(), Rejection> {
    let kind = EventKind::SystemConfirmed;
    live_node(read, &p.node, kind)?;
    valid_path(&p.path)?;
    if p.switched {
        switched_attempt(sys, &p.node, p.decision, &p.path, kind)
    } else {
        let d = current_decision(sys, &p.node, p.decision, kind)?;
        decided_path(&p.node, kind, p.decision, d, &p.path)
    }
}

pub fn rolled_back(sys: &SystemsState, read: &dyn FleetRead, p: &SystemRolledBack) -> Result<(), Rejection> {
    let kind = EventKind::SystemRolledBack;
    live_node(read, &p.node, kind)?;
    valid_path(&p.to)?;
    open_attempt(sys, &p.node, p.decision, &p.path, kind, true).map(|_| ())
}
