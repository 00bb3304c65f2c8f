//! Property tests of the scheduler over random fleets (nodes in pools and racks, of random sizes) and random
//! services (replicas, pools, racks, maxPerNode, spread, resources, static ports, strategy), driven by random
//! events: scheduler passes, agents starting, failing and stopping instances, agents lost and returning, nodes
//! drained and failed, the clock, and spec changes. After every scheduler pass the named invariants hold.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sendan_core::event::*;
use sendan_core::ids::InstanceId;
use sendan_core::services::InstanceStatus;
use sendan_core::services::planner::{Decision, node_use};
use serde_json::json;

#[path = "support/services.rs"]
mod support;
use support::{Fleet, GIB, TestNode, n};

#[derive(Clone, Debug)]
enum Tick {
    Schedule,
    AgentsConverge,
    Fail(usize),
    Restarting(usize),
    LoseAgent(usize),
    ReturnAgent(usize),
    Drain(usize),
    NodeFailed(usize),
    Clock(i64),
    Scale(usize, u32),
}

fn fleet_nodes() -> impl Strategy<Value = Vec<TestNode>> {
    prop::collection::vec((0usize..2, 0usize..3, 1u32..9, 1u64..17), 1..10).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(k, (pool, rack, cpu, mem))| TestNode {
                name: format!("n{k:02}"),
                pool: Some(["blue", "green"][pool].into()),
                rack: format!("r{rack}"),
                cpu,
                memory_gib: mem,
            })
            .collect()
    })
}

fn services() -> impl Strategy<Value = BTreeMap<String, serde_json::Value>> {
    let one = (
        0u32..7,
        prop::sample::subsequence(vec!["blue", "green"], 1..=2),
        prop::option::of(prop::sample::subsequence(vec!["r0", "r1", "r2"], 1..=3)),
        1u32..3,
        any::<bool>(),
        0u32..4,
        0u64..5,
        prop::option::of(8000u16..8003),
        any::<bool>(),
    )
        .prop_map(|(replicas, pools, racks, max, spread, cpu, mem, port, binpack)| {
            let mut s = json!({
                "package": "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-web-1.0",
                "replicas": replicas,
                "pools": pools,
                "constraints": {"maxPerNode": max, "spreadAcrossRacks": spread, "racks": racks},
                "resources": {"cpu": cpu, "memoryBytes": mem * GIB},
                "placement": if binpack { "binpack" } else { "spread" },
                "reschedule": {"attempts": 2, "delaySeconds": 1, "maxDelaySeconds": 4},
            });
            if let Some(p) = port {
                s["ports"] = json!({"http": {"static": p}});
            }
            s
        });
    prop::collection::vec(one, 1..4)
        .prop_map(|v| v.into_iter().enumerate().map(|(k, s)| (format!("svc{k}"), s)).collect())
}

fn tick(nodes: usize) -> impl Strategy<Value = Tick> {
    prop_oneof![
        8 => Just(Tick::Schedule),
        6 => Just(Tick::AgentsConverge),
        2 => (0usize..64).prop_map(Tick::Fail),
        1 => (0usize..64).prop_map(Tick::Restarting),
        1 => (0..nodes).prop_map(Tick::LoseAgent),
        1 => (0..nodes).prop_map(Tick::ReturnAgent),
        1 => (0..nodes).prop_map(Tick::Drain),
        1 => (0..nodes).prop_map(Tick::NodeFailed),
        2 => prop_oneof![Just(500i64), Just(2_000), Just(10_000)].prop_map(Tick::Clock),
        1 => (0usize..4, 0u32..7).prop_map(|(s, r)| Tick::Scale(s, r)),
    ]
}

fn setup() -> impl Strategy<Value = (Vec<TestNode>, BTreeMap<String, serde_json::Value>, Vec<Tick>)> {
    (fleet_nodes(), services()).prop_flat_map(|(nodes, services)| {
        let k = nodes.len();
        (Just(nodes), Just(services), prop::collection::vec(tick(k), 0..60))
    })
}

/// Every live instance: on an `active` or draining node (or lost, waiting for its replacement), within its
/// service's pools and racks (once the pass stopped misfits), at most `maxPerNode` per node; and every node's
/// instances fit in its CPU and memory.
fn invariant_constraints_hold(f: &Fleet) {
    let live = f.state.live().unwrap();
    let s = &f.state.services;
    for node in &f.nodes {
        let id = n(&node.name);
        let u = node_use(s, &id);
        assert!(u.cpu <= u64::from(node.cpu), "{}: {} CPU reserved of {}", node.name, u.cpu, node.cpu);
        assert!(u.memory <= node.memory_gib * GIB, "{}: memory overcommitted", node.name);
        for (svc, count) in &u.per_service {
            if let Some(decl) = live.spec.services.get(svc) {
                assert!(*count <= decl.constraints.max_per_node, "{svc} has {count} on {}", node.name);
            }
        }
        let ports: Vec<u16> = s
            .on_node(&id)
            .filter(|i| i.status != InstanceStatus::Failed)
            .flat_map(|i| i.static_ports.clone())
            .collect();
        let unique: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(ports.len(), unique.len(), "{}: a static port is held twice", node.name);
    }
    for i in s.instances.values().filter(|i| i.is_live()) {
        let Some(decl) = live.spec.services.get(&i.service) else {
            panic!("{} of an undeclared service is live", i.id)
        };
        let node = f.nodes.iter().find(|x| x.name == i.node.as_str()).unwrap();
        assert!(node.pool.as_ref().is_some_and(|p| decl.pools.contains(p)), "{} outside its pools", i.id);
        if let Some(racks) = &decl.constraints.racks {
            assert!(racks.contains(&node.rack), "{} outside its racks", i.id);
        }
    }
}

/// A new placement lands only on a node that was `active`, with a running agent, before the pass.
fn invariant_placed_only_on_schedulable_nodes(
    before: &sendan_core::fleet::FleetState,
    decisions: &[sendan_core::services::planner::ServiceDecision],
) {
    for d in decisions {
        let Some(node) = d.decision.placed_on() else { continue };
        let facts = sendan_core::read::FleetRead::node(before, node).unwrap();
        assert_eq!(facts.state, sendan_core::NodeState::Active, "{} placed on a {} node", d.comment, facts.state);
        assert!(!facts.cordoned, "{} placed on a cordoned node", d.comment);
        assert!(before.services.agent(node).is_some_and(|a| a.running), "{} placed where no agent runs", d.comment);
    }
}

/// Planning again right after a plan was applied (same time, nothing reported since) decides nothing.
fn invariant_stable(f: &Fleet) {
    let again = f.plan();
    assert!(again.decisions.is_empty(), "planning again after applying a plan changes nothing: {:?}", again.decisions);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn scheduling_keeps_every_constraint((nodes, services, ticks) in setup()) {
        let mut f = Fleet::new(nodes.clone(), services.clone());
        for t in ticks {
            match t {
                Tick::Schedule => {
                    let before = f.state.clone();
                    let decisions = f.schedule();
                    invariant_placed_only_on_schedulable_nodes(&before, &decisions);
                    invariant_constraints_hold(&f);
                    invariant_stable(&f);
                }
                Tick::AgentsConverge => f.agents_converge(),
                Tick::Fail(k) | Tick::Restarting(k) => {
                    let live: Vec<InstanceId> = f.state.services.instances.values().filter(|i| i.is_live() && i.status != InstanceStatus::Pending).map(|i| i.id.clone()).collect();
                    if live.is_empty() { continue }
                    let id = live[k % live.len()].clone();
                    let i = f.state.services.instance(&id).unwrap().clone();
                    if !f.state.services.agent(&i.node).is_some_and(|a| a.running) { continue }
                    let restarting = matches!(t, Tick::Restarting(_));
                    f.agent(InstanceExited { instance: id, node: i.node, exit_code: Some(1), signal: None, restarting, reason: "exit 1".into() }).unwrap();
                }
                Tick::LoseAgent(k) => {
                    let node = n(&f.nodes[k].name);
                    if f.state.services.agent(&node).is_some_and(|a| a.running) {
                        f.fold(NodeAgentLost { node, silent_ms: 30_000 }.into());
                    }
                }
                Tick::ReturnAgent(k) => {
                    let node = n(&f.nodes[k].name);
                    if f.state.services.agent(&node).is_some_and(|a| !a.running) {
                        f.fold(NodeAgentReturned { node }.into());
                    }
                }
                Tick::Drain(k) => {
                    let node = n(&f.nodes[k].name);
                    if f.state.node(&node).unwrap().state == sendan_core::NodeState::Active {
                        f.fold(NodeDrainRequested { node }.into());
                    }
                }
                Tick::NodeFailed(k) => {
                    let node = n(&f.nodes[k].name);
                    if f.state.node(&node).unwrap().state != sendan_core::NodeState::Failed {
                        f.fold(NodeFailed { node, reason: "psu".into() }.into());
                    }
                }
                Tick::Clock(ms) => f.clock += ms,
                Tick::Scale(s, replicas) => {
                    let name = format!("svc{}", s % f.services.len());
                    f.services.get_mut(&name).unwrap()["replicas"] = json!(replicas);
                    f.apply_spec();
                }
            }
        }
    }

    /// Spread: with room in every rack, a fresh service's replicas differ by at most one between any two racks
    /// that have eligible nodes.
    #[test]
    fn spread_is_within_one_across_racks_when_capacity_allows(racks in 1usize..4, per_rack in 1usize..4, replicas in 0u32..10) {
        let nodes: Vec<TestNode> = (0..racks * per_rack)
            .map(|k| TestNode { name: format!("n{k:02}"), pool: Some("blue".into()), rack: format!("r{}", k % racks), cpu: 64, memory_gib: 64 })
            .collect();
        let max = replicas.div_ceil(racks as u32).max(1);
        let svc = json!({"package": "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-web-1.0", "replicas": replicas, "pools": ["blue"],
                         "constraints": {"maxPerNode": max, "spreadAcrossRacks": true}});
        let mut f = Fleet::new(nodes, BTreeMap::from([("web".to_owned(), svc)]));
        f.schedule();
        let mut per = BTreeMap::new();
        for r in 0..racks { per.insert(format!("r{r}"), 0u32); }
        for i in f.state.services.of_service("web") {
            let rack = f.nodes.iter().find(|x| x.name == i.node.as_str()).unwrap().rack.clone();
            *per.get_mut(&rack).unwrap() += 1;
        }
        let (lo, hi) = (per.values().min().copied().unwrap(), per.values().max().copied().unwrap());
        prop_assert!(hi - lo <= 1, "{per:?}");
        prop_assert_eq!(per.values().sum::<u32>(), replicas);
    }

    /// A node's loss moves only that node's instances: from a settled fleet, losing one node's agent makes the
    /// scheduler replace exactly the live instances on it and nothing else.
    #[test]
    fn a_node_loss_moves_only_that_nodes_instances((nodes, services, _ticks) in setup(), lose in 0usize..10) {
        let mut f = Fleet::new(nodes, services);
        f.schedule();
        f.agents_converge();
        prop_assume!(f.plan().decisions.is_empty());
        let node = n(&f.nodes[lose % f.nodes.len()].name);
        let on: BTreeSet<InstanceId> = f.state.services.on_node(&node).filter(|i| i.is_live()).map(|i| i.id.clone()).collect();
        f.fold(NodeAgentLost { node: node.clone(), silent_ms: 30_000 }.into());
        for d in f.schedule() {
            match &d.decision {
                Decision::Reschedule(r) => prop_assert!(r.lost && on.contains(&r.replaces), "{}", d.comment),
                other => prop_assert!(false, "only the lost node's instances move: {other:?}"),
            }
        }
    }
}
