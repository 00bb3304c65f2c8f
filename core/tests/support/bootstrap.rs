//! Shared by the core's property tests: hardware facts that make the test machines meet (and miss) the
//! fixture spec's enrollment rules, and a resolver that turns a random pick into a bootstrap event that is
//! legal in the current state — netboot tokens, phone-home claims, install progress, token exchanges and the
//! enrollment controller's own decisions (`sendan_core::machines::enrollment::decide`) — so generated runs reach every
//! bootstrap kind.

#![allow(dead_code)]

use sendan_core::event::*;
use sendan_core::facts::{Disk, HardwareFacts, Nic};
use sendan_core::fleet::FleetState;
use sendan_core::ids::{Hash, MachineId, NodeId, Timestamp};
use sendan_core::lifecycle::NodeState;
use sendan_core::machines::enrollment;

/// The MACs of test machine `m<i>`: its own, and for `m3` also the one the fixture's rule `cp-1` matches, so
/// that rules `cp-1` and `cp-2` (both priority 100) conflict over it. `m2` has `cp-1`'s MAC only.
pub fn macs_of(machine: &MachineId) -> Vec<String> {
    match machine.as_str() {
        "m2" => vec!["52:54:00:00:01:01".into()],
        "m3" => vec!["52:54:00:00:02:01".into(), "52:54:00:00:01:01".into()],
        other => {
            let i = other.bytes().last().unwrap_or(b'0');
            vec![format!("52:54:00:00:00:{i:02x}")]
        }
    }
}

/// Facts of a test machine: its NICs, `memory_gib` of memory and, unless `memory_gib` is 0, one 500 GB disk
/// (the fixture layout `single` fits it; without it the layout does not fit). No CPU threads, so rule `cp-1`'s
/// class refuses `m2`.
pub fn facts(machine: &MachineId, memory_gib: u64) -> HardwareFacts {
    let disks = if memory_gib == 0 {
        Vec::new()
    } else {
        vec![Disk { name: "sda".into(), size_bytes: 500_000_000_000, ..Disk::default() }]
    };
    HardwareFacts {
        // The machine's key is its name, as the tests call it.
        machine_id: Some(machine.as_str().to_owned()),
        memory_bytes: memory_gib << 30,
        disks,
        nics: macs_of(machine)
            .into_iter()
            .enumerate()
            .map(|(i, mac)| Nic { name: format!("eth{i}"), mac, ..Nic::default() })
            .collect(),
        ..HardwareFacts::default()
    }
}

pub const HOST_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@n0";

/// Any bootstrap event about these subjects, legal or not (for the "anything" steps).
pub fn any_payload(kind: EventKind, node: NodeId, machine: MachineId, mem: u64) -> Payload {
    let token = Hash::of(&[mem as u8]);
    let spec = Hash::of(b"not the live spec");
    match kind {
        EventKind::BootstrapTokenIssued => BootstrapTokenIssued {
            token,
            mac: macs_of(&machine)[0].clone(),
            machine: Some(machine),
            expires: Timestamp(3_600_000 + mem as i64),
        }
        .into(),
        EventKind::BootstrapTokenClaimed => BootstrapTokenClaimed { token, machine }.into(),
        EventKind::MachinePhonedHome => MachinePhonedHome {
            facts: facts(&machine, mem),
            mac: macs_of(&machine)[0].clone(),
            machine,
            token,
            expires: Timestamp(3_600_000 + mem as i64),
        }
        .into(),
        EventKind::BootstrapTokenExchanged => {
            BootstrapTokenExchanged { token, node, ssh_host_key: HOST_KEY.into() }.into()
        }
        EventKind::InstallProgressed => {
            InstallProgressed { node, step: InstallStep::ALL[mem as usize % 4], detail: "step".into() }.into()
        }
        EventKind::InstallPlanRefused => {
            InstallPlanRefused { node, spec, layout: "single".into(), reasons: vec!["no disks".into()] }.into()
        }
        EventKind::EnrollmentConflicted => {
            EnrollmentConflicted { machine, spec, priority: 100, rules: vec!["cp-1".into(), "cp-2".into()] }.into()
        }
        EventKind::EnrollmentRefused => {
            EnrollmentRefused { machine, spec, rule: "cp-1".into(), reasons: vec!["too small".into()] }.into()
        }
        other => panic!("{other} is not a bootstrap kind"),
    }
}

/// A bootstrap event picked by `pick` among those legal now for `node` and `machine`: the enrollment
/// controller's decisions, issuing a netboot token for the machine's MAC, claiming it, reporting install
/// progress, and exchanging the machine's session for the node token.
pub fn legal_bootstrap_move(
    state: &FleetState,
    node: &NodeId,
    machine: &MachineId,
    pick: usize,
    now: Timestamp,
) -> Payload {
    let mut options: Vec<Payload> = Vec::new();
    if let Some(live) = &state.specs.live {
        options.extend(enrollment::decide(&state.machines, state).iter().map(|d| d.payload(live.digest)));
    }
    let mac = macs_of(machine)[0].clone();
    let bs = &state.machines.bootstrap;
    match bs.unclaimed_for(&mac, now) {
        Some(t) if state.machine(machine).is_some() => {
            options.push(BootstrapTokenClaimed { token: t.hash, machine: machine.clone() }.into());
        }
        _ => {
            let token = Hash::of(format!("boot-{}-{mac}-{pick}", state.seq).as_bytes());
            let known = state.machine(machine).map(|_| machine.clone());
            options.push(
                BootstrapTokenIssued { token, mac, machine: known, expires: Timestamp(now.0 + 3_600_000) }.into(),
            );
        }
    }
    // A phone-home with a stateless token, when the token may speak for the machine.
    let phoned = MachinePhonedHome {
        machine: machine.clone(),
        facts: facts(machine, 16 + (pick % 3) as u64),
        mac: macs_of(machine)[0].clone(),
        token: Hash::of(format!("stateless-{}-{pick}", state.seq).as_bytes()),
        expires: Timestamp(now.0 + 3_600_000),
    };
    if pick % 3 == 0
        && sendan_core::machines::identity::identity_refusal(state, &phoned.mac, machine, &phoned.facts).is_none()
    {
        options.push(phoned.into());
    }
    if let Some(n) = state.node(node) {
        if matches!(n.state, NodeState::InstallPending | NodeState::Installing) {
            let step = InstallStep::ALL[pick % InstallStep::ALL.len()];
            options.push(InstallProgressed { node: node.clone(), step, detail: format!("step {step}") }.into());
        }
        if n.state == NodeState::Installing
            && let Some(token) = bs.sessions.get(&n.machine)
        {
            options.push(
                BootstrapTokenExchanged { token: *token, node: node.clone(), ssh_host_key: HOST_KEY.into() }.into(),
            );
        }
    }
    options.swap_remove(pick % options.len())
}
