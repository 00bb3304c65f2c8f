//! How `evolve` records the node systems events: rule-free — what `check` accepted is written down. An agent's
//! report that settles a decision returns how it went ([`Settled`]), which `fleet` hands to the rollout that made
//! the decision, if one did.

use super::events::*;
use super::{Attempt, AttemptPhase, Desired, Pin, Source, SystemsState};
use crate::ids::NodeId;
use crate::nixos::{SwitchAction, switch_failure, switch_succeeded};

/// How a decision's attempt ended, as its agent reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    Confirmed,
    /// `healthy`: the node is back on a working system (rolled back, or never switched).
    Failed {
        healthy: bool,
        why: String,
    },
}

/// Record `desired` as the node's decision (its desired system from now on); the decision it replaces.
pub fn decided(sys: &mut SystemsState, node: &NodeId, desired: Desired) -> Option<Desired> {
    let seq = desired.seq;
    let ns = sys.get_mut(node);
    ns.updated = seq;
    ns.desired.replace(desired)
}

pub fn system_set(sys: &mut SystemsState, seq: u64, p: &NodeSystemSet) -> Option<Desired> {
    let d = Desired { seq, system: p.system.clone(), action: p.action, source: Source::Operator, rollout: None };
    decided(sys, &p.node, d)
}

pub fn pinned(sys: &mut SystemsState, seq: u64, p: &NodePinned) {
    let ns = sys.get_mut(&p.node);
    ns.pinned = Some(Pin { seq, reason: p.reason.clone() });
    ns.updated = seq;
}

pub fn unpinned(sys: &mut SystemsState, seq: u64, p: &NodeUnpinned) {
    let ns = sys.get_mut(&p.node);
    ns.pinned = None;
    ns.updated = seq;
}

pub fn reported(sys: &mut SystemsState, seq: u64, p: &SystemReported) {
    let ns = sys.get_mut(&p.node);
    ns.current = p.current.clone();
    ns.booted = p.booted.clone();
    ns.updated = seq;
}

fn desired_action(sys: &SystemsState, node: &NodeId) -> SwitchAction {
    sys.get(node).and_then(|s| s.desired.as_ref()).map(|d| d.action).unwrap_or_default()
}

fn new_attempt(decision: u64, path: Option<String>, action: SwitchAction, phase: AttemptPhase, seq: u64) -> Attempt {
    Attempt {
        decision,
        path,
        action,
        previous: None,
        phase,
        exit_code: None,
        reboot_required: false,
        error: None,
        updated: seq,
    }
}

fn update_attempt(sys: &mut SystemsState, node: &NodeId, seq: u64, f: impl FnOnce(&mut Attempt)) {
    let ns = sys.get_mut(node);
    ns.updated = seq;
    if let Some(a) = ns.attempt.as_mut() {
        a.updated = seq;
        f(a);
    }
}

fn prefixed(what: &str, detail: &str) -> String {
    if detail.is_empty() { what.to_owned() } else { format!("{what}: {detail}") }
}

pub fn prefetched(sys: &mut SystemsState, seq: u64, p: &SystemPrefetched) {
    let action = desired_action(sys, &p.node);
    let ns = sys.get_mut(&p.node);
    ns.updated = seq;
    ns.attempt = Some(new_attempt(p.decision, Some(p.path.clone()), action, AttemptPhase::Prefetched, seq));
}

pub fn prefetch_failed(sys: &mut SystemsState, seq: u64, p: &SystemPrefetchFailed) -> Settled {
    let action = desired_action(sys, &p.node);
    let ns = sys.get_mut(&p.node);
    ns.updated = seq;
    let mut a = new_attempt(p.decision, None, action, AttemptPhase::PrefetchFailed, seq);
    a.error = Some(p.error.clone());
    ns.attempt = Some(a);
    Settled::Failed { healthy: true, why: prefixed("prefetch failed", &p.error) }
}

pub fn activating(sys: &mut SystemsState, seq: u64, p: &SystemActivating) {
    let ns = sys.get_mut(&p.node);
    ns.updated = seq;
    let mut a = new_attempt(p.decision, Some(p.path.clone()), p.action, AttemptPhase::Activating, seq);
    a.previous = p.previous.clone();
    ns.attempt = Some(a);
}

pub fn profile_set(sys: &mut SystemsState, seq: u64, p: &SystemProfileSet) {
    update_attempt(sys, &p.node, seq, |a| a.phase = AttemptPhase::ProfileSet);
}

pub fn switched(sys: &mut SystemsState, seq: u64, p: &SystemSwitched) -> Option<Settled> {
    let ok = p.succeeded();
    let (code, reboot) = (p.exit_code, p.reboot_required);
    update_attempt(sys, &p.node, seq, |a| {
        a.phase = if ok { AttemptPhase::Switched } else { AttemptPhase::SwitchFailed };
        a.exit_code = Some(code);
        a.reboot_required = reboot;
        a.error = (!ok).then(|| switch_failure(code));
    });
    // `switch` and `test` make it the running system; `boot` only stages it for the next boot.
    let activates_now = sys
        .get(&p.node)
        .and_then(|s| s.attempt.as_ref())
        .is_some_and(|a| a.decision == p.decision && a.action != SwitchAction::Boot);
    if ok && activates_now {
        sys.get_mut(&p.node).current = Some(p.path.clone());
    }
    (!ok).then(|| Settled::Failed { healthy: false, why: switch_failure(code) })
}

pub fn health_failed(sys: &mut SystemsState, seq: u64, p: &SystemHealthFailed) -> Settled {
    let why = prefixed("health gate failed", &p.failures.join("; "));
    update_attempt(sys, &p.node, seq, |a| {
        a.phase = AttemptPhase::HealthFailed;
        a.error = Some(why.clone());
    });
    Settled::Failed { healthy: false, why }
}

pub fn confirmed(sys: &mut SystemsState, seq: u64, p: &SystemConfirmed) -> Settled {
    if p.switched {
        update_attempt(sys, &p.node, seq, |a| a.phase = AttemptPhase::Confirmed);
    } else {
        let action = desired_action(sys, &p.node);
        sys.get_mut(&p.node).attempt =
            Some(new_attempt(p.decision, Some(p.path.clone()), action, AttemptPhase::Confirmed, seq));
    }
    let ns = sys.get_mut(&p.node);
    ns.updated = seq;
    if ns.attempt.as_ref().is_none_or(|a| a.action != SwitchAction::Boot) {
        ns.current = Some(p.path.clone());
    }
    Settled::Confirmed
}

pub fn rolled_back(sys: &mut SystemsState, seq: u64, p: &SystemRolledBack) -> Settled {
    let ok = switch_succeeded(p.exit_code);
    let why = format!("rolled back to {}: {}", p.to, p.reason);
    update_attempt(sys, &p.node, seq, |a| {
        a.phase = if ok { AttemptPhase::RolledBack } else { AttemptPhase::RollbackFailed };
        a.exit_code = Some(p.exit_code);
        a.error = Some(if ok { p.reason.clone() } else { format!("{}; {}", p.reason, switch_failure(p.exit_code)) });
    });
    if ok {
        sys.get_mut(&p.node).current = Some(p.to.clone());
    }
    let why = if ok { why } else { format!("{why}; the rollback failed: {}", switch_failure(p.exit_code)) };
    Settled::Failed { healthy: ok, why }
}

/// The decisions a spec makes: every node whose declared system the spec now live changed from `before`
/// (`SwitchAction::Switch`), as `(node, system)`.
pub fn spec_decisions(
    now: &crate::spec::ClusterSpec,
    before: Option<&crate::spec::ClusterSpec>,
) -> Vec<(NodeId, String)> {
    let mut out = Vec::new();
    for (name, node) in &now.nodes {
        let Some(system) = node.system.store_path.clone().or_else(|| node.system.flake.clone()) else { continue };
        let old = before.and_then(|b| b.nodes.get(name)).map(|n| &n.system);
        if old == Some(&node.system) {
            continue;
        }
        let Ok(id) = NodeId::new(name.as_str()) else { continue };
        out.push((id, system));
    }
    out
}
