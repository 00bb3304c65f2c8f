//! The install plan a node is served: the declared plan (`ClusterSpec::install_plan`) plus what only the
//! bootstrap knows — the layout's disks resolved against the disks the machine reported, and the disko
//! configuration rendered with those real devices. Pure: the server serves it, `check` uses it to refuse an
//! install whose layout does not fit before anything is written, and enrollment records such refusals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Hash, MachineId, NodeId};
use crate::lifecycle::NodeState;
use crate::read::FleetRead;
pub use crate::read::PlanUnavailable;
use crate::spec::{InstallPlan, ResolvedDisk};

/// `GET /v1/bootstrap/plan` and `GET /v1/nodes/{id}/plan`: everything the installer needs to install the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServedPlan {
    pub node: NodeId,
    pub machine: MachineId,
    pub state: NodeState,
    /// The digest of the live spec the plan was made from.
    pub spec: Hash,
    /// Hostname, network, system, substituters and trusted keys, the layout as declared.
    pub plan: InstallPlan,
    /// Each disk of the layout, resolved against the disks the machine reported.
    pub disks: BTreeMap<String, ResolvedDisk>,
    /// The disko configuration, `{"disko": {"devices": …}}`, with each disk's real device.
    pub disko: serde_json::Value,
}

/// `POST /v1/bootstrap/phone-home`: the installer's hardware facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneHome {
    pub facts: crate::facts::HardwareFacts,
}

/// Decode a phone-home body (`{"facts": …}`) the way the server does: JSON, every string and list of the facts
/// within its cap with printable text (checked on the raw JSON, before anything is built from it), the shape of
/// [`PhoneHome`], and hardware MACs. The error is a sentence naming the field.
pub fn decode_phone_home(body: &[u8]) -> Result<crate::facts::HardwareFacts, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the phone-home is not valid JSON: {e}"))?;
    if !value.is_object() {
        return Err("the phone-home must be a JSON object with `facts`".into());
    }
    if let Some(facts) = value.get("facts") {
        crate::bounds::check_facts_json(facts).map_err(|e| format!("the facts: {e}"))?;
    }
    let PhoneHome { facts } = serde_json::from_value(value).map_err(|e| format!("the phone-home is not valid: {e}"))?;
    facts.check().map_err(|e| format!("the facts: {e}"))?;
    Ok(facts)
}

/// The answer to a phone-home: the key the machine is known by, and its node if it is bound already.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PhoneHomeView {
    pub machine: MachineId,
    /// The seq of the claim.
    pub seq: u64,
    pub node: Option<NodeId>,
    /// `discovered` while unbound, else the node's state.
    pub state: NodeState,
}

/// `POST /v1/bootstrap/node-token`: the installer spends its bootstrap token for a node token it generated
/// itself; only the token's hash is sent, so the token never leaves the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenExchange {
    /// The OpenSSH public key of the host key generated on the node.
    #[serde(alias = "sshHostKey")] // the installer of releases before the one casing rule
    pub ssh_host_key: String,
    /// sha256 of the node token.
    #[serde(alias = "tokenHash")]
    pub token_hash: Hash,
}

/// The answer to a token exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Exchanged {
    pub node: NodeId,
    /// The seq of the `NodeTokenIssued` event.
    pub seq: u64,
}

/// The plan of node `node` as the fleet stands: made from the live spec and the facts its machine reported.
pub fn plan_for(fleet: &dyn FleetRead, node: &NodeId) -> Result<ServedPlan, PlanUnavailable> {
    let (layout, resolved) = fleet.layout_of(node)?;
    let live = fleet.live_spec().ok_or(PlanUnavailable::NoSpec)?;
    let record = fleet.node(node).ok_or_else(|| PlanUnavailable::UnknownNode { node: node.clone() })?;
    let plan =
        live.spec.install_plan(node.as_str()).ok_or_else(|| PlanUnavailable::Incomplete { node: node.clone() })?;
    let disko = live.spec.disk_layouts[&layout].render_disko(&resolved);
    Ok(ServedPlan {
        node: node.clone(),
        machine: record.machine.clone(),
        state: record.state,
        spec: live.digest,
        plan,
        disks: resolved,
        disko,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FleetState;
    use crate::event::{MachineDiscovered, NodeCommissioned, Payload, SpecApplied};
    use crate::facts::Disk;
    use crate::facts::HardwareFacts;
    use crate::ids::{Actor, EventId, Timestamp};

    const GB: u64 = 1_000_000_000;

    fn fleet_with(disks: Vec<Disk>) -> FleetState {
        let spec = crate::spec::fixture::spec();
        let machine = MachineId::new("m1").unwrap();
        let payloads: Vec<Payload> = vec![
            SpecApplied { digest: spec.digest(), document: spec.canonical_json() }.into(),
            MachineDiscovered { machine: machine.clone(), facts: HardwareFacts { disks, ..Default::default() } }.into(),
            NodeCommissioned {
                node: NodeId::new("worker-02").unwrap(),
                machine,
                class: None,
                pool: None,
                profile: None,
                rule: None,
            }
            .into(),
        ];
        let mut fleet = FleetState::default();
        for (i, payload) in payloads.into_iter().enumerate() {
            let p = crate::Proposal {
                id: EventId::from_u128(i as u128 + 1),
                time: Timestamp(1),
                actor: Actor::Admin,
                comment: None,
                cause: None,
                payload,
            };
            crate::log::append(&mut fleet, &[p]).unwrap();
        }
        fleet
    }

    fn disk(name: &str, gb: u64) -> Disk {
        Disk {
            name: name.into(),
            size_bytes: gb * GB,
            by_id: Some(format!("/dev/disk/by-id/x-{name}")),
            ..Disk::default()
        }
    }

    #[test]
    fn given_disks_that_fit_then_the_plan_carries_resolved_devices_and_disko() {
        let fleet = fleet_with(vec![disk("sda", 500), disk("nvme0n1", 1000)]);
        let plan = plan_for(&fleet, &NodeId::new("worker-02").unwrap()).unwrap();
        assert_eq!(plan.plan.hostname, "worker-02");
        assert_eq!(plan.state, NodeState::Commissioned);
        assert_eq!(plan.spec, fleet.specs.live.as_ref().unwrap().digest);
        assert_eq!(plan.disks.len(), 1);
        let root = plan.disks.values().next().unwrap();
        assert_eq!(plan.disko["disko"]["devices"]["disk"]["root"]["device"], root.device.as_str());
    }

    #[test]
    fn given_no_disks_then_the_plan_is_refused_with_every_reason() {
        let fleet = fleet_with(vec![]);
        let err = plan_for(&fleet, &NodeId::new("worker-02").unwrap()).unwrap_err();
        assert!(matches!(&err, PlanUnavailable::DoesNotFit { .. }), "{err:?}");
        let PlanUnavailable::DoesNotFit { layout, reasons, .. } = &err else { return };
        assert_eq!(layout, "single");
        assert_eq!(reasons[0], "the machine reported no disks");
        assert!(
            err.to_string()
                .starts_with("disk layout 'single' of node worker-02 does not fit the disks of machine m1: ")
        );
    }

    #[test]
    fn given_an_undeclared_or_unbound_node_then_there_is_no_plan() {
        let fleet = fleet_with(vec![disk("sda", 500)]);
        assert_eq!(
            plan_for(&fleet, &NodeId::new("cp-1").unwrap()),
            Err(PlanUnavailable::UnknownNode { node: NodeId::new("cp-1").unwrap() })
        );
        assert_eq!(plan_for(&FleetState::default(), &NodeId::new("x").unwrap()), Err(PlanUnavailable::NoSpec));
    }
}
