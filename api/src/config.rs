//! The server's configuration: a TOML or JSON file plus flags with the same names, validated once into
//! a typed [`ServerConfig`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One member's configuration as it appears in a file (`--config`) or as flags; every field optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    pub node_id: Option<u64>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `1=10.0.0.1:7770,2=10.0.0.2:7770,…`, or a table `{ "1" = "10.0.0.1:7770", … }`.
    pub initial_cluster: Option<InitialCluster>,
    /// `new` (bootstrap the cluster from `initial-cluster`) or `existing` (wait to be added).
    pub initial_cluster_state: Option<ClusterState>,
    pub cluster_secret_file: Option<PathBuf>,
    pub admin_token_file: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Most connections open at once.
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers (and a keep-alive connection may stay idle).
    pub http_header_timeout_secs: Option<u64>,
    /// Seconds a client has to send a request's whole body.
    pub http_body_timeout_secs: Option<u64>,
    /// Netboot and installer requests per second per source address (0: no limit).
    pub bootstrap_rate_limit: Option<u32>,
    /// Seconds without a heartbeat after which the leader declares a node's agent lost.
    pub agent_deadline_secs: Option<u64>,
    /// Seconds the power controller waits for a BMC to report the power state it asked for.
    pub power_deadline_secs: Option<u64>,
    pub snapshot_every: Option<u64>,
    pub keep_after_snapshot: Option<u64>,
    pub checkpoint_every: Option<u64>,
    pub heartbeat_ms: Option<u64>,
    pub election_timeout_ms: Option<u64>,
    /// The URL installers reach this member at; default `http://<its initial-cluster address>`.
    pub public_url: Option<String>,
    /// Files served at `/v1/boot/files/…`; image paths without a URL scheme are below it.
    pub boot_dir: Option<PathBuf>,
    /// The netboot installer's kernel, initrd and extra kernel command line (iPXE fetches them).
    pub installer_kernel: Option<String>,
    pub installer_initrd: Option<String>,
    pub installer_cmdline: Option<String>,
    /// The rescue image, booted by nodes in `rescue`.
    pub rescue_kernel: Option<String>,
    pub rescue_initrd: Option<String>,
    pub rescue_cmdline: Option<String>,
    /// How long a bootstrap token handed out by netboot works before its machine phones home.
    pub bootstrap_token_ttl_secs: Option<u64>,
    /// Serve HTTPS (API and peers) with this PEM certificate chain and its PEM private key.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// PEM certificates other members' certificates must chain to [default: the `tls-cert-file` chain].
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum InitialCluster {
    Flag(String),
    Table(BTreeMap<String, String>),
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterState {
    #[default]
    New,
    Existing,
}

/// A validated member configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub node_id: u64,
    pub listen: SocketAddr,
    /// The address other members and clients reach this member at (its entry in `initial-cluster`).
    pub advertise: String,
    pub data_dir: PathBuf,
    pub initial_cluster: BTreeMap<u64, String>,
    pub cluster_state: ClusterState,
    /// `None`: generated into the data directory (single-member clusters only).
    pub cluster_secret_file: Option<PathBuf>,
    /// `None`: generated into `data-dir/admin.token`.
    pub admin_token_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// Connection limit and timeouts.
    pub http: crate::serve::HttpLimits,
    /// Netboot and installer requests per second per source address (0: no limit).
    pub bootstrap_rate_limit: u32,
    /// How long the leader waits for a node agent's heartbeat before it declares the agent lost.
    pub agent_deadline: std::time::Duration,
    /// How long the power controller waits for a BMC to reach the power state it asked for.
    pub power_deadline: std::time::Duration,
    pub raft: sendan_raft::ClusterOptions,
    pub netboot: crate::bootstrap::NetbootConfig,
    /// `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// The files of a member that serves HTTPS; read when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// What other members' certificates must chain to; `None`: the member's own chain.
    pub ca: Option<PathBuf>,
}

impl ServerConfig {
    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7770";
pub const DEFAULT_DATA_DIR: &str = "sendan-data";
pub const DEFAULT_MAX_BODY: usize = 16 << 20;
/// Netboot and installer requests per second per source address: a machine asks for its script once and its
/// installer polls for its plan every few seconds, so ten a second (bursts of a hundred) is plenty.
pub const DEFAULT_BOOTSTRAP_RATE: u32 = 10;
/// A node agent silent this long is lost, and its instances are placed elsewhere.
pub const DEFAULT_AGENT_DEADLINE_SECS: u64 = 30;
/// A BMC that has not reached the power state asked for in this long has failed the request.
pub const DEFAULT_POWER_DEADLINE_SECS: u64 = 120;

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
            node_id: over.node_id.or(self.node_id),
            listen: over.listen.or(self.listen),
            data_dir: over.data_dir.or(self.data_dir),
            initial_cluster: over.initial_cluster.or(self.initial_cluster),
            initial_cluster_state: over.initial_cluster_state.or(self.initial_cluster_state),
            cluster_secret_file: over.cluster_secret_file.or(self.cluster_secret_file),
            admin_token_file: over.admin_token_file.or(self.admin_token_file),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            max_connections: over.max_connections.or(self.max_connections),
            http_header_timeout_secs: over.http_header_timeout_secs.or(self.http_header_timeout_secs),
            http_body_timeout_secs: over.http_body_timeout_secs.or(self.http_body_timeout_secs),
            bootstrap_rate_limit: over.bootstrap_rate_limit.or(self.bootstrap_rate_limit),
            agent_deadline_secs: over.agent_deadline_secs.or(self.agent_deadline_secs),
            power_deadline_secs: over.power_deadline_secs.or(self.power_deadline_secs),
            snapshot_every: over.snapshot_every.or(self.snapshot_every),
            keep_after_snapshot: over.keep_after_snapshot.or(self.keep_after_snapshot),
            checkpoint_every: over.checkpoint_every.or(self.checkpoint_every),
            heartbeat_ms: over.heartbeat_ms.or(self.heartbeat_ms),
            election_timeout_ms: over.election_timeout_ms.or(self.election_timeout_ms),
            public_url: over.public_url.or(self.public_url),
            boot_dir: over.boot_dir.or(self.boot_dir),
            installer_kernel: over.installer_kernel.or(self.installer_kernel),
            installer_initrd: over.installer_initrd.or(self.installer_initrd),
            installer_cmdline: over.installer_cmdline.or(self.installer_cmdline),
            rescue_kernel: over.rescue_kernel.or(self.rescue_kernel),
            rescue_initrd: over.rescue_initrd.or(self.rescue_initrd),
            rescue_cmdline: over.rescue_cmdline.or(self.rescue_cmdline),
            bootstrap_token_ttl_secs: over.bootstrap_token_ttl_secs.or(self.bootstrap_token_ttl_secs),
            tls_cert_file: over.tls_cert_file.or(self.tls_cert_file),
            tls_key_file: over.tls_key_file.or(self.tls_key_file),
            tls_ca_file: over.tls_ca_file.or(self.tls_ca_file),
        }
    }

    fn netboot_fields(&self) -> crate::bootstrap::NetbootFields {
        crate::bootstrap::NetbootFields {
            public_url: self.public_url.clone(),
            boot_dir: self.boot_dir.clone(),
            installer_kernel: self.installer_kernel.clone(),
            installer_initrd: self.installer_initrd.clone(),
            installer_cmdline: self.installer_cmdline.clone(),
            rescue_kernel: self.rescue_kernel.clone(),
            rescue_initrd: self.rescue_initrd.clone(),
            rescue_cmdline: self.rescue_cmdline.clone(),
            bootstrap_token_ttl_secs: self.bootstrap_token_ttl_secs,
        }
    }

    /// Fill defaults and check everything once.
    pub fn validate(self) -> Result<ServerConfig, ConfigError> {
        let netboot = self.netboot_fields();
        let node_id = self.node_id.unwrap_or(1);
        if node_id == 0 {
            return Err(invalid("node-id", "member ids start at 1"));
        }
        let listen_s = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr =
            listen_s.parse().map_err(|_| invalid("listen", format!("`{listen_s}` is not an IP:port address")))?;
        let initial_cluster = match self.initial_cluster {
            None => BTreeMap::from([(node_id, listen_s.clone())]),
            Some(InitialCluster::Flag(s)) => parse_initial_cluster(&s)?,
            Some(InitialCluster::Table(t)) => {
                let flag = t.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
                parse_initial_cluster(&flag)?
            }
        };
        let advertise = initial_cluster
            .get(&node_id)
            .cloned()
            .ok_or_else(|| invalid("initial-cluster", format!("it does not name this member (node-id {node_id})")))?;
        if initial_cluster.len() > 1 && self.cluster_secret_file.is_none() {
            return Err(invalid(
                "cluster-secret-file",
                "a cluster of several members needs the same secret on every member; pass --cluster-secret-file",
            ));
        }
        let mut raft = sendan_raft::ClusterOptions::default();
        if let Some(v) = self.snapshot_every {
            raft.snapshot_every = v.max(1);
        }
        if let Some(v) = self.keep_after_snapshot {
            raft.keep_after_snapshot = v;
        }
        if let Some(v) = self.checkpoint_every {
            raft.checkpoint_every = v.max(1);
        }
        if let Some(v) = self.heartbeat_ms {
            raft.heartbeat_ms = v.max(10);
        }
        if let Some(v) = self.election_timeout_ms {
            if v <= raft.heartbeat_ms * 2 {
                return Err(invalid("election-timeout-ms", "it must be more than twice the heartbeat"));
            }
            raft.election_min_ms = v;
            raft.election_max_ms = v * 2;
        }
        let tls = match (self.tls_cert_file, self.tls_key_file, self.tls_ca_file) {
            (Some(cert), Some(key), ca) => Some(TlsFiles { cert, key, ca }),
            (None, None, None) => None,
            (Some(_), None, _) => return Err(invalid("tls-key-file", "`tls-cert-file` needs its private key")),
            (None, Some(_), _) => return Err(invalid("tls-cert-file", "`tls-key-file` needs its certificate")),
            (None, None, Some(_)) => {
                return Err(invalid("tls-ca-file", "it only applies with `tls-cert-file` and `tls-key-file`"));
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let netboot = netboot.validate(&format!("{scheme}://{advertise}"))?;
        Ok(ServerConfig {
            node_id,
            listen,
            advertise,
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            initial_cluster,
            cluster_state: self.initial_cluster_state.unwrap_or_default(),
            cluster_secret_file: self.cluster_secret_file,
            admin_token_file: self.admin_token_file,
            max_body_bytes: self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY).max(1024),
            http: crate::serve::HttpLimits {
                max_connections: match self.max_connections {
                    Some(0) => return Err(invalid("max-connections", "it must be at least 1")),
                    Some(n) => n,
                    None => crate::serve::default_max_connections(),
                },
                header_timeout: secs("http-header-timeout-secs", self.http_header_timeout_secs)?
                    .unwrap_or(crate::serve::HttpLimits::DEFAULT_HEADER_TIMEOUT),
                body_timeout: secs("http-body-timeout-secs", self.http_body_timeout_secs)?
                    .unwrap_or(crate::serve::HttpLimits::DEFAULT_BODY_TIMEOUT),
            },
            bootstrap_rate_limit: self.bootstrap_rate_limit.unwrap_or(DEFAULT_BOOTSTRAP_RATE),
            agent_deadline: secs("agent-deadline-secs", self.agent_deadline_secs)?
                .unwrap_or(std::time::Duration::from_secs(DEFAULT_AGENT_DEADLINE_SECS)),
            power_deadline: secs("power-deadline-secs", self.power_deadline_secs)?
                .unwrap_or(std::time::Duration::from_secs(DEFAULT_POWER_DEADLINE_SECS)),
            raft,
            netboot,
            tls,
        })
    }
}

/// A timeout of 1 s to 1 h.
fn secs(key: &'static str, v: Option<u64>) -> Result<Option<std::time::Duration>, ConfigError> {
    match v {
        Some(s) if !(1..=3600).contains(&s) => Err(invalid(key, "it must be between 1 and 3600 seconds")),
        other => Ok(other.map(std::time::Duration::from_secs)),
    }
}

/// Parse `1=host:port,2=host:port`.
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) =
            part.split_once('=').ok_or_else(|| invalid("initial-cluster", format!("`{part}` is not ID=HOST:PORT")))?;
        let id: u64 = id
            .trim()
            .parse()
            .ok()
            .filter(|i| *i > 0)
            .ok_or_else(|| invalid("initial-cluster", format!("`{id}` is not a member id (a positive integer)")))?;
        let addr = addr.trim();
        if addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
            return Err(invalid("initial-cluster", format!("`{addr}` is not HOST:PORT")));
        }
        if out.insert(id, addr.to_owned()).is_some() {
            return Err(invalid("initial-cluster", format!("member {id} is listed twice")));
        }
    }
    if out.is_empty() {
        return Err(invalid("initial-cluster", "it is empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_configuration_is_a_single_member_on_the_default_port() {
        let c = ConfigFile::default().validate().unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.initial_cluster, BTreeMap::from([(1, DEFAULT_LISTEN.to_owned())]));
        assert_eq!(c.data_dir, PathBuf::from("sendan-data"));
    }

    #[test]
    fn toml_keys_are_the_flag_names() {
        let f: ConfigFile = toml::from_str(
            r#"
            node-id = 2
            listen = "127.0.0.1:7002"
            initial-cluster = "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"
            cluster-secret-file = "/run/secrets/sendan"
            "#,
        )
        .unwrap();
        let c = f.validate().unwrap();
        assert_eq!(c.advertise, "127.0.0.1:7002");
        assert_eq!(c.initial_cluster.len(), 3);
        let err = toml::from_str::<ConfigFile>("node_id = 2").unwrap_err().to_string();
        assert!(err.contains("unknown field `node_id`"), "{err}");
    }

    #[test]
    fn json_tables_work_too() {
        let f: ConfigFile = serde_json::from_str(
            r#"{"node-id": 1, "initial-cluster": {"1": "10.0.0.1:7770"}, "listen": "0.0.0.0:7770"}"#,
        )
        .unwrap();
        assert_eq!(f.validate().unwrap().advertise, "10.0.0.1:7770");
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let cases = [
            (ConfigFile { node_id: Some(0), ..Default::default() }, "member ids start at 1"),
            (ConfigFile { listen: Some("localhost".into()), ..Default::default() }, "not an IP:port"),
            (
                ConfigFile { initial_cluster: Some(InitialCluster::Flag("1=a:1,2=b:2".into())), ..Default::default() },
                "pass --cluster-secret-file",
            ),
            (
                ConfigFile { initial_cluster: Some(InitialCluster::Flag("2=a:1".into())), ..Default::default() },
                "does not name this member",
            ),
            (
                ConfigFile { initial_cluster: Some(InitialCluster::Flag("x=a:1".into())), ..Default::default() },
                "not a member id",
            ),
            (ConfigFile { tls_cert_file: Some("c.pem".into()), ..Default::default() }, "needs its private key"),
            (ConfigFile { tls_ca_file: Some("ca.pem".into()), ..Default::default() }, "only applies with"),
        ];
        for (file, want) in cases {
            let err = file.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
    }
}
