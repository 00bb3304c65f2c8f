//! How `evolve` records the rollout events: rule-free — what `check` accepted is written down. The decisions a
//! wave or a revert makes for its members' systems are returned as [`Decided`], which `fleet` hands to the node
//! systems aggregate; the previous systems a wave remembers come in as arguments.

use std::sync::Arc;

use super::events::*;
use super::{MemberOutcome, Revert, Rollout, RolloutState, RolloutsState, Wave, WaveNode};
use crate::ids::{NodeId, Timestamp};
use crate::nixos::SwitchAction;

/// A decision a rollout made for a member's system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    pub node: NodeId,
    pub system: String,
    pub action: SwitchAction,
    /// A halted rollout putting back what the member wanted before (else a wave).
    pub revert: bool,
    pub rollout: u64,
}

/// `members` are the pool's nodes now, in name order.
pub fn started(rollouts: &mut RolloutsState, seq: u64, time: Timestamp, p: &RolloutStarted, members: Vec<NodeId>) {
    let r = Rollout {
        id: seq,
        pool: p.pool.clone(),
        system: p.system.clone(),
        action: p.action,
        max_unavailable: p.max_unavailable,
        canary: p.canary,
        max_failures: p.max_failures,
        health_timeout_secs: p.health_timeout_secs,
        started_at: time,
        members,
        waves: Vec::new(),
        state: RolloutState::Running,
        reason: None,
        halted: None,
        ended: None,
        reverts: Vec::new(),
        drain: false,
    };
    rollouts.rollouts.insert(seq, Arc::new(r));
    rollouts.open.insert(p.pool.clone(), seq);
}

/// The pool's open rollout drains each member first.
pub fn drains_members(rollouts: &mut RolloutsState, p: &RolloutDrainsMembers) {
    let Some(id) = rollouts.open.get(&p.pool).copied() else { return };
    if let Some(r) = rollouts.rollouts.get_mut(&id) {
        Arc::make_mut(r).drain = true;
    }
}

/// `previous` is, for each node of the wave in order, what it wanted before (its desired system, else its running
/// one) and with which action.
pub fn wave_started(
    rollouts: &mut RolloutsState,
    seq: u64,
    time: Timestamp,
    p: &RolloutWaveStarted,
    previous: Vec<(Option<String>, SwitchAction)>,
) -> Vec<Decided> {
    let Some(r) = rollouts.get_mut(p.rollout) else { return Vec::new() };
    let canary = r.canary > 0 && !super::planner::any_confirmed(r);
    let moved = p
        .nodes
        .iter()
        .zip(previous)
        .map(|(node, (previous, previous_action))| WaveNode {
            node: node.clone(),
            previous,
            previous_action,
            outcome: MemberOutcome::InFlight,
            settled: 0,
            revert: None,
        })
        .collect();
    r.waves.push(Wave { number: p.wave, seq, time, canary, nodes: moved });
    p.nodes
        .iter()
        .map(|n| Decided { node: n.clone(), system: r.system.clone(), action: r.action, revert: false, rollout: r.id })
        .collect()
}

fn end(rollouts: &mut RolloutsState, id: u64, seq: u64, to: RolloutState) {
    let Some(r) = rollouts.get_mut(id) else { return };
    r.state = to;
    r.ended = Some(seq);
    let pool = r.pool.clone();
    if rollouts.open.get(&pool) == Some(&id) {
        rollouts.open.remove(&pool);
    }
}

pub fn completed(rollouts: &mut RolloutsState, seq: u64, p: &RolloutCompleted) {
    end(rollouts, p.rollout, seq, RolloutState::Completed);
}

pub fn reverted(rollouts: &mut RolloutsState, seq: u64, p: &RolloutReverted) {
    end(rollouts, p.rollout, seq, RolloutState::Reverted);
}

/// Put `nodes` (members of rollout `id` not yet put back) back on what they wanted before, as decisions at `seq`;
/// a member with nothing known to put back keeps the rollout's system and leaves.
fn put_back(rollouts: &mut RolloutsState, id: u64, nodes: &[NodeId], seq: u64, time: Timestamp) -> Vec<Decided> {
    let Some(r) = rollouts.get_mut(id) else { return Vec::new() };
    let mut decided = Vec::new();
    for node in nodes {
        let Some(wn) = r.moved_mut(node) else { continue };
        let outcome = match &wn.previous {
            Some(previous) => {
                decided.push(Decided {
                    node: node.clone(),
                    system: previous.clone(),
                    action: wn.previous_action,
                    revert: true,
                    rollout: id,
                });
                MemberOutcome::InFlight
            }
            None => MemberOutcome::Left { why: "no earlier system is known, so it keeps the rollout's".into() },
        };
        let settled = if outcome == MemberOutcome::InFlight { 0 } else { seq };
        wn.revert = Some(Revert { decision: seq, outcome, settled });
    }
    if !nodes.is_empty() {
        r.reverts.push((seq, time));
    }
    decided
}

pub fn halted(rollouts: &mut RolloutsState, seq: u64, time: Timestamp, p: &RolloutHalted) -> Vec<Decided> {
    let Some(r) = rollouts.get_mut(p.rollout) else { return Vec::new() };
    r.state = RolloutState::Reverting;
    r.reason = Some(p.reason.clone());
    r.halted = Some(seq);
    put_back(rollouts, p.rollout, &p.revert, seq, time)
}

pub fn nodes_reverted(
    rollouts: &mut RolloutsState,
    seq: u64,
    time: Timestamp,
    p: &RolloutNodesReverted,
) -> Vec<Decided> {
    put_back(rollouts, p.rollout, &p.nodes, seq, time)
}

pub fn member_left(rollouts: &mut RolloutsState, seq: u64, p: &RolloutMemberLeft) {
    let Some(wn) = rollouts.get_mut(p.rollout).and_then(|r| r.moved_mut(&p.node)) else { return };
    let left = MemberOutcome::Left { why: p.why.clone() };
    match &mut wn.revert {
        Some(rv) => {
            rv.outcome = left;
            rv.settled = seq;
        }
        None => {
            wn.outcome = left;
            wn.settled = seq;
        }
    }
}

/// The agent's report at `seq` settled `node`'s decision `decision`, which rollout `id` made: record how it went.
pub fn settled(rollouts: &mut RolloutsState, id: u64, node: &NodeId, decision: u64, outcome: MemberOutcome, seq: u64) {
    let Some(r) = rollouts.get_mut(id) else { return };
    for w in r.waves.iter_mut() {
        let wave = w.seq;
        for wn in w.nodes.iter_mut().filter(|wn| &wn.node == node) {
            match &mut wn.revert {
                Some(rv) if rv.decision == decision => {
                    rv.outcome = outcome.clone();
                    rv.settled = seq;
                }
                None if wave == decision => {
                    wn.outcome = outcome.clone();
                    wn.settled = seq;
                }
                _ => {}
            }
        }
    }
}

/// The members a rollout event decided for (its wave, or the reverts it made), for the by-node index.
pub fn decided_nodes(rollouts: &RolloutsState, id: u64, seq: u64) -> Vec<NodeId> {
    let Some(r) = rollouts.get(id) else { return Vec::new() };
    r.waves
        .iter()
        .flat_map(|w| w.nodes.iter().map(move |wn| (w.seq, wn)))
        .filter(|(wave, wn)| *wave == seq || wn.revert.as_ref().is_some_and(|rv| rv.decision == seq))
        .map(|(_, wn)| wn.node.clone())
        .collect()
}
