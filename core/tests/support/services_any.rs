//! Any service or node-agent payload for a kind, from a few numbers: for the property tests and the fuzz
//! target that throw every kind at `check` (most are refused; the point is that none panics or half-applies).

use sendan_core::event::*;
use sendan_core::fleet::FleetState;
use sendan_core::ids::{Hash, InstanceId, NodeId, Timestamp};
use sendan_core::services::{InstanceStatus, deploy};

pub fn any_service_payload(kind: EventKind, node: NodeId, n: u64) -> Option<Payload> {
    let instance = InstanceId::new(format!("web.{}", n % 4 + 1)).unwrap();
    let version = Hash::of(&n.to_be_bytes());
    Some(match kind {
        EventKind::InstancePlaced => {
            InstancePlaced { service: "web".into(), instance, node, task_digest: version }.into()
        }
        EventKind::InstanceRescheduled => InstanceRescheduled {
            service: "web".into(),
            instance,
            node,
            task_digest: version,
            replaces: InstanceId::new("web.1").unwrap(),
            lost: n % 2 == 0,
            attempt: (n % 3) as u32,
        }
        .into(),
        EventKind::InstanceMigrated => InstanceMigrated {
            service: "web".into(),
            instance,
            node,
            task_digest: version,
            replaces: InstanceId::new(format!("web.{}", n % 3 + 1)).unwrap(),
        }
        .into(),
        EventKind::InstanceUpdated => InstanceUpdated {
            service: "web".into(),
            instance,
            node,
            task_digest: version,
            replaces: InstanceId::new(format!("web.{}", n % 3 + 1)).unwrap(),
        }
        .into(),
        EventKind::DeploymentStarted => DeploymentStarted {
            service: "web".into(),
            task_digest: version,
            from: (n % 2 == 0).then(|| Hash::of(b"old")),
            revert: n % 3 == 0,
        }
        .into(),
        EventKind::DeploymentPromoted => DeploymentPromoted { service: "web".into(), task_digest: version }.into(),
        EventKind::DeploymentEnded => DeploymentEnded {
            service: "web".into(),
            task_digest: version,
            outcome: match n % 3 {
                0 => DeploymentOutcome::Completed,
                1 => DeploymentOutcome::Failed,
                _ => DeploymentOutcome::Aborted,
            },
            reason: "r".into(),
        }
        .into(),
        EventKind::InstanceStopRequested => InstanceStopRequested { instance, node, reason: "surplus".into() }.into(),
        EventKind::InstanceStarted => InstanceStarted {
            instance,
            node,
            address: "127.0.0.1".into(),
            ports: [("http".to_owned(), 20_000 + (n % 100) as u16)].into_iter().collect(),
            restarts: (n % 3) as u32,
        }
        .into(),
        EventKind::InstanceHealthy => InstanceHealthy { instance, node }.into(),
        EventKind::InstanceUnhealthy => InstanceUnhealthy { instance, node, reason: "503".into() }.into(),
        EventKind::InstanceExited => InstanceExited {
            instance,
            node,
            exit_code: Some((n % 3) as i32),
            signal: None,
            restarting: n % 2 == 1,
            reason: "exited".into(),
        }
        .into(),
        EventKind::InstanceStopped => InstanceStopped { instance, node }.into(),
        EventKind::NodeAgentStarted => NodeAgentStarted { node, address: "127.0.0.1".into() }.into(),
        EventKind::NodeAgentLost => NodeAgentLost { node, silent_ms: n }.into(),
        EventKind::NodeAgentReturned => NodeAgentReturned { node }.into(),
        _ => return None,
    })
}

/// A service or node-agent event about `node` that fits the state, picked by `pick`: its agent starting or
/// returning, the scheduler's next decisions, and its agent's reports on the instances it holds.
pub fn legal_service_move(state: &FleetState, node: &NodeId, pick: usize, now: Timestamp) -> Option<Payload> {
    let s = &state.services;
    match s.agent(node) {
        None => return Some(NodeAgentStarted { node: node.clone(), address: "127.0.0.1".into() }.into()),
        Some(a) if !a.running => return Some(NodeAgentReturned { node: node.clone() }.into()),
        Some(_) => {}
    }
    let plan = sendan_core::services::planner::plan(s, state, now);
    let mut options: Vec<Payload> = plan.deployments.into_iter().map(|d| d.step.into()).collect();
    options.extend(plan.decisions.into_iter().map(|d| d.decision.into()));
    options.extend(plan.drained.into_iter().map(|d| d.event.into()));
    // The scheduler's own decisions are taken a third of the time when it has any, so hand-overs and deployment
    // steps (which need a run of agent reports before them) are reached, not drowned by the reports.
    if !options.is_empty() && pick % 3 == 0 {
        return Some(options[(pick / 3) % options.len()].clone());
    }
    // The operator's deployment moves: promote good canaries, or abort.
    let live = sendan_core::read::FleetRead::live_spec(state);
    for (name, d) in s.deployments.iter().filter(|(_, d)| d.running()) {
        let Some(service) = live.and_then(|l| l.spec.services.get(name)) else { continue };
        let task_digest = d.version;
        if deploy::awaiting_promotion(s, name, service, d)
            && deploy::good(s, name, service, d, now) >= deploy::canaries(service, d)
        {
            options.push(DeploymentPromoted { service: name.clone(), task_digest }.into());
        }
        if pick % 4 == 0 {
            let outcome = DeploymentOutcome::Aborted;
            options
                .push(DeploymentEnded { service: name.clone(), task_digest, outcome, reason: "abort".into() }.into());
        }
    }
    for i in s.on_node(node) {
        let (instance, node) = (i.id.clone(), node.clone());
        if !i.is_assigned() {
            options.push(InstanceStopped { instance, node }.into());
            continue;
        }
        let on = node.clone();
        let exited = |restarting| {
            InstanceExited {
                instance: i.id.clone(),
                node: on.clone(),
                exit_code: Some(1),
                signal: None,
                restarting,
                reason: "exit 1".into(),
            }
            .into()
        };
        match i.status {
            InstanceStatus::Pending | InstanceStatus::Restarting => {
                let ports = s
                    .task(&i.version)
                    .map(|t| {
                        t.ports
                            .iter()
                            .enumerate()
                            .map(|(k, (name, p))| (name.clone(), p.static_port.unwrap_or(20_000 + k as u16)))
                            .collect()
                    })
                    .unwrap_or_default();
                let restarts = i.restarts + u32::from(i.status == InstanceStatus::Restarting);
                options.push(InstanceStarted { instance, node, address: "127.0.0.1".into(), ports, restarts }.into());
            }
            InstanceStatus::Running | InstanceStatus::Unhealthy => {
                options.push(InstanceHealthy { instance, node }.into());
                options.push(exited(pick % 2 == 0));
            }
            InstanceStatus::Healthy => {
                options.push(InstanceUnhealthy { instance, node, reason: "503".into() }.into());
                options.push(exited(true));
            }
            InstanceStatus::Failed => {}
        }
    }
    if pick % 16 == 0 {
        options.push(NodeAgentLost { node: node.clone(), silent_ms: 30_000 }.into());
    }
    if options.is_empty() {
        return None;
    }
    Some(options[(pick / 2) % options.len()].clone())
}
