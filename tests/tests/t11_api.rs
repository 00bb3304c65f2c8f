//! The HTTP API's contract on a single member: status codes and error bodies for bad input, idempotency,
//! rejections that change nothing, paged and filtered audit queries, time travel, the watch stream,
//! health and metrics.

use std::time::Duration;

use futures_util::StreamExt;
use sendan_api::client::{ClientError, EventFilter, NodesQuery};
use sendan_api::config::ConfigFile;
use sendan_core::wire::ErrorBody;
use sendan_tests::inproc::{Cluster, test_options};
use sendan_tests::{commissioned, discovered, proposal};
use serde_json::json;

const TOKEN: &str = "sendan-admin-test-token";

async fn single() -> Cluster {
    Cluster::with_options(1, ConfigFile { max_body_bytes: Some(64 * 1024), ..test_options() }).await
}

async fn post_raw(c: &Cluster, body: impl Into<reqwest::Body>, token: Option<&str>) -> (u16, ErrorBody) {
    let mut req = sendan_tests::http().post(format!("http://{}/v1/events", c.addrs[&1])).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is JSON ({e}): {text}")))
}

/// Every refusal is a JSON error with a code and a sentence, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let c = single().await;
    let cases: Vec<(String, Option<&str>, u16, &str, &str)> = vec![
        ("{".into(), Some(TOKEN), 400, "bad_event", "not valid JSON"),
        (
            r#"{"type":"NodeRetired","node":"n1","colour":"red"}"#.into(),
            Some(TOKEN),
            400,
            "bad_event",
            "unknown field `colour`",
        ),
        (
            r#"[{"type":"MachineDiscovered","machine":"m1"},{"type":"Nope"}]"#.into(),
            Some(TOKEN),
            400,
            "bad_event",
            "event 1: unknown variant `Nope`",
        ),
        (r#"{"type":"MachineDiscovered","machine":"m1"}"#.into(), None, 401, "unauthorized", "needs a bearer token"),
        (r#"{"type":"MachineDiscovered","machine":"m1"}"#.into(), Some("wrong"), 401, "unauthorized", "not valid"),
        (
            format!(r#"{{"type":"MachineDiscovered","machine":"m1","comment":"{}"}}"#, "x".repeat(70_000)),
            Some(TOKEN),
            413,
            "payload_too_large",
            "split the batch",
        ),
    ];
    for (body, token, status, code, words) in cases {
        let (s, e) = post_raw(&c, body.clone(), token).await;
        assert_eq!((s, e.error.code.as_str()), (status, code), "{}", &body[..body.len().min(80)]);
        assert!(e.error.message.contains(words), "{:?} should say {words:?}", e.error.message);
    }
    assert_eq!(c.fleet(1).seq, 0, "nothing was applied");
}

/// An illegal transition is a 409 naming the node's state and the allowed events; the batch it was in
/// is not applied at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_illegal_transition_is_a_409_that_changes_nothing() {
    let c = single().await;
    let mut setup = vec![proposal(1, discovered("m1")), proposal(2, commissioned("n1", "m1"))];
    c.client(1).submit(&mut setup, Duration::from_secs(10)).await.unwrap();
    let batch = vec![
        proposal(3, json!({"type": "NodeInstallRequested", "node": "n1"})),
        proposal(4, json!({"type": "NodeDrainRequested", "node": "n1"})),
    ];
    let err = c.client(1).submit_once(&batch).await.unwrap_err();
    let ClientError::Api { status, code, message, index } = err else { panic!("{err}") };
    assert_eq!((status, code.as_str(), index), (409, "illegal_transition", Some(1)));
    assert_eq!(
        message,
        "node n1 is `install-pending`; `NodeDrainRequested` needs `active`; allowed now: `NodeInstallStarted`, \
         `NodeInstallFailed`, `NodeRescueRequested`, `NodeFailed`, `NodeRetired`, `NodeRebound`"
    );
    assert_eq!(c.fleet(1).seq, 2, "the legal first half of the batch was not applied either");
    assert_eq!(c.client(1).node("n1", None).await.unwrap().node.state.name(), "commissioned");
}

/// Re-submitting an applied id answers with the original seq and never writes a second copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmitting_an_event_id_returns_the_original_seq() {
    let c = single().await;
    let batch = vec![proposal(7, discovered("m1"))];
    let first = c.client(1).submit_once(&batch).await.unwrap();
    let again = c.client(1).submit_once(&batch).await.unwrap();
    assert_eq!((again.events[0].seq, again.events[0].hash), (first.events[0].seq, first.events[0].hash));
    assert!(!first.events[0].duplicate && again.events[0].duplicate);
    // A batch mixing an applied id and a new one applies only the new one.
    let mixed = vec![proposal(7, discovered("m1")), proposal(8, discovered("m2"))];
    let r = c.client(1).submit_once(&mixed).await.unwrap();
    assert_eq!(r.events.iter().map(|e| (e.seq, e.duplicate)).collect::<Vec<_>>(), vec![(1, true), (2, false)]);
    assert_eq!(c.fleet(1).seq, 2);
}

/// Audit queries page, filter by node, type and time, and travel in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_queries_filter_page_and_travel_in_time() {
    let c = single().await;
    let client = c.client(1);
    for i in 0..10u128 {
        let mut b = vec![
            proposal(i * 3 + 1, discovered(&format!("m{i}"))),
            proposal(i * 3 + 2, commissioned(&format!("n{i}"), &format!("m{i}"))),
            proposal(i * 3 + 3, json!({"type": "NodeInstallRequested", "node": format!("n{i}")})),
        ];
        client.submit(&mut b, Duration::from_secs(10)).await.unwrap();
    }
    let page = client.events(&EventFilter { limit: Some(4), ..Default::default() }).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(page.next, Some(4));
    let next = client.events(&EventFilter { after: page.next, limit: Some(4), ..Default::default() }).await.unwrap();
    assert_eq!(next.events[0].seq, 5);
    let n3 = client.history("n3", &EventFilter::default()).await.unwrap();
    assert_eq!(n3.events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![11, 12]);
    let installs = client
        .events(&EventFilter { kind: Some("NodeInstallRequested".into()), limit: Some(100), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(installs.events.len(), 10);
    let t = installs.events[4].time;
    let since = client
        .events(&EventFilter { since: Some(t.to_rfc3339()), limit: Some(100), ..Default::default() })
        .await
        .unwrap();
    assert!(since.events.iter().all(|e| e.time >= t) && since.events.first().unwrap().time == t);
    let then = client.node("n0", Some(2)).await.unwrap();
    assert_eq!((then.seq, then.node.state.name()), (2, "commissioned"));
    assert_eq!(client.node("n0", None).await.unwrap().node.state.name(), "install-pending");
    let err = client.node("n9", Some(3)).await.unwrap_err().to_string();
    assert!(err.contains("node n9 does not exist at seq 3"), "{err}");
    let err = client.nodes(&NodesQuery { at: Some(999), ..Default::default() }).await.unwrap_err().to_string();
    assert!(err.contains("has not been applied on this member yet"), "{err}");
    for bad in ["limit=0", "type=Bogus", "since=yesterday", "colour=red", "node=a%20b"] {
        let s = sendan_tests::http()
            .get(format!("http://{}/v1/events?{bad}", c.addrs[&1]))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(s.status().as_u16(), 400, "{bad}");
    }
}

/// The watch stream replays from a cursor, then delivers new events as they are committed, in order and
/// without gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_then_follows() {
    let c = single().await;
    let client = c.client(1);
    let mut b: Vec<_> = (0..5u128).map(|i| proposal(i + 1, discovered(&format!("m{i}")))).collect();
    client.submit(&mut b, Duration::from_secs(10)).await.unwrap();
    let mut stream = Box::pin(client.watch(2, None, None).await.unwrap());
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(stream.next().await.unwrap().unwrap().seq);
    }
    assert_eq!(seqs, vec![3, 4, 5]);
    let mut later: Vec<_> = (0..3u128).map(|i| proposal(100 + i, discovered(&format!("late{i}")))).collect();
    client.submit(&mut later, Duration::from_secs(10)).await.unwrap();
    for want in 6..=8 {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(e.seq, want);
    }
    // Filtered: only the node's events.
    let mut b = vec![proposal(200, commissioned("n1", "m1")), proposal(201, discovered("m9"))];
    client.submit(&mut b, Duration::from_secs(10)).await.unwrap();
    let mut only = Box::pin(client.watch(0, Some("n1"), None).await.unwrap());
    assert_eq!(only.next().await.unwrap().unwrap().seq, 9);
}

/// A watch resumes from `Last-Event-ID` (what an SSE client sends when it reconnects), filters by type, and
/// refuses a cursor past the end of the log with an explicit error instead of silently skipping the events
/// that will later take those seqs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_filters_and_refuses_a_cursor_past_the_head() {
    let c = single().await;
    let client = c.client(1);
    let mut b = vec![
        proposal(1, discovered("m1")),
        proposal(2, commissioned("n1", "m1")),
        proposal(3, discovered("m2")),
        proposal(4, discovered("m3")),
    ];
    client.submit(&mut b, Duration::from_secs(10)).await.unwrap();

    let resp = sendan_tests::http()
        .get(format!("http://{}/v1/events/watch", c.addrs[&1]))
        .bearer_auth(TOKEN)
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = Box::pin(resp.bytes_stream());
    let mut text = String::new();
    while !text.contains("id: 4\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let ids: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
    assert_eq!(ids, ["3", "4"], "resumed right after the last event the client saw:\n{text}");

    let mut only = Box::pin(client.watch(0, None, Some("NodeCommissioned")).await.unwrap());
    assert_eq!(only.next().await.unwrap().unwrap().seq, 2);

    match client.watch(100, None, None).await {
        Err(ClientError::Api { status, code, message, .. }) => {
            assert_eq!((status, code.as_str()), (409, "cursor_past_head"));
            assert!(
                message.contains("cursor 100 is past the end of the log") && message.contains("seq 4"),
                "{message}"
            );
        }
        Err(other) => panic!("expected a 409, got {other}"),
        Ok(_) => panic!("a cursor past the head must be refused"),
    }
    // A cursor this member reaches within the grace period is served: the watch waits for it.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move {
            let mut s = Box::pin(client.watch(5, None, None).await.unwrap());
            s.next().await.unwrap().unwrap().seq
        }
    });
    let mut later = vec![proposal(5, discovered("m4")), proposal(6, discovered("m5"))];
    client.submit(&mut later, Duration::from_secs(10)).await.unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap(), 6);
}

/// Health, readiness and Prometheus metrics; unknown endpoints are JSON 404s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_404() {
    let c = single().await;
    let base = format!("http://{}", c.addrs[&1]);
    let http = sendan_tests::http();
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().text().await.unwrap(), "ok\n");
    assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status().as_u16(), 200);
    let mut b = vec![proposal(1, discovered("m1"))];
    c.client(1).submit(&mut b, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        http.get(format!("{base}/metrics")).send().await.unwrap().status().as_u16(),
        401,
        "metrics need a token"
    );
    let text = http.get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
    for want in [
        "sendan_log_seq 1",
        "sendan_raft_is_leader 1",
        "sendan_events_accepted_total 1",
        "sendan_submit_seconds_count 1",
    ] {
        assert!(text.contains(want), "metrics lack {want:?}:\n{text}");
    }
    let r = http.get(format!("{base}/v2/nope")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let e: ErrorBody = r.json().await.unwrap();
    assert!(e.error.message.contains("there is no endpoint GET /v2/nope"));
}
