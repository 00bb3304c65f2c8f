//! Frozen fixtures of the stored record format: one record per event kind and schema version, written by an
//! earlier build. Records of the current version (`records-v2.txt`) must decode to the same events and encode to
//! the same bytes; records of version 1 (`records-v1.txt`, written before `cause` and the halt's `revert` list)
//! must still decode — through `sendan_core::upgrade` — to the events they held, and still verify against their
//! own hash. A change that breaks this is a format change and needs an upgrade path in `sendan_core::upgrade`.
//!
//! New kinds are appended to the current version's file with `SENDAN_BLESS=1 cargo test -p sendan-core --test
//! record_fixtures`; existing lines must never change, and the version-1 file is never appended to.

use sendan_core::event::*;
use sendan_core::facts::{Cpu, Disk, HardwareFacts, LldpNeighbor, Nic};
use sendan_core::ids::{Actor, EventId, Hash, InstanceId, MachineId, NodeId, Timestamp};
use sendan_core::record;

const FIXTURES_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/records-v1.txt");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/records-v2.txt");

fn sample(kind: EventKind) -> Payload {
    let node = NodeId::new("worker-07").unwrap();
    let machine = MachineId::new("4c4c4544-0042-3510-8052-b4c04f4e4b31").unwrap();
    match kind {
        EventKind::MachineDiscovered => MachineDiscovered {
            machine,
            facts: HardwareFacts {
                machine_id: Some("0123456789abcdef0123456789abcdef".into()),
                cpu: Cpu {
                    model: "AMD EPYC 7313P".into(),
                    sockets: 1,
                    cores: 16,
                    threads: 32,
                    virtualization: vec!["svm".into()],
                },
                memory_bytes: 128 << 30,
                disks: vec![Disk {
                    name: "nvme0n1".into(),
                    size_bytes: 3_840_755_982_336,
                    rotational: false,
                    ..Disk::default()
                }],
                nics: vec![Nic {
                    name: "eno1".into(),
                    mac: "b4:96:91:00:00:01".into(),
                    speed_mbps: Some(25_000),
                    link: true,
                    lldp: Some(LldpNeighbor { switch: "r01-tor-a".into(), port: "Ethernet12".into() }),
                    ..Nic::default()
                }],
                ..HardwareFacts::default()
            },
        }
        .into(),
        EventKind::NodeCommissioned => NodeCommissioned {
            node,
            machine,
            class: Some("compute".into()),
            pool: Some("workers".into()),
            profile: Some("worker".into()),
            rule: Some("rack1-by-mac".into()),
        }
        .into(),
        EventKind::NodeInstallRequested => NodeInstallRequested { node }.into(),
        EventKind::NodeInstallStarted => NodeInstallStarted { node }.into(),
        EventKind::NodeInstallFailed => NodeInstallFailed { node, reason: "disko failed".into() }.into(),
        EventKind::NodeActivated => NodeActivated { node }.into(),
        EventKind::NodeDrainRequested => NodeDrainRequested { node }.into(),
        EventKind::NodeUncordoned => NodeUncordoned { node }.into(),
        EventKind::NodeReprovisionRequested => NodeReprovisionRequested { node }.into(),
        EventKind::NodeRescueRequested => NodeRescueRequested { node }.into(),
        EventKind::NodeFailed => NodeFailed { node, reason: "ecc errors".into() }.into(),
        EventKind::NodeRetired => NodeRetired { node }.into(),
        EventKind::NodeRebound => NodeRebound { node, machine }.into(),
        EventKind::SpecApplied => SpecApplied {
            digest: Hash::of(b"{\"apiVersion\":\"sendan.dev/v1alpha1\"}"),
            document: r#"{"apiVersion":"sendan.dev/v1alpha1"}"#.into(),
        }
        .into(),
        EventKind::NodeTokenIssued => NodeTokenIssued { node, token: Hash::of(b"sendan-node-example") }.into(),
        EventKind::BootstrapTokenIssued => BootstrapTokenIssued {
            token: Hash::of(b"sendan-boot-example"),
            mac: "b4:96:91:00:00:01".into(),
            machine: Some(machine),
            expires: Timestamp(1_790_003_600_000),
        }
        .into(),
        EventKind::BootstrapTokenClaimed => {
            BootstrapTokenClaimed { token: Hash::of(b"sendan-boot-example"), machine }.into()
        }
        EventKind::BootstrapTokenExchanged => {
            BootstrapTokenExchanged {
                token: Hash::of(b"sendan-boot-example"),
                node,
                ssh_host_key:
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@worker-07"
                        .into(),
            }
            .into()
        }
        EventKind::InstallProgressed => InstallProgressed {
            node,
            step: InstallStep::DisksFormatted,
            detail: "disko formatted os-a (nvme0n1) and os-b (nvme1n1)".into(),
        }
        .into(),
        EventKind::InstallPlanRefused => InstallPlanRefused {
            node,
            spec: Hash::of(b"spec"),
            layout: "mirrored-root".into(),
            reasons: vec![
                "disk 'os-b' needs the disk at index 1 among those matching its selector, but 1 match".into(),
            ],
        }
        .into(),
        EventKind::EnrollmentConflicted => EnrollmentConflicted {
            machine,
            spec: Hash::of(b"spec"),
            priority: 10,
            rules: vec!["port-0".into(), "port-1".into()],
        }
        .into(),
        EventKind::EnrollmentRefused => EnrollmentRefused {
            machine,
            spec: Hash::of(b"spec"),
            rule: "storage-servers".into(),
            reasons: vec![
                "class 'storage' of node storage-01: needs 4 rotational disks of at least 8 TB; found 0".into(),
            ],
        }
        .into(),
        EventKind::MachinePhonedHome => MachinePhonedHome {
            machine,
            facts: HardwareFacts {
                memory_bytes: 64 << 30,
                nics: vec![Nic { name: "eno1".into(), mac: "b4:96:91:00:00:01".into(), link: true, ..Nic::default() }],
                ..HardwareFacts::default()
            },
            mac: "b4:96:91:00:00:01".into(),
            token: Hash::of(b"sendan-boot-b49691000001-1790003640-00"),
            expires: Timestamp(1_790_003_640_000),
        }
        .into(),
        EventKind::NodeSystemSet => {
            NodeSystemSet { node, system: NEW_SYSTEM.into(), action: SwitchAction::Boot }.into()
        }
        EventKind::NodePinned => NodePinned { node, reason: "BIOS update in progress".into() }.into(),
        EventKind::NodeUnpinned => NodeUnpinned { node }.into(),
        EventKind::RolloutStarted => RolloutStarted {
            pool: "workers".into(),
            system: "git+https://git.example.com/lab#nixosConfigurations.worker.config.system.build.toplevel".into(),
            action: SwitchAction::Switch,
            max_unavailable: 2,
            canary: 1,
            max_failures: 1,
            health_timeout_secs: 600,
        }
        .into(),
        EventKind::RolloutWaveStarted => {
            RolloutWaveStarted { rollout: 43, wave: 2, nodes: vec![node, NodeId::new("worker-08").unwrap()] }.into()
        }
        EventKind::RolloutCompleted => RolloutCompleted { rollout: 43 }.into(),
        EventKind::RolloutHalted => RolloutHalted {
            rollout: 43,
            reason: "canary worker-07 failed: health gate failed".into(),
            revert: vec![node],
        }
        .into(),
        EventKind::RolloutNodesReverted => RolloutNodesReverted { rollout: 43, nodes: vec![node] }.into(),
        EventKind::RolloutReverted => RolloutReverted { rollout: 43 }.into(),
        EventKind::RolloutDrainsMembers => RolloutDrainsMembers { pool: "workers".into() }.into(),
        EventKind::InstancePlaced => InstancePlaced {
            service: "web".into(),
            instance: InstanceId::new("web.3").unwrap(),
            node,
            task_digest: Hash::of(b"web task"),
        }
        .into(),
        EventKind::InstanceRescheduled => InstanceRescheduled {
            service: "web".into(),
            instance: InstanceId::new("web.4").unwrap(),
            node,
            task_digest: Hash::of(b"web task"),
            replaces: InstanceId::new("web.1").unwrap(),
            lost: false,
            attempt: 2,
        }
        .into(),
        EventKind::InstanceStopRequested => InstanceStopRequested {
            instance: InstanceId::new("web.3").unwrap(),
            node,
            reason: "service web wants 2 replicas".into(),
        }
        .into(),
        EventKind::InstanceStarted => InstanceStarted {
            instance: InstanceId::new("web.3").unwrap(),
            node,
            address: "10.0.2.21".into(),
            ports: [("http".to_owned(), 24_001u16), ("admin".to_owned(), 9901)].into_iter().collect(),
            restarts: 1,
        }
        .into(),
        EventKind::InstanceHealthy => InstanceHealthy { instance: InstanceId::new("web.3").unwrap(), node }.into(),
        EventKind::InstanceUnhealthy => InstanceUnhealthy {
            instance: InstanceId::new("web.3").unwrap(),
            node,
            reason: "GET http://127.0.0.1:24001/ready: 503 three times".into(),
        }
        .into(),
        EventKind::InstanceExited => InstanceExited {
            instance: InstanceId::new("web.3").unwrap(),
            node,
            exit_code: Some(1),
            signal: None,
            restarting: true,
            reason: "exited with status 1".into(),
        }
        .into(),
        EventKind::InstanceStopped => InstanceStopped { instance: InstanceId::new("web.3").unwrap(), node }.into(),
        EventKind::NodeAgentStarted => NodeAgentStarted { node, address: "10.0.2.21".into() }.into(),
        EventKind::NodeAgentLost => NodeAgentLost { node, silent_ms: 31_250 }.into(),
        EventKind::NodeAgentReturned => NodeAgentReturned { node }.into(),
        EventKind::PowerRequested => PowerRequested {
            node,
            action: Some(PowerAction::Reboot),
            boot: Some(BootOverride { device: BootDevice::Pxe, once: true }),
            force: false,
        }
        .into(),
        EventKind::PowerCompleted => PowerCompleted {
            node,
            request: 812,
            outcome: PowerOutcome::Failed,
            error: Some("https://10.0.9.5: the BMC did not report power on within 120 s".into()),
            power: Some(Power::Off),
        }
        .into(),
        EventKind::PowerObserved => PowerObserved { node, power: Power::On }.into(),
        EventKind::NodeCordoned => NodeCordoned { node, reason: "DIMM B2 reports correctable errors".into() }.into(),
        EventKind::NodeDrainStarted => {
            NodeDrainStarted { node, deadline: Some(Timestamp(1_790_000_600_000)), force: false }.into()
        }
        EventKind::NodeDrained => NodeDrained { node }.into(),
        EventKind::InstanceMigrated => InstanceMigrated {
            service: "web".into(),
            instance: InstanceId::new("web.9").unwrap(),
            node,
            task_digest: Hash::of(b"web task"),
            replaces: InstanceId::new("web.3").unwrap(),
        }
        .into(),
        EventKind::InstanceUpdated => InstanceUpdated {
            service: "web".into(),
            instance: InstanceId::new("web.10").unwrap(),
            node,
            task_digest: Hash::of(b"web task 2"),
            replaces: InstanceId::new("web.9").unwrap(),
        }
        .into(),
        EventKind::DeploymentStarted => DeploymentStarted {
            service: "web".into(),
            task_digest: Hash::of(b"web task 2"),
            from: Some(Hash::of(b"web task")),
            revert: false,
        }
        .into(),
        EventKind::DeploymentPromoted => {
            DeploymentPromoted { service: "web".into(), task_digest: Hash::of(b"web task 2") }.into()
        }
        EventKind::DeploymentEnded => DeploymentEnded {
            service: "web".into(),
            task_digest: Hash::of(b"web task 2"),
            outcome: DeploymentOutcome::Failed,
            reason: "web.10 on w1 failed: exited 1".into(),
        }
        .into(),
        EventKind::RolloutMemberLeft => {
            RolloutMemberLeft { rollout: 43, node, why: "pinned at seq 44 before its agent started".into() }.into()
        }
        EventKind::SystemReported => {
            SystemReported { node, current: Some(OLD_SYSTEM.into()), booted: Some(OLD_SYSTEM.into()) }.into()
        }
        EventKind::SystemPrefetched => {
            SystemPrefetched { node, decision: 44, system: NEW_SYSTEM.into(), path: NEW_SYSTEM.into() }.into()
        }
        EventKind::SystemPrefetchFailed => SystemPrefetchFailed {
            node,
            decision: 44,
            system: NEW_SYSTEM.into(),
            error: "the substitute is not signed by any of the keys in 'trusted-public-keys'".into(),
        }
        .into(),
        EventKind::SystemActivating => SystemActivating {
            node,
            decision: 44,
            path: NEW_SYSTEM.into(),
            action: SwitchAction::Test,
            previous: Some(OLD_SYSTEM.into()),
        }
        .into(),
        EventKind::SystemProfileSet => SystemProfileSet {
            node,
            decision: 44,
            path: NEW_SYSTEM.into(),
            profile: "/nix/var/nix/profiles/system".into(),
        }
        .into(),
        EventKind::SystemSwitched => {
            SystemSwitched { node, decision: 44, path: NEW_SYSTEM.into(), exit_code: 100, reboot_required: true }.into()
        }
        EventKind::SystemHealthFailed => SystemHealthFailed {
            node,
            decision: 44,
            path: NEW_SYSTEM.into(),
            failures: vec!["unit sshd.service is not active".into(), "http://127.0.0.1:9100/ answered 503".into()],
        }
        .into(),
        EventKind::SystemConfirmed => {
            SystemConfirmed { node, decision: 44, path: NEW_SYSTEM.into(), switched: true }.into()
        }
        EventKind::SystemRolledBack => SystemRolledBack {
            node,
            decision: 44,
            path: NEW_SYSTEM.into(),
            to: OLD_SYSTEM.into(),
            reason: "the control plane did not acknowledge the confirmation within 30s".into(),
            exit_code: 0,
        }
        .into(),
    }
}

/// Systems of the samples of the nix-agent and rollout kinds.
const OLD_SYSTEM: &str = "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-worker-07-24.11";
const NEW_SYSTEM: &str = "/nix/store/1c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-worker-07-25.05";

fn sample_proposal(kind: EventKind) -> Proposal {
    Proposal {
        id: EventId::from_u128(0x0190f5a4_7c1e_7a4b_9d3e_5f0c2b1a9e00 + u128::from(kind.code())),
        time: Timestamp(1_790_000_000_000 + i64::from(kind.code())),
        actor: Actor::Admin,
        comment: Some(format!("fixture for {kind}")),
        cause: Some(u64::from(kind.code()) - 1).filter(|c| *c > 0),
        payload: sample(kind),
    }
}

fn sample_event(kind: EventKind) -> Event {
    let proposal = sample_proposal(kind);
    record::seal(&proposal, u64::from(kind.code()), proposal.time, Hash::of(kind.name().as_bytes()))
}

/// What a version-1 record of `kind` holds: no cause, and a halt without its list.
fn sample_v1(kind: EventKind) -> Proposal {
    let mut p = sample_proposal(kind);
    p.cause = None;
    if let Payload::RolloutHalted(h) = &mut p.payload {
        h.revert.clear();
    }
    p
}

fn frozen(path: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, h) = l.split_once(' ').expect("`Kind hex` lines");
            (k.to_owned(), h.trim().to_owned())
        })
        .collect()
}

#[test]
fn version_1_records_still_decode_to_their_events_and_verify() {
    for (name, hex) in frozen(FIXTURES_V1) {
        let kind = EventKind::from_name(&name).unwrap_or_else(|| panic!("fixture kind {name} no longer exists"));
        let bytes = hex::decode(&hex).unwrap();
        let event = record::decode(&bytes).unwrap_or_else(|e| panic!("frozen v1 {name} record no longer decodes: {e}"));
        let want = sample_v1(kind);
        assert_eq!(event.version, 1, "{name}");
        assert_eq!(
            (event.id, event.time, &event.actor, &event.comment, event.cause, &event.payload),
            (want.id, want.time, &want.actor, &want.comment, want.cause, &want.payload),
            "frozen v1 {name} decodes to a different event"
        );
        let raw = record::split(&bytes).unwrap();
        assert_eq!(record::link(&raw.prev, raw.seq, raw.body), raw.hash, "frozen v1 {name} no longer verifies");
    }
}

#[test]
fn frozen_records_decode_and_reencode_identically() {
    let mut frozen = frozen(FIXTURES);
    for (name, hex) in &frozen {
        let kind = EventKind::from_name(name).unwrap_or_else(|| panic!("fixture kind {name} no longer exists"));
        let bytes = hex::decode(hex).unwrap();
        let event = record::decode(&bytes).unwrap_or_else(|e| panic!("frozen {name} record no longer decodes: {e}"));
        assert_eq!(event, sample_event(kind), "frozen {name} decodes to a different event");
        assert_eq!(record::encode(&event), bytes, "{name} no longer encodes to its frozen bytes");
    }
    let missing: Vec<EventKind> =
        EventKind::ALL.iter().copied().filter(|k| !frozen.iter().any(|(n, _)| n == k.name())).collect();
    if missing.is_empty() {
        return;
    }
    if std::env::var_os("SENDAN_BLESS").is_some() {
        frozen.extend(missing.iter().map(|k| (k.name().to_owned(), hex::encode(record::encode(&sample_event(*k))))));
        let mut out = String::from("# Frozen v2 records, one per event kind. Append only; never edit a line.\n");
        for (k, h) in frozen {
            out.push_str(&format!("{k} {h}\n"));
        }
        std::fs::write(FIXTURES, out).unwrap();
    } else {
        panic!("no frozen record for {missing:?}; run with SENDAN_BLESS=1 to append them");
    }
}
