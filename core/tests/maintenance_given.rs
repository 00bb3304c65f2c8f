//! Maintenance windows: a pool's weekly windows (UTC) open and close as declared, across midnight and the week's
//! end; outside them a drain's hand-overs and a rollout's waves wait — the planners propose nothing and `check`
//! refuses what a stale leader would — and inside them they go on. A forced drain does not wait.

use std::collections::BTreeMap;

use sendan_core::event::*;
use sendan_core::ids::Actor;
use sendan_core::nixos::SwitchAction;
use sendan_core::rollouts::planner as rollouts;
use sendan_core::services::planner::Decision;
use sendan_core::spec::MaintenanceWindow;
use serde_json::json;

#[path = "support/services.rs"]
mod support;
use support::{Fleet, GIB, TestNode, n};

/// 2026-12-05T00:00:00Z, a Saturday.
const SATURDAY: i64 = 1_796_428_800_000;
const HOUR: i64 = 3_600_000;

fn window(days: &[&str], start: &str, minutes: u32) -> MaintenanceWindow {
    MaintenanceWindow { days: days.iter().map(|d| (*d).to_owned()).collect(), start: start.into(), minutes }
}

#[test]
fn a_window_is_open_on_its_days_from_its_start_for_its_length() {
    let w = window(&["sat", "sun"], "02:00", 240);
    assert!(!w.open_at(SATURDAY + HOUR), "01:00 Saturday is before it");
    assert!(w.open_at(SATURDAY + 2 * HOUR), "02:00 Saturday opens it");
    assert!(w.open_at(SATURDAY + 5 * HOUR + 59 * 60_000), "05:59 is inside");
    assert!(!w.open_at(SATURDAY + 6 * HOUR), "06:00 closes it");
    assert!(w.open_at(SATURDAY + 27 * HOUR), "03:00 Sunday");
    assert!(!w.open_at(SATURDAY + 2 * 24 * HOUR + 3 * HOUR), "not on Monday");
    assert_eq!(w.next_opening(SATURDAY + 7 * HOUR), Some(SATURDAY + 26 * HOUR), "next: Sunday 02:00");
    // Across midnight and the end of the week: Sunday 23:00 for three hours reaches into Monday.
    let late = window(&["sun"], "23:00", 180);
    assert!(late.open_at(SATURDAY + 24 * HOUR + 23 * HOUR + 30 * 60_000));
    assert!(late.open_at(SATURDAY + 2 * 24 * HOUR + HOUR), "01:00 Monday is still inside");
    assert!(!late.open_at(SATURDAY + 2 * 24 * HOUR + 2 * HOUR));
    assert!(
        window(&["sat"], "24:00", 10).start_minute().is_none() && window(&["sat"], "2:00", 10).start_minute().is_none()
    );
}

fn fleet() -> Fleet {
    let nodes = (0..3)
        .map(|k| TestNode {
            name: format!("n{k}"),
            pool: Some("blue".into()),
            rack: "r0".into(),
            cpu: 4,
            memory_gib: 16,
        })
        .collect();
    let web = json!({
        "package": "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-web-1.0", "replicas": 2, "pools": ["blue"],
        "resources": {"cpu": 1, "memoryBytes": GIB},
        "update": {"maxParallel": 1, "minHealthySeconds": 1, "healthyDeadlineSeconds": 60},
    });
    let mut f = Fleet::new(nodes, BTreeMap::from([("web".to_owned(), web)]));
    f.clock = SATURDAY + HOUR; // 01:00 Saturday: the window below is closed
    f.apply_spec_with(|doc| {
        doc["pools"]["blue"]["maintenance"] = json!([{ "days": ["sat"], "start": "02:00", "minutes": 120 }]);
    });
    f.schedule();
    f.agents_converge();
    f
}

#[test]
fn outside_its_pool_window_a_drain_waits_and_check_refuses_its_hand_over_and_a_forced_drain_does_not_wait() {
    let mut f = fleet();
    let busy = f.state.services.of_service("web").next().unwrap().node.clone();
    f.submit(Actor::Admin, NodeDrainStarted { node: busy.clone(), deadline: None, force: false }.into(), None).unwrap();
    let plan = f.plan();
    assert!(!plan.decisions.iter().any(|d| matches!(d.decision, Decision::Migrate(_))), "nothing moves at 01:00");
    let waiting = &plan.shortfalls["web"].waiting;
    assert!(waiting.iter().any(|(_, why)| why.contains("maintenance window is closed")), "{waiting:?}");
    // A stale leader's hand-over is refused.
    let old = f.state.services.on_node(&busy).next().unwrap().clone();
    let spare = (0..3).map(|k| n(&format!("n{k}"))).find(|x| f.state.services.on_node(x).next().is_none()).unwrap();
    let next = f.state.services.next_id("web").unwrap();
    let stale = InstanceMigrated {
        service: "web".into(),
        instance: next,
        node: spare,
        task_digest: old.version,
        replaces: old.id,
    };
    let refused = f.submit(Actor::System("scheduler".into()), stale.into(), None).unwrap_err();
    assert!(refused.to_string().contains("maintenance window is closed"), "{refused}");
    // At 02:00 the window opens and the hand-over goes.
    f.clock = SATURDAY + 2 * HOUR;
    let decisions = f.schedule();
    assert!(decisions.iter().any(|d| matches!(d.decision, Decision::Migrate(_))), "the hand-over goes at 02:00");

    // Outside the window again, a forced drain stops what is left without waiting.
    let mut f = fleet();
    let busy = f.state.services.of_service("web").next().unwrap().node.clone();
    f.submit(Actor::Admin, NodeDrainStarted { node: busy.clone(), deadline: None, force: true }.into(), None).unwrap();
    let decisions = f.schedule();
    assert!(decisions.iter().any(|d| matches!(&d.decision, Decision::Stop(s) if s.node == busy)));
}

#[test]
fn outside_its_pool_window_a_rollout_waits_and_check_refuses_its_wave() {
    let mut f = fleet();
    let start = RolloutStarted {
        pool: "blue".into(),
        system: "/nix/store/1c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-new".into(),
        action: SwitchAction::Switch,
        max_unavailable: 1,
        canary: 0,
        max_failures: 0,
        health_timeout_secs: 600,
    };
    let id = f.submit(Actor::Admin, start.into(), None).unwrap().seq;
    assert!(rollouts::decide(&f.state.rollouts, &f.state, f.now()).is_empty(), "no wave at 01:00");
    let r = f.state.rollouts.get(id).unwrap().clone();
    let why = rollouts::window_wait(&f.state, &r, f.now()).expect("it waits for the window");
    assert!(why.contains("opens at 2026-12-05T02:00:00"), "{why}");
    let wave = RolloutWaveStarted { rollout: id, wave: 1, nodes: vec![n("n0")] };
    let refused = f.submit(Actor::System("rollout".into()), wave.into(), None).unwrap_err();
    assert!(refused.to_string().contains("maintenance window is closed"), "{refused}");
    f.clock = SATURDAY + 2 * HOUR + 60_000;
    let decided = rollouts::decide(&f.state.rollouts, &f.state, f.now());
    assert!(decided.iter().any(|d| matches!(d.event, rollouts::RolloutMove::WaveStarted(_))), "the wave goes at 02:01");
}
