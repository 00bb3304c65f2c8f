//! Shared by the core's property tests: a spec whose pool `edge` holds the test nodes, fake store paths, and
//! a resolver that turns a random pick into a systems event that is legal (or nearly) in the current state, so
//! generated runs reach every systems kind: decisions, pins, rollouts and each step of an agent's activation.

#![allow(dead_code)]

use sendan_core::event::*;
use sendan_core::fleet::FleetState;
use sendan_core::ids::{NodeId, Timestamp};
use sendan_core::read::FleetRead;
use sendan_core::rollouts::planner;
use sendan_core::systems::AttemptPhase as Phase;

/// Store paths of fake systems.
pub const SYSTEMS: [&str; 3] = [
    "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-old",
    "/nix/store/1c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-new",
    "/nix/store/2c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-next",
];

/// The pool the test nodes belong to in [`systems_spec`].
pub const POOL: &str = "edge";

/// A valid spec: the checked-in fixture plus pool `edge` whose static members are `nodes`, each running
/// `SYSTEMS[variant % 3]`.
pub fn systems_spec(nodes: &[&str], variant: usize) -> Payload {
    let mut doc: serde_json::Value = serde_json::from_str(include_str!("../../src/spec/fixture.json")).unwrap();
    doc["name"] = serde_json::Value::String("fleet-systems".into());
    doc["pools"][POOL] = serde_json::json!({
        "class": "worker", "description": null, "diskLayout": null, "indexWidth": 2,
        "ipPools": { "rack2": "rack2-v4" }, "namePattern": "edge-{index}", "profile": null,
        "racks": ["rack2"], "size": 0
    });
    for (i, n) in nodes.iter().enumerate() {
        doc["nodes"][*n] = serde_json::json!({
            "class": "worker", "diskLayout": "single", "generated": false, "pool": POOL, "profile": "base",
            "rack": "rack2",
            "network": { "address": format!("10.0.2.{}", 6 + i), "allocated": false, "interface": "en*", "ipPool": "rack2-v4" },
            "system": { "flake": null, "storePath": SYSTEMS[variant % SYSTEMS.len()] }
        });
    }
    // A service on the pool, so that the scheduler and the node agents have something to place and run.
    // Its package follows the variant, so a new spec is a deployment of it (with a canary to promote).
    doc["services"]["edge-web"] = serde_json::json!({
        "package": format!("/nix/store/3c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-edge-web-{}", variant % 2), "pools": [POOL],
        "replicas": 1, "ports": { "http": {} },
        "update": { "canary": 1, "minHealthySeconds": 0, "healthyDeadlineSeconds": 60 },
        "constraints": { "maxPerNode": 2 }
    });
    let spec = sendan_core::spec::ClusterSpec::from_json(&doc.to_string()).unwrap();
    if let Err(e) = spec.validate() {
        panic!("the systems test spec is invalid: {e}");
    }
    SpecApplied { digest: spec.digest(), document: spec.canonical_json() }.into()
}

/// A systems event for `node`, picked by `pick` among those that fit the current state: the spec with pool
/// `edge` when it is not live, the rollout controller's next decisions, starting a rollout, operator decisions
/// and pins, and the next step of the node's agent.
pub fn legal_system_move(state: &FleetState, nodes: &[&str], node: &NodeId, pick: usize, now: Timestamp) -> Payload {
    use sendan_core::rollouts::RolloutState;
    // Which move is taken and the move's own choices come from different bits of `pick`.
    let (select, pick) = (pick & 0xff, pick >> 8);
    let live_has_pool = state.specs.live.as_ref().is_some_and(|l| l.spec.pools.contains_key(POOL));
    if !live_has_pool {
        return systems_spec(nodes, pick);
    }
    // Half of the time, an agent in the middle of an activation takes its next step, as real agents do.
    if select >> 7 == 1 {
        let busy = nodes
            .iter()
            .filter_map(|n| NodeId::new(*n).ok())
            .find(|n| state.node_system(n).and_then(|s| s.attempt.as_ref()).is_some_and(|a| a.phase.is_activating()));
        if let Some(step) = busy.and_then(|n| agent_step(state, &n, pick >> 2)) {
            return step;
        }
    }
    let decisions: Vec<Payload> =
        planner::decide(&state.rollouts, state, now).into_iter().map(|d| d.payload()).collect();
    let open = state.open_rollout(POOL);
    // Mostly, while a rollout is open, push it along: sometimes an operator halts it between waves once members
    // confirmed (so confirmed members are put back), else the controller's decision, else the next step of the
    // agent of a member it moved.
    if let Some(r) = open
        && select & 3 != 3
    {
        let settled = planner::assess(state, r, now).moving() == 0;
        if r.state == RolloutState::Running && pick % 4 != 0 && settled && planner::any_confirmed(r) {
            return operator_halt(state, r, now);
        }
        if let Some(d) = decisions.first() {
            return d.clone();
        }
        let moved = r.waves.iter().rev().flat_map(|w| &w.nodes).map(|wn| &wn.node);
        if let Some(step) = moved.filter_map(|n| agent_step(state, n, pick >> 2)).next() {
            return step;
        }
    }
    // Half of the time, start a rollout when one can start.
    let members = state.pool_members(POOL);
    let active = members.iter().any(|m| state.node(m).is_some_and(|r| r.state == sendan_core::NodeState::Active));
    if open.is_none() && active && (select >> 2) & 1 == 1 {
        // Half of these roll out what a member already runs: its wave is confirmed in one step.
        let running = members.iter().find_map(|m| state.node_system(m).and_then(|s| s.current.clone()));
        let system = running.filter(|_| pick % 2 == 0).unwrap_or_else(|| SYSTEMS[1 + pick / 16 % 2].to_owned());
        return RolloutStarted {
            pool: POOL.into(),
            system,
            action: SwitchAction::Switch,
            max_unavailable: 1 + (pick / 2 % 2) as u32,
            canary: (pick / 4 % 2) as u32,
            max_failures: (pick / 8 % 2) as u32,
            health_timeout_secs: 3600,
        }
        .into();
    }
    // Often, while no member is active, bring one closer to being rolled out: the spec's disk layout needs a disk
    // (a machine that reported none phones home again with one), and rollouts move only active members.
    if !active && (select >> 4) & 3 != 3 {
        for m in &members {
            let Some(rec) = state.node(m) else { continue };
            if state.machine(&rec.machine).is_some_and(|mr| mr.facts.disks.is_empty()) {
                let disk = sendan_core::facts::Disk {
                    name: "nvme0n1".into(),
                    size_bytes: 1 << 40,
                    by_id: Some(format!("/dev/disk/by-id/nvme-{}", rec.machine)),
                    ..Default::default()
                };
                let facts = sendan_core::facts::HardwareFacts { disks: vec![disk], ..Default::default() };
                return MachineDiscovered { machine: rec.machine.clone(), facts }.into();
            }
            if let Some(step) = toward_active(state, m) {
                return step;
            }
        }
    }
    // An agent that has not said what its node runs says it (as real agents do when they start).
    if (select >> 6) & 3 == 1
        && members.contains(node)
        && let Some(ns) = state.node_system(node).filter(|s| s.current.is_none())
    {
        let current = ns.desired.as_ref().map(|d| d.system.clone()).unwrap_or_else(|| SYSTEMS[0].to_owned());
        return SystemReported { node: node.clone(), current: Some(current), booted: None }.into();
    }
    // An agent in the middle of an activation mostly finishes it first, as the real one does.
    let busy = state
        .node_system(node)
        .and_then(|s| s.attempt.as_ref().filter(|a| s.desired.as_ref().is_some_and(|d| d.seq == a.decision)))
        .is_some_and(|a| a.phase == Phase::Prefetched || a.phase.is_activating());
    if busy
        && select & 7 != 0
        && let Some(step) = agent_step(state, node, pick >> 2)
    {
        return step;
    }
    let mut c = decisions;
    if state.open_rollout(POOL).is_none() {
        c.push(
            RolloutStarted {
                pool: POOL.into(),
                system: SYSTEMS[pick % 3].into(),
                action: SwitchAction::Switch,
                max_unavailable: 1 + (pick % 2) as u32,
                canary: (pick % 2) as u32,
                max_failures: (pick / 2 % 2) as u32,
                health_timeout_secs: 3600,
            }
            .into(),
        );
    } else if pick % 4 == 0 {
        let r = state.open_rollout(POOL).unwrap();
        c.push(operator_halt(state, r, now));
    } else if state.open_rollout(POOL).is_some_and(|r| r.waves.is_empty() && !r.drain) {
        c.push(RolloutDrainsMembers { pool: POOL.into() }.into());
    }
    let ns = state.node_system(node);
    c.push(NodeSystemSet { node: node.clone(), system: SYSTEMS[pick % 3].into(), action: SwitchAction::Switch }.into());
    if ns.is_some_and(|s| s.pinned.is_some()) {
        c.push(NodeUnpinned { node: node.clone() }.into());
    } else {
        c.push(NodePinned { node: node.clone(), reason: "maintenance".into() }.into());
    }
    c.push(SystemReported { node: node.clone(), current: Some(SYSTEMS[pick % 3].into()), booted: None }.into());
    if let Some(agent) = agent_step(state, node, pick >> 2) {
        // The agent's step is the likeliest to be what the run needs: give it more weight.
        c.push(agent.clone());
        c.push(agent);
    }
    c.swap_remove(select % c.len())
}

/// An operator's halt of `r` (`sendan rollout abort`): the server fills in the members it puts back at once.
pub fn operator_halt(state: &FleetState, r: &sendan_core::rollouts::Rollout, now: Timestamp) -> Payload {
    let revert = planner::halt_reverts(r, &planner::assess(state, r, now));
    RolloutHalted { rollout: r.id, reason: "operator".into(), revert }.into()
}

/// The lifecycle event that takes `node` one step towards `active`, if it is not active.
fn toward_active(state: &FleetState, node: &NodeId) -> Option<Payload> {
    use sendan_core::lifecycle::NodeState as S;
    let node = node.clone();
    Some(match state.node(&node)?.state {
        S::Commissioned | S::Reprovisioning => NodeInstallRequested { node }.into(),
        S::InstallPending => NodeInstallStarted { node }.into(),
        S::Installing | S::Rescue => NodeActivated { node }.into(),
        S::Draining => NodeUncordoned { node }.into(),
        S::Failed => NodeReprovisionRequested { node }.into(),
        S::Active | S::Discovered | S::Retired => return None,
    })
}

/// The next report of `node`'s agent, given its desired system and latest attempt.
pub fn agent_step(state: &FleetState, node: &NodeId, pick: usize) -> Option<Payload> {
    let ns = state.node_system(node)?;
    // An activation under way is finished first, whatever was decided since (as the real agent does).
    if let Some(a) = ns.attempt.as_ref().filter(|a| a.phase.is_activating())
        && ns.desired.as_ref().is_some_and(|d| d.seq != a.decision)
    {
        let (node, decision, path) = (node.clone(), a.decision, a.path.clone().unwrap_or_else(|| SYSTEMS[0].into()));
        let to = a.previous.clone().unwrap_or_else(|| SYSTEMS[0].to_owned());
        return Some(match a.phase {
            Phase::Activating | Phase::ProfileSet => {
                SystemSwitched { node, decision, path, exit_code: 0, reboot_required: false }.into()
            }
            Phase::Switched if pick % 2 == 0 => SystemConfirmed { node, decision, path, switched: true }.into(),
            _ => SystemRolledBack { node, decision, path, to, reason: "superseded".into(), exit_code: 0 }.into(),
        });
    }
    let d = ns.desired.as_ref()?;
    let path = if d.system.starts_with("/nix/store/") { d.system.clone() } else { SYSTEMS[0].to_owned() };
    let (node, decision) = (node.clone(), d.seq);
    let attempt = ns.attempt.as_ref().filter(|a| a.decision == decision);
    // Activations succeed more often than not; each way to fail is still taken often enough to be exercised.
    let p: Payload = match attempt.map(|a| a.phase) {
        // Already running it: the agent only acknowledges it.
        None if ns.current.as_deref() == Some(d.system.as_str()) => {
            SystemConfirmed { node, decision, path, switched: false }.into()
        }
        None => match pick % 8 {
            0 => SystemPrefetchFailed { node, decision, system: d.system.clone(), error: "unsigned".into() }.into(),
            1 => SystemConfirmed { node, decision, path, switched: false }.into(),
            _ => SystemPrefetched { node, decision, system: d.system.clone(), path }.into(),
        },
        Some(Phase::Prefetched) => {
            SystemActivating { node, decision, path, action: d.action, previous: ns.current.clone() }.into()
        }
        Some(Phase::Activating) if pick % 2 == 0 => {
            SystemProfileSet { node, decision, path, profile: "/nix/var/nix/profiles/system".into() }.into()
        }
        Some(Phase::Activating | Phase::ProfileSet) => {
            let exit_code = match pick / 2 % 8 {
                0 => 2,
                1 => 4,
                2 => 100,
                _ => 0,
            };
            SystemSwitched { node, decision, path, exit_code, reboot_required: exit_code == 100 }.into()
        }
        Some(Phase::Switched) if pick % 2 == 0 => {
            SystemHealthFailed { node, decision, path, failures: vec!["sshd.service is failed".into()] }.into()
        }
        Some(Phase::Switched) => SystemConfirmed { node, decision, path, switched: true }.into(),
        // A confirmed activation is rolled back only when the acknowledgement was lost, rarely.
        Some(Phase::Confirmed) if pick % 8 != 0 => return None,
        Some(Phase::SwitchFailed | Phase::HealthFailed | Phase::Confirmed) => {
            let to = ns.attempt.as_ref().and_then(|a| a.previous.clone()).unwrap_or_else(|| SYSTEMS[0].to_owned());
            let exit_code = if pick % 4 == 0 { 1 } else { 0 };
            SystemRolledBack { node, decision, path, to, reason: "health gate failed".into(), exit_code }.into()
        }
        Some(Phase::PrefetchFailed | Phase::RolledBack | Phase::RollbackFailed) => return None,
    };
    Some(p)
}
