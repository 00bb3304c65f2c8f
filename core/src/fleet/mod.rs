//! The fleet projection: every aggregate's state after some prefix of the log, composed. [`check`] (may this
//! proposal be accepted?) and [`evolve`] (fold an accepted event in) are each one exhaustive `match` over
//! [`Payload`] with no wildcard arm — a new event kind does not compile until its rule and its fold exist — and
//! each arm hands the event to the aggregates it concerns: their own state, and everything else through
//! [`FleetRead`], which `FleetState` implements. Where one event moves two aggregates (a wave decides its members'
//! systems; a report settles a rollout member), the arm passes what the first returns to the second.
//!
//! Business rules live in the aggregates' `rules.rs`; the folds hold none and never fail, so replaying a log that
//! was accepted once always gives the same state. Events of an older record version are folded through
//! [`crate::upgrade`], which derives what their release's fold decided.

pub mod schema;

use serde::{Deserialize, Serialize};

use crate::emitters::Emitters;
use crate::event::{Event, Payload, Proposal};
use crate::ids::{Actor, Hash, InstanceId, MachineId, NodeId, Timestamp};
use crate::machines::{MachineRecord, MachinesState};
use crate::nodes::{NodeRecord, NodesState};
use crate::power::{NodePower, PowerState};
use crate::read::{Ctx, DecisionFacts, DrainFacts, FleetRead, MachineFacts, NodeFacts};
use crate::rejection::Rejection;
use crate::rollouts::fold::Decided;
use crate::rollouts::{MemberOutcome, Rollout, RolloutsState};
use crate::services::{ServicesState, Task};
use crate::spec::LiveSpec;
use crate::specs::SpecState;
use crate::systems::fold::Settled;
use crate::systems::{Desired, NodeSystem, Source, SystemsState};
use crate::{machines, nodes, power, rollouts, services, specs, systems};

/// The state after some prefix of the log. Clones are cheap — persistent maps of shared records, so a clone
/// copies no record and a change copies only the records it touches — which is what makes a batch atomic (it is
/// applied to a clone that replaces the original only if every event is accepted) and lets readers keep the state
/// they read while the log moves on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetState {
    /// The seq of the last event folded in (0 before any).
    pub seq: u64,
    /// The hash of that event ([`Hash::GENESIS`] before any).
    pub head: Hash,
    /// The time of that event.
    pub last_time: Timestamp,
    pub nodes: NodesState,
    pub machines: MachinesState,
    pub specs: SpecState,
    pub systems: SystemsState,
    pub rollouts: RolloutsState,
    pub services: ServicesState,
    pub power: PowerState,
}

impl FleetState {
    pub fn node(&self, id: &NodeId) -> Option<&NodeRecord> {
        self.nodes.get(id)
    }

    pub fn machine(&self, id: &MachineId) -> Option<&MachineRecord> {
        self.machines.get(id)
    }

    /// Machines no node is bound to: the `discovered` list an operator accepts from.
    pub fn unbound_machines(&self) -> impl Iterator<Item = &MachineRecord> {
        self.machines.unbound()
    }

    /// The node a token (by hash) speaks for.
    pub fn token_node(&self, token: &Hash) -> Option<&NodeId> {
        self.nodes.token_node(token)
    }

    pub fn live(&self) -> Option<&LiveSpec> {
        self.specs.live.as_deref()
    }

    pub fn node_system(&self, id: &NodeId) -> Option<&NodeSystem> {
        self.systems.get(id)
    }

    pub fn node_power(&self, id: &NodeId) -> Option<&NodePower> {
        self.power.get(id)
    }

    /// The node's BMC, as the live spec declares it.
    pub fn bmc(&self, id: &NodeId) -> Option<&crate::spec::Bmc> {
        self.live()?.spec.nodes.get(id.as_str())?.bmc.as_ref()
    }

    pub fn rollout(&self, id: u64) -> Option<&Rollout> {
        self.rollouts.get(id)
    }

    /// The rollout of `pool` that has not ended.
    pub fn open_rollout(&self, pool: &str) -> Option<&Rollout> {
        self.rollouts.open_for(pool)
    }

    /// The open rollout `node` is a member of.
    pub fn rollout_of(&self, node: &NodeId) -> Option<&Rollout> {
        self.rollouts.of_node(node)
    }

    /// The substituters and trusted keys of the live spec's `bootstrap`: where agents fetch closures from.
    pub fn substituters(&self) -> (Vec<String>, Vec<String>) {
        match self.live() {
            Some(l) => (l.spec.bootstrap.substituters.clone(), l.spec.bootstrap.trusted_public_keys.clone()),
            None => (Vec::new(), Vec::new()),
        }
    }
}

fn node_facts(n: &NodeRecord) -> NodeFacts<'_> {
    NodeFacts {
        id: &n.id,
        state: n.state,
        machine: &n.machine,
        pool: n.pool.as_deref(),
        since: n.since,
        updated: n.updated,
        cordoned: n.cordon.is_some(),
        drain: n.drain.map(|d| DrainFacts {
            seq: d.seq,
            deadline: d.deadline,
            force: d.force,
            drained: d.drained,
            rollout: d.rollout,
        }),
    }
}

fn machine_facts(m: &MachineRecord) -> MachineFacts<'_> {
    MachineFacts { id: &m.id, facts: &m.facts, node: m.node.as_ref(), last_seen: m.last_seen }
}

impl FleetRead for FleetState {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn node(&self, id: &NodeId) -> Option<NodeFacts<'_>> {
        self.nodes.get(id).map(node_facts)
    }
    fn nodes(&self) -> Box<dyn Iterator<Item = NodeFacts<'_>> + '_> {
        Box::new(self.nodes.records.values().map(|n| node_facts(n)))
    }
    fn machine(&self, id: &MachineId) -> Option<MachineFacts<'_>> {
        self.machines.get(id).map(machine_facts)
    }
    fn machines(&self) -> Box<dyn Iterator<Item = MachineFacts<'_>> + '_> {
        Box::new(self.machines.records.values().map(|m| machine_facts(m)))
    }
    fn live_spec(&self) -> Option<&LiveSpec> {
        self.live()
    }
    fn credential_in_use(&self, hash: &Hash) -> bool {
        self.nodes.tokens.contains_key(hash) || self.machines.bootstrap.tokens.contains_key(hash)
    }
    fn decision(&self, node: &NodeId) -> Option<DecisionFacts<'_>> {
        let d = self.systems.get(node)?.desired.as_ref()?;
        Some(DecisionFacts { seq: d.seq, system: &d.system, action: d.action, rollout: d.rollout })
    }
    fn current_system(&self, node: &NodeId) -> Option<&str> {
        self.systems.get(node)?.current.as_deref()
    }
    fn pin(&self, node: &NodeId) -> Option<(u64, &str)> {
        self.systems.get(node)?.pinned.as_ref().map(|p| (p.seq, p.reason.as_str()))
    }
    fn pending_reboot(&self, node: &NodeId) -> Option<(u64, &str)> {
        self.systems.get(node)?.pending_reboot()
    }
    fn activation_started(&self, node: &NodeId, decision: u64) -> bool {
        let attempt = self.systems.get(node).and_then(|s| s.attempt.as_ref());
        attempt.is_some_and(|a| a.decision == decision && a.phase != systems::AttemptPhase::Prefetched)
    }
    fn rollout_of(&self, node: &NodeId) -> Option<(u64, &str)> {
        self.rollouts.of_node(node).map(|r| (r.id, r.pool.as_str()))
    }
    fn instances_on(&self, node: &NodeId) -> Vec<&InstanceId> {
        self.services.on_node(node).map(|i| &i.id).collect()
    }
    fn disruption(&self, out: &std::collections::BTreeSet<NodeId>) -> Result<(), String> {
        match self.live() {
            Some(live) => services::budget::disruption(&self.services, &live.spec, out).map_err(|b| b.to_string()),
            None => Ok(()),
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
            let bound = state.machines.get(machine).and_then(|m| m.node.as_ref());
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
    if let Some(cause) = proposal.cause
        && (cause == 0 || cause > state.seq)
    {
        return Err(Rejection::MalformedEvent {
            event: proposal.payload.kind(),
            why: format!("its cause must be an event of the log (1 to {}), not seq {cause}", state.seq),
        });
    }
    let read: &dyn FleetRead = state;
    let ctx = Ctx { now: proposal.time.max(state.last_time), actor: &proposal.actor };
    let (ms, sys, ro, sv) = (&state.machines, &state.systems, &state.rollouts, &state.services);
    use Payload as P;
    match &proposal.payload {
        P::MachineDiscovered(p) => machines::rules::machine_discovered(p),
        P::MachinePhonedHome(p) => machines::rules::phoned_home(ms, read, &ctx, p),
        P::NodeCommissioned(p) => nodes::rules::commissioned(&state.nodes, read, p),
        P::NodeInstallRequested(p) => nodes::rules::install_requested(read, p),
        P::NodeInstallStarted(p) => nodes::rules::transition(read, &p.node, proposal.payload.kind()).map(drop),
        P::NodeInstallFailed(p) => nodes::rules::transition(read, &p.node, proposal.payload.kind()).map(drop),
        P::NodeActivated(p) => nodes::rules::transition(read, &p.node, proposal.payload.kind()).map(drop),
        P::NodeDrainRequested(p) => nodes::rules::transition(read, &p.node, proposal.payload.kind()).map(drop),
        P::NodeDrainStarted(p) => nodes::rules::drain_started(read, &ctx, p),
        P::NodeDrained(p) => nodes::rules::drained(read, p),
        P::NodeCordoned(p) => nodes::rules::cordoned(read, p),
        P::NodeUncordoned(p) => nodes::rules::uncordoned(read, &p.node),
        P::NodeReprovisionRequested(p) => nodes::rules::taken_out(read, &p.node, proposal.payload.kind()),
        P::NodeRescueRequested(p) => nodes::rules::transition(read, &p.node, proposal.payload.kind()).map(drop),
        P::NodeFailed(p) => nodes::rules::transition(read, &p.node, proposal.payload.kind()).map(drop),
        P::NodeRetired(p) => nodes::rules::taken_out(read, &p.node, proposal.payload.kind()),
        P::NodeRebound(p) => nodes::rules::rebound(read, p),
        P::NodeTokenIssued(p) => nodes::rules::node_token_issued(read, p),
        P::SpecApplied(p) => specs::rules::applied(&state.specs, p),
        P::BootstrapTokenIssued(p) => machines::rules::token_issued(ms, read, &ctx, p),
        P::BootstrapTokenClaimed(p) => machines::rules::token_claimed(ms, read, &ctx, p),
        P::BootstrapTokenExchanged(p) => machines::rules::token_exchanged(ms, read, p),
        P::InstallProgressed(p) => machines::rules::install_progressed(read, p),
        P::InstallPlanRefused(p) => machines::rules::plan_refused(read, p),
        P::EnrollmentConflicted(p) => machines::rules::enrollment_conflicted(read, p),
        P::EnrollmentRefused(p) => machines::rules::enrollment_refused(read, p),
        P::NodeSystemSet(p) => systems::rules::system_set(sys, read, p),
        P::NodePinned(p) => systems::rules::pinned(sys, read, p),
        P::NodeUnpinned(p) => systems::rules::unpinned(sys, read, p),
        P::SystemReported(p) => systems::rules::reported(read, p),
        P::SystemPrefetched(p) => systems::rules::prefetched(sys, read, p),
        P::SystemPrefetchFailed(p) => systems::rules::prefetch_failed(sys, read, p),
        P::SystemActivating(p) => systems::rules::activating(sys, read, p),
        P::SystemProfileSet(p) => systems::rules::profile_set(sys, read, p),
        P::SystemSwitched(p) => systems::rules::switched(sys, read, p),
        P::SystemHealthFailed(p) => systems::rules::health_failed(sys, read, p),
        P::SystemConfirmed(p) => systems::rules::confirmed(sys, read, p),
        P::SystemRolledBack(p) => systems::rules::rolled_back(sys, read, p),
        P::RolloutStarted(p) => rollouts::rules::started(ro, read, p),
        P::RolloutWaveStarted(p) => rollouts::rules::wave_started(ro, read, &ctx, p),
        P::RolloutCompleted(p) => rollouts::rules::completed(ro, read, &ctx, p),
        P::RolloutHalted(p) => rollouts::rules::halted(ro, read, &ctx, p),
        P::RolloutNodesReverted(p) => rollouts::rules::nodes_reverted(ro, read, &ctx, p),
        P::RolloutReverted(p) => rollouts::rules::reverted(ro, read, &ctx, p),
        P::RolloutMemberLeft(p) => rollouts::rules::member_left(ro, read, p),
        P::RolloutDrainsMembers(p) => rollouts::rules::drains_members(ro, p),
        P::InstancePlaced(p) => services::rules::placed(sv, read, p),
        P::InstanceRescheduled(p) => services::rules::rescheduled(sv, read, &ctx, p),
        P::InstanceMigrated(p) => services::rules::migrated(sv, read, &ctx, p),
        P::InstanceUpdated(p) => services::rules::updated(sv, read, p),
        P::DeploymentStarted(p) => services::rules::deployment_started(sv, read, p),
        P::DeploymentPromoted(p) => services::rules::deployment_promoted(sv, read, &ctx, p),
        P::DeploymentEnded(p) => services::rules::deployment_ended(sv, read, &ctx, p),
        P::InstanceStopRequested(p) => services::rules::stop_requested(sv, p),
        P::InstanceStarted(p) => services::rules::instance_started(sv, p),
        P::InstanceHealthy(p) => services::rules::healthy(sv, p),
        P::InstanceUnhealthy(p) => services::rules::unhealthy(sv, p),
        P::InstanceExited(p) => services::rules::exited(sv, p),
        P::InstanceStopped(p) => services::rules::stopped(sv, p),
        P::NodeAgentStarted(p) => services::rules::agent_started(read, p),
        P::NodeAgentLost(p) => services::rules::agent_lost(sv, p),
        P::NodeAgentReturned(p) => services::rules::agent_returned(sv, p),
        P::PowerRequested(p) => power::rules::requested(&state.power, read, p),
        P::PowerCompleted(p) => power::rules::request_completed(&state.power, p),
        P::PowerObserved(p) => power::rules::observed(&state.power, read, p),
    }
}

/// Fold an accepted event into `state` and return the nodes it is indexed under: the node it names; for a
/// machine's facts, the machine's node; for a spec, the fleet's nodes whose declaration it changes; for a wave or
/// a revert, the members it decided for.
pub fn evolve_indexed(state: &mut FleetState, event: &Event) -> Vec<NodeId> {
    advance(state, event);
    if event.version < crate::event::FORMAT_VERSION {
        return crate::upgrade::fold_legacy(state, event);
    }
    fold(state, event, &event.payload)
}

/// Fold an accepted event into `state`. Infallible and rule-free.
pub fn evolve(state: &mut FleetState, event: &Event) {
    evolve_indexed(state, event);
}

fn advance(state: &mut FleetState, event: &Event) {
    state.seq = event.seq;
    state.head = event.hash;
    state.last_time = event.time;
}

/// Record the systems `decided` by a rollout at `seq`.
fn decide_all(state: &mut FleetState, seq: u64, decided: Vec<Decided>) {
    for d in decided {
        let source = if d.revert { Source::Revert } else { Source::Rollout };
        let desired = Desired { seq, system: d.system, action: d.action, source, rollout: Some(d.rollout) };
        systems::fold::decided(&mut state.systems, &d.node, desired);
    }
}

/// A report settled `node`'s decision `decision`: if a rollout made that decision (and it is still the node's
/// desired one), the rollout records how it went.
fn settle(state: &mut FleetState, seq: u64, node: &NodeId, decision: u64, settled: Settled) {
    let rollout = state.systems.get(node).and_then(|s| s.desired.as_ref()).filter(|d| d.seq == decision);
    let Some(id) = rollout.and_then(|d| d.rollout) else { return };
    let outcome = match settled {
        Settled::Confirmed => MemberOutcome::Confirmed,
        Settled::Failed { healthy, why } => MemberOutcome::Failed { healthy, why },
    };
    rollouts::fold::settled(&mut state.rollouts, id, node, decision, outcome, seq);
}

/// Fold `payload` (the event's, or what `crate::upgrade` made of an older one) into `state`, whose seq, head
/// and time already moved to the event's.
pub(crate) fn fold(state: &mut FleetState, event: &Event, payload: &Payload) -> Vec<NodeId> {
    let (seq, time) = (event.seq, event.time);
    let named = payload.node().cloned().or_else(|| payload.machine().and_then(|m| state.machines.get(m)?.node.clone()));
    let mut index: Vec<NodeId> = named.into_iter().collect();
    if let Some(n) = payload.node() {
        state.nodes.touch(n, seq);
    }
    use Payload as P;
    match payload {
        P::MachineDiscovered(p) => {
            if let Some(node) = machines::fold::facts_recorded(&mut state.machines, seq, &p.machine, &p.facts) {
                state.nodes.touch(&node, seq);
            }
        }
        P::MachinePhonedHome(p) => {
            if let Some(node) = machines::fold::phoned_home(&mut state.machines, seq, event.id, p) {
                state.nodes.touch(&node, seq);
            }
        }
        P::NodeCommissioned(p) => {
            nodes::fold::commissioned(&mut state.nodes, seq, p);
            machines::fold::bound(&mut state.machines, &p.machine, &p.node, None);
        }
        P::NodeRebound(p) => {
            let released = nodes::fold::rebound(&mut state.nodes, seq, &p.node, &p.machine);
            machines::fold::bound(&mut state.machines, &p.machine, &p.node, released.as_ref());
        }
        P::NodeInstallRequested(p) => nodes::fold::moved(&mut state.nodes, seq, &p.node, payload.kind(), None),
        P::NodeInstallStarted(p) => nodes::fold::moved(&mut state.nodes, seq, &p.node, payload.kind(), None),
        P::NodeInstallFailed(p) => {
            nodes::fold::moved(&mut state.nodes, seq, &p.node, payload.kind(), Some(&p.reason));
        }
        P::NodeActivated(p) => nodes::fold::moved(&mut state.nodes, seq, &p.node, payload.kind(), None),
        P::NodeDrainRequested(p) => nodes::fold::drain_started(&mut state.nodes, seq, time, &p.node, None, None),
        P::NodeDrainStarted(p) => {
            // The rollout controller drains a member of its open rollout before the member's wave.
            let by_controller = matches!(&event.actor, Actor::System(name) if name == rollouts::CONTROLLER);
            let rollout = state.rollouts.of_node(&p.node).filter(|_| by_controller).map(|r| r.id);
            let terms = Some((p.deadline, p.force));
            nodes::fold::drain_started(&mut state.nodes, seq, time, &p.node, terms, rollout);
        }
        P::NodeDrained(p) => nodes::fold::drained(&mut state.nodes, seq, &p.node),
        P::NodeCordoned(p) => nodes::fold::cordoned(&mut state.nodes, seq, p),
        P::NodeUncordoned(p) => nodes::fold::moved(&mut state.nodes, seq, &p.node, payload.kind(), None),
        P::NodeReprovisionRequested(p) => nodes::fold::moved(&mut state.nodes, seq, &p.node, payload.kind(), None),
        P::NodeRescueRequested(p) => nodes::fold::moved(&mut state.nodes, seq, &p.node, payload.kind(), None),
        P::NodeFailed(p) => nodes::fold::moved(&mut state.nodes, seq, &p.node, payload.kind(), Some(&p.reason)),
        P::NodeRetired(p) => {
            nodes::fold::moved(&mut state.nodes, seq, &p.node, payload.kind(), None);
            services::fold::node_retired(&mut state.services, &p.node);
        }
        P::NodeTokenIssued(p) => nodes::fold::node_token_issued(&mut state.nodes, seq, p),
        P::SpecApplied(p) => {
            let before = specs::fold::applied(&mut state.specs, seq, p);
            let ids: Vec<NodeId> = state.nodes.records.keys().cloned().collect();
            index = specs::fold::affected(&state.specs, before.as_deref(), ids.into_iter());
            if let Some(now) = state.specs.live.clone() {
                let decisions = systems::fold::spec_decisions(&now.spec, before.as_ref().map(|b| b.spec.as_ref()));
                for (node, system) in decisions {
                    let d = Desired {
                        seq,
                        system,
                        action: crate::nixos::SwitchAction::Switch,
                        source: Source::Spec,
                        rollout: None,
                    };
                    systems::fold::decided(&mut state.systems, &node, d);
                }
            }
        }
        P::BootstrapTokenIssued(p) => machines::fold::token_issued(&mut state.machines, seq, event.id, p),
        P::BootstrapTokenClaimed(p) => machines::fold::token_claimed(&mut state.machines, seq, p),
        P::BootstrapTokenExchanged(p) => machines::fold::token_exchanged(&mut state.machines, seq, p),
        P::InstallProgressed(p) => machines::fold::install_progressed(&mut state.machines, seq, p),
        P::InstallPlanRefused(p) => {
            let since = state.nodes.get(&p.node).map(|n| n.since).unwrap_or_default();
            let machine = state.nodes.get(&p.node).map(|n| n.machine.clone());
            let seen = machine.and_then(|m| state.machines.get(&m).map(|m| m.last_seen)).unwrap_or_default();
            machines::fold::plan_refused(&mut state.machines, seq, p, since, seen);
        }
        P::EnrollmentConflicted(p) => machines::fold::enrollment_conflicted(&mut state.machines, seq, p),
        P::EnrollmentRefused(p) => machines::fold::enrollment_refused(&mut state.machines, seq, p),
        P::NodeSystemSet(p) => {
            systems::fold::system_set(&mut state.systems, seq, p);
        }
        P::NodePinned(p) => systems::fold::pinned(&mut state.systems, seq, p),
        P::NodeUnpinned(p) => systems::fold::unpinned(&mut state.systems, seq, p),
        P::SystemReported(p) => systems::fold::reported(&mut state.systems, seq, p),
        P::SystemPrefetched(p) => systems::fold::prefetched(&mut state.systems, seq, p),
        P::SystemPrefetchFailed(p) => {
            let s = systems::fold::prefetch_failed(&mut state.systems, seq, p);
            settle(state, seq, &p.node, p.decision, s);
        }
        P::SystemActivating(p) => systems::fold::activating(&mut state.systems, seq, p),
        P::SystemProfileSet(p) => systems::fold::profile_set(&mut state.systems, seq, p),
        P::SystemSwitched(p) => {
            if let Some(s) = systems::fold::switched(&mut state.systems, seq, p) {
                settle(state, seq, &p.node, p.decision, s);
            }
        }
        P::SystemHealthFailed(p) => {
            let s = systems::fold::health_failed(&mut state.systems, seq, p);
            settle(state, seq, &p.node, p.decision, s);
        }
        P::SystemConfirmed(p) => {
            let s = systems::fold::confirmed(&mut state.systems, seq, p);
            settle(state, seq, &p.node, p.decision, s);
        }
        P::SystemRolledBack(p) => {
            let s = systems::fold::rolled_back(&mut state.systems, seq, p);
            settle(state, seq, &p.node, p.decision, s);
        }
        P::RolloutStarted(p) => {
            let members = FleetRead::pool_members(state, &p.pool);
            rollouts::fold::started(&mut state.rollouts, seq, time, p, members);
        }
        P::RolloutWaveStarted(p) => {
            let previous = p
                .nodes
                .iter()
                .map(|n| {
                    let ns = state.systems.get(n);
                    let desired = ns.and_then(|s| s.desired.as_ref());
                    let previous = desired.map(|d| d.system.clone()).or_else(|| ns.and_then(|s| s.current.clone()));
                    (previous, desired.map(|d| d.action).unwrap_or_default())
                })
                .collect();
            let decided = rollouts::fold::wave_started(&mut state.rollouts, seq, time, p, previous);
            decide_all(state, seq, decided);
            index = rollouts::fold::decided_nodes(&state.rollouts, p.rollout, seq);
        }
        P::RolloutCompleted(p) => rollouts::fold::completed(&mut state.rollouts, seq, p),
        P::RolloutHalted(p) => {
            let decided = rollouts::fold::halted(&mut state.rollouts, seq, time, p);
            decide_all(state, seq, decided);
            index = rollouts::fold::decided_nodes(&state.rollouts, p.rollout, seq);
        }
        P::RolloutNodesReverted(p) => {
            let decided = rollouts::fold::nodes_reverted(&mut state.rollouts, seq, time, p);
            decide_all(state, seq, decided);
            index = rollouts::fold::decided_nodes(&state.rollouts, p.rollout, seq);
        }
        P::RolloutReverted(p) => rollouts::fold::reverted(&mut state.rollouts, seq, p),
        P::RolloutMemberLeft(p) => rollouts::fold::member_left(&mut state.rollouts, seq, p),
        P::RolloutDrainsMembers(p) => rollouts::fold::drains_members(&mut state.rollouts, p),
        P::InstancePlaced(p) => {
            let task = target_task(state, &p.service);
            services::fold::placed(&mut state.services, seq, time, p, task);
        }
        P::InstanceRescheduled(p) => {
            let task = target_task(state, &p.service);
            services::fold::rescheduled(&mut state.services, seq, time, p, task);
        }
        P::InstanceMigrated(p) => {
            // A hand-over is in the history of the node it moves work away from, too.
            if let Some(from) = state.services.instance(&p.replaces).map(|i| i.node.clone())
                && from != p.node
            {
                state.nodes.touch(&from, seq);
                index.push(from);
            }
            let task = target_task(state, &p.service);
            services::fold::migrated(&mut state.services, seq, time, p, task);
        }
        P::InstanceUpdated(p) => {
            if let Some(from) = state.services.instance(&p.replaces).map(|i| i.node.clone())
                && from != p.node
            {
                state.nodes.touch(&from, seq);
                index.push(from);
            }
            services::fold::updated(&mut state.services, seq, time, p);
        }
        P::DeploymentStarted(p) => {
            let task = if p.revert {
                state.services.stable.get(&p.service).map(|(_, t)| t.0.as_ref().clone())
            } else {
                live_task(state, &p.service)
            };
            services::fold::deployment_started(&mut state.services, seq, time, p, task);
        }
        P::DeploymentPromoted(p) => services::fold::deployment_promoted(&mut state.services, seq, p),
        P::DeploymentEnded(p) => services::fold::deployment_ended(&mut state.services, seq, p),
        P::InstanceStopRequested(p) => services::fold::stop_requested(&mut state.services, seq, p),
        P::InstanceStarted(p) => services::fold::instance_started(&mut state.services, seq, time, p),
        P::InstanceHealthy(p) => services::fold::healthy(&mut state.services, seq, time, p),
        P::InstanceUnhealthy(p) => services::fold::unhealthy(&mut state.services, seq, time, p),
        P::InstanceExited(p) => services::fold::exited(&mut state.services, seq, time, p),
        P::InstanceStopped(p) => services::fold::stopped(&mut state.services, p),
        P::NodeAgentStarted(p) => services::fold::agent_started(&mut state.services, seq, time, p),
        P::NodeAgentLost(p) => services::fold::agent_lost(&mut state.services, seq, time, p),
        P::NodeAgentReturned(p) => services::fold::agent_returned(&mut state.services, seq, time, p),
        P::PowerRequested(p) => power::fold::requested(&mut state.power, seq, time, p),
        P::PowerCompleted(p) => power::fold::request_completed(&mut state.power, seq, p),
        P::PowerObserved(p) => power::fold::observed(&mut state.power, seq, p),
    }
    index
}

/// What the live spec's declaration of `service` runs.
fn live_task(state: &FleetState, service: &str) -> Option<Task> {
    state.live().and_then(|l| l.spec.services.get(service)).map(Task::of)
}

/// What new instances of `service` run (the version `check` accepted a placement at): the live spec's, or the
/// stable version a deployment reverted to.
fn target_task(state: &FleetState, service: &str) -> Option<Task> {
    live_task(state, service).map(|live| state.services.target(service, &live).1)
}
