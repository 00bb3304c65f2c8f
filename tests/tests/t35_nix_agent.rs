//! `sendan-agent nix` end to end: the real agent binary against real `sendan server` processes and real Nix, with
//! fake NixOS systems (real `nix-build` outputs whose `switch-to-configuration` records its calls and succeeds,
//! fails, breaks the network or hangs) served from a signed binary cache over HTTP. Every scenario checks the
//! node's links and profile, what the fake switches were asked, and the events the agent reported.

use std::process::Command;
use std::time::Duration;

use sendan_api::client::Client;
use sendan_core::systems::AttemptPhase as Phase;
use sendan_core::wire::NodeSystemView;
use sendan_core::{EventKind, Payload};
use sendan_tests::nixfake::{Behaviour, Fake, Node, Proxy, Signing, Systems, enroll, history, spec, system_view};
use sendan_tests::procs::ProcCluster;
use sendan_tests::{binary, wait_until};

const POOL: &str = "edge";
/// Generous for a loaded two-core machine; the agents' own deadlines are seconds.
const PATIENCE: Duration = Duration::from_secs(60);

/// One server process, the fake systems, and the admin client.
struct World {
    cluster: ProcCluster,
    admin: Client,
    systems: Systems,
    root: tempfile::TempDir,
}

impl World {
    async fn new(fakes: &[(Fake, Signing)]) -> World {
        // Only the running system is in the local store; every other one must come from the cache.
        let systems = tokio::task::block_in_place(|| Systems::build(fakes, &["old"]));
        let cluster = ProcCluster::start(1, &[]).await;
        let admin = cluster.client(1);
        World { cluster, admin, systems, root: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> String {
        self.systems.path(name).to_owned()
    }

    /// Apply the spec in which `node` runs `system`; the seq of the `SpecApplied`.
    async fn apply(&self, node: &str, system: &str) -> u64 {
        let spec = spec(POOL, &[(node, system)], &self.systems.cache.url, &self.systems.public_key);
        let (_, seq) = sendan_api::cli::spec::apply(&self.admin, &spec).await.expect("the spec applies");
        seq.expect("the spec is new")
    }

    /// Enrol `node` running `old`, with its agent started against `server` (default: the member itself) after
    /// `settings` are applied to its config.
    async fn node(&self, id: &str, server: Option<&str>, settings: &[(&str, &str)]) -> Node {
        let token = enroll(&self.admin, &[id]).await.remove(0);
        let server = server.map(str::to_owned).unwrap_or_else(|| self.cluster.addrs[&1].clone());
        let mut node = Node::new(self.root.path(), id, &self.path("old"), &server, &token);
        for (k, v) in settings {
            node.set(k, v);
        }
        node.start_agent();
        node
    }

    /// Decide `node`'s system with `sendan node set-system`; the decision's seq.
    fn set_system(&self, node: &str, system: &str) -> u64 {
        let out = self.sendan(&["--output", "json", "node", "set-system", node, system]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["seq"].as_u64().unwrap()
    }

    /// The node's events after `seq` of the given kind.
    async fn events_after(&self, node: &str, seq: u64, kind: EventKind) -> Vec<Payload> {
        let all = history(&self.admin, node).await;
        all.into_iter().filter(|e| e.seq > seq && e.kind() == kind).map(|e| e.payload).collect()
    }

    /// The `SystemRolledBack` of `decision`: it went back to `old`, with the rollback switch exiting 0.
    async fn rolled_back_to_old(&self, node: &Node, decision: u64) -> String {
        let old = self.path("old");
        let v = self.settled(node, decision, Phase::RolledBack).await;
        assert_eq!(v.system.current.as_deref(), Some(old.as_str()));
        assert_eq!(node.link("current-system").as_deref(), Some(old.as_str()), "the old system runs again");
        assert_eq!(node.link("profile").as_deref(), Some(old.as_str()), "the profile points at it again");
        let rolled = self.events_after(&node.id, decision, EventKind::SystemRolledBack).await;
        match &rolled[..] {
            [Payload::SystemRolledBack(r)] => {
                assert_eq!((r.to.as_str(), r.exit_code), (old.as_str(), 0));
                r.reason.clone()
            }
            other => panic!("expected one SystemRolledBack, got {other:?}"),
        }
    }

    /// Run the `sendan` CLI as the admin.
    fn sendan(&self, args: &[&str]) -> String {
        let out = Command::new(binary("sendan"))
            .args(["--server", &format!("http://{}", self.cluster.addrs[&1])])
            .arg("--token-file")
            .arg(self.cluster.dir.path().join("admin.token"))
            .args(args)
            .output()
            .expect("sendan runs");
        assert!(out.status.success(), "sendan {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Wait until `node`'s attempt of `decision` has `phase`.
    async fn settled(&self, node: &Node, decision: u64, phase: Phase) -> NodeSystemView {
        let what = format!("node {}'s decision {decision} is {}", node.id, phase.name());
        let found = wait_until(&what, PATIENCE, || async {
            let v = system_view(&self.admin, &node.id).await?;
            let a = v.system.attempt.as_ref()?;
            (a.decision == decision && a.phase.is_finished()).then_some(v)
        })
        .await;
        let a = found.system.attempt.as_ref().unwrap();
        assert_eq!(a.phase, phase, "decision {decision} ended {:?}; agent log:\n{}", a, node.log());
        found
    }

    /// The kinds of `node`'s events after `seq`.
    async fn kinds_after(&self, node: &str, seq: u64) -> Vec<EventKind> {
        history(&self.admin, node).await.into_iter().filter(|e| e.seq > seq).map(|e| e.kind()).collect()
    }
}

fn switched(path: &str, verb: &str) -> (String, String) {
    (path.to_owned(), verb.to_owned())
}

/// Property: a node follows the decisions about its system. When it already runs the decided system the agent
/// only acknowledges it; when a new spec changes it, the agent fetches the closure from the signed cache, asks
/// the control plane before touching anything, sets the profile, switches, passes the health gate and gets its
/// confirmation accepted, reporting each step; a system with another kernel is reported as needing a reboot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_moves_its_node_to_each_decided_system_and_confirms_it() {
    use Signing::Trusted;
    let newer_kernel = Fake { kernel: "6.12", ..Fake::ok("new-kernel") };
    let wants_reboot = Fake::with("exit-100", Behaviour::Exit(100));
    let w = World::new(&[
        (Fake::ok("old"), Trusted),
        (Fake::ok("new"), Trusted),
        (newer_kernel, Trusted),
        (wants_reboot, Trusted),
    ])
    .await;
    let (old, new, new_kernel, exit100) = (w.path("old"), w.path("new"), w.path("new-kernel"), w.path("exit-100"));
    let first = w.apply("n1", &old).await;
    let node = w.node("n1", None, &[]).await;

    let v = w.settled(&node, first, Phase::Confirmed).await;
    assert_eq!(v.system.current.as_deref(), Some(old.as_str()));
    assert!(node.switches().is_empty(), "nothing is activated for a system that already runs");
    // Activations are serialised: a second agent on the same node refuses to run beside the first.
    let second = tokio::task::block_in_place(|| node.run_second_agent());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success() && said.contains("activations are serialised, so only one may run"), "{said}");

    let second = w.apply("n1", &new).await;
    let v = w.settled(&node, second, Phase::Confirmed).await;
    assert_eq!(v.system.current.as_deref(), Some(new.as_str()));
    assert_eq!(node.link("current-system").as_deref(), Some(new.as_str()));
    assert_eq!(node.link("profile").as_deref(), Some(new.as_str()), "the profile is the boot default");
    assert_eq!(node.switches(), [switched(&new, "switch")]);
    assert!(!v.system.attempt.as_ref().unwrap().reboot_required, "same kernel, initrd and modules");
    use EventKind::*;
    assert_eq!(
        w.kinds_after("n1", second).await,
        [SystemPrefetched, SystemActivating, SystemProfileSet, SystemSwitched, SystemConfirmed],
        "every step is reported, in order"
    );

    // An operator's decision, through the CLI; another kernel needs a reboot.
    let out = w.sendan(&["node", "set-system", "n1", &new_kernel]);
    let third: u64 = out.rsplit("seq ").next().unwrap().trim_end_matches(".\n").parse().unwrap();
    let v = w.settled(&node, third, Phase::Confirmed).await;
    assert!(v.system.attempt.as_ref().unwrap().reboot_required, "the booted kernel differs");
    assert_eq!(node.link("current-system").as_deref(), Some(new_kernel.as_str()));
    let shown = w.sendan(&["node", "system", "n1"]);
    assert!(shown.contains("confirmed") && shown.contains("reboot required"), "{shown}");

    // `switch-to-configuration` exiting 100 succeeded but asks for a reboot, whatever the kernel.
    let fourth = w.set_system("n1", &exit100);
    let v = w.settled(&node, fourth, Phase::Confirmed).await;
    assert!(v.system.attempt.as_ref().unwrap().reboot_required, "exit 100 means a reboot is needed");
    match &w.events_after("n1", fourth, SystemSwitched).await[..] {
        [Payload::SystemSwitched(s)] => assert_eq!(s.exit_code, 100),
        other => panic!("expected one SystemSwitched, got {other:?}"),
    }
}

/// Property: an activation that fails — `switch-to-configuration` exiting 1 (error), 2 (activation failed) or 4
/// (units failed) — is rolled back: the remembered system is re-activated with its own `switch-to-configuration` and the
/// profile points at it again (not `nix-env --rollback`); the failure and the rollback are reported, and the
/// agent does not retry the failed decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_activation_is_rolled_back_to_the_remembered_system() {
    use Signing::Trusted;
    let w = World::new(&[
        (Fake::ok("old"), Trusted),
        (Fake::with("exit-1", Behaviour::Exit(1)), Trusted),
        (Fake::with("exit-2", Behaviour::Exit(2)), Trusted),
        (Fake::with("exit-4", Behaviour::Exit(4)), Trusted),
    ])
    .await;
    let (old, exit1, exit2, exit4) = (w.path("old"), w.path("exit-1"), w.path("exit-2"), w.path("exit-4"));
    let first = w.apply("n1", &old).await;
    let node = w.node("n1", None, &[]).await;
    w.settled(&node, first, Phase::Confirmed).await;

    for (bad, code) in [(&exit1, 1), (&exit2, 2), (&exit4, 4)] {
        let before = node.switches().len();
        let decision = w.set_system("n1", bad);
        let reason = w.rolled_back_to_old(&node, decision).await;
        assert!(reason.contains(&format!("exited {code}")), "{reason}");
        assert_eq!(node.switches()[before..], [switched(bad, "switch"), switched(&old, "switch")]);
        use EventKind::*;
        assert_eq!(
            w.kinds_after("n1", decision).await,
            [SystemPrefetched, SystemActivating, SystemProfileSet, SystemSwitched, SystemRolledBack]
        );
        match &w.events_after("n1", decision, SystemSwitched).await[..] {
            [Payload::SystemSwitched(s)] => assert_eq!(s.exit_code, code),
            other => panic!("expected one SystemSwitched, got {other:?}"),
        }
    }
    // The failed decision is not retried: a one-shot pass of the agent finds nothing to do.
    let mut node = node;
    assert!(node.run_agent_once());
    assert_eq!(node.switches().len(), 6);
}

/// Property: a system that activates but fails its health gate within the deadline (here: the running system lacks
/// the marker the node's health command checks) is rolled back, after a `SystemHealthFailed` naming the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_health_gate_is_rolled_back() {
    use Signing::Trusted;
    let w = World::new(&[(Fake::ok("old"), Trusted), (Fake::unhealthy("sick"), Trusted)]).await;
    let (old, sick) = (w.path("old"), w.path("sick"));
    let first = w.apply("n1", &old).await;
    let node = w.node("n1", None, &[]).await;
    w.settled(&node, first, Phase::Confirmed).await;

    let decision = w.apply("n1", &sick).await;
    let reason = w.rolled_back_to_old(&node, decision).await;
    assert!(reason.contains("health gate failed"), "{reason}");
    match &w.events_after("n1", decision, EventKind::SystemHealthFailed).await[..] {
        [Payload::SystemHealthFailed(h)] => assert!(h.failures[0].contains("healthy"), "{:?}", h.failures),
        other => panic!("expected one SystemHealthFailed, got {other:?}"),
    }
    assert!(w.events_after("n1", decision, EventKind::SystemConfirmed).await.is_empty());
    assert_eq!(node.switches(), [switched(&sick, "switch"), switched(&old, "switch")]);
}

/// Property: the confirmation is a round trip: a system that activates and passes its local checks but cuts the
/// node off from the control plane (here: it takes the network down) gets no acknowledgement within the deadline,
/// so the agent re-activates the remembered system (which brings the network back) and reports the switch and the
/// rollback once it can — and never delivers the confirmation it gave up on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_confirmation_is_rolled_back() {
    use Signing::Trusted;
    let w = World::new(&[(Fake::ok("old"), Trusted), (Fake::with("cut-off", Behaviour::BreaksNetwork), Trusted)]).await;
    let (old, cut_off) = (w.path("old"), w.path("cut-off"));
    let first = w.apply("n1", &old).await;
    let proxy = Proxy::start(w.cluster.addrs[&1].clone(), w.root.path().join("n1").join("network-down"));
    let node = w.node("n1", Some(&proxy.addr), &[]).await;
    w.settled(&node, first, Phase::Confirmed).await;

    let decision = w.set_system("n1", &cut_off);
    let reason = w.rolled_back_to_old(&node, decision).await;
    assert!(reason.contains("did not acknowledge the confirmation"), "{reason}");
    assert!(!w.root.path().join("n1").join("network-down").exists(), "the old system brought the network back");
    use EventKind::*;
    assert_eq!(
        w.kinds_after("n1", decision).await,
        [SystemPrefetched, SystemActivating, SystemProfileSet, SystemSwitched, SystemRolledBack]
    );
    assert_eq!(node.switches(), [switched(&cut_off, "switch"), switched(&old, "switch")]);
}

/// Property: an agent killed (`kill -9`) in the middle of `switch-to-configuration` resumes from its state
/// directory: the switch it started keeps running (own process group), the restarted agent waits for it, runs it
/// again to learn how it went, and finishes the same activation — one `SystemActivating`, one confirmation, no
/// rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_switch_resumes_and_finishes() {
    use Signing::Trusted;
    let w = World::new(&[(Fake::ok("old"), Trusted), (Fake::with("slow", Behaviour::HangsOnce), Trusted)]).await;
    let (old, slow) = (w.path("old"), w.path("slow"));
    let first = w.apply("n1", &old).await;
    let mut node = w.node("n1", None, &[]).await;
    w.settled(&node, first, Phase::Confirmed).await;
    let fifo = node.dir.join("release");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());

    let decision = w.set_system("n1", &slow);
    let hanging = node.dir.join("hanging");
    wait_until("the switch is under way", PATIENCE, || async { hanging.exists().then_some(()) }).await;
    node.kill_agent();
    node.start_agent();
    wait_until("the restarted agent waits for the switch it left", PATIENCE, || async {
        node.log().contains("still running; waiting for it").then_some(())
    })
    .await;
    // Let the first switch finish; the restarted agent runs it once more.
    tokio::task::block_in_place(|| std::fs::write(&fifo, "go\n")).unwrap();

    let v = w.settled(&node, decision, Phase::Confirmed).await;
    assert_eq!(v.system.current.as_deref(), Some(slow.as_str()));
    assert_eq!(node.link("profile").as_deref(), Some(slow.as_str()));
    assert_eq!(node.switches(), [switched(&slow, "switch"), switched(&slow, "switch")]);
    use EventKind::*;
    assert_eq!(
        w.kinds_after("n1", decision).await,
        [SystemPrefetched, SystemActivating, SystemProfileSet, SystemSwitched, SystemConfirmed]
    );
}

/// Property: a closure is fetched only from the plan's substituters and only with a trusted signature: a system
/// signed with another key and an unsigned one are refused by `nix-store --realise` (negative narinfo cache off),
/// reported as `SystemPrefetchFailed`, and nothing is activated; a trusted one is then fetched and activated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_wrongly_signed_closures_are_refused() {
    use Signing::*;
    let w = World::new(&[
        (Fake::ok("old"), Trusted),
        (Fake::ok("forged"), Untrusted),
        (Fake::ok("unsigned"), Unsigned),
        (Fake::ok("good"), Trusted),
    ])
    .await;
    let first = w.apply("n1", &w.path("old")).await;
    let node = w.node("n1", None, &[]).await;
    w.settled(&node, first, Phase::Confirmed).await;

    for name in ["forged", "unsigned"] {
        let path = w.path(name);
        let decision = w.set_system("n1", &path);
        let v = w.settled(&node, decision, Phase::PrefetchFailed).await;
        let error = v.system.attempt.unwrap().error.unwrap();
        assert!(error.contains("is not signed by any of the keys"), "{name}: {error}");
        assert_eq!(w.kinds_after("n1", decision).await, [EventKind::SystemPrefetchFailed]);
        let valid = Command::new("nix-store")
            .args(["--check-validity", &path])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!valid.success(), "{name} must not enter the store");
    }
    assert!(node.switches().is_empty(), "nothing was activated");
    let good = w.path("good");
    let decision = w.set_system("n1", &good);
    w.settled(&node, decision, Phase::Confirmed).await;
    assert_eq!(node.switches(), [switched(&good, "switch")]);
}

/// Property: a `switch-to-configuration` that hangs is killed at the switch timeout (with its process group), the
/// switch is reported as failed (exit -1), and the remembered system is re-activated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_switch_times_out_and_is_rolled_back() {
    use Signing::Trusted;
    let w = World::new(&[(Fake::ok("old"), Trusted), (Fake::with("stuck", Behaviour::Hangs), Trusted)]).await;
    let (old, stuck) = (w.path("old"), w.path("stuck"));
    let first = w.apply("n1", &old).await;
    let node = w.node("n1", None, &[("switch-timeout-secs", "2")]).await;
    w.settled(&node, first, Phase::Confirmed).await;

    let decision = w.set_system("n1", &stuck);
    let reason = w.rolled_back_to_old(&node, decision).await;
    assert!(reason.contains("timed out"), "{reason}");
    match &w.events_after("n1", decision, EventKind::SystemSwitched).await[..] {
        [Payload::SystemSwitched(s)] => assert_eq!(s.exit_code, -1),
        other => panic!("expected one SystemSwitched, got {other:?}"),
    }
    let still = std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmd).contains(&stuck)
    });
    assert!(!still, "the hung switch was killed");
}

/// Property: a pinned node is left alone: a spec that changes its system is recorded as its desired system, but its
/// agent neither fetches nor activates anything until the node is unpinned, and then it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_node_is_left_alone_until_unpinned() {
    use Signing::Trusted;
    let w = World::new(&[(Fake::ok("old"), Trusted), (Fake::ok("new"), Trusted)]).await;
    let (old, new) = (w.path("old"), w.path("new"));
    let first = w.apply("n1", &old).await;
    let mut node = w.node("n1", None, &[]).await;
    w.settled(&node, first, Phase::Confirmed).await;

    w.sendan(&["node", "pin", "n1", "--reason", "firmware update"]);
    let decision = w.apply("n1", &new).await;
    // One deterministic pass of the agent, with the decision already in the log.
    assert!(node.run_agent_once());
    assert_eq!(w.kinds_after("n1", decision).await, [] as [EventKind; 0], "nothing is reported while pinned");
    assert!(node.switches().is_empty());
    let v = system_view(&w.admin, "n1").await.unwrap();
    assert_eq!(v.system.desired.as_ref().unwrap().seq, decision, "the decision is recorded all the same");

    w.sendan(&["node", "unpin", "n1"]);
    node.start_agent();
    w.settled(&node, decision, Phase::Confirmed).await;
    assert_eq!(node.switches(), [switched(&new, "switch")]);
}
