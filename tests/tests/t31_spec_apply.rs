//! `sendan plan` and `sendan apply` with real Nix against a real server: the example cluster is shown,
//! recorded once, changed, and every applied spec stays an audit query.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sendan_api::client::{ClientError, EventFilter};
use sendan_core::spec::ClusterSpec;
use sendan_tests::inproc::Cluster;
use sendan_tests::{binary, commissioned, discovered, proposal};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Run the `sendan` binary against member 1 of `c`.
fn sendan(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("sendan"))
        .args(["--server", &c.addrs[&1]])
        .args(args)
        .env("SENDAN_TOKEN", "sendan-admin-test-token")
        .current_dir(repo())
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Property: plan writes nothing; apply records the spec once; a second apply of the same declaration
/// (through either of its files) records nothing; a changed declaration is planned and applied as a
/// change; every applied spec is fetchable by digest, and "which spec was live at seq N" is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_then_apply_the_example_then_change_it() {
    let c = Cluster::new(1).await;
    let client = c.client(1);
    let (ok, out, err) = tokio::task::block_in_place(|| sendan(&c, &["plan", "nix/examples/spec.nix"]));
    assert!(ok, "{err}");
    assert!(out.contains("+ node cp-1") && out.contains("+ service edge-proxy"), "{out}");
    assert!(out.contains("Plan: 40 to add, 0 to change, 0 to remove"), "{out}");
    assert_eq!(c.fleet(1).seq, 0, "plan writes nothing");

    let (ok, out, err) = tokio::task::block_in_place(|| sendan(&c, &["apply", "nix/examples/cluster.nix"]));
    assert!(ok && out.contains("at seq 1."), "{out}{err}");
    let first = client.spec(None).await.unwrap();
    assert_eq!(first.seq, 1);
    let (ok, out, _) = tokio::task::block_in_place(|| sendan(&c, &["apply", "nix/examples/spec.nix"]));
    assert!(ok && out.contains("No changes") && out.contains("Nothing applied."), "{out}");
    assert_eq!(c.fleet(1).seq, 1, "a second apply records nothing");

    // worker-01 joins the fleet, then its declared system changes.
    let mut b = vec![proposal(1, discovered("m-w1")), proposal(2, commissioned("worker-01", "m-w1"))];
    client.submit(&mut b, Duration::from_secs(10)).await.unwrap();
    // Enrollment looks at the new node: m-w1 reported no disks, so worker-01's install plan is refused (seq 4).
    sendan_tests::wait_until("enrollment decides worker-01's plan", Duration::from_secs(10), || async {
        let h = client.history("worker-01", &EventFilter::default()).await.ok()?;
        (h.events.len() == 2).then_some(())
    })
    .await;
    let mut doc = serde_json::to_value(&first.spec).unwrap();
    doc["nodes"]["worker-01"]["system"] = serde_json::json!({"flake": null, "storePath": "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-worker-01"});
    let changed = tempfile::NamedTempFile::with_suffix(".json").unwrap();
    std::fs::write(changed.path(), doc.to_string()).unwrap();
    let path = changed.path().to_str().unwrap();
    let (ok, out, err) = tokio::task::block_in_place(|| sendan(&c, &["plan", path]));
    assert!(ok, "{err}");
    assert!(out.contains("~ node worker-01") && out.contains("storePath=/nix/store/aaaa"), "{out}");
    assert!(out.contains("Plan: 0 to add, 1 to change, 0 to remove"), "{out}");
    let (ok, out, _) = tokio::task::block_in_place(|| sendan(&c, &["apply", path]));
    assert!(ok && out.contains("at seq 5."), "{out}");

    let second = client.spec(None).await.unwrap();
    assert_ne!(second.digest, first.digest);
    assert_eq!(client.spec(Some(4)).await.unwrap().digest, first.digest, "the spec live at seq 4");
    let old = client.spec_by_digest(&first.digest.to_hex()).await.unwrap();
    assert_eq!((old.seq, old.live, old.spec), (1, false, first.spec.clone()));
    // The change is in worker-01's audit history (after which enrollment decides its plan again).
    let h = client.history("worker-01", &EventFilter::default()).await.unwrap();
    let kinds: Vec<(u64, &str)> = h.events.iter().take(3).map(|e| (e.seq, e.kind().name())).collect();
    assert_eq!(kinds, [(3, "NodeCommissioned"), (4, "InstallPlanRefused"), (5, "SpecApplied")]);

    // The same audit questions through the CLI.
    let (ok, out, err) = tokio::task::block_in_place(|| sendan(&c, &["spec", "show", "--at", "4"]));
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("spec {} applied at seq 1", first.digest.to_hex())), "{out}");
    let (ok, out, err) =
        tokio::task::block_in_place(|| sendan(&c, &["spec", "show", "--digest", &first.digest.to_hex()]));
    assert!(ok && out.contains("applied at seq 1") && out.contains("\"apiVersion\""), "{out}{err}");
    let (ok, out, _) = tokio::task::block_in_place(|| sendan(&c, &["spec", "show"]));
    assert!(ok && out.starts_with(&format!("spec {} applied at seq 5 (live)", second.digest.to_hex())), "{out}");
}

/// Property: a `.nix` file that does not evaluate is refused before anything reaches the server, with Nix's own
/// message naming the culprit; nothing is planned or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_that_does_not_evaluate_is_refused_with_nix_s_message() {
    let c = Cluster::new(1).await;
    let broken = tempfile::NamedTempFile::with_suffix(".nix").unwrap();
    let lib = repo().join("nix/lib");
    std::fs::write(
        broken.path(),
        format!(
            "let s = import {}; in s.mkCluster (s.recursiveUpdate (import {}) {{ nodes.cp-1.class = \"no-such-class\"; }})",
            lib.display(),
            repo().join("nix/examples/declaration.nix").display()
        ),
    )
    .unwrap();
    let path = broken.path().to_str().unwrap();
    for verb in ["plan", "apply"] {
        let (ok, out, err) = tokio::task::block_in_place(|| sendan(&c, &[verb, path]));
        assert!(!ok, "{verb} of a broken declaration must fail: {out}");
        assert!(err.contains("failed:") && err.contains("no-such-class"), "{verb}: {err}");
    }
    assert_eq!(c.fleet(1).seq, 0, "nothing was written");
}

/// Property: the server re-validates a spec whatever produced it: an invalid document is a 400 naming the
/// problem, a stale digest is refused, re-applying the live digest is a 409, and none of them writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_never_trusts_a_spec_document() {
    let c = Cluster::new(1).await;
    let client = c.client(1);
    let spec = ClusterSpec::from_json(include_str!("../../core/src/spec/fixture.json")).unwrap();
    let apply = |document: String, digest: sendan_core::Hash| {
        vec![sendan_core::wire::ProposalIn {
            id: None,
            comment: None,
            cause: None,
            payload: sendan_core::event::SpecApplied { digest, document }.into(),
        }]
    };
    let mut duplicate = serde_json::to_value(&spec).unwrap();
    let node = spec.nodes.keys().next().unwrap().clone();
    let other = spec.nodes.keys().nth(1).unwrap().clone();
    let addr = duplicate["nodes"][&node]["network"]["address"].clone();
    duplicate["nodes"][&other]["network"]["address"] = addr.clone();
    let bad = ClusterSpec::from_json(&duplicate.to_string()).unwrap();
    let cases = [
        (
            apply(bad.canonical_json(), bad.digest()),
            400,
            "invalid_spec",
            format!("duplicate address {}", addr.as_str().unwrap()),
        ),
        (apply(spec.canonical_json(), sendan_core::Hash::of(b"x")), 400, "invalid_spec", "digest".to_owned()),
        (apply("{}".into(), spec.digest()), 400, "invalid_spec", "apiVersion".to_owned()),
    ];
    for (events, status, code, words) in cases {
        let ClientError::Api { status: s, code: c2, message, .. } = client.submit_once(&events).await.unwrap_err()
        else {
            panic!("expected an API error")
        };
        assert_eq!((s, c2.as_str()), (status, code), "{message}");
        assert!(message.contains(&words), "{message:?} should say {words:?}");
    }
    client.submit_once(&apply(spec.canonical_json(), spec.digest())).await.unwrap();
    let err = client.submit_once(&apply(spec.canonical_json(), spec.digest())).await.unwrap_err().to_string();
    assert!(err.contains("is already the live spec (applied at seq 1)") && err.contains("409"), "{err}");
    assert_eq!(c.fleet(1).seq, 1);
}

/// Property: after `sendan apply` of the example, and before any machine enrolls, `GET /v1/nodes` and
/// `sendan nodes` list every node the spec declares, as `declared` (apart from the lifecycle states, with the
/// rules that would bind each and what it waits for); `?state=declared` lists only them, a lifecycle state none
/// of them, and `?pool=` narrows them to one pool; once a machine is bound to a node, that node is listed with
/// its lifecycle state and no longer as declared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_nodes_are_listed_until_a_machine_is_bound_to_them() {
    use sendan_api::client::NodesQuery;
    let c = Cluster::new(1).await;
    let client = c.client(1);
    let (ok, out, err) = tokio::task::block_in_place(|| sendan(&c, &["apply", "nix/examples/cluster.nix"]));
    assert!(ok, "{out}{err}");
    let spec = client.spec(None).await.unwrap().spec;
    let all = client.nodes(&NodesQuery::default()).await.unwrap();
    assert!(all.nodes.is_empty() && all.machines.is_empty());
    let declared: Vec<&str> = all.declared.iter().map(|d| d.id.as_str()).collect();
    let in_spec: Vec<&str> = spec.nodes.keys().map(String::as_str).collect();
    assert_eq!(declared, in_spec, "every declared node, in the spec's order");
    for d in &all.declared {
        assert!(!d.waiting.is_empty(), "{d:?}");
        let binding = |r: &sendan_core::spec::Rule| {
            r.bind.node.as_deref() == Some(d.id.as_str()) || (r.bind.node.is_none() && r.bind.pool == d.pool)
        };
        let rules: Vec<&str> =
            spec.enrollment_rules.iter().filter(|(_, r)| binding(r)).map(|(n, _)| n.as_str()).collect();
        let mut listed: Vec<&str> = d.rules.iter().map(String::as_str).collect();
        listed.sort();
        assert_eq!(listed, rules, "{}: the rules that would bind it", d.id);
        if rules.is_empty() {
            assert!(d.waiting.contains("sendan node accept"), "{d:?}");
        }
    }
    let pool = all.declared.iter().find_map(|d| d.pool.clone()).expect("the example has pools");
    let first_free = all.declared.iter().find(|d| d.pool.as_deref() == Some(&pool)).unwrap();
    assert_eq!(first_free.place, Some(1), "{first_free:?}");

    let only = |state: Option<&str>, pool: Option<&str>| NodesQuery {
        state: state.map(str::to_owned),
        pool: pool.map(str::to_owned),
        ..Default::default()
    };
    let just_declared = client.nodes(&only(Some("declared"), None)).await.unwrap();
    assert_eq!(just_declared.declared.len(), all.declared.len());
    assert!(client.nodes(&only(Some("active"), None)).await.unwrap().declared.is_empty());
    let of_pool = client.nodes(&only(None, Some(&pool))).await.unwrap();
    assert!(!of_pool.declared.is_empty() && of_pool.declared.iter().all(|d| d.pool.as_deref() == Some(&pool)));
    let err = client.nodes(&only(Some("sleeping"), None)).await.unwrap_err().to_string();
    assert!(err.contains("not a state to list") && err.contains("declared"), "{err}");

    let (ok, out, err) = tokio::task::block_in_place(|| sendan(&c, &["nodes"]));
    assert!(ok, "{err}");
    assert!(out.contains("Declared in the live spec") && out.contains("(declared)"), "{out}");
    assert!(out.contains(first_free.id.as_str()) && out.contains(&first_free.waiting), "{out}");

    // A machine is bound to the first free member of the pool: it leaves the declared list.
    let node = first_free.id.to_string();
    let mut b = vec![proposal(1, discovered("m-1")), proposal(2, commissioned(&node, "m-1"))];
    client.submit(&mut b, Duration::from_secs(10)).await.unwrap();
    let after = client.nodes(&NodesQuery::default()).await.unwrap();
    assert!(after.nodes.iter().any(|n| n.id.as_str() == node));
    assert!(after.declared.iter().all(|d| d.id.as_str() != node));
    let next = after.declared.iter().find(|d| d.pool.as_deref() == Some(&pool));
    if let Some(next) = next {
        assert_eq!(next.place, Some(1), "the next free member is now first: {next:?}");
    }
}
