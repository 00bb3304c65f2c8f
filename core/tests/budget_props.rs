//! Property tests of the one budget model: random fleets, services with disruption budgets, and random
//! interleavings of scheduler passes, agents converging, a host rollout of a pool (waves decided by the rollout
//! planner, each member's services disrupted while it switches), cordons, drains with and without deadlines,
//! uncordons, involuntary failures, the clock, and service updates (new releases, with or without a canary,
//! good or bad; promotions and aborts by the operator). Every decision goes through `check`.
//!
//! Named invariants, checked after every step:
//! - `invariant_voluntary_disruption_keeps_the_budget`: a voluntary step (a rollout wave or revert batch, a
//!   scheduler pass that hands over or stops instances for a drain without `force` or a deployment) never leaves a service with
//!   fewer healthy instances than `min(its budget's floor, what it had before the step)`. Involuntary losses
//!   (an instance failing, a forced drain) are excepted — and the next voluntary step may not deepen them.
//! - `invariant_drained_means_empty`: a node recorded drained has no instance the log assigns to it, and keeps
//!   none.
//! - `invariant_no_new_work_on_cordoned_or_draining_nodes`: no placement, reschedule or hand-over lands on a node
//!   that is cordoned or draining.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sendan_core::event::*;
use sendan_core::ids::{Actor, NodeId, Timestamp};
use sendan_core::nixos::SwitchAction;
use sendan_core::read::FleetRead;
use sendan_core::rollouts::planner as rollouts;
use sendan_core::services::InstanceStatus;
use sendan_core::services::budget::healthy_count;
use sendan_core::services::planner::Decision;
use serde_json::json;

#[path = "support/services.rs"]
mod support;
use support::{Fleet, GIB, TestNode, n};

const NEW: &str = "/nix/store/1c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-new";

/// A rollout's action, and whether it was started with `--drain`.
type RolloutKind = (SwitchAction, bool);

#[derive(Clone, Debug)]
enum Step {
    Schedule,
    AgentsConverge,
    RolloutDecide,
    /// The agent of the `k`th in-flight rollout member finishes its switch (confirmed, or failed and rolled back);
    /// a switch that exits 100 (a reboot is needed) or not.
    MemberSettles(usize, bool, bool),
    /// Every drained node that waits for a reboot into its confirmed system is rebooted by its agent.
    Reboot,
    Cordon(usize),
    Uncordon(usize),
    Drain(usize, Option<i64>),
    ForceDrain(usize),
    Fail(usize),
    Clock(i64),
    /// A new release of the `k`th service: with a canary or not, a bad one (its instances exit at once) or not.
    Update {
        k: usize,
        canary: bool,
        bad: bool,
    },
    Promote(usize),
    Abort(usize),
}

fn fleet_nodes() -> impl Strategy<Value = Vec<TestNode>> {
    prop::collection::vec((0usize..3, 2u32..9), 3..9).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(k, (rack, cpu))| TestNode {
                name: format!("n{k:02}"),
                pool: Some("blue".into()),
                rack: format!("r{rack}"),
                cpu,
                memory_gib: 16,
            })
            .collect()
    })
}

fn services() -> impl Strategy<Value = BTreeMap<String, serde_json::Value>> {
    let one = (1u32..5, 1u32..3, prop::option::of(0u32..3), any::<bool>(), 1u32..3).prop_map(
        |(replicas, max_parallel, budget, min_form, min_healthy_s)| {
            let mut s = json!({
                "package": "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-web-1.0",
                "replicas": replicas,
                "pools": ["blue"],
                "resources": {"cpu": 1, "memoryBytes": GIB},
                "update": {"maxParallel": max_parallel, "minHealthySeconds": min_healthy_s, "healthyDeadlineSeconds": 60},
            });
            match budget {
                Some(b) if min_form => s["budget"] = json!({"minHealthy": b.min(replicas)}),
                Some(b) => s["budget"] = json!({"maxUnavailable": b}),
                None => {}
            }
            s
        },
    );
    prop::collection::vec(one, 1..4)
        .prop_map(|v| v.into_iter().enumerate().map(|(k, s)| (format!("svc{k}"), s)).collect())
}

fn step(nodes: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Schedule),
        6 => Just(Step::AgentsConverge),
        5 => Just(Step::RolloutDecide),
        5 => (0usize..8, prop::bool::weighted(0.8), prop::bool::weighted(0.3))
            .prop_map(|(k, ok, reboot)| Step::MemberSettles(k, ok, reboot)),
        3 => Just(Step::Reboot),
        1 => (0..nodes).prop_map(Step::Cordon),
        1 => (0..nodes).prop_map(Step::Uncordon),
        1 => (0..nodes, prop::option::of(1i64..30)).prop_map(|(k, d)| Step::Drain(k, d)),
        1 => (0..nodes).prop_map(Step::ForceDrain),
        1 => (0usize..64).prop_map(Step::Fail),
        3 => prop_oneof![Just(500i64), Just(2_000), Just(10_000)].prop_map(Step::Clock),
        1 => (0usize..4, any::<bool>(), prop::bool::weighted(0.3)).prop_map(|(k, canary, bad)| Step::Update { k, canary, bad }),
        3 => (0usize..4).prop_map(Step::Promote),
        1 => (0usize..4).prop_map(Step::Abort),
    ]
}

/// The rollout's budget and action: `boot` (a reboot: members drained first) a third of the time, `switch` with
/// `--drain` (members drained first too) a sixth.
fn setup() -> impl Strategy<Value = (Vec<TestNode>, BTreeMap<String, serde_json::Value>, Vec<Step>, (u32, RolloutKind))>
{
    let action = prop_oneof![
        3 => Just((SwitchAction::Switch, false)),
        1 => Just((SwitchAction::Switch, true)),
        2 => Just((SwitchAction::Boot, false)),
    ];
    (fleet_nodes(), services(), 1u32..4, action).prop_flat_map(|(nodes, services, max_unavailable, action)| {
        let k = nodes.len();
        (Just(nodes), Just(services), prop::collection::vec(step(k), 0..120), Just((max_unavailable, action)))
    })
}

fn healthy(f: &Fleet) -> BTreeMap<String, u32> {
    f.services.keys().map(|s| (s.clone(), healthy_count(&f.state.services, s))).collect()
}

fn invariant_voluntary_disruption_keeps_the_budget(f: &Fleet, before: &BTreeMap<String, u32>, what: &str) {
    let live = f.state.live().unwrap();
    for (name, had) in before {
        let floor = live.spec.services[name].min_healthy();
        let now = healthy_count(&f.state.services, name);
        assert!(
            now >= floor.min(*had),
            "{what} took service {name} from {had} to {now} healthy; its budget keeps at least {floor}"
        );
    }
}

fn invariant_drained_means_empty(f: &Fleet) {
    for node in f.state.nodes.records.values() {
        if node.drain.is_some_and(|d| d.drained.is_some()) {
            let left: Vec<_> = f.state.services.on_node(&node.id).map(|i| i.id.to_string()).collect();
            assert!(left.is_empty(), "{} is recorded drained and still holds {left:?}", node.id);
        }
    }
}

fn invariant_no_new_work_on_cordoned_or_draining_nodes(
    before: &sendan_core::fleet::FleetState,
    decisions: &[sendan_core::services::planner::ServiceDecision],
) {
    for d in decisions {
        let Some(node) = d.decision.placed_on() else { continue };
        let facts = before.node(node).unwrap();
        assert!(facts.cordon.is_none() && facts.drain.is_none(), "{} landed on a cordoned or draining node", d.comment);
    }
}

/// The in-flight members of the open rollout (moving, or being put back), in name order.
fn in_flight(f: &Fleet) -> Vec<NodeId> {
    rollouts::in_flight(&f.state.rollouts, &f.state, f.now()).into_iter().collect()
}

/// The instances assigned to `node` in `status`.
fn assigned_in(f: &Fleet, node: &NodeId, status: InstanceStatus) -> Vec<sendan_core::ids::InstanceId> {
    f.state.services.on_node(node).filter(|i| i.status == status && i.is_assigned()).map(|i| i.id.clone()).collect()
}

/// A wave or revert batch took `nodes` out: whatever ran healthy there is disrupted while they switch.
fn disrupt(f: &mut Fleet, nodes: &[NodeId]) {
    for node in nodes {
        for instance in assigned_in(f, node, InstanceStatus::Healthy) {
            f.agent(InstanceUnhealthy { instance, node: node.clone(), reason: "the node is switching".into() })
                .unwrap();
        }
    }
}

/// The member's agent activates its decision to the end (a `switch` that exits 100 when `reboot`: the new
/// system needs a reboot); its instances are healthy again afterwards.
fn settle(f: &mut Fleet, node: &NodeId, ok: bool, reboot: bool) {
    let Some(d) = f.state.decision(node).map(|d| (d.seq, d.system.to_owned(), d.action)) else { return };
    let (decision, path, action) = d;
    let previous = f.state.current_system(node).map(str::to_owned);
    let steps: Vec<Payload> = vec![
        SystemPrefetched { node: node.clone(), decision, system: path.clone(), path: path.clone() }.into(),
        SystemActivating { node: node.clone(), decision, path: path.clone(), action, previous: previous.clone() }
            .into(),
        SystemSwitched {
            node: node.clone(),
            decision,
            path: path.clone(),
            exit_code: if reboot { 100 } else { 0 },
            reboot_required: reboot,
        }
        .into(),
    ];
    for p in steps {
        if f.agent(p).is_err() {
            return; // an activation of an older decision is under way; the member settles later
        }
    }
    let last: Payload = if ok {
        SystemConfirmed { node: node.clone(), decision, path, switched: true }.into()
    } else {
        let to = previous.unwrap_or_else(|| path.clone());
        SystemRolledBack { node: node.clone(), decision, path, to, reason: "health".into(), exit_code: 0 }.into()
    };
    let _ = f.agent(last);
    for instance in assigned_in(f, node, InstanceStatus::Unhealthy) {
        f.agent(InstanceHealthy { instance, node: node.clone() }).unwrap();
    }
}

/// Every node that waits for a reboot into its confirmed system and is drained is rebooted by its agent: whatever
/// still ran there stops (a voluntary disruption, so the budget must hold), and the agent reports the booted
/// system. The nodes rebooted.
fn reboot_drained(f: &mut Fleet) -> Vec<NodeId> {
    let due: Vec<(NodeId, String)> = f
        .state
        .nodes
        .records
        .values()
        .filter(|r| r.drain.is_some_and(|d| d.drained.is_some()))
        .filter_map(|r| f.state.pending_reboot(&r.id).map(|(_, p)| (r.id.clone(), p.to_owned())))
        .collect();
    for (node, path) in &due {
        disrupt(f, std::slice::from_ref(node));
        let booted = Some(path.clone());
        f.agent(SystemReported { node: node.clone(), current: booted.clone(), booted }).unwrap();
    }
    due.into_iter().map(|(n, _)| n).collect()
}

/// The `k`th service's name.
fn nth_service(f: &Fleet, k: usize) -> String {
    f.services.keys().nth(k % f.services.len()).cloned().unwrap_or_default()
}

/// A new release of a service, applied as the live spec: a new package, one canary or none.
fn release(f: &mut Fleet, k: usize, canary: bool, bad: bool) {
    let name = nth_service(f, k);
    let package = format!("/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-{name}-{}", f.events.len());
    if bad {
        f.bad.insert(package.clone());
    }
    let s = f.services.get_mut(&name).unwrap();
    s["package"] = json!(package);
    s["update"]["canary"] = json!(u32::from(canary));
    f.apply_spec();
}

/// The operator promotes (or aborts) the `k`th service's running deployment; refusals are fine (no deployment,
/// canaries not good yet). Whether it was accepted.
fn operator_deployment(f: &mut Fleet, k: usize, promote: bool) -> bool {
    let name = nth_service(f, k);
    let Some(d) = f.state.services.deployment(&name).filter(|d| d.running()) else { return false };
    let task_digest = d.version;
    let payload: Payload = if promote {
        DeploymentPromoted { service: name, task_digest }.into()
    } else {
        let outcome = DeploymentOutcome::Aborted;
        DeploymentEnded { service: name, task_digest, outcome, reason: "abort".into() }.into()
    };
    f.submit(Actor::Admin, payload, None).is_ok()
}

/// A release, promotion or abort step.
fn release_step(f: &mut Fleet, step: &Step) {
    match *step {
        Step::Update { k, canary, bad } => release(f, k, canary, bad),
        Step::Promote(k) => {
            operator_deployment(f, k, true);
        }
        Step::Abort(k) => {
            operator_deployment(f, k, false);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn a_host_rollout_drains_and_cordons_never_take_a_service_below_its_budget((nodes, services, steps, (max_unavailable, action)) in setup()) {
        let mut f = Fleet::new(nodes.clone(), services);
        f.schedule();
        f.agents_converge();
        f.submit(
            Actor::Admin,
            RolloutStarted {
                pool: "blue".into(),
                system: NEW.into(),
                action: action.0,
                max_unavailable,
                canary: 0,
                max_failures: 1,
                health_timeout_secs: 3_600,
            }
            .into(),
            None,
        )
        .unwrap();
        if action.1 {
            f.submit(Actor::Admin, RolloutDrainsMembers { pool: "blue".into() }.into(), None).unwrap();
        }
        for s in steps {
            let before = healthy(&f);
            match s {
                Step::Schedule => {
                    let state = f.state.clone();
                    // A deadline that passes during the pass (each proposal moves the clock) counts as forced too.
                    let soon = Timestamp(f.now().0 + 10_000);
                    let forced = f.state.nodes.records.values().any(|n| n.drain.is_some_and(|d| d.force || d.deadline.is_some_and(|t| soon >= t)));
                    let decisions = f.schedule();
                    invariant_no_new_work_on_cordoned_or_draining_nodes(&state, &decisions);
                    if !forced {
                        invariant_voluntary_disruption_keeps_the_budget(&f, &before, "a scheduler pass");
                    }
                }
                Step::AgentsConverge => {
                    f.agents_converge();
                    // Converging starts and stops only what the log asked for; stops of instances not assigned
                    // any more do not change the healthy count.
                    invariant_voluntary_disruption_keeps_the_budget(&f, &before, "agents converging");
                }
                Step::RolloutDecide => {
                    for d in rollouts::decide(&f.state.rollouts, &f.state, f.now()) {
                        let payload = d.payload();
                        let out = match &d.event {
                            rollouts::RolloutMove::WaveStarted(w) => w.nodes.clone(),
                            rollouts::RolloutMove::NodesReverted(b) => b.nodes.clone(),
                            _ => Vec::new(),
                        };
                        let kind = payload.kind();
                        if let Err(r) = f.submit(Actor::System("rollout".into()), payload, Some(d.cause)) {
                            panic!("the rollout planner's {kind} was refused: {r}");
                        }
                        disrupt(&mut f, &out);
                        invariant_voluntary_disruption_keeps_the_budget(&f, &before, "a rollout wave");
                    }
                }
                Step::MemberSettles(k, ok, reboot) => {
                    let moving = in_flight(&f);
                    if moving.is_empty() { continue }
                    let node = moving[k % moving.len()].clone();
                    settle(&mut f, &node, ok, reboot);
                }
                Step::Reboot => {
                    reboot_drained(&mut f);
                    invariant_voluntary_disruption_keeps_the_budget(&f, &before, "a reboot of a drained node");
                }
                Step::Cordon(k) => {
                    let node = n(&f.nodes[k].name);
                    let _ = f.submit(Actor::Admin, NodeCordoned { node, reason: "test".into() }.into(), None);
                }
                Step::Uncordon(k) => {
                    let node = n(&f.nodes[k].name);
                    let _ = f.submit(Actor::Admin, NodeUncordoned { node }.into(), None);
                }
                Step::Drain(k, secs) => {
                    let node = n(&f.nodes[k].name);
                    let deadline = secs.map(|s| Timestamp(f.now().0 + s * 1000));
                    let _ = f.submit(Actor::Admin, NodeDrainStarted { node, deadline, force: false }.into(), None);
                }
                Step::ForceDrain(k) => {
                    let node = n(&f.nodes[k].name);
                    let _ = f.submit(Actor::Admin, NodeDrainStarted { node, deadline: None, force: true }.into(), None);
                }
                Step::Fail(k) => {
                    let live: Vec<_> = f.state.services.instances.values().filter(|i| i.is_live() && i.status != InstanceStatus::Pending).map(|i| (i.id.clone(), i.node.clone())).collect();
                    if live.is_empty() { continue }
                    let (instance, node) = live[k % live.len()].clone();
                    let _ = f.agent(InstanceExited { instance, node, exit_code: Some(1), signal: None, restarting: false, reason: "exit 1".into() });
                }
                Step::Clock(ms) => f.clock += ms,
                s @ (Step::Update { .. } | Step::Promote(_) | Step::Abort(_)) => release_step(&mut f, &s),
            }
            invariant_drained_means_empty(&f);
        }
    }
}

/// Guards the generator: across a fixed-seed sample, waves start, hand-overs happen, drains complete and the
/// budget holds a wave back at least once — so the property above is not vacuously true.
#[test]
fn the_generator_reaches_waves_handovers_drains_and_budget_waits() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner =
        TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(Config::default().rng_algorithm));
    let (mut waves, mut handovers, mut drained, mut refused, mut rollout_drains) = (0, 0, 0, 0, 0);
    let mut reboots = 0;
    for _ in 0..200 {
        let (nodes, services, steps, (max_unavailable, action)) = setup().new_tree(&mut runner).unwrap().current();
        let mut f = Fleet::new(nodes, services);
        f.schedule();
        f.agents_converge();
        let start = RolloutStarted {
            pool: "blue".into(),
            system: NEW.into(),
            action: action.0,
            max_unavailable,
            canary: 0,
            max_failures: 1,
            health_timeout_secs: 3_600,
        };
        f.submit(Actor::Admin, start.into(), None).unwrap();
        if action.1 {
            f.submit(Actor::Admin, RolloutDrainsMembers { pool: "blue".into() }.into(), None).unwrap();
        }
        for s in steps {
            match s {
                Step::Schedule => {
                    handovers += f.schedule().iter().filter(|d| matches!(d.decision, Decision::Migrate(_))).count();
                }
                Step::AgentsConverge => f.agents_converge(),
                Step::RolloutDecide => {
                    let r = f.state.rollouts.open().next().cloned();
                    if let Some(r) = r
                        && rollouts::budget_wait(&f.state.rollouts, &f.state, &r, f.now()).is_some()
                    {
                        refused += 1;
                    }
                    for d in rollouts::decide(&f.state.rollouts, &f.state, f.now()) {
                        if matches!(d.event, rollouts::RolloutMove::WaveStarted(_)) {
                            waves += 1;
                        }
                        if matches!(d.event, rollouts::RolloutMove::Drain(_)) {
                            rollout_drains += 1;
                        }
                        let out = match &d.event {
                            rollouts::RolloutMove::WaveStarted(w) => w.nodes.clone(),
                            rollouts::RolloutMove::NodesReverted(b) => b.nodes.clone(),
                            _ => Vec::new(),
                        };
                        f.submit(Actor::System("rollout".into()), d.payload(), Some(d.cause)).unwrap();
                        disrupt(&mut f, &out);
                    }
                }
                Step::MemberSettles(k, ok, reboot) => {
                    let moving = in_flight(&f);
                    if !moving.is_empty() {
                        settle(&mut f, &moving[k % moving.len()].clone(), ok, reboot);
                    }
                }
                Step::Reboot => reboots += reboot_drained(&mut f).len(),
                Step::Drain(k, secs) => {
                    let node = n(&f.nodes[k].name);
                    let deadline = secs.map(|s| Timestamp(f.now().0 + s * 1000));
                    let _ = f.submit(Actor::Admin, NodeDrainStarted { node, deadline, force: false }.into(), None);
                }
                Step::Clock(ms) => f.clock += ms,
                _ => {}
            }
        }
        drained += f.state.nodes.records.values().filter(|n| n.drain.is_some_and(|d| d.drained.is_some())).count();
    }
    assert!(waves > 50, "waves: {waves}");
    assert!(handovers > 20, "hand-overs: {handovers}");
    assert!(drained > 5, "drained nodes: {drained}");
    assert!(refused > 5, "waves held back by a budget: {refused}");
    assert!(rollout_drains > 5, "members drained by a reboot rollout: {rollout_drains}");
    assert!(reboots > 5, "drained members rebooted into their new system: {reboots}");
}

/// Four nodes in two racks, and service `web` with 3 replicas and `budget.maxUnavailable = 1`, placed and healthy.
fn settled_web_fleet() -> Fleet {
    let nodes: Vec<TestNode> = (0..4)
        .map(|k| TestNode {
            name: format!("n{k:02}"),
            pool: Some("blue".into()),
            rack: format!("r{}", k % 2),
            cpu: 4,
            memory_gib: 16,
        })
        .collect();
    let web = json!({
        "package": "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-web-1.0", "replicas": 3, "pools": ["blue"],
        "resources": {"cpu": 1, "memoryBytes": GIB}, "budget": {"maxUnavailable": 1},
        "update": {"maxParallel": 1, "minHealthySeconds": 1, "healthyDeadlineSeconds": 60},
    });
    let mut f = Fleet::new(nodes, BTreeMap::from([("web".to_owned(), web)]));
    f.schedule();
    f.agents_converge();
    f
}

/// A rollout whose action (`boot`) needs a reboot drains each member before its wave and uncordons it once it
/// booted the new system: run to completion on a settled fleet, every wave member was drained (its instances
/// handed over and reported stopped) before its wave, no service ever went below its budget, and at the end every
/// node is `active`, uncordoned, booted into the new system, and the services have all their replicas healthy
/// again.
#[test]
fn a_reboot_rollout_drains_each_member_first_and_uncordons_it_after() {
    let mut f = settled_web_fleet();
    let id = drive_rollout(&mut f, SwitchAction::Boot, false);
    rollout_ends_completed_and_uncordoned(&mut f, id);
}

/// A `switch` rollout whose switches exit 100 (the new system needs a reboot) drains each member after it
/// confirms and before its agent reboots it, one at a time, and the next wave waits for the reboot: nothing runs
/// on a node when it reboots, no service goes below its budget, and every node ends booted into the new system,
/// `active` and uncordoned.
#[test]
fn a_switch_that_needs_a_reboot_drains_the_member_before_its_agent_reboots_it() {
    let mut f = settled_web_fleet();
    let id = drive_rollout(&mut f, SwitchAction::Switch, true);
    let drains: Vec<&NodeId> = f
        .events
        .iter()
        .filter_map(|e| match &e.payload {
            // The rollout does not drain first (`switch`, no --drain): each of its drains is before a reboot.
            Payload::NodeDrainStarted(d) if e.actor == Actor::System("rollout".into()) => Some(&d.node),
            _ => None,
        })
        .collect();
    assert_eq!(drains.len(), 4, "every member was drained before its reboot: {drains:?}");
    rollout_ends_completed_and_uncordoned(&mut f, id);
}

/// Run a rollout of pool `blue` to its end (max-unavailable 2, no canary), every member's switch exiting 100 when
/// `exit_100`; the invariants checked at every step. The rollout's id.
fn drive_rollout(f: &mut Fleet, action: SwitchAction, exit_100: bool) -> u64 {
    assert_eq!(healthy_count(&f.state.services, "web"), 3);
    let start = RolloutStarted {
        pool: "blue".into(),
        system: NEW.into(),
        action,
        max_unavailable: 2,
        canary: 0,
        max_failures: 0,
        health_timeout_secs: 3_600,
    };
    let id = f.submit(Actor::Admin, start.into(), None).unwrap().seq;
    for _ in 0..400 {
        let before = healthy(f);
        f.schedule();
        invariant_voluntary_disruption_keeps_the_budget(f, &before, "a scheduler pass");
        f.agents_converge();
        for d in rollouts::decide(&f.state.rollouts, &f.state, f.now()) {
            let payload = d.payload();
            if let rollouts::RolloutMove::WaveStarted(w) = &d.event {
                for n in &w.nodes {
                    if rollouts::drains_first(f.state.rollout(id).unwrap()) {
                        let drain = f.state.node(n).unwrap().drain.expect("a wave member is draining");
                        assert!(drain.drained.is_some(), "{n} joined wave {} before it was drained", w.wave);
                        assert_eq!(f.state.services.on_node(n).count(), 0, "{n} still holds instances");
                    }
                    let rebooting = f.state.nodes.records.values().find(|r| f.state.pending_reboot(&r.id).is_some());
                    assert!(rebooting.is_none(), "wave {} started while {:?} waits for its reboot", w.wave, rebooting);
                }
            }
            f.submit(Actor::System("rollout".into()), payload, Some(d.cause)).unwrap();
        }
        for n in in_flight(f) {
            settle(f, &n, true, exit_100);
        }
        let before = healthy(f);
        for n in reboot_drained(f) {
            assert_eq!(f.state.services.on_node(&n).count(), 0, "{n} rebooted with instances on it");
        }
        invariant_voluntary_disruption_keeps_the_budget(f, &before, "a reboot");
        invariant_drained_means_empty(f);
        f.clock += 1_500;
        if !f.state.rollout(id).unwrap().state.is_open() {
            break;
        }
    }
    id
}

/// Rollout `id` completed, every member moved and booted the new system, every node is `active` and
/// uncordoned, and `web` gets all its replicas healthy again.
fn rollout_ends_completed_and_uncordoned(f: &mut Fleet, id: u64) {
    let r = f.state.rollout(id).unwrap();
    let view = sendan_core::rollouts::view::view(&f.state.rollouts, &f.state, r, f.now());
    assert_eq!(
        r.state,
        sendan_core::rollouts::RolloutState::Completed,
        "{:?} {:#?}",
        r.reason,
        (
            view.waiting,
            view.unmoved,
            view.waves,
            f.state.nodes.records.values().map(|n| (n.id.clone(), n.state, n.drain)).collect::<Vec<_>>()
        )
    );
    assert_eq!(r.waves.iter().map(|w| w.nodes.len()).sum::<usize>(), 4, "every member moved");
    for node in f.state.nodes.records.values() {
        assert_eq!(node.state, sendan_core::NodeState::Active, "{} ends {}", node.id, node.state);
        assert!(node.cordon.is_none() && node.drain.is_none(), "{} ends cordoned or draining", node.id);
        let sys = f.state.systems.get(&node.id).unwrap();
        assert_eq!(sys.booted.as_deref(), Some(NEW), "{} booted the new system", node.id);
    }
    for _ in 0..5 {
        f.schedule();
        f.agents_converge();
        f.clock += 1_500;
    }
    assert_eq!(healthy_count(&f.state.services, "web"), 3);
}

/// Guards the deployment steps of the generator: across a fixed-seed sample, deployments start, hand over
/// (canaries and rolling steps), are promoted, complete, fail, are aborted, superseded and reverted — so the
/// budget property covers service updates, not vacuously.
#[test]
fn the_update_generator_reaches_every_deployment_step() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner =
        TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(Config::default().rng_algorithm));
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..200 {
        let (nodes, services, steps, _) = setup().new_tree(&mut runner).unwrap().current();
        let mut f = Fleet::new(nodes, services);
        f.schedule();
        f.agents_converge();
        for s in steps {
            match s {
                Step::Schedule => {
                    f.schedule();
                }
                Step::AgentsConverge => f.agents_converge(),
                Step::Clock(ms) => f.clock += ms,
                s @ (Step::Update { .. } | Step::Promote(_) | Step::Abort(_)) => release_step(&mut f, &s),
                _ => {}
            }
        }
        for e in &f.events {
            let name = match &e.payload {
                Payload::DeploymentStarted(d) if d.revert => "reverted".to_owned(),
                Payload::DeploymentEnded(d) => d.outcome.name().to_owned(),
                p => p.kind().to_string(),
            };
            *seen.entry(name).or_default() += 1;
        }
    }
    for step in [
        "DeploymentStarted",
        "InstanceUpdated",
        "DeploymentPromoted",
        "completed",
        "failed",
        "aborted",
        "superseded",
        "reverted",
    ] {
        assert!(seen.get(step).copied().unwrap_or(0) >= 3, "{step} reached {:?} times: {seen:?}", seen.get(step));
    }
}

/// A service update by its policy, on a settled fleet of four nodes and a 3-replica service with
/// `maxUnavailable = 1`: a release with one canary hands one instance over and waits for promotion; promoted, it
/// rolls on one at a time and completes, every replica on the new version; a bad release's canary fails, the
/// deployment fails and is reverted to the stable version, and the service ends with its 3 replicas healthy on
/// it. No scheduler pass ever takes the service below 2 healthy instances.
#[test]
fn a_service_update_canaries_promotes_completes_and_a_bad_one_is_reverted() {
    let mut f = settled_web_fleet();
    let run = |f: &mut Fleet, passes: usize| {
        for _ in 0..passes {
            let before = healthy(f);
            f.schedule();
            invariant_voluntary_disruption_keeps_the_budget(f, &before, "a scheduler pass");
            f.agents_converge();
            f.clock += 1_500;
        }
    };
    let versions = |f: &Fleet| -> Vec<String> {
        f.state
            .services
            .of_service("web")
            .filter(|i| i.is_assigned())
            .map(|i| i.version.to_hex()[..8].to_owned())
            .collect()
    };
    let v1 = f.state.services.of_service("web").next().unwrap().version;

    release(&mut f, 0, true, false);
    run(&mut f, 10);
    let d = f.state.services.deployment("web").unwrap().clone();
    assert!(d.running() && d.promoted.is_none());
    let new = f.state.services.of_service("web").filter(|i| i.is_assigned() && i.version == d.version).count();
    assert_eq!(new, 1, "one canary, then it waits for promotion: {:?}", versions(&f));
    assert!(operator_deployment(&mut f, 0, true), "good canaries are promoted");
    run(&mut f, 20);
    let d = f.state.services.deployment("web").unwrap().clone();
    assert!(matches!(d.ended, Some((_, DeploymentOutcome::Completed, _))), "{:?}", d.ended);
    assert_eq!(f.state.services.stable.get("web").map(|(v, _)| *v), Some(d.version));
    assert!(f.state.services.of_service("web").all(|i| i.version == d.version), "{:?}", versions(&f));
    let v2 = d.version;
    assert_ne!(v1, v2);

    release(&mut f, 0, false, true);
    run(&mut f, 30);
    let d = f.state.services.deployment("web").unwrap().clone();
    assert!(d.revert && d.version == v2, "the bad release is reverted to the stable version");
    assert!(matches!(d.ended, Some((_, DeploymentOutcome::Completed, _))), "{:?}", d.ended);
    let live: Vec<_> = f.state.services.of_service("web").filter(|i| i.is_live()).collect();
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|i| i.version == v2 && i.status == InstanceStatus::Healthy), "{:?}", versions(&f));
}
