//! Power requests: only for a node the live spec gives a BMC; one at a time per node; an action that takes the
//! node out keeps every service within its disruption budget unless forced; the controller's completion names the
//! pending request (a second completion — a new leader finishing the same request — is refused); observations
//! record changes only. No secret is in any of it: the spec names a password *file*.

use std::collections::BTreeMap;

use sendan_core::event::*;
use sendan_core::ids::Actor;
use sendan_core::rejection::Rejection;
use serde_json::json;

#[path = "support/services.rs"]
mod support;
use support::{Fleet, GIB, TestNode, n};

/// Four active nodes; `web` has two replicas and tolerates none unavailable; n0, n1 and n2 have BMCs.
fn fleet() -> Fleet {
    let nodes = (0..4)
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
        "budget": {"maxUnavailable": 0},
    });
    let mut f = Fleet::new(nodes, BTreeMap::from([("web".to_owned(), web)]));
    f.apply_spec_with(|doc| {
        doc["nodes"]["n0"]["bmc"] = json!({
            "driver": "redfish", "address": "https://127.0.0.1:8000", "user": "admin",
            "passwordFile": "/etc/sendan/bmc/n0", "system": "/redfish/v1/Systems/n0",
        });
        for k in [1, 2] {
            doc["nodes"][format!("n{k}")]["bmc"] = json!({
                "driver": "ipmi", "address": "127.0.0.1:9623", "user": "admin", "passwordFile": "/etc/sendan/bmc/n1",
            });
        }
    });
    f.schedule();
    f.agents_converge();
    f
}

fn request(node: &str, action: Option<PowerAction>, boot: Option<BootOverride>, force: bool) -> Payload {
    PowerRequested { node: n(node), action, boot, force }.into()
}

const PXE_ONCE: Option<BootOverride> = Some(BootOverride { device: BootDevice::Pxe, once: true });

/// A node with a BMC that runs no `web` instance, and one that runs one.
fn idle_and_busy(f: &Fleet) -> (String, String) {
    let busy = |x: &str| f.state.services.on_node(&n(x)).next().is_some();
    let idle = ["n0", "n1", "n2"].into_iter().find(|x| !busy(x)).expect("web runs on two of four nodes");
    let busy = ["n0", "n1", "n2"].into_iter().find(|x| busy(x)).expect("so on one of n0, n1, n2 at least");
    (idle.to_owned(), busy.to_owned())
}

#[test]
fn a_node_without_a_bmc_is_refused_with_the_declaration_to_add() {
    let mut f = fleet();
    let refused = f.submit(Actor::Admin, request("n3", Some(PowerAction::On), None, false), None).unwrap_err();
    assert!(matches!(refused, Rejection::NodeRefused { .. }), "{refused:?}");
    assert!(refused.to_string().contains("declare `nodes.n3.bmc`"), "{refused}");
    let unknown = f.submit(Actor::Admin, request("n9", Some(PowerAction::On), None, false), None).unwrap_err();
    assert!(matches!(unknown, Rejection::UnknownNode { .. }), "{unknown:?}");
    let empty = f.submit(Actor::Admin, request("n0", None, None, false), None).unwrap_err();
    assert!(empty.to_string().contains("neither a power action nor a boot device"), "{empty}");
    assert!(f.state.power.nodes.is_empty(), "nothing refused is recorded");
}

#[test]
fn a_request_is_pending_until_its_completion_and_a_second_completion_is_refused() {
    let mut f = fleet();
    let (idle, _) = idle_and_busy(&f);
    let seq = f.submit(Actor::Admin, request(&idle, Some(PowerAction::Reboot), PXE_ONCE, false), None).unwrap().seq;
    let pending = f.state.power.get(&n(&idle)).unwrap().pending.unwrap();
    assert_eq!((pending.seq, pending.describe().as_str()), (seq, "boot pxe once, then reboot"));
    // What `sendan node show` prints: the BMC as declared (no secret) and the pending request.
    let view = sendan_core::wire::NodePowerView::of(&f.state, &n(&idle));
    assert_eq!(view.pending.map(|p| (p.seq, p.summary)), Some((seq, "boot pxe once, then reboot".to_owned())));
    assert!(view.bmc.is_some_and(|b| b.user == "admin"));
    // One at a time.
    let second = f.submit(Actor::Admin, request(&idle, Some(PowerAction::Off), None, true), None).unwrap_err();
    assert!(
        second.to_string().contains(&format!("power request at seq {seq} (boot pxe once, then reboot)")),
        "{second}"
    );
    // Only the system completes, and only the pending request.
    let done = |request| PowerCompleted {
        node: n(&idle),
        request,
        outcome: PowerOutcome::Done,
        error: None,
        power: Some(Power::On),
    };
    let by_admin = f.submit(Actor::Node(n(&idle)), done(seq).into(), None).unwrap_err();
    assert!(matches!(by_admin, Rejection::Forbidden { .. }), "{by_admin:?}");
    let wrong = f.submit(Actor::System("power".into()), done(seq + 7).into(), None).unwrap_err();
    assert!(wrong.to_string().contains(&format!("pending power request is seq {seq}")), "{wrong}");
    let failed_silently = PowerCompleted { outcome: PowerOutcome::Failed, ..done(seq) };
    assert!(f.submit(Actor::System("power".into()), failed_silently.into(), None).is_err());
    f.submit(Actor::System("power".into()), done(seq).into(), None).unwrap();
    let p = f.state.power.get(&n(&idle)).unwrap();
    assert!(p.pending.is_none());
    assert_eq!(p.last.as_ref().map(|l| (l.request.seq, l.outcome)), Some((seq, PowerOutcome::Done)));
    assert_eq!(p.observed.map(|o| o.0), Some(Power::On));
    // A new leader finishing the same request again is refused, and changes nothing.
    let again = f.submit(Actor::System("power".into()), done(seq).into(), None).unwrap_err();
    assert!(again.to_string().contains("no pending power request"), "{again}");
    // Now a new request may go.
    f.submit(
        Actor::Admin,
        request(&idle, None, Some(BootOverride { device: BootDevice::Disk, once: false }), false),
        None,
    )
    .unwrap();
}

#[test]
fn an_action_that_takes_a_busy_node_out_keeps_the_budget_unless_forced() {
    let mut f = fleet();
    let (_, busy) = idle_and_busy(&f);
    for action in [PowerAction::Off, PowerAction::SoftOff, PowerAction::Reboot] {
        let refused = f.submit(Actor::Admin, request(&busy, Some(action), None, false), None).unwrap_err();
        assert!(matches!(refused, Rejection::OverBudget { .. }), "{action:?}: {refused:?}");
        assert!(refused.to_string().contains(&format!("drain it first (`sendan node drain {busy}`)")), "{refused}");
    }
    // Powering on, or only setting the next boot, takes nothing out.
    let seq = f.submit(Actor::Admin, request(&busy, Some(PowerAction::On), PXE_ONCE, false), None).unwrap().seq;
    let failed = PowerCompleted {
        node: n(&busy),
        request: seq,
        outcome: PowerOutcome::Failed,
        error: Some("the BMC refused the credentials (401)".into()),
        power: None,
    };
    f.submit(Actor::System("power".into()), failed.into(), None).unwrap();
    let last = f.state.power.get(&n(&busy)).unwrap().last.clone().unwrap();
    assert_eq!(last.error.as_deref(), Some("the BMC refused the credentials (401)"));
    // Forced, it goes.
    f.submit(Actor::Admin, request(&busy, Some(PowerAction::Off), None, true), None).unwrap();
}

#[test]
fn observations_record_changes_only() {
    let mut f = fleet();
    let seen = |p| Payload::from(PowerObserved { node: n("n0"), power: p });
    f.submit(Actor::System("power".into()), seen(Power::Off), None).unwrap();
    let same = f.submit(Actor::System("power".into()), seen(Power::Off), None).unwrap_err();
    assert!(same.to_string().contains("only changes are recorded"), "{same}");
    f.submit(Actor::System("power".into()), seen(Power::On), None).unwrap();
    assert_eq!(f.state.power.get(&n("n0")).unwrap().observed.map(|o| o.0), Some(Power::On));
}

#[test]
fn the_spec_names_a_password_file_and_no_event_carries_a_secret() {
    let f = fleet();
    let live = f.state.live().unwrap();
    let bmc = live.spec.nodes["n0"].bmc.as_ref().unwrap();
    assert_eq!(bmc.password_file, "/etc/sendan/bmc/n0");
    let doc: serde_json::Value = serde_json::from_str(&live.spec.canonical_json()).unwrap();
    let fields: Vec<&String> = doc["nodes"]["n0"]["bmc"].as_object().unwrap().keys().collect();
    assert!(!fields.iter().any(|k| k.as_str() == "password"), "{fields:?}");
}
