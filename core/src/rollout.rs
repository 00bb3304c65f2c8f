//! The rollout planner: where each member of a pool rollout stands ([`assess`]), what the controller does next
//! ([`decide`]), and the rules `check` applies to its decisions (`*_allowed`), all pure.
//!
//! A rollout moves a pool's members to a new system in waves. The first waves are canaries (at most `canary`
//! members, until one confirms); later waves move up to `max_unavailable` members, minus those already away from
//! a healthy system. A wave starts only once the previous one has settled. A failed canary, or more than
//! `max_failures` failed members, halts the rollout; halting puts every moved member back on what it wanted
//! before — those not confirmed at once (they are already away), the confirmed ones in batches within the same
//! budget. Members never moved keep their system. The controller in `sendan-api` runs [`decide`] on the leader
//! and proposes what it returns; `check` accepts a wave, a completion or a revert batch only if the same rules
//! allow it at the proposal's time.

use serde::{Deserialize, Serialize};

use crate::event::{
    Payload, RolloutCompleted, RolloutHalted, RolloutNodesReverted, RolloutReverted, RolloutWaveStarted, SwitchAction,
};
use crate::fleet::FleetState;
use crate::fleet::systems::{Outcome, Rollout, RolloutState, Wave, WaveNode};
use crate::ids::{EventId, NodeId, Timestamp};
use crate::lifecycle::NodeState;

/// Where a member stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Not moved yet, and eligible (active, not pinned).
    Pending,
    /// Not moved, and not eligible now (not active, or pinned); a running rollout completes without it.
    Skipped,
    /// Not moved, and the rollout is no longer running.
    Untouched,
    /// Moved by a wave; no confirmation or failure yet.
    Moving,
    Confirmed,
    Failed,
    /// Another decision replaced the rollout's, or it was pinned before its agent started.
    Left,
    /// Being put back after a halt.
    Reverting,
    Reverted,
    RevertFailed,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Skipped => "skipped",
            Phase::Untouched => "untouched",
            Phase::Moving => "moving",
            Phase::Confirmed => "confirmed",
            Phase::Failed => "failed",
            Phase::Left => "left",
            Phase::Reverting => "reverting",
            Phase::Reverted => "reverted",
            Phase::RevertFailed => "revert-failed",
        }
    }
}

/// One member of a rollout, now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node: NodeId,
    /// The wave that moved it.
    pub wave: Option<u32>,
    pub canary: bool,
    pub phase: Phase,
    /// Away from a healthy system without a way back on its own: a failed switch or health gate not yet rolled
    /// back, a failed rollback, or no report before the health deadline.
    pub unhealthy: bool,
    pub why: Option<String>,
}

impl Member {
    /// Counts against `max_unavailable`.
    pub fn unavailable(&self) -> bool {
        matches!(self.phase, Phase::Moving | Phase::Reverting) || self.unhealthy
    }
}

/// Every member of a rollout, now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub members: Vec<Member>,
}

impl Assessment {
    fn count(&self, f: impl Fn(&Member) -> bool) -> usize {
        self.members.iter().filter(|m| f(m)).count()
    }
    pub fn moving(&self) -> usize {
        self.count(|m| m.phase == Phase::Moving)
    }
    pub fn reverting(&self) -> usize {
        self.count(|m| m.phase == Phase::Reverting)
    }
    pub fn unavailable(&self) -> usize {
        self.count(Member::unavailable)
    }
    pub fn unhealthy(&self) -> usize {
        self.count(|m| m.unhealthy)
    }
    pub fn failed(&self) -> Vec<&Member> {
        self.members.iter().filter(|m| m.phase == Phase::Failed).collect()
    }
    pub fn canary_failure(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.canary && m.phase == Phase::Failed)
    }
    pub fn pending(&self) -> Vec<&NodeId> {
        self.members.iter().filter(|m| m.phase == Phase::Pending).map(|m| &m.node).collect()
    }
    /// Moved members confirmed on the rollout's system: what a halted rollout still has to put back.
    pub fn confirmed(&self) -> Vec<&NodeId> {
        self.members.iter().filter(|m| m.phase == Phase::Confirmed).map(|m| &m.node).collect()
    }
    pub fn member(&self, node: &NodeId) -> Option<&Member> {
        self.members.iter().find(|m| &m.node == node)
    }
}

/// Whether any member has confirmed the rollout's system (the canary phase is over).
pub fn any_confirmed(r: &Rollout) -> bool {
    r.waves.iter().flat_map(|w| &w.nodes).any(|wn| wn.outcome == Outcome::Confirmed)
}

fn deadline(from: Timestamp, r: &Rollout) -> Timestamp {
    Timestamp(from.0.saturating_add(i64::from(r.health_timeout_secs) * 1000))
}

fn moved_status(r: &Rollout, w: &Wave, wn: &WaveNode, now: Timestamp) -> (Phase, bool, Option<String>) {
    let late = |since: Timestamp| now > deadline(since, r);
    let no_report = || Some(format!("no confirmation within {}s", r.health_timeout_secs));
    match &wn.revert {
        Some((seq, outcome)) => {
            let since = r.reverts.iter().find(|(s, _)| s == seq).map(|(_, t)| *t).unwrap_or(w.time);
            // Why it was put back, when its own attempt failed.
            let failed = match &wn.outcome {
                Outcome::Failed { why, .. } => Some(why.clone()),
                _ => None,
            };
            match outcome {
                Outcome::InFlight if late(since) => (Phase::RevertFailed, true, no_report()),
                Outcome::InFlight => (Phase::Reverting, false, failed),
                Outcome::Confirmed => (Phase::Reverted, false, failed),
                Outcome::Failed { healthy, why } => (Phase::RevertFailed, !healthy, Some(why.clone())),
                Outcome::Left { why } => (Phase::Left, false, Some(why.clone())),
            }
        }
        None => match &wn.outcome {
            Outcome::InFlight if late(w.time) => (Phase::Failed, true, no_report()),
            Outcome::InFlight => (Phase::Moving, false, None),
            Outcome::Confirmed => (Phase::Confirmed, false, None),
            Outcome::Failed { healthy, why } => (Phase::Failed, !healthy, Some(why.clone())),
            Outcome::Left { why } => (Phase::Left, false, Some(why.clone())),
        },
    }
}

/// Where each member of `r` stands at `now` (deadlines are judged against it).
pub fn assess(state: &FleetState, r: &Rollout, now: Timestamp) -> Assessment {
    let members = r
        .members
        .iter()
        .map(|node| {
            let moved = r.waves.iter().find_map(|w| w.nodes.iter().find(|wn| &wn.node == node).map(|wn| (w, wn)));
            match moved {
                Some((w, wn)) => {
                    let (phase, unhealthy, why) = moved_status(r, w, wn, now);
                    Member { node: node.clone(), wave: Some(w.number), canary: w.canary, phase, unhealthy, why }
                }
                None => {
                    let (phase, why) = if r.state != RolloutState::Running {
                        (Phase::Untouched, None)
                    } else {
                        match ineligible(state, node) {
                            Some(why) => (Phase::Skipped, Some(why)),
                            None => (Phase::Pending, None),
                        }
                    };
                    Member { node: node.clone(), wave: None, canary: false, phase, unhealthy: false, why }
                }
            }
        })
        .collect();
    Assessment { members }
}

/// Why `node` may not be moved now, if it may not.
fn ineligible(state: &FleetState, node: &NodeId) -> Option<String> {
    let Some(rec) = state.node(node) else { return Some("it is no longer in the fleet".into()) };
    if rec.state != NodeState::Active {
        return Some(format!("it is `{}`, not `active`", rec.state));
    }
    let pin = state.node_system(node).and_then(|s| s.pinned.as_ref());
    pin.map(|p| format!("it is pinned ({})", p.reason))
}

/// Whether the next wave is a canary wave: there are canaries and none has confirmed yet.
fn canary_phase(r: &Rollout) -> bool {
    r.canary > 0 && !any_confirmed(r)
}

/// Why `r` must halt, if it must: a failed canary, or more failed members than `max_failures`.
fn halt_reason(r: &Rollout, a: &Assessment) -> Option<String> {
    if let Some(m) = a.canary_failure() {
        return Some(format!("canary {} failed: {}", m.node, m.why.as_deref().unwrap_or("no reason given")));
    }
    let failed = a.failed();
    if failed.len() > r.max_failures as usize {
        let list: Vec<String> =
            failed.iter().map(|m| format!("{} ({})", m.node, m.why.as_deref().unwrap_or("no reason given"))).collect();
        return Some(format!(
            "{} member{} failed, more than max-failures {}: {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            r.max_failures,
            list.join("; ")
        ));
    }
    None
}

/// A decision of the rollout controller: an event with an id derived from what it decides, so deciding the same
/// again (next pass, another leader) is answered with the original seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: EventId,
    pub payload: Payload,
    pub comment: String,
}

/// Everything the rollout controller should propose now, one decision per open rollout at most.
pub fn decide(state: &FleetState, now: Timestamp) -> Vec<Decision> {
    state.systems.open.values().filter_map(|id| state.rollout(*id)).filter_map(|r| decide_one(state, r, now)).collect()
}

fn decide_one(state: &FleetState, r: &Rollout, now: Timestamp) -> Option<Decision> {
    let id = r.id.to_be_bytes();
    let a = assess(state, r, now);
    match r.state {
        RolloutState::Running => {
            if let Some(reason) = halt_reason(r, &a) {
                return Some(Decision {
                    id: EventId::derive(&[b"rollout-halted", &id]),
                    payload: RolloutHalted { rollout: r.id, reason: reason.clone() }.into(),
                    comment: format!("halting rollout {} of pool {}: {reason}", r.id, r.pool),
                });
            }
            if a.moving() > 0 {
                return None;
            }
            let pending = a.pending();
            if pending.is_empty() {
                return Some(Decision {
                    id: EventId::derive(&[b"rollout-completed", &id]),
                    payload: RolloutCompleted { rollout: r.id }.into(),
                    comment: format!("every eligible member of pool {} confirmed {}", r.pool, r.system),
                });
            }
            let budget = (r.max_unavailable as usize).saturating_sub(a.unavailable());
            let canary = canary_phase(r);
            let size = if canary { r.canary } else { r.max_unavailable } as usize;
            let size = size.min(budget).min(pending.len());
            if size == 0 {
                let reason = format!(
                    "no budget left: {} member{} unhealthy and max-unavailable is {}",
                    a.unhealthy(),
                    if a.unhealthy() == 1 { " is" } else { "s are" },
                    r.max_unavailable
                );
                return Some(Decision {
                    id: EventId::derive(&[b"rollout-halted", &id]),
                    payload: RolloutHalted { rollout: r.id, reason: reason.clone() }.into(),
                    comment: format!("halting rollout {} of pool {}: {reason}", r.id, r.pool),
                });
            }
            let wave = r.waves.len() as u32 + 1;
            let nodes: Vec<NodeId> = pending[..size].iter().map(|n| (*n).clone()).collect();
            let names: Vec<&str> = nodes.iter().map(|n| n.as_str()).collect();
            Some(Decision {
                id: EventId::derive(&[b"rollout-wave", &id, &wave.to_be_bytes()]),
                payload: RolloutWaveStarted { rollout: r.id, wave, nodes: nodes.clone() }.into(),
                comment: format!(
                    "{} wave {wave} of rollout {}: {}",
                    if canary { "canary" } else { "starting" },
                    r.id,
                    names.join(", ")
                ),
            })
        }
        RolloutState::Reverting => {
            if a.reverting() > 0 {
                return None;
            }
            let confirmed = a.confirmed();
            if confirmed.is_empty() {
                return Some(Decision {
                    id: EventId::derive(&[b"rollout-reverted", &id]),
                    payload: RolloutReverted { rollout: r.id }.into(),
                    comment: format!("every moved member of pool {} was put back", r.pool),
                });
            }
            // With the budget used up by unhealthy members the revert waits; `sendan rollout status` says why.
            let budget = (r.max_unavailable as usize).saturating_sub(a.unavailable());
            if budget == 0 {
                return None;
            }
            let nodes: Vec<NodeId> = confirmed.into_iter().take(budget).cloned().collect();
            let batch = r.reverts.len() as u64;
            let names: Vec<&str> = nodes.iter().map(|n| n.as_str()).collect();
            let comment = format!("putting back {} (rollout {} halted)", names.join(", "), r.id);
            Some(Decision {
                id: EventId::derive(&[b"rollout-revert", &id, &batch.to_be_bytes()]),
                payload: RolloutNodesReverted { rollout: r.id, nodes }.into(),
                comment,
            })
        }
        RolloutState::Completed | RolloutState::Reverted => None,
    }
}

/// May wave `wave` of `r` move `nodes` now? `Err` is the reason, for the rejection.
pub fn wave_allowed(
    state: &FleetState,
    r: &Rollout,
    a: &Assessment,
    wave: u32,
    nodes: &[NodeId],
) -> Result<(), String> {
    let next = r.waves.len() as u32 + 1;
    if wave != next {
        return Err(format!("the next wave is {next}, not {wave}"));
    }
    if nodes.is_empty() {
        return Err("a wave moves at least one node".into());
    }
    for (i, n) in nodes.iter().enumerate() {
        if nodes[..i].contains(n) {
            return Err(format!("node {n} appears twice"));
        }
    }
    if let Some(reason) = halt_reason(r, a) {
        return Err(format!("the rollout must halt: {reason}"));
    }
    if let Some(m) = a.members.iter().find(|m| m.phase == Phase::Moving) {
        return Err(format!("wave {} has not settled: {} is still moving", m.wave.unwrap_or(0), m.node));
    }
    for n in nodes {
        match a.member(n) {
            None => return Err(format!("node {n} is not a member of the rollout (pool {})", r.pool)),
            Some(m) if m.phase == Phase::Pending => {}
            Some(m) if m.wave.is_some() => {
                return Err(format!("node {n} was already moved by wave {}", m.wave.unwrap_or(0)));
            }
            Some(_) => {
                let why = ineligible(state, n).unwrap_or_else(|| "it may not move".into());
                return Err(format!("node {n} may not move: {why}"));
            }
        }
    }
    if canary_phase(r) && nodes.len() > r.canary as usize {
        return Err(format!(
            "no member has confirmed yet, so this is a canary wave of at most {} node{}",
            r.canary,
            if r.canary == 1 { "" } else { "s" }
        ));
    }
    let away = a.unavailable();
    if nodes.len() + away > r.max_unavailable as usize {
        return Err(format!(
            "moving {} node{} while {away} member{} unavailable exceeds max-unavailable {}",
            nodes.len(),
            if nodes.len() == 1 { "" } else { "s" },
            if away == 1 { " is" } else { "s are" },
            r.max_unavailable
        ));
    }
    Ok(())
}

/// May `r` complete now?
pub fn completion_allowed(_state: &FleetState, r: &Rollout, a: &Assessment) -> Result<(), String> {
    if let Some(reason) = halt_reason(r, a) {
        return Err(format!("the rollout must halt: {reason}"));
    }
    if let Some(m) = a.members.iter().find(|m| matches!(m.phase, Phase::Moving | Phase::Pending)) {
        return Err(format!("member {} is still {}", m.node, m.phase.name()));
    }
    Ok(())
}

/// May halted `r` put `nodes` back now?
pub fn revert_allowed(r: &Rollout, a: &Assessment, nodes: &[NodeId]) -> Result<(), String> {
    if nodes.is_empty() {
        return Err("a revert batch puts back at least one node".into());
    }
    for (i, n) in nodes.iter().enumerate() {
        if nodes[..i].contains(n) {
            return Err(format!("node {n} appears twice"));
        }
        match a.member(n) {
            Some(m) if m.phase == Phase::Confirmed => {}
            Some(m) => return Err(format!("node {n} is {}, not a confirmed member to put back", m.phase.name())),
            None => return Err(format!("node {n} is not a member of the rollout (pool {})", r.pool)),
        }
    }
    let away = a.unavailable();
    if nodes.len() + away > r.max_unavailable as usize {
        return Err(format!(
            "putting back {} node{} while {away} member{} unavailable exceeds max-unavailable {}",
            nodes.len(),
            if nodes.len() == 1 { "" } else { "s" },
            if away == 1 { " is" } else { "s are" },
            r.max_unavailable
        ));
    }
    Ok(())
}

/// May halted `r` end now (every moved member put back, or not to be)?
pub fn reverted_allowed(_r: &Rollout, a: &Assessment) -> Result<(), String> {
    if let Some(m) = a.members.iter().find(|m| matches!(m.phase, Phase::Reverting | Phase::Confirmed)) {
        return Err(format!("member {} is still {}", m.node, m.phase.name()));
    }
    Ok(())
}

/// `GET /v1/rollouts/{id}`: a rollout and where each member stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutView {
    pub id: u64,
    pub pool: String,
    pub system: String,
    pub action: SwitchAction,
    pub state: RolloutState,
    pub max_unavailable: u32,
    pub canary: u32,
    pub max_failures: u32,
    pub health_timeout_secs: u32,
    pub started_at: Timestamp,
    /// Why it was halted.
    pub reason: Option<String>,
    pub halted: Option<u64>,
    pub ended: Option<u64>,
    pub waves: Vec<WaveView>,
    /// Members no wave moved.
    pub unmoved: Vec<Member>,
    pub counts: Counts,
    /// Waiting for, in a sentence: what the controller needs before its next step.
    pub waiting: Option<String>,
    /// The seq this view is of.
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveView {
    pub number: u32,
    pub seq: u64,
    pub time: Timestamp,
    pub canary: bool,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub members: usize,
    pub confirmed: usize,
    pub moving: usize,
    pub failed: usize,
    pub pending: usize,
    pub skipped: usize,
    /// Members a halted or finished rollout never moved.
    pub untouched: usize,
    pub reverted: usize,
    pub unavailable: usize,
}

/// The view of `r` at `now`.
pub fn view(state: &FleetState, r: &Rollout, now: Timestamp) -> RolloutView {
    let a = assess(state, r, now);
    let waves = r
        .waves
        .iter()
        .map(|w| WaveView {
            number: w.number,
            seq: w.seq,
            time: w.time,
            canary: w.canary,
            members: a.members.iter().filter(|m| m.wave == Some(w.number)).cloned().collect(),
        })
        .collect();
    let count = |p: Phase| a.members.iter().filter(|m| m.phase == p).count();
    let counts = Counts {
        members: a.members.len(),
        confirmed: count(Phase::Confirmed),
        moving: count(Phase::Moving) + count(Phase::Reverting),
        failed: count(Phase::Failed) + count(Phase::RevertFailed),
        pending: count(Phase::Pending),
        skipped: count(Phase::Skipped) + count(Phase::Left),
        untouched: count(Phase::Untouched),
        reverted: count(Phase::Reverted),
        unavailable: a.unavailable(),
    };
    let waiting = match r.state {
        RolloutState::Running if a.moving() > 0 => {
            let moving: Vec<&str> =
                a.members.iter().filter(|m| m.phase == Phase::Moving).map(|m| m.node.as_str()).collect();
            Some(format!(
                "waiting for {} to confirm (within {}s of their wave)",
                moving.join(", "),
                r.health_timeout_secs
            ))
        }
        RolloutState::Reverting if a.reverting() > 0 => Some("waiting for the members being put back".into()),
        RolloutState::Reverting if a.unavailable() >= r.max_unavailable as usize && !a.confirmed().is_empty() => {
            Some(format!(
                "stalled: {} unhealthy member{} use the whole budget (max-unavailable {}); repair them or raise the budget",
                a.unhealthy(),
                if a.unhealthy() == 1 { "" } else { "s" },
                r.max_unavailable
            ))
        }
        _ => None,
    };
    RolloutView {
        id: r.id,
        pool: r.pool.clone(),
        system: r.system.clone(),
        action: r.action,
        state: r.state,
        max_unavailable: r.max_unavailable,
        canary: r.canary,
        max_failures: r.max_failures,
        health_timeout_secs: r.health_timeout_secs,
        started_at: r.started_at,
        reason: r.reason.clone(),
        halted: r.halted,
        ended: r.ended,
        waves,
        unmoved: a.members.iter().filter(|m| m.wave.is_none()).cloned().collect(),
        counts,
        waiting,
        seq: state.seq,
    }
}
