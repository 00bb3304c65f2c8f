//! The layering of DESIGN.md, checked against `cargo metadata`: which crate may depend on which, that
//! the pure core stays free of I/O crates, that node-side binaries never link the server stack, and that
//! every dependency version is declared once in the workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

struct Graph {
    /// package name → names of its normal and build dependencies (direct).
    direct: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn load() -> Graph {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let rustc = std::process::Command::new("rustc").arg("-vV").output().expect("rustc -vV runs");
        let host = String::from_utf8_lossy(&rustc.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            .expect("rustc names its host");
        // Only what this machine links: other platforms' dependencies are not layering questions.
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--filter-platform", &host])
            .current_dir(root())
            .output()
            .expect("cargo metadata runs");
        assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
        let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
        let names: BTreeMap<String, String> = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["id"].as_str().unwrap().to_owned(), p["name"].as_str().unwrap().to_owned()))
            .collect();
        let mut direct = BTreeMap::new();
        for node in meta["resolve"]["nodes"].as_array().unwrap() {
            let name = names[node["id"].as_str().unwrap()].clone();
            let deps: BTreeSet<String> = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].as_str() != Some("dev")))
                .map(|d| names[d["pkg"].as_str().unwrap()].clone())
                .collect();
            direct.entry(name).or_insert_with(BTreeSet::new).extend(deps);
        }
        Graph { direct }
    }

    /// Everything `pkg` links, transitively (normal and build dependencies).
    fn closure(&self, pkg: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![pkg.to_owned()];
        while let Some(p) = todo.pop() {
            for d in self.direct.get(&p).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    }
}

fn check_absent(g: &Graph, pkg: &str, forbidden: &[&str]) {
    let all = g.closure(pkg);
    let bad: Vec<&&str> = forbidden.iter().filter(|f| all.contains(**f)).collect();
    assert!(bad.is_empty(), "{pkg} must not depend (even transitively) on {bad:?}");
}

#[test]
fn crates_only_depend_along_the_allowed_edges() {
    let g = Graph::load();
    let ours = ["sendan-core", "sendan-raft", "sendan-api", "sendan-agents", "sendan-tests"];
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("sendan-core", &[][..]),
        ("sendan-raft", &["sendan-core"][..]),
        ("sendan-api", &["sendan-core", "sendan-raft"][..]),
        ("sendan-agents", &["sendan-core"][..]),
    ]);
    for (pkg, ok) in &allowed {
        let internal: BTreeSet<&str> = g.direct[*pkg].iter().map(String::as_str).filter(|d| ours.contains(d)).collect();
        let extra: Vec<&&str> = internal.iter().filter(|d| !ok.contains(d)).collect();
        assert!(extra.is_empty(), "{pkg} may depend on {ok:?} only, but depends on {extra:?}");
    }
}

#[test]
fn the_core_is_pure() {
    let g = Graph::load();
    check_absent(&g, "sendan-core", &["tokio", "mio", "redb", "openraft", "axum", "hyper", "reqwest", "ureq", "rand"]);
}

#[test]
fn only_raft_names_openraft_and_redb_and_only_api_names_axum() {
    let g = Graph::load();
    for pkg in ["sendan-core", "sendan-api", "sendan-agents"] {
        for dep in ["openraft", "redb"] {
            assert!(!g.direct[pkg].contains(dep), "{pkg} names {dep} directly; only sendan-raft may");
        }
    }
    for pkg in ["sendan-core", "sendan-raft", "sendan-agents"] {
        assert!(!g.direct[pkg].contains("axum"), "{pkg} names axum directly; only sendan-api may");
    }
}

#[test]
fn node_side_binaries_never_link_the_server_stack() {
    let g = Graph::load();
    check_absent(&g, "sendan-agents", &["openraft", "redb", "axum", "sendan-raft", "sendan-api", "tokio", "hyper"]);
}

#[test]
fn every_dependency_version_is_declared_once_in_the_workspace() {
    for member in ["core", "raft", "api", "agents", "tests"] {
        let path = root().join(member).join("Cargo.toml");
        let manifest: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else { continue };
            for (name, spec) in deps {
                let inherited =
                    spec.as_table().and_then(|t| t.get("workspace")).and_then(|w| w.as_bool()) == Some(true);
                assert!(inherited, "{}: [{section}] {name} must say `workspace = true`", path.display());
            }
        }
    }
}

/// TLS is rustls with the `ring` provider everywhere: no binary links aws-lc (a long C build) or OpenSSL.
#[test]
fn tls_is_rustls_with_ring_and_nothing_else() {
    let g = Graph::load();
    for pkg in ["sendan-api", "sendan-agents"] {
        check_absent(&g, pkg, &["aws-lc-rs", "aws-lc-sys", "openssl", "openssl-sys", "native-tls"]);
        assert!(g.closure(pkg).contains("ring"), "{pkg} verifies certificates with ring");
    }
}
