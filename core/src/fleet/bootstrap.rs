//! Bootstrap state: bootstrap tokens (by hash only), the installer session of each machine, why unbound
//! machines were not enrolled, why nodes' install plans were refused, install progress and the SSH host keys
//! nodes reported — with the rules (`check`) and the fold (`evolve`) of the events in `event/bootstrap.rs`,
//! and the install-plan rule every `NodeInstallRequested` passes.
//!
//! A bootstrap token is issued for a MAC (netboot), claimed once by the machine that phones home with it,
//! and spent once when the installer exchanges it for the node token. Claimed, it is that machine's installer
//! session: it may fetch the plan and report install progress for the machine's node, nothing else.

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use super::FleetState;
use crate::enrollment::{self, Outcome};
use crate::event::{Event, EventKind, InstallStep, MAX_UNCLAIMED_TOKENS, NodeInstallRequested, Payload, Proposal};
use crate::facts::HardwareFacts;
use crate::ids::{EventId, Hash, MachineId, NodeId, Timestamp};
use crate::install::{self, PlanUnavailable};
use crate::lifecycle::{self, NodeState};
use crate::netboot::normalize_mac;
use crate::rejection::Rejection;
use crate::spec::select_rule;

/// The longest a bootstrap token may be issued for.
pub const MAX_TOKEN_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// The longest free-text detail of an install progress report.
pub const MAX_DETAIL: usize = 4096;

/// What the log knows about bootstrapping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapState {
    /// Bootstrap tokens by hash: unclaimed ones (until they expire and a later issue prunes them), installer
    /// sessions, and spent ones (so a spent token is answered with why it no longer works).
    pub tokens: OrdMap<Hash, Arc<BootToken>>,
    /// The unclaimed token of each MAC.
    pub unclaimed: OrdMap<String, Hash>,
    /// The live installer session (claimed token) of each machine.
    pub sessions: OrdMap<MachineId, Hash>,
    /// Why an unbound machine was not bound, as last decided.
    pub enrollment: OrdMap<MachineId, Arc<EnrollmentProblem>>,
    /// Why a node's install plan was refused, as last decided.
    pub refusals: OrdMap<NodeId, Arc<PlanRefusal>>,
    /// The last install step each node reported.
    pub progress: OrdMap<NodeId, Arc<Progress>>,
    /// The SSH host public key each node reported when its installer spent its token.
    pub host_keys: OrdMap<NodeId, Arc<HostKey>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootToken {
    pub hash: Hash,
    pub mac: String,
    /// The seq and id of the `BootstrapTokenIssued` event (the server derives the token from the id, so it can
    /// hand the same token out again while it is unclaimed).
    pub issued: u64,
    pub issued_id: EventId,
    pub expires: Timestamp,
    pub status: TokenStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenStatus {
    Unclaimed,
    /// The machine's installer session.
    Claimed {
        machine: MachineId,
        seq: u64,
    },
    /// Spent for the node token.
    Exchanged {
        node: NodeId,
        seq: u64,
    },
    /// The machine phoned home again with a newer token, which ended this session.
    Replaced {
        seq: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentProblem {
    pub seq: u64,
    /// The spec digest and the machine's `last_seen` it was decided on.
    pub spec: Hash,
    pub seen: u64,
    pub problem: Problem,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Problem {
    Conflict { priority: u32, rules: Vec<String> },
    Refused { rule: String, reasons: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRefusal {
    pub seq: u64,
    /// The spec digest, the node's `since` and its machine's `last_seen` it was decided on.
    pub spec: Hash,
    pub since: u64,
    pub seen: u64,
    pub layout: String,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub seq: u64,
    pub step: InstallStep,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKey {
    pub seq: u64,
    pub key: String,
}

/// Why a bootstrap token the log knows no longer works, in a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnded {
    /// It was never used and its time ran out (the caller is not authenticated: 401).
    Expired(String),
    /// It was used up: exchanged for the node token, or replaced by a newer session (authenticated, but it may do
    /// nothing more: 403).
    Spent(String),
}

impl SessionEnded {
    pub fn why(&self) -> &str {
        match self {
            SessionEnded::Expired(w) | SessionEnded::Spent(w) => w,
        }
    }
}

/// A bootstrap token that authenticates a request, and the machine whose installer session it is (none
/// before it phoned home).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session<'a> {
    pub token: &'a BootToken,
    pub machine: Option<&'a MachineId>,
}

impl BootstrapState {
    pub fn token(&self, hash: &Hash) -> Option<&BootToken> {
        self.tokens.get(hash).map(Arc::as_ref)
    }

    /// The token `hash` as a credential at `now`, or why it no longer works. `None` when the log holds no such
    /// bootstrap token: it never phoned home (a stateless token, which the server checks by its signature), or
    /// it was an issued token pruned after expiring.
    pub fn session(&self, hash: &Hash, now: Timestamp) -> Option<Result<Session<'_>, SessionEnded>> {
        let token = self.token(hash)?;
        Some(match &token.status {
            TokenStatus::Unclaimed if now >= token.expires => Err(SessionEnded::Expired(format!(
                "this bootstrap token expired at {} before its machine phoned home; netboot the machine again for \
                 a new one",
                token.expires
            ))),
            TokenStatus::Unclaimed => Ok(Session { token, machine: None }),
            TokenStatus::Claimed { machine, .. } => Ok(Session { token, machine: Some(machine) }),
            TokenStatus::Exchanged { node, seq } => Err(SessionEnded::Spent(format!(
                "this bootstrap token was exchanged for node {node}'s token at seq {seq}; a bootstrap token works once"
            ))),
            TokenStatus::Replaced { seq } => Err(SessionEnded::Spent(format!(
                "this bootstrap token's installer session ended at seq {seq}, when the machine phoned home with a \
                 newer token"
            ))),
        })
    }

    /// The unclaimed token of `mac` that still works at `now`.
    pub fn unclaimed_for(&self, mac: &str, now: Timestamp) -> Option<&BootToken> {
        let token = self.token(self.unclaimed.get(mac)?)?;
        (token.status == TokenStatus::Unclaimed && now < token.expires).then_some(token)
    }
}

/// Whether `p` is one of this module's events.
pub fn owns(p: &Payload) -> bool {
    matches!(
        p,
        Payload::BootstrapTokenIssued(_)
            | Payload::BootstrapTokenClaimed(_)
            | Payload::BootstrapTokenExchanged(_)
            | Payload::InstallProgressed(_)
            | Payload::InstallPlanRefused(_)
            | Payload::EnrollmentConflicted(_)
            | Payload::EnrollmentRefused(_)
            | Payload::MachinePhonedHome(_)
    )
}

/// Why a phone-home with a bootstrap token for the NIC `mac` may not speak for the machine its facts describe.
/// A bootstrap token proves only that its holder netbooted (or asked the netboot endpoint) with that MAC, so a
/// phone-home may speak for a machine that is new, or for the one the log already associates with that MAC — and
/// then only while its node is to be installed. Anything else is a claim the token does not back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum IdentityRefusal {
    #[error("the facts do not list the NIC with MAC {mac}, which the bootstrap token was issued for")]
    NicNotReported { mac: String },
    #[error(
        "the facts identify machine {machine}, which the log knows by other NICs, not by MAC {mac}; if its NIC was \
         replaced, an operator accepts the new facts (`sendan machines --refused`, then `sendan machines --accept-refused ID`)"
    )]
    NotThisMachinesNic { machine: MachineId, mac: String },
    #[error(
        "MAC {mac} belongs to machine {owner}, but the facts identify machine {machine}; if the board was replaced, an \
         operator binds the node to the new machine (`sendan node rebind`)"
    )]
    NicOfAnotherMachine { mac: String, owner: MachineId, machine: MachineId },
    #[error("the facts claim the {what} `{value}` of machine {owner}, and a bootstrap token cannot prove that")]
    IdentityOfAnotherMachine { what: String, value: String, owner: MachineId },
    #[error(
        "machine {machine} is bound to node {node}, which is `{state}`: it boots from its disk, and no installer speaks \
         for it (reprovision the node first)"
    )]
    NodeNotInstalling { machine: MachineId, node: NodeId, state: NodeState },
}

/// Whether a node in `state` netboots into the installer: it is to be installed. A bound machine may phone home
/// only then; installed nodes boot their disk and a node in `rescue` boots the rescue image.
pub fn boots_installer(state: NodeState) -> bool {
    matches!(
        state,
        NodeState::Commissioned | NodeState::InstallPending | NodeState::Installing | NodeState::Reprovisioning
    )
}

/// DMI serials that vendors ship unset, which identify nothing.
fn placeholder_serial(serial: &str) -> bool {
    const PLACEHOLDERS: [&str; 12] = [
        "",
        "0",
        "none",
        "n/a",
        "na",
        "default string",
        "to be filled by o.e.m.",
        "not specified",
        "system serial number",
        "not applicable",
        "0123456789",
        "123456789",
    ];
    let s = serial.trim().to_ascii_lowercase();
    PLACEHOLDERS.contains(&s.as_str()) || s.chars().all(|c| c == '0' || c == 'x' || c == '-' || c == ' ')
}

fn dmi_uuid(facts: &HardwareFacts) -> Option<String> {
    let uuid = facts.dmi.system_uuid.as_deref()?.to_ascii_lowercase();
    (!crate::facts::is_placeholder_uuid(&uuid)).then_some(uuid)
}

fn dmi_serial(facts: &HardwareFacts) -> Option<(String, String)> {
    let serial = facts.dmi.serial.as_deref().filter(|s| !placeholder_serial(s))?;
    let vendor = facts.dmi.vendor.as_deref().unwrap_or_default().trim().to_ascii_lowercase();
    Some((vendor, serial.trim().to_owned()))
}

/// Whether a phone-home with a bootstrap token for NIC `mac` (normalized) may record `facts` for `machine` (their
/// machine key): `None` when it may, else why not. Pure; `check` applies it to `MachinePhonedHome`, and the
/// phone-home endpoint asks it first so that a refusal never reaches the log.
pub fn identity_refusal(
    state: &FleetState,
    mac: &str,
    machine: &MachineId,
    facts: &HardwareFacts,
) -> Option<IdentityRefusal> {
    if !facts.macs().any(|m| m == mac) {
        return Some(IdentityRefusal::NicNotReported { mac: mac.to_owned() });
    }
    if let Some(known) = state.machine(machine) {
        if known.id.as_str() != mac && !known.facts.macs().any(|m| m == mac) {
            return Some(IdentityRefusal::NotThisMachinesNic { machine: machine.clone(), mac: mac.to_owned() });
        }
        if let Some(node) = known.node.as_ref().and_then(|n| state.node(n))
            && !boots_installer(node.state)
        {
            return Some(IdentityRefusal::NodeNotInstalling {
                machine: machine.clone(),
                node: node.id.clone(),
                state: node.state,
            });
        }
    }
    let uuid = dmi_uuid(facts);
    let serial = dmi_serial(facts);
    for other in state.machines.values().filter(|m| &m.id != machine) {
        if other.id.as_str() == mac || other.facts.macs().any(|m| m == mac) {
            return Some(IdentityRefusal::NicOfAnotherMachine {
                mac: mac.to_owned(),
                owner: other.id.clone(),
                machine: machine.clone(),
            });
        }
        if let Some(u) = &uuid
            && dmi_uuid(&other.facts).as_ref() == Some(u)
        {
            return Some(IdentityRefusal::IdentityOfAnotherMachine {
                what: "DMI system uuid".into(),
                value: u.clone(),
                owner: other.id.clone(),
            });
        }
        if let Some(s) = &serial
            && dmi_serial(&other.facts).as_ref() == Some(s)
        {
            return Some(IdentityRefusal::IdentityOfAnotherMachine {
                what: "DMI serial".into(),
                value: s.1.clone(),
                owner: other.id.clone(),
            });
        }
    }
    None
}

/// A hash no bootstrap or node token uses: a token hash belongs to one credential.
pub(super) fn token_free(state: &FleetState, token: &Hash) -> Result<(), Rejection> {
    if state.tokens.contains_key(token) || state.bootstrap.tokens.contains_key(token) {
        return Err(Rejection::TokenInUse { token: *token });
    }
    Ok(())
}

/// `NodeInstallRequested` for a node the live spec declares: its disk layout must fit its machine's disks.
pub(super) fn check_install_request(state: &FleetState, p: &NodeInstallRequested) -> Result<(), Rejection> {
    match install::layout_of(state, &p.node) {
        Err(PlanUnavailable::DoesNotFit { node, machine, layout, reasons }) => {
            Err(Rejection::LayoutDoesNotFit { node, machine, layout, reasons })
        }
        _ => Ok(()),
    }
}

fn refused(why: impl Into<String>) -> Rejection {
    Rejection::BootstrapTokenRefused { why: why.into() }
}

fn malformed(event: EventKind, why: impl Into<String>) -> Rejection {
    Rejection::MalformedEvent { event, why: why.into() }
}

/// `node`, if it is in one of `needs`.
fn node_in<'s>(
    state: &'s FleetState,
    node: &NodeId,
    event: EventKind,
    needs: &[NodeState],
) -> Result<&'s super::NodeRecord, Rejection> {
    let n = state.node(node).ok_or_else(|| Rejection::UnknownNode { node: node.clone(), event })?;
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

fn unbound_machine<'s>(state: &'s FleetState, machine: &MachineId) -> Result<&'s super::MachineRecord, Rejection> {
    let m = state.machine(machine).ok_or_else(|| Rejection::UnknownMachine { machine: machine.clone() })?;
    if let Some(node) = &m.node {
        return Err(Rejection::MachineBound { machine: machine.clone(), node: node.clone() });
    }
    Ok(m)
}

fn live_spec(state: &FleetState, event: EventKind, spec: &Hash) -> Result<(), Rejection> {
    match &state.spec.live {
        Some(live) if live.digest == *spec => Ok(()),
        other => Err(Rejection::StaleSpec {
            event,
            spec: *spec,
            live: other.as_ref().map(|l| l.digest.to_hex()).unwrap_or_else(|| "none".to_owned()),
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

pub(super) fn check(state: &FleetState, proposal: &Proposal) -> Result<(), Rejection> {
    let kind = proposal.payload.kind();
    let now = proposal.time;
    let bs = &state.bootstrap;
    match &proposal.payload {
        Payload::BootstrapTokenIssued(p) => {
            if normalize_mac(&p.mac).ok().as_deref() != Some(p.mac.as_str()) {
                return Err(malformed(kind, format!("`{}` is not a lower-case, colon-separated MAC address", p.mac)));
            }
            token_free(state, &p.token)?;
            if p.expires <= now || p.expires.0 - now.0 > MAX_TOKEN_TTL_MS {
                return Err(malformed(kind, "a bootstrap token must expire after it is issued, and within 7 days"));
            }
            if let Some(m) = &p.machine {
                let record = state.machine(m).ok_or_else(|| Rejection::UnknownMachine { machine: m.clone() })?;
                if !record.facts.macs().any(|mac| mac == p.mac) {
                    return Err(malformed(kind, format!("machine {m} has no NIC with MAC {}", p.mac)));
                }
            }
            let open = bs.unclaimed.iter().filter(|(mac, _)| **mac != p.mac).filter_map(|(_, h)| bs.token(h));
            if open.filter(|t| now < t.expires).count() >= MAX_UNCLAIMED_TOKENS {
                return Err(refused(format!(
                    "{MAX_UNCLAIMED_TOKENS} bootstrap tokens are unclaimed and unexpired; wait for them to expire"
                )));
            }
            Ok(())
        }
        Payload::MachinePhonedHome(p) => {
            if !crate::netboot::is_unicast_mac(&p.mac) {
                return Err(malformed(kind, format!("`{}` is not a lower-case, colon-separated unicast MAC", p.mac)));
            }
            if let Some(t) = bs.token(&p.token) {
                // A token an operator issued (`BootstrapTokenIssued`) phones home here too, once, for its own MAC.
                match &t.status {
                    TokenStatus::Unclaimed if t.mac == p.mac => {}
                    TokenStatus::Claimed { machine, seq } => {
                        return Err(Rejection::BootstrapTokenUsed { machine: machine.clone(), seq: *seq });
                    }
                    _ => return Err(refused("it was used before; netboot the machine again for a new one")),
                }
            } else if state.tokens.contains_key(&p.token) {
                return Err(Rejection::TokenInUse { token: p.token });
            }
            if now >= p.expires {
                return Err(refused(format!("it expired at {}; netboot the machine again", p.expires)));
            }
            if p.expires.0 - now.0 > MAX_TOKEN_TTL_MS {
                return Err(malformed(kind, "a bootstrap token expires within 7 days"));
            }
            p.facts.check().map_err(|e| malformed(kind, e.to_string()))?;
            match p.facts.machine_key() {
                Ok(key) if key == p.machine => {}
                Ok(key) => return Err(malformed(kind, format!("the facts identify machine {key}, not {}", p.machine))),
                Err(e) => return Err(malformed(kind, e.to_string())),
            }
            match identity_refusal(state, &p.mac, &p.machine, &p.facts) {
                Some(refusal) => Err(Rejection::IdentityRefused { refusal }),
                None => Ok(()),
            }
        }
        Payload::BootstrapTokenClaimed(p) => {
            let token = bs.token(&p.token).ok_or_else(|| refused("no such bootstrap token was issued"))?;
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
            if now >= token.expires {
                return Err(refused(format!("it expired at {}; netboot the machine again", token.expires)));
            }
            let machine =
                state.machine(&p.machine).ok_or_else(|| Rejection::UnknownMachine { machine: p.machine.clone() })?;
            if !machine.facts.macs().any(|mac| mac == token.mac) {
                return Err(refused(format!(
                    "it was issued for the NIC with MAC {}, which machine {} did not report",
                    token.mac, p.machine
                )));
            }
            Ok(())
        }
        Payload::BootstrapTokenExchanged(p) => {
            let token = bs.token(&p.token).ok_or_else(|| refused("no such bootstrap token was issued"))?;
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
            let node = node_in(state, &p.node, kind, &[NodeState::Installing])?;
            if node.machine != *machine {
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
        Payload::InstallProgressed(p) => {
            node_in(state, &p.node, kind, &[NodeState::InstallPending, NodeState::Installing])?;
            if p.detail.len() > MAX_DETAIL {
                return Err(malformed(kind, format!("the detail is longer than {MAX_DETAIL} bytes")));
            }
            Ok(())
        }
        Payload::InstallPlanRefused(p) => {
            node_in(state, &p.node, kind, &[NodeState::Commissioned, NodeState::Reprovisioning])?;
            live_spec(state, kind, &p.spec)?;
            match install::layout_of(state, &p.node) {
                Err(PlanUnavailable::DoesNotFit { layout, .. }) if layout == p.layout && !p.reasons.is_empty() => {
                    Ok(())
                }
                Err(PlanUnavailable::DoesNotFit { layout, .. }) if layout != p.layout => {
                    Err(Rejection::DecisionDoesNotHold {
                        event: kind,
                        why: format!("node {}'s disk layout is '{layout}', not '{}'", p.node, p.layout),
                    })
                }
                Err(PlanUnavailable::DoesNotFit { .. }) => Err(malformed(kind, "a refusal needs its reasons")),
                Ok(_) => Err(Rejection::DecisionDoesNotHold {
                    event: kind,
                    why: format!("disk layout '{}' fits node {}'s disks", p.layout, p.node),
                }),
                Err(other) => Err(Rejection::DecisionDoesNotHold { event: kind, why: other.to_string() }),
            }
        }
        Payload::EnrollmentConflicted(p) => {
            let m = unbound_machine(state, &p.machine)?;
            live_spec(state, kind, &p.spec)?;
            let spec = &state.spec.live.as_ref().expect("live_spec checked it").spec;
            let here = enrollment::location(spec, &m.facts);
            match select_rule(&spec.enrollment_rules, &m.facts, &here) {
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
        Payload::EnrollmentRefused(p) => {
            let m = unbound_machine(state, &p.machine)?;
            live_spec(state, kind, &p.spec)?;
            let spec = &state.spec.live.as_ref().expect("live_spec checked it").spec;
            let here = enrollment::location(spec, &m.facts);
            let taken = state.nodes.keys().cloned().collect();
            match enrollment::enroll(spec, state, &m.facts, &here, &taken) {
                Outcome::Refused { rule, .. } if rule == p.rule && !p.reasons.is_empty() => Ok(()),
                other => Err(Rejection::DecisionDoesNotHold {
                    event: kind,
                    why: format!("enrolling machine {} gives {other:?}, not a refusal by rule '{}'", p.machine, p.rule),
                }),
            }
        }
        _ => Ok(()),
    }
}

/// Fold one of this module's events in. Rule-free: records it names that do not exist are left alone.
pub(super) fn evolve(state: &mut FleetState, event: &Event) {
    let seq = event.seq;
    if let Some(node) = event.payload.node()
        && let Some(n) = state.node_mut(node)
    {
        n.updated = seq;
    }
    if let Payload::MachinePhonedHome(p) = &event.payload {
        super::record_facts(state, &p.machine, &p.facts, seq);
    }
    let bs = &mut state.bootstrap;
    match &event.payload {
        Payload::MachinePhonedHome(p) => {
            let token = Arc::make_mut(bs.tokens.entry(p.token).or_insert_with(|| {
                Arc::new(BootToken {
                    hash: p.token,
                    mac: p.mac.clone(),
                    issued: seq,
                    issued_id: event.id,
                    expires: p.expires,
                    status: TokenStatus::Unclaimed,
                })
            }));
            token.status = TokenStatus::Claimed { machine: p.machine.clone(), seq };
            if bs.unclaimed.get(&p.mac) == Some(&p.token) {
                bs.unclaimed.remove(&p.mac);
            }
            if let Some(previous) = bs.sessions.insert(p.machine.clone(), p.token)
                && previous != p.token
                && let Some(old) = bs.tokens.get_mut(&previous).map(Arc::make_mut)
            {
                old.status = TokenStatus::Replaced { seq };
            }
        }
        Payload::BootstrapTokenIssued(p) => {
            // Unclaimed tokens that expired by now are forgotten, and a MAC's previous unclaimed token is
            // replaced, so the state holds at most the tokens that can still be claimed.
            let time = event.time;
            let stale: Vec<(String, Hash)> = bs
                .unclaimed
                .iter()
                .filter(|(mac, h)| **mac == p.mac || bs.tokens.get(*h).is_none_or(|t| t.expires <= time))
                .map(|(mac, h)| (mac.clone(), *h))
                .collect();
            for (mac, h) in stale {
                bs.unclaimed.remove(&mac);
                bs.tokens.remove(&h);
            }
            bs.tokens.insert(
                p.token,
                Arc::new(BootToken {
                    hash: p.token,
                    mac: p.mac.clone(),
                    issued: seq,
                    issued_id: event.id,
                    expires: p.expires,
                    status: TokenStatus::Unclaimed,
                }),
            );
            bs.unclaimed.insert(p.mac.clone(), p.token);
        }
        Payload::BootstrapTokenClaimed(p) => {
            let Some(token) = bs.tokens.get_mut(&p.token).map(Arc::make_mut) else { return };
            token.status = TokenStatus::Claimed { machine: p.machine.clone(), seq };
            let mac = token.mac.clone();
            if bs.unclaimed.get(&mac) == Some(&p.token) {
                bs.unclaimed.remove(&mac);
            }
            if let Some(previous) = bs.sessions.insert(p.machine.clone(), p.token)
                && previous != p.token
                && let Some(old) = bs.tokens.get_mut(&previous).map(Arc::make_mut)
            {
                old.status = TokenStatus::Replaced { seq };
            }
        }
        Payload::BootstrapTokenExchanged(p) => {
            let Some(token) = bs.tokens.get_mut(&p.token).map(Arc::make_mut) else { return };
            if let TokenStatus::Claimed { machine, .. } = &token.status
                && bs.sessions.get(machine) == Some(&p.token)
            {
                bs.sessions.remove(machine);
            }
            token.status = TokenStatus::Exchanged { node: p.node.clone(), seq };
            bs.host_keys.insert(p.node.clone(), Arc::new(HostKey { seq, key: p.ssh_host_key.clone() }));
        }
        Payload::InstallProgressed(p) => {
            bs.progress.insert(p.node.clone(), Arc::new(Progress { seq, step: p.step, detail: p.detail.clone() }));
        }
        Payload::InstallPlanRefused(p) => {
            let since = state.nodes.get(&p.node).map(|n| n.since).unwrap_or_default();
            let seen = state
                .nodes
                .get(&p.node)
                .and_then(|n| state.machines.get(&n.machine))
                .map(|m| m.last_seen)
                .unwrap_or_default();
            state.bootstrap.refusals.insert(
                p.node.clone(),
                Arc::new(PlanRefusal {
                    seq,
                    spec: p.spec,
                    since,
                    seen,
                    layout: p.layout.clone(),
                    reasons: p.reasons.clone(),
                }),
            );
        }
        Payload::EnrollmentConflicted(p) => {
            let seen = state.machines.get(&p.machine).map(|m| m.last_seen).unwrap_or_default();
            let problem = Problem::Conflict { priority: p.priority, rules: p.rules.clone() };
            state
                .bootstrap
                .enrollment
                .insert(p.machine.clone(), Arc::new(EnrollmentProblem { seq, spec: p.spec, seen, problem }));
        }
        Payload::EnrollmentRefused(p) => {
            let seen = state.machines.get(&p.machine).map(|m| m.last_seen).unwrap_or_default();
            let problem = Problem::Refused { rule: p.rule.clone(), reasons: p.reasons.clone() };
            state
                .bootstrap
                .enrollment
                .insert(p.machine.clone(), Arc::new(EnrollmentProblem { seq, spec: p.spec, seen, problem }));
        }
        _ => {}
    }
}
