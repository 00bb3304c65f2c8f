//! Shared fixtures for Sendan's multi-node and end-to-end tests: waiting on conditions with a deadline,
//! an in-process cluster (isolate, restart, wait-until), and clusters of real `sendan server` processes.

pub mod bmc;
pub mod bootstrap;
pub mod contract;
pub mod inproc;
pub mod nixfake;
pub mod procs;
pub mod services;
pub mod upgrade;
pub mod vm;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sendan_core::wire::ProposalIn;
use sendan_core::{EventId, Payload};

/// Poll `check` until it returns `Some`, or panic after `timeout` naming `what`. Never sleeps longer than
/// the poll interval; the interval is the pacing between polls, not a wait for the condition.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll pacing
    }
}

/// A plain reqwest client for raw HTTP requests in tests (built like every client of the workspace, with an
/// explicit TLS configuration: reqwest has no default crypto provider here).
pub fn http() -> reqwest::Client {
    sendan_raft::Trust::plain().http_builder().build().expect("a plain HTTP client builds")
}

/// A built binary of this workspace (`sendan`, `sendan-agent`), next to the test executable.
///
/// Under cargo, the workspace's binaries are (re)built once per test process first, so a test never runs
/// a stale binary (cargo does not hold its build lock while tests run). `SENDAN_BIN` /
/// `SENDAN_AGENT_BIN` point at other builds.
pub fn binary(name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!("{}_BIN", name.to_uppercase().replace('-', "_"))) {
        return PathBuf::from(p);
    }
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let Ok(cargo) = std::env::var("CARGO") else { return };
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "--quiet", "--workspace", "--bins"]).current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("cargo runs");
        assert!(out.status.success(), "building the binaries failed:\n{}", String::from_utf8_lossy(&out.stderr));
    });
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the binaries), or `cargo build --bins` first",
        path.display()
    );
    path
}

/// An event proposal with a fixed id, from a JSON payload such as
/// `json!({"type": "NodeDrainRequested", "node": "n1"})`.
pub fn proposal(id: u128, payload: serde_json::Value) -> ProposalIn {
    let payload: Payload = serde_json::from_value(payload).expect("a valid payload");
    ProposalIn { id: Some(EventId::from_u128(id)), comment: None, cause: None, payload }
}

/// The payload of a machine discovery.
pub fn discovered(machine: &str) -> serde_json::Value {
    serde_json::json!({ "type": "MachineDiscovered", "machine": machine })
}

/// The payload binding `machine` to `node`.
pub fn commissioned(node: &str, machine: &str) -> serde_json::Value {
    serde_json::json!({ "type": "NodeCommissioned", "node": node, "machine": machine })
}

/// What an event is about: its node, its machine, the nodes it lists, its rollout (a `RolloutStarted` is its own
/// rollout, by seq) and the decision it reports on (by seq).
fn subjects(e: &sendan_core::Event) -> std::collections::BTreeSet<String> {
    let json = serde_json::to_value(e).unwrap_or_default();
    let mut out = std::collections::BTreeSet::new();
    for key in ["node", "machine"] {
        if let Some(v) = json[key].as_str() {
            out.insert(format!("{key}:{v}"));
        }
    }
    for key in ["nodes", "revert"] {
        for v in json[key].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
            out.insert(format!("node:{v}"));
        }
    }
    if let Some(r) = json["rollout"].as_u64() {
        out.insert(format!("rollout:{r}"));
    }
    if e.kind() == sendan_core::EventKind::RolloutStarted {
        out.insert(format!("rollout:{}", e.seq));
    }
    if let Some(d) = json["decision"].as_u64() {
        out.insert(format!("decision:{d}"));
    }
    for key in ["instance", "replaces"] {
        if let Some(i) = json[key].as_str() {
            out.insert(format!("instance:{i}"));
        }
    }
    out
}

/// Check the causes of a whole log (`events`, from seq 1, in order): every event a controller emitted
/// (`system:*`) names a cause, an earlier event, that is the live spec or shares a subject with it (the same node,
/// machine, rollout or instance, a report on a decision about one of them, or the node an instance it replaces
/// ran on). Panics naming each event that does not.
pub fn assert_causes(events: &[sendan_core::Event]) {
    use sendan_core::{Actor, EventKind};
    let by_seq: std::collections::BTreeMap<u64, &sendan_core::Event> = events.iter().map(|e| (e.seq, e)).collect();
    let mut bad = Vec::new();
    let mut checked = 0;
    for e in events.iter().filter(|e| matches!(e.actor, Actor::System(_))) {
        checked += 1;
        let Some(cause) = e.cause.and_then(|c| by_seq.get(&c).copied()).filter(|c| c.seq < e.seq) else {
            bad.push(format!(
                "seq {} {} ({}) names no earlier event as its cause: {:?}",
                e.seq,
                e.kind(),
                e.actor,
                e.cause
            ));
            continue;
        };
        let mut about = subjects(e);
        // A rollout's decisions are about its members too; a decision is what reports on it name.
        if let Some(r) = about.iter().find_map(|s| s.strip_prefix("rollout:")).and_then(|r| r.parse::<u64>().ok()) {
            for d in events.iter().filter(|d| subjects(d).contains(&format!("rollout:{r}"))) {
                about.extend(subjects(d).into_iter().filter(|s| s.starts_with("node:")));
                about.insert(format!("decision:{}", d.seq));
            }
        }
        // An instance is also about the node it was placed on (its node's loss caused its replacement), and about
        // the instances that took over from it (a hand-over's old instance stops once its replacement is healthy).
        let mut instances: std::collections::BTreeSet<String> =
            about.iter().filter_map(|s| s.strip_prefix("instance:")).map(str::to_owned).collect();
        for d in events.iter().filter(|d| d.seq < e.seq) {
            let taken_over = match &d.payload {
                sendan_core::Payload::InstanceMigrated(m) => Some((&m.replaces, &m.instance)),
                sendan_core::Payload::InstanceRescheduled(r) => Some((&r.replaces, &r.instance)),
                _ => None,
            };
            if let Some((old, new)) = taken_over
                && instances.contains(old.as_str())
            {
                instances.insert(new.to_string());
                about.insert(format!("instance:{new}"));
            }
        }
        for d in events.iter().filter(|d| d.seq < e.seq) {
            let placed = match &d.payload {
                sendan_core::Payload::InstancePlaced(p) => Some((&p.instance, &p.node)),
                sendan_core::Payload::InstanceRescheduled(r) => Some((&r.instance, &r.node)),
                sendan_core::Payload::InstanceMigrated(m) => Some((&m.instance, &m.node)),
                _ => None,
            };
            if let Some((i, n)) = placed
                && instances.contains(i.as_str())
            {
                about.insert(format!("node:{n}"));
            }
        }
        // A node is also about the machines bound to it.
        let nodes: Vec<String> = about.iter().filter(|s| s.starts_with("node:")).cloned().collect();
        for d in events.iter().filter(|d| d.seq <= e.seq) {
            let s = subjects(d);
            if nodes.iter().any(|n| s.contains(n)) {
                about.extend(s.into_iter().filter(|s| s.starts_with("machine:")));
            }
        }
        let related = cause.kind() == EventKind::SpecApplied || !subjects(cause).is_disjoint(&about);
        if !related {
            bad.push(format!(
                "seq {} {} names seq {} {} as its cause, which is about none of {about:?}",
                e.seq,
                e.kind(),
                cause.seq,
                cause.kind()
            ));
        }
    }
    assert!(checked > 0, "no controller event to check");
    assert!(bad.is_empty(), "causes that are not exact:\n{}", bad.join("\n"));
}

/// The whole log, page by page, as the admin reads it.
pub async fn all_events(admin: &sendan_api::client::Client) -> Vec<sendan_core::Event> {
    let mut out: Vec<sendan_core::Event> = Vec::new();
    loop {
        let f = sendan_api::client::EventFilter {
            after: out.last().map(|e| e.seq),
            limit: Some(10_000),
            ..Default::default()
        };
        let page = admin.events(&f).await.expect("the log reads");
        let done = page.next.is_none();
        out.extend(page.events);
        if done {
            return out;
        }
    }
}
