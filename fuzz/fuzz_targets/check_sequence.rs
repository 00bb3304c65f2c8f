//! Fuzz target: `check` over arbitrary proposal sequences, through `sendan_core::log::append` (the
//! function every replica runs on every committed entry).
//!
//! The input is read, with `arbitrary`, as batches of steps over a small universe of node ids, machine
//! ids, actors and event kinds, so that proposals keep meeting the same subjects. A step is any event of
//! those kinds (mostly illegal), a move picked at run time among those legal for a node's current state
//! (so runs reach deep into the lifecycle), or a payload of any kind at all, decoded from raw bytes in its
//! stored (postcard) form. After every batch:
//! - nothing panics;
//! - every accepted lifecycle event moved its subject from a state its row of the table allows, to the
//!   row's target (so `retired` is never left and no illegal transition is ever accepted);
//! - every event accepted from a non-admin actor is one that actor may emit, about its own node or machine;
//! - one machine ↔ one node id, and one live token hash ↔ one node;
//! - a rejected batch leaves the state exactly as it was, and its refused proposal really fails `check`
//!   after the ones before it;
//! - the accepted events form a dense, linked chain whose records `Verifier` accepts.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sendan_core::chain::Verifier;
use sendan_core::event::*;
use sendan_core::facts::{HardwareFacts, Nic};
use sendan_core::fleet::FleetState;
use sendan_core::ids::{Actor, EventId, Hash, MachineId, NodeId, Timestamp};
use sendan_core::lifecycle::{self, NodeState};
use sendan_core::spec::ClusterSpec;
use sendan_core::{log, record};

const NODES: &[&str] = &["n0", "n1", "n2"];
const MACHINES: &[&str] = &["m0", "m1", "m2", "m3"];
/// Bounds that keep one input fast to run.
const MAX_BATCHES: usize = 64;
const MAX_BATCH: usize = 6;
const COMMENTS: &[&str] = &["", "disk", "replaced PSU — ticket #4711", "\u{0}\n\t\"'", "保守"];

fn node(i: u8) -> NodeId {
    NodeId::new(NODES[usize::from(i) % NODES.len()]).unwrap()
}

fn machine(i: u8) -> MachineId {
    MachineId::new(MACHINES[usize::from(i) % MACHINES.len()]).unwrap()
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    batches: Vec<Vec<Step<'a>>>,
}

#[derive(Arbitrary, Debug)]
struct Step<'a> {
    what: What<'a>,
    clock: Clock,
    /// An index into [`COMMENTS`]. Arbitrary strings would swallow most of the input; the record
    /// encoding of arbitrary comments is the `decode_record` target's business.
    comment: Option<u8>,
    /// Who proposes it, see [`actor`].
    actor: u8,
}

#[derive(Arbitrary, Debug)]
enum What<'a> {
    /// Any event of [`KINDS`] about these subjects, legal or not.
    Any { kind: u8, node: u8, machine: u8, variant: u8 },
    /// A move legal for the node's current state (or the step that brings the node into existence).
    Legal { node: u8, machine: u8, pick: u8 },
    /// A payload of any kind, in its stored form: this reaches the kinds [`payload_of`] does not build.
    Raw(&'a [u8]),
}

/// The leader's clock at proposal: usually a small step, sometimes backwards, sometimes anywhere.
#[derive(Arbitrary, Debug)]
enum Clock {
    Step(i8),
    At(i64),
}

/// Mostly the admin, so that most proposals get as far as the lifecycle rules.
fn actor(i: u8) -> Actor {
    match i % 8 {
        0..=4 => Actor::Admin,
        5 => Actor::Node(node(i / 8)),
        6 => Actor::Bootstrap(machine(i / 8)),
        _ => Actor::System("enrollment".into()),
    }
}

/// Every kind of the catalogue: the list comes from `EventKind::ALL`, so a new kind is fuzzed without anyone
/// remembering to add it — and [`payload_of`] matches every kind with no wildcard arm, so a new kind does not
/// compile here until it builds one.
const KINDS: &[EventKind] = EventKind::ALL;

/// An event of `kind` about these subjects.
fn payload_of(kind: EventKind, node: NodeId, machine: MachineId, variant: u8) -> Option<Payload> {
    Some(match kind {
        EventKind::MachineDiscovered => MachineDiscovered {
            machine,
            facts: HardwareFacts { memory_bytes: u64::from(variant) << 30, ..HardwareFacts::default() },
        }
        .into(),
        EventKind::NodeCommissioned => {
            NodeCommissioned { node, machine, class: Some("worker".into()), pool: None, profile: None, rule: None }
                .into()
        }
        EventKind::NodeInstallRequested => NodeInstallRequested { node }.into(),
        EventKind::NodeInstallStarted => NodeInstallStarted { node }.into(),
        EventKind::NodeInstallFailed => NodeInstallFailed { node, reason: "disk".into() }.into(),
        EventKind::NodeActivated => NodeActivated { node }.into(),
        EventKind::NodeDrainRequested => NodeDrainRequested { node }.into(),
        EventKind::NodeUncordoned => NodeUncordoned { node }.into(),
        EventKind::NodeCordoned => NodeCordoned { node, reason: "dimm".into() }.into(),
        EventKind::NodeDrainStarted => NodeDrainStarted {
            node,
            deadline: (variant % 2 == 0).then_some(Timestamp(1_700_000_000_000 + i64::from(variant) * 1_000)),
            force: variant % 3 == 0,
        }
        .into(),
        EventKind::NodeDrained => NodeDrained { node }.into(),
        EventKind::NodeReprovisionRequested => NodeReprovisionRequested { node }.into(),
        EventKind::NodeRescueRequested => NodeRescueRequested { node }.into(),
        EventKind::NodeFailed => NodeFailed { node, reason: "psu".into() }.into(),
        EventKind::NodeRetired => NodeRetired { node }.into(),
        EventKind::NodeRebound => NodeRebound { node, machine }.into(),
        EventKind::NodeTokenIssued => NodeTokenIssued { node, token: Hash::of(&[variant % 4]) }.into(),
        EventKind::SpecApplied => spec_applied(variant),
        EventKind::BootstrapTokenIssued => BootstrapTokenIssued {
            token: Hash::of(&[b'b', variant % 4]),
            mac: format!("52:54:00:00:00:{:02x}", variant % 4),
            machine: (variant % 2 == 0).then_some(machine),
            expires: Timestamp(1_700_000_000_000 + i64::from(variant) * 600_000),
        }
        .into(),
        EventKind::BootstrapTokenClaimed => {
            BootstrapTokenClaimed { token: Hash::of(&[b'b', variant % 4]), machine }.into()
        }
        EventKind::BootstrapTokenExchanged => BootstrapTokenExchanged {
            token: Hash::of(&[b'b', variant % 4]),
            node,
            ssh_host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl".into(),
        }
        .into(),
        EventKind::InstallProgressed => {
            InstallProgressed { node, step: InstallStep::ALL[usize::from(variant) % 4], detail: "step".into() }.into()
        }
        EventKind::InstallPlanRefused => {
            InstallPlanRefused { node, spec: Hash::of(&[variant]), layout: "single".into(), reasons: vec!["x".into()] }
                .into()
        }
        EventKind::EnrollmentConflicted => EnrollmentConflicted {
            machine,
            spec: Hash::of(&[variant]),
            priority: 100,
            rules: vec!["cp-1".into(), "cp-2".into()],
        }
        .into(),
        EventKind::EnrollmentRefused => {
            EnrollmentRefused { machine, spec: Hash::of(&[variant]), rule: "workers".into(), reasons: vec!["x".into()] }
                .into()
        }
        EventKind::MachinePhonedHome => MachinePhonedHome {
            facts: HardwareFacts {
                machine_id: Some(machine.to_string()),
                nics: vec![Nic {
                    name: "eth0".into(),
                    mac: format!("52:54:00:00:00:{:02x}", variant % 4),
                    ..Nic::default()
                }],
                ..HardwareFacts::default()
            },
            mac: format!("52:54:00:00:00:{:02x}", variant % 4),
            token: Hash::of(&[b's', variant]),
            expires: Timestamp(1_700_000_000_000 + i64::from(variant) * 600_000),
            machine,
        }
        .into(),
        EventKind::NodeSystemSet => {
            NodeSystemSet { node, system: system(variant), action: SwitchAction::Switch }.into()
        }
        EventKind::NodePinned => NodePinned { node, reason: "maintenance".into() }.into(),
        EventKind::NodeUnpinned => NodeUnpinned { node }.into(),
        EventKind::RolloutStarted => RolloutStarted {
            pool: "workers".into(),
            system: system(variant),
            action: SwitchAction::Switch,
            max_unavailable: u32::from(variant % 3),
            canary: u32::from(variant % 2),
            max_failures: 0,
            health_timeout_secs: 600,
        }
        .into(),
        EventKind::RolloutWaveStarted => {
            RolloutWaveStarted { rollout: u64::from(variant), wave: 1 + u32::from(variant % 2), nodes: vec![node] }
                .into()
        }
        EventKind::RolloutCompleted => RolloutCompleted { rollout: u64::from(variant) }.into(),
        EventKind::RolloutHalted => {
            RolloutHalted { rollout: u64::from(variant), reason: "operator".into(), revert: vec![node] }.into()
        }
        EventKind::RolloutNodesReverted => {
            RolloutNodesReverted { rollout: u64::from(variant), nodes: vec![node] }.into()
        }
        EventKind::RolloutReverted => RolloutReverted { rollout: u64::from(variant) }.into(),
        EventKind::RolloutDrainsMembers => RolloutDrainsMembers { pool: "workers".into() }.into(),
        EventKind::RolloutMemberLeft => {
            RolloutMemberLeft { rollout: u64::from(variant), node, why: "pinned".into() }.into()
        }
        EventKind::SystemReported => SystemReported { node, current: Some(system(variant)), booted: None }.into(),
        EventKind::SystemPrefetched => {
            SystemPrefetched { node, decision: u64::from(variant), system: system(variant), path: system(variant) }
                .into()
        }
        EventKind::SystemPrefetchFailed => SystemPrefetchFailed {
            node,
            decision: u64::from(variant),
            system: system(variant),
            error: "unsigned".into(),
        }
        .into(),
        EventKind::SystemActivating => SystemActivating {
            node,
            decision: u64::from(variant),
            path: system(variant),
            action: SwitchAction::Switch,
            previous: Some(system(variant.wrapping_add(1))),
        }
        .into(),
        EventKind::SystemProfileSet => SystemProfileSet {
            node,
            decision: u64::from(variant),
            path: system(variant),
            profile: "/nix/var/nix/profiles/system".into(),
        }
        .into(),
        EventKind::SystemSwitched => SystemSwitched {
            node,
            decision: u64::from(variant),
            path: system(variant),
            exit_code: [0, 1, 2, 4, 100][usize::from(variant) % 5],
            reboot_required: variant % 5 == 4,
        }
        .into(),
        EventKind::SystemHealthFailed => SystemHealthFailed {
            node,
            decision: u64::from(variant),
            path: system(variant),
            failures: vec!["sshd.service".into()],
        }
        .into(),
        EventKind::SystemConfirmed => {
            SystemConfirmed { node, decision: u64::from(variant), path: system(variant), switched: variant % 2 == 0 }
                .into()
        }
        EventKind::SystemRolledBack => SystemRolledBack {
            node,
            decision: u64::from(variant),
            path: system(variant),
            to: system(variant.wrapping_add(1)),
            reason: "health".into(),
            exit_code: 0,
        }
        .into(),
        EventKind::InstancePlaced => {
            InstancePlaced { service: "web".into(), instance: instance(variant), node, task_digest: web_version() }
                .into()
        }
        EventKind::InstanceRescheduled => InstanceRescheduled {
            service: "web".into(),
            instance: instance(variant),
            node,
            task_digest: web_version(),
            replaces: instance(variant / 4),
            lost: variant % 2 == 0,
            attempt: u32::from(variant % 3),
        }
        .into(),
        EventKind::InstanceStopRequested => {
            InstanceStopRequested { instance: instance(variant), node, reason: "surplus".into() }.into()
        }
        EventKind::InstanceStarted => InstanceStarted {
            instance: instance(variant),
            node,
            address: "127.0.0.1".into(),
            ports: [("http".to_owned(), 20_000 + u16::from(variant))].into_iter().collect(),
            restarts: u32::from(variant % 3),
        }
        .into(),
        EventKind::InstanceMigrated => InstanceMigrated {
            service: "web".into(),
            instance: instance(variant),
            node,
            task_digest: web_version(),
            replaces: instance(variant.wrapping_add(1)),
        }
        .into(),
        EventKind::InstanceUpdated => InstanceUpdated {
            service: "web".into(),
            instance: instance(variant),
            node,
            task_digest: if variant % 2 == 0 { web_version() } else { Hash::of(&[variant]) },
            replaces: instance(variant.wrapping_add(1)),
        }
        .into(),
        EventKind::DeploymentStarted => DeploymentStarted {
            service: "web".into(),
            task_digest: if variant % 2 == 0 { web_version() } else { Hash::of(&[variant]) },
            from: (variant % 3 != 0).then(|| Hash::of(&[variant, 1])),
            revert: variant % 4 == 0,
        }
        .into(),
        EventKind::DeploymentPromoted => {
            DeploymentPromoted { service: "web".into(), task_digest: web_version() }.into()
        }
        EventKind::DeploymentEnded => DeploymentEnded {
            service: "web".into(),
            task_digest: web_version(),
            outcome: match variant % 4 {
                0 => DeploymentOutcome::Completed,
                1 => DeploymentOutcome::Failed,
                2 => DeploymentOutcome::Aborted,
                _ => DeploymentOutcome::Superseded,
            },
            reason: "fuzz".into(),
        }
        .into(),
        EventKind::InstanceHealthy => InstanceHealthy { instance: instance(variant), node }.into(),
        EventKind::InstanceUnhealthy => {
            InstanceUnhealthy { instance: instance(variant), node, reason: "503".into() }.into()
        }
        EventKind::InstanceExited => InstanceExited {
            instance: instance(variant),
            node,
            exit_code: Some(i32::from(variant % 3)),
            signal: None,
            restarting: variant % 2 == 1,
            reason: "exited".into(),
        }
        .into(),
        EventKind::InstanceStopped => InstanceStopped { instance: instance(variant), node }.into(),
        EventKind::NodeAgentStarted => NodeAgentStarted { node, address: "127.0.0.1".into() }.into(),
        EventKind::NodeAgentLost => NodeAgentLost { node, silent_ms: u64::from(variant) }.into(),
        EventKind::NodeAgentReturned => NodeAgentReturned { node }.into(),
        EventKind::PowerRequested => PowerRequested {
            node,
            action: [None, Some(PowerAction::On), Some(PowerAction::Off), Some(PowerAction::Reboot)][variant as usize % 4],
            boot: (variant % 3 == 0).then_some(BootOverride { device: BootDevice::Pxe, once: variant % 2 == 0 }),
            force: variant % 5 == 0,
        }
        .into(),
        EventKind::PowerCompleted => PowerCompleted {
            node,
            request: u64::from(variant),
            outcome: if variant % 2 == 0 { PowerOutcome::Done } else { PowerOutcome::Failed },
            error: (variant % 3 != 0).then(|| "unreachable".into()),
            power: (variant % 4 != 0).then_some(Power::On),
        }
        .into(),
        EventKind::PowerObserved => {
            PowerObserved { node, power: if variant % 2 == 0 { Power::On } else { Power::Off } }.into()
        }
    })
}

/// One of the first instances of the fixture's service `web`.
fn instance(variant: u8) -> sendan_core::ids::InstanceId {
    sendan_core::ids::InstanceId::new(format!("web.{}", variant % 4 + 1)).unwrap()
}

/// The version of the fixture spec's `web` service, so that placements can be accepted.
fn web_version() -> Hash {
    let spec: ClusterSpec = ClusterSpec::from_json(include_str!("../../core/src/spec/fixture.json")).unwrap();
    sendan_core::services::Task::of(&spec.services["web"]).version()
}

/// One of three fake systems.
fn system(variant: u8) -> String {
    format!("/nix/store/{}c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-{variant}", variant % 3)
}

/// One of four valid specs (the checked-in fixture under four cluster names), so that runs apply new
/// specs, re-apply the live one (refused) and go back to earlier ones; or one that is refused, because
/// it does not validate or does not have the digest it claims.
fn spec_applied(variant: u8) -> Payload {
    static SPECS: std::sync::OnceLock<Vec<SpecApplied>> = std::sync::OnceLock::new();
    let specs = SPECS.get_or_init(|| {
        (0..4)
            .map(|v| {
                let mut doc: serde_json::Value =
                    serde_json::from_str(include_str!("../../core/src/spec/fixture.json")).unwrap();
                doc["name"] = serde_json::Value::String(format!("fleet-{v}"));
                let spec = ClusterSpec::from_json(&doc.to_string()).unwrap();
                SpecApplied { digest: spec.digest(), document: spec.canonical_json() }
            })
            .collect()
    });
    match variant % 6 {
        4 => SpecApplied { digest: Hash::of(b"{}"), document: "{}".into() }.into(),
        5 => SpecApplied { digest: Hash::GENESIS, ..specs[0].clone() }.into(),
        v => specs[usize::from(v)].clone().into(),
    }
}

impl What<'_> {
    /// The payload of this step in `state`; `None` when raw bytes are no payload, or a legal move is of a
    /// kind this target does not build.
    fn resolve(&self, state: &FleetState) -> Option<Payload> {
        match *self {
            What::Any { kind, node: n, machine: m, variant } => {
                payload_of(KINDS[usize::from(kind) % KINDS.len()], node(n), machine(m), variant)
            }
            What::Raw(bytes) => postcard::from_bytes(bytes).ok(),
            What::Legal { node: n, machine: m, pick } => {
                let (id, mid) = (node(n), machine(m));
                match state.node(&id) {
                    Some(rec) if !rec.state.is_terminal() => {
                        let allowed = lifecycle::allowed_events(rec.state);
                        payload_of(allowed[usize::from(pick) % allowed.len()], id, mid, 1)
                    }
                    Some(_) => Some(NodeRetired { node: id }.into()),
                    None if state.machine(&mid).is_some_and(|r| r.node.is_none()) => {
                        payload_of(EventKind::NodeCommissioned, id, mid, 1)
                    }
                    None => payload_of(EventKind::MachineDiscovered, id, mid, 1),
                }
            }
        }
    }
}

/// The lifecycle state of whatever `p` moves, before it is applied: the machine for `NodeCommissioned`
/// (`discovered` while unbound), the node otherwise.
fn subject_state(state: &FleetState, p: &Payload) -> Option<NodeState> {
    match p {
        Payload::NodeCommissioned(c) => state.machine(&c.machine).and_then(|m| m.state()),
        other => other.node().and_then(|n| state.node(n)).map(|n| n.state),
    }
}

fn invariant_only_legal_transitions(before: &FleetState, after: &FleetState, accepted: &[Event]) {
    let mut s = before.clone();
    for e in accepted {
        let kind = e.kind();
        let from = subject_state(&s, &e.payload);
        match &e.payload {
            Payload::NodeCommissioned(c) => assert!(s.node(&c.node).is_none(), "node id {} was reused", c.node),
            Payload::NodeRebound(r) => assert_eq!(
                s.machine(&r.machine).map(|m| m.node.is_none()),
                Some(true),
                "{} was rebound to machine {}, which is unknown or bound",
                r.node,
                r.machine
            ),
            _ => {}
        }
        invariant_only_authorized(&s, e);
        sendan_core::evolve(&mut s, e);
        if let Some(row) = lifecycle::row(kind) {
            let from = from.unwrap_or_else(|| panic!("{kind} accepted for a subject that does not exist"));
            assert!(row.from.contains(&from), "{kind} accepted from `{from}`");
            let to = s.node(e.node().unwrap()).unwrap().state;
            assert_eq!(to, row.to, "{kind} must lead to `{}`", row.to);
        }
    }
    assert_eq!(&s, after, "replaying the accepted events one by one gives another state");
}

/// `e` was accepted right after `state`: if its actor is not the admin, it is an event that actor may
/// emit, about its own node or machine.
fn invariant_only_authorized(state: &FleetState, e: &Event) {
    let (kind, emitters) = (e.kind(), e.kind().emitters());
    match &e.actor {
        Actor::Admin => {}
        Actor::System(_) => assert!(emitters.contains(Emitters::SYSTEM), "the system emitted {kind}"),
        Actor::Node(me) => {
            assert!(emitters.contains(Emitters::NODE), "node {me} emitted {kind}");
            assert_eq!(e.node(), Some(me), "node {me} emitted {kind} about another node");
        }
        Actor::Bootstrap(m) => {
            assert!(emitters.contains(Emitters::BOOTSTRAP), "the installer of {m} emitted {kind}");
            let bound = state.machine(m).and_then(|r| r.node.as_ref());
            let own = e.payload.machine() == Some(m) || (e.node().is_some() && e.node() == bound);
            assert!(own, "the installer of {m} emitted {kind} about another machine");
        }
    }
}

fn invariant_dense_linked_chain(before: &FleetState, accepted: &[Event]) {
    let (mut seq, mut head, mut time) = (before.seq, before.head, before.last_time);
    for e in accepted {
        assert_eq!(e.seq, seq + 1, "seq is not dense");
        assert_eq!(e.prev, head, "event {} does not link to the one before it", e.seq);
        assert!(e.time >= time, "time went back along the log at seq {}", e.seq);
        (seq, head, time) = (e.seq, e.hash, e.time);
    }
}

fn invariant_one_machine_one_node(state: &FleetState) {
    for n in state.nodes.records.values() {
        let m = state.machine(&n.machine).expect("a node's machine is known");
        assert_eq!(m.node.as_ref(), Some(&n.id), "node {} ↔ machine {}", n.id, m.id);
    }
    for m in state.machines.records.values() {
        if let Some(n) = &m.node {
            assert_eq!(state.node(n).map(|r| &r.machine), Some(&m.id), "machine {} ↔ node {n}", m.id);
        }
    }
}

fn invariant_one_token_one_node(state: &FleetState) {
    for n in state.nodes.records.values() {
        if let Some(t) = &n.token {
            assert_eq!(state.token_node(t), Some(&n.id), "node {}'s token {t:?} speaks for another node", n.id);
        }
    }
    for (t, id) in &state.nodes.tokens {
        let token = state.node(id).and_then(|n| n.token.as_ref());
        assert_eq!(token, Some(t), "token {t:?} speaks for {id}, whose token it is not");
    }
}

fuzz_target!(|input: Input<'_>| {
    let mut state = FleetState::default();
    let mut events: Vec<Event> = Vec::new();
    let mut next_id = 0u128;
    let mut clock = 1_700_000_000_000i64;

    for batch in input.batches.iter().take(MAX_BATCHES) {
        // A legal step is resolved against the state as the proposals before it in the batch leave it
        // (those that would be accepted on their own), so that a batch of legal steps walks a node through
        // several states, and a batch with one bad step in it is refused as a whole.
        let mut scratch = state.clone();
        let proposals: Vec<Proposal> = batch
            .iter()
            .take(MAX_BATCH)
            .filter_map(|step| {
                next_id += 1;
                clock = match step.clock {
                    Clock::Step(dt) => clock.saturating_add(i64::from(dt)),
                    Clock::At(t) => t,
                };
                let p = Proposal {
                    id: EventId::from_u128(next_id),
                    time: Timestamp(clock),
                    actor: actor(step.actor),
                    comment: step.comment.map(|i| COMMENTS[usize::from(i) % COMMENTS.len()].to_owned()),
                    cause: None,
                    payload: step.what.resolve(&scratch)?,
                };
                let _ = log::append(&mut scratch, std::slice::from_ref(&p));
                Some(p)
            })
            .collect();
        let before = state.clone();
        match log::append(&mut state, &proposals) {
            Ok(accepted) => {
                assert_eq!(accepted.len(), proposals.len(), "an accepted batch yields one event per proposal");
                invariant_only_legal_transitions(&before, &state, &accepted);
                invariant_dense_linked_chain(&before, &accepted);
                events.extend(accepted);
            }
            Err(rejected) => {
                assert_eq!(state, before, "a rejected batch changed the state");
                let mut s = before.clone();
                log::append(&mut s, &proposals[..rejected.index]).expect("the prefix before the refusal is accepted");
                assert_eq!(sendan_core::check(&s, &proposals[rejected.index]), Err(rejected.rejection));
            }
        }
        invariant_one_machine_one_node(&state);
        invariant_one_token_one_node(&state);
    }

    // The stored records of the accepted events verify from genesis, decode to the same events, and fold
    // from genesis to the state built step by step.
    let mut verifier = Verifier::default();
    for e in &events {
        let bytes = record::encode(e);
        verifier.push(e.seq, &bytes).unwrap_or_else(|b| panic!("the accepted chain does not verify: {b}"));
        assert_eq!(&record::decode(&bytes).expect("a sealed record decodes"), e);
    }
    assert_eq!((verifier.seq(), verifier.head()), (state.seq, state.head));
    let mut genesis = FleetState::default();
    log::fold(&mut genesis, &events);
    assert_eq!(genesis, state, "folding the accepted events from genesis gives another state");
});
