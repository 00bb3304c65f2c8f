//! Cordons and drains end to end: three `sendan server` processes, four `sendan-agent node` processes, and a real
//! HTTP service with three replicas (one per node at most) and a disruption budget that keeps all three healthy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sendan_core::{Event, Payload};
use sendan_tests::bootstrap::sendan_ok;
use sendan_tests::procs::ProcCluster;
use sendan_tests::services::{agents, build_package, declaration, endpoints, wait_endpoints};
use sendan_tests::wait_until;

const PATIENCE: Duration = Duration::from_secs(90);

fn web(package: &str) -> String {
    format!(
        r#"web = {{
      package = "{package}";
      command = [ "bin/web" ];
      replicas = 3;
      pools = [ "workers" ];
      ports.http = {{ }};
      health = {{ http = {{ port = "http"; path = "/"; }}; intervalSeconds = 1; timeoutSeconds = 1; unhealthyAfter = 2; }};
      update = {{ maxParallel = 1; minHealthySeconds = 2; healthyDeadlineSeconds = 60; }};
      budget.minHealthy = 3;
    }};"#
    )
}

async fn log(admin: &sendan_api::client::Client) -> Vec<Event> {
    let f = sendan_api::client::EventFilter { limit: Some(10_000), ..Default::default() };
    admin.events(&f).await.unwrap().events
}

async fn node(admin: &sendan_api::client::Client, id: &str) -> sendan_core::wire::Node {
    admin.node(id, None).await.unwrap().node
}

/// Properties: (a) `sendan node drain` hands each instance over — the replacement is placed, becomes healthy
/// and serves for `minHealthySeconds` before the old one is asked to stop — so the published endpoints, sampled
/// throughout, never drop below three; the node is recorded drained only after its agent reported the old
/// instance stopped. (b) With nowhere to hand over to, a drain with `--deadline` stops what is left when the
/// deadline passes and says so in the stop request, and is drained once that stop is reported. (c) A cordoned
/// node keeps what it runs and takes nothing new; `sendan node uncordon` lets a drained node take work again and
/// the missing replica is placed there. (d) A reprovision of a draining node that still runs a healthy instance
/// is refused by the budget with a sentence naming the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_hand_over_before_stopping_and_deadlines_force_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let package = tokio::task::block_in_place(|| build_package(dir.path()));
    let cluster = ProcCluster::start(3, &["--agent-deadline-secs", "30"]).await;
    let admin = cluster.client(1);
    let spec = declaration(dir.path(), "web", &format!("{{ {} }}", web(&package)));
    tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["apply", spec.to_str().unwrap()]));
    let mut agents = agents(&cluster, dir.path()).await;
    for a in &mut agents {
        a.start();
    }
    let eps = wait_endpoints(&admin, "web", "three web instances serve", PATIENCE, |v| v.endpoints.len() == 3).await;
    let first = eps.endpoints[0].node.to_string();

    // (a) Drain one busy node while sampling the endpoints.
    let stop = Arc::new(AtomicBool::new(false));
    let lowest = Arc::new(AtomicUsize::new(usize::MAX));
    let sampler = {
        let (admin, stop, lowest) = (cluster.client(2), stop.clone(), lowest.clone());
        tokio::spawn(async move {
            // One sample every 50 ms: the observation's period, not a wait for a condition.
            let mut every = tokio::time::interval(Duration::from_millis(50));
            while !stop.load(Ordering::Relaxed) {
                every.tick().await;
                if let Some(v) = endpoints(&admin, "web").await {
                    lowest.fetch_min(v.endpoints.len(), Ordering::Relaxed);
                }
            }
        })
    };
    let out = tokio::task::block_in_place(|| sendan_ok(&cluster, 2, &["node", "drain", &first]));
    assert!(out.contains("`NodeDrainStarted` recorded"), "{out}");
    wait_until("the drained node is recorded drained", PATIENCE, || async {
        node(&admin, &first).await.drain.and_then(|d| d.drained)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let lowest = lowest.load(Ordering::Relaxed);
    assert!(lowest >= 3, "the endpoints dropped to {lowest} during a drain that hands over first");
    let events = log(&admin).await;
    let seq_of = |pred: &dyn Fn(&Payload) -> bool| events.iter().find(|e| pred(&e.payload)).map(|e| e.seq);
    let (old, new) = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::InstanceMigrated(m) => Some((m.replaces.to_string(), m.instance.to_string())),
            _ => None,
        })
        .expect("the drain placed a hand-over");
    let healthy = seq_of(&|p| matches!(p, Payload::InstanceHealthy(h) if h.instance.as_str() == new)).unwrap();
    let asked = seq_of(&|p| matches!(p, Payload::InstanceStopRequested(s) if s.instance.as_str() == old)).unwrap();
    let stopped = seq_of(&|p| matches!(p, Payload::InstanceStopped(s) if s.instance.as_str() == old)).unwrap();
    let drained = seq_of(&|p| matches!(p, Payload::NodeDrained(d) if d.node.as_str() == first)).unwrap();
    assert!(healthy < asked && asked < stopped && stopped < drained, "{healthy} < {asked} < {stopped} < {drained}");
    let listing = tokio::task::block_in_place(|| sendan_ok(&cluster, 3, &["nodes"]));
    assert!(listing.contains("draining (drained)"), "{listing}");
    let history = tokio::task::block_in_place(|| sendan_ok(&cluster, 3, &["events", "list", "--node", &first]));
    assert!(history.contains("InstanceMigrated") && history.contains("NodeDrained"), "{history}");

    // (b) Drain another busy node with a short deadline: nowhere to hand over to (the first node is draining,
    // every other one holds its one instance), so what is left stops when the deadline passes, and says so.
    let now = endpoints(&admin, "web").await.unwrap();
    let holders: Vec<String> = now.endpoints.iter().map(|e| e.node.to_string()).collect();
    let second = holders[0].clone();
    tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["node", "drain", &second, "--deadline", "5s"]));
    // (d) Meanwhile its instance still runs healthy, and taking the node out for good would break the budget.
    let refused =
        tokio::task::block_in_place(|| sendan_tests::bootstrap::sendan(&cluster, 1, &["node", "reprovision", &second]));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("disruption budget") && err.contains("service web"), "{err}");
    wait_until("the deadline drain is recorded drained", PATIENCE, || async {
        node(&admin, &second).await.drain.and_then(|d| d.drained)
    })
    .await;
    let events = log(&admin).await;
    assert!(
        events.iter().any(|e| matches!(&e.payload, Payload::InstanceStopRequested(s)
            if s.node.as_str() == second && s.reason.contains("deadline") && s.reason.contains("without waiting"))),
        "the forced stop says so"
    );

    // (c) Cordon a node that runs an instance: it keeps it but takes nothing new. Uncordoning the first drained
    // node lets it take the missing replica.
    let kept = holders[1].clone();
    tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["node", "cordon", &kept, "--reason", "bad DIMM"]));
    let listing = tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["nodes"]));
    assert!(listing.contains("active (cordoned)"), "{listing}");
    tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["node", "uncordon", &first]));
    let back =
        wait_endpoints(&admin, "web", "three web instances serve again", PATIENCE, |v| v.endpoints.len() == 3).await;
    let on: Vec<String> = back.endpoints.iter().map(|e| e.node.to_string()).collect();
    assert!(on.contains(&first) && on.contains(&kept), "{on:?}");
    assert_eq!(on.iter().filter(|n| **n == kept).count(), 1, "nothing new on the cordoned node");
    tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["node", "uncordon", &kept]));
    for a in &agents {
        assert!(!a.log().contains("panicked"), "{}", a.log());
    }
    sendan_tests::assert_causes(&log(&admin).await);
}
