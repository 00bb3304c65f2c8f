//! The services aggregate: the instances the scheduler placed for the live spec's services, what their node
//! agents report of them, and whether each node's agent is running. `events.rs` holds its events, `planner.rs`
//! the pure placement planner (filters, ranking, replacements, surplus) and its explanations, `rules.rs` what
//! `check` asks of the events (the planner's own filters, so a stale leader cannot overcommit a node), `fold.rs`
//! how `evolve` records them, `view.rs` what `sendan service status` and the endpoints show.
//!
//! Only instances that may still run are kept: an instance leaves the state when its agent reports it stopped,
//! or when a failed one is replaced. The log holds every one.

pub mod budget;
pub mod deploy;
pub mod events;
pub mod fold;
pub mod planner;
pub mod rules;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{Hash, InstanceId, NodeId, Timestamp};
use crate::spec::{HealthCheck, PortSpec, Resources, RestartPolicy, Service};
use events::DeploymentOutcome;

/// Everything the log says about services and node agents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesState {
    /// Every instance that may still run, by id.
    pub instances: OrdMap<InstanceId, Arc<Instance>>,
    /// The instances of each service.
    pub by_service: OrdMap<String, OrdSet<InstanceId>>,
    /// The instances on each node.
    pub by_node: OrdMap<NodeId, OrdSet<InstanceId>>,
    /// The number the next instance of each service gets (instance ids are never reused).
    pub next: OrdMap<String, u64>,
    /// What instances run, by version, with how many instances run each.
    pub versions: OrdMap<Hash, (StoredTask, u64)>,
    /// Each node whose agent ever started.
    pub agents: OrdMap<NodeId, AgentRecord>,
    /// Each service's latest deployment (a change of what its instances run), running or ended.
    pub deployments: OrdMap<String, Deployment>,
    /// Each service's stable version: the last one whose deployment completed (or, before any did, the one its
    /// instances ran when the first deployment started). A failed or aborted deployment reverts to it.
    pub stable: OrdMap<String, (Hash, StoredTask)>,
}

impl ServicesState {
    pub fn instance(&self, id: &InstanceId) -> Option<&Instance> {
        self.instances.get(id).map(Arc::as_ref)
    }

    pub(crate) fn instance_mut(&mut self, id: &InstanceId) -> Option<&mut Instance> {
        self.instances.get_mut(id).map(Arc::make_mut)
    }

    /// The instances of `service`, in id order.
    pub fn of_service<'a>(&'a self, service: &str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.by_service.get(service).into_iter().flatten().filter_map(|id| self.instance(id))
    }

    /// Where the hand-over from `old` stands: the instance that now takes its place (following replacements of
    /// a successor that failed or was lost), or `None` when that line ended (its last instance was stopped).
    pub fn successor(&self, old: &Instance) -> Option<&Instance> {
        let mut next = self.instance(old.handover.as_ref()?)?;
        // A line of replacements is finite (ids only grow); the bound keeps a malformed state from looping.
        for _ in 0..1024 {
            match next.replaced_by.as_ref().and_then(|id| self.instance(id)) {
                Some(later) => next = later,
                None => break,
            }
        }
        (next.stop.is_none() && next.replaced_by.is_none()).then_some(next)
    }

    /// The instances on `node`, in id order.
    pub fn on_node<'a>(&'a self, node: &NodeId) -> impl Iterator<Item = &'a Instance> + 'a {
        self.by_node.get(node).into_iter().flatten().filter_map(|id| self.instance(id))
    }

    /// What instances of `version` run.
    pub fn task(&self, version: &Hash) -> Option<&Task> {
        self.versions.get(version).map(|(t, _)| t.0.as_ref())
    }

    pub fn agent(&self, node: &NodeId) -> Option<&AgentRecord> {
        self.agents.get(node)
    }

    pub fn deployment(&self, service: &str) -> Option<&Deployment> {
        self.deployments.get(service)
    }

    /// The version new instances of `service` run, and what that is: the live spec's (`live`), unless the
    /// service's deployment reverted away from exactly that version — then the stable version it reverted to.
    pub fn target(&self, service: &str, live: &Task) -> (Hash, Task) {
        let version = live.version();
        match self.deployment(service) {
            Some(d) if d.revert && d.from == Some(version) => (d.version, d.task.0.as_ref().clone()),
            _ => (version, live.clone()),
        }
    }

    /// The id the next instance of `service` gets (`None` only for a name no spec validates).
    pub fn next_id(&self, service: &str) -> Option<InstanceId> {
        let n = self.next.get(service).copied().unwrap_or(1);
        InstanceId::new(format!("{service}.{n}")).ok()
    }
}

/// One placement of a service on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub service: String,
    pub node: NodeId,
    pub version: Hash,
    /// What it reserves on its node (from its version, kept here for the capacity sums).
    pub cpu: u32,
    pub memory_bytes: u64,
    /// Its static ports (from its version).
    pub static_ports: Vec<u16>,
    /// The seq and time of its placement.
    pub placed: u64,
    pub placed_at: Timestamp,
    pub status: InstanceStatus,
    /// The seq and time of the event that set `status`.
    pub since: u64,
    pub since_at: Timestamp,
    /// Where it listens, once started.
    pub address: Option<String>,
    pub ports: BTreeMap<String, u16>,
    pub restarts: u32,
    /// Why it last exited or was unhealthy.
    pub reason: Option<String>,
    /// The stop request (its seq and reason), once asked to stop.
    pub stop: Option<(u64, String)>,
    /// The instance it replaced, and the one that replaced it.
    pub replaces: Option<InstanceId>,
    pub replaced_by: Option<InstanceId>,
    /// The times of the reschedules of its line (each a failed instance replaced), for the reschedule policy.
    pub reschedules: Vec<Timestamp>,
    /// The instance placed to take over from it (its node is draining): it keeps running until that one has
    /// been healthy long enough.
    pub handover: Option<InstanceId>,
}

impl Instance {
    /// It counts toward its service's replicas: not asked to stop, not replaced or handed over, not failed.
    pub fn is_live(&self) -> bool {
        self.stop.is_none()
            && self.replaced_by.is_none()
            && self.handover.is_none()
            && self.status != InstanceStatus::Failed
    }

    /// Its agent is to run it: assigned, not asked to stop, not replaced.
    pub fn is_assigned(&self) -> bool {
        self.stop.is_none() && self.replaced_by.is_none()
    }
}

/// Where an instance stands, from its agent's reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceStatus {
    /// Placed; its agent has not started it yet.
    Pending,
    /// Its process runs; health not known yet.
    Running,
    Healthy,
    Unhealthy,
    /// It exited and its restart policy starts it again.
    Restarting,
    /// It exited for good: its restarts are used up. The reschedule policy replaces it.
    Failed,
}

impl InstanceStatus {
    pub fn name(self) -> &'static str {
        match self {
            InstanceStatus::Pending => "pending",
            InstanceStatus::Running => "running",
            InstanceStatus::Healthy => "healthy",
            InstanceStatus::Unhealthy => "unhealthy",
            InstanceStatus::Restarting => "restarting",
            InstanceStatus::Failed => "failed",
        }
    }
}

/// A deployment: a service's instances rolled from one version to another by its update policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The seq and time of its `DeploymentStarted`.
    pub seq: u64,
    pub at: Timestamp,
    pub version: Hash,
    /// What the new version runs.
    pub task: StoredTask,
    pub from: Option<Hash>,
    /// It puts the stable version back after a failed or aborted deployment.
    pub revert: bool,
    /// The seq of its promotion, once its canaries were promoted.
    pub promoted: Option<u64>,
    /// How it ended: the seq, the outcome and why.
    pub ended: Option<(u64, DeploymentOutcome, String)>,
}

impl Deployment {
    pub fn running(&self) -> bool {
        self.ended.is_none()
    }
}

/// A node's agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub running: bool,
    /// The seq and time of the event that set `running` (its start, loss or return), and the seq of its last
    /// start.
    pub since: u64,
    pub since_at: Timestamp,
    pub started: u64,
    pub address: String,
}

/// What an instance runs: the part of a service's declaration that its agent acts on. A change to it is a new
/// version; replicas, pools, constraints and policies of the scheduler are not part of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Task {
    pub package: Option<String>,
    pub command: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub resources: Resources,
    pub ports: BTreeMap<String, PortSpec>,
    pub health: Option<HealthCheck>,
    pub restart: RestartPolicy,
}

impl Task {
    pub fn of(service: &Service) -> Task {
        Task {
            package: service.package.clone(),
            command: service.command.clone(),
            environment: service.environment.clone(),
            resources: service.resources.clone(),
            ports: service.ports.clone(),
            health: service.health.clone(),
            restart: service.restart.clone(),
        }
    }

    /// The version: sha256 of its canonical JSON (keys sorted, as Nix writes it).
    pub fn version(&self) -> Hash {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        Hash::of(crate::spec::canonical(&value).as_bytes())
    }

    pub fn static_ports(&self) -> Vec<u16> {
        self.ports.values().filter_map(|p| p.static_port).collect()
    }
}

/// A task in the state: stored as its JSON (the spec types are JSON-shaped, which postcard cannot carry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTask(pub Arc<Task>);

impl Serialize for StoredTask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::to_string(self.0.as_ref()).map_err(serde::ser::Error::custom)?.serialize(s)
    }
}

impl<'de> Deserialize<'de> for StoredTask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map(|t| StoredTask(Arc::new(t))).map_err(D::Error::custom)
    }
}
