//! Native services end to end: three `sendan server` processes, four `sendan-agent node` processes (one per
//! worker node of the Nix test fixture, each its own state directory and port range, each talking to a
//! different member so heartbeats cross from followers to the leader), and a real HTTP service built with
//! `nix-build` and declared in a Nix file applied with `sendan apply`.

use std::time::Duration;

use sendan_core::{Event, EventKind, Payload};
use sendan_tests::bootstrap::sendan_ok;
use sendan_tests::procs::ProcCluster;
use sendan_tests::services::{agents, build_package, declaration, node_instances, running, wait_endpoints};
use sendan_tests::wait_until;

const PATIENCE: Duration = Duration::from_secs(90);
/// The deadline after which a silent agent is lost (seconds).
const DEADLINE: &str = "3";

fn web(package: &str, replicas: u32) -> String {
    format!(
        r#"web = {{
      package = "{package}";
      command = [ "bin/web" ];
      replicas = {replicas};
      pools = [ "workers" ];
      ports.http = {{ }};
      health = {{ http = {{ port = "http"; path = "/"; }}; intervalSeconds = 1; timeoutSeconds = 1; unhealthyAfter = 2; }};
      reschedule = {{ attempts = 3; delaySeconds = 1; maxDelaySeconds = 2; }};
    }};"#
    )
}

/// A service whose health check always fails (`/missing` is a 404): restarted once in place, then failed and
/// rescheduled once elsewhere.
fn sick(package: &str) -> String {
    format!(
        r#"sick = {{
      package = "{package}";
      command = [ "bin/web" ];
      pools = [ "workers" ];
      ports.http = {{ }};
      health = {{ http = {{ port = "http"; path = "/missing"; }}; intervalSeconds = 1; timeoutSeconds = 1; unhealthyAfter = 2; }};
      restart = {{ attempts = 1; intervalSeconds = 300; delaySeconds = 0; }};
      reschedule = {{ attempts = 1; delaySeconds = 1; maxDelaySeconds = 1; }};
    }};"#
    )
}

async fn log(admin: &sendan_api::client::Client) -> Vec<Event> {
    let f = sendan_api::client::EventFilter { limit: Some(10_000), ..Default::default() };
    admin.events(&f).await.unwrap().events
}

/// Properties: (a) declared instances start, become healthy and are published, each serving HTTP; (b) after
/// `kill -9` of a node agent and its instances, the leader declares the agent lost once the deadline passes and
/// the instances run elsewhere, the endpoints following; the restarted agent stops what moved away and starts
/// nothing, while restarting an agent whose instances still run adopts them (same processes, no second copy);
/// (c) an instance failing its health check is restarted by its restart policy and, past it, rescheduled by its
/// reschedule policy; (d) scaling replicas up and down through `sendan apply` places and stops instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_run_fail_over_restart_and_scale() {
    let dir = tempfile::tempdir().unwrap();
    let package = tokio::task::block_in_place(|| build_package(dir.path()));
    let cluster = ProcCluster::start(3, &["--agent-deadline-secs", DEADLINE]).await;
    let admin = cluster.client(1);
    let spec2 = declaration(dir.path(), "two", &format!("{{ {} }}", web(&package, 2)));
    tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["apply", spec2.to_str().unwrap()]));
    let mut agents = agents(&cluster, dir.path()).await;
    for a in &mut agents {
        a.start();
    }

    // (a) Two healthy instances, on two nodes, serving.
    let eps =
        wait_endpoints(&admin, "web", "two web instances are healthy and serve", PATIENCE, |v| v.endpoints.len() == 2)
            .await;
    assert_ne!(eps.endpoints[0].node, eps.endpoints[1].node, "maxPerNode 1");
    let status = tokio::task::block_in_place(|| sendan_ok(&cluster, 2, &["service", "status", "web"]));
    assert!(status.contains("2 of 2 replicas live, 2 healthy"), "{status}");

    // (b) Kill one node's agent and its instances: after the deadline they run elsewhere.
    let victim_node = eps.endpoints[0].node.to_string();
    let victim = agents.iter_mut().find(|a| a.node == victim_node).unwrap();
    let pids: Vec<u32> = victim.recorded().into_values().collect();
    assert_eq!(pids.len(), 1, "{:?}", victim.recorded());
    victim.kill9_with_instances();
    let moved = wait_endpoints(&admin, "web", "web runs elsewhere after the node is lost", PATIENCE, |v| {
        v.endpoints.len() == 2 && v.endpoints.iter().all(|e| e.node.as_str() != victim_node)
    })
    .await;
    let events = log(&admin).await;
    assert!(events.iter().any(|e| matches!(&e.payload, Payload::NodeAgentLost(l) if l.node.as_str() == victim_node)));
    let replaced = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::InstanceRescheduled(r) if r.lost => Some(r.replaces.to_string()),
            _ => None,
        })
        .expect("a lost instance was rescheduled");
    // The restarted agent reports the moved instance stopped and starts nothing.
    let victim = agents.iter_mut().find(|a| a.node == victim_node).unwrap();
    victim.start();
    wait_until("the returned agent stopped what moved away", PATIENCE, || async {
        let v = node_instances(&admin, &victim_node).await?;
        (v.agent_running == Some(true) && v.instances.is_empty()).then_some(())
    })
    .await;
    let events = log(&admin).await;
    assert!(
        events.iter().any(|e| matches!(&e.payload, Payload::InstanceStopped(s) if s.instance.as_str() == replaced))
    );
    assert!(events.iter().any(|e| e.kind() == EventKind::NodeAgentReturned || e.kind() == EventKind::NodeAgentStarted));
    // Restarting an agent whose instance still runs adopts it: same process, no second start.
    let keeper_node = moved.endpoints[0].node.to_string();
    let keeper = agents.iter_mut().find(|a| a.node == keeper_node).unwrap();
    let before = keeper.recorded();
    let starts = |events: &[Event]| events.iter().filter(|e| e.kind() == EventKind::InstanceStarted).count();
    let started_before = starts(&log(&admin).await);
    keeper.kill9();
    keeper.start();
    wait_until("the restarted agent announced itself", PATIENCE, || async {
        let events = log(&admin).await;
        let announced = events
            .iter()
            .filter(|e| matches!(&e.payload, Payload::NodeAgentStarted(s) if s.node.as_str() == keeper_node))
            .count();
        (announced >= 2).then_some(())
    })
    .await;
    wait_endpoints(&admin, "web", "web still serves after an agent restart", PATIENCE, |v| v.endpoints.len() == 2)
        .await;
    let keeper = agents.iter().find(|a| a.node == keeper_node).unwrap();
    assert_eq!(keeper.recorded(), before, "the restarted agent adopted its instance");
    assert!(before.values().all(|p| running(*p)), "the adopted instance kept running");
    assert_eq!(starts(&log(&admin).await), started_before, "no second copy was started");

    // (c) A failing health check: restarted in place once, then failed and rescheduled once.
    let spec_sick = declaration(dir.path(), "sick", &format!("{{ {} {} }}", web(&package, 2), sick(&package)));
    tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["apply", spec_sick.to_str().unwrap()]));
    wait_until("the sick instance was restarted, failed and rescheduled", PATIENCE, || async {
        let events = log(&admin).await;
        let of = |id: &str| -> Vec<&Payload> {
            events
                .iter()
                .map(|e| &e.payload)
                .filter(|p| match p {
                    Payload::InstanceUnhealthy(x) => x.instance.as_str() == id,
                    Payload::InstanceExited(x) => x.instance.as_str() == id,
                    Payload::InstanceRescheduled(x) => x.replaces.as_str() == id,
                    _ => false,
                })
                .collect()
        };
        let first = of("sick.1");
        let unhealthy = first.iter().any(|p| matches!(p, Payload::InstanceUnhealthy(_)));
        let restarted = first.iter().any(|p| matches!(p, Payload::InstanceExited(x) if x.restarting));
        let failed = first.iter().any(|p| matches!(p, Payload::InstanceExited(x) if !x.restarting));
        let rescheduled =
            first.iter().any(|p| matches!(p, Payload::InstanceRescheduled(r) if !r.lost && r.attempt == 1));
        (unhealthy && restarted && failed && rescheduled).then_some(())
    })
    .await;
    let status = tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["service", "status", "sick"]));
    assert!(status.contains("sick.2"), "{status}");

    // (d) Scale up to four (one per node), then down to one.
    let spec4 = declaration(dir.path(), "four", &format!("{{ {} }}", web(&package, 4)));
    tokio::task::block_in_place(|| sendan_ok(&cluster, 3, &["apply", spec4.to_str().unwrap()]));
    let four = wait_endpoints(&admin, "web", "four web instances serve", PATIENCE, |v| v.endpoints.len() == 4).await;
    let nodes: std::collections::BTreeSet<_> = four.endpoints.iter().map(|e| e.node.clone()).collect();
    assert_eq!(nodes.len(), 4);
    let spec1 = declaration(dir.path(), "one", &format!("{{ {} }}", web(&package, 1)));
    tokio::task::block_in_place(|| sendan_ok(&cluster, 1, &["apply", spec1.to_str().unwrap()]));
    wait_endpoints(&admin, "web", "one web instance serves", PATIENCE, |v| v.endpoints.len() == 1).await;
    wait_until("the surplus instances stopped", PATIENCE, || async {
        let events = log(&admin).await;
        let stops = events
            .iter()
            .filter(|e| matches!(&e.payload, Payload::InstanceStopped(s) if s.instance.as_str().starts_with("web.")))
            .count();
        (stops >= 4).then_some(())
    })
    .await;
    for a in &agents {
        assert!(!a.log().contains("panicked"), "{}", a.log());
    }
    // The sick service was dropped from the spec: its instances are stopped too.
    let events = log(&admin).await;
    sendan_tests::assert_causes(&events);
}

/// Property: killing the leader while the scheduler places a service's replicas places nothing twice — every
/// instance id is placed once, the service ends with exactly its replicas live, and no node holds more than
/// `maxPerNode` of them — because decisions carry ids derived from the instance and `check` refuses a replica
/// past the count or a node past its limit, whichever leader proposes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_during_placement_places_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = ProcCluster::start(3, &["--agent-deadline-secs", "600"]).await;
    let admin = cluster.client(1);
    let tokens = sendan_tests::nixfake::enroll(&admin, &sendan_tests::services::WORKERS).await;
    // The agents announce themselves (no processes: nothing is run, only placed).
    for (node, token) in sendan_tests::services::WORKERS.iter().zip(&tokens) {
        let agent = sendan_api::client::Client::new(&cluster.addrs[&1], Some(token.clone()));
        let mut p = vec![sendan_tests::proposal(
            u128::from(node.as_bytes()[node.len() - 1]),
            serde_json::json!({"type": "NodeAgentStarted", "node": node, "address": "127.0.0.1"}),
        )];
        agent.submit(&mut p, PATIENCE).await.unwrap();
    }
    let services: String = (0..8)
        .map(|k| {
            format!(
                r#"s{k} = {{ package = "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-web-1.0"; replicas = 12; pools = [ "workers" ];
                     constraints.maxPerNode = 3; resources = {{ cpu = 0; memory = 0; }}; }};"#
            )
        })
        .collect();
    let spec = declaration(dir.path(), "many", &format!("{{ {services} }}"));
    let leader = cluster.leader().await;
    let other = (1..=3).find(|m| *m != leader).unwrap();
    tokio::task::block_in_place(|| sendan_ok(&cluster, leader, &["apply", spec.to_str().unwrap()]));
    cluster.kill9(leader);
    let admin = cluster.client(other);
    wait_until("every replica is placed after the leader's death", PATIENCE, || async {
        let v: sendan_core::wire::ServicesView = admin.get("/v1/services", &()).await.ok()?;
        // The fixture's own `web` (2 replicas) is declared too.
        let ours: Vec<_> = v.services.iter().filter(|s| s.name != "web").collect();
        (ours.len() == 8 && ours.iter().all(|s| s.live == 12)).then_some(())
    })
    .await;
    cluster.restart(leader);
    let events = log(&admin).await;
    let mut placed = std::collections::BTreeMap::new();
    let mut per_node = std::collections::BTreeMap::new();
    for e in &events {
        if let Payload::InstancePlaced(p) = &e.payload
            && p.service != "web"
        {
            *placed.entry(p.instance.to_string()).or_insert(0) += 1;
            *per_node.entry((p.service.clone(), p.node.to_string())).or_insert(0) += 1;
        }
    }
    assert_eq!(placed.len(), 96, "8 services × 12 replicas");
    assert!(placed.values().all(|n| *n == 1), "an instance was placed twice: {placed:?}");
    assert!(per_node.values().all(|n| *n <= 3), "maxPerNode broken: {per_node:?}");
    sendan_tests::assert_causes(&events);
}
