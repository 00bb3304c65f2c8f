//! What the agent does to the machine, behind the [`Host`] trait: read the system links, fetch closures with Nix,
//! set the profile, run `switch-to-configuration` (directly in its own process group, or in a transient unit
//! with `systemd-run --wait` when systemd runs the machine) and run the health checks. [`RealHost`] does it for
//! real; every path it touches comes from the [`Config`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sendan_core::event::{SwitchAction, SystemKind, system_kind};

use super::config::Config;

/// A `switch-to-configuration` run that was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub pid: Option<u32>,
    pub unit: Option<String>,
}

pub trait Host {
    /// The store path the link points at, if it exists.
    fn current_system(&self) -> Option<String>;
    fn booted_system(&self) -> Option<String>;
    /// Fetch `system`'s closure (a store path, signatures checked) or build it (a flake); the store path.
    fn realise(&self, system: &str, substituters: &[String], keys: &[String]) -> Result<String, String>;
    fn set_profile(&self, path: &str) -> Result<(), String>;
    /// Start `<path>/bin/switch-to-configuration <action>`; `tag` names the run (unit name, log).
    fn start_switch(&mut self, path: &str, action: SwitchAction, tag: &str) -> Result<Started, String>;
    /// Wait for the started switch; its exit code, or -1 if it ran past `deadline` and was killed.
    fn wait_switch(&mut self, started: &Started, deadline: Instant) -> i32;
    /// Whether a switch started by an earlier agent process is still running.
    fn still_running(&self, started: &Started) -> bool;
    /// Stop such a switch.
    fn kill(&self, started: &Started);
    /// Whether running `path` needs a reboot: its kernel, initrd or kernel modules differ from the booted ones.
    fn reboot_required(&self, path: &str) -> bool;
    /// One round of health checks of `path`; the failures, in words.
    fn check_health(&self, path: &str) -> Vec<String>;
    /// Reboot the machine into `path` (the boot default already): run the reboot command. `Ok` when it started
    /// the reboot; the machine may go down at any moment after.
    fn reboot(&self, path: &str) -> Result<(), String>;
}

pub struct RealHost {
    config: Config,
    /// The switch this process started and may wait on.
    child: Option<Child>,
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
const SIGKILL: i32 = 9;

impl RealHost {
    pub fn new(config: &Config) -> RealHost {
        RealHost { config: config.clone(), child: None }
    }

    fn nix(&self, program: &str) -> Command {
        let path = match &self.config.nix_bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let mut c = Command::new(path);
        c.stdin(Stdio::null());
        c
    }

    fn log_file(&self) -> Stdio {
        let path = self.config.state_dir.join("switch.log");
        match fs::OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => Stdio::from(f),
            Err(_) => Stdio::null(),
        }
    }

    /// `--option` arguments making Nix fetch from exactly these substituters, trust exactly these keys, require
    /// signatures, and not remember that a path was missing.
    fn fetch_options(substituters: &[String], keys: &[String]) -> Vec<String> {
        let mut args = Vec::new();
        let mut opt = |k: &str, v: String| args.extend(["--option".to_owned(), k.to_owned(), v]);
        if !substituters.is_empty() {
            opt("substituters", substituters.join(" "));
        }
        if !keys.is_empty() {
            opt("trusted-public-keys", keys.join(" "));
        }
        opt("require-sigs", "true".into());
        opt("narinfo-cache-negative-ttl", "0".into());
        args
    }
}

/// Fetch a store path's closure (from `substituters` only, signed by one of `keys`, no negative cache) or
/// build a flake reference; the store path. What `sendan-agent nix` fetches systems with and `sendan-agent node`
/// fetches services' packages with.
pub fn realise(
    nix_bin_dir: Option<&Path>,
    what: &str,
    substituters: &[String],
    keys: &[String],
    timeout: Duration,
) -> Result<String, String> {
    let nix = |program: &str| {
        let mut c = Command::new(nix_bin_dir.map_or_else(|| PathBuf::from(program), |d| d.join(program)));
        c.stdin(Stdio::null());
        c
    };
    let options = RealHost::fetch_options(substituters, keys);
    match system_kind(what)? {
        SystemKind::StorePath => {
            let mut cmd = nix("nix-store");
            cmd.arg("--realise").arg(what).args(&options);
            run_captured(cmd, timeout, "nix-store --realise")?;
            Ok(what.to_owned())
        }
        SystemKind::Flake => {
            let mut cmd = nix("nix");
            cmd.args([
                "--extra-experimental-features",
                "nix-command flakes",
                "build",
                "--no-link",
                "--print-out-paths",
            ])
            .arg(what)
            .args(&options);
            let out = run_captured(cmd, timeout, "nix build")?;
            let path = out.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or_default().to_owned();
            match system_kind(&path) {
                Ok(SystemKind::StorePath) => Ok(path),
                _ => Err(format!("nix build printed no store path for {what}")),
            }
        }
    }
}

/// Run `cmd` to completion within `timeout`, killing it past that; its stdout, or why it failed.
fn run_captured(mut cmd: Command, timeout: Duration, what: &str) -> Result<String, String> {
    let out = tempfile_pair().map_err(|e| format!("{what}: cannot capture output: {e}"))?;
    cmd.stdout(Stdio::from(out.0.try_clone().map_err(|e| e.to_string())?));
    cmd.stderr(Stdio::from(out.1.try_clone().map_err(|e| e.to_string())?));
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| format!("{what}: cannot start it: {e}"))?;
    let status = wait_until(&mut child, Instant::now() + timeout);
    let read = |mut f: &fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        let _ = f.seek(std::io::SeekFrom::Start(0)).and_then(|_| f.read_to_string(&mut s));
        s
    };
    let (stdout, stderr) = (read(&out.0), read(&out.1));
    match status {
        Some(s) if s.success() => Ok(stdout),
        Some(s) => Err(format!("{what} failed ({s}): {}", tail(&stderr, 1500))),
        None => Err(format!("{what} did not finish within {}s and was stopped", timeout.as_secs())),
    }
}

fn tempfile_pair() -> std::io::Result<(fs::File, fs::File)> {
    Ok((tempfile()?, tempfile()?))
}

/// An anonymous file in the temporary directory (unlinked at once).
fn tempfile() -> std::io::Result<fs::File> {
    let dir = std::env::temp_dir();
    for i in 0..100u32 {
        let name = dir.join(format!(".sendan-agent-{}-{}-{i}", std::process::id(), nanos()));
        match fs::OpenOptions::new().read(true).write(true).create_new(true).open(&name) {
            Ok(f) => {
                let _ = fs::remove_file(&name);
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary file name"))
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// The last `max` bytes of `s`, trimmed, on char boundaries.
fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_owned()
}

/// Wait for `child` until `deadline`; past it, kill its process group and return `None`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)), // child poll pacing
            _ => {
                // SAFETY: kill(2) on the process group this agent created for the child.
                unsafe { libc_kill(-(child.id() as i32), SIGKILL) };
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The store path a system link resolves to.
fn resolve(link: &Path) -> Option<String> {
    let target = fs::canonicalize(link).ok()?;
    let s = target.to_str()?.to_owned();
    (system_kind(&s) == Ok(SystemKind::StorePath)).then_some(s)
}

/// Whether process `pid` runs and is a `switch-to-configuration` (not a zombie, not a reused pid).
fn is_switch_process(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, None | Some('Z') | Some('X')) {
        return false;
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains("switch-to-configuration")
}

fn systemctl(args: &[&str]) -> Option<std::process::ExitStatus> {
    Command::new("systemctl").args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().ok()
}

impl Host for RealHost {
    fn reboot(&self, path: &str) -> Result<(), String> {
        let argv = &self.config.reboot_command;
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .env("SENDAN_SYSTEM", path)
            .stdin(Stdio::null())
            .stdout(self.log_file())
            .stderr(self.log_file())
            .status()
            .map_err(|e| format!("cannot run the reboot command {:?}: {e}", argv[0]))?;
        if status.success() { Ok(()) } else { Err(format!("the reboot command {argv:?} failed ({status})")) }
    }

    fn current_system(&self) -> Option<String> {
        resolve(&self.config.current_system)
    }

    fn booted_system(&self) -> Option<String> {
        resolve(&self.config.booted_system)
    }

    fn realise(&self, system: &str, substituters: &[String], keys: &[String]) -> Result<String, String> {
        let path =
            realise(self.config.nix_bin_dir.as_deref(), system, substituters, keys, self.config.prefetch_timeout)?;
        if system_kind(system)? == SystemKind::StorePath
            && !Path::new(&path).join("bin/switch-to-configuration").exists()
        {
            return Err(format!("{system} is not a NixOS system: it has no bin/switch-to-configuration"));
        }
        Ok(path)
    }

    fn set_profile(&self, path: &str) -> Result<(), String> {
        if let Some(dir) = self.config.profile.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut cmd = self.nix("nix-env");
        cmd.arg("--profile").arg(&self.config.profile).arg("--set").arg(path);
        run_captured(cmd, Duration::from_secs(300), "nix-env --set").map(|_| ())
    }

    fn start_switch(&mut self, path: &str, action: SwitchAction, tag: &str) -> Result<Started, String> {
        let program = Path::new(path).join("bin/switch-to-configuration");
        let mut cmd = if self.config.systemd_run {
            // As nixos-rebuild does: the switch runs in its own unit, so it survives this agent being stopped
            // or restarted by the very switch it runs.
            let unit = format!("sendan-switch-{tag}");
            let mut c = Command::new("systemd-run");
            c.args(["-E", "LOCALE_ARCHIVE", "-E", "NIXOS_INSTALL_BOOTLOADER", "--collect", "--no-ask-password"])
                .args(["--quiet", "--service-type=exec", "--wait"])
                .arg(format!("--unit={unit}"))
                .arg("--")
                .arg(&program)
                .arg(action.as_str());
            let _ = systemctl(&["reset-failed", &format!("{unit}.service")]);
            c
        } else {
            let mut c = Command::new(&program);
            c.arg(action.as_str());
            // Its own process group: the agent's death (or a signal to the agent's group) does not stop it.
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            c
        };
        cmd.stdin(Stdio::null()).stdout(self.log_file()).stderr(self.log_file());
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let started =
            Started { pid: Some(child.id()), unit: self.config.systemd_run.then(|| format!("sendan-switch-{tag}")) };
        self.child = Some(child);
        Ok(started)
    }

    fn wait_switch(&mut self, started: &Started, deadline: Instant) -> i32 {
        let Some(mut child) = self.child.take() else { return -1 };
        match wait_until(&mut child, deadline) {
            Some(status) => status.code().unwrap_or(-1),
            None => {
                self.kill(started);
                -1
            }
        }
    }

    fn still_running(&self, started: &Started) -> bool {
        if let Some(unit) = &started.unit {
            return systemctl(&["is-active", "--quiet", &format!("{unit}.service")]).is_some_and(|s| s.success());
        }
        started.pid.is_some_and(is_switch_process)
    }

    fn kill(&self, started: &Started) {
        if let Some(unit) = &started.unit {
            let _ = systemctl(&["stop", &format!("{unit}.service")]);
        } else if let Some(pid) = started.pid
            && is_switch_process(pid)
        {
            // SAFETY: kill(2) on the process group the switch was started in (its pid is the group id).
            unsafe { libc_kill(-(pid as i32), SIGKILL) };
        }
    }

    fn reboot_required(&self, path: &str) -> bool {
        let Ok(booted) = fs::canonicalize(&self.config.booted_system) else { return false };
        ["kernel", "initrd", "kernel-modules"].iter().any(|part| {
            let (old, new) = (fs::canonicalize(booted.join(part)), fs::canonicalize(Path::new(path).join(part)));
            matches!((old, new), (Ok(a), Ok(b)) if a != b)
        })
    }

    fn check_health(&self, path: &str) -> Vec<String> {
        let h = &self.config.health;
        let mut failures = Vec::new();
        for unit in &h.units {
            match systemctl(&["is-active", "--quiet", unit]) {
                Some(s) if s.success() => {}
                _ => failures.push(format!("unit {unit} is not active")),
            }
        }
        for probe in &h.http {
            let agent = ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build(),
            );
            match agent.get(&probe.url).call() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let ok = probe.status.map_or((200..300).contains(&status), |want| want == status);
                    if !ok {
                        failures.push(format!("{} answered {status}", probe.url));
                    }
                }
                Err(e) => failures.push(format!("{} cannot be reached: {e}", probe.url)),
            }
        }
        for argv in &h.commands {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]).env("SENDAN_SYSTEM", path);
            if let Err(e) = run_captured(cmd, Duration::from_secs(30), &format!("`{}`", argv.join(" "))) {
                failures.push(e);
            }
        }
        failures
    }
}
