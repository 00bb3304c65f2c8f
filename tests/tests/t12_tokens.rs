//! Node tokens: issued by the admin (only the hash is logged), scoped to the node's own events and reads,
//! replaced by the next one, and revoked when the node retires. Each refusal is checked.

use std::time::Duration;

use sendan_api::client::{Client, ClientError, EventFilter};
use sendan_tests::inproc::Cluster;
use sendan_tests::{commissioned, discovered, proposal};
use serde_json::json;

fn status(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, message, .. } => (status, message),
        other => panic!("expected an API error, got {other}"),
    }
}

/// Property: a node token may submit only node-emitted events about its own node and read only its own
/// node; everything else is refused (403) and changes nothing; a replaced or revoked token is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_tokens_are_scoped_to_their_node() {
    let c = Cluster::new(1).await;
    let admin = c.client(1);
    let mut setup = vec![
        proposal(1, discovered("m1")),
        proposal(2, commissioned("n1", "m1")),
        proposal(3, discovered("m2")),
        proposal(4, commissioned("n2", "m2")),
        proposal(5, json!({"type": "NodeInstallRequested", "node": "n1"})),
    ];
    admin.submit(&mut setup, Duration::from_secs(10)).await.unwrap();
    let issued = admin.issue_node_token("n1").await.unwrap();
    assert!(issued.token.starts_with("sendan-node-"));
    let logged =
        admin.events(&EventFilter { kind: Some("NodeTokenIssued".into()), ..Default::default() }).await.unwrap();
    let logged = serde_json::to_string(&logged.events).unwrap();
    assert!(!logged.contains(&issued.token), "the token itself never enters the log");

    let node = Client::new(&c.addrs[&1], Some(issued.token.clone()));
    let own = vec![proposal(10, json!({"type": "NodeInstallStarted", "node": "n1"}))];
    node.submit_once(&own).await.expect("a node reports its own install");
    let refusals = [
        (json!({"type": "NodeInstallStarted", "node": "n2"}), "only submit events about its own node, not n2"),
        (json!({"type": "NodeRetired", "node": "n1"}), "may not submit this kind of event"),
        (json!({"type": "MachineDiscovered", "machine": "m9"}), "may not submit this kind of event"),
    ];
    let before = c.fleet(1).seq;
    for (i, (payload, words)) in refusals.into_iter().enumerate() {
        let (s, m) = status(node.submit_once(&[proposal(20 + i as u128, payload)]).await.unwrap_err());
        assert_eq!(s, 403, "{m}");
        assert!(m.contains("node:n1 may not submit") && m.contains(words), "{m}");
    }
    assert_eq!(c.fleet(1).seq, before, "refusals change nothing");

    assert_eq!(node.node("n1", None).await.unwrap().node.state.name(), "installing");
    // Commissioned, install requested, token issued, install started.
    assert_eq!(node.history("n1", &EventFilter::default()).await.unwrap().events.len(), 4);
    for (what, err) in [
        ("another node", node.node("n2", None).await.unwrap_err()),
        ("the fleet", node.nodes(&Default::default()).await.unwrap_err()),
        ("all events", node.events(&EventFilter::default()).await.unwrap_err()),
        ("the cluster", node.cluster().await.unwrap_err()),
    ] {
        assert_eq!(status(err).0, 403, "a node token may not read {what}");
    }

    // A new token replaces the old one.
    let second = admin.issue_node_token("n1").await.unwrap();
    assert_eq!(status(node.node("n1", None).await.unwrap_err()).0, 401);
    let node = Client::new(&c.addrs[&1], Some(second.token));
    node.node("n1", None).await.unwrap();
    // A retired node's token stops working.
    let mut retire = vec![
        proposal(30, json!({"type": "NodeFailed", "node": "n1", "reason": "replaced"})),
        proposal(31, json!({"type": "NodeRetired", "node": "n1"})),
    ];
    admin.submit(&mut retire, Duration::from_secs(10)).await.unwrap();
    assert_eq!(status(node.node("n1", None).await.unwrap_err()).0, 401);
    let (s, m) = status(admin.issue_node_token("n1").await.unwrap_err());
    assert_eq!(s, 409, "{m}");
    assert!(m.contains("node n1 is retired"), "{m}");
}

/// Property: the peer (Raft) endpoints answer only requests carrying the cluster secret: without it, with a
/// wrong one, or with the admin token instead, every one of them is 401 and nothing reaches Raft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_endpoints_need_the_cluster_secret() {
    let c = Cluster::new(1).await;
    let before = c.client(1).member().await.unwrap();
    let http = sendan_tests::http();
    for route in ["append", "vote", "snapshot", "submit", "membership", "status"] {
        let url = format!("http://{}/raft/{route}", c.addrs[&1]);
        let attempts = [
            http.post(&url),
            http.post(&url).header(sendan_raft::PEER_SECRET_HEADER, "not-the-secret"),
            http.post(&url).bearer_auth("sendan-admin-test-token"),
        ];
        for (i, req) in attempts.into_iter().enumerate() {
            let resp = req.body(vec![0u8; 16]).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "/raft/{route}, attempt {i}");
            let text = resp.text().await.unwrap();
            assert!(text.contains("peer requests need the cluster secret"), "/raft/{route}: {text}");
        }
    }
    let after = c.client(1).member().await.unwrap();
    assert_eq!((after.seq, after.last_log_index), (before.seq, before.last_log_index));
}
