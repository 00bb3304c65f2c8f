//! The Nix library (`nix/lib`) through real `nix-instantiate --eval --strict --json`: every error case in
//! `nix/tests/errors` throws its message, the pure-eval tests in `nix/tests/eval` pass, the example's ClusterSpec
//! parses and validates in sendan-core with the digest of Nix's own output, install plans agree between Nix and
//! Rust, sendan-core's validator reports exactly what Nix reports on every parity case, and the flake's `lib`
//! evaluates without nixpkgs.
//!
//! These tests need `nix-instantiate` (Debian's `nix-bin`); without it they fail, saying so, rather than skip.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use sendan_core::facts::{Cpu, Disk, Dmi, HardwareFacts, Nic};
use sendan_core::ids::Hash;
use sendan_core::spec::{ClusterSpec, InstallPlan, Location, SwitchPort, select_rule};
use serde_json::Value;

const NIX_INSTANTIATE: &str = "nix-instantiate";

/// The error cases the issue names; deleting one of their files must fail the suite.
const REQUIRED_CASES: &[&str] = &[
    "duplicate-address",
    "unknown-class",
    "unknown-class-in-pool",
    "unknown-pool-in-node",
    "unknown-pool-in-service",
    "pool-exhausted",
    "overlapping-rules",
    "layout-missing-disk",
    "service-empty-pool",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the repository").to_path_buf()
}

/// `Ok` when `program --version` runs; otherwise a message that says what to install.
fn require(program: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{program} --version` failed ({}): {}; the Nix library tests need a working nix-instantiate (Debian/Ubuntu: `apt-get install nix-bin`)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "`{program}` could not be run ({e}); the Nix library tests need nix-instantiate (Debian/Ubuntu: `apt-get install nix-bin`)"
        )),
    }
}

struct Evaluated {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `nix-instantiate --eval --strict --json ARGS`, run from the repository root.
fn nix(args: &[&str]) -> Evaluated {
    if let Err(e) = require(NIX_INSTANTIATE) {
        panic!("{e}");
    }
    let out = Command::new(NIX_INSTANTIATE)
        .current_dir(repo())
        .args(["--eval", "--strict", "--json"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {NIX_INSTANTIATE}: {e}"));
    Evaluated {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).expect("nix-instantiate prints UTF-8"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn nix_json(args: &[&str]) -> Value {
    let e = nix(args);
    assert!(e.ok, "nix-instantiate {} failed:\n{}", args.join(" "), e.stderr);
    serde_json::from_str(&e.stdout)
        .unwrap_or_else(|err| panic!("nix-instantiate {} printed no JSON ({err})", args.join(" ")))
}

fn error_cases() -> Vec<(String, String)> {
    let dir = repo().join("nix/tests/errors");
    let mut cases: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nix"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                format!("./nix/tests/errors/{}", p.file_name().unwrap().to_string_lossy()),
            )
        })
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_error_case_throws_a_message_naming_the_culprit() {
    let cases = error_cases();
    let names: BTreeSet<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
    for required in REQUIRED_CASES {
        assert!(names.contains(required), "nix/tests/errors/{required}.nix is missing");
    }
    assert!(cases.len() >= 40, "only {} error cases", cases.len());

    let mut failures = Vec::new();
    for (name, path) in &cases {
        let expect = nix_json(&["nix/tests/error-case.nix", "--arg", "case", path, "-A", "meta.expect"]);
        let expect = expect.as_str().unwrap_or_else(|| panic!("{name}: meta.expect is not a string"));
        assert!(expect.starts_with("sendan: "), "{name}: expected messages start with `sendan: `");
        let run = nix(&["nix/tests/error-case.nix", "--arg", "case", path, "-A", "result"]);
        if run.ok {
            failures.push(format!("{name}: evaluated without error, expected `{expect}`"));
        } else if !run.stderr.contains(expect) {
            failures.push(format!("{name}: expected `{expect}`, got:\n{}", run.stderr.trim()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} error cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// For every case marked `parity`, Nix builds the document without throwing (collecting its messages instead),
/// and sendan-core's validator must report exactly the same set of messages.
#[test]
fn sendan_core_reports_exactly_what_nix_reports() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, path) in error_cases() {
        let meta = nix_json(&["nix/tests/error-case.nix", "--arg", "case", &path, "-A", "meta"]);
        if meta["parity"] != Value::Bool(true) {
            continue;
        }
        checked += 1;
        let unchecked = nix_json(&["nix/tests/error-case.nix", "--arg", "case", &path, "-A", "unchecked"]);
        let nix_errors: BTreeSet<String> =
            unchecked["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect();
        let expect = meta["expect"].as_str().unwrap().trim_start_matches("sendan: ");
        if !nix_errors.iter().any(|e| e.contains(expect)) {
            failures.push(format!("{name}: Nix's collected errors lack `{expect}`: {nix_errors:#?}"));
            continue;
        }
        let spec = match ClusterSpec::from_json(&unchecked["spec"].to_string()) {
            Ok(spec) => spec,
            Err(e) => {
                failures.push(format!("{name}: the unchecked document does not parse: {e}"));
                continue;
            }
        };
        let rust_errors: BTreeSet<String> = match spec.validate() {
            Ok(()) => BTreeSet::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        };
        if rust_errors != nix_errors {
            failures.push(format!(
                "{name}:\n  only Nix:  {:?}\n  only Rust: {:?}",
                nix_errors.difference(&rust_errors).collect::<Vec<_>>(),
                rust_errors.difference(&nix_errors).collect::<Vec<_>>()
            ));
        }
    }
    assert!(checked >= 30, "only {checked} parity cases");
    assert!(failures.is_empty(), "Nix and sendan-core disagree:\n\n{}", failures.join("\n\n"));
}

#[test]
fn nix_pure_eval_tests_pass() {
    let results = nix_json(&["nix/tests/run.nix"]);
    let failed = results["failed"].as_array().expect("run.nix reports `failed`");
    let report: Vec<String> = failed
        .iter()
        .map(|f| {
            format!(
                "{}: expected {}, got {}\n  rerun: {}",
                f["name"],
                f["expected"],
                f["actual"],
                f["rerun"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(failed.is_empty(), "{} Nix eval tests failed:\n{}", failed.len(), report.join("\n"));
    let passed = results["passed"].as_array().expect("run.nix reports `passed`").len();
    assert!(passed >= 45, "only {passed} Nix eval tests ran");
}

/// `nix/examples/spec.nix` prints the ClusterSpec; sendan-core parses and validates it, and its digest is the
/// sha256 of exactly what Nix printed (the canonical form is Nix's own `builtins.toJSON`).
#[test]
fn example_spec_parses_validates_and_digests_like_nix() {
    let out = nix(&["nix/examples/spec.nix"]);
    assert!(out.ok, "nix/examples/spec.nix does not evaluate:\n{}", out.stderr);
    let printed = out.stdout.trim_end();
    let spec = ClusterSpec::from_json(printed).unwrap_or_else(|e| panic!("the example spec does not parse: {e}"));
    if let Err(errors) = spec.validate() {
        panic!("the example spec does not validate:\n{errors}");
    }
    assert_eq!(spec.nodes.len(), 13);
    assert_eq!(spec.canonical_json(), printed);
    assert_eq!(spec.digest(), Hash::of(printed.as_bytes()));
}

#[test]
fn example_install_plans_are_what_sendan_core_computes() {
    let spec: ClusterSpec = ClusterSpec::from_json(&nix_json(&["nix/examples/spec.nix"]).to_string()).unwrap();
    let plans = nix_json(&["nix/examples/cluster.nix", "-A", "installPlans"]);
    let plans = plans.as_object().unwrap();
    assert_eq!(plans.len(), spec.nodes.len());
    for (node, nix_plan) in plans {
        let parsed: InstallPlan = serde_json::from_value(nix_plan.clone())
            .unwrap_or_else(|e| panic!("Nix's install plan of {node} does not parse: {e}"));
        let computed = spec.install_plan(node).unwrap_or_else(|| panic!("sendan-core has no install plan for {node}"));
        assert_eq!(parsed, computed, "install plans of {node} differ");
        assert_eq!(&serde_json::to_value(&computed).unwrap(), nix_plan, "install plan JSON of {node} differs");
    }
}

fn disk(name: &str, gb: u64, rotational: bool) -> Disk {
    Disk {
        name: name.into(),
        size_bytes: gb * 1_000_000_000,
        rotational,
        by_id: Some(format!("/dev/disk/by-id/wwn-{name}")),
        ..Disk::default()
    }
}

fn nic(name: &str, mac: &str, mbps: u32) -> Nic {
    Nic { name: name.into(), mac: mac.into(), speed_mbps: Some(mbps), link: true, ..Nic::default() }
}

/// The example's rules and classes against machines like the ones it describes: the rule that binds, the class
/// that admits, the layout that resolves and renders.
#[test]
fn example_machines_enroll_and_their_disks_resolve() {
    let spec = ClusterSpec::from_json(&nix_json(&["nix/examples/spec.nix"]).to_string()).unwrap();
    let port = |switch: &str| vec![SwitchPort { switch: switch.into(), port: "Ethernet7".into() }];

    let storage_box = HardwareFacts {
        machine_id: None,
        dmi: Dmi { serial: Some("CZ2309B1XM".into()), ..Dmi::default() },
        cpu: Cpu { threads: 32, ..Cpu::default() },
        memory_bytes: 126 << 30,
        disks: vec![
            disk("nvme0n1", 960, false),
            disk("sda", 16_000, true),
            disk("sdb", 16_000, true),
            disk("sdc", 16_000, true),
            disk("sdd", 16_000, true),
        ],
        nics: vec![nic("enp65s0f0", "b8:ce:f6:12:34:50", 25_000), nic("enp65s0f1", "b8:ce:f6:12:34:51", 25_000)],
    };
    let here = Location::from_ports(&spec, port("r02-tor-a"));
    assert_eq!(here.rack.as_deref(), Some("r02"));
    let (rule, matched) = select_rule(&spec.enrollment_rules, &storage_box, &here).unwrap().expect("a rule matches");
    assert_eq!(rule, "storage-servers");
    let pool = &spec.pools[matched.bind.pool.as_deref().unwrap()];
    assert_eq!(spec.classes[&pool.class].admits(&storage_box), Ok(()));
    let plan = spec.install_plan("storage-02").unwrap();
    let layout = plan.disk_layout.to_layout();
    let resolved =
        layout.resolve(&storage_box.disks).unwrap_or_else(|e| panic!("the storage layout does not resolve: {e:?}"));
    let rendered = layout.render_disko(&resolved);
    assert_eq!(rendered["disko"]["devices"]["disk"]["system"]["device"], "/dev/disk/by-id/wwn-nvme0n1");
    assert_eq!(rendered["disko"]["devices"]["disk"]["data4"]["device"], "/dev/disk/by-id/wwn-sdd");

    let compute_box = HardwareFacts {
        cpu: Cpu { threads: 64, virtualization: vec!["svm".into()], ..Cpu::default() },
        disks: vec![disk("nvme0n1", 1_920, false), disk("nvme1n1", 1_920, false)],
        ..storage_box.clone()
    };
    let (rule, _) = select_rule(&spec.enrollment_rules, &compute_box, &here).unwrap().unwrap();
    assert_eq!(rule, "compute-servers");
    assert_eq!(spec.classes["compute"].admits(&compute_box), Ok(()));
    // A storage box is no compute node: it has no virtualization extensions.
    assert!(spec.classes["compute"].admits(&storage_box).is_err());

    let cp1 = HardwareFacts { dmi: Dmi { serial: Some("CZ2241A7KQ".into()), ..Dmi::default() }, ..compute_box.clone() };
    let (rule, matched) = select_rule(&spec.enrollment_rules, &cp1, &here).unwrap().unwrap();
    assert_eq!((rule, matched.bind.node.as_deref()), ("cp-1", Some("cp-1")));
    // A machine outside the cluster's racks matches no pool rule.
    let elsewhere = Location::from_ports(&spec, port("lab-switch"));
    assert_eq!(select_rule(&spec.enrollment_rules, &compute_box, &elsewhere).unwrap(), None);
}

/// sendan-core's unit tests use `core/src/spec/fixture.json`; it must be what Nix makes of the fixture.
#[test]
fn checked_in_fixture_is_the_evaluated_nix_fixture() {
    let evaluated = nix_json(&["-E", "((import ./nix/lib).mkCluster (import ./nix/tests/fixtures/small.nix)).spec"]);
    let path = repo().join("core/src/spec/fixture.json");
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        evaluated == checked_in,
        "{} is out of date with nix/tests/fixtures/small.nix; regenerate it with\n  nix-instantiate --eval --strict --json -E '((import ./nix/lib).mkCluster (import ./nix/tests/fixtures/small.nix)).spec' | python3 -m json.tool --sort-keys --indent 2 > core/src/spec/fixture.json",
        path.display()
    );
}

/// `flake.nix`'s outputs stay lazy in nixpkgs: `lib` evaluates with a nixpkgs that throws when touched, and the
/// example runs through it.
#[test]
fn flake_lib_evaluates_without_nixpkgs() {
    let expr = r#"
      let
        flake = import ./flake.nix;
        outputs = flake.outputs { self = outputs; nixpkgs = throw "nixpkgs was forced"; };
      in {
        spec = (outputs.lib.mkCluster (import ./nix/examples/declaration.nix)).spec;
        modules = builtins.attrNames outputs.nixosModules;
        systems = builtins.attrNames outputs.packages;
      }
    "#;
    let out = nix_json(&["-E", expr]);
    let direct = nix_json(&["nix/examples/spec.nix"]);
    assert_eq!(out["spec"], direct);
    assert_eq!(out["modules"], serde_json::json!(["default", "installer", "nix-agent", "node-agent", "server"]));
    assert_eq!(out["systems"], serde_json::json!(["aarch64-linux", "x86_64-linux"]));
}

#[test]
fn a_missing_nix_instantiate_is_a_failure_that_says_what_to_install() {
    let err = require("nix-instantiate-that-does-not-exist").unwrap_err();
    assert!(err.contains("apt-get install nix-bin"), "{err}");
}

/// The NixOS modules render `settings` into the config file their service starts with: what they render must be
/// a file the binaries accept (both config parsers refuse unknown keys), and it must validate.
#[test]
fn the_modules_render_config_files_the_binaries_accept() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        nix_json(&["-E", "(import ./nix/tests/eval/server-module.nix).secretsArePathsToCredentials.expr.rendered"]);
    let path = dir.path().join("sendan-server.json");
    std::fs::write(&path, server.to_string()).unwrap();
    let config = sendan_api::config::ConfigFile::load(&path).expect("the server reads the rendered file");
    let config = config.validate().expect("the rendered server settings validate");
    assert_eq!((config.node_id, config.initial_cluster.len()), (2, 3));

    let agent = nix_json(&["-E", "(import ./nix/tests/eval/nix-agent-module.nix).tokenIsACredential.expr.rendered"]);
    let path = dir.path().join("sendan-nix-agent.json");
    std::fs::write(&path, agent.to_string()).unwrap();
    let config = sendan_agents::nix::ConfigFile::load(&path).expect("the agent reads the rendered file");
    config.validate(Some("fallback-host".into())).expect("the rendered agent settings validate");

    let node = nix_json(&["-E", "(import ./nix/tests/eval/node-agent-module.nix).tokenIsACredential.expr.rendered"]);
    let path = dir.path().join("sendan-node-agent.json");
    std::fs::write(&path, node.to_string()).unwrap();
    let config = sendan_agents::node::ConfigFile::load(&path).expect("the node agent reads the rendered file");
    let config = config.validate(Some("fallback-host".into())).expect("the rendered node-agent settings validate");
    assert_eq!((config.node.as_str(), config.advertise.to_string().as_str()), ("worker-01", "10.20.1.21"));
}
