//! given/when/then tests of the systems rules: decisions, pins, the agent's reports about an activation, and
//! starting and driving rollouts — each refusal with its code and the sentence a person reads.

use sendan_core::event::*;
use sendan_core::fleet::FleetState;
use sendan_core::fleet::systems::{Phase, RolloutState, Source};
use sendan_core::ids::{Actor, EventId, MachineId, NodeId, Timestamp};
use sendan_core::{Rejection, log};

#[path = "support/systems.rs"]
mod systems_support;
use systems_support::{POOL, SYSTEMS, systems_spec};

const OLD: &str = SYSTEMS[0];
const NEW: &str = SYSTEMS[1];

fn n(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

struct Given {
    state: FleetState,
    next: u128,
}

/// Nodes `e0`, `e1`, `e2` active, in pool `edge` of the live spec running `OLD`, each agent having acknowledged
/// it; then `history`, each as the admin (`Actor::Admin`) or, for agent reports, as the node.
fn given(history: impl IntoIterator<Item = Payload>) -> Given {
    let mut g = Given { state: FleetState::default(), next: 1 };
    for (i, node) in ["e0", "e1", "e2"].iter().enumerate() {
        let machine = MachineId::new(format!("m{i}")).unwrap();
        g.ok(MachineDiscovered { machine: machine.clone(), facts: Default::default() }.into());
        let c = NodeCommissioned { node: n(node), machine, class: None, pool: None, profile: None, rule: None };
        g.ok(c.into());
        g.ok(NodeInstallRequested { node: n(node) }.into());
        g.ok(NodeInstallStarted { node: n(node) }.into());
        g.ok(NodeActivated { node: n(node) }.into());
    }
    g.ok(systems_spec(&["e0", "e1", "e2"], 0));
    for p in history {
        g.ok(p);
    }
    g
}

impl Given {
    fn actor(p: &Payload) -> Actor {
        match (p.node(), p.kind().emitters().contains(Emitters::NODE)) {
            (Some(node), true) => Actor::Node(node.clone()),
            _ => Actor::Admin,
        }
    }

    fn proposal(&mut self, payload: Payload) -> Proposal {
        self.next += 1;
        Proposal {
            id: EventId::from_u128(self.next),
            time: Timestamp(1_000_000 + self.next as i64),
            actor: Self::actor(&payload),
            comment: None,
            payload,
        }
    }

    fn ok(&mut self, payload: Payload) -> u64 {
        let kind = payload.kind();
        let p = self.proposal(payload);
        log::append(&mut self.state, &[p]).unwrap_or_else(|b| panic!("the given {kind} is legal: {}", b.rejection))[0]
            .seq
    }

    fn when(mut self, payload: impl Into<Payload>) -> When {
        let before = self.state.clone();
        let p = self.proposal(payload.into());
        let result = log::append(&mut self.state, &[p]).map(|e| e[0].seq).map_err(|b| b.rejection);
        When { before, after: self.state, result }
    }

    fn seq(&self) -> u64 {
        self.state.seq
    }
}

struct When {
    before: FleetState,
    after: FleetState,
    result: Result<u64, Rejection>,
}

impl When {
    fn then_ok(self) -> FleetState {
        if let Err(e) = &self.result {
            panic!("expected acceptance, got {e}");
        }
        self.after
    }

    fn then_rejects(self, code: &str, sentence: &str) {
        let err = self.result.expect_err("expected a rejection");
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(sentence), "{err:?} should say {sentence:?}; it says: {err}");
        assert_eq!(self.after, self.before, "a rejection changes nothing");
    }
}

fn set(node: &str, system: &str) -> Payload {
    NodeSystemSet { node: n(node), system: system.into(), action: SwitchAction::Switch }.into()
}

fn rollout(max_unavailable: u32, canary: u32) -> Payload {
    RolloutStarted {
        pool: POOL.into(),
        system: NEW.into(),
        action: SwitchAction::Switch,
        max_unavailable,
        canary,
        max_failures: 0,
        health_timeout_secs: 600,
    }
    .into()
}

#[test]
fn the_spec_decides_and_an_operator_can_decide_again() {
    let g = given([]);
    let spec_seq = g.state.spec.live.as_ref().unwrap().seq;
    let d = g.state.node_system(&n("e0")).unwrap().desired.clone().unwrap();
    assert_eq!((d.seq, d.system.as_str(), d.source), (spec_seq, OLD, Source::Spec));
    let after = given([]).when(set("e0", NEW)).then_ok();
    let d = after.node_system(&n("e0")).unwrap().desired.clone().unwrap();
    assert_eq!((d.system.as_str(), d.source), (NEW, Source::Operator));
    given([]).when(set("e0", "/etc/nixos")).then_rejects("invalid_system", "is not a system to run");
    given([]).when(set("ghost", NEW)).then_rejects("unknown_node", "node ghost does not exist");
}

#[test]
fn a_pinned_node_refuses_decisions_and_activations() {
    let pin = NodePinned { node: n("e0"), reason: "BIOS update".into() };
    given([pin.clone().into()]).when(set("e0", NEW)).then_rejects("node_pinned", "node e0 is pinned (BIOS update)");
    given([pin.clone().into()]).when(pin.clone()).then_rejects("node_pinned", "unpin it with `sendan node unpin e0`");
    given([]).when(NodeUnpinned { node: n("e0") }).then_rejects("node_not_pinned", "node e0 is not pinned");
    // A spec still decides a pinned node's system; its agent may not start on it.
    let mut g = given([pin.into()]);
    let decision = g.ok(systems_spec(&["e0", "e1", "e2"], 1));
    let activating =
        SystemActivating { node: n("e0"), decision, path: NEW.into(), action: SwitchAction::Switch, previous: None };
    g.when(activating).then_rejects("node_pinned", "node e0 is pinned");
}

#[test]
fn agent_reports_must_fit_the_decision_and_its_activation() {
    let mut g = given([]);
    let decision = g.ok(set("e0", NEW));
    let prefetched = |d| SystemPrefetched { node: n("e0"), decision: d, system: NEW.into(), path: NEW.into() };
    given([set("e0", NEW)]).when(prefetched(decision - 1)).then_rejects(
        "stale_decision",
        &format!("names decision {}, but node e0's desired system was decided at seq {decision}", decision - 1),
    );
    let switched = SystemSwitched { node: n("e0"), decision, path: NEW.into(), exit_code: 0, reboot_required: false };
    let mut h = given([set("e0", NEW)]);
    h.ok(prefetched(decision).into());
    h.when(switched.clone()).then_rejects("no_activation", "the agent reported no `SystemActivating` for it");
    // The whole happy path, then a report that no longer fits.
    g.ok(prefetched(decision).into());
    g.ok(SystemActivating {
        node: n("e0"),
        decision,
        path: NEW.into(),
        action: SwitchAction::Switch,
        previous: Some(OLD.into()),
    }
    .into());
    g.ok(SystemProfileSet {
        node: n("e0"),
        decision,
        path: NEW.into(),
        profile: "/nix/var/nix/profiles/system".into(),
    }
    .into());
    g.ok(switched.into());
    let confirmed = SystemConfirmed { node: n("e0"), decision, path: NEW.into(), switched: true };
    let state = g.when(confirmed.clone()).then_ok();
    let ns = state.node_system(&n("e0")).unwrap();
    assert_eq!(ns.current.as_deref(), Some(NEW));
    assert_eq!(ns.attempt.as_ref().unwrap().phase, Phase::Confirmed);
    let g = Given { state, next: 10_000 };
    g.when(confirmed).then_rejects("no_activation", "that attempt is `confirmed`");
}

#[test]
fn a_node_token_reports_only_about_its_own_node() {
    let mut g = given([set("e0", NEW)]);
    let decision = g.seq();
    let p = g.proposal(SystemPrefetched { node: n("e1"), decision, system: NEW.into(), path: NEW.into() }.into());
    let p = Proposal { actor: Actor::Node(n("e0")), ..p };
    let err = log::append(&mut g.state, &[p]).unwrap_err().rejection;
    assert_eq!(err.code(), "forbidden");
    assert!(err.to_string().contains("only submit events about its own node, not e1"), "{err}");
}

#[test]
fn rollouts_check_their_parameters_and_pool() {
    given([]).when(rollout(0, 0)).then_rejects("invalid_rollout", "max-unavailable must be at least 1");
    given([]).when(rollout(1, 2)).then_rejects("invalid_rollout", "canary (2) must not exceed max-unavailable (1)");
    let elsewhere = RolloutStarted {
        pool: "gpus".into(),
        ..match rollout(1, 0) {
            Payload::RolloutStarted(r) => r,
            _ => unreachable!(),
        }
    };
    given([]).when(elsewhere).then_rejects("unknown_pool", "the live spec declares edge, workers");
    let mut g = given([]);
    let id = g.ok(rollout(1, 1));
    g.when(rollout(1, 0))
        .then_rejects("rollout_open", &format!("pool edge already has rollout {id}, which is running"));
    given([rollout(1, 1)]).when(set("e2", NEW)).then_rejects("node_in_rollout", "node e2 is a member of rollout");
}

#[test]
fn waves_respect_the_canary_and_the_budget() {
    let mut g = given([]);
    let id = g.ok(rollout(2, 1));
    let wave = |w: u32, nodes: &[&str]| RolloutWaveStarted {
        rollout: id,
        wave: w,
        nodes: nodes.iter().map(|s| n(s)).collect(),
    };
    let h = Given { state: g.state.clone(), next: 20_000 };
    h.when(wave(1, &["e0", "e1"])).then_rejects("rollout_refused", "this is a canary wave of at most 1 node");
    let h = Given { state: g.state.clone(), next: 20_000 };
    h.when(wave(2, &["e0"])).then_rejects("rollout_refused", "the next wave is 1, not 2");
    let first = g.ok(wave(1, &["e0"]).into());
    let h = Given { state: g.state.clone(), next: 20_000 };
    h.when(wave(2, &["e1"])).then_rejects("rollout_refused", "wave 1 has not settled: e0 is still moving");
    // The canary switches and confirms.
    g.ok(SystemPrefetched { node: n("e0"), decision: first, system: NEW.into(), path: NEW.into() }.into());
    g.ok(SystemActivating {
        node: n("e0"),
        decision: first,
        path: NEW.into(),
        action: SwitchAction::Switch,
        previous: Some(OLD.into()),
    }
    .into());
    g.ok(SystemSwitched { node: n("e0"), decision: first, path: NEW.into(), exit_code: 0, reboot_required: false }
        .into());
    g.ok(SystemConfirmed { node: n("e0"), decision: first, path: NEW.into(), switched: true }.into());
    let h = Given { state: g.state.clone(), next: 20_000 };
    h.when(wave(2, &["e0"])).then_rejects("rollout_refused", "node e0 was already moved by wave 1");
    let h = Given { state: g.state.clone(), next: 20_000 };
    h.when(wave(2, &["e1", "e2", "e1"])).then_rejects("rollout_refused", "node e1 appears twice");
    let state = g.when(wave(2, &["e1", "e2"])).then_ok();
    let r = state.rollout(id).unwrap();
    assert_eq!(r.waves.iter().map(|w| w.canary).collect::<Vec<_>>(), [true, false]);
    let h = Given { state, next: 30_000 };
    h.when(RolloutCompleted { rollout: id }).then_rejects("rollout_refused", "member e1 is still moving");
}

#[test]
fn a_halt_puts_moved_members_back_and_leaves_the_others() {
    let mut g = given([]);
    let id = g.ok(rollout(1, 1));
    let first = g.ok(RolloutWaveStarted { rollout: id, wave: 1, nodes: vec![n("e0")] }.into());
    let halted = g.ok(RolloutHalted { rollout: id, reason: "operator".into() }.into());
    let r = g.state.rollout(id).unwrap();
    assert_eq!(r.state, RolloutState::Reverting);
    let e0 = g.state.node_system(&n("e0")).unwrap().desired.clone().unwrap();
    assert_eq!((e0.seq, e0.system.as_str(), e0.source), (halted, OLD, Source::Revert));
    let e1 = g.state.node_system(&n("e1")).unwrap().desired.clone().unwrap();
    assert_eq!(e1.source, Source::Spec, "an untouched member keeps its decision");
    assert!(first < halted);
    let h = Given { state: g.state.clone(), next: 20_000 };
    h.when(RolloutReverted { rollout: id }).then_rejects("rollout_refused", "member e0 is still reverting");
    g.ok(SystemConfirmed { node: n("e0"), decision: halted, path: OLD.into(), switched: false }.into());
    let state = g.when(RolloutReverted { rollout: id }).then_ok();
    assert_eq!(state.rollout(id).unwrap().state, RolloutState::Reverted);
    assert!(state.open_rollout(POOL).is_none(), "a new rollout of the pool may start");
}
