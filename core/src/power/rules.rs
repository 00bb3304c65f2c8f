//! What `check` asks of power events.

use std::collections::BTreeSet;

use super::PowerState;
use super::events::{PowerCompleted, PowerObserved, PowerOutcome, PowerRequested};
use crate::kind::EventKind;
use crate::lifecycle::NodeState;
use crate::read::FleetRead;
use crate::rejection::Rejection;

pub fn requested(power: &PowerState, read: &dyn FleetRead, p: &PowerRequested) -> Result<(), Rejection> {
    let event = EventKind::PowerRequested;
    let node = &p.node;
    let refuse = |why: String| Rejection::NodeRefused { node: node.clone(), event, why };
    let Some(facts) = read.node(node) else { return Err(Rejection::UnknownNode { node: node.clone(), event }) };
    if facts.state == NodeState::Retired {
        return Err(Rejection::NodeRetired { node: node.clone(), event });
    }
    if p.action.is_none() && p.boot.is_none() {
        return Err(Rejection::MalformedEvent {
            event,
            why: "it asks for neither a power action nor a boot device".into(),
        });
    }
    let declared = read.live_spec().and_then(|l| l.spec.nodes.get(node.as_str()));
    if declared.and_then(|d| d.bmc.as_ref()).is_none() {
        return Err(refuse(format!(
            "the live spec declares no BMC for it; declare `nodes.{node}.bmc` (driver, address, user, passwordFile) and apply the spec"
        )));
    }
    if let Some(pending) = power.get(node).and_then(|n| n.pending.as_ref()) {
        return Err(refuse(format!(
            "its power request at seq {} ({}) is still being carried out; wait for it (`sendan node show {node}`)",
            pending.seq,
            pending.describe()
        )));
    }
    if !p.force && p.action.is_some_and(|a| a.takes_out()) {
        read.disruption(&BTreeSet::from([node.clone()])).map_err(|why| Rejection::OverBudget {
            event,
            why: format!("{why}; drain it first (`sendan node drain {node}`) or force it (`--force`)"),
        })?;
    }
    Ok(())
}

pub fn request_completed(power: &PowerState, p: &PowerCompleted) -> Result<(), Rejection> {
    let event = EventKind::PowerCompleted;
    let refuse = |why: String| Rejection::NodeRefused { node: p.node.clone(), event, why };
    match power.get(&p.node).and_then(|n| n.pending.as_ref()) {
        Some(r) if r.seq == p.request => {}
        Some(r) => return Err(refuse(format!("its pending power request is seq {}, not {}", r.seq, p.request))),
        None => return Err(refuse(format!("it has no pending power request (seq {} is done)", p.request))),
    }
    if p.outcome == PowerOutcome::Failed && p.error.as_deref().is_none_or(str::is_empty) {
        return Err(Rejection::MalformedEvent { event, why: "a failed request must say why (`error`)".into() });
    }
    Ok(())
}

pub fn observed(power: &PowerState, read: &dyn FleetRead, p: &PowerObserved) -> Result<(), Rejection> {
    let event = EventKind::PowerObserved;
    if read.node(&p.node).is_none() {
        return Err(Rejection::UnknownNode { node: p.node.clone(), event });
    }
    if let Some((now, seq)) = power.get(&p.node).and_then(|n| n.observed) {
        if now == p.power {
            return Err(Rejection::NodeRefused {
                node: p.node.clone(),
                event,
                why: format!("its power was already recorded {} at seq {seq}; only changes are recorded", now.as_str()),
            });
        }
    }
    Ok(())
}
