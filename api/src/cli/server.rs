//! `sendan server`: run one cluster member until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::config::{ClusterState, ConfigFile, InitialCluster};

/// Flags of `sendan server`; each has the same name as its key in the config file.
#[derive(Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// A TOML or JSON config file with the same keys as these flags (flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This member's id in the cluster [default: 1].
    #[arg(long)]
    pub node_id: Option<u64>,
    /// Address to serve the API and peer endpoints on [default: 127.0.0.1:7770].
    #[arg(long)]
    pub listen: Option<String>,
    /// Where the log, state and secrets live [default: ./sendan-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The static initial cluster, `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT` [default: this member alone].
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// `new` bootstraps the cluster from --initial-cluster; `existing` waits to be added with `sendan cluster add`.
    #[arg(long, value_enum)]
    pub initial_cluster_state: Option<ClusterState>,
    /// File with the secret every member shares (required for several members) [default: generated].
    #[arg(long)]
    pub cluster_secret_file: Option<PathBuf>,
    /// File with the admin token [default: generated into DATA_DIR/admin.token, mode 0600].
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Largest request body in bytes [default: 16 MiB].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Most client and peer connections open at once; past it a new connection is closed at once and the log
    /// says so [default: what the open-file limit allows, at most 16384].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers, counted from the connection's start or the end of its
    /// previous response — so also how long a keep-alive connection may stay idle [default: 10].
    #[arg(long)]
    pub http_header_timeout_secs: Option<u64>,
    /// Seconds a client has to send a request's whole body; past it the request is answered 408 [default: 30].
    #[arg(long)]
    pub http_body_timeout_secs: Option<u64>,
    /// Netboot and installer requests (`/v1/boot/…`, `/v1/bootstrap/…`) per second per source address, in bursts
    /// of ten seconds' worth; past it a request is answered 429 with Retry-After (0: no limit) [default: 10].
    #[arg(long, help_heading = "Netboot")]
    pub bootstrap_rate_limit: Option<u32>,
    /// Seconds without a heartbeat from a node's `sendan-agent node` before the leader declares it lost and
    /// places its instances elsewhere; a new leader waits this long before declaring anything [default: 30].
    #[arg(long, help_heading = "Services")]
    pub agent_deadline_secs: Option<u64>,
    /// Seconds the leader's power controller waits for a node's BMC to report the power state it asked for
    /// before it records the request failed [default: 120].
    #[arg(long, help_heading = "Power")]
    pub power_deadline_secs: Option<u64>,
    /// Take a Raft snapshot (and compact the Raft log) every this many entries [default: 20000].
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// Raft entries kept after a snapshot for slightly lagging members [default: 2000].
    #[arg(long)]
    pub keep_after_snapshot: Option<u64>,
    /// Checkpoint the fleet projection every this many events [default: 10000].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Raft heartbeat interval in milliseconds [default: 100].
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Raft election timeout in milliseconds (randomised up to twice this) [default: 800].
    #[arg(long)]
    pub election_timeout_ms: Option<u64>,
    /// Serve the files below DIR at `/v1/boot/files/…` (ranges and ETags), so installer and rescue images need no
    /// second web server; an --installer-kernel/-initrd or --rescue-kernel/-initrd without a URL scheme is a
    /// path below DIR.
    #[arg(long, value_name = "DIR", help_heading = "Netboot")]
    pub boot_dir: Option<PathBuf>,
    /// The URL netbooted installers reach this member at (`sendan.server=` in the iPXE script)
    /// [default: http://<this member's --initial-cluster address>].
    #[arg(long, help_heading = "Netboot")]
    pub public_url: Option<String>,
    /// URL (http, https or tftp) of the installer kernel that `GET /v1/boot/ipxe` boots machines to be installed
    /// with; without it the script tells them no installer is configured.
    #[arg(long, help_heading = "Netboot")]
    pub installer_kernel: Option<String>,
    /// URL of the installer initrd (required with --installer-kernel).
    #[arg(long, help_heading = "Netboot")]
    pub installer_initrd: Option<String>,
    /// Extra installer kernel command line, such as NixOS's `init=/nix/store/…/init loglevel=4`; the script adds
    /// `sendan.server=` and `sendan.token=`.
    #[arg(long, help_heading = "Netboot")]
    pub installer_cmdline: Option<String>,
    /// URL of the rescue kernel booted by nodes in `rescue`.
    #[arg(long, help_heading = "Netboot")]
    pub rescue_kernel: Option<String>,
    /// URL of the rescue initrd (required with --rescue-kernel).
    #[arg(long, help_heading = "Netboot")]
    pub rescue_initrd: Option<String>,
    /// Extra rescue kernel command line; the script adds `sendan.server=` and `sendan.node=`.
    #[arg(long, help_heading = "Netboot")]
    pub rescue_cmdline: Option<String>,
    /// Seconds a bootstrap token handed out by netboot works before its machine phones home [default: 3600].
    #[arg(long, help_heading = "Netboot")]
    pub bootstrap_token_ttl_secs: Option<u64>,
    /// Serve HTTPS, for clients and for the other members, with this PEM certificate chain (every member of a
    /// cluster serves TLS or none does; `sendan tls init` makes a CA and certificates).
    #[arg(long, help_heading = "TLS")]
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of --tls-cert-file.
    #[arg(long, help_heading = "TLS")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM certificates the other members' certificates must chain to, such as the cluster's CA
    /// [default: the certificates in --tls-cert-file].
    #[arg(long, help_heading = "TLS")]
    pub tls_ca_file: Option<PathBuf>,
}

impl ServerArgs {
    fn as_config(&self) -> ConfigFile {
        ConfigFile {
            node_id: self.node_id,
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            initial_cluster: self.initial_cluster.clone().map(InitialCluster::Flag),
            initial_cluster_state: self.initial_cluster_state,
            cluster_secret_file: self.cluster_secret_file.clone(),
            admin_token_file: self.admin_token_file.clone(),
            max_body_bytes: self.max_body_bytes,
            max_connections: self.max_connections,
            http_header_timeout_secs: self.http_header_timeout_secs,
            http_body_timeout_secs: self.http_body_timeout_secs,
            bootstrap_rate_limit: self.bootstrap_rate_limit,
            agent_deadline_secs: self.agent_deadline_secs,
            power_deadline_secs: self.power_deadline_secs,
            snapshot_every: self.snapshot_every,
            keep_after_snapshot: self.keep_after_snapshot,
            checkpoint_every: self.checkpoint_every,
            heartbeat_ms: self.heartbeat_ms,
            election_timeout_ms: self.election_timeout_ms,
            public_url: self.public_url.clone(),
            boot_dir: self.boot_dir.clone(),
            installer_kernel: self.installer_kernel.clone(),
            installer_initrd: self.installer_initrd.clone(),
            installer_cmdline: self.installer_cmdline.clone(),
            rescue_kernel: self.rescue_kernel.clone(),
            rescue_initrd: self.rescue_initrd.clone(),
            rescue_cmdline: self.rescue_cmdline.clone(),
            bootstrap_token_ttl_secs: self.bootstrap_token_ttl_secs,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            tls_ca_file: self.tls_ca_file.clone(),
        }
    }
}

pub async fn run(args: ServerArgs) -> Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SENDAN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sendan_api=info,sendan_raft=info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let file = match &args.config {
        Some(p) => ConfigFile::load(p)?,
        None => ConfigFile::default(),
    };
    let config = file.overlay(args.as_config()).validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let members = config.initial_cluster.len();
    let (id, dir, advertise, scheme) =
        (config.node_id, config.data_dir.clone(), config.advertise.clone(), config.scheme());
    let (app, token_file, created) = crate::app::open(config, Arc::default()).await?;
    println!(
        "sendan: member {id} of a {members}-member cluster, serving on {scheme}://{}",
        listener.local_addr().map(|a| a.to_string()).unwrap_or(advertise)
    );
    println!(
        "sendan: data in {}; admin token in {}{}",
        dir.display(),
        token_file.display(),
        if created { " (created now, mode 0600)" } else { "" }
    );
    crate::app::serve(app, listener, shutdown_signal()).await?;
    println!("sendan: member {id} stopped");
    Ok(std::process::ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
