//! A fleet for the scheduler's tests: nodes in pools and racks with given CPU threads and memory, their agents
//! started, and a spec declaring services — set up by folding the events directly (the environment, not what is
//! tested) — and a scheduler that runs the planner and proposes its decisions through `log::append`, so `check`
//! judges each one.

#![allow(dead_code)]

use std::collections::BTreeMap;

use sendan_core::event::*;
use sendan_core::facts::{Cpu, HardwareFacts};
use sendan_core::fleet::{self, FleetState};
use sendan_core::ids::{Actor, EventId, Hash, InstanceId, MachineId, NodeId, Timestamp};
use sendan_core::services::planner::{self, Plan};
use sendan_core::{Rejection, log, record};
use serde_json::{Value, json};

pub const GIB: u64 = 1 << 30;

/// A node of the test fleet.
#[derive(Clone, Debug)]
pub struct TestNode {
    pub name: String,
    pub pool: Option<String>,
    pub rack: String,
    pub cpu: u32,
    pub memory_gib: u64,
}

pub fn node(name: &str, pool: &str, rack: &str, cpu: u32, memory_gib: u64) -> TestNode {
    TestNode { name: name.into(), pool: Some(pool.into()), rack: rack.into(), cpu, memory_gib }
}

pub fn id(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

pub fn n(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// A service declaration in its spec (JSON) form; `extra` is merged over the defaults.
pub fn service(pools: &[&str], replicas: u32, extra: Value) -> Value {
    let mut s = json!({
        "package": "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-web-1.0",
        "command": ["bin/web"],
        "replicas": replicas,
        "pools": pools,
    });
    merge(&mut s, extra);
    s
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// The fixture spec with these nodes, their racks and pools, and these services.
pub fn spec_document(nodes: &[TestNode], services: &BTreeMap<String, Value>) -> String {
    let mut doc: Value = serde_json::from_str(include_str!("../../src/spec/fixture.json")).unwrap();
    let template = doc["nodes"]["worker-01"].clone();
    let pool_template = doc["pools"]["workers"].clone();
    let rack_template = doc["racks"]["rack1"].clone();
    let mut decl = serde_json::Map::new();
    let mut racks = serde_json::Map::new();
    let mut pools = serde_json::Map::new();
    for node in nodes {
        let mut d = template.clone();
        d["pool"] = node.pool.clone().map_or(Value::Null, Value::String);
        d["rack"] = Value::String(node.rack.clone());
        decl.insert(node.name.clone(), d);
        racks.insert(node.rack.clone(), rack_template.clone());
        if let Some(p) = &node.pool {
            pools.insert(p.clone(), pool_template.clone());
        }
    }
    doc["nodes"] = Value::Object(decl);
    doc["racks"] = Value::Object(racks);
    doc["pools"] = Value::Object(pools);
    doc["services"] = serde_json::to_value(services).unwrap();
    // Parse through the types, so every default is present, and write the canonical form.
    sendan_core::spec::ClusterSpec::from_json(&doc.to_string()).unwrap().canonical_json()
}

pub struct Fleet {
    pub state: FleetState,
    pub events: Vec<Event>,
    pub clock: i64,
    next_id: u128,
    pub nodes: Vec<TestNode>,
    pub services: BTreeMap<String, Value>,
    /// Packages whose instances exit at once when their agent starts them (a bad release).
    pub bad: std::collections::BTreeSet<String>,
}

impl Fleet {
    /// Nodes bound, installed and `active`, each with its agent started, and the spec live.
    pub fn new(nodes: Vec<TestNode>, services: BTreeMap<String, Value>) -> Fleet {
        let mut f = Fleet {
            state: FleetState::default(),
            events: Vec::new(),
            clock: 1_000_000,
            next_id: 0,
            nodes,
            services,
            bad: Default::default(),
        };
        for (k, node) in f.nodes.clone().iter().enumerate() {
            let machine = MachineId::new(format!("m-{k}")).unwrap();
            let facts = HardwareFacts {
                cpu: Cpu { threads: node.cpu, ..Cpu::default() },
                memory_bytes: node.memory_gib * GIB,
                ..HardwareFacts::default()
            };
            let id = n(&node.name);
            f.fold(MachineDiscovered { machine: machine.clone(), facts }.into());
            f.fold(
                NodeCommissioned {
                    node: id.clone(),
                    machine,
                    class: None,
                    pool: node.pool.clone(),
                    profile: None,
                    rule: None,
                }
                .into(),
            );
            f.fold(NodeInstallRequested { node: id.clone() }.into());
            f.fold(NodeInstallStarted { node: id.clone() }.into());
            f.fold(NodeActivated { node: id.clone() }.into());
            f.fold(NodeAgentStarted { node: id, address: format!("10.0.0.{}", k + 1) }.into());
        }
        f.apply_spec();
        f
    }

    /// Fold `payload` without `check`: setting the scene.
    pub fn fold(&mut self, payload: Payload) -> u64 {
        self.next_id += 1;
        self.clock += 1;
        let seq = self.state.seq + 1;
        let p = Proposal {
            id: EventId::from_u128(self.next_id),
            time: Timestamp(self.clock),
            actor: Actor::Admin,
            comment: None,
            cause: None,
            payload,
        };
        let e = record::seal(&p, seq, Timestamp(self.clock.max(self.state.last_time.0)), self.state.head);
        fleet::evolve(&mut self.state, &e);
        self.events.push(e);
        seq
    }

    /// Make the current `services` (and nodes) the live spec.
    pub fn apply_spec(&mut self) -> u64 {
        let document = spec_document(&self.nodes, &self.services);
        let digest = Hash::of(document.as_bytes());
        self.fold(SpecApplied { digest, document }.into())
    }

    /// Make the current `services` (and nodes) the live spec, with `edit` applied to its document.
    #[allow(dead_code)]
    pub fn apply_spec_with(&mut self, edit: impl Fn(&mut Value)) -> u64 {
        let mut doc: Value = serde_json::from_str(&spec_document(&self.nodes, &self.services)).unwrap();
        edit(&mut doc);
        let document = sendan_core::spec::ClusterSpec::from_json(&doc.to_string()).unwrap().canonical_json();
        let digest = Hash::of(document.as_bytes());
        self.fold(SpecApplied { digest, document }.into())
    }

    /// Propose `payload` as `actor` through `check`.
    pub fn submit(&mut self, actor: Actor, payload: Payload, cause: Option<u64>) -> Result<Event, Rejection> {
        self.next_id += 1;
        self.clock += 1;
        let p = Proposal {
            id: EventId::from_u128(self.next_id),
            time: Timestamp(self.clock),
            actor,
            comment: None,
            cause,
            payload,
        };
        let mut e = log::append(&mut self.state, &[p]).map_err(|b| b.rejection)?;
        let e = e.remove(0);
        self.events.push(e.clone());
        Ok(e)
    }

    /// A node's agent reports `payload` about its own node.
    pub fn agent(&mut self, payload: impl Into<Payload>) -> Result<Event, Rejection> {
        let payload = payload.into();
        let node = payload.node().cloned().unwrap();
        self.submit(Actor::Node(node), payload, None)
    }

    pub fn now(&self) -> Timestamp {
        Timestamp(self.clock.max(self.state.last_time.0))
    }

    pub fn plan(&self) -> Plan {
        planner::plan(&self.state.services, &self.state, self.now())
    }

    /// Run the scheduler once: propose every decision as `system:scheduler`; each must be accepted. The
    /// decisions made.
    pub fn schedule(&mut self) -> Vec<planner::ServiceDecision> {
        let plan = self.plan();
        for d in &plan.deployments {
            let payload: Payload = d.step.clone().into();
            let kind = payload.kind();
            if let Err(r) = self.submit(Actor::System("scheduler".into()), payload, Some(d.cause)) {
                panic!("invariant_planner_agrees_with_check: the planner's {kind} ({}) was refused: {r}", d.comment);
            }
        }
        for d in &plan.decisions {
            let payload: Payload = d.decision.clone().into();
            let kind = payload.kind();
            if let Err(r) = self.submit(Actor::System("scheduler".into()), payload, Some(d.cause)) {
                panic!("invariant_planner_agrees_with_check: the planner's {kind} ({}) was refused: {r}", d.comment);
            }
        }
        for d in &plan.drained {
            if let Err(r) = self.submit(Actor::System("scheduler".into()), d.event.clone().into(), Some(d.cause)) {
                panic!(
                    "invariant_planner_agrees_with_check: the planner's NodeDrained ({}) was refused: {r}",
                    d.comment
                );
            }
        }
        plan.decisions
    }

    /// Every agent starts what is pending on its node and reports it healthy (or, for a bad package, exited for
    /// good); stops what it was asked to.
    pub fn agents_converge(&mut self) {
        let ids: Vec<InstanceId> = self.state.services.instances.keys().cloned().collect();
        for i in ids {
            let Some(inst) = self.state.services.instance(&i).cloned() else { continue };
            let running = self.state.services.agent(&inst.node).is_some_and(|a| a.running);
            if !running {
                continue;
            }
            if !inst.is_assigned() {
                self.agent(InstanceStopped { instance: i.clone(), node: inst.node.clone() }).unwrap();
                continue;
            }
            if inst.status == sendan_core::services::InstanceStatus::Pending {
                let task = self.state.services.task(&inst.version).cloned().unwrap();
                let ports = task
                    .ports
                    .iter()
                    .enumerate()
                    .map(|(k, (name, p))| (name.clone(), p.static_port.unwrap_or(20_000 + k as u16)))
                    .collect();
                let address = "10.0.0.1".to_owned();
                self.agent(InstanceStarted {
                    instance: i.clone(),
                    node: inst.node.clone(),
                    address,
                    ports,
                    restarts: 0,
                })
                .unwrap();
                if task.package.as_ref().is_some_and(|p| self.bad.contains(p)) {
                    let reason = "exit 1: a bad release".to_owned();
                    let exited = InstanceExited {
                        instance: i.clone(),
                        node: inst.node.clone(),
                        exit_code: Some(1),
                        signal: None,
                        restarting: false,
                        reason,
                    };
                    self.agent(exited).unwrap();
                    continue;
                }
                self.agent(InstanceHealthy { instance: i.clone(), node: inst.node.clone() }).unwrap();
            }
        }
    }
}
