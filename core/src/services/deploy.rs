//! Deployments: what the scheduler and `check` both ask of a service's running deployment — which instances
//! are its new ones, whether it failed (a new instance failed, or was not healthy within its deadline), whether
//! its canaries are good, and whether it is complete. Pure; the planner decides from these and `check` refuses
//! what they do not allow.

use super::{Deployment, Instance, InstanceStatus, ServicesState};
use crate::ids::Timestamp;
use crate::spec::Service;

/// The deployment's new instances still in the state (placed at its version since it started), in id order.
pub fn new_instances<'a>(
    services: &'a ServicesState,
    name: &str,
    d: &'a Deployment,
) -> impl Iterator<Item = &'a Instance> + 'a {
    services.of_service(name).filter(move |i| i.version == d.version && i.placed >= d.seq)
}

/// Why the deployment failed, if it did at `now`: one of its new instances failed for good, or has not been
/// healthy within `update.healthyDeadlineSeconds` of its placement.
pub fn failure(
    services: &ServicesState,
    name: &str,
    service: &Service,
    d: &Deployment,
    now: Timestamp,
) -> Option<String> {
    let deadline_ms = i64::from(service.update.healthy_deadline_seconds) * 1000;
    for i in new_instances(services, name, d).filter(|i| i.is_assigned()) {
        if i.status == InstanceStatus::Failed {
            let why = i.reason.as_deref().unwrap_or("it exited");
            return Some(format!("{} on {} failed: {why}", i.id, i.node));
        }
        if i.status != InstanceStatus::Healthy && now.0 - i.placed_at.0 > deadline_ms {
            return Some(format!(
                "{} on {} was not healthy within update.healthyDeadlineSeconds ({} s): it is {}{}",
                i.id,
                i.node,
                service.update.healthy_deadline_seconds,
                i.status.name(),
                i.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            ));
        }
    }
    None
}

/// The canaries it waits on before promotion: 0 for a revert, or once promoted.
pub fn canaries(service: &Service, d: &Deployment) -> u32 {
    if d.revert || d.promoted.is_some() { 0 } else { service.update.canary.min(service.replicas) }
}

/// Its new instances still assigned (placed, not asked to stop): before promotion, its canaries.
pub fn placed_new(services: &ServicesState, name: &str, d: &Deployment) -> u32 {
    new_instances(services, name, d).filter(|i| i.is_assigned()).count() as u32
}

/// Its new instances that are healthy and have been for `update.minHealthySeconds`.
pub fn good(services: &ServicesState, name: &str, service: &Service, d: &Deployment, now: Timestamp) -> u32 {
    let min_ms = i64::from(service.update.min_healthy_seconds) * 1000;
    new_instances(services, name, d)
        .filter(|i| i.is_assigned() && i.status == InstanceStatus::Healthy && now.0 - i.since_at.0 >= min_ms)
        .count() as u32
}

/// Whether it placed its canaries and waits for promotion.
pub fn awaiting_promotion(services: &ServicesState, name: &str, service: &Service, d: &Deployment) -> bool {
    let c = canaries(service, d);
    c > 0 && placed_new(services, name, d) >= c
}

/// Whether it is complete: the service has its replicas, every instance still assigned runs the new version
/// and is healthy.
pub fn complete(services: &ServicesState, name: &str, service: &Service, d: &Deployment) -> bool {
    let mut healthy = 0;
    for i in services.of_service(name).filter(|i| i.is_assigned()) {
        if i.version != d.version || i.status != InstanceStatus::Healthy {
            return false;
        }
        healthy += 1;
    }
    healthy >= service.replicas
}
