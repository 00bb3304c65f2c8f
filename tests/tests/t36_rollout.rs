//! Pool rollouts end to end: five real `sendan-agent nix` processes against a three-member cluster of real
//! `sendan server` processes, real Nix and fake NixOS systems; the rollout controller runs on the leader and the
//! operator drives it with the real `sendan` CLI.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use sendan_api::client::Client;
use sendan_core::rollouts::RolloutState;
use sendan_core::rollouts::view::RolloutView;
use sendan_core::systems::AttemptPhase as Phase;
use sendan_core::{Event, EventKind, Payload};
use sendan_tests::nixfake::{Behaviour, Fake, Node, Signing, Systems, enroll, history, spec, system_view};
use sendan_tests::procs::ProcCluster;
use sendan_tests::{all_events, binary, wait_until};

const POOL: &str = "edge";
const NODES: [&str; 5] = ["w-1", "w-2", "w-3", "w-4", "w-5"];
const PATIENCE: Duration = Duration::from_secs(120);

fn sendan(cluster: &ProcCluster, args: &[&str]) -> std::process::Output {
    Command::new(binary("sendan"))
        .args(["--server", &format!("http://{}", cluster.addrs[&1])])
        .arg("--token-file")
        .arg(cluster.dir.path().join("admin.token"))
        .args(args)
        .output()
        .expect("sendan runs")
}

async fn rollout(admin: &Client, id: u64) -> RolloutView {
    admin.get(&format!("/v1/rollouts/{id}"), &()).await.expect("the rollout reads")
}

/// Walk the log and check the rollout's budget: from the event that decides a member's system until the member's
/// agent reports that decision's end (confirmed, rolled back or given up), the member is away; at no seq are more
/// than `max_unavailable` members of the rollout away. Returns the most seen at once.
fn most_away_at_once(events: &[Event], rollout: u64) -> usize {
    let mut deciding: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut away: BTreeMap<String, u64> = BTreeMap::new();
    let mut most = 0;
    for e in events {
        match &e.payload {
            Payload::RolloutWaveStarted(w) if w.rollout == rollout => {
                deciding.insert(e.seq, w.nodes.iter().map(|n| n.to_string()).collect());
            }
            Payload::RolloutNodesReverted(r) if r.rollout == rollout => {
                deciding.insert(e.seq, r.nodes.iter().map(|n| n.to_string()).collect());
            }
            _ => {}
        }
        if let Some(nodes) = deciding.get(&e.seq) {
            for n in nodes {
                away.insert(n.clone(), e.seq);
            }
        }
        let ended = match &e.payload {
            Payload::SystemConfirmed(p) => Some((p.node.to_string(), p.decision)),
            Payload::SystemRolledBack(p) => Some((p.node.to_string(), p.decision)),
            Payload::SystemPrefetchFailed(p) => Some((p.node.to_string(), p.decision)),
            _ => None,
        };
        if let Some((node, decision)) = ended
            && away.get(&node) == Some(&decision)
        {
            away.remove(&node);
        }
        most = most.max(away.len());
    }
    most
}

/// Property: a pool rollout moves members in waves within its budget and stops at a failing canary. With
/// max-unavailable 1 and one canary, a good system reaches all five members one at a time, canary first, and
/// `sendan rollout start --wait` ends when the last one confirms; a bad system (its switch exits 4) fails on the
/// canary, which rolls back on its own, the rollout halts and is reverted, and the four other members never move:
/// they keep the system they ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_rollout_moves_waves_within_its_budget_and_a_failing_canary_stops_it() {
    use Signing::Trusted;
    let systems = tokio::task::block_in_place(|| {
        Systems::build(
            &[
                (Fake::ok("old"), Trusted),
                (Fake::ok("good"), Trusted),
                (Fake::with("bad", Behaviour::Exit(4)), Trusted),
            ],
            &["old"],
        )
    });
    let (old, good, bad) =
        (systems.path("old").to_owned(), systems.path("good").to_owned(), systems.path("bad").to_owned());
    let cluster = ProcCluster::start(3, &[]).await;
    let admin = cluster.client(1);
    let declared: Vec<(&str, &str)> = NODES.iter().map(|n| (*n, old.as_str())).collect();
    let spec = spec(POOL, &declared, &systems.cache.url, &systems.public_key);
    let (_, applied) = sendan_api::cli::spec::apply(&admin, &spec).await.unwrap();
    let applied = applied.unwrap();
    let tokens = enroll(&admin, &NODES).await;
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = Vec::new();
    for (i, (id, token)) in NODES.iter().zip(&tokens).enumerate() {
        // Agents talk to different members; followers forward their reports to the leader.
        let member = cluster.addrs[&(i as u64 % 3 + 1)].clone();
        let mut node = Node::new(root.path(), id, &old, &member, token);
        node.start_agent();
        nodes.push(node);
    }
    for node in &nodes {
        wait_until(&format!("{} acknowledges the spec's system", node.id), PATIENCE, || async {
            let a = system_view(&admin, &node.id).await?.system.attempt?;
            (a.decision == applied && a.phase == Phase::Confirmed).then_some(())
        })
        .await;
    }

    // A good system, start to done, with the CLI following it.
    let args = ["rollout", "start", POOL, good.as_str(), "--max-unavailable", "1", "--canary", "1", "--wait"];
    let out = tokio::task::block_in_place(|| sendan(&cluster, &args));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("completed") && printed.contains("5/5 confirmed"), "{printed}");
    let list: sendan_core::wire::RolloutsView = admin.get("/v1/rollouts", &[("pool", POOL)]).await.unwrap();
    let first = list.rollouts[0].clone();
    assert_eq!(first.state, RolloutState::Completed);
    assert_eq!(first.waves.len(), 5, "max-unavailable 1: one member per wave");
    assert!(first.waves[0].canary && !first.waves[1].canary);
    for node in &nodes {
        assert_eq!(node.link("current-system").as_deref(), Some(good.as_str()), "{}", node.id);
        assert_eq!(node.switches(), [(good.clone(), "switch".to_owned())], "{}", node.id);
    }
    let events = all_events(&admin).await;
    assert_eq!(most_away_at_once(&events, first.id), 1, "never more than max-unavailable members away at once");
    let canary_confirmed = events
        .iter()
        .find(|e| matches!(&e.payload, Payload::SystemConfirmed(p) if p.decision == first.waves[0].seq))
        .expect("the canary confirmed")
        .seq;
    assert!(canary_confirmed < first.waves[1].seq, "no other member moves before the canary confirmed");

    // A bad system: the canary fails and the rollout is reverted.
    let before: BTreeMap<String, u64> = {
        let mut m = BTreeMap::new();
        for n in &NODES {
            m.insert(n.to_string(), system_view(&admin, n).await.unwrap().system.desired.unwrap().seq);
        }
        m
    };
    let out = sendan(
        &cluster,
        &["--output", "json", "rollout", "start", POOL, &bad, "--max-unavailable", "1", "--canary", "1"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second: RolloutView = serde_json::from_slice(&out.stdout).unwrap();
    let done = wait_until("the failed rollout is reverted", PATIENCE, || async {
        let r = rollout(&admin, second.id).await;
        (r.state == RolloutState::Reverted).then_some(r)
    })
    .await;
    let reason = done.reason.clone().unwrap();
    assert!(reason.contains("canary w-1 failed") && reason.contains("exited 4"), "{reason}");
    assert_eq!(done.waves.len(), 1, "no wave after the failed canary");
    assert_eq!(done.waves[0].members[0].phase, sendan_core::rollouts::planner::MemberPhase::Reverted);
    let canary = &nodes[0];
    assert_eq!(canary.link("current-system").as_deref(), Some(good.as_str()), "the canary runs what it ran");
    assert_eq!(canary.switches()[1..], [(bad.clone(), "switch".to_owned()), (good.clone(), "switch".to_owned())]);
    for node in &nodes[1..] {
        let v = system_view(&admin, &node.id).await.unwrap();
        assert_eq!(v.system.desired.unwrap().seq, before[&node.id], "{} got no new decision", node.id);
        assert_eq!(
            node.switches(),
            [(good.clone(), "switch".to_owned())],
            "{} never activated the bad system",
            node.id
        );
        assert_eq!(node.link("current-system").as_deref(), Some(good.as_str()));
        let kinds: Vec<EventKind> =
            history(&admin, &node.id).await.into_iter().filter(|e| e.seq > second.id).map(|e| e.kind()).collect();
        assert!(kinds.is_empty(), "{}: {kinds:?}", node.id);
    }
    let status = sendan(&cluster, &["rollout", "status", POOL]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("reverted") && status.contains("(canary)") && status.contains("untouched"), "{status}");
    // Every decision the controllers recorded names the event it was taken on.
    sendan_tests::assert_causes(&all_events(&admin).await);
}
