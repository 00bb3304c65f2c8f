//! The scheduler, case by case: what it places where, what it refuses and says why, how it replaces failed and
//! lost instances, and how `check` holds a stale or buggy leader to the same rules.

use std::collections::BTreeMap;

use sendan_core::event::*;
use sendan_core::ids::Actor;
use sendan_core::services::planner::{self, Decision, Filter};
use sendan_core::services::{InstanceStatus, view};
use serde_json::json;

#[path = "support/services.rs"]
mod support;
use support::{Fleet, id, n, node, service};

fn services(list: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
    list.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn placed_on(d: &[planner::ServiceDecision]) -> Vec<(String, String)> {
    d.iter()
        .filter_map(|d| d.decision.placed_on().map(|n| (d.decision.instance().to_string(), n.to_string())))
        .collect()
}

#[test]
fn missing_replicas_go_to_nodes_that_fit_and_the_rest_is_explained_by_every_filter() {
    let mut f = Fleet::new(
        vec![node("a", "web", "r1", 2, 4), node("b", "web", "r1", 2, 4), node("c", "db", "r1", 16, 64)],
        services(&[("web", service(&["web"], 3, json!({"resources": {"cpu": 2, "memoryBytes": 1u64 << 30}})))]),
    );
    let d = f.schedule();
    assert_eq!(placed_on(&d), [("web.1".into(), "a".into()), ("web.2".into(), "b".into())]);
    let plan = f.plan();
    assert!(plan.decisions.is_empty(), "planning again after applying a plan changes nothing");
    let short = &plan.shortfalls["web"];
    assert_eq!(short.unplaced, 1);
    assert_eq!(short.filtered.get("cpu"), Some(&2));
    assert_eq!(short.filtered.get("max_per_node"), Some(&2));
    assert_eq!(short.filtered.get("pool"), Some(&1));

    // Every reason, not the first: node a is full on CPU and at maxPerNode; c is in the wrong pool.
    let e = planner::explain_placement(&f.state.services, &f.state, f.now(), "web", None).unwrap();
    let a = e.nodes.iter().find(|v| v.node == n("a")).unwrap();
    assert_eq!(a.filters.iter().map(Filter::code).collect::<Vec<_>>(), ["max_per_node", "cpu"]);
    assert_eq!(a.running, 1);
    let c = e.nodes.iter().find(|v| v.node == n("c")).unwrap();
    assert_eq!(c.filters.iter().map(Filter::code).collect::<Vec<_>>(), ["pool"]);
    assert!(c.filters[0].to_string().contains("in pool db, not in web"), "{}", c.filters[0]);

    // A stale leader placing the third replica on a full node is refused with every reason.
    let version = f.state.services.instance(&id("web.1")).unwrap().version;
    let forged = InstancePlaced { service: "web".into(), instance: id("web.3"), node: n("a"), task_digest: version };
    let err = f.submit(Actor::System("scheduler".into()), forged.into(), None).unwrap_err();
    assert_eq!(err.code(), "placement_refused");
    let text = err.to_string();
    assert!(
        text.contains("already runs 1 of at most 1 per node") && text.contains("CPU: 2 thread(s) needed, 0 of 2 free"),
        "{text}"
    );
}

#[test]
fn a_replica_is_never_placed_twice_and_ids_are_never_reused() {
    let mut f = Fleet::new(
        vec![node("a", "web", "r1", 4, 8), node("b", "web", "r1", 4, 8)],
        services(&[("web", service(&["web"], 1, json!({})))]),
    );
    let d = f.schedule();
    assert_eq!(d.len(), 1);
    let version = f.state.services.instance(&id("web.1")).unwrap().version;
    // A second leader that did not see the first placement proposes the same decision: the same id, deduplicated
    // by the log; a different one for another node is refused by the replica count.
    let again = InstancePlaced { service: "web".into(), instance: id("web.2"), node: n("b"), task_digest: version };
    let err = f.submit(Actor::System("scheduler".into()), again.into(), None).unwrap_err();
    assert!(err.to_string().contains("already has 1 live instances of 1 replicas"), "{err}");
    let reused = InstancePlaced { service: "web".into(), instance: id("web.1"), node: n("b"), task_digest: version };
    let err = f.submit(Actor::System("scheduler".into()), reused.into(), None).unwrap_err();
    assert!(err.to_string().contains("the next instance of service web is web.2, not web.1"), "{err}");
}

#[test]
fn nodes_that_are_not_active_or_have_no_running_agent_get_nothing() {
    let mut f = Fleet::new(
        vec![node("a", "web", "r1", 4, 8), node("b", "web", "r1", 4, 8), node("c", "web", "r1", 4, 8)],
        services(&[("web", service(&["web"], 3, json!({})))]),
    );
    f.fold(NodeDrainRequested { node: n("a") }.into());
    f.fold(NodeAgentLost { node: n("b"), silent_ms: 30_000 }.into());
    let d = f.schedule();
    assert_eq!(placed_on(&d), [("web.1".into(), "c".into())]);
    let e = planner::explain_placement(&f.state.services, &f.state, f.now(), "web", None).unwrap();
    let codes = |name: &str| {
        e.nodes.iter().find(|v| v.node == n(name)).unwrap().filters.iter().map(Filter::code).collect::<Vec<_>>()
    };
    assert_eq!(codes("a"), ["state"]);
    assert_eq!(codes("b"), ["agent_lost"]);
}

#[test]
fn static_ports_conflict_across_services_on_one_node() {
    let mut f = Fleet::new(
        vec![node("a", "web", "r1", 8, 8)],
        services(&[
            ("api", service(&["web"], 1, json!({"ports": {"http": {"static": 8080}}}))),
            ("web", service(&["web"], 1, json!({"ports": {"http": {"static": 8080}}}))),
        ]),
    );
    let d = f.schedule();
    assert_eq!(placed_on(&d), [("api.1".into(), "a".into())]);
    let e = planner::explain_placement(&f.state.services, &f.state, f.now(), "web", None).unwrap();
    assert_eq!(e.nodes[0].filters, [Filter::Port { port: 8080, taken_by: id("api.1") }]);
}

#[test]
fn replicas_spread_across_racks_within_one() {
    let nodes = (0..6).map(|k| node(&format!("n{k}"), "web", if k < 4 { "r1" } else { "r2" }, 8, 8)).collect();
    let mut f = Fleet::new(
        nodes,
        services(&[(
            "web",
            service(&["web"], 4, json!({"constraints": {"maxPerNode": 1, "spreadAcrossRacks": true}})),
        )]),
    );
    f.schedule();
    let mut per_rack = BTreeMap::new();
    for i in f.state.services.of_service("web") {
        let rack = if i.node.as_str() < "n4" { "r1" } else { "r2" };
        *per_rack.entry(rack).or_insert(0) += 1;
    }
    assert_eq!(per_rack, BTreeMap::from([("r1", 2), ("r2", 2)]));
}

#[test]
fn a_failed_instance_is_rescheduled_elsewhere_by_its_policy_with_backoff_until_attempts_are_used_up() {
    let policy =
        json!({"reschedule": {"attempts": 2, "intervalSeconds": 3600, "delaySeconds": 10, "maxDelaySeconds": 300}});
    let mut f = Fleet::new(
        vec![node("a", "web", "r1", 4, 8), node("b", "web", "r1", 4, 8)],
        services(&[("web", service(&["web"], 1, policy))]),
    );
    f.schedule();
    f.agents_converge();
    let fail = |f: &mut Fleet, instance: &str| {
        let node = f.state.services.instance(&id(instance)).unwrap().node.clone();
        let exited = InstanceExited {
            instance: id(instance),
            node,
            exit_code: Some(1),
            signal: None,
            restarting: false,
            reason: "exited with status 1; restarts used up".into(),
        };
        f.agent(exited).unwrap().seq
    };
    let failed_at = fail(&mut f, "web.1");
    // Within the first delay: nothing, and the wait is explained; check refuses an early replacement.
    assert!(f.plan().decisions.is_empty());
    assert!(f.plan().shortfalls["web"].waiting[0].1.contains("attempt 1 is due at"));
    let version = f.state.services.instance(&id("web.1")).unwrap().version;
    let early = InstanceRescheduled {
        service: "web".into(),
        instance: id("web.2"),
        node: n("b"),
        task_digest: version,
        replaces: id("web.1"),
        lost: false,
        attempt: 1,
    };
    let err = f.submit(Actor::System("scheduler".into()), early.into(), None).unwrap_err();
    assert!(err.to_string().contains("its reschedule policy holds it until"), "{err}");

    f.clock += 10_000;
    let d = f.schedule();
    match &d[..] {
        [planner::ServiceDecision { decision: Decision::Reschedule(r), cause, .. }] => {
            assert_eq!((r.replaces.as_str(), r.node.as_str(), r.attempt, r.lost), ("web.1", "b", 1, false));
            assert_eq!(*cause, failed_at, "a reschedule names the failure it answers");
        }
        other => panic!("{other:?}"),
    }
    assert!(f.state.services.instance(&id("web.1")).is_none(), "a replaced failed instance leaves the state");
    f.agents_converge();
    fail(&mut f, "web.2");
    // The second delay doubles.
    f.clock += 10_000;
    assert!(f.plan().decisions.is_empty(), "backoff: the second attempt waits 20 s");
    f.clock += 10_000;
    let d = f.schedule();
    assert!(matches!(&d[..], [planner::ServiceDecision { decision: Decision::Reschedule(r), .. }] if r.attempt == 2));
    f.agents_converge();
    fail(&mut f, "web.3");
    f.clock += 1_000_000;
    let plan = f.plan();
    assert!(plan.decisions.is_empty());
    assert!(plan.shortfalls["web"].waiting[0].1.contains("reschedule attempts are used up: 2 of 2"));
}

#[test]
fn a_lost_node_moves_only_its_own_instances_and_its_agent_stops_them_when_it_returns() {
    let mut f = Fleet::new(
        vec![node("a", "web", "r1", 4, 8), node("b", "web", "r1", 4, 8), node("c", "web", "r1", 4, 8)],
        services(&[("web", service(&["web"], 2, json!({}))), ("api", service(&["web"], 1, json!({})))]),
    );
    f.schedule();
    f.agents_converge();
    let on_a: Vec<String> = f.state.services.on_node(&n("a")).map(|i| i.id.to_string()).collect();
    assert!(!on_a.is_empty());
    let lost_at = f.fold(NodeAgentLost { node: n("a"), silent_ms: 30_000 }.into());
    let d = f.schedule();
    assert_eq!(d.len(), on_a.len());
    for d in &d {
        match &d.decision {
            Decision::Reschedule(r) => {
                assert!(on_a.contains(&r.replaces.to_string()) && r.lost && r.attempt == 0 && r.node != n("a"));
                assert_eq!(d.cause, lost_at);
            }
            other => panic!("only a's instances move: {other:?}"),
        }
    }
    f.agents_converge();
    // The endpoints no longer list what ran on a.
    assert!(view::endpoints(&f.state.services, "web").iter().all(|i| i.node != n("a")));
    f.fold(NodeAgentReturned { node: n("a") }.into());
    assert!(f.plan().decisions.is_empty(), "its return starts nothing new");
    f.agents_converge();
    assert_eq!(f.state.services.on_node(&n("a")).count(), 0, "its agent stopped what was moved away");
}

#[test]
fn scaling_down_stops_the_newest_and_a_spec_change_moves_misfits() {
    let mut f = Fleet::new(
        vec![node("a", "web", "r1", 4, 8), node("b", "web", "r1", 4, 8), node("c", "web", "r2", 4, 8)],
        services(&[("web", service(&["web"], 3, json!({})))]),
    );
    f.schedule();
    f.agents_converge();
    f.services.insert("web".into(), service(&["web"], 1, json!({})));
    f.apply_spec();
    let d = f.schedule();
    let stopped: Vec<String> = d
        .iter()
        .filter_map(|d| match &d.decision {
            Decision::Stop(s) => Some(s.instance.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(stopped, ["web.3", "web.2"]);
    f.agents_converge();
    assert_eq!(f.state.services.of_service("web").count(), 1);

    // Only rack r2 from now on: web.1 (on a, in r1) is stopped and placed anew on c.
    f.services.insert("web".into(), service(&["web"], 1, json!({"constraints": {"racks": ["r2"]}})));
    f.apply_spec();
    let d = f.schedule();
    assert!(
        matches!(&d[0].decision, Decision::Stop(s) if s.instance == id("web.1") && s.reason.contains("rack r1 is not one of r2"))
    );
    assert_eq!(placed_on(&d), [("web.4".into(), "c".into())]);
    assert!(f.plan().decisions.is_empty());
}

#[test]
fn agent_reports_must_be_about_instances_on_the_reporting_node() {
    let mut f = Fleet::new(
        vec![node("a", "web", "r1", 4, 8), node("b", "web", "r1", 4, 8)],
        services(&[("web", service(&["web"], 1, json!({"ports": {"http": {}}})))]),
    );
    f.schedule();
    let on = f.state.services.instance(&id("web.1")).unwrap().node.clone();
    let other = if on == n("a") { n("b") } else { n("a") };
    let err = f.agent(InstanceHealthy { instance: id("web.1"), node: other.clone() }).unwrap_err();
    assert!(err.to_string().contains(&format!("assigned to node {on}, not {other}")), "{err}");
    let err = f.agent(InstanceHealthy { instance: id("web.1"), node: on.clone() }).unwrap_err();
    assert!(err.to_string().contains("it is pending; only a running instance becomes healthy"), "{err}");
    let started = |ports: &[(&str, u16)]| InstanceStarted {
        instance: id("web.1"),
        node: on.clone(),
        address: "10.0.0.1".into(),
        ports: ports.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        restarts: 0,
    };
    let err = f.agent(started(&[("admin", 9000)])).unwrap_err();
    assert!(err.to_string().contains("it reports ports [admin], and its service declares [http]"), "{err}");
    f.agent(started(&[("http", 23456)])).unwrap();
    let err = f.agent(InstanceStopped { instance: id("web.1"), node: on.clone() }).unwrap_err();
    assert!(err.to_string().contains("nothing asked it to stop"), "{err}");
    assert_eq!(f.state.services.instance(&id("web.1")).unwrap().status, InstanceStatus::Running);
}
