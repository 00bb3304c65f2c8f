//! The schema fingerprint of [`FleetState`]: what a checkpoint of the fleet carries, so that a checkpoint written
//! by a build whose state types (or folds) differ is never decoded into this build's types — the member folds the
//! events again instead (they are versioned and upgradeable; a checkpoint is only a cache).
//!
//! The fingerprint is the sha256 of the postcard bytes of a *probe*: the state a fixed sequence of events folds
//! to, chosen so that every record type of every aggregate holds at least one value. Adding, removing, reordering
//! or retyping a field of any of them changes those bytes; so does a fold that records something differently. A
//! test pins the value, so a change is a conscious one.

use std::sync::OnceLock;

use super::FleetState;
use crate::event::*;
use crate::facts::{Cpu, Disk, Dmi, HardwareFacts, LldpNeighbor, Nic};
use crate::ids::{Actor, EventId, Hash, InstanceId, MachineId, NodeId, Timestamp};

fn n(s: &str) -> Option<NodeId> {
    NodeId::new(s).ok()
}

fn m(s: &str) -> Option<MachineId> {
    MachineId::new(s).ok()
}

const OLD: &str = "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-old";
const NEW: &str = "/nix/store/1c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-new";

fn facts(machine: &str, mac: &str) -> HardwareFacts {
    HardwareFacts {
        machine_id: Some(machine.into()),
        dmi: Dmi {
            system_uuid: None,
            serial: Some("S-1".into()),
            vendor: Some("Acme".into()),
            product: Some("P".into()),
        },
        cpu: Cpu { model: "cpu".into(), sockets: 1, cores: 2, threads: 4, virtualization: vec!["vmx".into()] },
        memory_bytes: 8 << 30,
        disks: vec![Disk {
            name: "sda".into(),
            size_bytes: 500_000_000_000,
            model: Some("d".into()),
            serial: Some("ds".into()),
            by_id: Some("/dev/disk/by-id/x".into()),
            rotational: true,
            removable: false,
        }],
        nics: vec![Nic {
            name: "eth0".into(),
            mac: mac.into(),
            driver: Some("virtio_net".into()),
            speed_mbps: Some(1000),
            link: true,
            lldp: Some(LldpNeighbor { switch: "tor".into(), port: "Eth1".into() }),
        }],
    }
}

/// The probe's events (`None` only if its own names stopped being valid ids, which the pinned-fingerprint test
/// would catch).
fn probe_events() -> Option<Vec<Payload>> {
    let spec = crate::spec::fixture::parsed()?;
    let (w1, w2) = (n("worker-01")?, n("worker-02")?);
    let (m1, m2, m3) = (m("m1")?, m("m2")?, m("m3")?);
    let i = |s: &str| InstanceId::new(s).ok();
    let version = crate::services::Task::of(spec.services.get("web")?).version();
    let mut events: Vec<Payload> = vec![
        MachineDiscovered { machine: m1.clone(), facts: facts("m1", "52:54:00:00:00:01") }.into(),
        SpecApplied { digest: spec.digest(), document: spec.canonical_json() }.into(),
        NodeCommissioned {
            node: w1.clone(),
            machine: m1.clone(),
            class: Some("c".into()),
            pool: Some("workers".into()),
            profile: Some("p".into()),
            rule: Some("r".into()),
        }
        .into(),
        NodeTokenIssued { node: w1.clone(), token: Hash::of(b"node") }.into(),
        BootstrapTokenIssued {
            token: Hash::of(b"issued"),
            mac: "52:54:00:00:00:01".into(),
            machine: Some(m1.clone()),
            expires: Timestamp(10_000_000),
        }
        .into(),
        BootstrapTokenClaimed { token: Hash::of(b"issued"), machine: m1.clone() }.into(),
        MachinePhonedHome {
            machine: m2.clone(),
            facts: facts("m2", "52:54:00:00:00:02"),
            mac: "52:54:00:00:00:02".into(),
            token: Hash::of(b"stateless"),
            expires: Timestamp(10_000_000),
        }
        .into(),
        NodeCommissioned { node: w2.clone(), machine: m2.clone(), class: None, pool: None, profile: None, rule: None }
            .into(),
        NodeInstallRequested { node: w2.clone() }.into(),
        InstallProgressed { node: w2.clone(), step: InstallStep::PlanFetched, detail: "d".into() }.into(),
        NodeInstallStarted { node: w2.clone() }.into(),
        BootstrapTokenExchanged {
            token: Hash::of(b"stateless"),
            node: w2.clone(),
            ssh_host_key: "ssh-ed25519 K".into(),
        }
        .into(),
        NodeFailed { node: w2.clone(), reason: "r".into() }.into(),
        InstallPlanRefused { node: w1.clone(), spec: spec.digest(), layout: "l".into(), reasons: vec!["x".into()] }
            .into(),
        MachineDiscovered { machine: m3.clone(), facts: HardwareFacts::default() }.into(),
        EnrollmentConflicted {
            machine: m3.clone(),
            spec: spec.digest(),
            priority: 1,
            rules: vec!["a".into(), "b".into()],
        }
        .into(),
        EnrollmentRefused { machine: m3.clone(), spec: spec.digest(), rule: "a".into(), reasons: vec!["x".into()] }
            .into(),
        NodeActivated { node: w1.clone() }.into(),
        SystemReported { node: w1.clone(), current: Some(OLD.into()), booted: Some(OLD.into()) }.into(),
        NodeSystemSet { node: w1.clone(), system: OLD.into(), action: SwitchAction::Boot }.into(),
        NodePinned { node: w2.clone(), reason: "p".into() }.into(),
        RolloutStarted {
            pool: "workers".into(),
            system: NEW.into(),
            action: SwitchAction::Switch,
            max_unavailable: 2,
            canary: 1,
            max_failures: 1,
            health_timeout_secs: 60,
        }
        .into(),
        RolloutWaveStarted { rollout: 22, wave: 1, nodes: vec![w1.clone()] }.into(),
        SystemPrefetched { node: w1.clone(), decision: 23, system: NEW.into(), path: NEW.into() }.into(),
        SystemActivating {
            node: w1.clone(),
            decision: 23,
            path: NEW.into(),
            action: SwitchAction::Switch,
            previous: Some(OLD.into()),
        }
        .into(),
        SystemSwitched { node: w1.clone(), decision: 23, path: NEW.into(), exit_code: 4, reboot_required: false }
            .into(),
        RolloutHalted { rollout: 22, reason: "r".into(), revert: vec![w1.clone()] }.into(),
        SystemRolledBack {
            node: w1.clone(),
            decision: 23,
            path: NEW.into(),
            to: OLD.into(),
            reason: "r".into(),
            exit_code: 0,
        }
        .into(),
        RolloutMemberLeft { rollout: 22, node: w1.clone(), why: "w".into() }.into(),
        RolloutDrainsMembers { pool: "workers".into() }.into(),
        RolloutReverted { rollout: 22 }.into(),
        NodeAgentStarted { node: w1.clone(), address: "10.0.0.1".into() }.into(),
        InstancePlaced { service: "web".into(), instance: i("web.1")?, node: w1.clone(), task_digest: version }.into(),
        InstanceStarted {
            instance: i("web.1")?,
            node: w1.clone(),
            address: "10.0.0.1".into(),
            ports: [("http".to_owned(), 20_001u16)].into_iter().collect(),
            restarts: 1,
        }
        .into(),
        InstancePlaced { service: "web".into(), instance: i("web.2")?, node: w1.clone(), task_digest: version }.into(),
        InstanceExited {
            instance: i("web.2")?,
            node: w1.clone(),
            exit_code: Some(1),
            signal: None,
            restarting: false,
            reason: "r".into(),
        }
        .into(),
        InstanceRescheduled {
            service: "web".into(),
            instance: i("web.3")?,
            node: w1.clone(),
            task_digest: version,
            replaces: i("web.2")?,
            lost: false,
            attempt: 1,
        }
        .into(),
        InstanceStopRequested { instance: i("web.1")?, node: w1.clone(), reason: "r".into() }.into(),
        NodeDrainStarted { node: w1.clone(), deadline: Some(Timestamp(9_000_000)), force: true }.into(),
        InstanceMigrated {
            service: "web".into(),
            instance: i("web.4")?,
            node: w2.clone(),
            task_digest: version,
            replaces: i("web.3")?,
        }
        .into(),
        NodeDrained { node: w1.clone() }.into(),
        DeploymentStarted {
            service: "web".into(),
            task_digest: Hash::of(b"web 2"),
            from: Some(version),
            revert: false,
        }
        .into(),
        InstanceUpdated {
            service: "web".into(),
            instance: i("web.5")?,
            node: w2.clone(),
            task_digest: Hash::of(b"web 2"),
            replaces: i("web.4")?,
        }
        .into(),
        DeploymentPromoted { service: "web".into(), task_digest: Hash::of(b"web 2") }.into(),
        DeploymentEnded {
            service: "web".into(),
            task_digest: Hash::of(b"web 2"),
            outcome: DeploymentOutcome::Completed,
            reason: "r".into(),
        }
        .into(),
        NodeCordoned { node: w2.clone(), reason: "r".into() }.into(),
        NodeAgentLost { node: w1.clone(), silent_ms: 1 }.into(),
    ];
    // Power: one request completed (its seq is the next one's), one pending, one observation.
    let boot = Some(BootOverride { device: BootDevice::Pxe, once: true });
    let request = events.len() as u64 + 1;
    events.extend([
        PowerRequested { node: w1.clone(), action: Some(PowerAction::Reboot), boot, force: true }.into(),
        PowerCompleted {
            node: w1.clone(),
            request,
            outcome: PowerOutcome::Failed,
            error: Some("e".into()),
            power: Some(Power::Off),
        }
        .into(),
        PowerRequested { node: w2.clone(), action: None, boot, force: false }.into(),
        PowerObserved { node: w2.clone(), power: Power::On }.into(),
    ]);
    Some(events)
}

/// The state the probe folds to.
pub fn probe() -> FleetState {
    let mut state = FleetState::default();
    let mut prev = Hash::GENESIS;
    for (i, payload) in probe_events().unwrap_or_default().into_iter().enumerate() {
        let seq = i as u64 + 1;
        let p = Proposal {
            id: EventId::from_u128(u128::from(seq)),
            time: Timestamp(1_000 * seq as i64),
            actor: Actor::Admin,
            comment: None,
            cause: None,
            payload,
        };
        let event = crate::record::seal(&p, seq, p.time, prev);
        prev = event.hash;
        super::evolve(&mut state, &event);
    }
    state
}

/// The fingerprint of this build's fleet state.
pub fn fingerprint() -> Hash {
    static FINGERPRINT: OnceLock<Hash> = OnceLock::new();
    *FINGERPRINT.get_or_init(|| match postcard::to_allocvec(&probe()) {
        Ok(bytes) => Hash::of(&bytes),
        // A state that does not encode cannot be checkpointed either; any fingerprint makes checkpoints refold.
        Err(_) => Hash::GENESIS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_holds_every_record_type() {
        let s = probe();
        assert_eq!(s.nodes.records.len(), 2);
        assert_eq!(s.nodes.tokens.len(), 1);
        assert_eq!(s.machines.records.len(), 3);
        let bs = &s.machines.bootstrap;
        assert!(!bs.tokens.is_empty() && !bs.enrollment.is_empty() && !bs.refusals.is_empty());
        assert!(!bs.progress.is_empty() && !bs.host_keys.is_empty());
        assert!(s.specs.live.is_some() && !s.specs.applied.is_empty());
        let w1 = s.systems.get(&n("worker-01").unwrap()).unwrap();
        assert!(w1.desired.is_some() && w1.attempt.is_some() && w1.current.is_some());
        assert!(s.systems.get(&n("worker-02").unwrap()).unwrap().pinned.is_some());
        let r = s.rollouts.get(22).expect("the probe's rollout");
        assert!(!r.waves.is_empty() && r.waves[0].nodes[0].revert.is_some() && r.ended.is_some());
        let sv = &s.services;
        let web1 = sv.instance(&InstanceId::new("web.1").unwrap()).unwrap();
        assert!(web1.stop.is_some() && web1.address.is_some() && !web1.ports.is_empty());
        let web3 = sv.instance(&InstanceId::new("web.3").unwrap()).unwrap();
        assert!(web3.replaces.is_some() && !web3.reschedules.is_empty() && web3.handover.is_some());
        let w1 = s.nodes.get(&n("worker-01").unwrap()).unwrap();
        assert!(w1.drain.is_some_and(|d| d.deadline.is_some() && d.drained.is_some()));
        assert!(s.nodes.get(&n("worker-02").unwrap()).unwrap().cordon.is_some());
        assert!(sv.instance(&InstanceId::new("web.2").unwrap()).is_none(), "a replaced failed instance leaves");
        assert!(!sv.versions.is_empty() && !sv.by_node.is_empty() && !sv.next.is_empty());
        assert!(sv.agents.values().any(|a| !a.running));
        let d = sv.deployment("web").expect("the probe's deployment");
        assert!(d.from.is_some() && d.promoted.is_some() && d.ended.is_some());
        assert!(!sv.stable.is_empty());
        let p1 = s.power.get(&n("worker-01").unwrap()).unwrap();
        assert!(p1.pending.is_none() && p1.last.as_ref().is_some_and(|l| l.error.is_some()) && p1.observed.is_some());
        let p2 = s.power.get(&n("worker-02").unwrap()).unwrap();
        assert!(p2.pending.is_some_and(|r| r.boot.is_some()) && p2.observed.is_some());
    }

    /// A changed fingerprint means checkpoints of older builds are refolded from the events: update the pinned
    /// value when the state types or the folds change, and say so in the change.
    #[test]
    fn the_fingerprint_is_pinned() {
        assert_eq!(fingerprint().to_hex(), PINNED);
    }

    const PINNED: &str = "b5af707b97ebfb4cea44b8c3e0b65276ebc3c15c90ece19ac181666a718027a2";
}
