//! The systems and rollouts API on an in-process member: who may read and decide what, and how bad input is refused
//! (4xx with a sentence, nothing applied).

use std::time::Duration;

use sendan_api::client::{Client, ClientError};
use sendan_core::wire::{NodeSystemView, ProposalIn, RolloutsView};
use sendan_tests::inproc::Cluster;
use sendan_tests::nixfake::{enroll, spec};
use serde_json::json;

const SYSTEM: &str = "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-nixos-system-old";
const KEY: &str = "cache.example.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

fn api_error(e: ClientError) -> (u16, String, String) {
    match e {
        ClientError::Api { status, code, message, .. } => (status, code, message),
        other => panic!("expected an API error, got {other}"),
    }
}

fn event(payload: serde_json::Value) -> Vec<ProposalIn> {
    vec![ProposalIn { id: None, comment: None, cause: None, payload: serde_json::from_value(payload).unwrap() }]
}

async fn setup() -> (Cluster, Client, Vec<String>) {
    let c = Cluster::new(1).await;
    let admin = c.client(1);
    let spec = spec("edge", &[("e0", SYSTEM), ("e1", SYSTEM)], "http://127.0.0.1:9", KEY);
    sendan_api::cli::spec::apply(&admin, &spec).await.unwrap();
    let tokens = enroll(&admin, &["e0", "e1"]).await;
    (c, admin, tokens)
}

/// Property: a node token reads its own node's system view (with the spec's substituters and keys) and nothing
/// else of the systems API, and may report only about its own node; deciding is the admin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_tokens_read_their_own_system_and_decide_nothing() {
    let (c, admin, tokens) = setup().await;
    let node = Client::new(&c.addrs[&1], Some(tokens[0].clone()));
    let v: NodeSystemView = node.get("/v1/nodes/e0/system", &()).await.unwrap();
    assert_eq!(v.system.desired.unwrap().system, SYSTEM, "the spec decided the node's system");
    assert_eq!((v.substituters, v.trusted_public_keys), (vec!["http://127.0.0.1:9".to_owned()], vec![KEY.to_owned()]));
    let before = c.fleet(1).seq;
    for path in ["/v1/nodes/e1/system", "/v1/rollouts"] {
        let (status, _, message) = api_error(node.get::<serde_json::Value, _>(path, &()).await.unwrap_err());
        assert_eq!(status, 403, "{path}: {message}");
    }
    let decide = event(json!({"type": "NodeSystemSet", "node": "e0", "system": SYSTEM}));
    let (status, _, message) = api_error(node.submit_once(&decide).await.unwrap_err());
    assert_eq!(status, 403);
    assert!(message.contains("a node token may not submit this kind of event"), "{message}");
    let other = event(json!({"type": "SystemReported", "node": "e1", "current": SYSTEM, "booted": null}));
    let (status, _, message) = api_error(node.submit_once(&other).await.unwrap_err());
    assert_eq!(status, 403);
    assert!(message.contains("only submit events about its own node, not e1"), "{message}");
    assert_eq!(c.fleet(1).seq, before, "refusals change nothing");
    let own = event(json!({"type": "SystemReported", "node": "e0", "current": SYSTEM, "booted": SYSTEM}));
    node.submit_once(&own).await.expect("a node reports about itself");
    let v: NodeSystemView = admin.get("/v1/nodes/e0/system", &()).await.unwrap();
    assert_eq!(v.system.booted.as_deref(), Some(SYSTEM));
}

/// Property: malformed systems and inconsistent rollouts are refused with 400, impossible ones with 409, unknown
/// rollouts with 404 — each with a sentence naming the problem — and nothing is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_systems_and_rollouts_are_refused_with_a_sentence() {
    let (c, admin, _) = setup().await;
    let before = c.fleet(1).seq;
    let rollout = |pool: &str, system: &str, max: u32, canary: u32| {
        event(json!({"type": "RolloutStarted", "pool": pool, "system": system, "max_unavailable": max,
                     "canary": canary, "max_failures": 0, "health_timeout_secs": 60}))
    };
    let cases = [
        (
            event(json!({"type": "NodeSystemSet", "node": "e0", "system": "/etc/nixos"})),
            400,
            "invalid_system",
            "`/etc/nixos` is not a system to run",
        ),
        (rollout("edge", SYSTEM, 1, 2), 400, "invalid_rollout", "canary (2) must not exceed max-unavailable (1)"),
        (rollout("edge", SYSTEM, 0, 0), 400, "invalid_rollout", "max-unavailable must be at least 1"),
        (rollout("gpus", SYSTEM, 1, 0), 409, "unknown_pool", "pool gpus cannot be rolled out"),
        (
            event(json!({"type": "RolloutHalted", "rollout": 999, "reason": "x"})),
            409,
            "unknown_rollout",
            "rollout 999 does not exist",
        ),
        (event(json!({"type": "NodeUnpinned", "node": "e0"})), 409, "node_not_pinned", "node e0 is not pinned"),
    ];
    for (events, status, code, words) in cases {
        let (s, k, message) = api_error(admin.submit(&mut events.clone(), Duration::from_secs(10)).await.unwrap_err());
        assert_eq!((s, k.as_str()), (status, code), "{message}");
        assert!(message.contains(words), "{message:?} should say {words:?}");
    }
    assert_eq!(c.fleet(1).seq, before, "nothing was applied");
    let (s, _, message) = api_error(admin.get::<serde_json::Value, _>("/v1/rollouts/abc", &()).await.unwrap_err());
    assert_eq!(s, 400, "{message}");
    assert!(message.contains("is not a rollout id"), "{message}");
    let (s, _, _) = api_error(admin.get::<serde_json::Value, _>("/v1/rollouts/999", &()).await.unwrap_err());
    assert_eq!(s, 404);
    let none: RolloutsView = admin.get("/v1/rollouts", &[("pool", "edge")]).await.unwrap();
    assert!(none.rollouts.is_empty());
}
