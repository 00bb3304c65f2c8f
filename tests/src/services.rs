//! Services end to end: a cluster of real `sendan server` processes, the four worker nodes of the Nix test
//! fixture (`nix/tests/fixtures/small.nix`) enrolled with node tokens, each running a real `sendan-agent node`
//! process, and a service package built with real `nix-build`: a shell script that serves HTTP with
//! `python3 -m http.server` on its `SENDAN_PORT_HTTP`, bound to 127.0.0.1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sendan_api::client::Client;
use sendan_core::wire::{EndpointsView, NodeInstancesView};
use serde_json::Value;

use crate::bootstrap::repo;
use crate::procs::{ProcCluster, signal};
use crate::{binary, wait_until};

pub const WORKERS: [&str; 4] = ["worker-01", "worker-02", "worker-03", "worker-04"];

/// The web package: `$out/bin/web` serves the files of an empty temporary directory over HTTP (`/` answers 200,
/// anything else 404) on `SENDAN_PORT_HTTP`. A nonce makes it a store path of this test run only.
pub fn build_package(dir: &Path) -> String {
    let nonce = format!("{}-{}", std::process::id(), dir.display());
    let expr = format!(
        r#"derivation {{
  name = "web-test";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  nonce = "{nonce}";
  script = ''
    #!/bin/sh
    cd "$(mktemp -d)"
    exec python3 -m http.server --bind 127.0.0.1 "$SENDAN_PORT_HTTP"
  '';
  PATH = "/usr/bin:/bin";
  args = [ "-c" "mkdir -p $out/bin; printf '%s' \"$script\" > $out/bin/web; chmod +x $out/bin/web" ];
}}"#
    );
    let file = dir.join("web.nix");
    std::fs::write(&file, expr).unwrap();
    let out = Command::new("nix-build")
        .arg("--no-out-link")
        .arg(&file)
        .args(["--option", "substituters", ""])
        .output()
        .expect("nix-build runs (install Debian's nix-bin)");
    assert!(out.status.success(), "nix-build failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A cluster declaration (Nix) of the test fixture with these `services` (a Nix attribute set, as text).
pub fn declaration(dir: &Path, name: &str, services: &str) -> PathBuf {
    let repo = repo();
    let text = format!(
        r#"let
  lib = import {lib};
  base = import {fixture};
in
lib.mkCluster (lib.recursiveUpdate base {{ services = {services}; }})
"#,
        lib = repo.join("nix/lib").display(),
        fixture = repo.join("nix/tests/fixtures/small.nix").display(),
    );
    let file = dir.join(format!("{name}.nix"));
    std::fs::write(&file, text).unwrap();
    file
}

/// One `sendan-agent node` process of a node.
pub struct Agent {
    pub node: String,
    pub state_dir: PathBuf,
    token_file: PathBuf,
    server: String,
    ports: (u16, u16),
    child: Option<Child>,
}

impl Agent {
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.state_dir.join("agent.log")).unwrap();
        let child = Command::new(binary("sendan-agent"))
            .arg("node")
            .args(["--server", &self.server, "--node", &self.node, "--systemd-run", "never"])
            .arg("--token-file")
            .arg(&self.token_file)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--port-range", &format!("{}-{}", self.ports.0, self.ports.1), "--poll-interval-ms", "1000"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sendan-agent node starts");
        self.child = Some(child);
    }

    /// `kill -9` the agent only; its instances keep running.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the agent recorded it runs: instance id → pid.
    pub fn recorded(&self) -> BTreeMap<String, u32> {
        let text = std::fs::read_to_string(self.state_dir.join("instances.json")).unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        v.as_object()
            .into_iter()
            .flatten()
            .filter(|(_, l)| l["exit"].is_null())
            .filter_map(|(id, l)| Some((id.clone(), l["pid"].as_u64()? as u32)))
            .collect()
    }

    /// `kill -9` the agent and every instance it runs (each its own process group).
    pub fn kill9_with_instances(&mut self) {
        self.kill9();
        for pid in self.recorded().values() {
            signal_group(*pid, 9);
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("agent.log")).unwrap_or_default()
    }
}

/// Send `sig` to the process group led by `pid`.
pub fn signal_group(pid: u32, sig: i32) -> bool {
    signal((pid as i32).wrapping_neg() as u32, sig)
}

/// Whether process `pid` runs (and is not a zombie).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rfind(')').and_then(|i| s[i + 1..].split_whitespace().next()).is_some_and(|st| st != "Z"))
        .unwrap_or(false)
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9_with_instances();
    }
}

/// The worker nodes enrolled, a node token each, and an agent per node (not started), spread over the members.
pub async fn agents(cluster: &ProcCluster, dir: &Path) -> Vec<Agent> {
    let admin = cluster.client(1);
    let tokens = crate::nixfake::enroll(&admin, &WORKERS).await;
    WORKERS.iter().zip(tokens).enumerate().map(|(i, (node, token))| agent(cluster, dir, node, &token, i)).collect()
}

/// The agent (not started) of an enrolled `node` with its node `token`, talking to the `i`th member (modulo).
pub fn agent(cluster: &ProcCluster, dir: &Path, node: &str, token: &str, i: usize) -> Agent {
    let members: Vec<String> = cluster.addrs.values().cloned().collect();
    let state_dir = dir.join(format!("agent-{node}"));
    std::fs::create_dir_all(&state_dir).unwrap();
    let token_file = state_dir.join("token");
    std::fs::write(&token_file, token).unwrap();
    // Disjoint port ranges per agent (and per test process), so instances never race for a port.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 40;
    let base = 20_000 + (std::process::id() % 10) as u16 * 4_000 + k * 100;
    Agent {
        node: node.to_string(),
        state_dir,
        token_file,
        server: members[i % members.len()].clone(),
        ports: (base, base + 99),
        child: None,
    }
}

pub async fn endpoints(admin: &Client, service: &str) -> Option<EndpointsView> {
    admin.get(&format!("/v1/services/{service}/endpoints"), &()).await.ok()
}

pub async fn node_instances(admin: &Client, node: &str) -> Option<NodeInstancesView> {
    admin.get(&format!("/v1/nodes/{node}/instances"), &()).await.ok()
}

/// Whether every endpoint answers `GET /` with 200.
pub async fn all_serve(v: &EndpointsView) -> bool {
    for e in &v.endpoints {
        let Some(port) = e.ports.get("http") else { return false };
        let ok = crate::http()
            .get(format!("http://{}:{port}/", e.address))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !ok {
            return false;
        }
    }
    true
}

/// Wait until the service's endpoints satisfy `pred`, and every one serves HTTP; the endpoints.
pub async fn wait_endpoints(
    admin: &Client,
    service: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&EndpointsView) -> bool,
) -> EndpointsView {
    wait_until(what, timeout, || async {
        let v = endpoints(admin, service).await?;
        (pred(&v) && all_serve(&v).await).then_some(v)
    })
    .await
}
