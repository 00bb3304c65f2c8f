//! given/when/then tests for every lifecycle transition and for the refusals around them.

use sendan_core::event::*;
use sendan_core::lifecycle::{self, NodeState};
use sendan_core::log;

#[path = "support/given.rs"]
mod given;
use given::{given, m, n};

fn discovered(machine: &str) -> Payload {
    MachineDiscovered { machine: m(machine), facts: Default::default() }.into()
}
fn commissioned(node: &str, machine: &str) -> Payload {
    NodeCommissioned { node: n(node), machine: m(machine), class: None, pool: None, profile: None, rule: None }.into()
}

/// The history that brings node `n1` (on machine `m1`) into `state`.
fn history_to(state: NodeState) -> Vec<Payload> {
    let id = n("n1");
    let mut h = vec![discovered("m1")];
    let path: &[Payload] = &match state {
        NodeState::Discovered => return h,
        NodeState::Commissioned => vec![],
        NodeState::InstallPending => vec![NodeInstallRequested { node: id.clone() }.into()],
        NodeState::Installing => {
            vec![NodeInstallRequested { node: id.clone() }.into(), NodeInstallStarted { node: id.clone() }.into()]
        }
        NodeState::Active => vec![
            NodeInstallRequested { node: id.clone() }.into(),
            NodeInstallStarted { node: id.clone() }.into(),
            NodeActivated { node: id.clone() }.into(),
        ],
        NodeState::Draining => {
            let mut v = history_to(NodeState::Active).split_off(2);
            v.push(NodeDrainRequested { node: id.clone() }.into());
            v
        }
        NodeState::Reprovisioning => vec![NodeReprovisionRequested { node: id.clone() }.into()],
        NodeState::Rescue => vec![NodeRescueRequested { node: id.clone() }.into()],
        NodeState::Failed => vec![NodeFailed { node: id.clone(), reason: "psu".into() }.into()],
        NodeState::Retired => vec![NodeRetired { node: id.clone() }.into()],
    };
    h.push(commissioned("n1", "m1"));
    h.extend(path.iter().cloned());
    h
}

#[test]
fn discovered_machine_is_commissioned_as_a_node() {
    let s = given([discovered("m1")]).when(commissioned("n1", "m1")).then_node("n1", NodeState::Commissioned);
    assert_eq!(s.machine(&m("m1")).unwrap().node, Some(n("n1")));
}

#[test]
fn commissioned_node_is_requested_for_install() {
    given(history_to(NodeState::Commissioned))
        .when(NodeInstallRequested { node: n("n1") })
        .then_node("n1", NodeState::InstallPending);
}

#[test]
fn reprovisioning_node_is_requested_for_install() {
    given(history_to(NodeState::Reprovisioning))
        .when(NodeInstallRequested { node: n("n1") })
        .then_node("n1", NodeState::InstallPending);
}

#[test]
fn install_pending_node_starts_installing() {
    given(history_to(NodeState::InstallPending))
        .when(NodeInstallStarted { node: n("n1") })
        .then_node("n1", NodeState::Installing);
}

#[test]
fn installing_node_that_fails_its_install_is_failed_with_the_reason() {
    let s = given(history_to(NodeState::Installing))
        .when(NodeInstallFailed { node: n("n1"), reason: "disko: no such device".into() })
        .then_node("n1", NodeState::Failed);
    assert_eq!(s.node(&n("n1")).unwrap().reason.as_deref(), Some("disko: no such device"));
}

#[test]
fn installing_node_that_checks_in_is_active() {
    given(history_to(NodeState::Installing)).when(NodeActivated { node: n("n1") }).then_node("n1", NodeState::Active);
}

#[test]
fn rescued_node_that_checks_in_is_active_again() {
    given(history_to(NodeState::Rescue)).when(NodeActivated { node: n("n1") }).then_node("n1", NodeState::Active);
}

#[test]
fn active_node_drains_and_uncordons() {
    let mut g = given(history_to(NodeState::Active));
    let s = g.when(NodeDrainRequested { node: n("n1") }).then_node("n1", NodeState::Draining);
    let mut g = given([]);
    g.state = s;
    g.when(NodeUncordoned { node: n("n1") }).then_node("n1", NodeState::Active);
}

#[test]
fn drained_node_is_reprovisioned() {
    given(history_to(NodeState::Draining))
        .when(NodeReprovisionRequested { node: n("n1") })
        .then_node("n1", NodeState::Reprovisioning);
}

#[test]
fn active_node_must_be_drained_before_reprovisioning() {
    given(history_to(NodeState::Active)).when(NodeReprovisionRequested { node: n("n1") }).then_rejects(
        "illegal_transition",
        "node n1 is `active`; `NodeReprovisionRequested` needs one of `commissioned`, `draining`, `failed`, `rescue`",
    );
}

#[test]
fn any_live_node_can_be_sent_to_rescue_or_failed() {
    for s in [NodeState::Commissioned, NodeState::Installing, NodeState::Active, NodeState::Failed] {
        given(history_to(s)).when(NodeRescueRequested { node: n("n1") }).then_node("n1", NodeState::Rescue);
    }
    for s in [NodeState::InstallPending, NodeState::Active, NodeState::Draining, NodeState::Rescue] {
        given(history_to(s))
            .when(NodeFailed { node: n("n1"), reason: "ecc".into() })
            .then_node("n1", NodeState::Failed);
    }
}

#[test]
fn drained_node_is_retired_and_retired_is_terminal() {
    let s =
        given(history_to(NodeState::Draining)).when(NodeRetired { node: n("n1") }).then_node("n1", NodeState::Retired);
    for kind in EventKind::ALL.iter().filter(|k| lifecycle::row(**k).is_some() && **k != EventKind::NodeCommissioned) {
        let mut g = given([discovered("m2")]);
        g.state = s.clone();
        let payload = match kind {
            EventKind::NodeRebound => NodeRebound { node: n("n1"), machine: m("m2") }.into(),
            EventKind::NodeFailed => NodeFailed { node: n("n1"), reason: "x".into() }.into(),
            EventKind::NodeInstallFailed => NodeInstallFailed { node: n("n1"), reason: "x".into() }.into(),
            other => {
                serde_json::from_value::<Payload>(serde_json::json!({"type": other.name(), "node": "n1"})).unwrap()
            }
        };
        g.when(payload).then_rejects("illegal_transition", "allowed now: nothing (the state is terminal)");
    }
}

#[test]
fn active_node_cannot_be_retired_without_draining() {
    given(history_to(NodeState::Active))
        .when(NodeRetired { node: n("n1") })
        .then_rejects("illegal_transition", "node n1 is `active`; `NodeRetired` needs one of");
}

#[test]
fn a_retired_node_id_is_never_reused() {
    let mut h = history_to(NodeState::Retired);
    h.push(discovered("m2"));
    given(h).when(commissioned("n1", "m2")).then_rejects("node_exists", "node n1 already exists and is `retired`");
}

#[test]
fn failed_node_is_rebound_to_replacement_hardware() {
    let mut h = history_to(NodeState::Failed);
    h.push(discovered("m2"));
    let s = given(h).when(NodeRebound { node: n("n1"), machine: m("m2") }).then_node("n1", NodeState::Commissioned);
    assert_eq!(s.node(&n("n1")).unwrap().machine, m("m2"));
    assert_eq!(s.machine(&m("m2")).unwrap().node, Some(n("n1")));
    assert_eq!(s.machine(&m("m1")).unwrap().node, None, "the old machine is released");
}

#[test]
fn rediscovery_of_a_bound_machine_keeps_its_node() {
    let mut h = history_to(NodeState::Active);
    h.push(discovered("m1"));
    let g = given(h);
    assert_eq!(g.state.node(&n("n1")).unwrap().state, NodeState::Active);
    assert_eq!(g.state.machine(&m("m1")).unwrap().node, Some(n("n1")));
}

#[test]
fn a_machine_binds_to_one_node_only() {
    given(history_to(NodeState::Commissioned))
        .when(commissioned("n2", "m1"))
        .then_rejects("machine_bound", "machine m1 is already bound to node n1");
    given([]).when(commissioned("n2", "m9")).then_rejects("unknown_machine", "machine m9 has not been discovered");
    let mut h = history_to(NodeState::Failed);
    h.push(discovered("m2"));
    h.push(commissioned("n2", "m2"));
    given(h)
        .when(NodeRebound { node: n("n1"), machine: m("m2") })
        .then_rejects("machine_bound", "machine m2 is already bound to node n2");
    given(history_to(NodeState::Failed))
        .when(NodeRebound { node: n("n1"), machine: m("m1") })
        .then_rejects("same_machine", "node n1 is already bound to machine m1");
}

#[test]
fn events_about_unknown_nodes_are_refused() {
    given([]).when(NodeDrainRequested { node: n("ghost") }).then_rejects("unknown_node", "node ghost does not exist");
}

#[test]
fn a_batch_is_all_or_nothing() {
    let mut g = given([discovered("m1")]);
    let before = g.state.clone();
    let batch = [g.proposal(commissioned("n1", "m1")), g.proposal(NodeActivated { node: n("n1") })];
    let err = log::append(&mut g.state, &batch).unwrap_err();
    assert_eq!(err.index, 1);
    assert_eq!(err.rejection.code(), "illegal_transition");
    assert_eq!(g.state, before);
}

/// A cause must be an earlier event of the log: seq 0 and seqs past the head are refused with the range named,
/// and an accepted cause is recorded on the event.
#[test]
fn a_cause_names_an_earlier_event_or_the_proposal_is_refused() {
    let mut g = given(history_to(NodeState::Active));
    let head = g.seq();
    g.caused_by(0);
    g.refuses(NodeDrainRequested { node: n("n1") }, "malformed_event", &format!("1 to {head}), not seq 0"));
    g.caused_by(head + 1);
    g.refuses(NodeDrainRequested { node: n("n1") }, "malformed_event", &format!("not seq {}", head + 1));
    let before = g.state.clone();
    let p = g.caused_by(head).proposal(NodeDrainRequested { node: n("n1") });
    let mut state = before;
    let accepted = log::append(&mut state, &[p]).unwrap();
    assert_eq!(accepted[0].cause, Some(head));
}
