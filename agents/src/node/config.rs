//! `sendan-agent node`'s configuration: a TOML or JSON file plus flags with the same names, validated once into a
//! typed [`Config`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::nix::config::{ConfigError, SystemdRun, hostname, systemd_is_pid1};

/// The configuration as it appears in a file (`--config`) or as flags; every field optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// Any Sendan member's API address.
    pub server: Option<String>,
    /// The node token (`sendan node token ID`); default `<state-dir>/token`.
    pub token_file: Option<PathBuf>,
    /// PEM certificates an `https://` server's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// This node's id; default the hostname.
    pub node: Option<String>,
    pub state_dir: Option<PathBuf>,
    /// The address instances' ports are published at (and health-checked on); default 127.0.0.1.
    pub advertise: Option<String>,
    /// Dynamic ports are allocated from this range, `FROM-TO` [default: 20000-32000].
    pub port_range: Option<String>,
    /// Run instances as transient systemd units (`systemd-run`): `auto` (when systemd is PID 1), `always` or
    /// `never` (a supervised process group of the agent's).
    pub systemd_run: Option<SystemdRun>,
    /// Where `nix-store` and `nix` are; default: found on `PATH`.
    pub nix_bin_dir: Option<PathBuf>,
    /// Re-read the node's instances at least this often, even without events.
    pub poll_interval_ms: Option<u64>,
    /// How long a stopped instance has after SIGTERM before SIGKILL.
    pub stop_grace_secs: Option<u64>,
    pub fetch_timeout_secs: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub server: String,
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub node: sendan_core::NodeId,
    pub state_dir: PathBuf,
    pub advertise: IpAddr,
    pub ports: (u16, u16),
    pub systemd_run: bool,
    pub nix_bin_dir: Option<PathBuf>,
    pub poll_interval: Duration,
    pub stop_grace: Duration,
    pub fetch_timeout: Duration,
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
            advertise: over.advertise.or(self.advertise),
            port_range: over.port_range.or(self.port_range),
            systemd_run: over.systemd_run.or(self.systemd_run),
            nix_bin_dir: over.nix_bin_dir.or(self.nix_bin_dir),
            poll_interval_ms: over.poll_interval_ms.or(self.poll_interval_ms),
            stop_grace_secs: over.stop_grace_secs.or(self.stop_grace_secs),
            fetch_timeout_secs: over.fetch_timeout_secs.or(self.fetch_timeout_secs),
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
        let state_dir = self.state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/sendan-agent-node"));
        let advertise = match self.advertise.as_deref() {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(a) => a.parse().map_err(|_| invalid("advertise", format!("`{a}` is not an IP address")))?,
        };
        let range = self.port_range.as_deref().unwrap_or("20000-32000");
        let ports = range
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .filter(|(a, b)| *a >= 1024 && a <= b)
            .ok_or_else(|| {
                invalid("port-range", format!("`{range}` is not FROM-TO with 1024 <= FROM <= TO <= 65535"))
            })?;
        let systemd_run = match self.systemd_run.unwrap_or_default() {
            SystemdRun::Always => true,
            SystemdRun::Never => false,
            SystemdRun::Auto => systemd_is_pid1(),
        };
        let positive = |key: &'static str, v: Option<u64>, default: u64| match v.unwrap_or(default) {
            0 => Err(invalid(key, "must be at least 1")),
            n => Ok(n),
        };
        Ok(Config {
            server,
            token_file: self.token_file.unwrap_or_else(|| state_dir.join("token")),
            ca_file: self.ca_file,
            node,
            advertise,
            ports,
            systemd_run,
            nix_bin_dir: self.nix_bin_dir,
            poll_interval: Duration::from_millis(positive("poll-interval-ms", self.poll_interval_ms, 5000)?),
            stop_grace: Duration::from_secs(positive("stop-grace-secs", self.stop_grace_secs, 10)?),
            fetch_timeout: Duration::from_secs(positive("fetch-timeout-secs", self.fetch_timeout_secs, 3600)?),
            state_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_and_bad_values_name_their_key() {
        let c = ConfigFile { server: Some("http://x:7770".into()), node: Some("n1".into()), ..ConfigFile::default() }
            .validate(None)
            .unwrap();
        assert_eq!(c.ports, (20000, 32000));
        assert_eq!(c.advertise.to_string(), "127.0.0.1");
        assert_eq!(c.token_file, PathBuf::from("/var/lib/sendan-agent-node/token"));
        let bad = |f: ConfigFile| f.validate(Some("n1".into())).unwrap_err();
        let base = ConfigFile { server: Some("http://x".into()), ..ConfigFile::default() };
        let e = bad(ConfigFile { port_range: Some("9000-80".into()), ..base.clone() });
        assert!(matches!(e, ConfigError::Invalid { key: "port-range", .. }), "{e}");
        let e = bad(ConfigFile { advertise: Some("example.com".into()), ..base.clone() });
        assert!(matches!(e, ConfigError::Invalid { key: "advertise", .. }), "{e}");
        let e = bad(ConfigFile { stop_grace_secs: Some(0), ..base });
        assert!(matches!(e, ConfigError::Invalid { key: "stop-grace-secs", .. }), "{e}");
    }
}
