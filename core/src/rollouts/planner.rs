//! The rollout planner: where each member of a pool rollout stands ([`assess`]), what the controller does next
//! ([`decide`]), and the rules `check` applies to its decisions (`*_allowed`, [`halt_reverts`], [`leaving`]),
//! all pure, reading the members' nodes and systems through [`FleetRead`].
//!
//! A rollout moves a pool's members to a new system in waves. The first waves are canaries (at most `canary`
//! members, until one confirms); later waves move up to `max_unavailable` members, minus those already away from
//! a healthy system. A wave starts only once the previous one has settled. A failed canary, or more than
//! `max_failures` failed members, halts the rollout; halting puts every moved member back on what it wanted
//! before — those not confirmed at once (they are already away), the confirmed ones in batches within the same
//! budget. Members never moved keep their system. The controller in `sendan-api` runs [`decide`] on the leader
//! and proposes what it returns; `check` accepts a wave, a completion or a revert batch only if the same rules
//! allow it at the proposal's time.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::events::{
    RolloutCompleted, RolloutHalted, RolloutMemberLeft, RolloutNodesReverted, RolloutReverted, RolloutWaveStarted,
};
use super::{MemberOutcome, Rollout, RolloutState, RolloutsState, Wave, WaveNode};
use crate::ids::{EventId, NodeId, Timestamp};
use crate::lifecycle::NodeState;
use crate::nixos::SwitchAction;
use crate::nodes::events::{NodeDrainStarted, NodeUncordoned};
use crate::read::{DrainFacts, FleetRead};

/// Where a member stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MemberPhase {
    /// Not moved yet, and eligible (active, not pinned).
    Pending,
    /// Not moved, and not eligible now (not active, or pinned); a running rollout completes without it.
    Skipped,
    /// Not moved, and the rollout is no longer running.
    Untouched,
    /// Moved by a wave; no confirmation or failure yet.
    Moving,
    Confirmed,
    /// Confirmed, on a system that takes effect at a reboot (action `boot`, or a switch that said so): drained
    /// first, then rebooted by its agent; it counts as away until it booted the rollout's system.
    Rebooting,
    Failed,
    /// Another decision replaced the rollout's, or it was pinned before its agent started.
    Left,
    /// Being put back after a halt.
    Reverting,
    Reverted,
    RevertFailed,
}

impl MemberPhase {
    pub fn name(self) -> &'static str {
        match self {
            MemberPhase::Pending => "pending",
            MemberPhase::Skipped => "skipped",
            MemberPhase::Untouched => "untouched",
            MemberPhase::Moving => "moving",
            MemberPhase::Confirmed => "confirmed",
            MemberPhase::Rebooting => "rebooting",
            MemberPhase::Failed => "failed",
            MemberPhase::Left => "left",
            MemberPhase::Reverting => "reverting",
            MemberPhase::Reverted => "reverted",
            MemberPhase::RevertFailed => "revert-failed",
        }
    }
}

/// One member of a rollout, now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Member {
    pub node: NodeId,
    /// The wave that moved it.
    pub wave: Option<u32>,
    pub canary: bool,
    pub phase: MemberPhase,
    /// Away from a healthy system without a way back on its own: a failed switch or health gate not yet rolled
    /// back, a failed rollback, or no report before the health deadline.
    pub unhealthy: bool,
    pub why: Option<String>,
}

impl Member {
    /// Counts against `max_unavailable`.
    pub fn unavailable(&self) -> bool {
        matches!(self.phase, MemberPhase::Moving | MemberPhase::Reverting | MemberPhase::Rebooting) || self.unhealthy
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
        self.count(|m| m.phase == MemberPhase::Moving)
    }
    pub fn rebooting(&self) -> usize {
        self.count(|m| m.phase == MemberPhase::Rebooting)
    }
    pub fn reverting(&self) -> usize {
        self.count(|m| m.phase == MemberPhase::Reverting)
    }
    pub fn unavailable(&self) -> usize {
        self.count(Member::unavailable)
    }
    pub fn unhealthy(&self) -> usize {
        self.count(|m| m.unhealthy)
    }
    pub fn failed(&self) -> Vec<&Member> {
        self.members.iter().filter(|m| m.phase == MemberPhase::Failed).collect()
    }
    pub fn canary_failure(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.canary && m.phase == MemberPhase::Failed)
    }
    pub fn pending(&self) -> Vec<&NodeId> {
        self.members.iter().filter(|m| m.phase == MemberPhase::Pending).map(|m| &m.node).collect()
    }
    /// Moved members confirmed on the rollout's system (booted into it or not): what a halted rollout still has
    /// to put back.
    pub fn confirmed(&self) -> Vec<&NodeId> {
        let put_back = |m: &&Member| matches!(m.phase, MemberPhase::Confirmed | MemberPhase::Rebooting);
        self.members.iter().filter(put_back).map(|m| &m.node).collect()
    }
    pub fn member(&self, node: &NodeId) -> Option<&Member> {
        self.members.iter().find(|m| &m.node == node)
    }
}

/// Whether any member has confirmed the rollout's system (the canary phase is over).
pub fn any_confirmed(r: &Rollout) -> bool {
    r.waves.iter().flat_map(|w| &w.nodes).any(|wn| wn.outcome == MemberOutcome::Confirmed)
}

/// Why wave member `wn` leaves open rollout `r`, if it does now and has not yet: its node was pinned before its
/// agent started on the wave's decision, or another decision replaced the rollout's (its wave's, or its revert's
/// while in flight). The rollout controller records it (`RolloutMemberLeft`); until then [`assess`] counts it as
/// left already.
pub fn leaving(read: &dyn FleetRead, r: &Rollout, w: &Wave, wn: &WaveNode) -> Option<String> {
    if !r.state.is_open() {
        return None;
    }
    let decided = read.decision(&wn.node).map(|d| d.seq);
    match &wn.revert {
        Some(rv) => (rv.outcome == MemberOutcome::InFlight && decided != Some(rv.decision))
            .then(|| format!("decision at seq {} replaced the rollout's", decided.unwrap_or(0))),
        None if matches!(wn.outcome, MemberOutcome::InFlight | MemberOutcome::Confirmed) && decided != Some(w.seq) => {
            Some(format!("decision at seq {} replaced the rollout's", decided.unwrap_or(0)))
        }
        None if wn.outcome == MemberOutcome::InFlight && !read.activation_started(&wn.node, w.seq) => {
            read.pin(&wn.node).map(|(seq, _)| format!("pinned at seq {seq} before its agent started"))
        }
        None => None,
    }
}

/// The event that made member `wn` leave (`leaving`'s reason): the pin, or the replacing decision.
fn leaving_cause(read: &dyn FleetRead, wn: &WaveNode, why: &str) -> u64 {
    if why.starts_with("pinned") {
        read.pin(&wn.node).map(|(seq, _)| seq).unwrap_or_default()
    } else {
        read.decision(&wn.node).map(|d| d.seq).unwrap_or_default()
    }
}

/// The members a halt of `r` puts back at once, in name order: moved, not yet put back, and still moving or
/// failed on their wave's decision (confirmed ones go back later, in budgeted batches).
pub fn halt_reverts(r: &Rollout, a: &Assessment) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = r
        .waves
        .iter()
        .flat_map(|w| &w.nodes)
        .filter(|wn| {
            wn.revert.is_none() && matches!(wn.outcome, MemberOutcome::InFlight | MemberOutcome::Failed { .. })
        })
        .filter(|wn| a.member(&wn.node).is_some_and(|m| matches!(m.phase, MemberPhase::Moving | MemberPhase::Failed)))
        .map(|wn| wn.node.clone())
        .collect();
    nodes.sort();
    nodes
}

fn deadline(from: Timestamp, r: &Rollout) -> Timestamp {
    Timestamp(from.0.saturating_add(i64::from(r.health_timeout_secs) * 1000))
}

fn moved_status(
    read: &dyn FleetRead,
    r: &Rollout,
    w: &Wave,
    wn: &WaveNode,
    now: Timestamp,
) -> (MemberPhase, bool, Option<String>) {
    if let Some(why) = leaving(read, r, w, wn) {
        return (MemberPhase::Left, false, Some(why));
    }
    let late = |since: Timestamp| now > deadline(since, r);
    let no_report = || Some(format!("no confirmation within {}s", r.health_timeout_secs));
    match &wn.revert {
        Some(rv) => {
            let (seq, outcome) = (&rv.decision, &rv.outcome);
            let since = r.reverts.iter().find(|(s, _)| s == seq).map(|(_, t)| *t).unwrap_or(w.time);
            // Why it was put back, when its own attempt failed.
            let failed = match &wn.outcome {
                MemberOutcome::Failed { why, .. } => Some(why.clone()),
                _ => None,
            };
            match outcome {
                MemberOutcome::InFlight if late(since) => (MemberPhase::RevertFailed, true, no_report()),
                MemberOutcome::InFlight => (MemberPhase::Reverting, false, failed),
                MemberOutcome::Confirmed if awaits_reboot(read, &wn.node, rv.decision) => {
                    (MemberPhase::Reverting, false, Some(reboot_why(read, r, &wn.node)))
                }
                MemberOutcome::Confirmed => (MemberPhase::Reverted, false, failed),
                MemberOutcome::Failed { healthy, why } => (MemberPhase::RevertFailed, !healthy, Some(why.clone())),
                MemberOutcome::Left { why } => (MemberPhase::Left, false, Some(why.clone())),
            }
        }
        None => match &wn.outcome {
            MemberOutcome::InFlight if late(w.time) => (MemberPhase::Failed, true, no_report()),
            MemberOutcome::InFlight => (MemberPhase::Moving, false, None),
            MemberOutcome::Confirmed if awaits_reboot(read, &wn.node, w.seq) => {
                (MemberPhase::Rebooting, false, Some(reboot_why(read, r, &wn.node)))
            }
            MemberOutcome::Confirmed => (MemberPhase::Confirmed, false, None),
            MemberOutcome::Failed { healthy, why } => (MemberPhase::Failed, !healthy, Some(why.clone())),
            MemberOutcome::Left { why } => (MemberPhase::Left, false, Some(why.clone())),
        },
    }
}

/// Whether `node` confirmed `decision` and waits for a reboot into its system.
fn awaits_reboot(read: &dyn FleetRead, node: &NodeId, decision: u64) -> bool {
    read.pending_reboot(node).is_some_and(|(d, _)| d == decision)
}

/// Where a member that waits for its reboot stands, in words.
fn reboot_why(read: &dyn FleetRead, r: &Rollout, node: &NodeId) -> String {
    match read.node(node).and_then(|n| n.drain) {
        Some(d) if d.drained.is_some() => "drained; waiting for its agent to reboot it into the new system".into(),
        Some(d) if d.rollout == Some(r.id) => "needs a reboot; its instances are being handed over first".into(),
        Some(_) => "needs a reboot; waiting for an operator's drain to finish".into(),
        None => "needs a reboot; it is drained first".into(),
    }
}

/// Where each member of `r` stands at `now` (deadlines are judged against it).
pub fn assess(state: &dyn FleetRead, r: &Rollout, now: Timestamp) -> Assessment {
    let members = r
        .members
        .iter()
        .map(|node| {
            let moved = r.waves.iter().find_map(|w| w.nodes.iter().find(|wn| &wn.node == node).map(|wn| (w, wn)));
            match moved {
                Some((w, wn)) => {
                    let (phase, unhealthy, why) = moved_status(state, r, w, wn, now);
                    Member { node: node.clone(), wave: Some(w.number), canary: w.canary, phase, unhealthy, why }
                }
                None => {
                    let (phase, why) = if r.state != RolloutState::Running {
                        (MemberPhase::Untouched, None)
                    } else {
                        match ineligible(state, r, node) {
                            Some(why) => (MemberPhase::Skipped, Some(why)),
                            None => (MemberPhase::Pending, None),
                        }
                    };
                    Member { node: node.clone(), wave: None, canary: false, phase, unhealthy: false, why }
                }
            }
        })
        .collect();
    Assessment { members }
}

/// Whether `r` drains each member before its wave and uncordons it once it confirms `r`'s system: its action,
/// `boot`, takes effect at a reboot, which stops whatever runs on the node — so the node's instances are handed
/// over first, and the node takes work again afterwards. Such a rollout moves one member per wave.
pub fn drains_first(r: &Rollout) -> bool {
    r.action == SwitchAction::Boot || r.drain
}

/// Why `r` drains its members first, for messages.
pub fn why_drain(r: &Rollout) -> &'static str {
    if r.action == SwitchAction::Boot { "its action `boot` needs a reboot" } else { "it was started with --drain" }
}

/// The drain of `node` that `r`'s controller started, if it is draining for `r`.
pub(crate) fn drained_for(state: &dyn FleetRead, r: &Rollout, node: &NodeId) -> Option<DrainFacts> {
    state.node(node)?.drain.filter(|d| d.rollout == Some(r.id))
}

/// Why `node` may not be moved by `r` now, if it may not.
fn ineligible(state: &dyn FleetRead, r: &Rollout, node: &NodeId) -> Option<String> {
    let Some(rec) = state.node(node) else { return Some("it is no longer in the fleet".into()) };
    let ours = drains_first(r) && rec.drain.is_some_and(|d| d.rollout == Some(r.id));
    if rec.state != NodeState::Active && !ours {
        return Some(format!("it is `{}`, not `active`", rec.state));
    }
    state.pin(node).map(|(_, reason)| format!("it is pinned ({reason})"))
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

/// What a rollout decision proposes: one of the rollout's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutMove {
    WaveStarted(RolloutWaveStarted),
    /// A member is drained before its wave (a rollout that [`drains_first`]).
    Drain(NodeDrainStarted),
    /// A member drained for the rollout takes work again: it confirmed the rollout's system (or was put back on
    /// its own), or it was never moved and the rollout no longer runs.
    Uncordon(NodeUncordoned),
    Completed(RolloutCompleted),
    Halted(RolloutHalted),
    NodesReverted(RolloutNodesReverted),
    Reverted(RolloutReverted),
    MemberLeft(RolloutMemberLeft),
}

/// A decision of the rollout controller: an event with an id derived from what it decides, so deciding the same
/// again (next pass, another leader) is answered with the original seq, and the seq of the event that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutDecision {
    pub id: EventId,
    pub event: RolloutMove,
    pub comment: String,
    /// The event that made this decision the next one: the report that settled a wave or a revert, the failing
    /// report, the pin or the replacing decision, or the rollout's start.
    pub cause: u64,
}

/// The latest report that settled a member of `r` (its wave's outcome, or its revert's), or `r`'s start.
fn last_settled(r: &Rollout, reverts: bool) -> u64 {
    let seqs = r
        .waves
        .iter()
        .flat_map(|w| &w.nodes)
        .map(|wn| if reverts { wn.revert.as_ref().map_or(0, |rv| rv.settled) } else { wn.settled });
    seqs.max().unwrap_or(0).max(r.id)
}

/// What made `r` halt for `reason`: the report that failed the member the reason names first, else its wave.
fn halt_cause(r: &Rollout, a: &Assessment) -> u64 {
    let failed = a.canary_failure().or_else(|| a.failed().into_iter().next());
    let named = failed.or_else(|| a.members.iter().find(|m| m.unhealthy));
    named.and_then(|m| r.moved(&m.node)).map(|(w, wn)| if wn.settled > 0 { wn.settled } else { w.seq }).unwrap_or(r.id)
}

/// The members of every open rollout that are away now (moving to the rollout's system, or being put back): what
/// a service's disruption budget already counts as out.
pub fn in_flight(rollouts: &RolloutsState, state: &dyn FleetRead, now: Timestamp) -> BTreeSet<NodeId> {
    let mut out = BTreeSet::new();
    for r in rollouts.open() {
        let a = assess(state, r, now);
        out.extend(
            a.members
                .into_iter()
                .filter(|m| matches!(m.phase, MemberPhase::Moving | MemberPhase::Reverting))
                .map(|m| m.node),
        );
    }
    out
}

/// Whether taking `nodes` out as well as the members in flight (`out`) keeps every service within budget.
pub fn budget_allows(state: &dyn FleetRead, out: &BTreeSet<NodeId>, nodes: &[NodeId]) -> Result<(), String> {
    let mut all = out.clone();
    all.extend(nodes.iter().cloned());
    state.disruption(&all)
}

/// Up to `size` of `candidates`, in order, that can be taken out together with `out` within every service's
/// budget.
fn within_budget(state: &dyn FleetRead, out: &BTreeSet<NodeId>, candidates: &[&NodeId], size: usize) -> Vec<NodeId> {
    let mut chosen: Vec<NodeId> = Vec::new();
    for n in candidates {
        if chosen.len() == size {
            break;
        }
        chosen.push((*n).clone());
        if budget_allows(state, out, &chosen).is_err() {
            chosen.pop();
        }
    }
    chosen
}

/// Why `r`'s next wave (or its drain before one) waits at `now` for its pool's maintenance window, if it does.
pub fn window_wait(state: &dyn FleetRead, r: &Rollout, now: Timestamp) -> Option<String> {
    let live = state.live_spec()?;
    live.spec.pools.get(&r.pool)?.maintenance_closed(&r.pool, now)
}

/// Why the next wave of `r` waits for a service's budget, if it does: its first pending member cannot be taken
/// out now. For `sendan rollout status`.
pub fn budget_wait(rollouts: &RolloutsState, state: &dyn FleetRead, r: &Rollout, now: Timestamp) -> Option<String> {
    if r.state != RolloutState::Running {
        return None;
    }
    let a = assess(state, r, now);
    if a.moving() > 0 {
        return None;
    }
    let out = in_flight(rollouts, state, now);
    let pending = a.pending();
    if pending.is_empty() || !within_budget(state, &out, &pending, 1).is_empty() {
        return None;
    }
    budget_allows(state, &out, &[pending[0].clone()]).err()
}

/// Everything the rollout controller should propose now, one decision per open rollout at most. A decision's
/// wave or revert batch counts as out for the rollouts decided after it, so two pools' waves together stay within
/// every service's budget.
pub fn decide(rollouts: &RolloutsState, state: &dyn FleetRead, now: Timestamp) -> Vec<RolloutDecision> {
    let mut out = in_flight(rollouts, state, now);
    let mut decisions = Vec::new();
    for r in rollouts.open() {
        if let Some(d) = decide_one(state, r, now, &out) {
            match &d.event {
                RolloutMove::WaveStarted(w) => out.extend(w.nodes.iter().cloned()),
                RolloutMove::NodesReverted(b) => out.extend(b.nodes.iter().cloned()),
                _ => {}
            }
            decisions.push(d);
        }
    }
    decisions
}

fn decide_one(state: &dyn FleetRead, r: &Rollout, now: Timestamp, out: &BTreeSet<NodeId>) -> Option<RolloutDecision> {
    let id = r.id.to_be_bytes();
    // A member that leaves is recorded first: everything else is decided on the members that stay.
    for w in &r.waves {
        for wn in &w.nodes {
            if let Some(why) = leaving(state, r, w, wn) {
                let cause = leaving_cause(state, wn, &why);
                return Some(RolloutDecision {
                    id: EventId::derive(&[b"rollout-left", &id, wn.node.as_str().as_bytes(), &cause.to_be_bytes()]),
                    comment: format!("{} leaves rollout {}: {why}", wn.node, r.id),
                    event: RolloutMove::MemberLeft(RolloutMemberLeft { rollout: r.id, node: wn.node.clone(), why }),
                    cause,
                });
            }
        }
    }
    if let Some(d) = uncordon(state, r) {
        return Some(d);
    }
    if let Some(d) = reboot_drain(state, r) {
        return Some(d);
    }
    let a = assess(state, r, now);
    let halt = |reason: String| RolloutDecision {
        id: EventId::derive(&[b"rollout-halted", &id]),
        comment: format!("halting rollout {} of pool {}: {reason}", r.id, r.pool),
        event: RolloutMove::Halted(RolloutHalted { rollout: r.id, reason, revert: halt_reverts(r, &a) }),
        cause: halt_cause(r, &a),
    };
    match r.state {
        RolloutState::Running => {
            if let Some(reason) = halt_reason(r, &a) {
                return Some(halt(reason));
            }
            if a.moving() > 0 || a.rebooting() > 0 {
                return None;
            }
            let pending = a.pending();
            if pending.is_empty() {
                return Some(RolloutDecision {
                    id: EventId::derive(&[b"rollout-completed", &id]),
                    event: RolloutMove::Completed(RolloutCompleted { rollout: r.id }),
                    comment: format!("every eligible member of pool {} confirmed {}", r.pool, r.system),
                    cause: last_settled(r, false),
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
                return Some(halt(reason));
            }
            // Waves, and the drains before them, wait for the pool's maintenance window (halts and reverts do not).
            if window_wait(state, r, now).is_some() {
                return None;
            }
            let wave = r.waves.len() as u32 + 1;
            let nodes = if drains_first(r) {
                // The member is drained first — its instances handed over, no disruption — and its wave waits until
                // it is. One member at a time: the work of two nodes drained together may have nowhere to go.
                let chosen: Vec<NodeId> = pending[..1].iter().map(|n| (*n).clone()).collect();
                if let Some(n) = chosen.iter().find(|n| drained_for(state, r, n).is_none()) {
                    let since = state.node(n).map_or(0, |f| f.since);
                    return Some(RolloutDecision {
                        id: EventId::derive(&[b"rollout-drain", &id, n.as_str().as_bytes(), &since.to_be_bytes()]),
                        comment: format!("draining {n} before wave {wave} of rollout {}: {}", r.id, why_drain(r)),
                        event: RolloutMove::Drain(NodeDrainStarted { node: n.clone(), deadline: None, force: false }),
                        cause: last_settled(r, false).max(since),
                    });
                }
                if chosen.iter().any(|n| drained_for(state, r, n).is_some_and(|d| d.drained.is_none())) {
                    return None;
                }
                within_budget(state, out, &pending[..1], 1)
            } else {
                // Only members whose services stay within budget go; none: the wave waits (`budget_wait` says why).
                within_budget(state, out, &pending, size)
            };
            if nodes.is_empty() {
                return None;
            }
            let names: Vec<&str> = nodes.iter().map(|n| n.as_str()).collect();
            Some(RolloutDecision {
                id: EventId::derive(&[b"rollout-wave", &id, &wave.to_be_bytes()]),
                comment: format!(
                    "{} wave {wave} of rollout {}: {}",
                    if canary { "canary" } else { "starting" },
                    r.id,
                    names.join(", ")
                ),
                event: RolloutMove::WaveStarted(RolloutWaveStarted { rollout: r.id, wave, nodes }),
                cause: last_settled(r, false),
            })
        }
        RolloutState::Reverting => {
            if a.reverting() > 0 {
                return None;
            }
            let after_halt = |seq: u64| seq.max(r.halted.unwrap_or(r.id));
            let confirmed = a.confirmed();
            if confirmed.is_empty() {
                return Some(RolloutDecision {
                    id: EventId::derive(&[b"rollout-reverted", &id]),
                    event: RolloutMove::Reverted(RolloutReverted { rollout: r.id }),
                    comment: format!("every moved member of pool {} was put back", r.pool),
                    cause: after_halt(last_settled(r, true)),
                });
            }
            // With the budget used up by unhealthy members the revert waits; `sendan rollout status` says why.
            let budget = (r.max_unavailable as usize).saturating_sub(a.unavailable());
            if budget == 0 {
                return None;
            }
            let nodes = within_budget(state, out, &confirmed, budget);
            if nodes.is_empty() {
                return None;
            }
            let batch = r.reverts.len() as u64;
            let names: Vec<&str> = nodes.iter().map(|n| n.as_str()).collect();
            let comment = format!("putting back {} (rollout {} halted)", names.join(", "), r.id);
            Some(RolloutDecision {
                id: EventId::derive(&[b"rollout-revert", &id, &batch.to_be_bytes()]),
                event: RolloutMove::NodesReverted(RolloutNodesReverted { rollout: r.id, nodes }),
                comment,
                cause: after_halt(last_settled(r, true)),
            })
        }
        RolloutState::Completed | RolloutState::Reverted => None,
    }
}

/// The next member drained for `r` to take work again, if one is: it confirmed `r`'s system (its wave's, or
/// its revert's) and booted it when that needs a reboot, or `r` no longer runs and never moved it.
fn uncordon(state: &dyn FleetRead, r: &Rollout) -> Option<RolloutDecision> {
    for node in &r.members {
        let Some(d) = drained_for(state, r, node) else { continue };
        if state.pending_reboot(node).is_some() {
            continue;
        }
        let (done, cause) = match r.moved(node) {
            Some((w, wn)) => confirmed_decision(w, wn).map_or((false, 0), |(_, settled)| (true, settled)),
            None => (r.state != RolloutState::Running, r.halted.unwrap_or(d.seq)),
        };
        if done {
            return Some(RolloutDecision {
                id: EventId::derive(&[
                    b"rollout-uncordon",
                    &r.id.to_be_bytes(),
                    node.as_str().as_bytes(),
                    &d.seq.to_be_bytes(),
                ]),
                comment: format!("{node} takes work again after rollout {}", r.id),
                event: RolloutMove::Uncordon(NodeUncordoned { node: node.clone() }),
                cause: cause.max(d.seq),
            });
        }
    }
    None
}

/// The decision a moved member confirmed last — its revert's once put back, else its wave's — and the seq of the
/// report that confirmed it; `None` while that decision is not confirmed.
fn confirmed_decision(w: &Wave, wn: &WaveNode) -> Option<(u64, u64)> {
    match &wn.revert {
        Some(rv) => (rv.outcome == MemberOutcome::Confirmed).then_some((rv.decision, rv.settled)),
        None => (wn.outcome == MemberOutcome::Confirmed).then_some((w.seq, wn.settled)),
    }
}

/// The drain before a member's reboot, if one is due: a member confirmed `r`'s system (its wave's decision, or
/// its revert's) and waits for a reboot into it, and nobody drains it yet. Its agent reboots it once it is
/// drained, and [`uncordon`] gives it work again once it booted the system. One member at a time, like the
/// drains of a rollout that [`drains_first`]: the work of two nodes drained together may have nowhere to go.
fn reboot_drain(state: &dyn FleetRead, r: &Rollout) -> Option<RolloutDecision> {
    let mut due = Vec::new();
    for w in &r.waves {
        for wn in &w.nodes {
            let Some((seq, settled)) = confirmed_decision(w, wn) else { continue };
            if !awaits_reboot(state, &wn.node, seq) {
                continue;
            }
            let Some(rec) = state.node(&wn.node) else { continue };
            match rec.drain {
                // Its reboot is under way (drained, or being drained, for this rollout): one at a time.
                Some(d) if d.rollout == Some(r.id) => return None,
                // Someone else drains it: its agent reboots it once that drain is done.
                Some(_) => {}
                None if rec.state == NodeState::Active => due.push((wn.node.clone(), seq, settled)),
                None => {}
            }
        }
    }
    let (node, seq, settled) = due.into_iter().next()?;
    let id = r.id.to_be_bytes();
    Some(RolloutDecision {
        id: EventId::derive(&[b"rollout-reboot-drain", &id, node.as_str().as_bytes(), &seq.to_be_bytes()]),
        comment: format!("draining {node} before its reboot into the system of rollout {}", r.id),
        event: RolloutMove::Drain(NodeDrainStarted { node, deadline: None, force: false }),
        cause: settled.max(seq),
    })
}

/// May wave `wave` of `r` move `nodes` now? `Err` is the reason, for the rejection.
pub fn wave_allowed(
    state: &dyn FleetRead,
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
    if let Some(m) = a.members.iter().find(|m| m.phase == MemberPhase::Moving) {
        return Err(format!("wave {} has not settled: {} is still moving", m.wave.unwrap_or(0), m.node));
    }
    if let Some(m) = a.members.iter().find(|m| m.phase == MemberPhase::Rebooting) {
        return Err(format!(
            "wave {} has not settled: {} has not booted the new system yet",
            m.wave.unwrap_or(0),
            m.node
        ));
    }
    for n in nodes {
        match a.member(n) {
            None => return Err(format!("node {n} is not a member of the rollout (pool {})", r.pool)),
            Some(m) if m.phase == MemberPhase::Pending => {}
            Some(m) if m.wave.is_some() => {
                return Err(format!("node {n} was already moved by wave {}", m.wave.unwrap_or(0)));
            }
            Some(_) => {
                let why = ineligible(state, r, n).unwrap_or_else(|| "it may not move".into());
                return Err(format!("node {n} may not move: {why}"));
            }
        }
    }
    if drains_first(r)
        && let Some(n) = nodes.iter().find(|n| drained_for(state, r, n).is_none_or(|d| d.drained.is_none()))
    {
        return Err(format!(
            "node {n} is not drained for rollout {} yet, and {}: a member is drained first",
            r.id,
            why_drain(r)
        ));
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
pub fn completion_allowed(r: &Rollout, a: &Assessment) -> Result<(), String> {
    if let Some(reason) = halt_reason(r, a) {
        return Err(format!("the rollout must halt: {reason}"));
    }
    if let Some(m) = a
        .members
        .iter()
        .find(|m| matches!(m.phase, MemberPhase::Moving | MemberPhase::Pending | MemberPhase::Rebooting))
    {
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
            Some(m) if matches!(m.phase, MemberPhase::Confirmed | MemberPhase::Rebooting) => {}
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
    if let Some(m) = a
        .members
        .iter()
        .find(|m| matches!(m.phase, MemberPhase::Reverting | MemberPhase::Confirmed | MemberPhase::Rebooting))
    {
        return Err(format!("member {} is still {}", m.node, m.phase.name()));
    }
    Ok(())
}

/// May running `r` halt now, putting back `revert` at once? The list must be exactly [`halt_reverts`]: a halt
/// never leaves a failed member on the rollout's system, nor puts back a confirmed one outside the budget.
pub fn halt_allowed(r: &Rollout, a: &Assessment, revert: &[NodeId]) -> Result<(), String> {
    let want = halt_reverts(r, a);
    if revert == want.as_slice() {
        return Ok(());
    }
    let names = |v: &[NodeId]| {
        if v.is_empty() { "none".to_owned() } else { v.iter().map(NodeId::as_str).collect::<Vec<_>>().join(", ") }
    };
    Err(format!(
        "a halt now puts back at once the members still moving or failed — {} — not {}",
        names(&want),
        names(revert)
    ))
}

/// May `node` leave open `r` now (`RolloutMemberLeft`)?
pub fn leave_allowed(state: &dyn FleetRead, r: &Rollout, node: &NodeId) -> Result<(), String> {
    let Some((w, wn)) = r.moved(node) else {
        return Err(format!("node {node} was not moved by rollout {}", r.id));
    };
    match leaving(state, r, w, wn) {
        Some(_) => Ok(()),
        None => Err(format!(
            "node {node} is not leaving rollout {}: it is not pinned before its agent started, and its decision is the rollout's",
            r.id
        )),
    }
}
