//! How `evolve` records the machines and bootstrap events: rule-free — what `check` accepted is written down;
//! a record an event names that does not exist is left alone. Each function takes what it needs from other
//! aggregates as arguments (`fleet` reads them through `FleetRead` first).

use std::sync::Arc;

use super::events::*;
use super::{
    BootToken, BootstrapState, EnrollmentProblem, HostKey, MachineRecord, MachinesState, PlanRefusal, Problem,
    Progress, TokenStatus,
};
use crate::facts::HardwareFacts;
use crate::ids::{EventId, Hash, MachineId, NodeId};

/// Record `facts` as machine `id`'s, seen at `seq` (a new machine is `discovered`; a known one keeps its node).
/// The node bound to it, if any, whose history the event joins.
pub fn facts_recorded(ms: &mut MachinesState, seq: u64, id: &MachineId, facts: &HardwareFacts) -> Option<NodeId> {
    let entry = ms.records.entry(id.clone()).or_insert_with(|| {
        Arc::new(MachineRecord {
            id: id.clone(),
            facts: HardwareFacts::default(),
            node: None,
            first_seen: seq,
            last_seen: seq,
        })
    });
    let m = Arc::make_mut(entry);
    m.facts = facts.clone();
    m.last_seen = seq;
    m.node.clone()
}

/// `node` is bound to `machine` now (commissioning or a rebind); `released` is the machine a rebind leaves.
pub fn bound(ms: &mut MachinesState, machine: &MachineId, node: &NodeId, released: Option<&MachineId>) {
    if let Some(old) = released.and_then(|m| ms.get_mut(m)) {
        old.node = None;
    }
    if let Some(m) = ms.get_mut(machine) {
        m.node = Some(node.clone());
    }
}

/// The machine's installer session is now `token`; a session it had before ends.
fn open_session(bs: &mut BootstrapState, seq: u64, machine: &MachineId, token: Hash, mac: &str) {
    if bs.unclaimed.get(mac) == Some(&token) {
        bs.unclaimed.remove(mac);
    }
    if let Some(previous) = bs.sessions.insert(machine.clone(), token)
        && previous != token
        && let Some(old) = bs.tokens.get_mut(&previous).map(Arc::make_mut)
    {
        old.status = TokenStatus::Replaced { seq };
    }
}

pub fn phoned_home(ms: &mut MachinesState, seq: u64, id: EventId, p: &MachinePhonedHome) -> Option<NodeId> {
    let node = facts_recorded(ms, seq, &p.machine, &p.facts);
    let bs = &mut ms.bootstrap;
    let token = Arc::make_mut(bs.tokens.entry(p.token).or_insert_with(|| {
        Arc::new(BootToken {
            hash: p.token,
            mac: p.mac.clone(),
            issued: seq,
            issued_id: id,
            expires: p.expires,
            status: TokenStatus::Unclaimed,
        })
    }));
    token.status = TokenStatus::Claimed { machine: p.machine.clone(), seq };
    open_session(bs, seq, &p.machine, p.token, &p.mac);
    node
}

pub fn token_issued(ms: &mut MachinesState, seq: u64, id: EventId, p: &BootstrapTokenIssued) {
    let bs = &mut ms.bootstrap;
    // The MAC's previous unclaimed token is superseded by this one.
    if let Some(previous) = bs.unclaimed.insert(p.mac.clone(), p.token)
        && let Some(old) = bs.tokens.get_mut(&previous).map(Arc::make_mut)
        && old.status == TokenStatus::Unclaimed
    {
        old.status = TokenStatus::Replaced { seq };
    }
    bs.tokens.insert(
        p.token,
        Arc::new(BootToken {
            hash: p.token,
            mac: p.mac.clone(),
            issued: seq,
            issued_id: id,
            expires: p.expires,
            status: TokenStatus::Unclaimed,
        }),
    );
}

pub fn token_claimed(ms: &mut MachinesState, seq: u64, p: &BootstrapTokenClaimed) {
    let bs = &mut ms.bootstrap;
    let Some(token) = bs.tokens.get_mut(&p.token).map(Arc::make_mut) else { return };
    token.status = TokenStatus::Claimed { machine: p.machine.clone(), seq };
    let mac = token.mac.clone();
    open_session(bs, seq, &p.machine, p.token, &mac);
}

pub fn token_exchanged(ms: &mut MachinesState, seq: u64, p: &BootstrapTokenExchanged) {
    let bs = &mut ms.bootstrap;
    let Some(token) = bs.tokens.get_mut(&p.token).map(Arc::make_mut) else { return };
    if let TokenStatus::Claimed { machine, .. } = &token.status
        && bs.sessions.get(machine) == Some(&p.token)
    {
        bs.sessions.remove(machine);
    }
    token.status = TokenStatus::Exchanged { node: p.node.clone(), seq };
    bs.host_keys.insert(p.node.clone(), Arc::new(HostKey { seq, key: p.ssh_host_key.clone() }));
}

pub fn install_progressed(ms: &mut MachinesState, seq: u64, p: &InstallProgressed) {
    ms.bootstrap.progress.insert(p.node.clone(), Arc::new(Progress { seq, step: p.step, detail: p.detail.clone() }));
}

/// `since` is the node's, `seen` its machine's `last_seen`: what the refusal was decided on.
pub fn plan_refused(ms: &mut MachinesState, seq: u64, p: &InstallPlanRefused, since: u64, seen: u64) {
    let refusal = PlanRefusal { seq, spec: p.spec, since, seen, layout: p.layout.clone(), reasons: p.reasons.clone() };
    ms.bootstrap.refusals.insert(p.node.clone(), Arc::new(refusal));
}

pub fn enrollment_conflicted(ms: &mut MachinesState, seq: u64, p: &EnrollmentConflicted) {
    let seen = ms.get(&p.machine).map(|m| m.last_seen).unwrap_or_default();
    let problem = Problem::Conflict { priority: p.priority, rules: p.rules.clone() };
    ms.bootstrap.enrollment.insert(p.machine.clone(), Arc::new(EnrollmentProblem { seq, spec: p.spec, seen, problem }));
}

pub fn enrollment_refused(ms: &mut MachinesState, seq: u64, p: &EnrollmentRefused) {
    let seen = ms.get(&p.machine).map(|m| m.last_seen).unwrap_or_default();
    let problem = Problem::Refused { rule: p.rule.clone(), reasons: p.reasons.clone() };
    ms.bootstrap.enrollment.insert(p.machine.clone(), Arc::new(EnrollmentProblem { seq, spec: p.spec, seen, problem }));
}
