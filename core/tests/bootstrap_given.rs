//! given/when/then tests for the bootstrap rules: a bootstrap token is issued for a MAC, claimed once by the
//! machine that reported that MAC, scoped to that machine and its node, and spent once for the node token.

use sendan_core::event::*;
use sendan_core::facts::{HardwareFacts, Nic};
use sendan_core::fleet::FleetState;
use sendan_core::fleet::bootstrap::TokenStatus;
use sendan_core::ids::{Actor, EventId, Hash, MachineId, NodeId, Timestamp};
use sendan_core::lifecycle::NodeState;
use sendan_core::{Rejection, log};

const MAC: &str = "52:54:00:aa:00:01";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@n1";
const HOUR: i64 = 3_600_000;

fn n(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}
fn m(s: &str) -> MachineId {
    MachineId::new(s).unwrap()
}
fn t(s: &str) -> Hash {
    Hash::of(s.as_bytes())
}

struct Given {
    state: FleetState,
    next: u128,
}

impl Given {
    fn new() -> Given {
        Given { state: FleetState::default(), next: 0 }
    }

    fn submit_at(&mut self, time: i64, actor: Actor, payload: impl Into<Payload>) -> Result<(), Rejection> {
        self.next += 1;
        let p = Proposal {
            id: EventId::from_u128(self.next),
            time: Timestamp(time),
            actor,
            comment: None,
            payload: payload.into(),
        };
        let before = self.state.clone();
        let r = log::append(&mut self.state, &[p]).map(|_| ()).map_err(|b| b.rejection);
        if r.is_err() {
            assert_eq!(self.state, before, "a rejection changes nothing");
        }
        r
    }

    fn ok(&mut self, actor: Actor, payload: impl Into<Payload>) -> &mut Self {
        self.submit_at(1_000, actor, payload).expect("the given history is legal");
        self
    }

    fn admin(&mut self, payload: impl Into<Payload>) -> &mut Self {
        self.ok(Actor::Admin, payload)
    }

    fn refuses(&mut self, actor: Actor, payload: impl Into<Payload>, code: &str, words: &str) {
        let err = self.submit_at(1_000, actor, payload).expect_err("expected a rejection");
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(words), "{err:?} should say {words:?}; it says: {err}");
    }
}

fn facts(macs: &[&str]) -> HardwareFacts {
    HardwareFacts {
        nics: macs.iter().map(|mac| Nic { name: "eth0".into(), mac: (*mac).into(), ..Nic::default() }).collect(),
        ..HardwareFacts::default()
    }
}

fn issued(token: &str, mac: &str) -> BootstrapTokenIssued {
    BootstrapTokenIssued { token: t(token), mac: mac.into(), machine: None, expires: Timestamp(1_000 + HOUR) }
}

fn system() -> Actor {
    Actor::System("netboot".into())
}
fn installer(machine: &str) -> Actor {
    Actor::Bootstrap(m(machine))
}

/// Machine m1 (MAC `MAC`) phoned home with token "a" and is bound to node n1, which is `state`.
fn installed_up_to(state: NodeState) -> Given {
    let mut g = Given::new();
    g.ok(system(), issued("a", MAC))
        .ok(installer("m1"), MachineDiscovered { machine: m("m1"), facts: facts(&[MAC]) })
        .ok(installer("m1"), BootstrapTokenClaimed { token: t("a"), machine: m("m1") })
        .admin(NodeCommissioned {
            node: n("n1"),
            machine: m("m1"),
            class: None,
            pool: None,
            profile: None,
            rule: None,
        });
    if state != NodeState::Commissioned {
        g.admin(NodeInstallRequested { node: n("n1") });
    }
    if state == NodeState::Installing {
        g.ok(installer("m1"), NodeInstallStarted { node: n("n1") });
    }
    g
}

#[test]
fn a_token_is_claimed_once_by_the_machine_that_reported_its_mac() {
    let mut g = Given::new();
    g.ok(system(), issued("a", MAC)).admin(MachineDiscovered { machine: m("m1"), facts: facts(&[MAC]) });
    g.admin(MachineDiscovered { machine: m("m2"), facts: facts(&["52:54:00:aa:00:02"]) });
    g.refuses(
        installer("m2"),
        BootstrapTokenClaimed { token: t("a"), machine: m("m2") },
        "bootstrap_token_refused",
        "issued for the NIC with MAC 52:54:00:aa:00:01, which machine m2 did not report",
    );
    g.refuses(
        installer("m2"),
        BootstrapTokenClaimed { token: t("a"), machine: m("m1") },
        "forbidden",
        "bootstrap:m2 may not submit `BootstrapTokenClaimed`: a bootstrap token may only submit events about its own machine (m2)",
    );
    g.ok(installer("m1"), BootstrapTokenClaimed { token: t("a"), machine: m("m1") });
    assert_eq!(g.state.bootstrap.sessions.get(&m("m1")), Some(&t("a")));
    assert!(g.state.bootstrap.unclaimed.is_empty());
    g.refuses(
        installer("m1"),
        BootstrapTokenClaimed { token: t("a"), machine: m("m1") },
        "bootstrap_token_used",
        "machine m1 phoned home with it at seq 4; a bootstrap token works once",
    );
    g.refuses(
        installer("m1"),
        BootstrapTokenClaimed { token: t("nope"), machine: m("m1") },
        "bootstrap_token_refused",
        "no such bootstrap token was issued",
    );
}

#[test]
fn an_expired_token_cannot_be_claimed_and_is_forgotten_by_the_next_issue() {
    let mut g = Given::new();
    g.ok(system(), issued("a", MAC)).admin(MachineDiscovered { machine: m("m1"), facts: facts(&[MAC]) });
    let late = g.submit_at(1_000 + HOUR, installer("m1"), BootstrapTokenClaimed { token: t("a"), machine: m("m1") });
    assert_eq!(late.unwrap_err().code(), "bootstrap_token_refused");
    let now = Timestamp(1_000 + 2 * HOUR);
    assert!(g.state.bootstrap.unclaimed_for(MAC, now).is_none());
    let fresh = BootstrapTokenIssued { expires: Timestamp(now.0 + HOUR), ..issued("b", "52:54:00:aa:00:09") };
    g.submit_at(now.0, system(), fresh).unwrap();
    assert!(g.state.bootstrap.token(&t("a")).is_none(), "the expired token is pruned");
    assert_eq!(g.state.bootstrap.unclaimed.len(), 1);
}

#[test]
fn a_new_token_for_a_mac_replaces_its_unclaimed_one_and_hashes_are_never_reused() {
    let mut g = Given::new();
    g.ok(system(), issued("a", MAC)).ok(system(), issued("b", MAC));
    assert_eq!(g.state.bootstrap.unclaimed.get(MAC), Some(&t("b")));
    assert!(g.state.bootstrap.token(&t("a")).is_none());
    g.refuses(system(), issued("b", "52:54:00:aa:00:02"), "token_in_use", "is already in use");
    g.refuses(
        system(),
        issued("c", "52:54:00:AA:00:02"),
        "malformed_event",
        "is not a lower-case, colon-separated MAC",
    );
    let forever = BootstrapTokenIssued { expires: Timestamp(1_000 + 8 * 24 * HOUR), ..issued("d", MAC) };
    g.refuses(system(), forever, "malformed_event", "within 7 days");
    g.refuses(Actor::Bootstrap(m("m1")), issued("e", MAC), "forbidden", "may not submit this kind of event");
}

#[test]
fn unclaimed_tokens_are_capped() {
    let mut g = Given::new();
    for i in 0..MAX_UNCLAIMED_TOKENS {
        let mac = format!("52:54:00:{:02x}:{:02x}:01", i / 256, i % 256);
        g.ok(system(), issued(&format!("t{i}"), &mac));
    }
    g.refuses(system(), issued("over", "52:54:00:ff:ff:01"), "bootstrap_token_refused", "wait for them to expire");
    // A MAC that holds one may still get a new one (it replaces the old).
    g.ok(system(), issued("again", "52:54:00:00:00:01"));
}

#[test]
fn the_installer_reports_progress_about_its_own_node_only() {
    let mut g = installed_up_to(NodeState::InstallPending);
    g.ok(installer("m1"), InstallProgressed { node: n("n1"), step: InstallStep::PlanFetched, detail: "x".into() });
    g.ok(installer("m1"), NodeInstallStarted { node: n("n1") });
    g.admin(MachineDiscovered { machine: m("m2"), facts: facts(&["52:54:00:aa:00:02"]) }).admin(NodeCommissioned {
        node: n("n2"),
        machine: m("m2"),
        class: None,
        pool: None,
        profile: None,
        rule: None,
    });
    g.refuses(
        installer("m1"),
        NodeInstallFailed { node: n("n2"), reason: "x".into() },
        "forbidden",
        "only submit events about its own machine (m1)",
    );
    g.refuses(installer("m1"), NodeActivated { node: n("n1") }, "forbidden", "may not submit this kind of event");
    g.refuses(
        installer("m1"),
        NodeTokenIssued { node: n("n1"), token: t("node") },
        "forbidden",
        "may not submit this kind of event",
    );
    g.refuses(
        Actor::Admin,
        InstallProgressed { node: n("n2"), step: InstallStep::PlanFetched, detail: "x".into() },
        "illegal_transition",
        "node n2 is `commissioned`; `InstallProgressed` needs `install-pending` or `installing`",
    );
    assert_eq!(g.state.bootstrap.progress[&n("n1")].step, InstallStep::PlanFetched);
}

#[test]
fn the_token_is_exchanged_once_for_the_node_token_while_installing() {
    let mut g = installed_up_to(NodeState::InstallPending);
    let exchange = |key: &str| BootstrapTokenExchanged { token: t("a"), node: n("n1"), ssh_host_key: key.into() };
    g.refuses(system(), exchange(KEY), "illegal_transition", "`BootstrapTokenExchanged` needs `installing`");
    g.ok(installer("m1"), NodeInstallStarted { node: n("n1") });
    g.refuses(system(), exchange("ssh-dss AAAA"), "malformed_event", "is not an SSH host key type");
    g.refuses(system(), exchange("ssh-ed25519 not*base64"), "malformed_event", "not base64");
    g.ok(system(), exchange(KEY));
    let token = g.state.bootstrap.token(&t("a")).unwrap();
    assert!(matches!(&token.status, TokenStatus::Exchanged { node, .. } if node == &n("n1")));
    assert!(g.state.bootstrap.sessions.is_empty());
    assert_eq!(g.state.bootstrap.host_keys[&n("n1")].key, KEY);
    g.refuses(system(), exchange(KEY), "bootstrap_token_refused", "a bootstrap token works once");
    let now = Timestamp(2_000);
    assert!(g.state.bootstrap.session(&t("a"), now).unwrap().unwrap_err().contains("exchanged for node n1's token"));
    // The node token it was exchanged for must be a hash no credential uses.
    g.ok(system(), NodeTokenIssued { node: n("n1"), token: t("node") });
    g.refuses(Actor::Admin, NodeTokenIssued { node: n("n1"), token: t("node") }, "token_in_use", "already in use");
    g.refuses(Actor::Admin, NodeTokenIssued { node: n("n1"), token: t("a") }, "token_in_use", "already in use");
    g.ok(Actor::Node(n("n1")), NodeActivated { node: n("n1") });
}

#[test]
fn phoning_home_again_with_a_new_token_ends_the_old_session() {
    let mut g = installed_up_to(NodeState::Installing);
    g.ok(system(), issued("b", MAC)).ok(installer("m1"), BootstrapTokenClaimed { token: t("b"), machine: m("m1") });
    assert_eq!(g.state.bootstrap.sessions.get(&m("m1")), Some(&t("b")));
    let old = g.state.bootstrap.session(&t("a"), Timestamp(1_000)).unwrap().unwrap_err();
    assert!(old.contains("session ended"), "{old}");
    assert_eq!(g.state.node(&n("n1")).unwrap().machine, m("m1"), "re-discovery keeps the node");
}
