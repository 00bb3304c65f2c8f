//! Services on the wire: what runs where and how it is doing, the published endpoints, a dry run of the
//! scheduler with every node's verdict, what a node's agent is to run, and heartbeats.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{Hash, InstanceId, NodeId, Timestamp};
use crate::read::FleetRead;
use crate::services::planner::{Decision, NodeVerdict, PlacementExplanation, ServiceDecision, Shortfall};
use crate::services::{Instance, InstanceStatus, ServicesState, Task, view};
use crate::spec::ClusterSpec;

/// One instance as `sendan service status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InstanceView {
    pub id: InstanceId,
    pub service: String,
    pub node: NodeId,
    pub status: InstanceStatus,
    /// The seq and time of the event that set `status`.
    pub since: u64,
    pub since_time: Timestamp,
    /// The seq of its placement.
    pub placed: u64,
    pub version: Hash,
    pub address: Option<String>,
    pub ports: BTreeMap<String, u16>,
    pub restarts: u32,
    /// Why it last exited or was unhealthy.
    pub reason: Option<String>,
    /// Why it was asked to stop, once it was.
    pub stopping: Option<String>,
    pub replaces: Option<InstanceId>,
    pub replaced_by: Option<InstanceId>,
    /// Why it is lost (its node left `active`, or its agent went silent), while it is.
    pub lost: Option<String>,
}

impl InstanceView {
    pub fn of(read: &dyn FleetRead, services: &ServicesState, i: &Instance) -> InstanceView {
        InstanceView {
            id: i.id.clone(),
            service: i.service.clone(),
            node: i.node.clone(),
            status: i.status,
            since: i.since,
            since_time: i.since_at,
            placed: i.placed,
            version: i.version,
            address: i.address.clone(),
            ports: i.ports.clone(),
            restarts: i.restarts,
            reason: i.reason.clone(),
            stopping: i.stop.as_ref().map(|(_, r)| r.clone()),
            replaces: i.replaces.clone(),
            replaced_by: i.replaced_by.clone(),
            lost: crate::services::planner::lost(read, services, i).map(|(why, _)| why),
        }
    }
}

/// A service at a glance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceSummary {
    pub name: String,
    pub replicas: u32,
    /// Instances counting toward the replicas (not failed, not asked to stop, not replaced).
    pub live: u32,
    /// Instances published in the endpoints.
    pub healthy: u32,
    /// Replicas that fit on no node now.
    pub unplaced: u32,
}

/// `GET /v1/services`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServicesView {
    pub seq: u64,
    pub services: Vec<ServiceSummary>,
}

/// What the scheduler could not do for a service, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShortfallView {
    pub unplaced: u32,
    /// How many nodes each filter excluded (a node may count under several).
    pub filtered: BTreeMap<String, u32>,
    /// Failed or lost instances waiting for a replacement, and why each waits.
    pub waiting: Vec<WaitingInstance>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitingInstance {
    pub instance: InstanceId,
    pub why: String,
}

impl From<&Shortfall> for ShortfallView {
    fn from(s: &Shortfall) -> Self {
        ShortfallView {
            unplaced: s.unplaced,
            filtered: s.filtered.clone(),
            waiting: s
                .waiting
                .iter()
                .map(|(i, why)| WaitingInstance { instance: i.clone(), why: why.clone() })
                .collect(),
        }
    }
}

/// A service's latest deployment, as `sendan service status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeploymentView {
    /// The version it rolls out, and the one it replaces.
    pub version: Hash,
    pub from: Option<Hash>,
    /// It puts the stable version back after a failed or aborted deployment.
    pub revert: bool,
    /// The seq and time it started.
    pub started: u64,
    pub started_time: Timestamp,
    /// `running`, `awaiting-promotion`, `completed`, `failed` or `aborted`.
    pub status: String,
    /// Canaries it places before it waits for `sendan service promote` (0 once promoted, and for a revert).
    pub canaries: u32,
    pub promoted: Option<u64>,
    /// Its new instances (placed, not asked to stop), how many of them have been healthy for
    /// `update.minHealthySeconds`, and the instances of other versions still running.
    pub placed: u32,
    pub healthy: u32,
    pub old: u32,
    pub replicas: u32,
    /// How it ended: the seq and why.
    pub ended: Option<u64>,
    pub reason: Option<String>,
    /// The service's stable version (what a failed or aborted deployment goes back to).
    pub stable: Option<Hash>,
}

impl DeploymentView {
    pub fn of(services: &ServicesState, name: &str, service: &crate::spec::Service, now: Timestamp) -> Option<Self> {
        use crate::services::deploy;
        let d = services.deployment(name)?;
        let status = match &d.ended {
            Some((_, outcome, _)) => outcome.name(),
            None if deploy::awaiting_promotion(services, name, service, d) => "awaiting-promotion",
            None => "running",
        };
        Some(DeploymentView {
            version: d.version,
            from: d.from,
            revert: d.revert,
            started: d.seq,
            started_time: d.at,
            status: status.into(),
            canaries: deploy::canaries(service, d),
            promoted: d.promoted,
            placed: deploy::placed_new(services, name, d),
            healthy: deploy::good(services, name, service, d, now),
            old: services.of_service(name).filter(|i| i.is_assigned() && i.version != d.version).count() as u32,
            replicas: service.replicas,
            ended: d.ended.as_ref().map(|(seq, _, _)| *seq),
            reason: d.ended.as_ref().map(|(_, _, why)| why.clone()),
            stable: services.stable.get(name).map(|(v, _)| *v),
        })
    }
}

/// `GET /v1/services/{name}`: the service's instances per node, its health, and what is pending and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceView {
    pub seq: u64,
    pub summary: ServiceSummary,
    /// Its latest deployment (a change of what its instances run), running or ended.
    pub deployment: Option<DeploymentView>,
    /// Every instance that may still run, in id order.
    pub instances: Vec<InstanceView>,
    pub shortfall: ShortfallView,
}

/// Where a load balancer reaches one healthy instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Endpoint {
    pub instance: InstanceId,
    pub node: NodeId,
    pub address: String,
    pub ports: BTreeMap<String, u16>,
}

/// `GET /v1/services/{name}/endpoints`: healthy instances only, in instance order, as of `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EndpointsView {
    pub service: String,
    pub seq: u64,
    pub endpoints: Vec<Endpoint>,
}

impl EndpointsView {
    pub fn of(services: &ServicesState, service: &str, seq: u64) -> EndpointsView {
        let endpoints = view::endpoints(services, service)
            .into_iter()
            .map(|i| Endpoint {
                instance: i.id.clone(),
                node: i.node.clone(),
                address: i.address.clone().unwrap_or_default(),
                ports: i.ports.clone(),
            })
            .collect();
        EndpointsView { service: service.to_owned(), seq, endpoints }
    }
}

/// `POST /v1/services/plan`: a dry run of the scheduler for one service against the live log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePlanRequest {
    pub service: String,
    /// Plan this declaration instead of the live one (a changed spec, before `sendan apply`).
    #[serde(default)]
    pub spec: Option<ClusterSpec>,
}

/// One change a plan makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedChange {
    /// `place`, `reschedule`, `migrate` (a hand-over from a draining node), `update` (a deployment's hand-over to
    /// a new version) or `stop`.
    pub action: String,
    pub instance: InstanceId,
    pub node: NodeId,
    /// The instance a reschedule or a migration replaces.
    pub replaces: Option<InstanceId>,
    pub why: String,
}

impl From<&ServiceDecision> for PlannedChange {
    fn from(d: &ServiceDecision) -> Self {
        let (action, node, replaces) = match &d.decision {
            Decision::Place(p) => ("place", p.node.clone(), None),
            Decision::Reschedule(r) => ("reschedule", r.node.clone(), Some(r.replaces.clone())),
            Decision::Migrate(m) => ("migrate", m.node.clone(), Some(m.replaces.clone())),
            Decision::Update(u) => ("update", u.node.clone(), Some(u.replaces.clone())),
            Decision::Stop(s) => ("stop", s.node.clone(), None),
        };
        PlannedChange {
            action: action.into(),
            instance: d.decision.instance().clone(),
            node,
            replaces,
            why: d.comment.clone(),
        }
    }
}

/// Why a node was filtered: the filter's code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FilterView {
    pub filter: String,
    pub message: String,
}

/// One node's verdict in a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeVerdictView {
    pub node: NodeId,
    /// Every filter that excluded it (empty: it fits).
    pub filters: Vec<FilterView>,
    /// Live instances of the service it runs, and how many this plan gives it.
    pub running: u32,
    pub placed: u32,
    /// Its rank among the nodes that fit, best first.
    pub rank: Option<u32>,
}

impl From<&NodeVerdict> for NodeVerdictView {
    fn from(v: &NodeVerdict) -> Self {
        NodeVerdictView {
            node: v.node.clone(),
            filters: v.filters.iter().map(|f| FilterView { filter: f.code().into(), message: f.to_string() }).collect(),
            running: v.running,
            placed: v.placed,
            rank: v.rank,
        }
    }
}

/// A dry run's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServicePlanView {
    pub service: String,
    /// The log position it was planned at.
    pub seq: u64,
    pub replicas: u32,
    pub live: u32,
    /// The plan changes something (`sendan service plan` exits 1).
    pub changes: bool,
    pub decisions: Vec<PlannedChange>,
    pub shortfall: ShortfallView,
    /// Every node, with every filter that excluded it.
    pub nodes: Vec<NodeVerdictView>,
}

impl ServicePlanView {
    pub fn of(e: &PlacementExplanation, seq: u64) -> ServicePlanView {
        ServicePlanView {
            service: e.service.clone(),
            seq,
            replicas: e.replicas,
            live: e.live,
            changes: !e.decisions.is_empty(),
            decisions: e.decisions.iter().map(PlannedChange::from).collect(),
            shortfall: ShortfallView::from(&e.shortfall),
            nodes: e.nodes.iter().map(NodeVerdictView::from).collect(),
        }
    }
}

/// An instance a node's agent is to run or to stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AssignedInstance {
    pub id: InstanceId,
    pub service: String,
    pub version: Hash,
    /// What it runs (the service's declaration, as written in Nix).
    pub task: Task,
    /// The log keeps it on this node. `false`: it was asked to stop, or replaced while the node was away — stop
    /// it and report `InstanceStopped`. An assigned instance whose status is `failed` is not run either: it
    /// waits for its replacement.
    pub assigned: bool,
    pub status: InstanceStatus,
    /// The seq of the event that set `status` (an agent's reports name it in their ids, so a retry is never a
    /// second event).
    pub since: u64,
    /// The ports it reported when it last started.
    pub ports: BTreeMap<String, u16>,
    pub restarts: u32,
}

/// `GET /v1/nodes/{id}/instances`: every instance the log holds on the node, as of `seq`, and where closures
/// are fetched from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeInstancesView {
    pub node: NodeId,
    pub seq: u64,
    /// Whether the log has recorded this node's agent as running.
    pub agent_running: Option<bool>,
    pub instances: Vec<AssignedInstance>,
    pub substituters: Vec<String>,
    pub trusted_public_keys: Vec<String>,
}

impl NodeInstancesView {
    pub fn of(services: &ServicesState, node: &NodeId, seq: u64, caches: (Vec<String>, Vec<String>)) -> Self {
        let instances = services
            .on_node(node)
            .map(|i| AssignedInstance {
                id: i.id.clone(),
                service: i.service.clone(),
                version: i.version,
                task: services.task(&i.version).cloned().unwrap_or_default(),
                assigned: i.is_assigned(),
                status: i.status,
                since: i.since,
                ports: i.ports.clone(),
                restarts: i.restarts,
            })
            .collect();
        NodeInstancesView {
            node: node.clone(),
            seq,
            agent_running: services.agent(node).map(|a| a.running),
            instances,
            substituters: caches.0,
            trusted_public_keys: caches.1,
        }
    }
}

/// `POST /v1/nodes/{id}/heartbeat`'s answer: how often to send the next ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HeartbeatAck {
    /// The leader declares the agent lost after this long without a heartbeat.
    pub deadline_ms: u64,
    /// Send the next heartbeat within this long.
    pub interval_ms: u64,
}
