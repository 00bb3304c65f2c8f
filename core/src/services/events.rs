//! Service and node-agent events: the scheduler places, replaces and stops instances of the services the live
//! spec declares; each node's agent reports what its instances do (started, healthy, unhealthy, exited,
//! stopped) — transitions only, never every probe —, that it started; the leader records when an agent goes
//! silent past its deadline and when it is heard again. The rules are in `rules.rs`, the planner that proposes
//! the scheduler's events in `planner.rs`.
//!
//! Stored format: every struct here is postcard-encoded in the log; changes get a new record version and an
//! upgrade in `crate::upgrade`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::emitters::{Emitters, EventData};
use crate::ids::{Hash, InstanceId, NodeId};

/// The scheduler placed a new instance of a service on a node (a missing replica). System (the scheduler) or
/// operator. Keeps: the live spec declares the service and `task_digest` is its task's digest; the instance id is the
/// service's next (`<service>.<number>`); the service has fewer live instances than its replicas; the node passes
/// every filter the planner applies — active, its agent running, in the service's pools and racks, under
/// `maxPerNode`, CPU and memory free, no static port taken (`services::planner::filters`). So a stale leader
/// cannot overcommit a node or place a replica twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstancePlaced {
    pub service: String,
    pub instance: InstanceId,
    pub node: NodeId,
    /// The digest of what the instance runs (package, command, environment, resources, ports, health, restart):
    /// its version.
    pub task_digest: Hash,
}

impl EventData for InstancePlaced {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// The scheduler replaced an instance that failed for good (its restarts used up) or was lost (its node's agent
/// went silent, or the node left `active`) with a new one on a node that fits. System (the scheduler) or operator.
/// Keeps: what `InstancePlaced` keeps, except the replica count (the replacement takes the old one's place);
/// `replaces` needs replacing and was not replaced yet; a failed one's reschedule policy allows it now — its
/// delay since the failure has passed and `attempt` (the reschedules of its line within the policy's interval,
/// this one included) is within `attempts` unless `unlimited`. A lost instance's replacement is not counted
/// (`attempt` 0) and has no delay. Attempts are counted on the line of instances, so a reschedule that finds no
/// node records nothing and loses nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceRescheduled {
    pub service: String,
    pub instance: InstanceId,
    pub node: NodeId,
    pub task_digest: Hash,
    pub replaces: InstanceId,
    /// The replaced instance was lost (not failed): its node's agent went silent or the node left `active`.
    pub lost: bool,
    pub attempt: u32,
}

impl EventData for InstanceRescheduled {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// The scheduler placed `instance` on `node` to take over from `replaces`, whose node is draining. The old one
/// keeps running (and stays published while healthy) until the new one has been healthy for the service's
/// `update.minHealthySeconds`; then it is asked to stop — create before destroy, so a drain never takes a
/// healthy instance away before its replacement serves. System (the scheduler) or operator. Keeps: what
/// `InstancePlaced` keeps, except the replica count (the new one takes the old one's place); `replaces` is a
/// live instance of the service on a draining node that is not being handed over already; the service has fewer
/// than `update.maxParallel` hand-overs in flight (placed, the old one not yet asked to stop).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceMigrated {
    pub service: String,
    pub instance: InstanceId,
    pub node: NodeId,
    pub task_digest: Hash,
    pub replaces: InstanceId,
}

impl EventData for InstanceMigrated {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// An instance should stop: a surplus replica, a service the spec no longer declares, or a node it may no longer
/// run on. System (the scheduler) or operator. Keeps: the instance exists, runs on `node`, and was not asked to
/// stop before. Its agent stops it and reports `InstanceStopped`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceStopRequested {
    pub instance: InstanceId,
    pub node: NodeId,
    pub reason: String,
}

impl EventData for InstanceStopRequested {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// A node's agent started (or restarted, or adopted after its own restart) an instance: its process runs, with
/// the ports it listens on. Node agent. Keeps: the instance is assigned to this node and has not stopped or
/// failed; `ports` names exactly the service's ports, static ones with their declared number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceStarted {
    pub instance: InstanceId,
    pub node: NodeId,
    /// Where the instance's ports are reached: the agent's advertised address.
    pub address: String,
    pub ports: BTreeMap<String, u16>,
    /// Restarts so far within the restart policy's interval (0 for the first start).
    pub restarts: u32,
}

impl EventData for InstanceStarted {
    const EMITTERS: Emitters = Emitters::NODE;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// A started instance passed its health check (or has none): it is published in the service's endpoints. Node
/// agent, on the transition only. Keeps: the instance runs on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceHealthy {
    pub instance: InstanceId,
    pub node: NodeId,
}

impl EventData for InstanceHealthy {
    const EMITTERS: Emitters = Emitters::NODE;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// A started instance failed its health check `unhealthyAfter` times in a row: it leaves the endpoints, and its
/// agent restarts it by the restart policy. Node agent, on the transition only. Keeps: the instance runs on this
/// node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceUnhealthy {
    pub instance: InstanceId,
    pub node: NodeId,
    pub reason: String,
}

impl EventData for InstanceUnhealthy {
    const EMITTERS: Emitters = Emitters::NODE;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// An instance's process ended (or its agent ended it for failing health). `restarting`: the restart policy
/// starts it again after its delay; otherwise the instance failed for good and the scheduler's reschedule
/// policy takes over. Node agent. Keeps: the instance is assigned to this node and has not stopped or failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceExited {
    pub instance: InstanceId,
    pub node: NodeId,
    /// The exit status, when the process exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub restarting: bool,
    pub reason: String,
}

impl EventData for InstanceExited {
    const EMITTERS: Emitters = Emitters::NODE;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// A node's agent stopped an instance the log no longer runs there (asked to stop, or replaced while the node
/// was away): nothing of it runs any more and it releases what it reserved. Node agent. Keeps: the instance is
/// assigned to this node and was asked to stop or replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceStopped {
    pub instance: InstanceId,
    pub node: NodeId,
}

impl EventData for InstanceStopped {
    const EMITTERS: Emitters = Emitters::NODE;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// A node's agent (`sendan-agent node`) started: the node can run instances, reached at `address`. Node agent.
/// Keeps: the node exists and is not retired. Heartbeats that follow are not events; only their absence past
/// the deadline is (`NodeAgentLost`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeAgentStarted {
    pub node: NodeId,
    /// The address its instances' ports are published at.
    pub address: String,
}

impl EventData for NodeAgentStarted {
    const EMITTERS: Emitters = Emitters::NODE;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// The leader heard no heartbeat from the node's agent for a whole deadline (counted from when it became leader,
/// at the earliest): its instances are lost and get replaced elsewhere. System (the liveness controller).
/// Keeps: the agent was running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeAgentLost {
    pub node: NodeId,
    /// How long the leader had heard nothing, in milliseconds.
    pub silent_ms: u64,
}

impl EventData for NodeAgentLost {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// The leader heard a lost agent's heartbeat again: the node runs instances again (it stops those replaced while
/// it was away). System (the liveness controller). Keeps: the agent was lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeAgentReturned {
    pub node: NodeId,
}

impl EventData for NodeAgentReturned {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// The scheduler started rolling service `service` out to `task_digest`: the live spec changed what its instances run
/// (package, command, environment, resources, ports, health, restart), or — `revert` — the last deployment failed
/// or was aborted and `task_digest` is the last one whose instances were all healthy. Old instances are handed over to
/// new ones by the update policy: `canary` first (then the deployment waits for `sendan service promote`), then
/// `maxParallel` at a time, each new one healthy for `minHealthySeconds` within `healthyDeadlineSeconds` before
/// its old one stops. System (the scheduler) or operator. Keeps: the live spec declares the service; without
/// `revert`, `task_digest` is its live version and no deployment of it was started since the spec changed to it; with
/// `revert`, the service's last deployment ended failed or aborted, was not itself a revert, and `task_digest` is
/// the service's stable version; `from` is the version being replaced (the stable one, when known).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentStarted {
    pub service: String,
    pub task_digest: Hash,
    pub from: Option<Hash>,
    pub revert: bool,
}

impl EventData for DeploymentStarted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// The scheduler placed `instance` of the deployment's version on `node` to take over from `replaces`, an
/// instance of an older version (a canary, or a step of the rolling update). Like a drain's hand-over, the old
/// one keeps running until the new one has been healthy for `update.minHealthySeconds`. System (the scheduler)
/// or operator. Keeps: what `InstancePlaced` keeps, except the replica count; a deployment of the service runs
/// (not ended) at `task_digest`; `replaces` is a live instance of another version not being handed over; before
/// promotion, the deployment's new instances stay within `update.canary`; hand-overs in flight stay under
/// `update.maxParallel`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceUpdated {
    pub service: String,
    pub instance: InstanceId,
    pub node: NodeId,
    pub task_digest: Hash,
    pub replaces: InstanceId,
}

impl EventData for InstanceUpdated {
    const EMITTERS: Emitters = Emitters::SYSTEM;
    fn node(&self) -> Option<&NodeId> {
        Some(&self.node)
    }
}

/// The deployment's canaries are good: the rolling update goes on to every instance (`sendan service promote`).
/// Operator. Keeps: a deployment of the service runs at `task_digest`, has canaries, is not promoted, and every canary
/// is healthy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentPromoted {
    pub service: String,
    pub task_digest: Hash,
}

impl EventData for DeploymentPromoted {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}

/// How a deployment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentOutcome {
    /// Every replica runs the new version and is healthy; it becomes the service's stable version.
    Completed,
    /// A new instance failed, or was not healthy within `update.healthyDeadlineSeconds`. With `autoRevert` the
    /// scheduler reverts to the stable version.
    Failed,
    /// The operator aborted it (`sendan service abort`): the scheduler reverts to the stable version.
    Aborted,
    /// The live spec changed what the service runs before it completed: a deployment of the new version follows.
    Superseded,
}

impl DeploymentOutcome {
    pub fn name(self) -> &'static str {
        match self {
            DeploymentOutcome::Completed => "completed",
            DeploymentOutcome::Failed => "failed",
            DeploymentOutcome::Aborted => "aborted",
            DeploymentOutcome::Superseded => "superseded",
        }
    }
}

/// A deployment ended: completed, failed, aborted or superseded, with why. System (the scheduler: completed,
/// failed, superseded) or operator (aborted). Keeps: a deployment of the service runs at `task_digest`; completed
/// only when every live instance runs `task_digest`, is healthy, and the service has its replicas; failed only
/// when one of its new instances failed or overran its healthy deadline; superseded only when the live spec's
/// version of the service is another one (and not the one a revert went back from).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentEnded {
    pub service: String,
    pub task_digest: Hash,
    pub outcome: DeploymentOutcome,
    pub reason: String,
}

impl EventData for DeploymentEnded {
    const EMITTERS: Emitters = Emitters::SYSTEM;
}
