//! Property tests of the rollout planner (`sendan_core::rollout`) against simulated agents, through the real
//! `check` and `evolve`: random pools, budgets and canaries, members whose agents confirm, fail and recover, fail
//! and stay broken, never answer, or cannot fetch; random operator pins and halts; a clock that jumps past
//! deadlines. Named invariants are checked after every step against the simulation's own ground truth.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sendan_core::event::*;
use sendan_core::facts::HardwareFacts;
use sendan_core::fleet::FleetState;
use sendan_core::ids::{Actor, EventId, MachineId, NodeId, Timestamp};
use sendan_core::rollouts::{RolloutState, planner};
use sendan_core::{Event, log};

#[path = "support/systems.rs"]
mod systems_support;
use systems_support::{POOL, SYSTEMS};

const OLD: &str = SYSTEMS[0];
const NEW: &str = SYSTEMS[1];
const TIMEOUT_SECS: u32 = 60;

/// How a member's agent handles a decision to run the rollout's system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Confirms,
    /// The switch fails (units failed) and the rollback succeeds: back on its old system, healthy.
    FailsAndRecovers,
    /// The switch fails and so does the rollback: broken until an operator comes.
    FailsBroken,
    /// Never reports anything (the agent is down).
    Silent,
    /// Cannot fetch the closure; nothing is activated.
    PrefetchFails,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        6 => Just(Fate::Confirms),
        1 => Just(Fate::FailsAndRecovers),
        1 => Just(Fate::FailsBroken),
        1 => Just(Fate::Silent),
        1 => Just(Fate::PrefetchFails),
    ]
}

#[derive(Clone, Debug)]
struct Setup {
    fates: Vec<Fate>,
    max_unavailable: u32,
    canary: u32,
    max_failures: u32,
    /// What happens each tick: the agent of member `i % n` takes a step, the clock moves, or the operator acts.
    ticks: Vec<Tick>,
}

#[derive(Clone, Debug)]
enum Tick {
    Agent(usize),
    Clock(i64),
    Pin(usize),
    Halt,
}

fn setup() -> impl Strategy<Value = Setup> {
    (1usize..7, 1u32..4, 0u32..3, 0u32..3).prop_flat_map(|(n, max_unavailable, canary, max_failures)| {
        let canary = canary.min(max_unavailable);
        let tick = prop_oneof![
            12 => (0..n).prop_map(Tick::Agent),
            3 => prop_oneof![Just(1_000i64), Just(30_000), Just(61_000)].prop_map(Tick::Clock),
            1 => (0..n).prop_map(Tick::Pin),
            1 => Just(Tick::Halt),
        ];
        (prop::collection::vec(fate(), n), prop::collection::vec(tick, 0..250)).prop_map(move |(fates, ticks)| Setup {
            fates,
            max_unavailable,
            canary,
            max_failures,
            ticks,
        })
    })
}

/// A simulated agent: the last decision it finished with, and the one it is working on (the next stage, and the
/// system it activates).
#[derive(Clone, Debug, Default)]
struct Agent {
    settled: u64,
    working: Option<(u64, u8, String)>,
}

struct Sim {
    state: FleetState,
    events: Vec<Event>,
    clock: i64,
    next_id: u128,
    members: Vec<NodeId>,
    fates: BTreeMap<NodeId, Fate>,
    agents: BTreeMap<NodeId, Agent>,
    /// Ground truth: what each member runs, and which are broken.
    running: BTreeMap<NodeId, String>,
    broken: BTreeSet<NodeId>,
    /// The desired decision of each member before the rollout started.
    before: BTreeMap<NodeId, u64>,
    rollout: u64,
}

impl Sim {
    fn submit(&mut self, actor: Actor, payload: Payload) -> Result<Event, sendan_core::Rejection> {
        self.submit_caused(actor, payload, None)
    }

    fn submit_caused(
        &mut self,
        actor: Actor,
        payload: Payload,
        cause: Option<u64>,
    ) -> Result<Event, sendan_core::Rejection> {
        self.next_id += 1;
        let p = Proposal {
            id: EventId::from_u128(self.next_id),
            time: Timestamp(self.clock),
            actor,
            comment: None,
            cause,
            payload,
        };
        match log::append(&mut self.state, &[p]) {
            Ok(mut e) => {
                let e = e.remove(0);
                self.events.push(e.clone());
                Ok(e)
            }
            Err(b) => Err(b.rejection),
        }
    }

    fn admin(&mut self, payload: impl Into<Payload>) -> Event {
        let payload = payload.into();
        let kind = payload.kind();
        self.submit(Actor::Admin, payload).unwrap_or_else(|r| panic!("{kind} refused: {r}"))
    }

    fn new(s: &Setup) -> Sim {
        let members: Vec<NodeId> = (0..s.fates.len()).map(|i| NodeId::new(format!("e{i}")).unwrap()).collect();
        let mut sim = Sim {
            state: FleetState::default(),
            events: Vec::new(),
            clock: 1_000_000,
            next_id: 0,
            fates: members.iter().cloned().zip(s.fates.iter().copied()).collect(),
            agents: members.iter().map(|m| (m.clone(), Agent::default())).collect(),
            running: members.iter().map(|m| (m.clone(), OLD.to_owned())).collect(),
            broken: BTreeSet::new(),
            before: BTreeMap::new(),
            members: members.clone(),
            rollout: 0,
        };
        for (i, node) in members.iter().enumerate() {
            let machine = MachineId::new(format!("m{i}")).unwrap();
            let facts = HardwareFacts::default();
            sim.admin(MachineDiscovered { machine: machine.clone(), facts });
            let node = node.clone();
            sim.admin(NodeCommissioned {
                node: node.clone(),
                machine,
                class: None,
                pool: None,
                profile: None,
                rule: None,
            });
            sim.admin(NodeInstallRequested { node: node.clone() });
            sim.admin(NodeInstallStarted { node: node.clone() });
            sim.admin(NodeActivated { node });
        }
        let names: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
        let spec = systems_support::systems_spec(&names, 0);
        let applied = sim.submit(Actor::Admin, spec).expect("the spec applies").seq;
        for m in &members {
            // Every agent acknowledges the spec's system, which it already runs.
            let p = SystemConfirmed { node: m.clone(), decision: applied, path: OLD.into(), switched: false };
            sim.submit(Actor::Node(m.clone()), p.into()).expect("the acknowledgement is accepted");
            sim.agents.get_mut(m).unwrap().settled = applied;
            sim.before.insert(m.clone(), applied);
        }
        let started = sim.admin(RolloutStarted {
            pool: POOL.into(),
            system: NEW.into(),
            action: SwitchAction::Switch,
            max_unavailable: s.max_unavailable,
            canary: s.canary,
            max_failures: s.max_failures,
            health_timeout_secs: TIMEOUT_SECS,
        });
        sim.rollout = started.seq;
        sim
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.clock.max(self.state.last_time.0))
    }

    /// Run the controller: propose everything the planner decides, each of which `check` must accept.
    fn controller(&mut self) {
        for d in planner::decide(&self.state.rollouts, &self.state, self.now()) {
            let kind = d.payload().kind();
            self.invariant_cause_is_about_the_rollout(kind, d.cause);
            if let Err(r) = self.submit_caused(Actor::System("rollout".into()), d.payload(), Some(d.cause)) {
                panic!("invariant_planner_agrees_with_check: the planner's {kind} was refused: {r}");
            }
        }
    }

    /// A decision's cause is an event of the log since the rollout started that is about the rollout: its start,
    /// one of its own decisions, or a member's report, pin or replacing decision.
    fn invariant_cause_is_about_the_rollout(&self, kind: sendan_core::EventKind, cause: u64) {
        assert!(
            (self.rollout..=self.state.seq).contains(&cause),
            "{kind}'s cause {cause} is not an event since the rollout began ({}..={})",
            self.rollout,
            self.state.seq
        );
        let e = &self.events[cause as usize - 1];
        assert_eq!(e.seq, cause);
        let json = serde_json::to_value(&e.payload).unwrap();
        let own = json["rollout"].as_u64() == Some(self.rollout) || e.seq == self.rollout;
        let member = e.payload.node().is_some_and(|n| self.members.contains(n));
        assert!(own || member, "{kind}'s cause {cause} ({}) is not about the rollout", e.kind());
    }

    /// One step of `node`'s agent on its desired decision.
    fn agent_step(&mut self, node: &NodeId) {
        let ns = self.state.node_system(node).cloned().unwrap_or_default();
        let Some(d) = ns.desired.clone() else { return };
        let agent = self.agents[node].clone();
        // An activation under way is finished first, whatever was decided since.
        let (decision, stage, target) = match agent.working {
            Some(w) => w,
            None if d.seq <= agent.settled => return,
            // Pinned: the agent does not start anything.
            None if ns.pinned.is_some() => return,
            None => (d.seq, 0, d.system.clone()),
        };
        let running = self.running[node].clone();
        let broken = self.broken.contains(node);
        let fate = if broken {
            Fate::Silent
        } else if target == NEW {
            self.fates[node]
        } else {
            Fate::Confirms
        };
        if fate == Fate::Silent {
            return;
        }
        let me = Actor::Node(node.clone());
        let node_ = node.clone();
        let (payload, next): (Payload, Option<u8>) = match stage {
            0 if target == running => {
                (SystemConfirmed { node: node_, decision, path: target.clone(), switched: false }.into(), None)
            }
            0 if fate == Fate::PrefetchFails => {
                let error = "not signed".into();
                (SystemPrefetchFailed { node: node_, decision, system: target.clone(), error }.into(), None)
            }
            0 => {
                let p = SystemPrefetched { node: node_, decision, system: target.clone(), path: target.clone() };
                (p.into(), Some(1))
            }
            1 => {
                let p = SystemActivating {
                    node: node_,
                    decision,
                    path: target.clone(),
                    action: SwitchAction::Switch,
                    previous: Some(running),
                };
                (p.into(), Some(2))
            }
            2 => {
                let exit_code = match fate {
                    Fate::FailsAndRecovers => 4,
                    Fate::FailsBroken => 2,
                    _ => 0,
                };
                let p =
                    SystemSwitched { node: node_, decision, path: target.clone(), exit_code, reboot_required: false };
                (p.into(), Some(3))
            }
            _ => {
                let path = target.clone();
                match fate {
                    Fate::Confirms => (SystemConfirmed { node: node_, decision, path, switched: true }.into(), None),
                    _ => {
                        let previous = self
                            .state
                            .node_system(node)
                            .and_then(|s| s.attempt.clone())
                            .and_then(|a| a.previous)
                            .unwrap_or_else(|| OLD.into());
                        let exit_code = if fate == Fate::FailsBroken { 1 } else { 0 };
                        let reason = "units failed".into();
                        let p = SystemRolledBack { node: node_, decision, path, to: previous, reason, exit_code };
                        (p.into(), None)
                    }
                }
            }
        };
        let kind = payload.kind();
        let accepted = self.submit(me, payload.clone());
        let a = self.agents.get_mut(node).unwrap();
        match accepted {
            Ok(_) => {
                // Ground truth follows what the agent did.
                match &payload {
                    Payload::SystemSwitched(s) if s.exit_code != 2 => {
                        self.running.insert(node.clone(), s.path.clone());
                    }
                    Payload::SystemRolledBack(r) if r.exit_code == 0 => {
                        self.running.insert(node.clone(), r.to.clone());
                    }
                    Payload::SystemRolledBack(_) => {
                        self.broken.insert(node.clone());
                    }
                    _ => {}
                }
                match next {
                    Some(stage) => a.working = Some((decision, stage, target)),
                    None => {
                        a.working = None;
                        a.settled = a.settled.max(decision);
                    }
                }
            }
            // A report the log no longer takes (the decision was replaced before the activation began): the
            // agent drops that decision, as the real one does.
            Err(r) => {
                assert!(stage <= 1, "{kind} of an activation under way was refused: {r}");
                a.working = None;
                a.settled = a.settled.max(decision);
            }
        }
    }

    /// Whether every agent that answers is done with its node's decisions.
    fn quiet(&self) -> bool {
        self.members.iter().all(|m| {
            let ns = self.state.node_system(m);
            let a = &self.agents[m];
            let silent = self.broken.contains(m) || self.fates[m] == Fate::Silent;
            let pending = ns.and_then(|s| s.desired.as_ref()).is_some_and(|d| d.seq > a.settled);
            silent || ns.is_some_and(|s| s.pinned.is_some()) || (a.working.is_none() && !pending)
        })
    }

    /// Ground truth: the members away from a healthy system now — broken ones, and those working towards (or due
    /// to start on) a decision whose system is not the one they run.
    fn away(&self) -> BTreeSet<NodeId> {
        self.members
            .iter()
            .filter(|m| {
                if self.broken.contains(*m) {
                    return true;
                }
                let ns = self.state.node_system(m);
                let desired = ns.and_then(|s| s.desired.as_ref());
                let agent = &self.agents[*m];
                if agent.working.as_ref().is_some_and(|(_, stage, _)| *stage >= 2) {
                    return true;
                }
                match desired {
                    Some(d) if d.seq > agent.settled && ns.is_some_and(|s| s.pinned.is_none()) => {
                        d.system != self.running[*m]
                    }
                    _ => false,
                }
            })
            .cloned()
            .collect()
    }
}

fn invariant_budget(sim: &Sim, max_unavailable: u32) {
    let away = sim.away();
    assert!(
        away.len() <= max_unavailable as usize,
        "invariant_budget: {} members away at once ({away:?}), max-unavailable {max_unavailable}",
        away.len()
    );
}

fn invariant_untouched_keep_their_system(sim: &Sim) {
    let r = sim.state.rollout(sim.rollout).unwrap();
    let moved: BTreeSet<&NodeId> = r.waves.iter().flat_map(|w| &w.nodes).map(|wn| &wn.node).collect();
    for m in sim.members.iter().filter(|m| !moved.contains(m)) {
        let d = sim.state.node_system(m).and_then(|s| s.desired.as_ref()).unwrap();
        assert_eq!(d.seq, sim.before[m], "invariant_untouched_keep_their_system: {m} got a decision");
        assert_eq!(sim.running[m], OLD, "invariant_untouched_keep_their_system: {m} runs something else");
    }
}

/// The members whose wave decision failed (rolled back, gave up fetching), from the log.
fn failed_members(sim: &Sim) -> BTreeSet<NodeId> {
    let mut wave_of: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut failed = BTreeSet::new();
    for e in &sim.events {
        match &e.payload {
            Payload::RolloutWaveStarted(w) => wave_of.extend(w.nodes.iter().map(|n| (n.clone(), e.seq))),
            Payload::SystemRolledBack(r) if wave_of.get(&r.node) == Some(&r.decision) => {
                failed.insert(r.node.clone());
            }
            Payload::SystemPrefetchFailed(r) if wave_of.get(&r.node) == Some(&r.decision) => {
                failed.insert(r.node.clone());
            }
            _ => {}
        }
    }
    failed
}

/// Checked on the whole log at the end: waves are canaries until one confirms, no wave follows a failed canary
/// or too many failures, and nothing moves forward after the halt.
fn invariant_waves_follow_the_rules(sim: &Sim, s: &Setup) {
    let mut confirmed = BTreeSet::new();
    let mut failed: BTreeSet<NodeId> = BTreeSet::new();
    let mut canary_members = BTreeSet::new();
    let mut wave_of: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut halted = false;
    for e in &sim.events {
        match &e.payload {
            Payload::RolloutWaveStarted(w) => {
                assert!(!halted, "invariant_waves_follow_the_rules: wave {} after the halt", w.wave);
                if s.canary > 0 && confirmed.is_empty() {
                    assert!(w.nodes.len() <= s.canary as usize, "a canary wave moved {} nodes", w.nodes.len());
                    canary_members.extend(w.nodes.iter().cloned());
                } else if s.canary > 0 {
                    assert!(
                        failed.is_disjoint(&canary_members),
                        "invariant_canary_first: a wave after a failed canary"
                    );
                }
                assert!(failed.len() <= s.max_failures as usize, "a wave after {} failures", failed.len());
                wave_of.extend(w.nodes.iter().map(|n| (n.clone(), e.seq)));
            }
            Payload::RolloutHalted(_) => halted = true,
            Payload::SystemConfirmed(c) if wave_of.get(&c.node) == Some(&c.decision) => {
                confirmed.insert(c.node.clone());
            }
            Payload::SystemRolledBack(r) if wave_of.get(&r.node) == Some(&r.decision) => {
                failed.insert(r.node.clone());
            }
            Payload::SystemPrefetchFailed(r) if wave_of.get(&r.node) == Some(&r.decision) => {
                failed.insert(r.node.clone());
            }
            _ => {}
        }
    }
}

/// Play `s`: the generated ticks (checking the step invariants after each), then every agent and the clock until
/// the rollout ends (silent members time out).
fn run(s: &Setup) -> Sim {
    let mut sim = Sim::new(s);
    for tick in &s.ticks {
        match tick {
            Tick::Agent(i) => {
                let node = sim.members[*i % sim.members.len()].clone();
                sim.agent_step(&node);
            }
            Tick::Clock(dt) => sim.clock += dt,
            Tick::Pin(i) => {
                // Operators pin members the rollout has not moved yet: it must skip them.
                let node = sim.members[*i % sim.members.len()].clone();
                let r = sim.state.rollout(sim.rollout).unwrap();
                let moved = r.waves.iter().flat_map(|w| &w.nodes).any(|wn| wn.node == node);
                let pinned = sim.state.node_system(&node).is_some_and(|n| n.pinned.is_some());
                if !moved && !pinned && r.state == RolloutState::Running {
                    sim.admin(NodePinned { node, reason: "maintenance".into() });
                }
            }
            Tick::Halt => {
                if sim.state.rollout(sim.rollout).unwrap().state == RolloutState::Running {
                    let rollout = sim.rollout;
                    let r = sim.state.rollout(rollout).unwrap();
                    let revert = planner::halt_reverts(r, &planner::assess(&sim.state, r, sim.now()));
                    sim.admin(RolloutHalted { rollout, reason: "operator".into(), revert });
                }
            }
        }
        sim.controller();
        invariant_budget(&sim, s.max_unavailable);
        invariant_untouched_keep_their_system(&sim);
    }
    // Until the rollout has ended and every agent that answers has finished what it was asked.
    for round in 0..200 {
        let open = sim.state.rollout(sim.rollout).unwrap().state.is_open();
        if !open && sim.quiet() {
            break;
        }
        if round % 10 == 9 {
            sim.clock += i64::from(TIMEOUT_SECS) * 1000 + 1;
        }
        for m in sim.members.clone() {
            sim.agent_step(&m);
            sim.controller();
            invariant_budget(&sim, s.max_unavailable);
        }
        invariant_untouched_keep_their_system(&sim);
    }
    invariant_waves_follow_the_rules(&sim, s);
    sim
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rollouts_keep_their_budget_canaries_and_untouched_members(s in setup()) {
        let sim = run(&s);
        let r = sim.state.rollout(sim.rollout).unwrap();
        let mut failed = failed_members(&sim);
        // Silent members that were moved failed too: they timed out.
        failed.extend(r.waves.iter().flat_map(|w| &w.nodes).map(|wn| &wn.node).filter(|n| sim.fates[*n] == Fate::Silent).cloned());
        match r.state {
            RolloutState::Completed => {
                // invariant_completion: within the failures allowed, every member not pinned runs the new system.
                prop_assert!(failed.len() <= s.max_failures as usize);
                for m in &sim.members {
                    let pinned = sim.state.node_system(m).is_some_and(|n| n.pinned.is_some());
                    let ok = pinned || failed.contains(m) || sim.running[m] == NEW;
                    prop_assert!(ok, "completed, but {} runs {}", m, sim.running[m]);
                }
            }
            RolloutState::Reverted => {
                // invariant_stop_and_revert: every moved member that is not broken runs its old system again.
                for wn in r.waves.iter().flat_map(|w| &w.nodes) {
                    if !sim.broken.contains(&wn.node) {
                        prop_assert_eq!(&sim.running[&wn.node], OLD, "reverted, but {} was not put back", &wn.node);
                    }
                }
            }
            // A revert can only stall when unhealthy members use the whole budget.
            RolloutState::Reverting => {
                let view = sendan_core::rollouts::view::view(&sim.state.rollouts, &sim.state, r, sim.now());
                prop_assert!(view.waiting.as_deref().is_some_and(|w| w.starts_with("stalled")), "{view:?}");
            }
            RolloutState::Running => prop_assert!(false, "the rollout never ended: {r:?}"),
        }
    }
}

/// Guards the generator: across a fixed-seed sample, rollouts complete, halt (on a failed canary, on too many
/// failures, by an operator), put members back and end reverted, and agents fail in every way — so the
/// properties above are not vacuously true.
#[test]
fn the_generator_reaches_every_ending() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner =
        TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(Config::default().rng_algorithm));
    let (mut kinds, mut reasons, mut endings) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for _ in 0..128 {
        let s = setup().new_tree(&mut runner).unwrap().current();
        let sim = run(&s);
        kinds.extend(sim.events.iter().map(|e| e.kind()));
        let r = sim.state.rollout(sim.rollout).unwrap();
        endings.insert(r.state.name());
        for what in ["canary", "more than max-failures", "operator", "no budget"] {
            if r.reason.as_deref().is_some_and(|reason| reason.contains(what)) {
                reasons.insert(what);
            }
        }
    }
    for kind in [
        EventKind::RolloutWaveStarted,
        EventKind::RolloutCompleted,
        EventKind::RolloutHalted,
        EventKind::RolloutNodesReverted,
        EventKind::RolloutReverted,
        EventKind::NodePinned,
        EventKind::SystemRolledBack,
        EventKind::SystemPrefetchFailed,
    ] {
        assert!(kinds.contains(&kind), "no run reached {kind}: {kinds:?}");
    }
    assert_eq!(reasons.len(), 4, "halts seen only for {reasons:?}");
    assert!(endings.contains("completed") && endings.contains("reverted"), "{endings:?}");
}
