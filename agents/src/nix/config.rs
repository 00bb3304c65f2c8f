//! `sendan-agent nix`'s configuration: a TOML or JSON file plus flags with the same names, validated once into a
//! typed [`Config`]. Every path the agent touches (profile, current and booted system links, state directory) is
//! configuration, so tests run the agent against a real Nix store under a temporary directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The configuration as it appears in a file (`--config`) or as flags; every field optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// Any Sendan member's API address.
    pub server: Option<String>,
    /// The node token (`sendan node token ID`); default `<state-dir>/token`.
    pub token_file: Option<PathBuf>,
    /// PEM certificates an `https://` server's certificate must chain to (the cluster's CA); default: the
    /// public web roots.
    pub ca_file: Option<PathBuf>,
    /// This node's id; default the hostname.
    pub node: Option<String>,
    pub state_dir: Option<PathBuf>,
    /// The system profile `switch` and `boot` set.
    pub profile: Option<PathBuf>,
    /// The link to the running system (NixOS: `/run/current-system`).
    pub current_system: Option<PathBuf>,
    /// The link to the booted system (NixOS: `/run/booted-system`).
    pub booted_system: Option<PathBuf>,
    /// Where `nix-store`, `nix-env` and `nix` are; default: found on `PATH`.
    pub nix_bin_dir: Option<PathBuf>,
    /// Run `switch-to-configuration` in a transient unit with `systemd-run --wait`: `auto` (when systemd is PID
    /// 1), `always` or `never`.
    pub systemd_run: Option<SystemdRun>,
    /// Re-read the desired system at least this often, even without events.
    pub poll_interval_secs: Option<u64>,
    pub prefetch_timeout_secs: Option<u64>,
    /// A switch running longer is killed and counts as failed.
    pub switch_timeout_secs: Option<u64>,
    /// The health gate must pass within this long after the switch.
    pub health_timeout_secs: Option<u64>,
    /// The control plane must acknowledge the confirmation within this long after the health gate passed, or
    /// the agent rolls back.
    pub confirm_timeout_secs: Option<u64>,
    /// Pause between rounds of health checks.
    pub health_interval_ms: Option<u64>,
    /// Substituters and keys used besides the live spec's `bootstrap` ones.
    pub substituters: Option<Vec<String>>,
    pub trusted_public_keys: Option<Vec<String>>,
    pub health: Option<HealthChecks>,
    /// How the agent reboots the node into a confirmed system that takes effect at a reboot (action `boot`, or a
    /// switch that exited 100), once the node is drained: an argv list; default `["systemctl", "reboot"]`. It
    /// sees the system as `SENDAN_SYSTEM`.
    pub reboot_command: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SystemdRun {
    #[default]
    Auto,
    Always,
    Never,
}

impl std::str::FromStr for SystemdRun {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SystemdRun::Auto),
            "always" => Ok(SystemdRun::Always),
            "never" => Ok(SystemdRun::Never),
            other => Err(format!("`{other}` is not one of auto, always, never")),
        }
    }
}

/// What must hold after a switch for the new system to count as healthy; every check must pass in one round.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthChecks {
    /// systemd units that must be active (`systemctl is-active`).
    #[serde(default)]
    pub units: Vec<String>,
    #[serde(default)]
    pub http: Vec<HttpProbe>,
    /// Commands (argv) that must exit 0; they see the new system as `SENDAN_SYSTEM`.
    #[serde(default)]
    pub commands: Vec<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpProbe {
    pub url: String,
    /// The status expected; any 2xx when unset.
    #[serde(default)]
    pub status: Option<u16>,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub server: String,
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub node: sendan_core::NodeId,
    pub state_dir: PathBuf,
    pub profile: PathBuf,
    pub current_system: PathBuf,
    pub booted_system: PathBuf,
    pub nix_bin_dir: Option<PathBuf>,
    pub systemd_run: bool,
    pub poll_interval: Duration,
    pub prefetch_timeout: Duration,
    pub switch_timeout: Duration,
    pub health_timeout: Duration,
    pub confirm_timeout: Duration,
    pub health_interval: Duration,
    pub substituters: Vec<String>,
    pub trusted_public_keys: Vec<String>,
    pub health: HealthChecks,
    pub reboot_command: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config file {path} is invalid: {reason}")]
    Parse { path: String, reason: String },
    #[error("`{key}` is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

impl ConfigFile {
    /// Read a `.toml` or `.json` file.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let p = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: p.clone(), reason: e.to_string() })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|reason| ConfigError::Parse { path: p, reason })
    }

    /// Fields set in `over` win.
    pub fn overlay(self, over: ConfigFile) -> ConfigFile {
        ConfigFile {
            server: over.server.or(self.server),
            token_file: over.token_file.or(self.token_file),
            ca_file: over.ca_file.or(self.ca_file),
            node: over.node.or(self.node),
            state_dir: over.state_dir.or(self.state_dir),
            profile: over.profile.or(self.profile),
            current_system: over.current_system.or(self.current_system),
            booted_system: over.booted_system.or(self.booted_system),
            nix_bin_dir: over.nix_bin_dir.or(self.nix_bin_dir),
            systemd_run: over.systemd_run.or(self.systemd_run),
            poll_interval_secs: over.poll_interval_secs.or(self.poll_interval_secs),
            prefetch_timeout_secs: over.prefetch_timeout_secs.or(self.prefetch_timeout_secs),
            switch_timeout_secs: over.switch_timeout_secs.or(self.switch_timeout_secs),
            health_timeout_secs: over.health_timeout_secs.or(self.health_timeout_secs),
            confirm_timeout_secs: over.confirm_timeout_secs.or(self.confirm_timeout_secs),
            health_interval_ms: over.health_interval_ms.or(self.health_interval_ms),
            substituters: over.substituters.or(self.substituters),
            trusted_public_keys: over.trusted_public_keys.or(self.trusted_public_keys),
            health: over.health.or(self.health),
            reboot_command: over.reboot_command.or(self.reboot_command),
        }
    }

    /// Fill defaults and check everything once. `hostname` is the default node id.
    pub fn validate(self, hostname: Option<String>) -> Result<Config, ConfigError> {
        let server = self.server.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            invalid("server", "no server is configured; pass --server http://HOST:7770 or set `server` in the file")
        })?;
        let node = self
            .node
            .or(hostname)
            .ok_or_else(|| invalid("node", "no node id is configured and the hostname cannot be read; pass --node"))?;
        let node = sendan_core::NodeId::new(node).map_err(|e| invalid("node", e.to_string()))?;
        let state_dir = self.state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/sendan-agent"));
        let secs = |key: &'static str, v: Option<u64>, default: u64| -> Result<Duration, ConfigError> {
            match v.unwrap_or(default) {
                0 => Err(invalid(key, "must be at least 1")),
                n => Ok(Duration::from_secs(n)),
            }
        };
        let systemd_run = match self.systemd_run.unwrap_or_default() {
            SystemdRun::Always => true,
            SystemdRun::Never => false,
            SystemdRun::Auto => systemd_is_pid1(),
        };
        let health = self.health.unwrap_or_default();
        for probe in &health.http {
            if !(probe.url.starts_with("http://") || probe.url.starts_with("https://")) {
                return Err(invalid("health.http", format!("`{}` is not an http(s) URL", probe.url)));
            }
        }
        if health.commands.iter().any(Vec::is_empty) {
            return Err(invalid("health.commands", "a command is an argv list with at least the program"));
        }
        let reboot_command = self.reboot_command.unwrap_or_else(|| vec!["systemctl".into(), "reboot".into()]);
        if reboot_command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(invalid("reboot-command", "an argv list with at least the program"));
        }
        for (key, list) in [("substituters", &self.substituters), ("trusted-public-keys", &self.trusted_public_keys)] {
            if list.iter().flatten().any(|s| s.trim().is_empty() || s.contains(char::is_whitespace)) {
                return Err(invalid(key, "entries must be non-empty and contain no whitespace"));
            }
        }
        Ok(Config {
            server,
            token_file: self.token_file.unwrap_or_else(|| state_dir.join("token")),
            ca_file: self.ca_file,
            node,
            profile: self.profile.unwrap_or_else(|| PathBuf::from("/nix/var/nix/profiles/system")),
            current_system: self.current_system.unwrap_or_else(|| PathBuf::from("/run/current-system")),
            booted_system: self.booted_system.unwrap_or_else(|| PathBuf::from("/run/booted-system")),
            nix_bin_dir: self.nix_bin_dir,
            systemd_run,
            poll_interval: secs("poll-interval-secs", self.poll_interval_secs, 30)?,
            prefetch_timeout: secs("prefetch-timeout-secs", self.prefetch_timeout_secs, 3600)?,
            switch_timeout: secs("switch-timeout-secs", self.switch_timeout_secs, 900)?,
            health_timeout: secs("health-timeout-secs", self.health_timeout_secs, 120)?,
            confirm_timeout: secs("confirm-timeout-secs", self.confirm_timeout_secs, 30)?,
            health_interval: Duration::from_millis(self.health_interval_ms.unwrap_or(1000).max(10)),
            substituters: self.substituters.unwrap_or_default(),
            trusted_public_keys: self.trusted_public_keys.unwrap_or_default(),
            health,
            reboot_command,
            state_dir,
        })
    }
}

/// Whether systemd runs this machine (sd_booted: `/run/systemd/system` is a directory).
pub fn systemd_is_pid1() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The kernel's hostname, the default node id.
pub fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty()).then(|| h.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_and_flags_win() {
        let file: ConfigFile = toml::from_str(
            r#"
            server = "http://10.0.0.1:7770"
            node = "worker-01"
            confirm-timeout-secs = 5
            [health]
            units = ["sshd.service"]
            http = [{ url = "http://127.0.0.1:9100/", status = 200 }]
            commands = [["/run/current-system/sw/bin/true"]]
            "#,
        )
        .unwrap();
        let flags = ConfigFile { node: Some("worker-02".into()), ..ConfigFile::default() };
        let c = file.overlay(flags).validate(None).unwrap();
        assert_eq!(c.node.as_str(), "worker-02");
        assert_eq!(c.confirm_timeout, Duration::from_secs(5));
        assert_eq!(c.profile, PathBuf::from("/nix/var/nix/profiles/system"));
        assert_eq!(c.token_file, PathBuf::from("/var/lib/sendan-agent/token"));
        assert_eq!(c.health.units, ["sshd.service"]);
    }

    #[test]
    fn bad_settings_are_refused_with_the_key_named() {
        let err = toml::from_str::<ConfigFile>("sever = \"x\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `sever`"), "{err}");
        let no_server = ConfigFile { node: Some("n1".into()), ..ConfigFile::default() };
        assert!(matches!(no_server.validate(None), Err(ConfigError::Invalid { key: "server", .. })));
        let zero = ConfigFile {
            server: Some("http://x".into()),
            node: Some("n1".into()),
            switch_timeout_secs: Some(0),
            ..ConfigFile::default()
        };
        assert!(matches!(zero.validate(None), Err(ConfigError::Invalid { key: "switch-timeout-secs", .. })));
        let bad_node =
            ConfigFile { server: Some("http://x".into()), node: Some("a b".into()), ..ConfigFile::default() };
        assert!(matches!(bad_node.validate(None), Err(ConfigError::Invalid { key: "node", .. })));
    }
}
