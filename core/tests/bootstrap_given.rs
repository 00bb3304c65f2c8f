//! given/when/then tests for the bootstrap rules: a bootstrap token is issued for a MAC, claimed once by the
//! machine that reported that MAC, scoped to that machine and its node, and spent once for the node token.

use sendan_core::Rejection;
use sendan_core::event::*;
use sendan_core::facts::{HardwareFacts, Nic};
use sendan_core::ids::{Actor, Hash, Timestamp};
use sendan_core::lifecycle::NodeState;
use sendan_core::machines::TokenStatus;

#[path = "support/given.rs"]
mod harness;
use harness::{Given, m, n};

const MAC: &str = "52:54:00:aa:00:01";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@n1";
const HOUR: i64 = 3_600_000;

fn t(s: &str) -> Hash {
    Hash::of(s.as_bytes())
}

/// The bootstrap tests name the actor of every proposal.
trait Bootstrap {
    fn submit_at(&mut self, time: i64, actor: Actor, payload: impl Into<Payload>) -> Result<(), Rejection>;
    fn ok_as(&mut self, actor: Actor, payload: impl Into<Payload>) -> &mut Self;
    fn admin(&mut self, payload: impl Into<Payload>) -> &mut Self;
    fn refuses_as(&mut self, actor: Actor, payload: impl Into<Payload>, code: &str, words: &str);
}

impl Bootstrap for Given {
    fn submit_at(&mut self, time: i64, actor: Actor, payload: impl Into<Payload>) -> Result<(), Rejection> {
        let w = self.at(time).as_(actor).when(payload);
        if w.result.is_err() {
            assert_eq!(w.after, w.before, "a rejection changes nothing");
        }
        w.result.map(|_| ())
    }

    fn ok_as(&mut self, actor: Actor, payload: impl Into<Payload>) -> &mut Self {
        self.submit_at(1_000, actor, payload).expect("the given history is legal");
        self
    }

    fn admin(&mut self, payload: impl Into<Payload>) -> &mut Self {
        self.ok_as(Actor::Admin, payload)
    }

    fn refuses_as(&mut self, actor: Actor, payload: impl Into<Payload>, code: &str, words: &str) {
        self.at(1_000).as_(actor).when(payload).then_rejects(code, words);
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
    Actor::System("bootstrap".into())
}
fn installer(machine: &str) -> Actor {
    Actor::Bootstrap(m(machine))
}

/// Facts of machine `machine` (its machine-id) with NICs `macs`.
fn facts_of(machine: &str, macs: &[&str]) -> HardwareFacts {
    HardwareFacts { machine_id: Some(machine.into()), ..facts(macs) }
}

/// Machine `machine` phoning home from `mac` with stateless token `token` (valid for an hour), reporting `macs`.
fn phoned(token: &str, machine: &str, mac: &str, macs: &[&str]) -> MachinePhonedHome {
    MachinePhonedHome {
        machine: m(machine),
        facts: facts_of(machine, macs),
        mac: mac.into(),
        token: t(token),
        expires: Timestamp(1_000 + HOUR),
    }
}

/// Machine m1 (MAC `MAC`) phoned home with token "a" and is bound to node n1, which is `state`.
fn installed_up_to(state: NodeState) -> Given {
    let mut g = harness::given([]);
    g.ok_as(installer("m1"), phoned("a", "m1", MAC, &[MAC])).admin(NodeCommissioned {
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
        g.ok_as(installer("m1"), NodeInstallStarted { node: n("n1") });
    }
    g
}

#[test]
fn a_stateless_token_phones_home_once_for_a_new_machine_within_its_time() {
    let mut g = harness::given([]);
    g.ok_as(installer("m1"), phoned("a", "m1", MAC, &[MAC, "52:54:00:aa:00:09"]));
    let machine = g.state.machine(&m("m1")).unwrap();
    assert_eq!((machine.node.clone(), machine.facts.nics.len()), (None, 2), "a new machine is `discovered`");
    assert_eq!(g.state.machines.bootstrap.sessions.get(&m("m1")), Some(&t("a")));
    assert!(
        matches!(&g.state.machines.bootstrap.token(&t("a")).unwrap().status, TokenStatus::Claimed { machine, .. } if machine == &m("m1"))
    );
    g.refuses_as(installer("m1"), phoned("a", "m1", MAC, &[MAC]), "bootstrap_token_used", "works once");

    let late = MachinePhonedHome {
        expires: Timestamp(1_000),
        ..phoned("b", "m2", "52:54:00:aa:00:02", &["52:54:00:aa:00:02"])
    };
    g.refuses_as(installer("m2"), late, "bootstrap_token_refused", "expired");
    let forever = MachinePhonedHome {
        expires: Timestamp(1_000 + 8 * 24 * HOUR),
        ..phoned("b", "m2", "52:54:00:aa:00:02", &["52:54:00:aa:00:02"])
    };
    g.refuses_as(installer("m2"), forever, "malformed_event", "within 7 days");
    for group in ["ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:fb", "00:00:00:00:00:00"] {
        g.refuses_as(installer("m2"), phoned("b", "m2", group, &[group]), "malformed_event", "unicast MAC");
    }
    g.refuses_as(
        installer("m2"),
        phoned("b", "m2", "52:54:00:aa:00:02", &["52:54:00:aa:00:03"]),
        "identity_refused",
        "the facts do not list the NIC with MAC 52:54:00:aa:00:02",
    );
    let mislabeled =
        MachinePhonedHome { machine: m("m9"), ..phoned("b", "m2", "52:54:00:aa:00:02", &["52:54:00:aa:00:02"]) };
    g.refuses_as(installer("m9"), mislabeled, "malformed_event", "the facts identify machine m2, not m9");
    let mut zz = phoned("b", "m2", "52:54:00:aa:00:02", &["52:54:00:aa:00:02"]);
    zz.facts.nics.push(Nic { name: "eth1".into(), mac: "ZZ".into(), ..Nic::default() });
    g.refuses_as(installer("m2"), zz, "malformed_event", "`facts.nics[1].mac` `ZZ` is not a hardware address");
    let mut huge = phoned("b", "m2", "52:54:00:aa:00:02", &["52:54:00:aa:00:02"]);
    huge.facts.cpu.model = "x".repeat(15 << 20);
    g.refuses_as(installer("m2"), huge, "malformed_event", "`facts.cpu.model` is 15728640 bytes long; at most 256");
    g.refuses_as(
        installer("m2"),
        phoned("b", "m1", MAC, &[MAC]),
        "forbidden",
        "only submit events about its own machine (m2)",
    );
    g.refuses_as(
        Actor::Node(n("n1")),
        phoned("b", "m2", "52:54:00:aa:00:02", &["52:54:00:aa:00:02"]),
        "forbidden",
        "may not submit",
    );
    // A node token's hash is not a bootstrap token's.
    g.admin(NodeCommissioned { node: n("n1"), machine: m("m1"), class: None, pool: None, profile: None, rule: None })
        .admin(NodeTokenIssued { node: n("n1"), token: t("node") });
    g.refuses_as(
        installer("m2"),
        phoned("node", "m2", "52:54:00:aa:00:02", &["52:54:00:aa:00:02"]),
        "token_in_use",
        "already in use",
    );
}

/// Property: a bootstrap token speaks only for a new machine or for the one the log associates with its MAC, and
/// only while that machine's node is to be installed; every other claim is refused and changes nothing.
#[test]
fn a_phone_home_may_not_claim_an_identity_its_token_does_not_prove() {
    const OTHER: &str = "52:54:00:aa:00:02";
    let mut g = harness::given([]);
    let mut victim = facts_of("m1", &[MAC]);
    victim.dmi.system_uuid = Some("4c4c4544-0042-3510-8052-b4c04f4e4b31".into());
    victim.dmi.serial = Some("CZ2204XYZ".into());
    victim.dmi.vendor = Some("HPE".into());
    let victim_key = victim.machine_key().unwrap();
    g.admin(MachineDiscovered { machine: victim_key.clone(), facts: victim.clone() });

    // The victim's DMI uuid (so its machine key) from another NIC: the known machine, not by that NIC.
    let mut hijack = victim.clone();
    hijack.nics = facts(&[OTHER]).nics;
    let p = MachinePhonedHome {
        machine: victim_key.clone(),
        facts: hijack,
        mac: OTHER.into(),
        token: t("x"),
        expires: Timestamp(1_000 + HOUR),
    };
    g.refuses_as(
        Actor::Bootstrap(victim_key.clone()),
        p,
        "identity_refused",
        "which the log knows by other NICs, not by MAC 52:54:00:aa:00:02",
    );
    // The victim's NIC, under another identity.
    g.refuses_as(
        installer("m7"),
        phoned("x", "m7", MAC, &[MAC]),
        "identity_refused",
        &format!("MAC {MAC} belongs to machine {victim_key}"),
    );
    // The victim's DMI serial (same vendor) under another identity.
    let mut serial = facts_of("m7", &[OTHER]);
    serial.dmi.serial = Some("CZ2204XYZ".into());
    serial.dmi.vendor = Some("hpe".into());
    let p = MachinePhonedHome { facts: serial.clone(), ..phoned("x", "m7", OTHER, &[OTHER]) };
    g.refuses_as(installer("m7"), p, "identity_refused", "the DMI serial `CZ2204XYZ` of machine");
    // A placeholder serial identifies nothing.
    serial.dmi.serial = Some("To Be Filled By O.E.M.".into());
    g.admin(MachineDiscovered {
        machine: m("m8"),
        facts: HardwareFacts {
            machine_id: Some("m8".into()),
            dmi: serial.dmi.clone(),
            ..facts(&["52:54:00:aa:00:08"])
        },
    });
    let p = MachinePhonedHome { facts: serial, ..phoned("x", "m7", OTHER, &[OTHER]) };
    g.ok_as(installer("m7"), p);
    assert_eq!(g.state.machine(&victim_key).unwrap().facts, victim, "the known machine is unchanged");

    // Its own NIC, while its node is to be installed: it phones home and keeps its node.
    g.admin(NodeCommissioned {
        node: n("n1"),
        machine: victim_key.clone(),
        class: None,
        pool: None,
        profile: None,
        rule: None,
    });
    let own = MachinePhonedHome {
        machine: victim_key.clone(),
        facts: victim.clone(),
        mac: MAC.into(),
        token: t("y"),
        expires: Timestamp(1_000 + HOUR),
    };
    g.ok_as(Actor::Bootstrap(victim_key.clone()), own.clone());
    assert_eq!(g.state.machine(&victim_key).unwrap().node, Some(n("n1")));
    // Installed, it boots its disk: no installer speaks for it.
    g.admin(NodeInstallRequested { node: n("n1") })
        .ok_as(Actor::Bootstrap(victim_key.clone()), NodeInstallStarted { node: n("n1") });
    g.ok_as(Actor::Node(n("n1")), NodeActivated { node: n("n1") });
    let again = MachinePhonedHome { token: t("z"), ..own };
    g.refuses_as(
        Actor::Bootstrap(victim_key.clone()),
        again,
        "identity_refused",
        "bound to node n1, which is `active`",
    );
}

#[test]
fn a_token_an_operator_issued_is_claimed_once_by_the_machine_that_reported_its_mac() {
    let mut g = harness::given([]);
    g.admin(issued("a", MAC)).admin(MachineDiscovered { machine: m("m1"), facts: facts(&[MAC]) });
    g.admin(MachineDiscovered { machine: m("m2"), facts: facts(&["52:54:00:aa:00:02"]) });
    g.refuses_as(
        Actor::Admin,
        BootstrapTokenClaimed { token: t("a"), machine: m("m2") },
        "bootstrap_token_refused",
        "issued for the NIC with MAC 52:54:00:aa:00:01, which machine m2 did not report",
    );
    g.refuses_as(
        installer("m1"),
        BootstrapTokenClaimed { token: t("a"), machine: m("m1") },
        "forbidden",
        "bootstrap:m1 may not submit `BootstrapTokenClaimed`: an installer's bootstrap token may not submit this kind of event",
    );
    g.admin(BootstrapTokenClaimed { token: t("a"), machine: m("m1") });
    assert_eq!(g.state.machines.bootstrap.sessions.get(&m("m1")), Some(&t("a")));
    assert!(g.state.machines.bootstrap.unclaimed.is_empty());
    g.refuses_as(
        Actor::Admin,
        BootstrapTokenClaimed { token: t("a"), machine: m("m1") },
        "bootstrap_token_used",
        "machine m1 phoned home with it at seq 4; a bootstrap token works once",
    );
    g.refuses_as(
        Actor::Admin,
        BootstrapTokenClaimed { token: t("nope"), machine: m("m1") },
        "bootstrap_token_refused",
        "no such bootstrap token was issued",
    );
    // An issued token phones home the new way too, once, for its own MAC.
    let mut g = harness::given([]);
    g.admin(issued("a", MAC));
    g.refuses_as(
        installer("m1"),
        phoned("a", "m1", "52:54:00:aa:00:07", &["52:54:00:aa:00:07"]),
        "bootstrap_token_refused",
        "used before",
    );
    g.ok_as(installer("m1"), phoned("a", "m1", MAC, &[MAC]));
    assert_eq!(g.state.machines.bootstrap.sessions.get(&m("m1")), Some(&t("a")));
}

#[test]
fn an_expired_issued_token_cannot_be_claimed_and_is_forgotten_by_the_next_issue() {
    let mut g = harness::given([]);
    g.admin(issued("a", MAC)).admin(MachineDiscovered { machine: m("m1"), facts: facts(&[MAC]) });
    let late = g.submit_at(1_000 + HOUR, Actor::Admin, BootstrapTokenClaimed { token: t("a"), machine: m("m1") });
    assert_eq!(late.unwrap_err().code(), "bootstrap_token_refused");
    let now = Timestamp(1_000 + 2 * HOUR);
    assert!(g.state.machines.bootstrap.unclaimed_for(MAC, now).is_none());
    let fresh = BootstrapTokenIssued { expires: Timestamp(now.0 + HOUR), ..issued("b", "52:54:00:aa:00:09") };
    g.submit_at(now.0, Actor::Admin, fresh).unwrap();
    let expired = g.state.machines.bootstrap.session(&t("a"), now).unwrap();
    assert!(expired.unwrap_err().why().contains("expired"), "an expired token stays refused");
    assert_eq!(g.state.machines.bootstrap.unclaimed_for("52:54:00:aa:00:09", now).map(|t| t.hash), Some(t("b")));
}

#[test]
fn a_new_issued_token_for_a_mac_replaces_its_unclaimed_one_and_hashes_are_never_reused() {
    let mut g = harness::given([]);
    g.admin(issued("a", MAC)).admin(issued("b", MAC));
    assert_eq!(g.state.machines.bootstrap.unclaimed.get(MAC), Some(&t("b")));
    let replaced = &g.state.machines.bootstrap.token(&t("a")).unwrap().status;
    assert!(matches!(replaced, TokenStatus::Replaced { .. }), "the newer token supersedes it: {replaced:?}");
    g.refuses_as(Actor::Admin, issued("b", "52:54:00:aa:00:02"), "token_in_use", "is already in use");
    g.refuses_as(
        Actor::Admin,
        issued("c", "52:54:00:AA:00:02"),
        "malformed_event",
        "is not a lower-case, colon-separated MAC",
    );
    let forever = BootstrapTokenIssued { expires: Timestamp(1_000 + 8 * 24 * HOUR), ..issued("d", MAC) };
    g.refuses_as(Actor::Admin, forever, "malformed_event", "within 7 days");
    g.refuses_as(Actor::Bootstrap(m("m1")), issued("e", MAC), "forbidden", "may not submit this kind of event");
    g.refuses_as(system(), issued("e", MAC), "forbidden", "not an event the system emits");
}

#[test]
fn unclaimed_issued_tokens_are_capped() {
    let mut g = harness::given([]);
    for i in 0..MAX_UNCLAIMED_TOKENS {
        let mac = format!("52:54:00:{:02x}:{:02x}:01", i / 256, i % 256);
        g.admin(issued(&format!("t{i}"), &mac));
    }
    g.refuses_as(
        Actor::Admin,
        issued("over", "52:54:00:ff:ff:01"),
        "bootstrap_token_refused",
        "wait for them to expire",
    );
    // A MAC that holds one may still get a new one (it replaces the old).
    g.admin(issued("again", "52:54:00:00:00:01"));
}

#[test]
fn the_installer_reports_progress_about_its_own_node_only() {
    let mut g = installed_up_to(NodeState::InstallPending);
    g.ok_as(installer("m1"), InstallProgressed { node: n("n1"), step: InstallStep::PlanFetched, detail: "x".into() });
    g.ok_as(installer("m1"), NodeInstallStarted { node: n("n1") });
    g.admin(MachineDiscovered { machine: m("m2"), facts: facts(&["52:54:00:aa:00:02"]) }).admin(NodeCommissioned {
        node: n("n2"),
        machine: m("m2"),
        class: None,
        pool: None,
        profile: None,
        rule: None,
    });
    g.refuses_as(
        installer("m1"),
        NodeInstallFailed { node: n("n2"), reason: "x".into() },
        "forbidden",
        "only submit events about its own machine (m1)",
    );
    g.refuses_as(installer("m1"), NodeActivated { node: n("n1") }, "forbidden", "may not submit this kind of event");
    g.refuses_as(
        installer("m1"),
        NodeTokenIssued { node: n("n1"), token: t("node") },
        "forbidden",
        "may not submit this kind of event",
    );
    g.refuses_as(
        Actor::Admin,
        InstallProgressed { node: n("n2"), step: InstallStep::PlanFetched, detail: "x".into() },
        "illegal_transition",
        "node n2 is `commissioned`; `InstallProgressed` needs `install-pending` or `installing`",
    );
    assert_eq!(g.state.machines.bootstrap.progress[&n("n1")].step, InstallStep::PlanFetched);
}

#[test]
fn the_token_is_exchanged_once_for_the_node_token_while_installing() {
    let mut g = installed_up_to(NodeState::InstallPending);
    let exchange = |key: &str| BootstrapTokenExchanged { token: t("a"), node: n("n1"), ssh_host_key: key.into() };
    g.refuses_as(system(), exchange(KEY), "illegal_transition", "`BootstrapTokenExchanged` needs `installing`");
    g.ok_as(installer("m1"), NodeInstallStarted { node: n("n1") });
    g.refuses_as(system(), exchange("ssh-dss AAAA"), "malformed_event", "is not an SSH host key type");
    g.refuses_as(system(), exchange("ssh-ed25519 not*base64"), "malformed_event", "not base64");
    g.ok_as(system(), exchange(KEY));
    let token = g.state.machines.bootstrap.token(&t("a")).unwrap();
    assert!(matches!(&token.status, TokenStatus::Exchanged { node, .. } if node == &n("n1")));
    assert!(g.state.machines.bootstrap.sessions.is_empty());
    assert_eq!(g.state.machines.bootstrap.host_keys[&n("n1")].key, KEY);
    g.refuses_as(system(), exchange(KEY), "bootstrap_token_refused", "a bootstrap token works once");
    let now = Timestamp(2_000);
    assert!(
        g.state
            .machines
            .bootstrap
            .session(&t("a"), now)
            .unwrap()
            .unwrap_err()
            .why()
            .contains("exchanged for node n1's token")
    );
    // The node token it was exchanged for must be a hash no credential uses.
    g.ok_as(system(), NodeTokenIssued { node: n("n1"), token: t("node") });
    g.refuses_as(Actor::Admin, NodeTokenIssued { node: n("n1"), token: t("node") }, "token_in_use", "already in use");
    g.refuses_as(Actor::Admin, NodeTokenIssued { node: n("n1"), token: t("a") }, "token_in_use", "already in use");
    g.ok_as(Actor::Node(n("n1")), NodeActivated { node: n("n1") });
}

#[test]
fn phoning_home_again_with_a_new_token_ends_the_old_session() {
    let mut g = installed_up_to(NodeState::Installing);
    g.ok_as(installer("m1"), phoned("b", "m1", MAC, &[MAC]));
    assert_eq!(g.state.machines.bootstrap.sessions.get(&m("m1")), Some(&t("b")));
    let old = g.state.machines.bootstrap.session(&t("a"), Timestamp(1_000)).unwrap().unwrap_err();
    assert!(old.why().contains("session ended"), "{old:?}");
    assert_eq!(g.state.node(&n("n1")).unwrap().machine, m("m1"), "re-discovery keeps the node");
}
