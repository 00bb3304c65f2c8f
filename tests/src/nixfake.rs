//! Real Nix, fake NixOS systems: closures built with `nix-build` whose `bin/switch-to-configuration` records what
//! it was asked and then succeeds, fails with a chosen exit code, breaks the "network", or hangs; a signed binary
//! cache served over HTTP; a TCP proxy whose link goes down while a marker file exists; real `sendan-agent nix`
//! processes, one per fake node, each with its own profile, system links and state directory.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tempfile::TempDir;

/// What a fake system's `switch-to-configuration` does after recording `<system> <verb>` in
/// `$FAKE_DIR/switch.log`.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Activate: point `$FAKE_DIR/current-system` at itself (for `switch` and `test`), bring the network up, exit 0.
    Ok,
    /// Like `Ok` but exit with this code (2 and 1 leave the running system as it was).
    Exit(i32),
    /// Activate, then take the network down (`$FAKE_DIR/network-down`).
    BreaksNetwork,
    /// On its first run only, wait until `$FAKE_DIR/release` (a FIFO) is written to; then as `Ok`.
    HangsOnce,
    /// Never finish.
    Hangs,
}

/// A fake system to build.
#[derive(Clone, Debug)]
pub struct Fake {
    pub name: &'static str,
    pub behaviour: Behaviour,
    /// Whether it carries the `healthy` marker the test agents' health check looks for.
    pub healthy: bool,
    /// Which fake kernel it boots: systems with different kernels need a reboot.
    pub kernel: &'static str,
}

impl Fake {
    pub fn ok(name: &'static str) -> Fake {
        Fake { name, behaviour: Behaviour::Ok, healthy: true, kernel: "6.6" }
    }
    pub fn with(name: &'static str, behaviour: Behaviour) -> Fake {
        Fake { name, behaviour, healthy: true, kernel: "6.6" }
    }
    pub fn unhealthy(name: &'static str) -> Fake {
        Fake { name, behaviour: Behaviour::Ok, healthy: false, kernel: "6.6" }
    }

    fn script(&self) -> String {
        let activate = r#"case "$1" in switch|test) ln -sfn "$self" "$FAKE_DIR/current-system" ;; esac"#;
        let body = match &self.behaviour {
            Behaviour::Ok => format!("{activate}\nrm -f \"$FAKE_DIR/network-down\"\nexit 0"),
            Behaviour::Exit(code @ (1 | 2)) => format!("exit {code}"),
            Behaviour::Exit(code) => format!("{activate}\nrm -f \"$FAKE_DIR/network-down\"\nexit {code}"),
            Behaviour::BreaksNetwork => format!("{activate}\ntouch \"$FAKE_DIR/network-down\"\nexit 0"),
            Behaviour::HangsOnce => format!(
                "if [ ! -e \"$FAKE_DIR/hung-once\" ]; then\n  touch \"$FAKE_DIR/hung-once\"\n  \
                 echo started > \"$FAKE_DIR/hanging\"\n  read line < \"$FAKE_DIR/release\"\nfi\n\
                 {activate}\nrm -f \"$FAKE_DIR/network-down\"\nexit 0"
            ),
            Behaviour::Hangs => "echo started > \"$FAKE_DIR/hanging\"\nexec sleep 3600".to_owned(),
        };
        format!(
            "#!/bin/sh\nself=$(cd \"$(dirname \"$0\")/..\" && pwd)\necho \"$self $1\" >> \"$FAKE_DIR/switch.log\"\n{body}\n"
        )
    }
}

/// How a built system is offered by the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// Signed with the key the spec trusts.
    Trusted,
    /// Signed with another key.
    Untrusted,
    Unsigned,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (the Nix tests need Debian's nix-bin)"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn nix3(args: &[&str]) -> Command {
    let mut c = Command::new("nix");
    c.args(["--extra-experimental-features", "nix-command"]).args(args);
    c
}

/// A set of fake systems, a key pair, and a binary cache served over HTTP.
pub struct Systems {
    pub dir: TempDir,
    pub paths: BTreeMap<&'static str, String>,
    /// The public key the spec should trust.
    pub public_key: String,
    pub cache: CacheServer,
}

impl Systems {
    /// Build `fakes` (each named once), sign them as asked, copy them into a fresh binary cache, and delete from
    /// the local store every one not listed in `keep`, so an agent can get it only from the cache.
    pub fn build(fakes: &[(Fake, Signing)], keep: &[&str]) -> Systems {
        let dir = tempfile::tempdir().expect("a temp dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("scripts")).unwrap();
        for (f, _) in fakes {
            std::fs::write(d.join("scripts").join(format!("{}.sh", f.name)), f.script()).unwrap();
        }
        let list: Vec<String> = fakes
            .iter()
            .map(|(f, _)| format!("{{ name = \"{}\"; kernel = \"{}\"; healthy = {}; }}", f.name, f.kernel, f.healthy))
            .collect();
        // A nonce makes every test's systems new store paths, so deleting them never touches another test's.
        let nonce = format!("{}-{}", std::process::id(), d.display());
        let expr = format!(
            r#"let
  nonce = "{nonce}";
  base = {{ system = builtins.currentSystem; PATH = "/usr/bin:/bin"; builder = "/bin/sh"; inherit nonce; }};
  kernel = v: derivation (base // {{
    name = "fake-linux-${{v}}";
    args = [ "-c" "mkdir -p $out/lib/modules/${{v}}; echo ${{v}} > $out/bzImage; echo ${{v}} > $out/initrd" ];
  }});
  mk = s: derivation (base // {{
    name = "nixos-system-${{s.name}}";
    kernelPkg = kernel s.kernel;
    script = builtins.readFile (./scripts + "/${{s.name}}.sh");
    healthy = if s.healthy then "1" else "";
    args = [ "-c" ''
      mkdir -p $out/bin
      ln -s $kernelPkg/bzImage $out/kernel
      ln -s $kernelPkg/initrd $out/initrd
      ln -s $kernelPkg/lib/modules $out/kernel-modules
      printf '%s' "$script" > $out/bin/switch-to-configuration
      chmod +x $out/bin/switch-to-configuration
      if [ -n "$healthy" ]; then echo ok > $out/healthy; fi
    '' ];
  }});
in builtins.listToAttrs (map (s: {{ name = s.name; value = mk s; }}) [ {} ])"#,
            list.join(" ")
        );
        std::fs::write(d.join("fakes.nix"), expr).unwrap();
        let mut build = Command::new("nix-build");
        build.arg("--no-out-link").arg(d.join("fakes.nix")).args(["--option", "substituters", ""]);
        for (f, _) in fakes {
            build.args(["-A", f.name]);
        }
        let out = run(&mut build);
        let paths: BTreeMap<&'static str, String> =
            fakes.iter().map(|(f, _)| f.name).zip(out.lines().map(str::to_owned)).collect();
        assert_eq!(paths.len(), fakes.len(), "nix-build printed {out}");

        for (name, key) in [("trusted", "sendan-test-trusted-1"), ("untrusted", "sendan-test-untrusted-1")] {
            run(Command::new("nix-store")
                .arg("--generate-binary-cache-key")
                .arg(key)
                .arg(d.join(format!("{name}.sec")))
                .arg(d.join(format!("{name}.pub"))));
        }
        for (f, signing) in fakes {
            let key = match signing {
                Signing::Trusted => "trusted",
                Signing::Untrusted => "untrusted",
                Signing::Unsigned => continue,
            };
            let key_file = d.join(format!("{key}.sec"));
            // The trusted key signs the whole closure (the fake kernel too); the untrusted one only the system.
            let mut sign = nix3(&["store", "sign", "--key-file", key_file.to_str().unwrap()]);
            if *signing == Signing::Trusted {
                sign.arg("--recursive");
            }
            run(sign.arg(&paths[f.name]));
        }
        let cache_dir = d.join("cache");
        let to = format!("file://{}?compression=none", cache_dir.display());
        run(nix3(&["copy", "--to", &to]).args(paths.values()));
        let doomed: Vec<&String> = paths.iter().filter(|(n, _)| !keep.contains(n)).map(|(_, p)| p).collect();
        if !doomed.is_empty() {
            run(Command::new("nix-store").arg("--delete").args(&doomed));
        }
        let public_key = std::fs::read_to_string(d.join("trusted.pub")).unwrap().trim().to_owned();
        let cache = CacheServer::start(cache_dir);
        Systems { dir, paths, public_key, cache }
    }

    pub fn path(&self, name: &str) -> &str {
        &self.paths[name]
    }
}

/// A static file server for a binary cache directory (`nix-cache-info`, `*.narinfo`, `nar/…`).
pub struct CacheServer {
    pub url: String,
}

impl CacheServer {
    pub fn start(root: PathBuf) -> CacheServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let root = root.clone();
                std::thread::spawn(move || serve_file(conn, &root));
            }
        });
        CacheServer { url }
    }
}

fn serve_file(conn: TcpStream, root: &Path) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let rel = path.split('?').next().unwrap_or("").trim_start_matches('/');
    let file = (!rel.contains("..")).then(|| root.join(rel)).filter(|p| p.is_file());
    let mut conn = conn;
    let _ = match file.and_then(|p| std::fs::read(p).ok()) {
        Some(body) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            conn.write_all(head.as_bytes()).and_then(|_| if method == "HEAD" { Ok(()) } else { conn.write_all(&body) })
        }
        None => conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
    let _ = conn.shutdown(Shutdown::Both);
}

/// A TCP proxy to `upstream` whose link is down while `marker` exists: new connections are refused and traffic
/// on open ones cuts them.
pub struct Proxy {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: String, marker: PathBuf) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                if marker.exists() {
                    let _ = conn.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect(&upstream) else { continue };
                for (from, to) in [(conn.try_clone().unwrap(), up.try_clone().unwrap()), (up, conn)] {
                    let marker = marker.clone();
                    std::thread::spawn(move || pump(from, to, &marker));
                }
            }
        });
        Proxy { addr, stop }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, marker: &Path) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(n) if n > 0 && !marker.exists() && to.write_all(&buf[..n]).is_ok() => {}
            _ => {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// One fake node: its `FAKE_DIR` (system links, profile, logs, agent state) and its running agent.
pub struct Node {
    pub id: String,
    pub dir: PathBuf,
    pub agent: Option<Child>,
    config: PathBuf,
}

impl Node {
    /// Prepare `id`'s directory below `root`: running and booted system `running`, the agent's config pointing at
    /// `server` with `token`, the health check "the running system carries the `healthy` marker", and a reboot
    /// command that stands for the machine's reboot: it records the boot default in `reboot.log` and points the
    /// booted and running system links at it (the machine came back on it at once).
    pub fn new(root: &Path, id: &str, running: &str, server: &str, token: &str) -> Node {
        let dir = root.join(id);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::os::unix::fs::symlink(running, dir.join("current-system")).unwrap();
        std::os::unix::fs::symlink(running, dir.join("booted-system")).unwrap();
        std::fs::write(dir.join("token"), token).unwrap();
        let reboot = "#!/bin/sh\nset -e\nt=$(readlink -f \"$FAKE_DIR/profile\")\necho \"$t $SENDAN_SYSTEM\" >> \"$FAKE_DIR/reboot.log\"\n\
                      ln -sfn \"$t\" \"$FAKE_DIR/booted-system\"\nln -sfn \"$t\" \"$FAKE_DIR/current-system\"\n";
        std::fs::write(dir.join("reboot.sh"), reboot).unwrap();
        let p = |name: &str| dir.join(name).display().to_string();
        let config = format!(
            r#"server = "http://{server}"
node = "{id}"
token-file = "{token}"
state-dir = "{state}"
profile = "{profile}"
current-system = "{current}"
booted-system = "{booted}"
systemd-run = "never"
poll-interval-secs = 2
switch-timeout-secs = 30
health-timeout-secs = 3
confirm-timeout-secs = 3
health-interval-ms = 100
reboot-command = ["/bin/sh", "{reboot}"]

[health]
commands = [["/bin/sh", "-c", "test -e \"$FAKE_DIR/current-system/healthy\""]]
"#,
            token = p("token"),
            state = p("state"),
            profile = p("profile"),
            current = p("current-system"),
            booted = p("booted-system"),
            reboot = p("reboot.sh"),
        );
        std::fs::write(dir.join("agent.toml"), config).unwrap();
        Node { id: id.to_owned(), config: dir.join("agent.toml"), dir, agent: None }
    }

    /// Change one setting of the agent's config file (`key = value`, value as TOML); applies from the next start.
    pub fn set(&self, key: &str, value: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let prefix = format!("{key} = ");
        assert!(text.lines().any(|l| l.starts_with(&prefix)), "the agent config has no `{key}`");
        let text: Vec<String> = text
            .lines()
            .map(|l| if l.starts_with(&prefix) { format!("{prefix}{value}") } else { l.to_owned() })
            .collect();
        std::fs::write(&self.config, text.join("\n") + "\n").unwrap();
    }

    fn agent_command(&self) -> Command {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("agent.log")).unwrap();
        let mut c = Command::new(crate::binary("sendan-agent"));
        c.arg("nix")
            .arg("--config")
            .arg(&self.config)
            .env("FAKE_DIR", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        c
    }

    /// Start (or restart) the real `sendan-agent nix` for this node; its stderr goes to `agent.log`.
    pub fn start_agent(&mut self) {
        self.kill_agent();
        self.agent = Some(self.agent_command().spawn().expect("sendan-agent starts"));
    }

    /// Run the agent with `--once`: one pass, then exit; whether it exited 0.
    pub fn run_agent_once(&mut self) -> bool {
        self.kill_agent();
        self.agent_command().arg("--once").status().expect("sendan-agent runs").success()
    }

    /// Start a second `sendan-agent nix --once` beside the running one, with the same config and state
    /// directory; its exit status and what it printed.
    pub fn run_second_agent(&self) -> std::process::Output {
        self.agent_command().arg("--once").stderr(Stdio::piped()).output().expect("sendan-agent runs")
    }

    /// `kill -9` the agent (a switch it started keeps running: it is in its own process group).
    pub fn kill_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the fake systems' `switch-to-configuration` were asked, in order: `(system, verb)`.
    pub fn switches(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.dir.join("switch.log")).unwrap_or_default();
        text.lines().filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned()))).collect()
    }

    /// The reboots the agent asked for, in order: `(boot default, the system the agent meant)`.
    pub fn reboots(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.dir.join("reboot.log")).unwrap_or_default();
        text.lines().filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned()))).collect()
    }

    /// Where a link of the node points.
    pub fn link(&self, name: &str) -> Option<String> {
        std::fs::canonicalize(self.dir.join(name)).ok().map(|p| p.display().to_string())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_agent();
    }
}

/// A valid ClusterSpec (the core's fixture) whose pool `pool` holds `nodes`, each running its system, with the
/// binary cache as the only substituter and `key` as the only trusted key.
pub fn spec(pool: &str, nodes: &[(&str, &str)], substituter: &str, key: &str) -> sendan_core::spec::ClusterSpec {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../../core/src/spec/fixture.json")).expect("the core's fixture is JSON");
    doc["name"] = "nix-agent-test".into();
    doc["bootstrap"]["substituters"] = serde_json::json!([substituter]);
    doc["bootstrap"]["trustedPublicKeys"] = serde_json::json!([key]);
    doc["pools"][pool] = serde_json::json!({
        "class": "worker", "description": null, "diskLayout": null, "indexWidth": 2,
        "ipPools": { "rack2": "rack2-v4" }, "namePattern": format!("{pool}-{{index}}"), "profile": null,
        "racks": ["rack2"], "size": 0
    });
    for (i, (node, system)) in nodes.iter().enumerate() {
        doc["nodes"][*node] = serde_json::json!({
            "class": "worker", "diskLayout": "single", "generated": false, "pool": pool, "profile": "base",
            "rack": "rack2",
            "network": { "address": format!("10.0.2.{}", 6 + i), "allocated": false, "interface": "en*", "ipPool": "rack2-v4" },
            "system": { "flake": null, "storePath": system }
        });
    }
    let spec = sendan_core::spec::ClusterSpec::from_json(&doc.to_string()).expect("the test spec parses");
    if let Err(e) = spec.validate() {
        panic!("the test spec is invalid: {e}");
    }
    spec
}

/// Bring `nodes` into the fleet as `active` nodes (discovered, commissioned, installed, activated) and issue each
/// a node token; the tokens, in order.
pub async fn enroll(admin: &sendan_api::client::Client, nodes: &[&str]) -> Vec<String> {
    let mut tokens = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let machine = format!("52:54:00:00:10:{:02x}", i + 1);
        let mut events: Vec<sendan_core::wire::ProposalIn> = [
            // One disk, so the spec's disk layout fits the machine when its install is requested.
            // Four CPU threads and 8 GiB, so services that reserve some fit.
            serde_json::json!({"type": "MachineDiscovered", "machine": machine, "facts": {
                "cpu": { "model": "fake", "sockets": 1, "cores": 4, "threads": 4, "virtualization": [] },
                "memory_bytes": 8u64 << 30,
                "disks": [{ "name": "nvme0n1", "size_bytes": 1_000_204_886_016u64, "rotational": false,
                            "by_id": format!("/dev/disk/by-id/nvme-fake-{i}") }]
            }}),
            serde_json::json!({"type": "NodeCommissioned", "node": node, "machine": machine}),
            serde_json::json!({"type": "NodeInstallRequested", "node": node}),
            serde_json::json!({"type": "NodeInstallStarted", "node": node}),
            serde_json::json!({"type": "NodeActivated", "node": node}),
        ]
        .into_iter()
        .map(|p| sendan_core::wire::ProposalIn {
            id: None,
            comment: None,
            cause: None,
            payload: serde_json::from_value(p).expect("a valid payload"),
        })
        .collect();
        admin.submit(&mut events, std::time::Duration::from_secs(30)).await.expect("the node enrols");
        tokens.push(admin.issue_node_token(node).await.expect("a node token").token);
    }
    tokens
}

/// The node's system view, as the admin reads it.
pub async fn system_view(admin: &sendan_api::client::Client, node: &str) -> Option<sendan_core::wire::NodeSystemView> {
    admin.get(&format!("/v1/nodes/{node}/system"), &()).await.ok()
}

/// Every event about `node`, in order.
pub async fn history(admin: &sendan_api::client::Client, node: &str) -> Vec<sendan_core::Event> {
    let f = sendan_api::client::EventFilter { limit: Some(10_000), ..Default::default() };
    admin.history(node, &f).await.expect("the node's history").events
}
