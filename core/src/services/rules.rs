//! What `check` asks of the service and node-agent events. A placement or a replacement must pass the planner's
//! own [`filters`] on the node as the log stands, for the live version of a declared service, with the service's
//! next instance id — so two leaders, or a stale one, cannot place a replica twice or overcommit a node. Agent
//! reports must be about an instance the log assigns to the reporting node, in a state the report can follow.

use super::events::*;
use super::planner::{filters, lost, node_use, reschedule_due};
use super::{Deployment, Instance, InstanceStatus, ServicesState, Task, deploy};
use crate::ids::{Hash, InstanceId, NodeId};
use crate::kind::EventKind;
use crate::read::{Ctx, FleetRead};
use crate::rejection::Rejection;
use crate::spec::Service;

/// The checks every new instance passes: a declared service at its live version, the service's next id, and a
/// node that passes every filter now.
fn placement<'a>(
    services: &ServicesState,
    read: &'a dyn FleetRead,
    event: EventKind,
    name: &str,
    instance: &InstanceId,
    node: &NodeId,
    version: &Hash,
) -> Result<&'a Service, Rejection> {
    let refuse = |reason: String| Rejection::ServiceRefused { service: name.to_owned(), event, reason };
    let live = read.live_spec().ok_or_else(|| refuse("no spec is live".into()))?;
    let service = live
        .spec
        .services
        .get(name)
        .ok_or_else(|| refuse(format!("the live spec (seq {}) does not declare service {name}", live.seq)))?;
    let (want, task) = services.target(name, &Task::of(service));
    if *version != want {
        return Err(refuse(format!(
            "version {version} is not the version {want} service {name} places now; it was decided on another spec or deployment"
        )));
    }
    match services.next_id(name) {
        Some(next) if next == *instance => {}
        Some(next) => return Err(refuse(format!("the next instance of service {name} is {next}, not {instance}"))),
        None => return Err(refuse(format!("service name {name} cannot name instances"))),
    }
    let facts = read.node(node).ok_or(Rejection::UnknownNode { node: node.clone(), event })?;
    let usage = node_use(services, node);
    let why = filters(read, services, &live.spec, name, service, &task, &facts, &usage);
    if !why.is_empty() {
        return Err(Rejection::PlacementRefused {
            service: name.to_owned(),
            node: node.clone(),
            event,
            reasons: why.iter().map(ToString::to_string).collect(),
        });
    }
    Ok(service)
}

pub fn placed(services: &ServicesState, read: &dyn FleetRead, p: &InstancePlaced) -> Result<(), Rejection> {
    let event = EventKind::InstancePlaced;
    let service = placement(services, read, event, &p.service, &p.instance, &p.node, &p.task_digest)?;
    let live = services.of_service(&p.service).filter(|i| i.is_live()).count() as u32;
    if live >= service.replicas {
        return Err(Rejection::ServiceRefused {
            service: p.service.clone(),
            event,
            reason: format!("it already has {live} live instances of {} replicas", service.replicas),
        });
    }
    Ok(())
}

/// The instance `p.replaces` of `service` that a replacement (`event`) takes over from, with the rejection to
/// refuse it with.
fn replaced<'s>(
    services: &'s ServicesState,
    event: EventKind,
    replaces: &InstanceId,
    service: &str,
) -> Result<(&'s Instance, impl Fn(String) -> Rejection + use<>), Rejection> {
    let id = replaces.clone();
    let refuse = move |reason: String| Rejection::InstanceRefused { instance: id.clone(), event, reason };
    let old = services
        .instance(replaces)
        .ok_or_else(|| refuse("the log holds no such instance that may still run".into()))?;
    if old.service != service {
        return Err(refuse(format!("it is an instance of service {}, not {service}", old.service)));
    }
    Ok((old, refuse))
}

pub fn rescheduled(
    services: &ServicesState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &InstanceRescheduled,
) -> Result<(), Rejection> {
    let event = EventKind::InstanceRescheduled;
    let (old, refuse) = replaced(services, event, &p.replaces, &p.service)?;
    if !old.is_assigned() {
        return Err(refuse("it was already replaced or asked to stop".into()));
    }
    let service = placement(services, read, event, &p.service, &p.instance, &p.node, &p.task_digest)?;
    if p.lost {
        if lost(read, services, old).is_none() {
            return Err(refuse(format!("it is not lost: node {} is up and its agent runs", old.node)));
        }
        if p.attempt != 0 {
            return Err(refuse("replacing a lost instance counts no attempt (attempt must be 0)".into()));
        }
        return Ok(());
    }
    if old.status != InstanceStatus::Failed {
        return Err(refuse(format!("it is {}, not failed", old.status.name())));
    }
    let (attempt, at) = reschedule_due(service, old, ctx.now).map_err(&refuse)?;
    if p.attempt != attempt {
        return Err(refuse(format!("this would be reschedule attempt {attempt}, not {}", p.attempt)));
    }
    if ctx.now < at {
        return Err(refuse(format!("its reschedule policy holds it until {at}")));
    }
    Ok(())
}

/// How many hand-overs of `service` are in flight: a replacement placed, the old instance not asked to stop yet.
pub fn handovers_in_flight(services: &ServicesState, service: &str) -> u32 {
    services.of_service(service).filter(|i| i.handover.is_some() && i.stop.is_none()).count() as u32
}

pub fn migrated(
    services: &ServicesState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &InstanceMigrated,
) -> Result<(), Rejection> {
    let event = EventKind::InstanceMigrated;
    let (old, refuse) = replaced(services, event, &p.replaces, &p.service)?;
    if let Some(next) = &old.handover {
        return Err(refuse(format!("it is already being handed over to {next}")));
    }
    if !old.is_live() {
        return Err(refuse("it was replaced, asked to stop, or failed; there is nothing to hand over".into()));
    }
    match read.node(&old.node) {
        Some(n) if n.drain.is_some() => {}
        _ => return Err(refuse(format!("node {} is not draining", old.node))),
    }
    if let Some(why) = read.live_spec().and_then(|l| l.spec.maintenance_closed_for(old.node.as_str(), ctx.now)) {
        return Err(refuse(format!("its node's drain waits for the window: {why}")));
    }
    let service = placement(services, read, event, &p.service, &p.instance, &p.node, &p.task_digest)?;
    let in_flight = handovers_in_flight(services, &p.service);
    if in_flight >= service.update.max_parallel {
        return Err(Rejection::ServiceRefused {
            service: p.service.clone(),
            event,
            reason: format!(
                "{in_flight} hand-over{} in flight already, and update.maxParallel is {}",
                if in_flight == 1 { " is" } else { "s are" },
                service.update.max_parallel
            ),
        });
    }
    Ok(())
}

/// The instance `id`, which must run on `node`.
fn on_node<'s>(
    services: &'s ServicesState,
    event: EventKind,
    id: &InstanceId,
    node: &NodeId,
) -> Result<&'s Instance, Rejection> {
    let refuse = |reason: String| Rejection::InstanceRefused { instance: id.clone(), event, reason };
    let i = services
        .instance(id)
        .ok_or_else(|| refuse("the log holds no such instance that may still run (never placed, or stopped)".into()))?;
    if i.node != *node {
        return Err(refuse(format!("it is assigned to node {}, not {node}", i.node)));
    }
    Ok(i)
}

pub fn stop_requested(services: &ServicesState, p: &InstanceStopRequested) -> Result<(), Rejection> {
    let i = on_node(services, EventKind::InstanceStopRequested, &p.instance, &p.node)?;
    if let Some((seq, _)) = &i.stop {
        return Err(Rejection::InstanceRefused {
            instance: p.instance.clone(),
            event: EventKind::InstanceStopRequested,
            reason: format!("it was asked to stop at seq {seq}"),
        });
    }
    Ok(())
}

pub fn instance_started(services: &ServicesState, p: &InstanceStarted) -> Result<(), Rejection> {
    let event = EventKind::InstanceStarted;
    let i = on_node(services, event, &p.instance, &p.node)?;
    let refuse = |reason: String| Rejection::InstanceRefused { instance: p.instance.clone(), event, reason };
    if i.status == InstanceStatus::Failed {
        return Err(refuse("it failed for good; the scheduler replaces it".into()));
    }
    if p.address.is_empty() {
        return Err(refuse("the address it is reached at is empty".into()));
    }
    let task = services.task(&i.version).ok_or_else(|| refuse(format!("its version {} is unknown", i.version)))?;
    let declared: Vec<&String> = task.ports.keys().collect();
    let reported: Vec<&String> = p.ports.keys().collect();
    if declared != reported {
        return Err(refuse(format!(
            "it reports ports [{}], and its service declares [{}]",
            reported.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            declared.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    for (name, spec) in &task.ports {
        let got = p.ports.get(name).copied().unwrap_or(0);
        match spec.static_port {
            Some(want) if want != got => {
                return Err(refuse(format!("port {name} is static {want}, not {got}")));
            }
            _ if got == 0 => return Err(refuse(format!("port {name} is 0"))),
            _ => {}
        }
    }
    Ok(())
}

pub fn healthy(services: &ServicesState, p: &InstanceHealthy) -> Result<(), Rejection> {
    let event = EventKind::InstanceHealthy;
    let i = on_node(services, event, &p.instance, &p.node)?;
    match i.status {
        InstanceStatus::Running | InstanceStatus::Unhealthy => Ok(()),
        other => Err(Rejection::InstanceRefused {
            instance: p.instance.clone(),
            event,
            reason: format!("it is {}; only a running instance becomes healthy", other.name()),
        }),
    }
}

pub fn unhealthy(services: &ServicesState, p: &InstanceUnhealthy) -> Result<(), Rejection> {
    let event = EventKind::InstanceUnhealthy;
    let i = on_node(services, event, &p.instance, &p.node)?;
    match i.status {
        InstanceStatus::Running | InstanceStatus::Healthy => Ok(()),
        other => Err(Rejection::InstanceRefused {
            instance: p.instance.clone(),
            event,
            reason: format!("it is {}; only a running instance becomes unhealthy", other.name()),
        }),
    }
}

pub fn exited(services: &ServicesState, p: &InstanceExited) -> Result<(), Rejection> {
    let event = EventKind::InstanceExited;
    let i = on_node(services, event, &p.instance, &p.node)?;
    if i.status == InstanceStatus::Failed {
        return Err(Rejection::InstanceRefused {
            instance: p.instance.clone(),
            event,
            reason: "it already failed for good".into(),
        });
    }
    Ok(())
}

pub fn stopped(services: &ServicesState, p: &InstanceStopped) -> Result<(), Rejection> {
    let event = EventKind::InstanceStopped;
    let i = on_node(services, event, &p.instance, &p.node)?;
    if i.is_assigned() {
        return Err(Rejection::InstanceRefused {
            instance: p.instance.clone(),
            event,
            reason: format!("it is still assigned to node {}: nothing asked it to stop", i.node),
        });
    }
    Ok(())
}

pub fn agent_started(read: &dyn FleetRead, p: &NodeAgentStarted) -> Result<(), Rejection> {
    let event = EventKind::NodeAgentStarted;
    let n = read.node(&p.node).ok_or(Rejection::UnknownNode { node: p.node.clone(), event })?;
    if n.state.is_terminal() {
        return Err(Rejection::NodeRetired { node: p.node.clone(), event });
    }
    if p.address.is_empty() {
        return Err(Rejection::AgentRefused { node: p.node.clone(), event, reason: "its address is empty".into() });
    }
    Ok(())
}

pub fn agent_lost(services: &ServicesState, p: &NodeAgentLost) -> Result<(), Rejection> {
    match services.agent(&p.node) {
        Some(a) if a.running => Ok(()),
        other => Err(Rejection::AgentRefused {
            node: p.node.clone(),
            event: EventKind::NodeAgentLost,
            reason: if other.is_some() { "it is already lost".into() } else { "no agent ever started on it".into() },
        }),
    }
}

pub fn agent_returned(services: &ServicesState, p: &NodeAgentReturned) -> Result<(), Rejection> {
    match services.agent(&p.node) {
        Some(a) if !a.running => Ok(()),
        other => Err(Rejection::AgentRefused {
            node: p.node.clone(),
            event: EventKind::NodeAgentReturned,
            reason: if other.is_some() { "it is not lost".into() } else { "no agent ever started on it".into() },
        }),
    }
}

fn service_refused(service: &str, event: EventKind) -> impl Fn(String) -> Rejection + use<> {
    let service = service.to_owned();
    move |reason: String| Rejection::ServiceRefused { service: service.clone(), event, reason }
}

/// The service as the live spec declares it.
fn declared<'a>(read: &'a dyn FleetRead, name: &str, event: EventKind) -> Result<&'a Service, Rejection> {
    let refuse = service_refused(name, event);
    let live = read.live_spec().ok_or_else(|| refuse("no spec is live".into()))?;
    live.spec
        .services
        .get(name)
        .ok_or_else(|| refuse(format!("the live spec (seq {}) does not declare service {name}", live.seq)))
}

/// The service's running deployment at `version`.
fn running<'s>(
    services: &'s ServicesState,
    name: &str,
    version: &Hash,
    event: EventKind,
) -> Result<&'s Deployment, Rejection> {
    let refuse = service_refused(name, event);
    match services.deployment(name) {
        Some(d) if d.running() && d.version == *version => Ok(d),
        Some(d) if d.running() => {
            Err(refuse(format!("its running deployment is of version {}, not {version}", d.version)))
        }
        _ => Err(refuse(format!("service {name} has no deployment running"))),
    }
}

pub fn deployment_started(
    services: &ServicesState,
    read: &dyn FleetRead,
    p: &DeploymentStarted,
) -> Result<(), Rejection> {
    let event = EventKind::DeploymentStarted;
    let refuse = service_refused(&p.service, event);
    let service = declared(read, &p.service, event)?;
    let live = Task::of(service).version();
    let last = services.deployment(&p.service);
    if p.revert {
        let Some(d) = last else { return Err(refuse("it has no deployment to revert".into())) };
        match &d.ended {
            Some((_, DeploymentOutcome::Failed | DeploymentOutcome::Aborted, _)) if !d.revert => {}
            Some((_, DeploymentOutcome::Completed | DeploymentOutcome::Superseded, _)) | None => {
                return Err(refuse(format!("its deployment of {} did not fail and was not aborted", d.version)));
            }
            Some(_) => return Err(refuse("its last deployment was a revert already".into())),
        }
        if p.from != Some(d.version) || d.version != live {
            return Err(refuse(format!("a revert replaces the failed version {}, the live one", d.version)));
        }
        match services.stable.get(&p.service) {
            Some((stable, _)) if *stable == p.task_digest => Ok(()),
            Some((stable, _)) => Err(refuse(format!("its stable version is {stable}, not {}", p.task_digest))),
            None => Err(refuse("it has no stable version to revert to".into())),
        }
    } else {
        if p.task_digest != live {
            return Err(refuse(format!("{} is not its live version {live}", p.task_digest)));
        }
        if let Some(d) = last.filter(|d| d.running()) {
            return Err(refuse(format!(
                "its deployment of {} (seq {}) is still running; it ends (superseded) first",
                d.version, d.seq
            )));
        }
        if let Some(d) = last
            && (d.version == live || (d.revert && d.from == Some(live)))
        {
            return Err(refuse(format!("a deployment of {live} was started at seq {} already", d.seq)));
        }
        if let Some(from) = p.from
            && !services.versions.contains_key(&from)
            && services.stable.get(&p.service).map(|(v, _)| *v) != Some(from)
        {
            return Err(refuse(format!("no instance runs the version {from} it says it replaces")));
        }
        Ok(())
    }
}

pub fn updated(services: &ServicesState, read: &dyn FleetRead, p: &InstanceUpdated) -> Result<(), Rejection> {
    let event = EventKind::InstanceUpdated;
    let (old, refuse) = replaced(services, event, &p.replaces, &p.service)?;
    let d = running(services, &p.service, &p.task_digest, event)?;
    if old.version == d.version {
        return Err(refuse(format!("it runs version {} already", d.version)));
    }
    if let Some(next) = &old.handover {
        return Err(refuse(format!("it is already being handed over to {next}")));
    }
    if !old.is_live() {
        return Err(refuse("it was replaced, asked to stop, or failed; there is nothing to update".into()));
    }
    let service = placement(services, read, event, &p.service, &p.instance, &p.node, &p.task_digest)?;
    let refuse = service_refused(&p.service, event);
    let canaries = deploy::canaries(service, d);
    if canaries > 0 && deploy::placed_new(services, &p.service, d) >= canaries {
        return Err(refuse(format!(
            "its deployment placed its {canaries} canar{} and waits for `sendan service promote {}`",
            if canaries == 1 { "y" } else { "ies" },
            p.service
        )));
    }
    let in_flight = handovers_in_flight(services, &p.service);
    if in_flight >= service.update.max_parallel {
        return Err(refuse(format!(
            "{in_flight} hand-over(s) in flight already, and update.maxParallel is {}",
            service.update.max_parallel
        )));
    }
    Ok(())
}

pub fn deployment_promoted(
    services: &ServicesState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &DeploymentPromoted,
) -> Result<(), Rejection> {
    let event = EventKind::DeploymentPromoted;
    let refuse = service_refused(&p.service, event);
    let service = declared(read, &p.service, event)?;
    let d = running(services, &p.service, &p.task_digest, event)?;
    let canaries = deploy::canaries(service, d);
    if canaries == 0 {
        return Err(refuse(if d.promoted.is_some() {
            "it was promoted already".into()
        } else {
            "its deployment has no canaries to promote".into()
        }));
    }
    let good = deploy::good(services, &p.service, service, d, ctx.now);
    if good < canaries {
        return Err(refuse(format!(
            "{good} of its {canaries} canaries have been healthy for update.minHealthySeconds ({} s); promote once they all have",
            service.update.min_healthy_seconds
        )));
    }
    Ok(())
}

pub fn deployment_ended(
    services: &ServicesState,
    read: &dyn FleetRead,
    ctx: &Ctx,
    p: &DeploymentEnded,
) -> Result<(), Rejection> {
    let event = EventKind::DeploymentEnded;
    let refuse = service_refused(&p.service, event);
    let service = declared(read, &p.service, event)?;
    let d = running(services, &p.service, &p.task_digest, event)?;
    match p.outcome {
        DeploymentOutcome::Aborted => Ok(()),
        DeploymentOutcome::Completed if deploy::complete(services, &p.service, service, d) => Ok(()),
        DeploymentOutcome::Completed => Err(refuse(format!(
            "not every one of its {} replicas runs {} and is healthy yet",
            service.replicas, p.task_digest
        ))),
        DeploymentOutcome::Failed => match deploy::failure(services, &p.service, service, d, ctx.now) {
            Some(_) => Ok(()),
            None => Err(refuse("none of its new instances failed or overran its healthy deadline".into())),
        },
        DeploymentOutcome::Superseded => {
            let live = Task::of(service).version();
            if d.version == live || (d.revert && d.from == Some(live)) {
                return Err(refuse(format!("the live spec still runs it at {live}")));
            }
            Ok(())
        }
    }
}
