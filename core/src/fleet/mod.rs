//! The fleet projection: every node and machine as the log says they are, with `check` (may this
//! proposal be accepted?) and `evolve` (fold an accepted event in).
//!
//! Business rules live in [`check`] only; [`evolve`] holds none and never fails, so replaying a log that
//! was accepted once always gives the same state. Each domain of events keeps its rules and fold in its
//! own submodule (`spec`, `systems`, `bootstrap`); this module dispatches to them and owns the lifecycle and access rules.

pub mod bootstrap;
pub mod spec;
pub mod systems;

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::event::{Emitters, Event, Payload, Proposal};
use crate::facts::HardwareFacts;
use crate::ids::{Actor, Hash, MachineId, NodeId, Timestamp};
use crate::lifecycle::{self, NodeState};
use crate::rejection::Rejection;

/// The state after some prefix of the log. Clones are cheap — persistent maps of shared records, so a
/// clone copies no record and a change copies only the records it touches — which is what makes a batch
/// atomic (it is applied to a clone that replaces the original only if every event is accepted) and lets
/// readers keep the state they read while the log moves on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetState {
    /// The seq of the last event folded in (0 before any).
    pub seq: u64,
    /// The hash of that event ([`Hash::GENESIS`] before any).
    pub head: Hash,
    /// The time of that event.
    pub last_time: Timestamp,
    pub nodes: OrdMap<NodeId, Arc<NodeRecord>>,
    pub machines: OrdMap<MachineId, Arc<MachineRecord>>,
    /// Live node tokens by hash.
    pub tokens: OrdMap<Hash, NodeId>,
    pub spec: spec::SpecState,
    /// Desired and running NixOS systems, pins and pool rollouts.
    pub systems: systems::SystemsState,
    /// Bootstrap tokens, installer sessions, enrollment problems, install-plan refusals and SSH host keys.
    pub bootstrap: bootstrap::BootstrapState,
}

/// A declared node bound to a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
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
}

/// A physical machine that phoned home.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRecord {
    pub id: MachineId,
    pub facts: HardwareFacts,
    /// The node bound to it; `None` means the machine is `discovered` (or was released by a rebind).
    pub node: Option<NodeId>,
    pub first_seen: u64,
    pub last_seen: u64,
}

impl MachineRecord {
    /// A machine's own lifecycle state: `discovered` until a node is bound to it.
    pub fn state(&self) -> Option<NodeState> {
        self.node.is_none().then_some(NodeState::Discovered)
    }
}

impl FleetState {
    pub fn node(&self, id: &NodeId) -> Option<&NodeRecord> {
        self.nodes.get(id).map(Arc::as_ref)
    }

    pub fn machine(&self, id: &MachineId) -> Option<&MachineRecord> {
        self.machines.get(id).map(Arc::as_ref)
    }

    /// Machines no node is bound to: the `discovered` list an operator accepts from.
    pub fn unbound_machines(&self) -> impl Iterator<Item = &MachineRecord> {
        self.machines.values().map(Arc::as_ref).filter(|m| m.node.is_none())
    }

    /// The node a token (by hash) speaks for.
    pub fn token_node(&self, token: &Hash) -> Option<&NodeId> {
        self.tokens.get(token)
    }

    fn node_mut(&mut self, id: &NodeId) -> Option<&mut NodeRecord> {
        self.nodes.get_mut(id).map(Arc::make_mut)
    }

    fn machine_mut(&mut self, id: &MachineId) -> Option<&mut MachineRecord> {
        self.machines.get_mut(id).map(Arc::make_mut)
    }
}

/// Fold `event` into `state` and return the nodes it is indexed under: the node it names; for a bound
/// machine phoning home again, that machine's node; for a spec, the fleet's nodes whose declaration it
/// changes.
pub fn evolve_indexed(state: &mut FleetState, event: &Event) -> Vec<NodeId> {
    match &event.payload {
        Payload::SpecApplied(p) => {
            let nodes = spec::affected_nodes(state, p);
            evolve(state, event);
            nodes
        }
        p if systems::owns(p) => {
            evolve(state, event);
            systems::decided_nodes(state, event)
        }
        other => {
            let node = other.node().cloned().or_else(|| other.machine().and_then(|m| state.machine(m)?.node.clone()));
            evolve(state, event);
            node.into_iter().collect()
        }
    }
}

/// May `actor` submit `payload`? The admin may submit anything; a node token only the kinds a node may
/// emit, about its own node; the system (the leader's projections) only system kinds.
pub fn authorize(state: &FleetState, actor: &Actor, payload: &Payload) -> Result<(), Rejection> {
    let kind = payload.kind();
    let forbid = |why: String| Rejection::Forbidden { actor: actor.clone(), event: kind, why };
    match actor {
        Actor::Admin => Ok(()),
        Actor::System(_) if kind.emitters().contains(Emitters::SYSTEM) => Ok(()),
        Actor::System(_) => Err(forbid("it is not an event the system emits".into())),
        Actor::Node(me) => {
            if !kind.emitters().contains(Emitters::NODE) {
                return Err(forbid("a node token may not submit this kind of event".into()));
            }
            match payload.node() {
                Some(n) if n == me => Ok(()),
                Some(n) => Err(forbid(format!("a node token may only submit events about its own node, not {n}"))),
                None => Err(forbid("the event names no node".into())),
            }
        }
        Actor::Bootstrap(machine) => {
            if !kind.emitters().contains(Emitters::BOOTSTRAP) {
                return Err(forbid("an installer's bootstrap token may not submit this kind of event".into()));
            }
            let bound = state.machine(machine).and_then(|m| m.node.as_ref());
            let own = payload.machine() == Some(machine) || (payload.node().is_some() && payload.node() == bound);
            if own {
                Ok(())
            } else {
                Err(forbid(format!("a bootstrap token may only submit events about its own machine ({machine})")))
            }
        }
    }
}

/// May `proposal` be accepted in `state`? Pure; changes nothing.
pub fn check(state: &FleetState, proposal: &Proposal) -> Result<(), Rejection> {
    authorize(state, &proposal.actor, &proposal.payload)?;
    let kind = proposal.payload.kind();
    match &proposal.payload {
        Payload::MachineDiscovered(p) => {
            p.facts.check().map_err(|e| Rejection::MalformedEvent { event: kind, why: e.to_string() })
        }
        Payload::SpecApplied(p) => spec::check(state, p),
        p if systems::owns(p) => systems::check(state, proposal),
        p if bootstrap::owns(p) => bootstrap::check(state, proposal),
        Payload::NodeInstallRequested(p) => {
            transition_from(state, &p.node, kind)?;
            bootstrap::check_install_request(state, p)
        }
        Payload::NodeTokenIssued(p) => {
            let node =
                state.node(&p.node).ok_or_else(|| Rejection::UnknownNode { node: p.node.clone(), event: kind })?;
            bootstrap::token_free(state, &p.token)?;
            if node.state.is_terminal() {
                return Err(Rejection::NodeRetired { node: p.node.clone(), event: kind });
            }
            Ok(())
        }
        Payload::NodeCommissioned(p) => {
            if let Some(existing) = state.node(&p.node) {
                return Err(Rejection::NodeExists { node: p.node.clone(), state: existing.state });
            }
            free_machine(state, &p.machine)
        }
        Payload::NodeRebound(p) => {
            let node = transition_from(state, &p.node, kind)?;
            if node.machine == p.machine {
                return Err(Rejection::SameMachine { node: p.node.clone(), machine: p.machine.clone() });
            }
            free_machine(state, &p.machine)
        }
        other => match other.node() {
            Some(id) if lifecycle::row(kind).is_some() => transition_from(state, id, kind).map(|_| ()),
            _ => Ok(()),
        },
    }
}

/// The node `id`, if `kind` is a legal move from its current state.
fn transition_from<'s>(
    state: &'s FleetState,
    id: &NodeId,
    kind: crate::event::EventKind,
) -> Result<&'s NodeRecord, Rejection> {
    let node = state.node(id).ok_or_else(|| Rejection::UnknownNode { node: id.clone(), event: kind })?;
    if lifecycle::next_state(node.state, kind).is_none() {
        let needs = lifecycle::row(kind).map(|t| t.from.to_vec()).unwrap_or_default();
        return Err(Rejection::IllegalTransition {
            node: id.clone(),
            state: node.state,
            event: kind,
            needs,
            allowed: lifecycle::allowed_events(node.state),
        });
    }
    Ok(node)
}

fn free_machine(state: &FleetState, id: &MachineId) -> Result<(), Rejection> {
    match state.machine(id) {
        None => Err(Rejection::UnknownMachine { machine: id.clone() }),
        Some(MachineRecord { node: Some(node), .. }) => {
            Err(Rejection::MachineBound { machine: id.clone(), node: node.clone() })
        }
        Some(_) => Ok(()),
    }
}

/// Record `facts` as machine `id`'s, seen at `seq` (a new machine is `discovered`; a known one keeps its node).
fn record_facts(state: &mut FleetState, id: &MachineId, facts: &HardwareFacts, seq: u64) {
    let entry = state.machines.entry(id.clone()).or_insert_with(|| {
        Arc::new(MachineRecord {
            id: id.clone(),
            facts: HardwareFacts::default(),
            node: None,
            first_seen: seq,
            last_seen: seq,
        })
    });
    let m = Arc::make_mut(entry);
    m.facts = facts.clone();
    m.last_seen = seq;
    if let Some(node) = m.node.clone()
        && let Some(n) = state.node_mut(&node)
    {
        n.updated = seq;
    }
}

/// Fold an accepted event into `state`. Infallible and rule-free: records it names that do not exist
/// are left alone.
pub fn evolve(state: &mut FleetState, event: &Event) {
    let seq = event.seq;
    state.seq = seq;
    state.head = event.hash;
    state.last_time = event.time;
    let kind = event.payload.kind();
    match &event.payload {
        Payload::MachineDiscovered(p) => record_facts(state, &p.machine, &p.facts, seq),
        Payload::NodeCommissioned(p) => {
            state.nodes.insert(
                p.node.clone(),
                Arc::new(NodeRecord {
                    id: p.node.clone(),
                    state: NodeState::Commissioned,
                    machine: p.machine.clone(),
                    class: p.class.clone(),
                    pool: p.pool.clone(),
                    profile: p.profile.clone(),
                    rule: p.rule.clone(),
                    since: seq,
                    updated: seq,
                    reason: None,
                    token: None,
                }),
            );
            if let Some(m) = state.machine_mut(&p.machine) {
                m.node = Some(p.node.clone());
            }
        }
        Payload::SpecApplied(p) => {
            let before = state.spec.live.clone();
            spec::evolve(state, seq, p);
            systems::spec_applied(state, seq, before.as_deref());
        }
        p if systems::owns(p) => systems::evolve(state, event),
        p if bootstrap::owns(p) => bootstrap::evolve(state, event),
        Payload::NodeTokenIssued(p) => {
            let Some(node) = state.node_mut(&p.node) else { return };
            node.updated = seq;
            let old = node.token.replace(p.token);
            if let Some(old) = old {
                state.tokens.remove(&old);
            }
            state.tokens.insert(p.token, p.node.clone());
        }
        Payload::NodeRebound(p) => {
            let Some(node) = state.node_mut(&p.node) else { return };
            let old = std::mem::replace(&mut node.machine, p.machine.clone());
            node.state = NodeState::Commissioned;
            node.since = seq;
            node.updated = seq;
            node.reason = None;
            if let Some(m) = state.machine_mut(&old) {
                m.node = None;
            }
            if let Some(m) = state.machine_mut(&p.machine) {
                m.node = Some(p.node.clone());
            }
        }
        other => {
            let Some(id) = other.node() else { return };
            let Some(node) = state.node_mut(id) else { return };
            node.updated = seq;
            if let Some(to) = lifecycle::row(kind).map(|t| t.to) {
                node.state = to;
                node.since = seq;
                node.reason = match other {
                    Payload::NodeFailed(p) => Some(p.reason.clone()),
                    Payload::NodeInstallFailed(p) => Some(p.reason.clone()),
                    _ => None,
                };
                // A retired node's credentials stop working.
                if to.is_terminal()
                    && let Some(token) = node.token.take()
                {
                    state.tokens.remove(&token);
                }
            }
        }
    }
}
