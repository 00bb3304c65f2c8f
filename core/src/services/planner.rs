//! The scheduler: a pure planner over the live spec's services, the fleet and the instances the log holds.
//! [`plan`] returns what the scheduler should propose now — replacements of lost and failed instances (by the
//! reschedule policy), stops of instances a service no longer wants or may no longer run where they are, and
//! placements of missing replicas — and, per service, what could not be done and why. [`explain_placement`] is the same
//! planning for one service with every node's verdict: each filter that excluded it (all of them, not the first),
//! and for nodes that fit but got nothing, their rank.
//!
//! A node fits an instance when it passes every filter ([`filters`]): the live spec declares it in one of the
//! service's pools and allowed racks, it is `active`, its `sendan-agent node` runs, the service has fewer than
//! `maxPerNode` instances on it, its reported CPU threads and memory minus what its instances reserve cover the
//! instance's, and no instance there holds one of the instance's static ports. `check` applies the same
//! [`filters`] to every placement, so a stale leader cannot overcommit a node.
//!
//! Among the nodes that fit, the planner picks by rank: with `spreadAcrossRacks`, the rack with the fewest of the
//! service's instances first; then the node with the fewest of them; then not the node a failed instance is
//! replaced from; then `binpack` (the node left fullest) or `spread` (the emptiest); then the node id. Everything
//! is ordered, so every replica computes the same plan from the same log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::events::{
    DeploymentEnded, DeploymentOutcome, DeploymentStarted, InstanceMigrated, InstancePlaced, InstanceRescheduled,
    InstanceStopRequested, InstanceUpdated,
};
use super::{Deployment, Instance, InstanceStatus, ServicesState, Task, deploy};
use crate::ids::{EventId, Hash, InstanceId, NodeId, Timestamp};
use crate::lifecycle::NodeState;
use crate::nodes::events::NodeDrained;
use crate::read::{FleetRead, NodeFacts};
use crate::spec::{ClusterSpec, PlacementStrategy, Service};

/// Why a node cannot take an instance of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "filter", rename_all = "snake_case")]
pub enum Filter {
    /// The live spec does not declare the node.
    NotDeclared,
    /// No machine is bound to the declared node yet.
    NotBound,
    /// The node is in none of the service's pools.
    Pool { pool: Option<String>, wants: Vec<String> },
    /// The node's rack is not one the service allows.
    Rack { rack: String, wants: Vec<String> },
    /// The node is not `active`.
    State { state: crate::lifecycle::NodeState },
    /// The node is cordoned (`sendan node cordon`).
    Cordoned,
    /// No `sendan-agent node` has started on the node.
    AgentNotStarted,
    /// The node's agent went silent past its deadline.
    AgentLost,
    /// The service already has `maxPerNode` instances there.
    MaxPerNode { count: u32, max: u32 },
    /// Not enough CPU threads free.
    Cpu { need: u32, free: u32, total: u32 },
    /// Not enough memory free.
    Memory { need: u64, free: u64, total: u64 },
    /// A static port of the service is taken there.
    Port { port: u16, taken_by: InstanceId },
}

impl Filter {
    /// A stable name for counting nodes by reason.
    pub fn code(&self) -> &'static str {
        match self {
            Filter::NotDeclared => "not_declared",
            Filter::NotBound => "not_bound",
            Filter::Pool { .. } => "pool",
            Filter::Rack { .. } => "rack",
            Filter::State { .. } => "state",
            Filter::Cordoned => "cordoned",
            Filter::AgentNotStarted => "agent_not_started",
            Filter::AgentLost => "agent_lost",
            Filter::MaxPerNode { .. } => "max_per_node",
            Filter::Cpu { .. } => "cpu",
            Filter::Memory { .. } => "memory",
            Filter::Port { .. } => "port",
        }
    }

    /// It excludes the node whatever else runs there (the node's declaration or state), rather than for what
    /// is placed on it now.
    fn structural(&self) -> bool {
        matches!(self, Filter::NotDeclared | Filter::Pool { .. } | Filter::Rack { .. })
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gib = |b: u64| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64);
        match self {
            Filter::NotDeclared => f.write_str("the live spec does not declare it"),
            Filter::NotBound => f.write_str("no machine is bound to it yet"),
            Filter::Pool { pool, wants } => write!(
                f,
                "it is in {}, not in {}",
                pool.as_deref().map_or("no pool".to_owned(), |p| format!("pool {p}")),
                wants.join(" or ")
            ),
            Filter::Rack { rack, wants } => write!(f, "its rack {rack} is not one of {}", wants.join(", ")),
            Filter::State { state } => write!(f, "it is `{state}`, not `active`"),
            Filter::Cordoned => f.write_str("it is cordoned"),
            Filter::AgentNotStarted => f.write_str("no sendan-agent node has started on it"),
            Filter::AgentLost => f.write_str("its sendan-agent node is lost (no heartbeat within the deadline)"),
            Filter::MaxPerNode { count, max } => write!(f, "it already runs {count} of at most {max} per node"),
            Filter::Cpu { need, free, total } => {
                write!(f, "CPU: {need} thread(s) needed, {free} of {total} free")
            }
            Filter::Memory { need, free, total } => {
                write!(f, "memory: {} needed, {} of {} free", gib(*need), gib(*free), gib(*total))
            }
            Filter::Port { port, taken_by } => write!(f, "static port {port} is taken by {taken_by}"),
        }
    }
}

/// What the instances on one node reserve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeUse {
    pub cpu: u64,
    pub memory: u64,
    pub ports: BTreeMap<u16, InstanceId>,
    /// Live instances per service.
    pub per_service: BTreeMap<String, u32>,
}

impl NodeUse {
    fn add(&mut self, i: &Instance) {
        // A failed instance runs nothing; every other one holds what it reserved until its agent reports it
        // stopped.
        if i.status == InstanceStatus::Failed {
            return;
        }
        self.cpu += u64::from(i.cpu);
        self.memory += i.memory_bytes;
        for p in &i.static_ports {
            self.ports.entry(*p).or_insert_with(|| i.id.clone());
        }
        if i.is_live() {
            *self.per_service.entry(i.service.clone()).or_default() += 1;
        }
    }
}

/// What the instances on `node` reserve now.
pub fn node_use(services: &ServicesState, node: &NodeId) -> NodeUse {
    let mut u = NodeUse::default();
    for i in services.on_node(node) {
        u.add(i);
    }
    u
}

/// Every filter that excludes `node` from running one more instance of service `name` (`task` is what the
/// instance runs), given what is placed there (`usage`). Empty: the node fits.
pub fn filters(
    read: &dyn FleetRead,
    services: &ServicesState,
    spec: &ClusterSpec,
    name: &str,
    service: &Service,
    task: &Task,
    node: &NodeFacts<'_>,
    usage: &NodeUse,
) -> Vec<Filter> {
    let mut out = Vec::new();
    match spec.nodes.get(node.id.as_str()) {
        None => out.push(Filter::NotDeclared),
        Some(decl) => {
            if !decl.pool.as_ref().is_some_and(|p| service.pools.contains(p)) {
                out.push(Filter::Pool { pool: decl.pool.clone(), wants: service.pools.clone() });
            }
            if let Some(racks) = &service.constraints.racks
                && !racks.contains(&decl.rack)
            {
                out.push(Filter::Rack { rack: decl.rack.clone(), wants: racks.clone() });
            }
        }
    }
    if node.state != NodeState::Active {
        out.push(Filter::State { state: node.state });
    }
    if node.cordoned {
        out.push(Filter::Cordoned);
    }
    match services.agent(node.id) {
        None => out.push(Filter::AgentNotStarted),
        Some(a) if !a.running => out.push(Filter::AgentLost),
        Some(_) => {}
    }
    let count = usage.per_service.get(name).copied().unwrap_or(0);
    if count >= service.constraints.max_per_node {
        out.push(Filter::MaxPerNode { count, max: service.constraints.max_per_node });
    }
    let facts = read.machine(node.machine).map(|m| m.facts);
    let (cpus, memory) = facts.map_or((0, 0), |f| (f.cpu.threads, f.memory_bytes));
    let need = &task.resources;
    let free_cpu = u64::from(cpus).saturating_sub(usage.cpu);
    if u64::from(need.cpu) > free_cpu {
        out.push(Filter::Cpu { need: need.cpu, free: free_cpu as u32, total: cpus });
    }
    let free_memory = memory.saturating_sub(usage.memory);
    if need.memory_bytes > free_memory {
        out.push(Filter::Memory { need: need.memory_bytes, free: free_memory, total: memory });
    }
    for port in task.static_ports() {
        if let Some(by) = usage.ports.get(&port) {
            out.push(Filter::Port { port, taken_by: by.clone() });
        }
    }
    out
}

/// Whether an instance is lost: its node left `active` (and is not draining), is gone, or its agent is lost.
pub fn lost(read: &dyn FleetRead, services: &ServicesState, i: &Instance) -> Option<(String, u64)> {
    match read.node(&i.node) {
        None => return Some((format!("node {} is gone", i.node), i.since)),
        Some(n) if !matches!(n.state, NodeState::Active | NodeState::Draining) => {
            return Some((format!("node {} is `{}`", i.node, n.state), n.since));
        }
        Some(_) => {}
    }
    match services.agent(&i.node) {
        Some(a) if !a.running => Some((format!("node {}'s agent is lost", i.node), a.since)),
        _ => None,
    }
}

/// Where a failed instance stands with its service's reschedule policy at `now`: the attempt its replacement
/// would be, and the time from which it may be made — or why it will not be.
pub fn reschedule_due(service: &Service, i: &Instance, now: Timestamp) -> Result<(u32, Timestamp), String> {
    let policy = &service.reschedule;
    let window = i64::from(policy.interval_seconds) * 1000;
    let earlier = i.reschedules.iter().filter(|t| t.0 > now.0 - window).count() as u32;
    if !policy.unlimited && earlier >= policy.attempts {
        return Err(format!(
            "its reschedule attempts are used up: {earlier} of {} within {} s",
            policy.attempts, policy.interval_seconds
        ));
    }
    Ok((earlier + 1, Timestamp(i.since_at.0.saturating_add(policy.delay_ms(earlier)))))
}

/// A decision of the scheduler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Place(InstancePlaced),
    Reschedule(InstanceRescheduled),
    Migrate(InstanceMigrated),
    Update(InstanceUpdated),
    Stop(InstanceStopRequested),
}

/// A step of a service's deployment the scheduler takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeploymentMove {
    Start(DeploymentStarted),
    End(DeploymentEnded),
}

/// A deployment step with its id (derived from the service, the version and the seq it was decided on), that seq
/// and a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentDecision {
    pub id: EventId,
    pub step: DeploymentMove,
    pub cause: u64,
    pub comment: String,
}

/// A decision with its id (derived from the instance it concerns, so deciding again on another pass or another
/// leader is answered with the original seq), the seq of the event it was decided on, and a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDecision {
    pub id: EventId,
    pub decision: Decision,
    pub cause: u64,
    pub comment: String,
}

/// What the planner could not do for a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Shortfall {
    /// Replicas that fit on no node now.
    pub unplaced: u32,
    /// Why, by filter: how many nodes each filter excluded (a node may count under several).
    pub filtered: BTreeMap<String, u32>,
    /// Failed or lost instances waiting for their replacement, and why they wait.
    pub waiting: Vec<(InstanceId, String)>,
}

/// A draining node the scheduler records as drained: its agent reported every instance stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainedDecision {
    pub id: EventId,
    pub event: NodeDrained,
    /// The last event about the node (its last instance's stop, typically).
    pub cause: u64,
    pub comment: String,
}

/// Everything the scheduler should propose now, and what it could not do, per service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub decisions: Vec<ServiceDecision>,
    pub shortfalls: BTreeMap<String, Shortfall>,
    pub drained: Vec<DrainedDecision>,
    /// Deployment steps: proposed before the decisions, which were planned as the deployments stand now.
    pub deployments: Vec<DeploymentDecision>,
}

/// A node's verdict for one service in an [`explain_placement`]ed plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeVerdict {
    pub node: NodeId,
    /// Every filter that excluded it, before this plan placed anything.
    pub filters: Vec<Filter>,
    /// Instances of the service it runs now (live) and gets from this plan.
    pub running: u32,
    pub placed: u32,
    /// For a node that fit: its rank among those that fit, best first (1-based), before this plan placed
    /// anything.
    pub rank: Option<u32>,
}

/// One service's plan, explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementExplanation {
    pub service: String,
    pub replicas: u32,
    pub live: u32,
    pub decisions: Vec<ServiceDecision>,
    pub shortfall: Shortfall,
    /// Every node the fleet knows, and the pools' declared nodes no machine is bound to.
    pub nodes: Vec<NodeVerdict>,
}

/// The rank of a node that fits, best first (smaller sorts first).
type Rank = (u32, u32, i64, NodeId);

struct Planner<'a> {
    read: &'a dyn FleetRead,
    services: &'a ServicesState,
    spec: &'a ClusterSpec,
    spec_seq: u64,
    now: Timestamp,
    usage: BTreeMap<NodeId, NodeUse>,
    next: BTreeMap<String, u64>,
    out: Vec<ServiceDecision>,
    /// The instances this pass asks to stop.
    stopping: BTreeSet<InstanceId>,
    deployments: Vec<DeploymentDecision>,
}

static NO_USE: NodeUse = NodeUse { cpu: 0, memory: 0, ports: BTreeMap::new(), per_service: BTreeMap::new() };

impl<'a> Planner<'a> {
    fn new(
        read: &'a dyn FleetRead,
        services: &'a ServicesState,
        spec: &'a ClusterSpec,
        spec_seq: u64,
        now: Timestamp,
    ) -> Self {
        let usage = services.by_node.keys().map(|n| (n.clone(), node_use(services, n))).collect();
        Planner {
            read,
            services,
            spec,
            spec_seq,
            now,
            usage,
            next: BTreeMap::new(),
            out: Vec::new(),
            stopping: BTreeSet::new(),
            deployments: Vec::new(),
        }
    }

    fn usage_of(&self, node: &NodeId) -> &NodeUse {
        self.usage.get(node).unwrap_or(&NO_USE)
    }

    fn usage(&mut self, node: &NodeId) -> &mut NodeUse {
        self.usage.entry(node.clone()).or_default()
    }

    fn next_id(&mut self, service: &str) -> Option<InstanceId> {
        let n = self
            .next
            .entry(service.to_owned())
            .or_insert_with(|| self.services.next.get(service).copied().unwrap_or(1));
        let id = InstanceId::new(format!("{service}.{n}")).ok()?;
        *n += 1;
        Some(id)
    }

    fn rank(&self, name: &str, service: &Service, task: &Task, node: &NodeFacts<'_>, avoid: Option<&NodeId>) -> Rank {
        let machine = self.read.machine(node.machine).map(|m| (m.facts.cpu.threads, m.facts.memory_bytes));
        let (cpus, memory) = machine.unwrap_or((0, 0));
        let u = self.usage_of(node.id);
        let same = u.per_service.get(name).copied().unwrap_or(0);
        let ratio =
            |used: u64, total: u64| if total == 0 { 0 } else { (used.saturating_mul(1_000_000) / total) as i64 };
        let after = ratio(u.cpu + u64::from(task.resources.cpu), u64::from(cpus))
            + ratio(u.memory + task.resources.memory_bytes, memory);
        let fill = match service.placement {
            PlacementStrategy::Binpack => -after,
            PlacementStrategy::Spread => after,
        };
        (same, u32::from(avoid == Some(node.id)), fill, node.id.clone())
    }

    fn rack_of(&self, node: &NodeId) -> String {
        self.spec.nodes.get(node.as_str()).map(|d| d.rack.clone()).unwrap_or_default()
    }

    /// The nodes that fit one more instance now, by rack, each rack's nodes in rank order.
    fn candidates(
        &self,
        name: &str,
        service: &Service,
        task: &Task,
        avoid: Option<&NodeId>,
    ) -> BTreeMap<String, BTreeSet<Rank>> {
        let read = self.read;
        let mut out: BTreeMap<String, BTreeSet<Rank>> = BTreeMap::new();
        for node in self.spec.eligible_nodes(service) {
            let Ok(id) = NodeId::new(node) else { continue };
            let Some(facts) = read.node(&id) else { continue };
            if filters(read, self.services, self.spec, name, service, task, &facts, self.usage_of(&id)).is_empty() {
                let rank = self.rank(name, service, task, &facts, avoid);
                out.entry(self.rack_of(&id)).or_default().insert(rank);
            }
        }
        out
    }

    /// Live instances of the service per rack.
    fn rack_counts(&self, name: &str) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for i in self.services.of_service(name).filter(|i| i.is_live()) {
            *out.entry(self.rack_of(&i.node)).or_insert(0) += 1;
        }
        out
    }

    /// Choose nodes for `count` more instances, best first, each with the id it gets, reserving each on its node
    /// as it goes. Fewer when fewer fit.
    fn choose(
        &mut self,
        name: &str,
        service: &Service,
        task: &Task,
        count: u32,
        avoid: Option<&NodeId>,
    ) -> Vec<(InstanceId, NodeId)> {
        if count == 0 {
            return Vec::new();
        }
        let mut racks = self.candidates(name, service, task, avoid);
        let mut counts = self.rack_counts(name);
        let spread = service.constraints.spread_across_racks;
        let mut chosen = Vec::new();
        while (chosen.len() as u32) < count {
            let best = racks
                .iter()
                .filter_map(|(rack, ranks)| ranks.first().map(|r| (rack, r)))
                .min_by(|(ra, a), (rb, b)| {
                    let ca = if spread { counts.get(*ra).copied().unwrap_or(0) } else { 0 };
                    let cb = if spread { counts.get(*rb).copied().unwrap_or(0) } else { 0 };
                    (ca, *a).cmp(&(cb, *b))
                })
                .map(|(rack, r)| (rack.clone(), r.clone()));
            let Some((rack, rank)) = best else { break };
            let Some(id) = self.next_id(name) else { break };
            let node = rank.3.clone();
            if let Some(set) = racks.get_mut(&rack) {
                set.remove(&rank);
            }
            let u = self.usage(&node);
            u.cpu += u64::from(task.resources.cpu);
            u.memory += task.resources.memory_bytes;
            *u.per_service.entry(name.to_owned()).or_default() += 1;
            for p in task.static_ports() {
                u.ports.entry(p).or_insert_with(|| id.clone());
            }
            *counts.entry(rack.clone()).or_insert(0) += 1;
            chosen.push((id, node.clone()));
            let read = self.read;
            if let Some(facts) = read.node(&node) {
                if filters(read, self.services, self.spec, name, service, task, &facts, self.usage_of(&node)).is_empty()
                {
                    let again = self.rank(name, service, task, &facts, avoid);
                    racks.entry(rack).or_default().insert(again);
                }
            }
        }
        chosen
    }
}

/// The number in an instance id (`web.7` → 7).
fn number(id: &InstanceId) -> u64 {
    id.as_str().rsplit('.').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

impl Planner<'_> {
    fn push(&mut self, decision: Decision, cause: u64, comment: String) {
        let id = match &decision {
            Decision::Place(p) => EventId::derive(&[b"service-place", p.instance.as_str().as_bytes()]),
            Decision::Reschedule(r) => EventId::derive(&[b"service-reschedule", r.replaces.as_str().as_bytes()]),
            Decision::Migrate(m) => EventId::derive(&[b"service-migrate", m.replaces.as_str().as_bytes()]),
            Decision::Update(u) => EventId::derive(&[b"service-update", u.replaces.as_str().as_bytes()]),
            Decision::Stop(s) => EventId::derive(&[b"service-stop", s.instance.as_str().as_bytes()]),
        };
        self.out.push(ServiceDecision { id, decision, cause, comment });
    }

    /// Ask `i` to stop (once per pass, whatever else also wants it stopped); whether this asked.
    fn stop(&mut self, i: &Instance, reason: String, cause: u64) -> bool {
        if !self.stopping.insert(i.id.clone()) {
            return false;
        }
        let comment = format!("stop {} on {}: {reason}", i.id, i.node);
        self.push(
            Decision::Stop(InstanceStopRequested { instance: i.id.clone(), node: i.node.clone(), reason }),
            cause,
            comment,
        );
        true
    }

    /// The seq that made placing on `node` possible now: the spec, or the node's agent starting or returning.
    fn place_cause(&self, node: &NodeId) -> u64 {
        self.spec_seq.max(self.services.agent(node).map_or(0, |a| a.since))
    }

    /// Plan service `name`: stops, replacements, placements. What could not be done.
    fn service(&mut self, name: &str, service: &Service) -> Shortfall {
        let live_task = Task::of(service);
        let (version, task) = self.services.target(name, &live_task);
        let mut short = Shortfall::default();
        let services = self.services;
        // A deployment step this pass (start, end) changes what the next pass may do (the version it places, the
        // hand-overs it makes): the service waits for it.
        if self.deployment(name, service, &live_task) {
            return short;
        }
        let update = services.deployment(name).filter(|d| d.running() && d.version == version);
        let read = self.read;
        let mut live: Vec<&Instance> = services.of_service(name).filter(|i| i.is_live()).collect();

        // Instances on nodes the service may no longer use (the spec changed): stopped, and placed anew below.
        let mut kept = Vec::new();
        for i in live {
            let misfit = match read.node(&i.node) {
                Some(facts) => {
                    let all = filters(read, services, self.spec, name, service, &task, &facts, &NO_USE);
                    all.into_iter().filter(Filter::structural).map(|f| f.to_string()).collect::<Vec<_>>()
                }
                None => Vec::new(),
            };
            if misfit.is_empty() {
                kept.push(i);
            } else {
                self.stop(i, format!("node {} may no longer run it: {}", i.node, misfit.join("; ")), self.spec_seq);
            }
        }
        live = kept;

        // Surplus replicas: the lost first, then those on draining nodes, then those not healthy, then the newest.
        let lost_of = |i: &Instance| lost(read, services, i);
        let draining = |i: &Instance| read.node(&i.node).is_some_and(|n| n.drain.is_some());
        if live.len() as u32 > service.replicas {
            live.sort_by_key(|i| {
                let healthy = i.status == InstanceStatus::Healthy;
                (lost_of(i).is_none(), !draining(i), healthy, std::cmp::Reverse(number(&i.id)))
            });
            let surplus = live.len() - service.replicas as usize;
            for i in live.drain(..surplus) {
                self.stop(i, format!("service {name} wants {} replicas", service.replicas), self.spec_seq);
            }
        }

        // Lost instances are replaced at once; no reschedule attempt is counted for them.
        for i in &live {
            let Some((why, cause)) = lost_of(i) else { continue };
            match self.choose(name, service, &task, 1, None).pop() {
                Some((instance, node)) => {
                    let comment = format!("replace {} on {} with {instance} on {node}: {why}", i.id, i.node);
                    let r = InstanceRescheduled {
                        service: name.to_owned(),
                        instance,
                        node,
                        task_digest: version,
                        replaces: i.id.clone(),
                        lost: true,
                        attempt: 0,
                    };
                    self.push(Decision::Reschedule(r), cause, comment);
                }
                None => short.waiting.push((i.id.clone(), format!("{why}; no node fits a replacement now"))),
            }
        }

        // Failed instances keep their place: replaced by the reschedule policy, or waiting.
        let mut slots = live.len() as u32;
        let failed: Vec<&Instance> =
            services.of_service(name).filter(|i| i.status == InstanceStatus::Failed && i.is_assigned()).collect();
        for i in failed {
            if slots >= service.replicas {
                let reason = format!("it failed, and service {name} has its {} replicas", service.replicas);
                self.stop(i, reason, i.since);
                continue;
            }
            slots += 1;
            match reschedule_due(service, i, self.now) {
                Err(why) => short.waiting.push((i.id.clone(), why)),
                Ok((attempt, at)) if at > self.now => {
                    let why = format!("attempt {attempt} is due at {at} (reschedule backoff)");
                    short.waiting.push((i.id.clone(), why));
                }
                Ok((attempt, _)) => match self.choose(name, service, &task, 1, Some(&i.node)).pop() {
                    Some((instance, node)) => {
                        let comment = format!(
                            "reschedule failed {} from {} to {node} as {instance} (attempt {attempt})",
                            i.id, i.node
                        );
                        let r = InstanceRescheduled {
                            service: name.to_owned(),
                            instance,
                            node,
                            task_digest: version,
                            replaces: i.id.clone(),
                            lost: false,
                            attempt,
                        };
                        self.push(Decision::Reschedule(r), i.since, comment);
                    }
                    None => short.waiting.push((i.id.clone(), "it failed; no node fits a replacement now".into())),
                },
            }
        }

        // A stop for the drain frees the place its instance held: it is placed anew in this same pass.
        slots -= self.handovers(name, service, &task, &live, update, &mut short);

        // Missing replicas.
        let missing = service.replicas.saturating_sub(slots);
        let placed = self.choose(name, service, &task, missing, None);
        for (k, (instance, node)) in placed.iter().enumerate() {
            let comment = format!(
                "place {instance} of {name} on {node} (replica {} of {})",
                slots + k as u32 + 1,
                service.replicas
            );
            let cause = self.place_cause(node);
            let p = InstancePlaced {
                service: name.to_owned(),
                instance: instance.clone(),
                node: node.clone(),
                task_digest: version,
            };
            self.push(Decision::Place(p), cause, comment);
        }
        short.unplaced = missing - placed.len() as u32;
        if short.unplaced > 0 {
            for v in self.verdicts(name, service, &task) {
                for f in &v.filters {
                    *short.filtered.entry(f.code().to_owned()).or_default() += 1;
                }
            }
        }
        short
    }

    /// Hand-overs, for drains and deployments: each live instance on a draining node, and each live instance of
    /// another version than a running deployment's, is handed over to a replacement, at most
    /// `update.maxParallel` at a time (a deployment's canaries first, then it waits for promotion); an old one
    /// stops once its replacement has been healthy for `minHealthySeconds`, and only while that keeps the service
    /// within its budget. Past a drain's deadline, or with `force`, what is left on the node stops without
    /// waiting. A deployment whose new instance fits nowhere beside the old one stops the old one first, within
    /// the budget. The number of replicas' places it freed (live or failed instances it stopped).
    fn handovers(
        &mut self,
        name: &str,
        service: &Service,
        task: &Task,
        live: &[&Instance],
        update: Option<&Deployment>,
        short: &mut Shortfall,
    ) -> u32 {
        let mut freed = 0;
        let (services, read, now) = (self.services, self.read, self.now);
        let drain_of = |node: &NodeId| read.node(node).and_then(|n| n.drain);
        let min_healthy_ms = i64::from(service.update.min_healthy_seconds) * 1000;
        let target = task.version();
        // Failed instances on a draining node run nothing: once no replacement is under way for them this pass,
        // they are stopped so that the drain can complete.
        let replacing: BTreeSet<InstanceId> = self
            .out
            .iter()
            .filter_map(|d| match &d.decision {
                Decision::Reschedule(r) => Some(r.replaces.clone()),
                _ => None,
            })
            .collect();
        for i in services.of_service(name).filter(|i| i.status == InstanceStatus::Failed && i.is_assigned()) {
            let Some(d) = drain_of(&i.node) else { continue };
            if !replacing.contains(&i.id)
                && self.stop(i, format!("it failed, and node {} is draining", i.node), d.seq.max(i.since))
            {
                freed += 1;
            }
        }
        // Forced: whatever is left on a node past its drain's deadline (or drained with `force`) stops now.
        for i in services.of_service(name).filter(|i| i.is_assigned() && i.stop.is_none()) {
            if replacing.contains(&i.id) {
                continue;
            }
            let Some(d) = drain_of(&i.node).filter(|d| d.forcing(now)) else { continue };
            let reason = match d.deadline {
                _ if d.force => {
                    format!("node {} is drained with force: stopped without waiting for a replacement", i.node)
                }
                Some(at) => {
                    format!("node {}'s drain deadline {at} passed: stopped without waiting for a replacement", i.node)
                }
                None => format!("node {} is drained: stopped", i.node),
            };
            if self.stop(i, reason, d.seq) && i.is_live() {
                freed += 1;
            }
        }
        // Stopping a healthy instance is a voluntary disruption too: it waits while it would leave the service
        // below its budget (another of its instances is away: a host rollout's wave, a failure).
        let mut healthy_left = super::budget::healthy_count(services, name);
        let floor = service.min_healthy();
        // A deployment that reverted stops the replacements (of the version it moves away from) of the old
        // instances it was handing over; each old one then ends like any hand-over whose line ended: it stops once
        // that keeps the service within budget, and a replica of the version it goes back to takes its place.
        let mut kept = BTreeSet::new();
        for old in services.of_service(name).filter(|i| i.handover.is_some() && i.stop.is_none()) {
            let Some(next) = services.successor(old) else { continue };
            // (A failed one replaced in this pass is replaced at the version it goes back to.)
            if old.version != target
                || next.version == target
                || drain_of(&old.node).is_some()
                || replacing.contains(&next.id)
            {
                continue;
            }
            let healthy = next.status == InstanceStatus::Healthy;
            if healthy && healthy_left <= floor {
                continue; // the hand-over completes, and the new instance is handed back later
            }
            let cause = services.deployment(name).map_or(next.placed, |d| d.seq);
            let reason = format!("service {name} is going back to version {target}; {} serves until then", old.id);
            if self.stop(next, reason, cause) && healthy {
                healthy_left -= 1;
            }
            kept.insert(old.id.clone());
        }
        // Each still counts against `update.maxParallel` until it stops, as `check` counts it.
        let mut in_flight = kept.len() as u32;
        // Hand-overs in flight: stop the old instance once its successor has served long enough.
        // One still waiting counts against `update.maxParallel`; one stopped in this pass (here, or forced above)
        // no longer does, as `check` sees it after the stop.
        let mut successors = BTreeSet::new();
        for old in services.of_service(name).filter(|i| i.handover.is_some() && i.stop.is_none()) {
            // (One that failed and is replaced in this pass leaves the state with its replacement.)
            if self.stopping.contains(&old.id) || kept.contains(&old.id) || replacing.contains(&old.id) {
                continue;
            }
            let cause = old.placed.max(drain_of(&old.node).map_or(0, |d| d.seq));
            let why = |next: &Instance| match drain_of(&old.node) {
                Some(_) => format!("node {} is draining", old.node),
                None => format!("{} runs version {}", next.id, next.version),
            };
            match services.successor(old).filter(|next| !self.stopping.contains(&next.id)) {
                // Its replacement line ended (stopped): the service places a new replica, and the old instance
                // stops once that leaves the service within budget.
                None if old.status == InstanceStatus::Healthy && healthy_left <= floor => {
                    in_flight += 1;
                    let why = format!(
                        "the line of its replacement ended; stopping it now would leave service {name} with {} healthy, below its budget of {floor}",
                        healthy_left - 1
                    );
                    short.waiting.push((old.id.clone(), why));
                }
                None => {
                    if old.status == InstanceStatus::Healthy {
                        healthy_left -= 1;
                    }
                    let reason = match drain_of(&old.node) {
                        Some(_) => format!("node {} is draining, and the line of its replacement ended", old.node),
                        None => "the line of its replacement ended; a new replica takes its place".to_owned(),
                    };
                    self.stop(old, reason, cause);
                }
                Some(next)
                    if next.status == InstanceStatus::Healthy
                        && now.0 - next.since_at.0 >= min_healthy_ms
                        && old.status == InstanceStatus::Healthy
                        && healthy_left <= floor =>
                {
                    in_flight += 1;
                    successors.insert(next.id.clone());
                    short.waiting.push((
                        old.id.clone(),
                        format!(
                            "{} took over, but stopping {} now would leave service {name} with {} healthy, below its budget of {floor}",
                            next.id,
                            old.id,
                            healthy_left - 1
                        ),
                    ));
                }
                Some(next) if next.status == InstanceStatus::Healthy && now.0 - next.since_at.0 >= min_healthy_ms => {
                    if old.status == InstanceStatus::Healthy {
                        healthy_left -= 1;
                    }
                    successors.insert(next.id.clone());
                    let reason = format!(
                        "{}, and {} on {} has been healthy for {} s",
                        why(next),
                        next.id,
                        next.node,
                        (now.0 - next.since_at.0) / 1000
                    );
                    self.stop(old, reason, next.since);
                }
                Some(next) => {
                    in_flight += 1;
                    successors.insert(next.id.clone());
                    short.waiting.push((
                        old.id.clone(),
                        format!(
                            "handing over to {} on {} ({}; it must be healthy for {} s)",
                            next.id,
                            next.node,
                            next.status.name(),
                            service.update.min_healthy_seconds
                        ),
                    ));
                }
            }
        }
        // A deployment's new instances that replaced an old one stopped first count while they settle.
        if let Some(d) = update {
            let min_ms = min_healthy_ms;
            in_flight += deploy::new_instances(services, name, d)
                .filter(|i| i.is_assigned() && !successors.contains(&i.id))
                .filter(|i| i.status != InstanceStatus::Healthy || now.0 - i.since_at.0 < min_ms)
                .count() as u32;
        }
        // New hand-overs from draining nodes, oldest instances first, within the service's limit.
        for i in live {
            let Some(d) = drain_of(&i.node) else { continue };
            // Forced, or replaced this pass already (a lost instance's replacement is its hand-over).
            if d.forcing(now) || replacing.contains(&i.id) || self.stopping.contains(&i.id) {
                continue;
            }
            // A drain's hand-overs wait for the node's maintenance window (past its deadline it is forced anyway).
            if let Some(why) = self.spec.maintenance_closed_for(i.node.as_str(), now) {
                short.waiting.push((i.id.clone(), format!("node {} is draining; {why}", i.node)));
                continue;
            }
            if in_flight >= service.update.max_parallel {
                let why = format!(
                    "node {} is draining; {in_flight} hand-over(s) of {name} in flight, update.maxParallel is {}",
                    i.node, service.update.max_parallel
                );
                short.waiting.push((i.id.clone(), why));
                continue;
            }
            match self.choose(name, service, task, 1, Some(&i.node)).pop() {
                Some((instance, node)) => {
                    in_flight += 1;
                    let comment = format!("hand {} over from draining {} to {instance} on {node}", i.id, i.node);
                    let m = InstanceMigrated {
                        service: name.to_owned(),
                        instance,
                        node,
                        task_digest: target,
                        replaces: i.id.clone(),
                    };
                    self.push(Decision::Migrate(m), d.seq, comment);
                }
                None => short
                    .waiting
                    .push((i.id.clone(), format!("node {} is draining; no node fits its replacement now", i.node))),
            }
        }
        if let Some(d) = update {
            freed += self.update(name, service, task, live, d, &replacing, &mut in_flight, &mut healthy_left, short);
        }
        freed
    }

    /// A running deployment's next steps: live instances of other versions handed over to new ones (canaries
    /// first, then `maxParallel` at a time), or — when no node fits a new one beside the old — the old one
    /// stopped first, within the budget. The places it freed.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        name: &str,
        service: &Service,
        task: &Task,
        live: &[&Instance],
        d: &Deployment,
        replacing: &BTreeSet<InstanceId>,
        in_flight: &mut u32,
        healthy_left: &mut u32,
        short: &mut Shortfall,
    ) -> u32 {
        let (services, read) = (self.services, self.read);
        let canaries = deploy::canaries(service, d);
        // New instances this pass placed already (replacements, drains' hand-overs) count as canaries too, as
        // `check` counts them.
        let this_pass = self
            .out
            .iter()
            .filter(|x| match &x.decision {
                Decision::Place(p) => p.service == name && p.task_digest == d.version,
                Decision::Reschedule(r) => r.service == name && r.task_digest == d.version,
                Decision::Migrate(m) => m.service == name && m.task_digest == d.version,
                Decision::Update(_) | Decision::Stop(_) => false,
            })
            .count() as u32;
        let mut allowed = match canaries {
            0 => u32::MAX,
            c => c.saturating_sub(deploy::placed_new(services, name, d) + this_pass),
        };
        let floor = service.min_healthy();
        let mut freed = 0;
        for i in live {
            if i.version == d.version
                || replacing.contains(&i.id)
                || self.stopping.contains(&i.id)
                || read.node(&i.node).is_some_and(|n| n.drain.is_some())
            {
                continue;
            }
            if allowed == 0 {
                let why = format!(
                    "deployment of {}: its {canaries} canar{} placed; waiting for `sendan service promote {name}`",
                    d.version,
                    if canaries == 1 { "y is" } else { "ies are" }
                );
                short.waiting.push((i.id.clone(), why));
                continue;
            }
            if *in_flight >= service.update.max_parallel {
                let why = format!(
                    "deployment of {}: {in_flight} update(s) in flight, update.maxParallel is {}",
                    d.version, service.update.max_parallel
                );
                short.waiting.push((i.id.clone(), why));
                continue;
            }
            match self.choose(name, service, task, 1, Some(&i.node)).pop() {
                Some((instance, node)) => {
                    *in_flight += 1;
                    allowed = allowed.saturating_sub(1);
                    let what = if canaries > 0 { "canary" } else { "update" };
                    let comment = format!("{what}: hand {} over to {instance} on {node}, version {}", i.id, d.version);
                    let u = InstanceUpdated {
                        service: name.to_owned(),
                        instance,
                        node,
                        task_digest: d.version,
                        replaces: i.id.clone(),
                    };
                    self.push(Decision::Update(u), d.seq, comment);
                }
                None if i.status == InstanceStatus::Healthy && *healthy_left <= floor => {
                    let why = format!(
                        "deployment of {}: no node fits a new instance beside it, and stopping it first would leave service {name} with {} healthy, below its budget of {floor}",
                        d.version,
                        *healthy_left - 1
                    );
                    short.waiting.push((i.id.clone(), why));
                }
                None => {
                    if i.status == InstanceStatus::Healthy {
                        *healthy_left -= 1;
                    }
                    *in_flight += 1;
                    allowed = allowed.saturating_sub(1);
                    let reason = format!(
                        "service {name} is updating to version {}, and no node fits a new instance beside it: it stops first",
                        d.version
                    );
                    if self.stop(i, reason, d.seq) {
                        freed += 1;
                    }
                }
            }
        }
        freed
    }

    /// The deployment step service `name` takes now, if any (recorded in `self.deployments`): end a running
    /// deployment that failed or completed; revert one that failed (with `autoRevert`) or was aborted; start one
    /// when instances run another version than the live spec's. Whether it took one.
    fn deployment(&mut self, name: &str, service: &Service, live: &Task) -> bool {
        let services = self.services;
        let version = live.version();
        let last = services.deployment(name);
        let current = last.filter(|d| d.version == version || (d.revert && d.from == Some(version)));
        if let Some(d) = last.filter(|d| d.running() && current.is_none()) {
            let why = format!("the live spec (seq {}) runs service {name} at version {version} now", self.spec_seq);
            let comment = format!("deployment of {name} {} superseded: {why}", d.version);
            let end = DeploymentEnded {
                service: name.to_owned(),
                task_digest: d.version,
                outcome: DeploymentOutcome::Superseded,
                reason: why,
            };
            self.deploy(DeploymentMove::End(end), self.spec_seq, comment);
            return true;
        }
        if let Some(d) = current {
            let end = |outcome: DeploymentOutcome, reason: String| DeploymentEnded {
                service: name.to_owned(),
                task_digest: d.version,
                outcome,
                reason,
            };
            let Some((ended, outcome, _)) = &d.ended else {
                if let Some(why) = deploy::failure(services, name, service, d, self.now) {
                    let comment = format!("deployment of {name} {} failed: {why}", d.version);
                    self.deploy(DeploymentMove::End(end(DeploymentOutcome::Failed, why)), d.seq, comment);
                    return true;
                }
                if deploy::complete(services, name, service, d) {
                    let why = format!("all {} replicas run {} and are healthy", service.replicas, d.version);
                    let comment = format!("deployment of {name} {} completed: {why}", d.version);
                    self.deploy(DeploymentMove::End(end(DeploymentOutcome::Completed, why)), d.seq, comment);
                    return true;
                }
                return false;
            };
            let revert = match outcome {
                DeploymentOutcome::Aborted => true,
                DeploymentOutcome::Failed => service.update.auto_revert,
                DeploymentOutcome::Completed | DeploymentOutcome::Superseded => false,
            };
            let stable = services.stable.get(name).map(|(v, _)| *v).filter(|v| *v != d.version);
            if let (true, false, Some(stable)) = (revert, d.revert, stable) {
                let start = DeploymentStarted {
                    service: name.to_owned(),
                    task_digest: stable,
                    from: Some(d.version),
                    revert: true,
                };
                let comment = format!(
                    "revert {name} to its stable version {stable}: deployment of {} {}",
                    d.version,
                    outcome.name()
                );
                self.deploy(DeploymentMove::Start(start), *ended, comment);
                return true;
            }
            return false;
        }
        // No deployment of the live version yet: one starts when instances run another version.
        let mut others: BTreeMap<Hash, u32> = BTreeMap::new();
        for i in services.of_service(name).filter(|i| i.is_assigned() && i.version != version) {
            *others.entry(i.version).or_default() += 1;
        }
        let Some(most) = others.iter().max_by_key(|(v, n)| (**n, **v)).map(|(v, _)| *v) else { return false };
        let from = services.stable.get(name).map(|(v, _)| *v).filter(|v| *v != version).unwrap_or(most);
        let start =
            DeploymentStarted { service: name.to_owned(), task_digest: version, from: Some(from), revert: false };
        let comment = format!("roll {name} out to version {version} (from {from}) by its update policy");
        self.deploy(DeploymentMove::Start(start), self.spec_seq, comment);
        true
    }

    fn deploy(&mut self, step: DeploymentMove, cause: u64, comment: String) {
        let id = match &step {
            DeploymentMove::Start(s) => EventId::derive(&[
                b"deployment-start",
                s.service.as_bytes(),
                s.task_digest.to_hex().as_bytes(),
                &cause.to_be_bytes(),
            ]),
            DeploymentMove::End(e) => EventId::derive(&[
                b"deployment-end",
                e.service.as_bytes(),
                e.task_digest.to_hex().as_bytes(),
                &cause.to_be_bytes(),
            ]),
        };
        self.deployments.push(DeploymentDecision { id, step, cause, comment });
    }

    /// Every node's filters for one more instance of the service, as the planning now stands.
    fn verdicts(&self, name: &str, service: &Service, task: &Task) -> Vec<NodeVerdict> {
        let read = self.read;
        let mut out = Vec::new();
        for node in read.nodes() {
            let usage = self.usage_of(node.id);
            out.push(NodeVerdict {
                node: node.id.clone(),
                filters: filters(read, self.services, self.spec, name, service, task, &node, usage),
                running: usage.per_service.get(name).copied().unwrap_or(0),
                placed: 0,
                rank: None,
            });
        }
        // Declared members of the service's pools that no machine is bound to yet.
        for node in self.spec.eligible_nodes(service) {
            let Ok(id) = NodeId::new(node) else { continue };
            if read.node(&id).is_none() {
                out.push(NodeVerdict { node: id, filters: vec![Filter::NotBound], running: 0, placed: 0, rank: None });
            }
        }
        out
    }

    /// Stop every instance of services the live spec no longer declares.
    fn undeclared(&mut self) {
        let services = self.services;
        for (name, ids) in services.by_service.iter() {
            if self.spec.services.contains_key(name) {
                continue;
            }
            for i in ids.iter().filter_map(|id| services.instance(id)).filter(|i| i.is_assigned()) {
                self.stop(i, format!("the live spec no longer declares service {name}"), self.spec_seq);
            }
        }
    }
}

/// Everything the scheduler should propose now (`now`: the leader's clock), given the services' instances and
/// the fleet. Empty when no spec is live.
pub fn plan(services: &ServicesState, read: &dyn FleetRead, now: Timestamp) -> Plan {
    let Some(live) = read.live_spec() else { return Plan::default() };
    let mut p = Planner::new(read, services, &live.spec, live.seq, now);
    p.undeclared();
    let mut shortfalls = BTreeMap::new();
    for (name, service) in &live.spec.services {
        let short = p.service(name, service);
        if short != Shortfall::default() {
            shortfalls.insert(name.clone(), short);
        }
    }
    Plan { decisions: p.out, shortfalls, drained: drained_nodes(read), deployments: p.deployments }
}

/// The draining nodes whose agents reported every instance stopped, not yet recorded as drained.
pub fn drained_nodes(read: &dyn FleetRead) -> Vec<DrainedDecision> {
    read.nodes()
        .filter(|n| n.drain.is_some_and(|d| d.drained.is_none()))
        .filter(|n| read.instances_on(n.id).is_empty())
        .map(|n| {
            let seq = n.drain.map_or(0, |d| d.seq);
            DrainedDecision {
                id: EventId::derive(&[b"node-drained", n.id.as_str().as_bytes(), &seq.to_be_bytes()]),
                event: NodeDrained { node: n.id.clone() },
                cause: n.updated,
                comment: format!("every instance on {} was reported stopped", n.id),
            }
        })
        .collect()
}

/// The plan of one service, explained: the decisions [`plan`] would make for it now, and every node's verdict.
/// `declared` plans a declaration other than the live one (a dry run of a changed spec); `None` for the live.
pub fn explain_placement(
    services: &ServicesState,
    read: &dyn FleetRead,
    now: Timestamp,
    name: &str,
    declared: Option<(&ClusterSpec, u64)>,
) -> Option<PlacementExplanation> {
    let live = read.live_spec();
    let (spec, seq) = match declared {
        Some(d) => d,
        None => (live.map(|l| l.spec.as_ref())?, live.map_or(0, |l| l.seq)),
    };
    let service = spec.services.get(name)?;
    let task = Task::of(service);
    let mut p = Planner::new(read, services, spec, seq, now);
    // The verdicts and ranks before anything is placed.
    let mut nodes = p.verdicts(name, service, &task);
    let candidates = p.candidates(name, service, &task, None);
    let counts = p.rack_counts(name);
    let spread = service.constraints.spread_across_racks;
    let mut ranked: Vec<(u32, &Rank)> = candidates
        .iter()
        .flat_map(|(rack, ranks)| {
            let c = if spread { counts.get(rack).copied().unwrap_or(0) } else { 0 };
            ranks.iter().map(move |r| (c, r))
        })
        .collect();
    ranked.sort();
    let live_count = services.of_service(name).filter(|i| i.is_live()).count() as u32;
    let shortfall = p.service(name, service);
    for v in &mut nodes {
        v.rank = ranked.iter().position(|(_, r)| r.3 == v.node).map(|i| i as u32 + 1);
        v.placed = p
            .out
            .iter()
            .filter(|d| match &d.decision {
                Decision::Place(x) => x.node == v.node,
                Decision::Reschedule(x) => x.node == v.node,
                Decision::Migrate(x) => x.node == v.node,
                Decision::Update(x) => x.node == v.node,
                Decision::Stop(_) => false,
            })
            .count() as u32;
    }
    Some(PlacementExplanation {
        service: name.to_owned(),
        replicas: service.replicas,
        live: live_count,
        decisions: p.out,
        shortfall,
        nodes,
    })
}

impl Decision {
    /// The node a new instance lands on (`None` for a stop).
    pub fn placed_on(&self) -> Option<&NodeId> {
        match self {
            Decision::Place(p) => Some(&p.node),
            Decision::Reschedule(r) => Some(&r.node),
            Decision::Migrate(m) => Some(&m.node),
            Decision::Update(u) => Some(&u.node),
            Decision::Stop(_) => None,
        }
    }

    pub fn instance(&self) -> &InstanceId {
        match self {
            Decision::Place(p) => &p.instance,
            Decision::Reschedule(r) => &r.instance,
            Decision::Migrate(m) => &m.instance,
            Decision::Update(u) => &u.instance,
            Decision::Stop(s) => &s.instance,
        }
    }
}
