//! What `check` asks of the machines and bootstrap events: facts within their caps, a phone-home that may speak
//! for the machine it names, a bootstrap token used once and spent once, install reports about a node that is
//! being installed, and enrollment decisions that still hold — recomputed, so a recorded refusal is always true of
//! the state it was recorded in.

use super::MachinesState;
use super::enrollment::{self, EnrollOutcome};
use super::events::*;
use super::identity::identity_refusal;
use super::{TokenStatus, netboot::normalize_mac};
use crate::bounds::MAX_TEXT;
use crate::ids::{Hash, MachineId, NodeId};
use crate::kind::EventKind;
use crate::lifecycle::{self, NodeState};
use crate::read::{Ctx, FleetRead, MachineFacts, NodeFacts, PlanUnavailable};
use crate::rejection::Rejection;
use crate::spec::{LiveSpec, select_rule};

/// The longest a bootstrap token may be issued for.
pub const MAX_TOKEN_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

fn refused(why: impl Into<String>) -> Rejection {
    Rejection::BootstrapTokenRefused { why: why.into() }
}

fn malformed(event: EventKind, why: impl Into<String>) -> Rejection {
    Rejection::MalformedEvent { event, why: why.into() }
}

/// `node`, if it is in one of `needs`.
fn node_in<'s>(
    read: &'s dyn FleetRead,
    node: &NodeId,
    event: EventKind,
    needs: &[NodeState],
) -> Result<NodeFacts<'s>, Rejection> {
    let n = read.node(node).ok_or_else(|| Rejection::UnknownNode { node: node.clone(), event })?;
    if !needs.contains(&n.state) {
        return Err(Rejection::IllegalTransition {
            node: node.clone(),
            state: n.state,
            event,
            needs: needs.to_vec(),
            allowed: lifecycle::allowed_events(n.state),
        });
    }
    Ok(n)
}

fn unbound_machine<'s>(read: &'s dyn FleetRead, machine: &MachineId) -> Result<MachineFacts<'s>, Rejection> {
    let m = read.machine(machine).ok_or_else(|| Rejection::UnknownMachine { machine: machine.clone() })?;
    if let Some(node) = m.node {
        return Err(Rejection::MachineBound { machine: machine.clone(), node: node.clone() });
    }
    Ok(m)
}

fn live_spec<'s>(read: &'s dyn FleetRead, event: EventKind, spec: &Hash) -> Result<&'s LiveSpec, Rejection> {
    match read.live_spec() {
        Some(live) if live.digest == *spec => Ok(live),
        other => Err(Rejection::StaleSpec {
            event,
            spec: *spec,
            live: other.map(|l| l.digest.to_hex()).unwrap_or_else(|| "none".to_owned()),
        }),
    }
}

/// Whether an OpenSSH public key line (`type base64 [comment]`) is well-formed.
pub fn ssh_public_key_problem(key: &str) -> Option<String> {
    if key.len() > 16 * 1024 || key.contains(['\n', '\r']) {
        return Some("the SSH host key must be one line of at most 16 KiB".into());
    }
    let mut words = key.split_whitespace();
    let (Some(kind), Some(body)) = (words.next(), words.next()) else {
        return Some("the SSH host key must read `<type> <base64> [comment]`".into());
    };
    const TYPES: [&str; 4] = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa"];
    if !TYPES.contains(&kind) {
        return Some(format!("`{kind}` is not an SSH host key type Sendan accepts ({})", TYPES.join(", ")));
    }
    let base64 = body.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=');
    if !base64 || body.len() < 32 {
        return Some("the key body is not base64".into());
    }
    None
}

pub fn machine_discovered(p: &MachineDiscovered) -> Result<(), Rejection> {
    p.facts.check().map_err(|e| malformed(EventKind::MachineDiscovered, e.to_string()))
}

pub fn phoned_home(
    ms: &MachinesState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &MachinePhonedHome,
) -> Result<(), Rejection> {
    let kind = EventKind::MachinePhonedHome;
    if !super::netboot::is_unicast_mac(&p.mac) {
        return Err(malformed(kind, format!("`{}` is not a lower-case, colon-separated unicast MAC", p.mac)));
    }
    if let Some(t) = ms.bootstrap.token(&p.token) {
        // A token an operator issued (`BootstrapTokenIssued`) phones home here too, once, for its own MAC.
        match &t.status {
            TokenStatus::Unclaimed if t.mac == p.mac => {}
            TokenStatus::Claimed { machine, seq } => {
                return Err(Rejection::BootstrapTokenUsed { machine: machine.clone(), seq: *seq });
            }
            _ => return Err(refused("it was used before; netboot the machine again for a new one")),
        }
    } else if read.credential_in_use(&p.token) {
        return Err(Rejection::TokenInUse { token: p.token });
    }
    if ctx.now >= p.expires {
        return Err(refused(format!("it expired at {}; netboot the machine again", p.expires)));
    }
    if p.expires.0 - ctx.now.0 > MAX_TOKEN_TTL_MS {
        return Err(malformed(kind, "a bootstrap token expires within 7 days"));
    }
    p.facts.check().map_err(|e| malformed(kind, e.to_string()))?;
    match p.facts.machine_key() {
        Ok(key) if key == p.machine => {}
        Ok(key) => return Err(malformed(kind, format!("the facts identify machine {key}, not {}", p.machine))),
        Err(e) => return Err(malformed(kind, e.to_string())),
    }
    match identity_refusal(read, &p.mac, &p.machine, &p.facts) {
        Some(refusal) => Err(Rejection::IdentityRefused { refusal }),
        None => Ok(()),
    }
}

pub fn token_issued(
    ms: &MachinesState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &BootstrapTokenIssued,
) -> Result<(), Rejection> {
    let kind = EventKind::BootstrapTokenIssued;
    let bs = &ms.bootstrap;
    if normalize_mac(&p.mac).ok().as_deref() != Some(p.mac.as_str()) {
        return Err(malformed(kind, format!("`{}` is not a lower-case, colon-separated MAC address", p.mac)));
    }
    if read.credential_in_use(&p.token) {
        return Err(Rejection::TokenInUse { token: p.token });
    }
    if p.expires <= ctx.now || p.expires.0 - ctx.now.0 > MAX_TOKEN_TTL_MS {
        return Err(malformed(kind, "a bootstrap token must expire after it is issued, and within 7 days"));
    }
    if let Some(m) = &p.machine {
        let record = read.machine(m).ok_or_else(|| Rejection::UnknownMachine { machine: m.clone() })?;
        if !record.facts.macs().any(|mac| mac == p.mac) {
            return Err(malformed(kind, format!("machine {m} has no NIC with MAC {}", p.mac)));
        }
    }
    let open = bs.unclaimed.iter().filter(|(mac, _)| **mac != p.mac).filter_map(|(_, h)| bs.token(h));
    if open.filter(|t| t.status == TokenStatus::Unclaimed && ctx.now < t.expires).count() >= MAX_UNCLAIMED_TOKENS {
        return Err(refused(format!(
            "{MAX_UNCLAIMED_TOKENS} bootstrap tokens are unclaimed and unexpired; wait for them to expire"
        )));
    }
    Ok(())
}

pub fn token_claimed(
    ms: &MachinesState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &BootstrapTokenClaimed,
) -> Result<(), Rejection> {
    let token = ms.bootstrap.token(&p.token).ok_or_else(|| refused("no such bootstrap token was issued"))?;
    match &token.status {
        TokenStatus::Unclaimed => {}
        TokenStatus::Claimed { machine, seq } => {
            return Err(Rejection::BootstrapTokenUsed { machine: machine.clone(), seq: *seq });
        }
        TokenStatus::Exchanged { node, seq } => {
            return Err(refused(format!("it was exchanged for node {node}'s token at seq {seq}")));
        }
        TokenStatus::Replaced { seq } => return Err(refused(format!("its session ended at seq {seq}"))),
    }
    if ctx.now >= token.expires {
        return Err(refused(format!("it expired at {}; netboot the machine again", token.expires)));
    }
    let machine = read.machine(&p.machine).ok_or_else(|| Rejection::UnknownMachine { machine: p.machine.clone() })?;
    if !machine.facts.macs().any(|mac| mac == token.mac) {
        return Err(refused(format!(
            "it was issued for the NIC with MAC {}, which machine {} did not report",
            token.mac, p.machine
        )));
    }
    Ok(())
}

pub fn token_exchanged(ms: &MachinesState, read: &dyn FleetRead, p: &BootstrapTokenExchanged) -> Result<(), Rejection> {
    let kind = EventKind::BootstrapTokenExchanged;
    let token = ms.bootstrap.token(&p.token).ok_or_else(|| refused("no such bootstrap token was issued"))?;
    let machine = match &token.status {
        TokenStatus::Claimed { machine, .. } => machine,
        TokenStatus::Unclaimed => return Err(refused("its machine has not phoned home with it")),
        TokenStatus::Exchanged { node, seq } => {
            return Err(refused(format!(
                "it was already exchanged for node {node}'s token at seq {seq}; a bootstrap token works once"
            )));
        }
        TokenStatus::Replaced { seq } => return Err(refused(format!("its session ended at seq {seq}"))),
    };
    let node = node_in(read, &p.node, kind, &[NodeState::Installing])?;
    if node.machine != machine {
        return Err(refused(format!(
            "it is machine {machine}'s, and node {} is bound to machine {}",
            p.node, node.machine
        )));
    }
    match ssh_public_key_problem(&p.ssh_host_key) {
        Some(why) => Err(malformed(kind, why)),
        None => Ok(()),
    }
}

pub fn install_progressed(read: &dyn FleetRead, p: &InstallProgressed) -> Result<(), Rejection> {
    let kind = EventKind::InstallProgressed;
    node_in(read, &p.node, kind, &[NodeState::InstallPending, NodeState::Installing])?;
    if p.detail.len() > MAX_TEXT {
        return Err(malformed(kind, format!("the detail is longer than {MAX_TEXT} bytes")));
    }
    Ok(())
}

pub fn plan_refused(read: &dyn FleetRead, p: &InstallPlanRefused) -> Result<(), Rejection> {
    let kind = EventKind::InstallPlanRefused;
    node_in(read, &p.node, kind, &[NodeState::Commissioned, NodeState::Reprovisioning])?;
    live_spec(read, kind, &p.spec)?;
    match read.layout_of(&p.node) {
        Err(PlanUnavailable::DoesNotFit { layout, .. }) if layout == p.layout && !p.reasons.is_empty() => Ok(()),
        Err(PlanUnavailable::DoesNotFit { layout, .. }) if layout != p.layout => Err(Rejection::DecisionDoesNotHold {
            event: kind,
            why: format!("node {}'s disk layout is '{layout}', not '{}'", p.node, p.layout),
        }),
        Err(PlanUnavailable::DoesNotFit { .. }) => Err(malformed(kind, "a refusal needs its reasons")),
        Ok(_) => Err(Rejection::DecisionDoesNotHold {
            event: kind,
            why: format!("disk layout '{}' fits node {}'s disks", p.layout, p.node),
        }),
        Err(other) => Err(Rejection::DecisionDoesNotHold { event: kind, why: other.to_string() }),
    }
}

pub fn enrollment_conflicted(read: &dyn FleetRead, p: &EnrollmentConflicted) -> Result<(), Rejection> {
    let kind = EventKind::EnrollmentConflicted;
    let m = unbound_machine(read, &p.machine)?;
    let spec = &live_spec(read, kind, &p.spec)?.spec;
    let here = enrollment::location(spec, m.facts);
    match select_rule(&spec.enrollment_rules, m.facts, &here) {
        Err(c) if c.priority == p.priority && c.rules == p.rules => Ok(()),
        _ => Err(Rejection::DecisionDoesNotHold {
            event: kind,
            why: format!(
                "rules {} do not all match machine {} at priority {}",
                p.rules.join(", "),
                p.machine,
                p.priority
            ),
        }),
    }
}

pub fn enrollment_refused(read: &dyn FleetRead, p: &EnrollmentRefused) -> Result<(), Rejection> {
    let kind = EventKind::EnrollmentRefused;
    let m = unbound_machine(read, &p.machine)?;
    let spec = &live_spec(read, kind, &p.spec)?.spec;
    let here = enrollment::location(spec, m.facts);
    let taken = read.nodes().map(|n| n.id.clone()).collect();
    match enrollment::enroll(spec, read, m.facts, &here, &taken) {
        EnrollOutcome::Refused { rule, .. } if rule == p.rule && !p.reasons.is_empty() => Ok(()),
        other => Err(Rejection::DecisionDoesNotHold {
            event: kind,
            why: format!("enrolling machine {} gives {other:?}, not a refusal by rule '{}'", p.machine, p.rule),
        }),
    }
}
