//! How `evolve` records power events.

use super::events::{PowerCompleted, PowerObserved, PowerRequested};
use super::{PowerRequest, PowerResult, PowerState};
use crate::ids::Timestamp;

pub fn requested(power: &mut PowerState, seq: u64, time: Timestamp, p: &PowerRequested) {
    let request = PowerRequest { seq, time, action: p.action, boot: p.boot, force: p.force };
    power.nodes.entry(p.node.clone()).or_default().pending = Some(request);
}

pub fn request_completed(power: &mut PowerState, seq: u64, p: &PowerCompleted) {
    let node = power.nodes.entry(p.node.clone()).or_default();
    if let Some(request) = node.pending.take_if(|r| r.seq == p.request) {
        node.last = Some(PowerResult { request, seq, outcome: p.outcome, error: p.error.clone() });
    }
    if let Some(power) = p.power {
        node.observed = Some((power, seq));
    }
}

pub fn observed(power: &mut PowerState, seq: u64, p: &PowerObserved) {
    power.nodes.entry(p.node.clone()).or_default().observed = Some((p.power, seq));
}
