//! given/when/then tests of the systems rules: decisions, pins, the agent's reports about an activation, and
//! starting and driving rollouts — each refusal with its code and the sentence a person reads.

use sendan_core::event::*;
use sendan_core::ids::{Actor, MachineId};
use sendan_core::rollouts::RolloutState;
use sendan_core::systems::{AttemptPhase, Source};

#[path = "support/given.rs"]
mod harness;
use harness::{Given, n};

#[path = "support/systems.rs"]
mod systems_support;
use systems_support::{POOL, SYSTEMS, systems_spec};

const OLD: &str = SYSTEMS[0];
const NEW: &str = SYSTEMS[1];

/// Nodes `e0`, `e1`, `e2` active, in pool `edge` of the live spec running `OLD`; then `history`.
fn given(history: impl IntoIterator<Item = Payload>) -> Given {
    let mut g = harness::given([]);
    for (i, node) in ["e0", "e1", "e2"].iter().enumerate() {
        let machine = MachineId::new(format!("m{i}")).unwrap();
        g.ok(MachineDiscovered { machine: machine.clone(), facts: Default::default() });
        g.ok(NodeCommissioned { node: n(node), machine, class: None, pool: None, profile: None, rule: None });
        g.ok(NodeInstallRequested { node: n(node) });
        g.ok(NodeInstallStarted { node: n(node) });
        g.ok(NodeActivated { node: n(node) });
    }
    g.ok(systems_spec(&["e0", "e1", "e2"], 0));
    for p in history {
        g.ok(p);
    }
    g
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
    let mut g = given([]);
    let spec_seq = g.state.specs.live.as_ref().unwrap().seq;
    let d = g.state.node_system(&n("e0")).unwrap().desired.clone().unwrap();
    assert_eq!((d.seq, d.system.as_str(), d.source), (spec_seq, OLD, Source::Spec));
    g.ok(set("e0", NEW));
    let d = g.state.node_system(&n("e0")).unwrap().desired.clone().unwrap();
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
    h.ok(prefetched(decision));
    h.when(switched.clone()).then_rejects("no_activation", "the agent reported no `SystemActivating` for it");
    // The whole happy path, then a report that no longer fits.
    g.ok(prefetched(decision));
    g.ok(SystemActivating {
        node: n("e0"),
        decision,
        path: NEW.into(),
        action: SwitchAction::Switch,
        previous: Some(OLD.into()),
    });
    g.ok(SystemProfileSet {
        node: n("e0"),
        decision,
        path: NEW.into(),
        profile: "/nix/var/nix/profiles/system".into(),
    });
    g.ok(switched);
    let confirmed = SystemConfirmed { node: n("e0"), decision, path: NEW.into(), switched: true };
    g.ok(confirmed.clone());
    let ns = g.state.node_system(&n("e0")).unwrap();
    assert_eq!(ns.current.as_deref(), Some(NEW));
    assert_eq!(ns.attempt.as_ref().unwrap().phase, AttemptPhase::Confirmed);
    g.when(confirmed).then_rejects("no_activation", "that attempt is `confirmed`");
}

#[test]
fn a_node_token_reports_only_about_its_own_node() {
    let mut g = given([set("e0", NEW)]);
    let decision = g.seq();
    g.as_(Actor::Node(n("e0")))
        .when(SystemPrefetched { node: n("e1"), decision, system: NEW.into(), path: NEW.into() })
        .then_rejects("forbidden", "only submit events about its own node, not e1");
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
    g.when(wave(1, &["e0", "e1"])).then_rejects("rollout_refused", "this is a canary wave of at most 1 node");
    g.when(wave(2, &["e0"])).then_rejects("rollout_refused", "the next wave is 1, not 2");
    let first = g.ok(wave(1, &["e0"]));
    g.when(wave(2, &["e1"])).then_rejects("rollout_refused", "wave 1 has not settled: e0 is still moving");
    // The canary switches and confirms.
    g.ok(SystemPrefetched { node: n("e0"), decision: first, system: NEW.into(), path: NEW.into() });
    g.ok(SystemActivating {
        node: n("e0"),
        decision: first,
        path: NEW.into(),
        action: SwitchAction::Switch,
        previous: Some(OLD.into()),
    });
    g.ok(SystemSwitched { node: n("e0"), decision: first, path: NEW.into(), exit_code: 0, reboot_required: false });
    g.ok(SystemConfirmed { node: n("e0"), decision: first, path: NEW.into(), switched: true });
    g.when(wave(2, &["e0"])).then_rejects("rollout_refused", "node e0 was already moved by wave 1");
    g.when(wave(2, &["e1", "e2", "e1"])).then_rejects("rollout_refused", "node e1 appears twice");
    g.ok(wave(2, &["e1", "e2"]));
    let r = g.state.rollout(id).unwrap();
    assert_eq!(r.waves.iter().map(|w| w.canary).collect::<Vec<_>>(), [true, false]);
    g.when(RolloutCompleted { rollout: id }).then_rejects("rollout_refused", "member e1 is still moving");
}

#[test]
fn a_halt_puts_moved_members_back_and_leaves_the_others() {
    let mut g = given([]);
    let id = g.ok(rollout(1, 1));
    let first = g.ok(RolloutWaveStarted { rollout: id, wave: 1, nodes: vec![n("e0")] });
    // A halt names the members it puts back at once: exactly the moved ones still moving or failed.
    g.when(RolloutHalted { rollout: id, reason: "operator".into(), revert: vec![] })
        .then_rejects("rollout_refused", "puts back at once the members still moving or failed — e0 — not none");
    g.when(RolloutHalted { rollout: id, reason: "operator".into(), revert: vec![n("e0"), n("e1")] })
        .then_rejects("rollout_refused", "— e0 — not e0, e1");
    let halted = g.ok(RolloutHalted { rollout: id, reason: "operator".into(), revert: vec![n("e0")] });
    let r = g.state.rollout(id).unwrap();
    assert_eq!(r.state, RolloutState::Reverting);
    let e0 = g.state.node_system(&n("e0")).unwrap().desired.clone().unwrap();
    assert_eq!((e0.seq, e0.system.as_str(), e0.source), (halted, OLD, Source::Revert));
    let e1 = g.state.node_system(&n("e1")).unwrap().desired.clone().unwrap();
    assert_eq!(e1.source, Source::Spec, "an untouched member keeps its decision");
    assert!(first < halted);
    g.when(RolloutReverted { rollout: id }).then_rejects("rollout_refused", "member e0 is still reverting");
    g.ok(SystemConfirmed { node: n("e0"), decision: halted, path: OLD.into(), switched: false });
    g.ok(RolloutReverted { rollout: id });
    assert_eq!(g.state.rollout(id).unwrap().state, RolloutState::Reverted);
    assert!(g.state.open_rollout(POOL).is_none(), "a new rollout of the pool may start");
}
