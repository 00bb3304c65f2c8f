//! Enrollment decisions against the fixture spec (`nix/tests/fixtures/small.nix`): rules `cp-1` and `cp-2`
//! bind by MAC at priority 100 to class `control` (8 threads, 30 GiB); rule `workers` binds machines of 16
//! threads or more to the pool `workers` (class `worker`: 16 threads, 60 GiB, an SSD of 200 GB, one NIC).

use proptest::prelude::*;
use sendan_core::event::*;
use sendan_core::facts::{Cpu, Disk, HardwareFacts, LldpNeighbor, Nic};
use sendan_core::fleet::FleetState;
use sendan_core::ids::{Actor, Hash, MachineId, NodeId};
use sendan_core::lifecycle::NodeState;
use sendan_core::machines::Problem;
use sendan_core::machines::enrollment::*;
use sendan_core::spec::{ClusterSpec, Match, Range, Rule, SwitchPort};

#[path = "support/given.rs"]
mod harness;
use harness::{Given, m, n};

const GIB: u64 = 1 << 30;
const GB: u64 = 1_000_000_000;

fn big(macs: &[&str]) -> HardwareFacts {
    HardwareFacts {
        cpu: Cpu { threads: 32, ..Cpu::default() },
        memory_bytes: 128 * GIB,
        disks: vec![Disk { name: "nvme0n1".into(), size_bytes: 960 * GB, ..Disk::default() }],
        nics: macs
            .iter()
            .enumerate()
            .map(|(i, m)| Nic { name: format!("eth{i}"), mac: (*m).into(), ..Nic::default() })
            .collect(),
        ..HardwareFacts::default()
    }
}

fn fixture_spec() -> ClusterSpec {
    ClusterSpec::from_json(include_str!("../src/spec/fixture.json")).unwrap()
}

/// The fixture spec live, with `run` carrying out every enrollment decision as `system:enrollment`.
struct Fleet {
    g: Given,
}

impl Fleet {
    fn new() -> Fleet {
        let spec = fixture_spec();
        Fleet { g: harness::given([SpecApplied { digest: spec.digest(), document: spec.canonical_json() }.into()]) }
    }

    fn state(&self) -> &FleetState {
        &self.g.state
    }

    fn submit(&mut self, actor: Actor, payload: Payload) -> Result<(), sendan_core::Rejection> {
        self.g.as_(actor).when(payload).result.map(|_| ())
    }

    fn admin(&mut self, payload: Payload) {
        self.submit(Actor::Admin, payload).expect("the setup is legal");
    }

    fn discover(&mut self, machine: &str, facts: HardwareFacts) {
        self.admin(MachineDiscovered { machine: MachineId::new(machine).unwrap(), facts }.into());
    }

    fn digest(&self) -> Hash {
        self.g.state.specs.live.as_ref().unwrap().digest
    }

    /// Carry out every decision as `system:enrollment`; each must be accepted.
    fn run(&mut self) -> Vec<EnrollmentDecision> {
        let decisions = decide(&self.g.state.machines, &self.g.state);
        let digest = self.digest();
        for d in &decisions {
            self.submit(Actor::System("enrollment".into()), d.payload(digest))
                .unwrap_or_else(|r| panic!("{d:?} was refused: {r}"));
        }
        decisions
    }
}

#[test]
fn given_a_machine_a_rule_names_then_it_is_bound_and_requested_for_install() {
    let mut f = Fleet::new();
    f.discover("m-cp1", big(&["52:54:00:00:01:01"]));
    let first = f.run();
    let [EnrollmentDecision::Bind { machine, binding, .. }] = first.as_slice() else { panic!("{first:?}") };
    assert_eq!((machine, &binding.node, binding.rule.as_str()), (&m("m-cp1"), &n("cp-1"), "cp-1"));
    assert_eq!((binding.class.as_str(), binding.profile.as_str(), &binding.pool), ("control", "base", &None));
    let rec = f.state().node(&n("cp-1")).unwrap().clone();
    assert_eq!((rec.state, rec.rule.as_deref()), (NodeState::Commissioned, Some("cp-1")));
    // The next pass sees the commissioned node: its layout fits, so it is requested for install.
    let seen = f.state().machine(&rec.machine).unwrap().last_seen;
    assert_eq!(f.run(), vec![EnrollmentDecision::RequestInstall { node: n("cp-1"), since: rec.since, seen }]);
    assert_eq!(f.state().node(&n("cp-1")).unwrap().state, NodeState::InstallPending);
    assert!(f.run().is_empty(), "nothing is left to decide");
}

/// Property: an enrollment decision's cause is the latest event it was decided on, exactly: a binding's is the
/// machine's latest phone-home when the spec was live before it, and the spec when the machine came first; an
/// install request's is the node entering its state (or a later phone-home of its machine).
#[test]
fn a_decision_names_the_event_it_was_decided_on() {
    let mut f = Fleet::new();
    let spec_seq = f.state().specs.live.as_ref().unwrap().seq;
    f.discover("m-cp1", big(&["52:54:00:00:01:01"]));
    let discovered = f.state().seq;
    let bind = decide(&f.state().machines, f.state());
    assert_eq!(bind.len(), 1, "{bind:?}");
    assert_eq!(bind[0].cause(spec_seq), discovered, "the phone-home came after the spec");
    f.run();
    let commissioned = f.state().node(&n("cp-1")).unwrap().since;
    let install = decide(&f.state().machines, f.state());
    assert_eq!(install.len(), 1, "{install:?}");
    assert_eq!(install[0].cause(spec_seq), commissioned, "the node entering `commissioned` made it installable");

    // The machine first, the spec after it: the spec is what the binding was decided on.
    let spec = fixture_spec();
    let mut g = harness::given([MachineDiscovered { machine: m("m-cp1"), facts: big(&["52:54:00:00:01:01"]) }.into()]);
    g.ok(SpecApplied { digest: spec.digest(), document: spec.canonical_json() });
    let live = g.state.specs.live.as_ref().unwrap().seq;
    let bind = decide(&g.state.machines, &g.state);
    assert_eq!(bind.len(), 1, "{bind:?}");
    assert_eq!((live, bind[0].cause(live)), (2, 2));
}

#[test]
fn given_several_pool_machines_then_each_gets_its_own_member_in_one_pass() {
    let mut f = Fleet::new();
    for i in 0..5 {
        f.discover(&format!("m{i}"), big(&[&format!("52:54:00:00:09:0{i}")]));
    }
    let binds: Vec<(MachineId, NodeId)> = f
        .run()
        .into_iter()
        .filter_map(|d| match d {
            EnrollmentDecision::Bind { machine, binding, .. } => Some((machine, binding.node)),
            _ => None,
        })
        .collect();
    let members = ["worker-01", "worker-02", "worker-03", "worker-04"];
    assert_eq!(binds, (0..4).map(|i| (m(&format!("m{i}")), n(members[i]))).collect::<Vec<_>>());
    // The fifth finds the pool exhausted; the refusal is recorded once.
    let state = f.state().machines.bootstrap.enrollment.get(&m("m4")).expect("m4's problem is recorded");
    let Problem::Refused { rule, reasons } = &state.problem else { panic!("{state:?}") };
    assert_eq!(rule, "workers");
    assert_eq!(
        reasons[0],
        "pool 'workers' has no free member: all 4 of its nodes are bound, and node ids are never reused"
    );
    assert!(
        !f.run().iter().any(|d| matches!(d, EnrollmentDecision::Refuse { .. })),
        "an unchanged refusal is not repeated"
    );
}

#[test]
fn given_two_rules_at_the_top_priority_then_a_conflict_names_both_and_binds_nothing() {
    let mut f = Fleet::new();
    f.discover("m-both", big(&["52:54:00:00:01:01", "52:54:00:00:02:01"]));
    assert_eq!(
        f.run(),
        vec![EnrollmentDecision::Conflict {
            machine: m("m-both"),
            seen: 2,
            priority: 100,
            rules: vec!["cp-1".into(), "cp-2".into()]
        }]
    );
    assert!(f.state().nodes.records.is_empty());
    let p = &f.state().machines.bootstrap.enrollment[&m("m-both")].problem;
    assert_eq!(
        problem_sentence(p),
        "enrollment rules 'cp-1', 'cp-2' all match at priority 100; make them exclusive or bind it with `sendan node accept`"
    );
    // Phoning home again is new facts: decided again (and still a conflict).
    f.discover("m-both", big(&["52:54:00:00:01:01", "52:54:00:00:02:01"]));
    assert!(matches!(f.run().as_slice(), [EnrollmentDecision::Conflict { seen: 4, .. }]));
}

#[test]
fn given_a_machine_below_its_class_policy_then_every_unmet_minimum_is_recorded() {
    let mut f = Fleet::new();
    let mut small = big(&["52:54:00:00:02:01"]);
    small.cpu.threads = 4;
    small.memory_bytes = 8 * GIB;
    f.discover("m-small", small);
    let decisions = f.run();
    let [EnrollmentDecision::Refuse { rule, reasons, .. }] = decisions.as_slice() else { panic!("{decisions:?}") };
    assert_eq!(rule, "cp-2");
    assert_eq!(
        *reasons,
        vec![
            "class 'control' of node cp-2: 4 CPU threads; needs at least 8",
            "class 'control' of node cp-2: 8 GiB of memory; needs at least 30 GiB",
        ]
    );
}

#[test]
fn given_a_node_bound_to_other_hardware_then_its_rule_refuses_and_names_rebind() {
    let mut f = Fleet::new();
    f.discover("m-old", big(&["52:54:00:00:01:01"]));
    f.run();
    f.run();
    f.discover("m-new", big(&["52:54:00:00:01:01"]));
    let decisions = f.run();
    let [EnrollmentDecision::Refuse { reasons, .. }] = decisions.as_slice() else { panic!("{decisions:?}") };
    assert!(reasons[0].starts_with("node cp-1 is already bound to machine m-old (it is `install-pending`); if this machine replaces it, run `sendan node rebind cp-1"), "{reasons:?}");
}

#[test]
fn given_disks_that_do_not_fit_then_the_plan_is_refused_once_and_the_node_waits() {
    let mut f = Fleet::new();
    let mut diskless = big(&["52:54:00:00:01:01"]);
    f.discover("m-cp1", diskless.clone());
    f.run();
    // The class has no disk minimum, so cp-1 binds; then its layout finds no disk.
    diskless.disks.clear();
    f.discover("m-cp1", diskless);
    let decisions = f.run();
    let [EnrollmentDecision::RefusePlan { node, layout, reasons, .. }] = decisions.as_slice() else {
        panic!("{decisions:?}")
    };
    assert_eq!((node, layout.as_str()), (&n("cp-1"), "single"));
    assert_eq!(reasons[0], "the machine reported no disks");
    assert_eq!(f.state().node(&n("cp-1")).unwrap().state, NodeState::Commissioned, "nothing was written");
    assert!(f.run().is_empty(), "the same refusal is not recorded twice");
    // An install request is refused by `check` too, whoever asks.
    let err = f.submit(Actor::Admin, NodeInstallRequested { node: n("cp-1") }.into()).unwrap_err();
    assert_eq!(err.code(), "layout_does_not_fit");
    assert!(err.to_string().contains("nothing was written"), "{err}");
    // New facts with a disk: the install is requested.
    f.discover("m-cp1", big(&["52:54:00:00:01:01"]));
    assert!(matches!(f.run().as_slice(), [EnrollmentDecision::RequestInstall { .. }]));
}

#[test]
fn recorded_refusals_must_hold_when_they_are_applied() {
    let mut f = Fleet::new();
    f.discover("m-cp1", big(&["52:54:00:00:01:01"]));
    f.run();
    let digest = f.digest();
    let bogus =
        InstallPlanRefused { node: n("cp-1"), spec: digest, layout: "single".into(), reasons: vec!["x".into()] };
    // cp-1's layout fits its disks: a refusal would be untrue.
    let err = f.submit(Actor::System("enrollment".into()), bogus.clone().into()).unwrap_err();
    assert_eq!(err.code(), "decision_does_not_hold", "{err}");
    f.run();
    // cp-1 is install-pending now: not a state a refusal applies to.
    assert_eq!(f.submit(Actor::System("enrollment".into()), bogus.into()).unwrap_err().code(), "illegal_transition");
    f.discover("m-x", big(&["52:54:00:00:07:07"]));
    let stale =
        EnrollmentRefused { machine: m("m-x"), spec: Hash::of(b"old"), rule: "workers".into(), reasons: vec![] };
    assert_eq!(f.submit(Actor::System("enrollment".into()), stale.into()).unwrap_err().code(), "stale_spec");
    let untrue = EnrollmentConflicted {
        machine: m("m-x"),
        spec: digest,
        priority: 100,
        rules: vec!["cp-1".into(), "cp-2".into()],
    };
    assert_eq!(
        f.submit(Actor::System("enrollment".into()), untrue.into()).unwrap_err().code(),
        "decision_does_not_hold"
    );
}

#[test]
fn explain_lists_every_rule_with_its_criteria_and_the_layout_check() {
    let mut f = Fleet::new();
    f.discover("m-cp1", big(&["52:54:00:00:01:01"]));
    f.run();
    let facts = big(&["52:54:00:00:02:01"]);
    let e = explain(f.state(), &facts);
    assert_eq!(e.spec, Some(f.digest()));
    let names: Vec<(&str, u32, bool)> = e.rules.iter().map(|r| (r.name.as_str(), r.priority, r.matches)).collect();
    assert_eq!(names, [("cp-1", 100, false), ("cp-2", 100, true), ("workers", 10, true)]);
    assert_eq!(e.rules[0].criteria[0].why, "none of its MACs (52:54:00:00:02:01) is one of 52:54:00:00:01:01");
    assert_eq!(e.rules[2].criteria[0].why, "CPU threads (32) is at least 16");
    let EnrollOutcome::Binds(b) = &e.outcome else { panic!("{:?}", e.outcome) };
    assert_eq!(b.node, n("cp-2"));
    assert!(
        matches!(&e.layout, Some(LayoutCheck::Fits { layout, disks }) if layout == "single" && disks["root"].name == "nvme0n1")
    );
    // A machine that is bound already stays so.
    let again = explain(f.state(), &{
        let mut k = big(&["52:54:00:00:01:01"]);
        k.machine_id = Some("m-cp1".into());
        k
    });
    assert_eq!(again.outcome, EnrollOutcome::AlreadyBound { node: n("cp-1") });
    assert_eq!(explain(&FleetState::default(), &facts).outcome, EnrollOutcome::NoSpec);
}

#[test]
fn the_rack_comes_from_the_switches_the_nics_are_cabled_to() {
    let spec = fixture_spec();
    let mut facts = big(&["52:54:00:00:09:01"]);
    assert_eq!(location(&spec, &facts).rack, None);
    facts.nics[0].lldp = Some(LldpNeighbor { switch: "rack2-tor".into(), port: "swp7".into() });
    let here = location(&spec, &facts);
    assert_eq!(here.rack.as_deref(), Some("rack2"));
    assert_eq!(here.ports, vec![SwitchPort { switch: "rack2-tor".into(), port: "swp7".into() }]);
}

fn arb_facts() -> impl Strategy<Value = HardwareFacts> {
    let mac = prop::sample::select(vec!["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"]);
    let port = prop::option::of(prop::sample::select(vec!["rack1-tor", "rack2-tor", "lab-sw"]));
    let nic = (mac, port).prop_map(|(mac, sw)| Nic {
        name: "eth".into(),
        mac: mac.into(),
        lldp: sw.map(|s| LldpNeighbor { switch: s.into(), port: "p1".into() }),
        ..Nic::default()
    });
    (
        prop::option::of(prop::sample::select(vec!["id-a", "id-b"])),
        prop::option::of(prop::sample::select(vec!["UUID-A", "uuid-b"])),
        prop::option::of(prop::sample::select(vec!["SER-1", "SER-2"])),
        0u32..40,
        0u64..200,
        prop::collection::vec((any::<bool>(), 0u64..3), 0..6),
        prop::collection::vec(nic, 0..3),
    )
        .prop_map(|(mid, uuid, serial, threads, mem, disks, nics)| {
            let mut f = HardwareFacts {
                machine_id: mid.map(Into::into),
                cpu: Cpu { threads, ..Cpu::default() },
                memory_bytes: mem * GIB,
                disks: disks
                    .into_iter()
                    .enumerate()
                    .map(|(i, (removable, _))| Disk { name: format!("sd{i}"), removable, ..Disk::default() })
                    .collect(),
                nics,
                ..HardwareFacts::default()
            };
            f.dmi.system_uuid = uuid.map(Into::into);
            f.dmi.serial = serial.map(Into::into);
            f
        })
}

fn arb_match() -> impl Strategy<Value = Match> {
    let set = |xs: Vec<&'static str>| {
        prop::option::of(prop::sample::subsequence(xs.clone(), 0..=xs.len()))
            .prop_map(|o| o.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>()))
    };
    let range = |hi: u64| {
        prop::option::of((prop::option::of(0..hi), prop::option::of(0..hi)).prop_map(|(min, max)| Range { min, max }))
    };
    let ports = prop::option::of(prop::sample::subsequence(vec!["rack1-tor", "lab-sw"], 0..=2)).prop_map(|o| {
        o.map(|v| v.into_iter().map(|s| SwitchPort { switch: s.into(), port: "p1".into() }).collect::<Vec<_>>())
    });
    (
        (set(vec!["id-a", "id-c"]), set(vec!["uuid-a", "UUID-B"]), set(vec!["SER-1", "ser-2"])),
        set(vec!["52:54:00:00:00:01", "52:54:00:00:00:03"]),
        (range(40), range(200 * GIB), range(6)),
        set(vec!["rack1", "rack2"]),
        ports,
    )
        .prop_map(
            |(
                (machine_ids, system_uuids, dmi_serials),
                macs,
                (cpu_threads, memory_bytes, disk_count),
                racks,
                switch_ports,
            )| {
                Match {
                    machine_ids,
                    system_uuids,
                    dmi_serials,
                    macs,
                    cpu_threads,
                    memory_bytes,
                    disk_count,
                    racks,
                    switch_ports,
                }
            },
        )
}

proptest! {
    /// The dry run's explanation is never out of step with matching: a rule matches exactly when every criterion
    /// it lists holds, and it lists one criterion per criterion the rule sets.
    #[test]
    fn criteria_agree_with_rule_matching(facts in arb_facts(), matches in arb_match()) {
        let spec = fixture_spec();
        let rule = Rule { description: None, priority: 1, matches, bind: sendan_core::spec::Bind::default() };
        let here = location(&spec, &facts);
        let listed = criteria(&rule, &facts, &here);
        let set = rule.matches.sets().iter().filter(|(_, v, _)| v.is_some()).count()
            + rule.matches.ranges().iter().filter(|(_, r)| r.is_some()).count();
        prop_assert_eq!(listed.len(), set);
        prop_assert_eq!(listed.iter().all(|c| c.holds), rule.matches(&facts, &here), "{:?}", listed);
    }
}
