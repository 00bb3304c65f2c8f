//! Enrollment: which declared node a discovered machine becomes, and when a bound node is requested for
//! install. Pure decisions over the fleet and its live spec; the server runs [`decide`] as a controller on the
//! leader (`system:enrollment`), `sendan enroll --dry-run` shows [`explain`], and `check` recomputes the
//! refusals it is asked to record, so a recorded refusal is always true of the state it was recorded in.
//!
//! A machine is bound by the enrollment rule of highest priority that matches it (two at that priority are a
//! conflict, never a silent pick), to the node the rule names or the first free member of the pool it names,
//! if the machine meets the hardware policy of the node's class. A bound node whose disk layout fits its
//! machine's disks is requested for install; one whose layout does not fit is refused with the reasons, before
//! anything is written.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{MachinesState, Problem};
use crate::facts::HardwareFacts;
use crate::ids::{EventId, Hash, MachineId, NodeId};
use crate::lifecycle::NodeState;
use crate::nodes::events::NodeCommissioned;
use crate::read::{FleetRead, PlanUnavailable};
use crate::spec::hardware::binary_size;
use crate::spec::{ClusterSpec, Location, ResolvedDisk, Rule, SwitchPort, select_rule};

/// Where the machine's NICs are cabled, from the LLDP neighbours it reported: the switch ports, and the rack
/// whose switches those are.
pub fn location(spec: &ClusterSpec, facts: &HardwareFacts) -> Location {
    let ports = facts
        .nics
        .iter()
        .filter_map(|n| n.lldp.as_ref())
        .map(|l| SwitchPort { switch: l.switch.clone(), port: l.port.clone() })
        .collect();
    Location::from_ports(spec, ports)
}

/// What a machine is bound as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Binding {
    pub node: NodeId,
    pub class: String,
    pub pool: Option<String>,
    pub profile: String,
    pub rule: String,
}

/// What enrollment makes of one machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum EnrollOutcome {
    /// No spec is live, so there are no rules.
    NoSpec,
    /// The machine is bound already; re-discovery keeps its node.
    AlreadyBound {
        node: NodeId,
    },
    /// No rule matches: the machine stays `discovered` until an operator accepts it.
    NoRule,
    /// Several rules match at the top priority.
    Conflict {
        priority: u32,
        rules: Vec<String>,
    },
    /// A rule matches, but the machine cannot be bound.
    Refused {
        rule: String,
        reasons: Vec<String>,
    },
    Binds(Binding),
}

/// Enrollment of an unbound machine with `facts` under `spec`; `taken` holds every node id that is bound (or
/// being bound), which a pool never hands out again.
pub fn enroll(
    spec: &ClusterSpec,
    fleet: &dyn FleetRead,
    facts: &HardwareFacts,
    location: &Location,
    taken: &BTreeSet<NodeId>,
) -> EnrollOutcome {
    match select_rule(&spec.enrollment_rules, facts, location) {
        Err(conflict) => EnrollOutcome::Conflict { priority: conflict.priority, rules: conflict.rules },
        Ok(None) => EnrollOutcome::NoRule,
        Ok(Some((name, rule))) => match bind(spec, fleet, name, rule, facts, taken) {
            Ok(binding) => EnrollOutcome::Binds(binding),
            Err(reasons) => EnrollOutcome::Refused { rule: name.to_owned(), reasons },
        },
    }
}

fn bind(
    spec: &ClusterSpec,
    fleet: &dyn FleetRead,
    name: &str,
    rule: &Rule,
    facts: &HardwareFacts,
    taken: &BTreeSet<NodeId>,
) -> Result<Binding, Vec<String>> {
    let one = |s: String| vec![s];
    let node = match (&rule.bind.node, &rule.bind.pool) {
        (Some(node), _) => {
            let id = NodeId::new(node.as_str()).map_err(|e| one(e.to_string()))?;
            if !spec.nodes.contains_key(node) {
                return Err(one(format!("rule '{name}' binds node {node}, which the spec does not declare")));
            }
            if let Some(existing) = fleet.node(&id) {
                return Err(one(format!(
                    "node {id} is already bound to machine {} (it is `{}`); if this machine replaces it, run \
                     `sendan node rebind {id} --machine <this machine>`",
                    existing.machine, existing.state
                )));
            }
            if taken.contains(&id) {
                return Err(one(format!("node {id} is being bound to another machine")));
            }
            id
        }
        (None, Some(pool)) => {
            let members: Vec<&str> = spec.pool_members(pool).collect();
            let free = members.iter().filter_map(|m| NodeId::new(*m).ok()).find(|id| !taken.contains(id));
            free.ok_or_else(|| {
                one(format!(
                    "pool '{pool}' has no free member: all {} of its nodes are bound, and node ids are never reused",
                    members.len()
                ))
            })?
        }
        (None, None) => return Err(one(format!("rule '{name}' binds neither a node nor a pool"))),
    };
    let declared = &spec.nodes[node.as_str()];
    let class_name = rule.bind.class.clone().unwrap_or_else(|| declared.class.clone());
    let class = spec.classes.get(&class_name).ok_or_else(|| one(format!("class '{class_name}' is not declared")))?;
    class.admits(facts).map_err(|unmet| {
        unmet.into_iter().map(|u| format!("class '{class_name}' of node {node}: {u}")).collect::<Vec<_>>()
    })?;
    Ok(Binding {
        node,
        class: class_name,
        pool: declared.pool.clone(),
        profile: rule.bind.profile.clone().unwrap_or_else(|| declared.profile.clone()),
        rule: name.to_owned(),
    })
}

/// `NodeCommissioned` for binding `machine` to `node` by hand (`sendan node accept`): class, pool and profile
/// come from the spec's declaration of the node when it has one.
pub fn manual_binding(spec: Option<&ClusterSpec>, node: NodeId, machine: MachineId) -> NodeCommissioned {
    let declared = spec.and_then(|s| s.nodes.get(node.as_str()));
    NodeCommissioned {
        class: declared.map(|d| d.class.clone()),
        pool: declared.and_then(|d| d.pool.clone()),
        profile: declared.map(|d| d.profile.clone()),
        rule: None,
        machine,
        node,
    }
}

/// One decision of the enrollment controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnrollmentDecision {
    Bind { machine: MachineId, seen: u64, binding: Binding },
    Conflict { machine: MachineId, seen: u64, priority: u32, rules: Vec<String> },
    Refuse { machine: MachineId, seen: u64, rule: String, reasons: Vec<String> },
    RequestInstall { node: NodeId, since: u64, seen: u64 },
    RefusePlan { node: NodeId, since: u64, seen: u64, layout: String, reasons: Vec<String> },
}

impl EnrollmentDecision {
    /// The id of the event: the same decision about the same facts always has the same id, so deciding it again
    /// (on the next pass, or on a new leader) is answered with the original seq.
    pub fn event_id(&self, spec: Hash) -> EventId {
        let b = |n: u64| n.to_be_bytes();
        match self {
            EnrollmentDecision::Bind { machine, seen, binding } => EventId::derive(&[
                b"enrollment/bind",
                machine.as_str().as_bytes(),
                binding.node.as_str().as_bytes(),
                &b(*seen),
            ]),
            EnrollmentDecision::Conflict { machine, seen, .. } => {
                EventId::derive(&[b"enrollment/conflict", machine.as_str().as_bytes(), &spec.0, &b(*seen)])
            }
            EnrollmentDecision::Refuse { machine, seen, .. } => {
                EventId::derive(&[b"enrollment/refuse", machine.as_str().as_bytes(), &spec.0, &b(*seen)])
            }
            EnrollmentDecision::RequestInstall { node, since, .. } => {
                EventId::derive(&[b"enrollment/install", node.as_str().as_bytes(), &b(*since)])
            }
            EnrollmentDecision::RefusePlan { node, since, seen, .. } => {
                EventId::derive(&[b"enrollment/plan-refused", node.as_str().as_bytes(), &spec.0, &b(*since), &b(*seen)])
            }
        }
    }

    /// The seq of the event that made this decision the one to take: the latest of the machine's facts, the node
    /// entering its state and the live spec (`spec_seq`) it was decided on.
    pub fn cause(&self, spec_seq: u64) -> u64 {
        let latest = match self {
            EnrollmentDecision::Bind { seen, .. }
            | EnrollmentDecision::Conflict { seen, .. }
            | EnrollmentDecision::Refuse { seen, .. } => *seen,
            EnrollmentDecision::RequestInstall { since, seen, .. }
            | EnrollmentDecision::RefusePlan { since, seen, .. } => (*since).max(*seen),
        };
        latest.max(spec_seq)
    }

    /// Why, in the audit trail's comment.
    pub fn comment(&self) -> String {
        match self {
            EnrollmentDecision::Bind { binding, .. } => format!("enrollment rule '{}' matched", binding.rule),
            EnrollmentDecision::Conflict { rules, .. } => format!("enrollment rules {} conflict", quoted(rules)),
            EnrollmentDecision::Refuse { rule, .. } => {
                format!("enrollment rule '{rule}' matched, but the machine cannot be bound")
            }
            EnrollmentDecision::RequestInstall { .. } => "its disk layout fits its machine's disks".to_owned(),
            EnrollmentDecision::RefusePlan { layout, .. } => format!("disk layout '{layout}' does not fit"),
        }
    }
}

fn quoted(items: &[String]) -> String {
    items.iter().map(|r| format!("'{r}'")).collect::<Vec<_>>().join(", ")
}

/// Every decision the fleet calls for now: bind, or record why not, each unbound machine whose facts or the
/// live spec changed since the last decision about it; request the install of each bound node in
/// `commissioned` or `reprovisioning` whose layout fits, or record why it does not.
pub fn decide(ms: &MachinesState, fleet: &dyn FleetRead) -> Vec<EnrollmentDecision> {
    let Some(live) = fleet.live_spec() else { return Vec::new() };
    let spec = &live.spec;
    let mut out = Vec::new();
    let mut taken: BTreeSet<NodeId> = fleet.nodes().map(|n| n.id.clone()).collect();
    for m in ms.unbound() {
        let decided = ms.bootstrap.enrollment.get(&m.id);
        if decided.is_some_and(|d| d.spec == live.digest && d.seen == m.last_seen) {
            continue;
        }
        let here = location(spec, &m.facts);
        let (machine, seen) = (m.id.clone(), m.last_seen);
        match enroll(spec, fleet, &m.facts, &here, &taken) {
            EnrollOutcome::Binds(binding) => {
                taken.insert(binding.node.clone());
                out.push(EnrollmentDecision::Bind { machine, seen, binding });
            }
            EnrollOutcome::Conflict { priority, rules } => {
                out.push(EnrollmentDecision::Conflict { machine, seen, priority, rules })
            }
            EnrollOutcome::Refused { rule, reasons } => {
                out.push(EnrollmentDecision::Refuse { machine, seen, rule, reasons })
            }
            EnrollOutcome::NoRule | EnrollOutcome::NoSpec | EnrollOutcome::AlreadyBound { .. } => {}
        }
    }
    for n in fleet.nodes() {
        if !matches!(n.state, NodeState::Commissioned | NodeState::Reprovisioning) {
            continue;
        }
        let seen = fleet.machine(n.machine).map(|m| m.last_seen).unwrap_or_default();
        match fleet.layout_of(n.id) {
            Ok(_) => out.push(EnrollmentDecision::RequestInstall { node: n.id.clone(), since: n.since, seen }),
            Err(PlanUnavailable::DoesNotFit { layout, reasons, .. }) => {
                let refused = ms.bootstrap.refusals.get(n.id);
                if refused.is_some_and(|r| r.spec == live.digest && r.since == n.since && r.seen == seen) {
                    continue;
                }
                out.push(EnrollmentDecision::RefusePlan { node: n.id.clone(), since: n.since, seen, layout, reasons });
            }
            Err(_) => {}
        }
    }
    out
}

/// A node the live spec declares that no machine is bound to yet: what `sendan nodes` lists as `declared` (not a
/// lifecycle state: the node has no record until a machine is bound to it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeclaredNode {
    pub id: NodeId,
    pub class: String,
    pub pool: Option<String>,
    pub rack: String,
    pub profile: String,
    /// Its address, from the spec.
    pub address: std::net::Ipv4Addr,
    /// The enrollment rules that would bind a machine to it (naming the node, or its pool), highest priority
    /// first.
    pub rules: Vec<String>,
    /// For a pool member: its place among the pool's free members (1: the next one a pool rule binds).
    pub place: Option<usize>,
    /// What it waits for, in a sentence.
    pub waiting: String,
}

/// Every node of the live spec no machine is bound to (node ids are never reused, so a retired node is not
/// declared again), in the spec's order.
pub fn declared(fleet: &dyn FleetRead) -> Vec<DeclaredNode> {
    let Some(live) = fleet.live_spec() else { return Vec::new() };
    let spec = &live.spec;
    let mut rules: Vec<(&String, &Rule)> = spec.enrollment_rules.iter().collect();
    rules.sort_by(|a, b| b.1.priority.cmp(&a.1.priority).then_with(|| a.0.cmp(b.0)));
    let free = |name: &str| NodeId::new(name).is_ok_and(|id| fleet.node(&id).is_none());
    let mut out = Vec::new();
    for (name, node) in &spec.nodes {
        let Ok(id) = NodeId::new(name.as_str()) else { continue };
        if fleet.node(&id).is_some() {
            continue;
        }
        let binds = |r: &Rule| match (&r.bind.node, &r.bind.pool) {
            (Some(n), _) => n == name,
            (None, Some(p)) => node.pool.as_ref() == Some(p),
            (None, None) => false,
        };
        let by_node: Vec<String> =
            rules.iter().filter(|(_, r)| r.bind.node.as_ref() == Some(name)).map(|(n, _)| n.to_string()).collect();
        let matching: Vec<String> = rules.iter().filter(|(_, r)| binds(r)).map(|(n, _)| n.to_string()).collect();
        let place = node.pool.as_deref().map(|pool| {
            spec.pool_members(pool).filter(|m| free(m)).position(|m| m == name.as_str()).map_or(0, |i| i + 1)
        });
        let quoted = |names: &[String]| names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(" or ");
        let waiting = match (&matching[..], &node.pool, place) {
            ([], _, _) => format!(
                "no enrollment rule binds it or its pool: an operator binds a discovered machine to it with \
                 `sendan node accept MACHINE --as {id}`"
            ),
            (_, _, _) if !by_node.is_empty() => {
                format!("a machine matching rule {} to phone home", quoted(&by_node))
            }
            (_, Some(pool), Some(1)) => {
                format!("the next machine matching rule {} (pool '{pool}') to phone home", quoted(&matching))
            }
            (_, Some(pool), Some(n)) => format!(
                "a machine matching rule {} (pool '{pool}') to phone home, after {} other free member{} of the \
                 pool {} bound first",
                quoted(&matching),
                n - 1,
                if n == 2 { "" } else { "s" },
                if n == 2 { "is" } else { "are" }
            ),
            (_, _, _) => format!("a machine matching rule {} to phone home", quoted(&matching)),
        };
        out.push(DeclaredNode {
            id,
            class: node.class.clone(),
            pool: node.pool.clone(),
            rack: node.rack.clone(),
            profile: node.profile.clone(),
            address: node.network.address,
            rules: matching,
            place,
            waiting,
        });
    }
    out
}

/// One criterion of a rule against a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Criterion {
    /// The criterion's name in the spec (`dmiSerials`, `cpuThreads`, …).
    pub name: String,
    pub holds: bool,
    /// Why it holds or not, in a sentence.
    pub why: String,
}

/// A rule against a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RuleVerdict {
    pub name: String,
    pub priority: u32,
    /// `node cp-1` or `pool workers`.
    pub binds: String,
    pub matches: bool,
    /// Every criterion the rule sets; a rule without criteria matches every machine.
    pub criteria: Vec<Criterion>,
}

/// Whether the layout of the node a machine would become fits its disks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum LayoutCheck {
    Fits { layout: String, disks: BTreeMap<String, ResolvedDisk> },
    DoesNotFit { layout: String, reasons: Vec<String> },
}

/// `sendan enroll --dry-run`: which rule would bind these facts, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Explanation {
    /// The key the machine would be known by; absent when it has none (`machine_error` says why).
    pub machine: Option<MachineId>,
    pub machine_error: Option<String>,
    /// The live spec the rules come from.
    pub spec: Option<Hash>,
    pub rack: Option<String>,
    pub switch_ports: Vec<SwitchPort>,
    /// Highest priority first, then by name.
    pub rules: Vec<RuleVerdict>,
    pub outcome: EnrollOutcome,
    /// For a machine that would be (or is) bound: whether its node's disk layout fits.
    pub layout: Option<LayoutCheck>,
}

/// Explain enrollment of a machine with `facts` against the fleet's live spec, without changing anything.
pub fn explain(fleet: &dyn FleetRead, facts: &HardwareFacts) -> Explanation {
    let (machine, machine_error) = match facts.machine_key() {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let Some(live) = fleet.live_spec() else {
        return Explanation {
            machine,
            machine_error,
            spec: None,
            rack: None,
            switch_ports: Vec::new(),
            rules: Vec::new(),
            outcome: EnrollOutcome::NoSpec,
            layout: None,
        };
    };
    let spec = &live.spec;
    let here = location(spec, facts);
    let mut rules: Vec<RuleVerdict> = spec
        .enrollment_rules
        .iter()
        .map(|(name, rule)| {
            let criteria = criteria(rule, facts, &here);
            RuleVerdict {
                name: name.clone(),
                priority: rule.priority,
                binds: match (&rule.bind.node, &rule.bind.pool) {
                    (Some(n), _) => format!("node {n}"),
                    (None, Some(p)) => format!("pool {p}"),
                    (None, None) => "nothing".to_owned(),
                },
                matches: criteria.iter().all(|c| c.holds),
                criteria,
            }
        })
        .collect();
    rules.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.name.cmp(&b.name)));
    let bound = machine.as_ref().and_then(|m| fleet.machine(m)).and_then(|m| m.node.cloned());
    let outcome = match bound {
        Some(node) => EnrollOutcome::AlreadyBound { node },
        None => enroll(spec, fleet, facts, &here, &fleet.nodes().map(|n| n.id.clone()).collect()),
    };
    let node = match &outcome {
        EnrollOutcome::AlreadyBound { node } => Some(node.clone()),
        EnrollOutcome::Binds(b) => Some(b.node.clone()),
        _ => None,
    };
    let layout =
        node.and_then(|n| crate::spec::layout_fit(spec, n.as_str(), &facts.disks)).map(|(layout, fit)| match fit {
            Ok(disks) => LayoutCheck::Fits { layout, disks },
            Err(reasons) => LayoutCheck::DoesNotFit { layout, reasons },
        });
    Explanation {
        machine,
        machine_error,
        spec: Some(live.digest),
        rack: here.rack.clone(),
        switch_ports: here.ports.clone(),
        rules,
        outcome,
        layout,
    }
}

/// Each criterion `rule` sets, checked against the machine exactly as [`Rule::matches`] checks it.
pub fn criteria(rule: &Rule, facts: &HardwareFacts, location: &Location) -> Vec<Criterion> {
    let m = &rule.matches;
    let mut out = Vec::new();
    let mut push = |name: &str, holds: bool, why: String| out.push(Criterion { name: name.to_owned(), holds, why });
    let list = |set: &[String]| set.join(", ");
    let mut single = |name: &str, set: &Option<Vec<String>>, value: Option<&str>, what: &str, ci: bool| {
        let Some(set) = set else { return };
        match value {
            None => push(name, false, format!("the machine reported no {what}")),
            Some(v) => {
                let holds = set.iter().any(|s| if ci { s.eq_ignore_ascii_case(v) } else { s == v });
                let verb = if holds { "is" } else { "is not" };
                push(name, holds, format!("{what} {v} {verb} one of {}", list(set)));
            }
        }
    };
    single("machineIds", &m.machine_ids, facts.machine_id.as_deref().map(str::trim), "machine-id", false);
    single("systemUuids", &m.system_uuids, facts.dmi.system_uuid.as_deref().map(str::trim), "DMI system uuid", true);
    single("dmiSerials", &m.dmi_serials, facts.dmi.serial.as_deref().map(str::trim), "DMI serial", false);
    if let Some(set) = &m.macs {
        let macs: Vec<String> = facts.macs().collect();
        let hit = macs.iter().find(|mac| set.iter().any(|s| s.eq_ignore_ascii_case(mac)));
        let why = match (hit, macs.is_empty()) {
            (Some(mac), _) => format!("MAC {mac} is one of {}", list(set)),
            (None, true) => "the machine reported no MACs".to_owned(),
            (None, false) => format!("none of its MACs ({}) is one of {}", macs.join(", "), list(set)),
        };
        push("macs", hit.is_some(), why);
    }
    let mut range = |name: &str, r: &Option<crate::spec::Range>, value: u64, what: String| {
        let Some(r) = r else { return };
        let bounds = match (r.min, r.max) {
            (Some(a), Some(b)) => format!("{a}..{b}"),
            (Some(a), None) => format!("at least {a}"),
            (None, Some(b)) => format!("at most {b}"),
            (None, None) => "any".to_owned(),
        };
        let holds = r.contains(value);
        push(name, holds, format!("{what} ({value}) {} {bounds}", if holds { "is" } else { "is not" }));
    };
    range("cpuThreads", &m.cpu_threads, u64::from(facts.cpu.threads), "CPU threads".to_owned());
    range("memoryBytes", &m.memory_bytes, facts.memory_bytes, format!("memory {}", binary_size(facts.memory_bytes)));
    let disks = facts.disks.iter().filter(|d| !d.removable).count() as u64;
    range("diskCount", &m.disk_count, disks, "non-removable disks".to_owned());
    if let Some(set) = &m.racks {
        match &location.rack {
            Some(rack) => {
                let holds = set.contains(rack);
                push(
                    "racks",
                    holds,
                    format!("rack {rack} {} one of {}", if holds { "is" } else { "is not" }, list(set)),
                );
            }
            None if location.ports.is_empty() => push(
                "racks",
                false,
                "the rack is unknown: the machine reported no LLDP neighbours (switch ports)".to_owned(),
            ),
            None => push(
                "racks",
                false,
                format!(
                    "the rack is unknown: no rack declares the switches of its ports ({})",
                    location.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                ),
            ),
        }
    }
    if let Some(set) = &m.switch_ports {
        let hit = location.ports.iter().find(|p| set.contains(p));
        let wanted = set.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
        let why = match hit {
            Some(p) => format!("switch port {p} is one of {wanted}"),
            None if location.ports.is_empty() => "the machine reported no LLDP neighbours (switch ports)".to_owned(),
            None => format!(
                "none of its switch ports ({}) is one of {wanted}",
                location.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
            ),
        };
        push("switchPorts", hit.is_some(), why);
    }
    out
}

/// One machine as `GET /v1/machines` shows it.
/// The problem recorded for an unbound machine, as a sentence.
pub fn problem_sentence(problem: &Problem) -> String {
    match problem {
        Problem::Conflict { priority, rules } => format!(
            "enrollment rules {} all match at priority {priority}; make them exclusive or bind it with \
             `sendan node accept`",
            quoted(rules)
        ),
        Problem::Refused { rule, reasons } => format!("rule '{rule}' matches, but {}", reasons.join("; ")),
    }
}
