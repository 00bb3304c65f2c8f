//! How `evolve` records the service and node-agent events: instances are added, moved through their statuses,
//! replaced and removed; agents start, are lost and return. Rule-free: every decision is in the event (a
//! reschedule names the instance it replaces and whether it was lost), and `check` accepted it.

use std::sync::Arc;

use super::events::*;
use super::{AgentRecord, Deployment, Instance, InstanceStatus, ServicesState, StoredTask, Task};
use crate::ids::{Hash, InstanceId, NodeId, Timestamp};

/// How many reschedule times an instance's line keeps: more than any policy's attempts need.
const RESCHEDULES_KEPT: usize = 64;

fn insert(s: &mut ServicesState, i: Instance, task: Option<Task>) {
    if let Some(n) = i.id.as_str().rsplit('.').next().and_then(|n| n.parse::<u64>().ok()) {
        let next = s.next.entry(i.service.clone()).or_insert(1);
        *next = (*next).max(n + 1);
    }
    let entry = s.versions.entry(i.version).or_insert_with(|| (StoredTask(Arc::new(task.unwrap_or_default())), 0));
    entry.1 += 1;
    s.by_service.entry(i.service.clone()).or_default().insert(i.id.clone());
    s.by_node.entry(i.node.clone()).or_default().insert(i.id.clone());
    s.instances.insert(i.id.clone(), Arc::new(i));
}

fn remove(s: &mut ServicesState, id: &InstanceId) {
    let Some(i) = s.instances.remove(id) else { return };
    if let Some(set) = s.by_service.get_mut(&i.service) {
        set.remove(id);
        if set.is_empty() {
            s.by_service.remove(&i.service);
        }
    }
    if let Some(set) = s.by_node.get_mut(&i.node) {
        set.remove(id);
        if set.is_empty() {
            s.by_node.remove(&i.node);
        }
    }
    let gone = match s.versions.get_mut(&i.version) {
        Some(entry) => {
            entry.1 = entry.1.saturating_sub(1);
            entry.1 == 0
        }
        None => false,
    };
    if gone {
        s.versions.remove(&i.version);
    }
}

#[allow(clippy::too_many_arguments)]
fn new_instance(
    seq: u64,
    time: Timestamp,
    service: &str,
    id: &InstanceId,
    node: &NodeId,
    version: Hash,
    task: Option<&Task>,
    replaces: Option<InstanceId>,
    reschedules: Vec<Timestamp>,
) -> Instance {
    Instance {
        id: id.clone(),
        service: service.to_owned(),
        node: node.clone(),
        version,
        cpu: task.map_or(0, |t| t.resources.cpu),
        memory_bytes: task.map_or(0, |t| t.resources.memory_bytes),
        static_ports: task.map(Task::static_ports).unwrap_or_default(),
        placed: seq,
        placed_at: time,
        status: InstanceStatus::Pending,
        since: seq,
        since_at: time,
        address: None,
        ports: Default::default(),
        restarts: 0,
        reason: None,
        stop: None,
        replaces,
        replaced_by: None,
        reschedules,
        handover: None,
    }
}

/// A placement, with what the live spec says its version runs.
pub fn placed(s: &mut ServicesState, seq: u64, time: Timestamp, p: &InstancePlaced, task: Option<Task>) {
    let i = new_instance(seq, time, &p.service, &p.instance, &p.node, p.task_digest, task.as_ref(), None, Vec::new());
    insert(s, i, task);
}

/// A hand-over from an instance on a draining node: the new one is placed, the old one keeps running.
pub fn migrated(s: &mut ServicesState, seq: u64, time: Timestamp, p: &InstanceMigrated, task: Option<Task>) {
    hand_over(s, seq, time, &p.service, &p.instance, &p.node, p.task_digest, &p.replaces, task);
}

#[allow(clippy::too_many_arguments)]
fn hand_over(
    s: &mut ServicesState,
    seq: u64,
    time: Timestamp,
    service: &str,
    instance: &InstanceId,
    node: &NodeId,
    version: Hash,
    replaces: &InstanceId,
    task: Option<Task>,
) {
    if let Some(old) = s.instance_mut(replaces) {
        old.handover = Some(instance.clone());
    }
    let i =
        new_instance(seq, time, service, instance, node, version, task.as_ref(), Some(replaces.clone()), Vec::new());
    insert(s, i, task);
}

/// A deployment started: the stable version is recorded if none was yet (the version it replaces).
pub fn deployment_started(s: &mut ServicesState, seq: u64, time: Timestamp, p: &DeploymentStarted, task: Option<Task>) {
    if !s.stable.contains_key(&p.service)
        && let Some(from) = p.from
        && let Some((t, _)) = s.versions.get(&from)
    {
        let entry = (from, t.clone());
        s.stable.insert(p.service.clone(), entry);
    }
    let d = Deployment {
        seq,
        at: time,
        version: p.task_digest,
        task: StoredTask(Arc::new(task.unwrap_or_default())),
        from: p.from,
        revert: p.revert,
        promoted: None,
        ended: None,
    };
    s.deployments.insert(p.service.clone(), d);
}

/// A step of a deployment: like a drain's hand-over, and the new instance is the deployment's.
pub fn updated(s: &mut ServicesState, seq: u64, time: Timestamp, p: &InstanceUpdated) {
    let task = s.deployment(&p.service).map(|d| d.task.0.as_ref().clone());
    hand_over(s, seq, time, &p.service, &p.instance, &p.node, p.task_digest, &p.replaces, task);
}

pub fn deployment_promoted(s: &mut ServicesState, seq: u64, p: &DeploymentPromoted) {
    if let Some(d) = s.deployments.get_mut(&p.service) {
        d.promoted = Some(seq);
    }
}

/// A deployment ended; a completed one's version becomes the stable one.
pub fn deployment_ended(s: &mut ServicesState, seq: u64, p: &DeploymentEnded) {
    let Some(d) = s.deployments.get_mut(&p.service) else { return };
    d.ended = Some((seq, p.outcome, p.reason.clone()));
    if p.outcome == DeploymentOutcome::Completed {
        let entry = (d.version, d.task.clone());
        s.stable.insert(p.service.clone(), entry);
    }
}

/// A replacement: the new instance takes the old one's place; a failed one (nothing runs) leaves the state, a
/// lost one stays until its agent reports it stopped.
pub fn rescheduled(s: &mut ServicesState, seq: u64, time: Timestamp, p: &InstanceRescheduled, task: Option<Task>) {
    let mut line = Vec::new();
    let mut failed = false;
    if let Some(old) = s.instance_mut(&p.replaces) {
        old.replaced_by = Some(p.instance.clone());
        line = old.reschedules.clone();
        failed = old.status == InstanceStatus::Failed;
    }
    // A hand-over's replacement that is itself replaced: the instance being handed over waits for the new one.
    let handed: Vec<InstanceId> =
        s.of_service(&p.service).filter(|i| i.handover.as_ref() == Some(&p.replaces)).map(|i| i.id.clone()).collect();
    for id in handed {
        if let Some(from) = s.instance_mut(&id) {
            from.handover = Some(p.instance.clone());
        }
    }
    if !p.lost {
        line.push(time);
    }
    if line.len() > RESCHEDULES_KEPT {
        line.drain(..line.len() - RESCHEDULES_KEPT);
    }
    let i = new_instance(
        seq,
        time,
        &p.service,
        &p.instance,
        &p.node,
        p.task_digest,
        task.as_ref(),
        Some(p.replaces.clone()),
        line,
    );
    insert(s, i, task);
    if failed {
        remove(s, &p.replaces);
    }
}

pub fn stop_requested(s: &mut ServicesState, seq: u64, p: &InstanceStopRequested) {
    if let Some(i) = s.instance_mut(&p.instance) {
        i.stop = Some((seq, p.reason.clone()));
    }
}

fn set_status<'a>(
    s: &'a mut ServicesState,
    id: &InstanceId,
    seq: u64,
    time: Timestamp,
    status: InstanceStatus,
) -> Option<&'a mut Instance> {
    let i = s.instance_mut(id)?;
    i.status = status;
    i.since = seq;
    i.since_at = time;
    Some(i)
}

pub fn instance_started(s: &mut ServicesState, seq: u64, time: Timestamp, p: &InstanceStarted) {
    if let Some(i) = set_status(s, &p.instance, seq, time, InstanceStatus::Running) {
        i.address = Some(p.address.clone());
        i.ports = p.ports.clone();
        i.restarts = p.restarts;
        i.reason = None;
    }
}

pub fn healthy(s: &mut ServicesState, seq: u64, time: Timestamp, p: &InstanceHealthy) {
    if let Some(i) = set_status(s, &p.instance, seq, time, InstanceStatus::Healthy) {
        i.reason = None;
    }
}

pub fn unhealthy(s: &mut ServicesState, seq: u64, time: Timestamp, p: &InstanceUnhealthy) {
    if let Some(i) = set_status(s, &p.instance, seq, time, InstanceStatus::Unhealthy) {
        i.reason = Some(p.reason.clone());
    }
}

pub fn exited(s: &mut ServicesState, seq: u64, time: Timestamp, p: &InstanceExited) {
    let status = if p.restarting { InstanceStatus::Restarting } else { InstanceStatus::Failed };
    if let Some(i) = set_status(s, &p.instance, seq, time, status) {
        i.reason = Some(p.reason.clone());
    }
}

pub fn stopped(s: &mut ServicesState, p: &InstanceStopped) {
    remove(s, &p.instance);
}

pub fn agent_started(s: &mut ServicesState, seq: u64, time: Timestamp, p: &NodeAgentStarted) {
    let record = AgentRecord { running: true, since: seq, since_at: time, started: seq, address: p.address.clone() };
    s.agents.insert(p.node.clone(), record);
}

pub fn agent_lost(s: &mut ServicesState, seq: u64, time: Timestamp, p: &NodeAgentLost) {
    if let Some(a) = s.agents.get_mut(&p.node) {
        a.running = false;
        a.since = seq;
        a.since_at = time;
    }
}

pub fn agent_returned(s: &mut ServicesState, seq: u64, time: Timestamp, p: &NodeAgentReturned) {
    if let Some(a) = s.agents.get_mut(&p.node) {
        a.running = true;
        a.since = seq;
        a.since_at = time;
    }
}

/// The node was retired: its machine is gone, so nothing of it reports again. Its agent and the instances it
/// held that were already replaced or asked to stop leave the state; live ones stay, lost, until replaced.
pub fn node_retired(s: &mut ServicesState, node: &NodeId) {
    s.agents.remove(node);
    let gone: Vec<InstanceId> = s.on_node(node).filter(|i| !i.is_assigned()).map(|i| i.id.clone()).collect();
    for id in gone {
        remove(s, &id);
    }
}
