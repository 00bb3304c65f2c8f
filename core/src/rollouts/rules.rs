//! What `check` asks of the rollout events: a rollout of a declared pool with active members and a consistent
//! budget, and every wave, completion, halt, revert batch and departure exactly what the planner allows at the
//! proposal's time — the same pure functions the rollout controller proposes with, so a stale or buggy leader
//! cannot exceed `max_unavailable`.

use super::events::*;
use super::planner::{self, Assessment};
use super::{Rollout, RolloutState, RolloutsState};
use crate::kind::EventKind;
use crate::lifecycle::NodeState;
use crate::nixos::system_kind;
use crate::read::{Ctx, FleetRead};
use crate::rejection::Rejection;

fn open_rollout<'s>(
    rollouts: &'s RolloutsState,
    id: u64,
    event: EventKind,
    want: RolloutState,
) -> Result<&'s Rollout, Rejection> {
    let r = rollouts.get(id).ok_or(Rejection::UnknownRollout { rollout: id })?;
    if r.state != want {
        return Err(Rejection::RolloutRefused {
            rollout: id,
            event,
            reason: format!("it is {}, and this needs a {} rollout", r.state.name(), want.name()),
        });
    }
    Ok(r)
}

/// `event` about rollout `id`, which must be in state `want`, against the planner's `rule` for it, judged at
/// the proposal's time.
fn rule(
    rollouts: &RolloutsState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    id: u64,
    event: EventKind,
    want: RolloutState,
    rule: impl FnOnce(&Rollout, &Assessment) -> Result<(), String>,
) -> Result<(), Rejection> {
    let r = open_rollout(rollouts, id, event, want)?;
    let a = planner::assess(read, r, ctx.now);
    rule(r, &a).map_err(|reason| Rejection::RolloutRefused { rollout: r.id, event, reason })
}

pub fn started(rollouts: &RolloutsState, read: &dyn FleetRead, p: &RolloutStarted) -> Result<(), Rejection> {
    let invalid = |reason: String| Err(Rejection::InvalidRollout { reason });
    system_kind(&p.system)
        .map_err(|why| Rejection::InvalidSystem { system: p.system.chars().take(200).collect(), why })?;
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
    let Some(live) = read.live_spec() else {
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
    if let Some(r) = rollouts.open_for(&p.pool) {
        return Err(Rejection::RolloutOpen { pool: p.pool.clone(), rollout: r.id, state: r.state.name().into() });
    }
    let members = read.pool_members(&p.pool);
    if !members.iter().any(|n| read.node(n).is_some_and(|r| r.state == NodeState::Active)) {
        return invalid(format!(
            "pool {} has no active node ({} commissioned member{}); nothing would move",
            p.pool,
            members.len(),
            if members.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

pub fn wave_started(
    rollouts: &RolloutsState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &RolloutWaveStarted,
) -> Result<(), Rejection> {
    let event = EventKind::RolloutWaveStarted;
    rule(rollouts, read, ctx, p.rollout, event, RolloutState::Running, |r, a| {
        planner::wave_allowed(read, r, a, p.wave, &p.nodes)?;
        planner::window_wait(read, r, ctx.now).map_or(Ok(()), Err)
    })?;
    within_budget(rollouts, read, ctx, event, &p.nodes)
}

/// A wave or a revert batch takes its nodes out: with the members in flight, every service on them must stay
/// within its disruption budget.
fn within_budget(
    rollouts: &RolloutsState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    event: EventKind,
    nodes: &[crate::ids::NodeId],
) -> Result<(), Rejection> {
    let out = planner::in_flight(rollouts, read, ctx.now);
    planner::budget_allows(read, &out, nodes).map_err(|why| Rejection::OverBudget { event, why })
}

pub fn completed(
    rollouts: &RolloutsState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &RolloutCompleted,
) -> Result<(), Rejection> {
    rule(
        rollouts,
        read,
        ctx,
        p.rollout,
        EventKind::RolloutCompleted,
        RolloutState::Running,
        planner::completion_allowed,
    )
}

pub fn halted(rollouts: &RolloutsState, read: &dyn FleetRead, ctx: &Ctx, p: &RolloutHalted) -> Result<(), Rejection> {
    rule(rollouts, read, ctx, p.rollout, EventKind::RolloutHalted, RolloutState::Running, |r, a| {
        planner::halt_allowed(r, a, &p.revert)
    })
}

pub fn nodes_reverted(
    rollouts: &RolloutsState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &RolloutNodesReverted,
) -> Result<(), Rejection> {
    let event = EventKind::RolloutNodesReverted;
    rule(rollouts, read, ctx, p.rollout, event, RolloutState::Reverting, |r, a| {
        planner::revert_allowed(r, a, &p.nodes)
    })?;
    within_budget(rollouts, read, ctx, event, &p.nodes)
}

pub fn reverted(
    rollouts: &RolloutsState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &RolloutReverted,
) -> Result<(), Rejection> {
    rule(rollouts, read, ctx, p.rollout, EventKind::RolloutReverted, RolloutState::Reverting, planner::reverted_allowed)
}

pub fn drains_members(rollouts: &RolloutsState, p: &RolloutDrainsMembers) -> Result<(), Rejection> {
    let event = EventKind::RolloutDrainsMembers;
    let Some(r) = rollouts.open.get(&p.pool).and_then(|id| rollouts.get(*id)) else {
        return Err(Rejection::UnknownPool {
            pool: p.pool.clone(),
            why: "it has no open rollout; --drain is given with `sendan rollout start`".into(),
        });
    };
    let refuse = |reason: String| Rejection::RolloutRefused { rollout: r.id, event, reason };
    if r.state != RolloutState::Running {
        return Err(refuse(format!("it is {}, not running", r.state.name())));
    }
    if !r.waves.is_empty() {
        return Err(refuse("it started a wave already; --drain is given when it starts".into()));
    }
    Ok(())
}

pub fn member_left(rollouts: &RolloutsState, read: &dyn FleetRead, p: &RolloutMemberLeft) -> Result<(), Rejection> {
    let kind = EventKind::RolloutMemberLeft;
    let r = rollouts.get(p.rollout).ok_or(Rejection::UnknownRollout { rollout: p.rollout })?;
    planner::leave_allowed(read, r, &p.node).map_err(|reason| Rejection::RolloutRefused {
        rollout: r.id,
        event: kind,
        reason,
    })
}
