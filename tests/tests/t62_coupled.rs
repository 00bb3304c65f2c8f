//! Host rollouts and services together, end to end: three `sendan server` processes, and four nodes that each run
//! both a real `sendan-agent nix` (fake NixOS systems from a signed binary cache, as in `t35`) and a real
//! `sendan-agent node` serving a real HTTP service with three replicas and `budget.maxUnavailable = 1`.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sendan_api::client::Client;
use sendan_core::rollouts::planner::MemberPhase;
use sendan_core::spec::ClusterSpec;
use sendan_core::systems::AttemptPhase as Phase;
use sendan_core::wire::ServiceView;
use sendan_tests::nixfake::{Behaviour, Fake, Node, Signing, Systems, enroll, spec, system_view};
use sendan_tests::procs::ProcCluster;
use sendan_tests::services::{self, Agent, build_package, endpoints, wait_endpoints};
use sendan_tests::{binary, wait_until};

const POOL: &str = "edge";
const NODES: [&str; 4] = ["c-1", "c-2", "c-3", "c-4"];
const PATIENCE: Duration = Duration::from_secs(150);

fn sendan(cluster: &ProcCluster, args: &[&str]) -> String {
    let out = Command::new(binary("sendan"))
        .args(["--server", &format!("http://{}", cluster.addrs[&1])])
        .arg("--token-file")
        .arg(cluster.dir.path().join("admin.token"))
        .args(args)
        .output()
        .expect("sendan runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "sendan {args:?} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The pool's spec, with service `api` (the web package) declared on it; `health_path` is what its health
/// check asks for (a path the package does not serve makes a release that never becomes healthy).
fn declaration(systems: &Systems, package: &str, health_path: &str) -> ClusterSpec {
    let nodes: Vec<(&str, &str)> = NODES.iter().map(|n| (*n, systems.path("old"))).collect();
    let base = spec(POOL, &nodes, &systems.cache.url, &systems.public_key);
    let mut doc: serde_json::Value = serde_json::from_str(&base.canonical_json()).unwrap();
    doc["services"]["api"] = serde_json::json!({
        "package": package,
        "command": ["bin/web"],
        "replicas": 3,
        "pools": [POOL],
        "ports": { "http": {} },
        "health": { "http": { "port": "http", "path": health_path }, "intervalSeconds": 1, "timeoutSeconds": 1, "unhealthyAfter": 2 },
        "update": { "maxParallel": 1, "minHealthySeconds": 2, "healthyDeadlineSeconds": 15, "canary": 1 },
        "budget": { "maxUnavailable": 1 },
    });
    let spec = ClusterSpec::from_json(&doc.to_string()).expect("the coupled spec parses");
    spec.validate().expect("the coupled spec is valid");
    spec
}

async fn service(admin: &Client, name: &str) -> ServiceView {
    admin.get(&format!("/v1/services/{name}"), &()).await.expect("the service reads")
}

/// Samples the published endpoints of `api` every 50 ms until stopped; the fewest seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    lowest: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(admin: Client) -> Sampler {
        let (stop, lowest) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(usize::MAX)));
        let task = {
            let (stop, lowest) = (stop.clone(), lowest.clone());
            tokio::spawn(async move {
                // One sample every 50 ms: the observation's period, not a wait for a condition.
                let mut every = tokio::time::interval(Duration::from_millis(50));
                while !stop.load(Ordering::Relaxed) {
                    every.tick().await;
                    if let Some(v) = endpoints(&admin, "api").await {
                        lowest.fetch_min(v.endpoints.len(), Ordering::Relaxed);
                    }
                }
            })
        };
        Sampler { stop, lowest, task }
    }

    async fn lowest(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.lowest.load(Ordering::Relaxed)
    }
}

/// Properties: (a) a pool rollout whose action needs a reboot (`boot`) over four nodes that each run an instance
/// of a 3-replica service with `maxUnavailable = 1` drains each member first — its instance handed over to a
/// healthy replacement before it stops — so the published endpoints, sampled throughout, never drop below two;
/// every member boots the new system, and every node is `active` and uncordoned at the end. (b) A drain with a
/// deadline and nowhere to hand over to stops what is left when the deadline passes, and the node is drained.
/// (c) A service release whose canary never becomes healthy fails its deployment past
/// `healthyDeadlineSeconds`, is reverted to the stable version, and the service ends with three healthy
/// instances of it — the endpoints never below two throughout. (d) A `switch` rollout whose
/// `switch-to-configuration` exits 100 (the new system needs a reboot) drains each member after its switch and
/// before its agent reboots it, the next wave waiting for the reboot: every node is drained before it reboots,
/// boots the new system, ends uncordoned, and the endpoints never drop below two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_rollout_drains_and_service_updates_keep_the_service_within_its_budget() {
    use Signing::Trusted;
    let dir = tempfile::tempdir().unwrap();
    let package = tokio::task::block_in_place(|| build_package(dir.path()));
    let systems = tokio::task::block_in_place(|| {
        let wants_reboot = Fake::with("next", Behaviour::Exit(100));
        Systems::build(&[(Fake::ok("old"), Trusted), (Fake::ok("new"), Trusted), (wants_reboot, Trusted)], &["old"])
    });
    let cluster = ProcCluster::start(3, &["--agent-deadline-secs", "30"]).await;
    let admin = cluster.client(1);
    let (_, applied) = sendan_api::cli::spec::apply(&admin, &declaration(&systems, &package, "/")).await.unwrap();
    let applied = applied.expect("the spec is new");

    let tokens = enroll(&admin, &NODES).await;
    let mut hosts: Vec<Node> = Vec::new();
    let mut runners: Vec<Agent> = Vec::new();
    for (i, (id, token)) in NODES.iter().zip(&tokens).enumerate() {
        let server = cluster.addrs[&(i as u64 % 3 + 1)].clone();
        let mut host = Node::new(dir.path(), id, systems.path("old"), &server, token);
        host.start_agent();
        hosts.push(host);
        let mut runner = services::agent(&cluster, dir.path(), id, token, i);
        runner.start();
        runners.push(runner);
    }
    for host in &hosts {
        wait_until(&format!("{} acknowledges the spec's system", host.id), PATIENCE, || async {
            let a = system_view(&admin, &host.id).await?.system.attempt?;
            (a.decision == applied && a.phase == Phase::Confirmed).then_some(())
        })
        .await;
    }
    wait_endpoints(&admin, "api", "three api instances serve", PATIENCE, |v| v.endpoints.len() == 3).await;
    let v1 = service(&admin, "api").await.instances[0].version;

    // (a) A reboot rollout of the pool, with a budget of two members at once; the service's budget says one.
    let sampler = Sampler::start(cluster.client(2));
    let new = systems.path("new").to_owned();
    let args = ["rollout", "start", POOL, new.as_str(), "--max-unavailable", "2", "--action", "boot", "--wait"];
    let out = tokio::task::block_in_place(|| sendan(&cluster, &args));
    assert!(out.contains("completed") && out.contains("4/4 confirmed"), "{out}");
    wait_endpoints(&admin, "api", "three api instances serve again", PATIENCE, |v| v.endpoints.len() == 3).await;
    let lowest = sampler.lowest().await;
    assert!(lowest >= 2, "the rollout took api down to {lowest} healthy instances; its budget keeps 2");
    let status = tokio::task::block_in_place(|| sendan(&cluster, &["rollout", "status", POOL]));
    eprintln!("$ sendan rollout status {POOL}\n{status}");
    for host in &hosts {
        assert_eq!(host.switches(), [(new.clone(), "boot".to_owned())], "{} staged the new system", host.id);
        assert_eq!(host.reboots(), [(new.clone(), new.clone())], "{} was rebooted into it, once", host.id);
        assert_eq!(host.link("booted-system").as_deref(), Some(new.as_str()), "{} booted it", host.id);
        let n = admin.node(&host.id, None).await.unwrap().node;
        assert_eq!(n.state, sendan_core::NodeState::Active, "{}", host.id);
        assert!(n.cordoned.is_none() && n.drain.is_none(), "{} is uncordoned at the end: {n:?}", host.id);
    }
    let events = sendan_tests::all_events(&admin).await;
    let drains = events.iter().filter(|e| e.kind() == sendan_core::EventKind::NodeDrained).count();
    assert_eq!(drains, 4, "every member was drained before its wave");

    // (b) A drain with a deadline and nowhere to hand over to: the spare node is cordoned.
    let placed = service(&admin, "api").await;
    let busy: Vec<String> = placed.instances.iter().map(|i| i.node.to_string()).collect();
    let spare = NODES.iter().find(|n| !busy.contains(&n.to_string())).unwrap().to_string();
    let target = busy[0].clone();
    tokio::task::block_in_place(|| sendan(&cluster, &["node", "cordon", &spare, "--reason", "held back"]));
    tokio::task::block_in_place(|| sendan(&cluster, &["node", "drain", &target, "--deadline", "3s"]));
    wait_until(&format!("{target} is drained past its deadline"), PATIENCE, || async {
        let n = admin.node(&target, None).await.ok()?.node;
        n.drain.filter(|d| d.drained.is_some()).map(|_| ())
    })
    .await;
    let events = sendan_tests::all_events(&admin).await;
    let forced = events.iter().any(|e| match &e.payload {
        sendan_core::Payload::InstanceStopRequested(s) => {
            s.node.as_str() == target && s.reason.contains("drain deadline") && s.reason.contains("passed")
        }
        _ => false,
    });
    assert!(forced, "the stop past the deadline says so");
    tokio::task::block_in_place(|| sendan(&cluster, &["node", "uncordon", &target]));
    tokio::task::block_in_place(|| sendan(&cluster, &["node", "uncordon", &spare]));
    wait_endpoints(&admin, "api", "three api instances serve after the drain", PATIENCE, |v| v.endpoints.len() == 3)
        .await;

    // (c) A release whose canary never becomes healthy.
    let sampler = Sampler::start(cluster.client(3));
    let (_, bad) = sendan_api::cli::spec::apply(&admin, &declaration(&systems, &package, "/nope")).await.unwrap();
    assert!(bad.is_some());
    let reverted = wait_until("the bad release is reverted and the revert completes", PATIENCE, || async {
        let d = service(&admin, "api").await.deployment?;
        (d.revert && d.status == "completed").then_some(d)
    })
    .await;
    assert_eq!(reverted.version, v1, "the revert goes back to the stable version");
    wait_endpoints(&admin, "api", "three api instances of the stable version serve", PATIENCE, |v| {
        v.endpoints.len() == 3
    })
    .await;
    let lowest = sampler.lowest().await;
    assert!(lowest >= 2, "the failed release took api down to {lowest} healthy instances; its budget keeps 2");
    let events = sendan_tests::all_events(&admin).await;
    let failed = events.iter().find_map(|e| match &e.payload {
        sendan_core::Payload::DeploymentEnded(d) if d.outcome == sendan_core::event::DeploymentOutcome::Failed => {
            Some(d.reason.clone())
        }
        _ => None,
    });
    let failed = failed.expect("the deployment failed");
    assert!(failed.contains("was not healthy within") || failed.contains("failed"), "{failed}");
    let v = service(&admin, "api").await;
    assert!(v.instances.iter().filter(|i| i.stopping.is_none()).all(|i| i.version == v1), "{:?}", v.instances);
    let status = tokio::task::block_in_place(|| sendan(&cluster, &["service", "status", "api"]));
    eprintln!("$ sendan service status api\n{status}");

    // (d) A `switch` rollout whose switches exit 100: each member is drained before its agent reboots it.
    let sampler = Sampler::start(cluster.client(2));
    let next = systems.path("next").to_owned();
    let args = ["rollout", "start", POOL, next.as_str(), "--max-unavailable", "2"];
    tokio::task::block_in_place(|| sendan(&cluster, &args));
    let rollouts: sendan_core::wire::RolloutsView = admin.get("/v1/rollouts", &()).await.unwrap();
    let id = rollouts.rollouts[0].id;
    // A confirmed member of the first wave waits for its reboot, and the rollout says so.
    wait_until("a member of the first wave waits for its reboot", PATIENCE, || async {
        let v: sendan_core::wire::RolloutView = admin.get(&format!("/v1/rollouts/{id}"), &()).await.ok()?;
        let waiting = v.waiting.unwrap_or_default();
        let rebooting = v.waves.iter().flat_map(|w| &w.members).any(|m| m.phase == MemberPhase::Rebooting);
        (rebooting && waiting.contains("waiting for reboots")).then_some(())
    })
    .await;
    let status = tokio::task::block_in_place(|| sendan(&cluster, &["rollout", "status", POOL]));
    eprintln!("$ sendan rollout status {POOL}\n{status}");
    assert!(status.contains("rebooting"), "{status}");
    wait_until("the exit-100 rollout completes", PATIENCE, || async {
        let v: sendan_core::wire::RolloutView = admin.get(&format!("/v1/rollouts/{id}"), &()).await.ok()?;
        (v.state == sendan_core::rollouts::RolloutState::Completed && v.counts.confirmed == 4).then_some(())
    })
    .await;
    wait_endpoints(&admin, "api", "three api instances serve after the reboots", PATIENCE, |v| v.endpoints.len() == 3)
        .await;
    let lowest = sampler.lowest().await;
    assert!(lowest >= 2, "the reboots took api down to {lowest} healthy instances; its budget keeps 2");
    let events = sendan_tests::all_events(&admin).await;
    for host in &hosts {
        assert_eq!(host.reboots().last(), Some(&(next.clone(), next.clone())), "{} rebooted into next", host.id);
        let drained = events.iter().rev().find_map(|e| match &e.payload {
            sendan_core::Payload::NodeDrained(d) if d.node.as_str() == host.id => Some(e.seq),
            _ => None,
        });
        let booted = events.iter().find_map(|e| match &e.payload {
            sendan_core::Payload::SystemReported(r)
                if r.node.as_str() == host.id && r.booted.as_deref() == Some(next.as_str()) =>
            {
                Some(e.seq)
            }
            _ => None,
        });
        let (drained, booted) = (drained.expect("drained"), booted.expect("booted next"));
        assert!(drained < booted, "{} was drained (seq {drained}) before it rebooted (seq {booted})", host.id);
        let n = admin.node(&host.id, None).await.unwrap().node;
        assert!(n.cordoned.is_none() && n.drain.is_none(), "{} is uncordoned at the end: {n:?}", host.id);
    }
    let status = tokio::task::block_in_place(|| sendan(&cluster, &["rollout", "status", POOL]));
    eprintln!("$ sendan rollout status {POOL}\n{status}");
    drop(runners);
    drop(hosts);
}
