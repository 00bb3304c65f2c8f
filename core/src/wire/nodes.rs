//! Nodes, machines, declared nodes, installs and node tokens on the wire.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::facts::HardwareFacts;
use crate::ids::{Hash, MachineId, NodeId, Timestamp};
use crate::kind::EventKind;
use crate::lifecycle::NodeState;
use crate::machines::enrollment::{DeclaredNode, problem_sentence};
use crate::machines::events::InstallStep;
use crate::machines::{self, MachineRecord, MachinesState};
use crate::nodes::NodeRecord;
use crate::power::events::{BootOverride, Power, PowerAction, PowerOutcome};
use crate::read::FleetRead;
use crate::rejection::IdentityRefusal;

/// A node: a declared node id bound to a machine, and where it stands in its lifecycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Node {
    pub id: NodeId,
    pub state: NodeState,
    pub machine: MachineId,
    pub class: Option<String>,
    pub pool: Option<String>,
    pub profile: Option<String>,
    /// The enrollment rule that bound it, if a rule did.
    pub rule: Option<String>,
    /// The seq of the event that moved it into `state`.
    pub since: u64,
    /// The seq of the last event about it.
    pub updated: u64,
    /// Why it last failed, while it is `failed`.
    pub reason: Option<String>,
    /// The hash of its live node token, if one was issued.
    pub token: Option<Hash>,
    /// While it is `active` and cordoned (it takes no new instances): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordoned: Option<String>,
    /// While it is `draining`: the drain's terms and whether its agent reported everything stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainView>,
}

/// A drain on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DrainView {
    /// The seq of the event that started it (or last set its terms).
    pub seq: u64,
    pub started_at: Timestamp,
    pub deadline: Option<Timestamp>,
    pub force: bool,
    /// The seq of its `NodeDrained`: every instance that ran there was reported stopped.
    pub drained: Option<u64>,
    /// The rollout that drained it before its wave (it is uncordoned once it confirms the rollout's system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<u64>,
}

impl From<&NodeRecord> for Node {
    fn from(r: &NodeRecord) -> Node {
        let NodeRecord { id, state, machine, class, pool, profile, rule, since, updated, reason, token, cordon, drain } =
            r;
        Node {
            id: id.clone(),
            state: *state,
            machine: machine.clone(),
            class: class.clone(),
            pool: pool.clone(),
            profile: profile.clone(),
            rule: rule.clone(),
            since: *since,
            updated: *updated,
            reason: reason.clone(),
            token: *token,
            cordoned: cordon.as_ref().map(|(_, why)| why.clone()),
            drain: drain.map(|d| DrainView {
                seq: d.seq,
                started_at: d.at,
                deadline: d.deadline,
                force: d.force,
                drained: d.drained,
                rollout: d.rollout,
            }),
        }
    }
}

/// A machine that phoned home, and the node bound to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Machine {
    pub id: MachineId,
    /// What it reported, the last time it phoned home.
    pub facts: HardwareFacts,
    /// The node bound to it; absent while it is `discovered` (or after a rebind released it).
    pub node: Option<NodeId>,
    /// The seqs of its first and latest phone-home.
    pub first_seen: u64,
    pub last_seen: u64,
}

impl From<&MachineRecord> for Machine {
    fn from(r: &MachineRecord) -> Machine {
        let MachineRecord { id, facts, node, first_seen, last_seen } = r;
        Machine {
            id: id.clone(),
            facts: facts.clone(),
            node: node.clone(),
            first_seen: *first_seen,
            last_seen: *last_seen,
        }
    }
}

/// `GET /v1/nodes`: the fleet after event `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodesView {
    pub seq: u64,
    /// Nodes with a lifecycle: each bound to a machine.
    pub nodes: Vec<Node>,
    /// Machines that phoned home and are bound to no node (`discovered`).
    pub machines: Vec<Machine>,
    /// Nodes the live spec declares that no machine is bound to yet, and what would bind them (absent in
    /// answers of releases before it).
    #[serde(default)]
    pub declared: Vec<DeclaredNode>,
}

/// What `GET /v1/nodes` lists: everything, or one state (a lifecycle state, or `declared`), of one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFilter {
    pub state: Option<StateFilter>,
    pub pool: Option<String>,
}

/// `?state=`: a lifecycle state (`discovered` lists the machines no node is bound to), or `declared` (the live
/// spec's nodes no machine is bound to yet, which have no lifecycle state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    Lifecycle(NodeState),
    Declared,
}

impl std::str::FromStr for StateFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<StateFilter, String> {
        if s == "declared" {
            return Ok(StateFilter::Declared);
        }
        NodeState::ALL.into_iter().find(|st| st.name() == s).map(StateFilter::Lifecycle).ok_or_else(|| {
            let names: Vec<&str> = NodeState::ALL.iter().map(|st| st.name()).collect();
            format!("`{s}` is not a state to list: use `declared` or a lifecycle state ({})", names.join(", "))
        })
    }
}

impl NodesView {
    /// The nodes, unbound machines and declared nodes of `fleet` that `filter` keeps.
    pub fn of(fleet: &crate::fleet::FleetState, filter: &NodeFilter) -> NodesView {
        let pool_ok = |p: Option<&String>| filter.pool.as_ref().is_none_or(|want| p == Some(want));
        let (nodes, machines, declared) = match filter.state {
            None => (true, true, true),
            Some(StateFilter::Declared) => (false, false, true),
            Some(StateFilter::Lifecycle(NodeState::Discovered)) => (false, true, false),
            Some(StateFilter::Lifecycle(_)) => (true, false, false),
        };
        let state_ok = |s: NodeState| match filter.state {
            Some(StateFilter::Lifecycle(want)) => s == want,
            _ => true,
        };
        NodesView {
            seq: fleet.seq,
            nodes: if nodes {
                fleet
                    .nodes
                    .records
                    .values()
                    .filter(|n| state_ok(n.state) && pool_ok(n.pool.as_ref()))
                    .map(|n| Node::from(n.as_ref()))
                    .collect()
            } else {
                Vec::new()
            },
            // Unbound machines belong to no pool yet.
            machines: if machines && filter.pool.is_none() {
                fleet.unbound_machines().map(Machine::from).collect()
            } else {
                Vec::new()
            },
            declared: if declared {
                crate::machines::enrollment::declared(fleet).into_iter().filter(|d| pool_ok(d.pool.as_ref())).collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// `GET /v1/nodes/{id}`: one node after event `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeView {
    pub seq: u64,
    pub node: Node,
    pub machine: Option<Machine>,
    /// The lifecycle events legal in the node's state.
    pub allowed: Vec<EventKind>,
}

/// One machine of `GET /v1/machines`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MachineView {
    pub machine: Machine,
    /// Why enrollment did not bind it, when it is unbound and that was decided on its latest facts.
    pub problem: Option<String>,
}

/// `GET /v1/machines`: every machine that phoned home, bound or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MachinesView {
    pub seq: u64,
    pub machines: Vec<MachineView>,
}

impl MachinesView {
    pub fn of(ms: &MachinesState, seq: u64) -> MachinesView {
        let machines = ms
            .records
            .values()
            .map(|m| MachineView {
                machine: Machine::from(m.as_ref()),
                problem: m
                    .node
                    .is_none()
                    .then(|| ms.bootstrap.enrollment.get(&m.id))
                    .flatten()
                    .filter(|p| p.seen == m.last_seen)
                    .map(|p| problem_sentence(&p.problem)),
            })
            .collect();
        MachinesView { seq, machines }
    }
}

/// Why a node's install plan was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanRefusal {
    /// The seq of the refusal.
    pub seq: u64,
    /// The spec digest, the node's `since` and its machine's `last_seen` it was decided on.
    pub spec: Hash,
    pub since: u64,
    pub seen: u64,
    pub layout: String,
    pub reasons: Vec<String>,
}

impl From<&machines::PlanRefusal> for PlanRefusal {
    fn from(r: &machines::PlanRefusal) -> PlanRefusal {
        let machines::PlanRefusal { seq, spec, since, seen, layout, reasons } = r;
        PlanRefusal {
            seq: *seq,
            spec: *spec,
            since: *since,
            seen: *seen,
            layout: layout.clone(),
            reasons: reasons.clone(),
        }
    }
}

/// The last install step an installer reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Progress {
    pub seq: u64,
    pub step: InstallStep,
    pub detail: String,
}

impl From<&machines::Progress> for Progress {
    fn from(p: &machines::Progress) -> Progress {
        let machines::Progress { seq, step, detail } = p;
        Progress { seq: *seq, step: *step, detail: detail.clone() }
    }
}

/// The SSH host public key an installer reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostKey {
    pub seq: u64,
    pub key: String,
}

impl From<&machines::HostKey> for HostKey {
    fn from(k: &machines::HostKey) -> HostKey {
        let machines::HostKey { seq, key } = k;
        HostKey { seq: *seq, key: key.clone() }
    }
}

/// `GET /v1/nodes/{id}/install`: what the log says about a node's install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InstallView {
    pub seq: u64,
    pub node: NodeId,
    pub state: NodeState,
    /// Why its install plan was refused, if it was, in its current state.
    pub refusal: Option<PlanRefusal>,
    /// The last install step its installer reported.
    pub progress: Option<Progress>,
    /// The SSH host public key its installer reported.
    pub ssh_host_key: Option<HostKey>,
    /// Whether an installer holds a live session for its machine.
    pub installer_session: bool,
}

impl InstallView {
    pub fn of(ms: &MachinesState, fleet: &dyn FleetRead, node: &NodeId) -> Option<InstallView> {
        let n = fleet.node(node)?;
        let bs = &ms.bootstrap;
        Some(InstallView {
            seq: fleet.seq(),
            node: node.clone(),
            state: n.state,
            refusal: bs.refusals.get(node).filter(|r| r.since == n.since).map(|r| PlanRefusal::from(r.as_ref())),
            progress: bs.progress.get(node).map(|p| Progress::from(p.as_ref())),
            ssh_host_key: bs.host_keys.get(node).map(|k| HostKey::from(k.as_ref())),
            installer_session: bs.sessions.contains_key(n.machine),
        })
    }
}

/// `POST /v1/nodes/{id}/token`: a new node token, shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IssuedToken {
    pub node: NodeId,
    pub token: String,
    /// The seq of the `NodeTokenIssued` event.
    pub seq: u64,
}

/// A phone-home this member refused because its facts claimed an identity its token does not prove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RefusedPhoneHome {
    /// Numbered per member, from 1.
    pub id: u64,
    pub time: Timestamp,
    /// Where the request came from.
    pub source: String,
    /// The NIC the bootstrap token was made for.
    pub mac: String,
    /// The machine the facts identify.
    pub machine: Option<MachineId>,
    pub refusal: IdentityRefusal,
    pub message: String,
    pub facts: HardwareFacts,
}

/// `GET /v1/machines/refused`: one member's recent phone-home refusals, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RefusedView {
    /// The member answering (each keeps its own).
    pub member: u64,
    pub refused: Vec<RefusedPhoneHome>,
}

/// `GET /v1/nodes/{id}/power`: the node's BMC as declared (no secret: the password stays in its file on the
/// servers), the power request being carried out, how the last one ended, the power state last recorded, and —
/// with `?live=true` — what the BMC says now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodePowerView {
    pub seq: u64,
    pub node: NodeId,
    /// The live spec's `nodes.<id>.bmc`, if any.
    pub bmc: Option<BmcView>,
    pub pending: Option<PowerRequestView>,
    pub last: Option<PowerResultView>,
    /// The power state last recorded in the log, and the seq that recorded it.
    pub observed: Option<(Power, u64)>,
    /// What the BMC reported just now (with `?live=true`).
    #[serde(default)]
    pub live: Option<LivePower>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BmcView {
    /// `redfish` or `ipmi`.
    pub driver: String,
    pub address: String,
    pub user: String,
    pub system: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PowerRequestView {
    /// The seq of its `PowerRequested`: the request id.
    pub seq: u64,
    pub time: Timestamp,
    pub action: Option<PowerAction>,
    pub boot: Option<BootOverride>,
    pub force: bool,
    /// `boot pxe once, then reboot`.
    pub summary: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PowerResultView {
    pub request: PowerRequestView,
    /// The seq of its `PowerCompleted`.
    pub seq: u64,
    pub outcome: PowerOutcome,
    pub error: Option<String>,
}

/// A BMC's answer now: its power state, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LivePower {
    pub power: Option<Power>,
    pub error: Option<String>,
}

impl PowerRequestView {
    pub fn of(r: &crate::power::PowerRequest) -> Self {
        PowerRequestView {
            seq: r.seq,
            time: r.time,
            action: r.action,
            boot: r.boot,
            force: r.force,
            summary: r.describe(),
        }
    }
}

impl NodePowerView {
    /// The log's side of the view (`live` left empty).
    pub fn of(fleet: &crate::fleet::FleetState, node: &NodeId) -> Self {
        let bmc = fleet.bmc(node);
        let p = fleet.power.get(node);
        NodePowerView {
            seq: fleet.seq,
            node: node.clone(),
            bmc: bmc.map(|b| BmcView {
                driver: match b.driver {
                    crate::spec::BmcDriver::Redfish => "redfish".into(),
                    crate::spec::BmcDriver::Ipmi => "ipmi".into(),
                },
                address: b.address.clone(),
                user: b.user.clone(),
                system: b.system.clone(),
            }),
            pending: p.and_then(|p| p.pending.as_ref()).map(PowerRequestView::of),
            last: p.and_then(|p| p.last.as_ref()).map(|l| PowerResultView {
                request: PowerRequestView::of(&l.request),
                seq: l.seq,
                outcome: l.outcome,
                error: l.error.clone(),
            }),
            observed: p.and_then(|p| p.observed),
            live: None,
        }
    }
}
