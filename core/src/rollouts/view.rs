//! What `sendan rollout status` and `GET /v1/rollouts/{id}` show of a rollout: its waves and where each member
//! stands, its counts, and what the controller waits for.

use serde::{Deserialize, Serialize};

use super::planner::{Member, MemberPhase, assess};
use super::{Rollout, RolloutState, RolloutsState};
use crate::ids::Timestamp;
use crate::nixos::SwitchAction;
use crate::read::FleetRead;

/// `GET /v1/rollouts/{id}`: a rollout and where each member stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WaveView {
    pub number: u32,
    pub seq: u64,
    pub time: Timestamp,
    pub canary: bool,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// The view of `r` at `now` (`rollouts`: every rollout, whose members in flight count against the services'
/// budgets too).
pub fn view(rollouts: &RolloutsState, state: &dyn FleetRead, r: &Rollout, now: Timestamp) -> RolloutView {
    let a = assess(state, r, now);
    let held = super::planner::budget_wait(rollouts, state, r, now);
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
    let count = |p: MemberPhase| a.members.iter().filter(|m| m.phase == p).count();
    let counts = Counts {
        members: a.members.len(),
        confirmed: count(MemberPhase::Confirmed),
        moving: count(MemberPhase::Moving) + count(MemberPhase::Reverting) + count(MemberPhase::Rebooting),
        failed: count(MemberPhase::Failed) + count(MemberPhase::RevertFailed),
        pending: count(MemberPhase::Pending),
        skipped: count(MemberPhase::Skipped) + count(MemberPhase::Left),
        untouched: count(MemberPhase::Untouched),
        reverted: count(MemberPhase::Reverted),
        unavailable: a.unavailable(),
    };
    let waiting = match r.state {
        RolloutState::Running if a.moving() > 0 => {
            let moving: Vec<&str> =
                a.members.iter().filter(|m| m.phase == MemberPhase::Moving).map(|m| m.node.as_str()).collect();
            Some(format!(
                "waiting for {} to confirm (within {}s of their wave)",
                moving.join(", "),
                r.health_timeout_secs
            ))
        }
        RolloutState::Running if a.rebooting() > 0 => {
            let rebooting: Vec<String> = a
                .members
                .iter()
                .filter(|m| m.phase == MemberPhase::Rebooting)
                .map(|m| format!("{} ({})", m.node, m.why.as_deref().unwrap_or("needs a reboot")))
                .collect();
            Some(format!("waiting for reboots into the new system: {}", rebooting.join("; ")))
        }
        RolloutState::Running
            if super::planner::drains_first(r)
                && a.members.iter().any(|m| {
                    m.phase == MemberPhase::Pending
                        && super::planner::drained_for(state, r, &m.node).is_some_and(|d| d.drained.is_none())
                }) =>
        {
            let draining: Vec<&str> = a
                .members
                .iter()
                .filter(|m| super::planner::drained_for(state, r, &m.node).is_some_and(|d| d.drained.is_none()))
                .map(|m| m.node.as_str())
                .collect();
            Some(format!(
                "draining {} before the next wave ({}): their instances are handed over first",
                draining.join(", "),
                super::planner::why_drain(r)
            ))
        }
        RolloutState::Running if super::planner::window_wait(state, r, now).is_some() => {
            super::planner::window_wait(state, r, now).map(|why| format!("waiting for the maintenance window: {why}"))
        }
        RolloutState::Running if held.is_some() => {
            held.map(|why| format!("held back by a service's disruption budget: {why}"))
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
        seq: state.seq(),
    }
}
