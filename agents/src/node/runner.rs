//! Running instances, behind the [`Runner`] trait: [`Supervisor`] starts each as a process group of the
//! agent's own (stdout and stderr appended to a log file in the state directory) and, after the agent restarts,
//! recognises the processes it left running by pid and start time; [`Systemd`] starts each as a transient unit
//! with `systemd-run` where systemd is PID 1. Also what an instance is launched with: its package fetched, its
//! ports allocated, its command resolved and its environment set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sendan_core::InstanceId;
use sendan_core::services::Task;

use super::plan::{Exit, Local};

/// What to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub id: InstanceId,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub log: PathBuf,
}

/// A started instance: the process to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub pid: Option<u32>,
    pub start_ticks: Option<u64>,
    pub unit: Option<String>,
}

pub trait Runner {
    fn start(&mut self, launch: &Launch) -> Result<Started, String>;
    /// `None` while it runs; how it ended once it has.
    fn ended(&mut self, local: &Local) -> Option<Exit>;
    /// Stop it: SIGTERM to its process group (or `systemctl stop`), SIGKILL past `grace`.
    fn stop(&mut self, local: &Local, grace: Duration);
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) takes plain integers.
    unsafe { libc_kill(pid, sig) == 0 }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`, field 22): with the pid, it names one
/// process for good, as pids are reused.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after it follow the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is still the process started at `ticks`, and not a zombie.
fn same_process_alive(pid: u32, ticks: Option<u64>) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).unwrap_or("");
    state != "Z" && state != "X" && ticks.is_none_or(|t| start_ticks(pid) == Some(t))
}

/// Instances as process groups of the agent.
#[derive(Default)]
pub struct Supervisor {
    children: HashMap<InstanceId, Child>,
}

impl Runner for Supervisor {
    fn start(&mut self, launch: &Launch) -> Result<Started, String> {
        if let Some(dir) = launch.log.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .map_err(|e| format!("cannot open {}: {e}", launch.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args).envs(&launch.env).stdin(Stdio::null()).stdout(log).stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", launch.program.display()))?;
        let pid = child.id();
        self.children.insert(launch.id.clone(), child);
        Ok(Started { pid: Some(pid), start_ticks: start_ticks(pid), unit: None })
    }

    fn ended(&mut self, local: &Local) -> Option<Exit> {
        if let Some(child) = self.children.get_mut(&local.id) {
            use std::os::unix::process::ExitStatusExt;
            return match child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => {
                    self.children.remove(&local.id);
                    let reason = match (status.code(), status.signal()) {
                        (Some(c), _) => format!("it exited with status {c}"),
                        (None, Some(s)) => format!("it was ended by signal {s}"),
                        _ => "it ended".into(),
                    };
                    Some(Exit { code: status.code(), signal: status.signal(), at_ms: now_ms(), reason })
                }
                Err(e) => {
                    Some(Exit { code: None, signal: None, at_ms: now_ms(), reason: format!("cannot wait for it: {e}") })
                }
            };
        }
        match local.pid {
            // A process a previous agent started: its exit status is not ours to read.
            Some(pid) if same_process_alive(pid, local.start_ticks) => None,
            Some(_) => Some(Exit {
                code: None,
                signal: None,
                at_ms: now_ms(),
                reason: "it ended while the agent was not watching".into(),
            }),
            None => Some(Exit { code: None, signal: None, at_ms: now_ms(), reason: "it never started".into() }),
        }
    }

    fn stop(&mut self, local: &Local, grace: Duration) {
        let Some(pid) = local.pid else { return };
        let group = -(pid as i32);
        let alive = |s: &mut Self| match s.children.get_mut(&local.id) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => same_process_alive(pid, local.start_ticks),
        };
        if !alive(self) {
            self.children.remove(&local.id);
            return;
        }
        signal(group, SIGTERM);
        let until = Instant::now() + grace;
        while alive(self) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50)); // pacing while the process group exits
        }
        if alive(self) {
            signal(group, SIGKILL);
        }
        if let Some(mut c) = self.children.remove(&local.id) {
            let _ = c.wait();
        }
    }
}

/// Instances as transient systemd units (`systemd-run`), where systemd is PID 1.
#[derive(Default)]
pub struct Systemd;

fn systemctl_show(unit: &str, props: &str) -> BTreeMap<String, String> {
    let out = Command::new("systemctl").args(["show", "-p", props, unit]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

impl Runner for Systemd {
    fn start(&mut self, launch: &Launch) -> Result<Started, String> {
        let unit = format!("sendan-{}-{}.service", launch.id.as_str().replace('.', "-"), now_ms());
        let mut cmd = Command::new("systemd-run");
        cmd.arg(format!("--unit={unit}"))
            .args(["--property=Restart=no", "--property=KillMode=control-group", "--quiet"])
            .arg(format!("--property=StandardOutput=append:{}", launch.log.display()))
            .arg(format!("--property=StandardError=append:{}", launch.log.display()));
        for (k, v) in &launch.env {
            cmd.arg(format!("--setenv={k}={v}"));
        }
        cmd.arg("--").arg(&launch.program).args(&launch.args);
        let out = cmd.output().map_err(|e| format!("cannot run systemd-run: {e}"))?;
        if !out.status.success() {
            return Err(format!("systemd-run failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let pid =
            systemctl_show(&unit, "MainPID").get("MainPID").and_then(|p| p.parse::<u32>().ok()).filter(|p| *p > 0);
        Ok(Started { pid, start_ticks: pid.and_then(start_ticks), unit: Some(unit) })
    }

    fn ended(&mut self, local: &Local) -> Option<Exit> {
        let Some(unit) = &local.unit else {
            return Some(Exit { code: None, signal: None, at_ms: now_ms(), reason: "it never started".into() });
        };
        let p = systemctl_show(unit, "ActiveState,ExecMainCode,ExecMainStatus");
        match p.get("ActiveState").map(String::as_str) {
            Some("active" | "activating" | "reloading" | "deactivating") => None,
            _ => {
                let status: Option<i32> = p.get("ExecMainStatus").and_then(|s| s.parse().ok());
                // ExecMainCode is a CLD_* code: 1 exited, 2 killed, 3 dumped.
                let (code, signal) = match p.get("ExecMainCode").map(String::as_str) {
                    Some("1") => (status, None),
                    Some("2" | "3") => (None, status),
                    _ => (None, None),
                };
                let _ = Command::new("systemctl").args(["reset-failed", unit]).status();
                Some(Exit { code, signal, at_ms: now_ms(), reason: format!("unit {unit} is no longer active") })
            }
        }
    }

    fn stop(&mut self, local: &Local, grace: Duration) {
        if let Some(unit) = &local.unit {
            let _ = Command::new("systemctl").args(["stop", &format!("--timeout={}s", grace.as_secs()), unit]).status();
            let _ = Command::new("systemctl").args(["reset-failed", unit]).status();
        }
    }
}

/// The ports of an instance of `task`: static ones as declared, dynamic ones the lowest in `range` that no
/// other instance here holds (`used`) and that `bind_ip` can bind now.
pub fn allocate_ports(
    task: &Task,
    used: &BTreeSet<u16>,
    range: (u16, u16),
    bind_ip: std::net::IpAddr,
) -> Result<BTreeMap<String, u16>, String> {
    let mut taken = used.clone();
    let mut out = BTreeMap::new();
    for (name, p) in &task.ports {
        if let Some(n) = p.static_port {
            out.insert(name.clone(), n);
            taken.insert(n);
        }
    }
    for name in task.ports.iter().filter(|(_, p)| p.static_port.is_none()).map(|(n, _)| n) {
        let free = (range.0..=range.1)
            .find(|p| !taken.contains(p) && std::net::TcpListener::bind((bind_ip, *p)).is_ok())
            .ok_or_else(|| format!("no free port in {}-{} for port {name}", range.0, range.1))?;
        taken.insert(free);
        out.insert(name.clone(), free);
    }
    Ok(out)
}

/// `$NAME` and `${NAME}` in `arg` replaced by `env`'s values (names not in `env` stay as they are).
pub fn expand(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], end)
        };
        match env.get(name).filter(|_| !name.is_empty()) {
            Some(v) => {
                out.push_str(v);
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What an instance is started with: its command (a relative `command[0]` inside the package; no command:
/// `<package>/bin/<service>`), its declared environment plus `SENDAN_PORT_<NAME>` for each port,
/// `SENDAN_INSTANCE`, `SENDAN_SERVICE`, `SENDAN_NODE` and `SENDAN_ADDRESS`, `$VARS` in the arguments replaced.
#[allow(clippy::too_many_arguments)]
pub fn launch(
    id: &InstanceId,
    service: &str,
    node: &str,
    address: &str,
    task: &Task,
    package: Option<&str>,
    ports: &BTreeMap<String, u16>,
    log: &Path,
) -> Result<Launch, String> {
    let mut env = task.environment.clone();
    for (name, port) in ports {
        env.insert(format!("SENDAN_PORT_{}", name.to_ascii_uppercase()), port.to_string());
    }
    env.insert("SENDAN_INSTANCE".into(), id.to_string());
    env.insert("SENDAN_SERVICE".into(), service.to_owned());
    env.insert("SENDAN_NODE".into(), node.to_owned());
    env.insert("SENDAN_ADDRESS".into(), address.to_owned());
    let (program, args) = match (&task.command, package) {
        (Some(cmd), pkg) => {
            let first = cmd.first().ok_or("its command is empty")?;
            let program = match pkg {
                Some(p) if !first.starts_with('/') && first.contains('/') => Path::new(p).join(first),
                _ => PathBuf::from(first),
            };
            (program, cmd[1..].iter().map(|a| expand(a, &env)).collect())
        }
        (None, Some(p)) => (Path::new(p).join("bin").join(service), Vec::new()),
        (None, None) => return Err("it has neither a command nor a package".into()),
    };
    Ok(Launch { id: id.clone(), program, args, env, log: log.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendan_core::spec::PortSpec;

    #[test]
    fn variables_in_arguments_are_replaced() {
        let env = BTreeMap::from([("SENDAN_PORT_HTTP".to_owned(), "20001".to_owned())]);
        assert_eq!(expand("--listen=0.0.0.0:$SENDAN_PORT_HTTP", &env), "--listen=0.0.0.0:20001");
        assert_eq!(expand("${SENDAN_PORT_HTTP}x", &env), "20001x");
        assert_eq!(expand("$HOME and $ alone", &env), "$HOME and $ alone");
    }

    #[test]
    fn static_ports_are_kept_and_dynamic_ones_skip_what_is_taken() {
        let task = Task {
            ports: BTreeMap::from([
                ("admin".to_owned(), PortSpec { static_port: Some(9901) }),
                ("http".to_owned(), PortSpec { static_port: None }),
            ]),
            ..Task::default()
        };
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = holder.local_addr().unwrap().port();
        let used = BTreeSet::from([busy.saturating_add(1)]);
        let range = (busy, busy.saturating_add(5));
        let ports = allocate_ports(&task, &used, range, "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(ports["admin"], 9901);
        assert!(ports["http"] > busy + 1, "skips the bound port and the used one: {ports:?}");
    }

    #[test]
    fn a_relative_command_runs_inside_the_package() {
        let task = Task {
            command: Some(vec!["bin/web".into(), "--port".into(), "$SENDAN_PORT_HTTP".into()]),
            ..Task::default()
        };
        let ports = BTreeMap::from([("http".to_owned(), 20001)]);
        let l = launch(
            &InstanceId::new("web.1").unwrap(),
            "web",
            "n1",
            "10.0.0.1",
            &task,
            Some("/nix/store/x-web"),
            &ports,
            Path::new("/tmp/l"),
        )
        .unwrap();
        assert_eq!(l.program, PathBuf::from("/nix/store/x-web/bin/web"));
        assert_eq!(l.args, ["--port", "20001"]);
        assert_eq!(l.env["SENDAN_PORT_HTTP"], "20001");
        let bare = Task { command: Some(vec!["python3".into()]), ..Task::default() };
        let l = launch(&InstanceId::new("web.1").unwrap(), "web", "n1", "a", &bare, None, &ports, Path::new("/tmp/l"))
            .unwrap();
        assert_eq!(l.program, PathBuf::from("python3"));
    }
}
