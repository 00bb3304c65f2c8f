//! Which NixOS system each node should run and what its agent reported, and pool rollouts: the rules (`check`)
//! and the fold (`evolve`) of the events in [`crate::event::systems`](crate::event).
//!
//! A node's desired system is the most recent *decision*: a `SpecApplied` that changed the node's system, an
//! operator's `NodeSystemSet`, a rollout wave, or a rollout's revert. The decision's seq identifies it; agent
//! reports name it. Only the latest attempt of a node is kept here; the log holds every one.

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use super::FleetState;
use crate::event::{
    Event, EventKind, NodePinned, NodeSystemSet, NodeUnpinned, Payload, Proposal, RolloutHalted, RolloutNodesReverted,
    RolloutStarted, RolloutWaveStarted, SwitchAction, SystemKind, system_kind,
};
use crate::ids::{NodeId, Timestamp};
use crate::lifecycle::NodeState;
use crate::rejection::Rejection;
use crate::rollout;

/// Everything the log says about systems.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemsState {
    pub nodes: OrdMap<NodeId, Arc<NodeSystem>>,
    /// Every rollout, by id (the seq of its `RolloutStarted`).
    pub rollouts: OrdMap<u64, Arc<Rollout>>,
    /// The rollout of each pool that has not ended (running or reverting).
    pub open: OrdMap<String, u64>,
}

/// One node's system: what it should run, whether it is pinned, what it runs, and its latest attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSystem {
    pub desired: Option<Desired>,
    pub pinned: Option<Pin>,
    /// The running system, as the agent last reported or confirmed it.
    pub current: Option<String>,
    /// The booted system, as the agent last reported it.
    pub booted: Option<String>,
    /// The latest decision the agent acted on.
    pub attempt: Option<Attempt>,
    /// The seq of the last event about the node's system.
    pub updated: u64,
}

/// A decision: the system a node should run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The seq of the deciding event; agent reports name it.
    pub seq: u64,
    /// A store path or a flake reference.
    pub system: String,
    pub action: SwitchAction,
    pub source: Source,
    /// The rollout that decided, for `rollout` and `revert` decisions.
    pub rollout: Option<u64>,
}

/// Who decided a node's system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A `SpecApplied` that changed the node's system.
    Spec,
    /// `sendan node set-system`.
    Operator,
    /// A rollout wave.
    Rollout,
    /// A halted rollout putting back what the node wanted before.
    Revert,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Spec => "the spec",
            Source::Operator => "an operator",
            Source::Rollout => "a rollout",
            Source::Revert => "a rollout's revert",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub seq: u64,
    pub reason: String,
}

/// How far the agent got with one decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub decision: u64,
    /// The store path being activated (known once prefetched).
    pub path: Option<String>,
    pub action: SwitchAction,
    /// The system remembered to roll back to.
    pub previous: Option<String>,
    pub phase: Phase,
    /// The last `switch-to-configuration` exit code (of the rollback, once rolled back).
    pub exit_code: Option<i32>,
    pub reboot_required: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The seq of the attempt's latest report.
    pub updated: u64,
}

/// The phases of an attempt. `PrefetchFailed`, `Confirmed`, `RolledBack` and `RollbackFailed` finish it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Prefetched,
    PrefetchFailed,
    Activating,
    ProfileSet,
    Switched,
    SwitchFailed,
    HealthFailed,
    Confirmed,
    RolledBack,
    RollbackFailed,
}

impl Phase {
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::PrefetchFailed | Phase::Confirmed | Phase::RolledBack | Phase::RollbackFailed)
    }

    /// Between `SystemActivating` and the attempt's end: the node may be away from a healthy system.
    pub fn is_activating(self) -> bool {
        matches!(
            self,
            Phase::Activating | Phase::ProfileSet | Phase::Switched | Phase::SwitchFailed | Phase::HealthFailed
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Prefetched => "prefetched",
            Phase::PrefetchFailed => "prefetch-failed",
            Phase::Activating => "activating",
            Phase::ProfileSet => "profile-set",
            Phase::Switched => "switched",
            Phase::SwitchFailed => "switch-failed",
            Phase::HealthFailed => "health-failed",
            Phase::Confirmed => "confirmed",
            Phase::RolledBack => "rolled-back",
            Phase::RollbackFailed => "rollback-failed",
        }
    }
}

/// A pool rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The seq of its `RolloutStarted`.
    pub id: u64,
    pub pool: String,
    pub system: String,
    pub action: SwitchAction,
    pub max_unavailable: u32,
    pub canary: u32,
    pub max_failures: u32,
    pub health_timeout_secs: u32,
    pub started_at: Timestamp,
    /// The pool's nodes when it started, in name order.
    pub members: Vec<NodeId>,
    pub waves: Vec<Wave>,
    pub state: RolloutState,
    /// Why it was halted.
    pub reason: Option<String>,
    /// The seq of the event that halted it, and of the event that ended it.
    pub halted: Option<u64>,
    pub ended: Option<u64>,
    /// Revert batches: the seq and time of each `RolloutHalted` / `RolloutNodesReverted` that reverted nodes.
    pub reverts: Vec<(u64, Timestamp)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    /// Moving members wave by wave.
    Running,
    /// Halted: putting moved members back, within the budget.
    Reverting,
    /// Every eligible member runs the rollout's system.
    Completed,
    /// Halted, and every moved member was put back (or could not be).
    Reverted,
}

impl RolloutState {
    pub fn is_open(self) -> bool {
        matches!(self, RolloutState::Running | RolloutState::Reverting)
    }

    pub fn name(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Reverting => "reverting",
            RolloutState::Completed => "completed",
            RolloutState::Reverted => "reverted",
        }
    }
}

/// One wave: the members it moved, at `seq` (their decision) and `time`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    pub number: u32,
    pub seq: u64,
    pub time: Timestamp,
    /// A canary wave: it started before any member had confirmed the rollout's system. A failure in it halts
    /// the rollout whatever `max_failures` says.
    pub canary: bool,
    pub nodes: Vec<WaveNode>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveNode {
    pub node: NodeId,
    /// What the node wanted before the wave, put back by a revert (`None`: nothing known to put back).
    pub previous: Option<String>,
    pub previous_action: SwitchAction,
    pub outcome: Outcome,
    /// The revert of this node, once decided: the decision's seq and how it went.
    pub revert: Option<(u64, Outcome)>,
}

/// How a member's decision (the wave's, or its revert) went, from its agent's reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Decided; no final report yet.
    InFlight,
    /// The agent confirmed the system.
    Confirmed,
    /// The attempt failed. `healthy`: the node is back on a working system (rolled back, or never switched).
    Failed { healthy: bool, why: String },
    /// Another decision replaced this one, or the node was pinned before its agent started: it left the rollout.
    Left { why: String },
}

impl FleetState {
    pub fn node_system(&self, id: &NodeId) -> Option<&NodeSystem> {
        self.systems.nodes.get(id).map(Arc::as_ref)
    }

    pub fn rollout(&self, id: u64) -> Option<&Rollout> {
        self.systems.rollouts.get(&id).map(Arc::as_ref)
    }

    /// The rollout of `pool` that has not ended.
    pub fn open_rollout(&self, pool: &str) -> Option<&Rollout> {
        self.systems.open.get(pool).and_then(|id| self.rollout(*id))
    }

    /// The open rollout `node` is a member of.
    pub fn rollout_of(&self, node: &NodeId) -> Option<&Rollout> {
        self.systems.open.values().filter_map(|id| self.rollout(*id)).find(|r| r.members.contains(node))
    }

    /// The substituters and trusted keys of the live spec's `bootstrap`: where agents fetch closures from.
    pub fn substituters(&self) -> (Vec<String>, Vec<String>) {
        match &self.spec.live {
            Some(l) => (l.spec.bootstrap.substituters.clone(), l.spec.bootstrap.trusted_public_keys.clone()),
            None => (Vec::new(), Vec::new()),
        }
    }
}

/// Whether `payload` belongs to this domain (its rules and fold are here).
pub fn owns(payload: &Payload) -> bool {
    matches!(
        payload,
        Payload::NodeSystemSet(_)
            | Payload::NodePinned(_)
            | Payload::NodeUnpinned(_)
            | Payload::RolloutStarted(_)
            | Payload::RolloutWaveStarted(_)
            | Payload::RolloutCompleted(_)
            | Payload::RolloutHalted(_)
            | Payload::RolloutNodesReverted(_)
            | Payload::RolloutReverted(_)
            | Payload::SystemReported(_)
            | Payload::SystemPrefetched(_)
            | Payload::SystemPrefetchFailed(_)
            | Payload::SystemActivating(_)
            | Payload::SystemProfileSet(_)
            | Payload::SystemSwitched(_)
            | Payload::SystemHealthFailed(_)
            | Payload::SystemConfirmed(_)
            | Payload::SystemRolledBack(_)
    )
}

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
fn live_node(state: &FleetState, id: &NodeId, event: EventKind) -> Result<(), Rejection> {
    let node = state.node(id).ok_or_else(|| Rejection::UnknownNode { node: id.clone(), event })?;
    if node.state.is_terminal() {
        return Err(Rejection::NodeRetired { node: id.clone(), event });
    }
    Ok(())
}

/// The node's desired decision, which `decision` must be.
fn current_decision<'s>(
    state: &'s FleetState,
    node: &NodeId,
    decision: u64,
    event: EventKind,
) -> Result<&'s Desired, Rejection> {
    let desired = state.node_system(node).and_then(|s| s.desired.as_ref());
    match desired {
        Some(d) if d.seq == decision => Ok(d),
        other => Err(Rejection::StaleDecision { node: node.clone(), event, decision, desired: other.map(|d| d.seq) }),
    }
}

/// The node's attempt of `decision`, which must be between `SystemActivating` and its end (or, with
/// `confirmed_too`, confirmed) and activating `path`.
fn open_attempt<'s>(
    state: &'s FleetState,
    node: &NodeId,
    decision: u64,
    path: &str,
    event: EventKind,
    confirmed_too: bool,
) -> Result<&'s Attempt, Rejection> {
    let refuse = |why: String| Rejection::NoActivation { node: node.clone(), event, decision, why };
    let Some(a) = state.node_system(node).and_then(|s| s.attempt.as_ref()).filter(|a| a.decision == decision) else {
        return Err(refuse("the agent reported no `SystemActivating` for it".into()));
    };
    if a.phase == Phase::Prefetched {
        return Err(refuse(
            "the agent reported no `SystemActivating` for it (the attempt is only `prefetched`)".into(),
        ));
    }
    let open = a.phase.is_activating() || (confirmed_too && a.phase == Phase::Confirmed);
    if !open {
        return Err(refuse(format!("that attempt is `{}`", a.phase.name())));
    }
    if a.path.as_deref() != Some(path) {
        return Err(refuse(format!("it activates {}, not {path}", a.path.as_deref().unwrap_or("nothing"))));
    }
    Ok(a)
}

/// May `proposal` (one of this domain's events) be accepted?
pub(super) fn check(state: &FleetState, proposal: &Proposal) -> Result<(), Rejection> {
    let kind = proposal.payload.kind();
    let now = proposal.time.max(state.last_time);
    match &proposal.payload {
        Payload::NodeSystemSet(p) => {
            live_node(state, &p.node, kind)?;
            valid_system(&p.system)?;
            if let Some(pin) = state.node_system(&p.node).and_then(|s| s.pinned.as_ref()) {
                return Err(Rejection::NodePinned { node: p.node.clone(), reason: pin.reason.clone() });
            }
            if let Some(r) = state.rollout_of(&p.node) {
                return Err(Rejection::NodeInRollout { node: p.node.clone(), rollout: r.id, pool: r.pool.clone() });
            }
            Ok(())
        }
        Payload::NodePinned(p) => {
            live_node(state, &p.node, kind)?;
            match state.node_system(&p.node).and_then(|s| s.pinned.as_ref()) {
                Some(pin) => Err(Rejection::NodePinned { node: p.node.clone(), reason: pin.reason.clone() }),
                None => Ok(()),
            }
        }
        Payload::NodeUnpinned(p) => {
            if state.node(&p.node).is_none() {
                return Err(Rejection::UnknownNode { node: p.node.clone(), event: kind });
            }
            match state.node_system(&p.node).and_then(|s| s.pinned.as_ref()) {
                Some(_) => Ok(()),
                None => Err(Rejection::NodeNotPinned { node: p.node.clone() }),
            }
        }
        Payload::RolloutStarted(p) => check_rollout_started(state, p),
        Payload::RolloutWaveStarted(p) => rollout_rule(state, p.rollout, kind, RolloutState::Running, now, |r, a| {
            rollout::wave_allowed(state, r, a, p.wave, &p.nodes)
        }),
        Payload::RolloutCompleted(p) => rollout_rule(state, p.rollout, kind, RolloutState::Running, now, |r, a| {
            rollout::completion_allowed(state, r, a)
        }),
        Payload::RolloutHalted(p) => {
            open_rollout(state, p.rollout, kind, RolloutState::Running)?;
            Ok(())
        }
        Payload::RolloutNodesReverted(p) => {
            rollout_rule(state, p.rollout, kind, RolloutState::Reverting, now, |r, a| {
                rollout::revert_allowed(r, a, &p.nodes)
            })
        }
        Payload::RolloutReverted(p) => {
            rollout_rule(state, p.rollout, kind, RolloutState::Reverting, now, rollout::reverted_allowed)
        }
        Payload::SystemReported(p) => {
            live_node(state, &p.node, kind)?;
            for path in p.current.iter().chain(&p.booted) {
                valid_path(path)?;
            }
            Ok(())
        }
        Payload::SystemPrefetched(p) => {
            live_node(state, &p.node, kind)?;
            valid_path(&p.path)?;
            let d = current_decision(state, &p.node, p.decision, kind)?;
            same_system(&p.node, kind, p.decision, d, &p.system)
        }
        Payload::SystemPrefetchFailed(p) => {
            live_node(state, &p.node, kind)?;
            let d = current_decision(state, &p.node, p.decision, kind)?;
            same_system(&p.node, kind, p.decision, d, &p.system)
        }
        Payload::SystemActivating(p) => {
            live_node(state, &p.node, kind)?;
            valid_path(&p.path)?;
            if let Some(prev) = &p.previous {
                valid_path(prev)?;
            }
            let d = current_decision(state, &p.node, p.decision, kind)?;
            if system_kind(&d.system) == Ok(SystemKind::StorePath) && d.system != p.path {
                return Err(Rejection::NoActivation {
                    node: p.node.clone(),
                    event: kind,
                    decision: p.decision,
                    why: format!("the decision is {}, not {}", d.system, p.path),
                });
            }
            match state.node_system(&p.node).and_then(|s| s.pinned.as_ref()) {
                Some(pin) => Err(Rejection::NodePinned { node: p.node.clone(), reason: pin.reason.clone() }),
                None => Ok(()),
            }
        }
        Payload::SystemProfileSet(p) => {
            live_node(state, &p.node, kind)?;
            open_attempt(state, &p.node, p.decision, &p.path, kind, false).map(|_| ())
        }
        Payload::SystemSwitched(p) => {
            live_node(state, &p.node, kind)?;
            open_attempt(state, &p.node, p.decision, &p.path, kind, false).map(|_| ())
        }
        Payload::SystemHealthFailed(p) => {
            live_node(state, &p.node, kind)?;
            switched_attempt(state, &p.node, p.decision, &p.path, kind)
        }
        Payload::SystemConfirmed(p) => {
            live_node(state, &p.node, kind)?;
            valid_path(&p.path)?;
            if p.switched {
                switched_attempt(state, &p.node, p.decision, &p.path, kind)
            } else {
                let d = current_decision(state, &p.node, p.decision, kind)?;
                if system_kind(&d.system) == Ok(SystemKind::StorePath) && d.system != p.path {
                    return Err(Rejection::NoActivation {
                        node: p.node.clone(),
                        event: kind,
                        decision: p.decision,
                        why: format!("the decision is {}, not {}", d.system, p.path),
                    });
                }
                Ok(())
            }
        }
        Payload::SystemRolledBack(p) => {
            live_node(state, &p.node, kind)?;
            valid_path(&p.to)?;
            open_attempt(state, &p.node, p.decision, &p.path, kind, true).map(|_| ())
        }
        other => unreachable!("systems::check called for {}", other.kind()),
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

/// The attempt must be open and its last switch must have succeeded.
fn switched_attempt(
    state: &FleetState,
    node: &NodeId,
    decision: u64,
    path: &str,
    event: EventKind,
) -> Result<(), Rejection> {
    let a = open_attempt(state, node, decision, path, event, false)?;
    if a.phase == Phase::Switched {
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

/// `event` about rollout `id`, which must be in state `want`, against the planner's `rule` for it, judged
/// at `now`: the same pure function the rollout controller proposes with.
fn rollout_rule(
    state: &FleetState,
    id: u64,
    event: EventKind,
    want: RolloutState,
    now: Timestamp,
    rule: impl FnOnce(&Rollout, &rollout::Assessment) -> Result<(), String>,
) -> Result<(), Rejection> {
    let r = open_rollout(state, id, event, want)?;
    let a = rollout::assess(state, r, now);
    rule(r, &a).map_err(|reason| Rejection::RolloutRefused { rollout: r.id, event, reason })
}

fn open_rollout(state: &FleetState, id: u64, event: EventKind, want: RolloutState) -> Result<&Rollout, Rejection> {
    let r = state.rollout(id).ok_or(Rejection::UnknownRollout { rollout: id })?;
    if r.state != want {
        return Err(Rejection::RolloutRefused {
            rollout: id,
            event,
            reason: format!("it is {}, and this needs a {} rollout", r.state.name(), want.name()),
        });
    }
    Ok(r)
}

fn check_rollout_started(state: &FleetState, p: &RolloutStarted) -> Result<(), Rejection> {
    let invalid = |reason: String| Err(Rejection::InvalidRollout { reason });
    valid_system(&p.system)?;
    if p.max_unavailable == 0 {
        return invalid("max-unavailable must be at least 1".into());
    }
    if p.canary > p.max_unavailable {
        return invalid(format!(
            "canary ({}) must not exceed max-unavailable ({}): the canaries go in one wave",
            p.canary, p.max_unavailable
        ));
    }
    if p.health_timeout_secs == 0 {
        return invalid("the health timeout must be at least 1 second".into());
    }
    let Some(live) = &state.spec.live else {
        return Err(Rejection::UnknownPool { pool: p.pool.clone(), why: "no spec is live".into() });
    };
    if !live.spec.pools.contains_key(&p.pool) {
        let known: Vec<&str> = live.spec.pools.keys().map(String::as_str).collect();
        return Err(Rejection::UnknownPool {
            pool: p.pool.clone(),
            why: format!(
                "the live spec declares {}",
                if known.is_empty() { "no pools".into() } else { known.join(", ") }
            ),
        });
    }
    if let Some(r) = state.open_rollout(&p.pool) {
        return Err(Rejection::RolloutOpen { pool: p.pool.clone(), rollout: r.id, state: r.state.name().into() });
    }
    let members = pool_members(state, &p.pool);
    if !members.iter().any(|n| state.node(n).is_some_and(|r| r.state == NodeState::Active)) {
        return invalid(format!(
            "pool {} has no active node ({} commissioned member{}); nothing would move",
            p.pool,
            members.len(),
            if members.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

/// The pool's nodes in the live spec that the fleet knows and that are not retired, in name order.
pub fn pool_members(state: &FleetState, pool: &str) -> Vec<NodeId> {
    let Some(live) = &state.spec.live else { return Vec::new() };
    live.spec
        .nodes
        .iter()
        .filter(|(_, n)| n.pool.as_deref() == Some(pool))
        .filter_map(|(name, _)| state.nodes.get_key_value(name.as_str()).map(|(id, rec)| (id, rec)))
        .filter(|(_, rec)| !rec.state.is_terminal())
        .map(|(id, _)| id.clone())
        .collect()
}

fn node_system_mut<'s>(state: &'s mut FleetState, id: &NodeId) -> &'s mut NodeSystem {
    Arc::make_mut(state.systems.nodes.entry(id.clone()).or_default())
}

fn rollout_mut(state: &mut FleetState, id: u64) -> Option<&mut Rollout> {
    state.systems.rollouts.get_mut(&id).map(Arc::make_mut)
}

/// Record a decision for `node` at `seq`. A member of an open rollout whose wave decision is replaced by another
/// decision leaves the rollout.
fn decide(state: &mut FleetState, node: &NodeId, desired: Desired) {
    let seq = desired.seq;
    let from_rollout = desired.rollout;
    let ns = node_system_mut(state, node);
    let before = ns.desired.replace(desired);
    ns.updated = seq;
    if let Some(before) = before
        && let Some(r) = before.rollout
        && from_rollout != Some(r)
        && let Some(ro) = rollout_mut(state, r)
        && ro.state.is_open()
    {
        for wn in ro.waves.iter_mut().flat_map(|w| w.nodes.iter_mut()).filter(|wn| &wn.node == node) {
            let why = format!("decision at seq {seq} replaced the rollout's");
            match &mut wn.revert {
                Some((s, o)) if *s == before.seq && matches!(o, Outcome::InFlight) => *o = Outcome::Left { why },
                None if matches!(wn.outcome, Outcome::InFlight | Outcome::Confirmed) => {
                    wn.outcome = Outcome::Left { why }
                }
                _ => {}
            }
        }
    }
}

/// Fold a `SpecApplied` (already folded into the live spec) into desired systems: every node whose declared
/// system the spec changed gets it as a decision at `seq`.
pub(super) fn spec_applied(state: &mut FleetState, seq: u64, before: Option<&super::spec::LiveSpec>) {
    let Some(live) = state.spec.live.clone() else { return };
    for (name, node) in &live.spec.nodes {
        let Some(system) = node.system.store_path.clone().or_else(|| node.system.flake.clone()) else { continue };
        let old = before.and_then(|b| b.spec.nodes.get(name)).map(|n| &n.system);
        if old == Some(&node.system) {
            continue;
        }
        let Ok(id) = NodeId::new(name.as_str()) else { continue };
        decide(state, &id, Desired { seq, system, action: SwitchAction::Switch, source: Source::Spec, rollout: None });
    }
}

/// The nodes a rollout event decided for (its wave, or the reverts it made), for the by-node index.
pub(super) fn decided_nodes(state: &FleetState, event: &Event) -> Vec<NodeId> {
    let id = match &event.payload {
        Payload::RolloutWaveStarted(p) => p.rollout,
        Payload::RolloutHalted(p) => p.rollout,
        Payload::RolloutNodesReverted(p) => p.rollout,
        other => return other.node().cloned().into_iter().collect(),
    };
    let Some(r) = state.rollout(id) else { return Vec::new() };
    r.waves
        .iter()
        .flat_map(|w| w.nodes.iter().map(move |wn| (w.seq, wn)))
        .filter(|(wave_seq, wn)| *wave_seq == event.seq || wn.revert.as_ref().is_some_and(|(s, _)| *s == event.seq))
        .map(|(_, wn)| wn.node.clone())
        .collect()
}

/// Fold one of this domain's accepted events. Rule-free: what `check` accepted is recorded as it is.
pub(super) fn evolve(state: &mut FleetState, event: &Event) {
    let seq = event.seq;
    if let Some(id) = event.payload.node()
        && let Some(n) = state.node_mut(id)
    {
        n.updated = seq;
    }
    match &event.payload {
        Payload::NodeSystemSet(NodeSystemSet { node, system, action }) => {
            let d = Desired { seq, system: system.clone(), action: *action, source: Source::Operator, rollout: None };
            decide(state, node, d);
        }
        Payload::NodePinned(NodePinned { node, reason }) => {
            let ns = node_system_mut(state, node);
            ns.pinned = Some(Pin { seq, reason: reason.clone() });
            ns.updated = seq;
            // A member whose wave decision its agent has not started on leaves the rollout: it stays as it is.
            let started = ns.attempt.as_ref().filter(|a| a.phase != Phase::Prefetched).map(|a| a.decision);
            if let Some(d) = ns.desired.clone()
                && d.source == Source::Rollout
                && started != Some(d.seq)
                && let Some(r) = d.rollout.and_then(|r| rollout_mut(state, r))
                && r.state.is_open()
            {
                for w in r.waves.iter_mut().filter(|w| w.seq == d.seq) {
                    for wn in w.nodes.iter_mut().filter(|wn| &wn.node == node && wn.outcome == Outcome::InFlight) {
                        wn.outcome = Outcome::Left { why: format!("pinned at seq {seq} before its agent started") };
                    }
                }
            }
        }
        Payload::NodeUnpinned(NodeUnpinned { node }) => {
            let ns = node_system_mut(state, node);
            ns.pinned = None;
            ns.updated = seq;
        }
        Payload::RolloutStarted(p) => {
            let members = pool_members(state, &p.pool);
            let r = Rollout {
                id: seq,
                pool: p.pool.clone(),
                system: p.system.clone(),
                action: p.action,
                max_unavailable: p.max_unavailable,
                canary: p.canary,
                max_failures: p.max_failures,
                health_timeout_secs: p.health_timeout_secs,
                started_at: event.time,
                members,
                waves: Vec::new(),
                state: RolloutState::Running,
                reason: None,
                halted: None,
                ended: None,
                reverts: Vec::new(),
            };
            state.systems.rollouts.insert(seq, Arc::new(r));
            state.systems.open.insert(p.pool.clone(), seq);
        }
        Payload::RolloutWaveStarted(RolloutWaveStarted { rollout, wave, nodes }) => {
            let Some(r) = state.rollout(*rollout).cloned() else { return };
            let mut moved = Vec::with_capacity(nodes.len());
            for node in nodes {
                let ns = state.node_system(node);
                let desired = ns.and_then(|s| s.desired.as_ref());
                let previous = desired.map(|d| d.system.clone()).or_else(|| ns.and_then(|s| s.current.clone()));
                let previous_action = desired.map(|d| d.action).unwrap_or_default();
                moved.push(WaveNode {
                    node: node.clone(),
                    previous,
                    previous_action,
                    outcome: Outcome::InFlight,
                    revert: None,
                });
                let d = Desired {
                    seq,
                    system: r.system.clone(),
                    action: r.action,
                    source: Source::Rollout,
                    rollout: Some(r.id),
                };
                decide(state, node, d);
            }
            let canary = r.canary > 0 && !rollout::any_confirmed(&r);
            if let Some(r) = rollout_mut(state, *rollout) {
                r.waves.push(Wave { number: *wave, seq, time: event.time, canary, nodes: moved });
            }
        }
        Payload::RolloutCompleted(p) => {
            end_rollout(state, p.rollout, seq, RolloutState::Completed);
        }
        Payload::RolloutHalted(RolloutHalted { rollout, reason }) => {
            let Some(r) = rollout_mut(state, *rollout) else { return };
            r.state = RolloutState::Reverting;
            r.reason = Some(reason.clone());
            r.halted = Some(seq);
            // Members not confirmed on the new system are already away from a healthy one (or back on their
            // old one): put them back at once. Confirmed members go back in budgeted batches.
            let now_back: Vec<NodeId> = r
                .waves
                .iter()
                .flat_map(|w| &w.nodes)
                .filter(|wn| matches!(wn.outcome, Outcome::InFlight | Outcome::Failed { .. }))
                .map(|wn| wn.node.clone())
                .collect();
            revert_nodes(state, *rollout, &now_back, seq, event.time);
        }
        Payload::RolloutNodesReverted(RolloutNodesReverted { rollout, nodes }) => {
            revert_nodes(state, *rollout, nodes, seq, event.time);
        }
        Payload::RolloutReverted(p) => {
            end_rollout(state, p.rollout, seq, RolloutState::Reverted);
        }
        Payload::SystemReported(p) => {
            let ns = node_system_mut(state, &p.node);
            ns.current = p.current.clone();
            ns.booted = p.booted.clone();
            ns.updated = seq;
        }
        Payload::SystemPrefetched(p) => {
            let action = desired_action(state, &p.node);
            let ns = node_system_mut(state, &p.node);
            ns.updated = seq;
            ns.attempt = Some(Attempt {
                decision: p.decision,
                path: Some(p.path.clone()),
                action,
                previous: None,
                phase: Phase::Prefetched,
                exit_code: None,
                reboot_required: false,
                error: None,
                updated: seq,
            });
        }
        Payload::SystemPrefetchFailed(p) => {
            let action = desired_action(state, &p.node);
            let ns = node_system_mut(state, &p.node);
            ns.updated = seq;
            ns.attempt = Some(Attempt {
                decision: p.decision,
                path: None,
                action,
                previous: None,
                phase: Phase::PrefetchFailed,
                exit_code: None,
                reboot_required: false,
                error: Some(p.error.clone()),
                updated: seq,
            });
            record_outcome(
                state,
                &p.node,
                p.decision,
                Outcome::Failed { healthy: true, why: prefixed("prefetch failed", &p.error) },
            );
        }
        Payload::SystemActivating(p) => {
            let ns = node_system_mut(state, &p.node);
            ns.updated = seq;
            ns.attempt = Some(Attempt {
                decision: p.decision,
                path: Some(p.path.clone()),
                action: p.action,
                previous: p.previous.clone(),
                phase: Phase::Activating,
                exit_code: None,
                reboot_required: false,
                error: None,
                updated: seq,
            });
        }
        Payload::SystemProfileSet(p) => {
            update_attempt(state, &p.node, seq, |a| a.phase = Phase::ProfileSet);
        }
        Payload::SystemSwitched(p) => {
            let ok = p.succeeded();
            let (code, reboot) = (p.exit_code, p.reboot_required);
            update_attempt(state, &p.node, seq, |a| {
                a.phase = if ok { Phase::Switched } else { Phase::SwitchFailed };
                a.exit_code = Some(code);
                a.reboot_required = reboot;
                a.error = (!ok).then(|| switch_failure(code));
            });
            if ok && activates_now(state, &p.node, p.decision) {
                node_system_mut(state, &p.node).current = Some(p.path.clone());
            }
            if !ok {
                record_outcome(
                    state,
                    &p.node,
                    p.decision,
                    Outcome::Failed { healthy: false, why: switch_failure(code) },
                );
            }
        }
        Payload::SystemHealthFailed(p) => {
            let why = prefixed("health gate failed", &p.failures.join("; "));
            update_attempt(state, &p.node, seq, |a| {
                a.phase = Phase::HealthFailed;
                a.error = Some(why.clone());
            });
            record_outcome(state, &p.node, p.decision, Outcome::Failed { healthy: false, why });
        }
        Payload::SystemConfirmed(p) => {
            if p.switched {
                update_attempt(state, &p.node, seq, |a| a.phase = Phase::Confirmed);
            } else {
                let action = desired_action(state, &p.node);
                let ns = node_system_mut(state, &p.node);
                ns.attempt = Some(Attempt {
                    decision: p.decision,
                    path: Some(p.path.clone()),
                    action,
                    previous: None,
                    phase: Phase::Confirmed,
                    exit_code: None,
                    reboot_required: false,
                    error: None,
                    updated: seq,
                });
            }
            let ns = node_system_mut(state, &p.node);
            ns.updated = seq;
            if ns.attempt.as_ref().is_none_or(|a| a.action != SwitchAction::Boot) {
                ns.current = Some(p.path.clone());
            }
            record_outcome(state, &p.node, p.decision, Outcome::Confirmed);
        }
        Payload::SystemRolledBack(p) => {
            let ok = crate::event::switch_succeeded(p.exit_code);
            let why = format!("rolled back to {}: {}", p.to, p.reason);
            update_attempt(state, &p.node, seq, |a| {
                a.phase = if ok { Phase::RolledBack } else { Phase::RollbackFailed };
                a.exit_code = Some(p.exit_code);
                a.error =
                    Some(if ok { p.reason.clone() } else { format!("{}; {}", p.reason, switch_failure(p.exit_code)) });
            });
            if ok {
                node_system_mut(state, &p.node).current = Some(p.to.clone());
            }
            let why = if ok { why } else { format!("{why}; the rollback failed: {}", switch_failure(p.exit_code)) };
            record_outcome(state, &p.node, p.decision, Outcome::Failed { healthy: ok, why });
        }
        _ => {}
    }
}

/// Whether a successful switch of `node`'s attempt of `decision` makes it the running system (`switch` and
/// `test` do; `boot` only stages it for the next boot).
fn activates_now(state: &FleetState, node: &NodeId, decision: u64) -> bool {
    state
        .node_system(node)
        .and_then(|s| s.attempt.as_ref())
        .is_some_and(|a| a.decision == decision && a.action != SwitchAction::Boot)
}

fn prefixed(what: &str, detail: &str) -> String {
    if detail.is_empty() { what.to_owned() } else { format!("{what}: {detail}") }
}

/// What a `switch-to-configuration` exit code means.
pub fn switch_failure(code: i32) -> String {
    let meaning = match code {
        -1 => "timed out or was killed",
        1 => "error",
        2 => "activation failed",
        4 => "units failed",
        _ => "failed",
    };
    if code == -1 {
        format!("switch-to-configuration {meaning}")
    } else {
        format!("switch-to-configuration exited {code} ({meaning})")
    }
}

fn desired_action(state: &FleetState, node: &NodeId) -> SwitchAction {
    state.node_system(node).and_then(|s| s.desired.as_ref()).map(|d| d.action).unwrap_or_default()
}

fn update_attempt(state: &mut FleetState, node: &NodeId, seq: u64, f: impl FnOnce(&mut Attempt)) {
    let ns = node_system_mut(state, node);
    ns.updated = seq;
    if let Some(a) = ns.attempt.as_mut() {
        a.updated = seq;
        f(a);
    }
}

/// Record how `node`'s decision `decision` went in the rollout that made it, if a rollout did.
fn record_outcome(state: &mut FleetState, node: &NodeId, decision: u64, outcome: Outcome) {
    let Some(r) =
        state.node_system(node).and_then(|s| s.desired.as_ref()).filter(|d| d.seq == decision).and_then(|d| d.rollout)
    else {
        return;
    };
    let Some(ro) = rollout_mut(state, r) else { return };
    for w in ro.waves.iter_mut() {
        for wn in w.nodes.iter_mut().filter(|wn| &wn.node == node) {
            match &mut wn.revert {
                Some((s, o)) if *s == decision => *o = outcome.clone(),
                None if w.seq == decision => wn.outcome = outcome.clone(),
                _ => {}
            }
        }
    }
}

/// Put `nodes` (members moved by rollout `id`) back to what they wanted before, as decisions at `seq`.
fn revert_nodes(state: &mut FleetState, id: u64, nodes: &[NodeId], seq: u64, time: Timestamp) {
    let Some(r) = state.rollout(id).cloned() else { return };
    let mut any = false;
    for w in &r.waves {
        for wn in w.nodes.iter().filter(|wn| nodes.contains(&wn.node) && wn.revert.is_none()) {
            // Only a node whose desired system is still this wave's decision is put back.
            let still = state.node_system(&wn.node).and_then(|s| s.desired.as_ref()).is_some_and(|d| d.seq == w.seq);
            if !still {
                continue;
            }
            let outcome = match &wn.previous {
                Some(previous) => {
                    let d = Desired {
                        seq,
                        system: previous.clone(),
                        action: wn.previous_action,
                        source: Source::Revert,
                        rollout: Some(id),
                    };
                    decide(state, &wn.node, d);
                    Outcome::InFlight
                }
                None => Outcome::Left { why: "no earlier system is known, so it keeps the rollout's".into() },
            };
            any = true;
            if let Some(ro) = rollout_mut(state, id) {
                for x in ro.waves.iter_mut().filter(|x| x.seq == w.seq).flat_map(|x| x.nodes.iter_mut()) {
                    if x.node == wn.node {
                        x.revert = Some((seq, outcome.clone()));
                    }
                }
            }
        }
    }
    if any && let Some(ro) = rollout_mut(state, id) {
        ro.reverts.push((seq, time));
    }
}

fn end_rollout(state: &mut FleetState, id: u64, seq: u64, to: RolloutState) {
    let Some(r) = rollout_mut(state, id) else { return };
    r.state = to;
    r.ended = Some(seq);
    let pool = r.pool.clone();
    if state.systems.open.get(&pool) == Some(&id) {
        state.systems.open.remove(&pool);
    }
}
