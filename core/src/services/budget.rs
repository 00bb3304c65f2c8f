//! The one budget model: may a set of nodes be taken out of service now? Host rollouts (each wave, and each
//! revert batch), reprovisions and retirements ask [`disruption`] through `FleetRead::disruption`; drains need
//! not, because a drain hands each instance over to a healthy replacement before it stops the old one (and one
//! forced past its deadline says so in its stop requests).
//!
//! A service's budget is `replicas - max_unavailable` healthy instances (`Service::min_healthy`). Taking nodes
//! out takes away the healthy instances on them; the disruption is allowed when every service keeps at least its
//! floor — or loses nothing healthy. So a service already below its floor through an involuntary loss (a node
//! failed, an instance crashed) blocks every voluntary disruption that would take one more healthy instance
//! away, and does not block one that takes none.

use std::collections::BTreeSet;
use std::fmt;

use super::{InstanceStatus, ServicesState};
use crate::ids::NodeId;
use crate::spec::ClusterSpec;

/// A service a disruption would take below its budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    pub service: String,
    pub replicas: u32,
    /// Healthy instances now, and how many of them the disruption takes away.
    pub healthy: u32,
    pub taken: u32,
    /// The fewest healthy instances its budget allows.
    pub min_healthy: u32,
    /// The nodes out whose healthy instances it loses.
    pub on: Vec<NodeId>,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.on.iter().map(NodeId::as_str).collect();
        write!(
            f,
            "taking {} out leaves service {} with {} healthy of {} replicas, and its disruption budget keeps at least {} healthy",
            names.join(", "),
            self.service,
            self.healthy - self.taken,
            self.replicas,
            self.min_healthy
        )
    }
}

/// The healthy instances of `service` now: those published in its endpoints (healthy and still assigned).
pub fn healthy_count(services: &ServicesState, service: &str) -> u32 {
    services.of_service(service).filter(|i| i.status == InstanceStatus::Healthy && i.is_assigned()).count() as u32
}

/// Whether taking the nodes `out` out of service now keeps every service of `spec` within its budget; the
/// first (by name) it would not, otherwise.
pub fn disruption(services: &ServicesState, spec: &ClusterSpec, out: &BTreeSet<NodeId>) -> Result<(), Breach> {
    if out.is_empty() {
        return Ok(());
    }
    for (name, service) in &spec.services {
        let mut on: Vec<NodeId> = Vec::new();
        let mut taken = 0;
        for i in services.of_service(name).filter(|i| i.status == InstanceStatus::Healthy && i.is_assigned()) {
            if out.contains(&i.node) {
                taken += 1;
                if !on.contains(&i.node) {
                    on.push(i.node.clone());
                }
            }
        }
        if taken == 0 {
            continue;
        }
        let healthy = healthy_count(services, name);
        let min_healthy = service.min_healthy();
        if healthy - taken < min_healthy {
            on.sort();
            return Err(Breach { service: name.clone(), replicas: service.replicas, healthy, taken, min_healthy, on });
        }
    }
    Ok(())
}
