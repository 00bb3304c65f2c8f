//! What the services aggregate answers about a service: its published endpoints (healthy instances only, in
//! order) and the counts `sendan service list|status` shows.

use super::{Instance, InstanceStatus, ServicesState};

/// The instances a load balancer should send to: healthy, still assigned (not asked to stop, not replaced), on a
/// node whose agent runs. In instance id order.
pub fn endpoints<'a>(services: &'a ServicesState, service: &str) -> Vec<&'a Instance> {
    services
        .of_service(service)
        .filter(|i| i.status == InstanceStatus::Healthy && i.is_assigned())
        .filter(|i| services.agent(&i.node).is_some_and(|a| a.running))
        .collect()
}

/// Live and healthy instances of a service.
pub fn counts(services: &ServicesState, service: &str) -> (u32, u32) {
    let live = services.of_service(service).filter(|i| i.is_live()).count() as u32;
    (live, endpoints(services, service).len() as u32)
}
