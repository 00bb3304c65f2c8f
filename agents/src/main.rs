//! The `sendan-agent` binary: the program that runs on each machine Sendan manages.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// Sendan's agent for the machines it manages.
#[derive(Debug, Parser)]
#[command(name = "sendan-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print this machine's hardware facts (DMI, CPU, memory, disks, NICs, machine-id) as JSON.
    Facts(FactsArgs),
    /// Netbooted installer: phone home with a bootstrap token, wait for this machine's install plan, print it or
    /// install it (disko, the system, an SSH host key and a node token generated here), reporting every step.
    Install(InstallArgs),
    /// First boot of an installed node: check in with the node token its installer left, making it `active`.
    Checkin(CheckinArgs),
    /// Keep this node on its desired NixOS system: fetch, activate, health-gate, confirm or roll back, and
    /// report every step. Runs until stopped.
    Nix(NixArgs),
    /// Run the service instances the scheduler places on this node: fetch, start (a transient systemd unit, or a
    /// supervised process group), health-check, restart by policy, stop what moved away, report transitions and
    /// heartbeat the leader. Runs until stopped.
    Node(NodeArgs),
}

/// Flags of `sendan-agent node`; each has the same key in the `--config` file (TOML, or JSON by extension).
#[derive(Debug, Args)]
struct NodeArgs {
    /// A TOML or JSON file with these settings.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Any Sendan member's API address.
    #[arg(long)]
    server: Option<String>,
    /// The node token (`sendan node token ID`); default `<state-dir>/token`.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// PEM certificates an `https://` server's certificate must chain to (the cluster's CA).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// This node's id; default the hostname.
    #[arg(long)]
    node: Option<String>,
    /// Where the agent records what it runs, and the instances' logs (default /var/lib/sendan-agent-node).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The IP address instances are published and health-checked at (default 127.0.0.1).
    #[arg(long, value_name = "IP")]
    advertise: Option<String>,
    /// Dynamic ports come from this range (default 20000-32000).
    #[arg(long, value_name = "FROM-TO")]
    port_range: Option<String>,
    /// Run instances with systemd-run: auto (when systemd runs the machine), always, never.
    #[arg(long, value_name = "WHEN")]
    systemd_run: Option<sendan_agents::nix::config::SystemdRun>,
    /// Re-read the node's instances at least this often, in milliseconds (default 5000).
    #[arg(long, value_name = "MS")]
    poll_interval_ms: Option<u64>,
}

/// Flags of `sendan-agent nix`; each has the same key in the `--config` file (TOML, or JSON by extension).
#[derive(Debug, Args)]
struct NixArgs {
    /// A TOML or JSON file with these settings, plus `health` checks and the timeouts.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Any Sendan member's API address.
    #[arg(long)]
    server: Option<String>,
    /// The node token (`sendan node token ID`); default `<state-dir>/token`.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// PEM certificates an `https://` server's certificate must chain to (the cluster's CA).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// This node's id; default the hostname.
    #[arg(long)]
    node: Option<String>,
    /// Where the agent keeps its state (default /var/lib/sendan-agent).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The system profile (default /nix/var/nix/profiles/system).
    #[arg(long, value_name = "PATH")]
    profile: Option<PathBuf>,
    /// The running system's link (default /run/current-system).
    #[arg(long, value_name = "PATH")]
    current_system: Option<PathBuf>,
    /// The booted system's link (default /run/booted-system).
    #[arg(long, value_name = "PATH")]
    booted_system: Option<PathBuf>,
    /// Run switch-to-configuration with systemd-run --wait: auto (when systemd runs the machine), always, never.
    #[arg(long, value_name = "WHEN")]
    systemd_run: Option<sendan_agents::nix::config::SystemdRun>,
    /// Do what is to be done now, then exit.
    #[arg(long)]
    once: bool,
}

#[derive(Debug, Args)]
struct FactsArgs {
    /// Read /proc, /sys, /dev/disk/by-id and /etc/machine-id below DIR instead of below /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// LLDP neighbours (the switch port of each NIC): `auto` (ask lldpd with lldpctl, when reading /), `off`, or a
    /// file of `lldpctl -f keyvalue` output.
    #[arg(long, value_name = "SOURCE", default_value = "auto")]
    lldp: sendan_agents::lldp::Source,
}

/// Flags of `sendan-agent install`.
#[derive(Debug, Args)]
struct InstallArgs {
    /// The Sendan server to phone home to [default: `sendan.server=` on the kernel command line].
    #[arg(long)]
    server: Option<String>,
    /// The bootstrap token from the netboot script [default: `sendan.token=` on the kernel command line].
    #[arg(long)]
    token: Option<String>,
    /// PEM certificates an `https://` server's certificate must chain to (the cluster's CA, baked into the
    /// installer image); copied onto the installed node for its agents.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// `plan`: print the install plan and change nothing. `dry-run`: report every step, but run no disko, nix or
    /// nixos-install command (they are listed in WORK_DIR/commands.sh) and write only below --target and
    /// --work-dir. `install`: partition, format and install this machine's disks [default: `sendan.mode=` on the
    /// kernel command line, else `plan`].
    #[arg(long)]
    mode: Option<sendan_agents::install::Mode>,
    /// Read /proc, /sys, /dev/disk/by-id, /etc/machine-id and /proc/cmdline below DIR instead of below /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Where disko mounts the new system and nixos-install installs it.
    #[arg(long, value_name = "DIR", default_value = "/mnt")]
    target: PathBuf,
    /// Scratch directory: the disko configuration, and in a dry run the commands it would have run.
    #[arg(long, value_name = "DIR", default_value = "/run/sendan-install")]
    work_dir: PathBuf,
    /// LLDP neighbours: `auto`, `off`, or a file of `lldpctl -f keyvalue` output (see `facts --help`).
    #[arg(long, value_name = "SOURCE", default_value = "auto")]
    lldp: sendan_agents::lldp::Source,
    /// How long to wait for enrollment to bind this machine and request its install.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    wait_secs: u64,
}

/// Flags of `sendan-agent checkin`.
#[derive(Debug, Args)]
struct CheckinArgs {
    /// The installed system's root.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Where the installer left the node token and agent.toml [default: ROOT/var/lib/sendan-agent].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The server [default: `server` in agent.toml].
    #[arg(long)]
    server: Option<String>,
    /// This node's id [default: `node` in agent.toml].
    #[arg(long)]
    node: Option<String>,
    /// PEM certificates an `https://` server's certificate must chain to [default: `ca-file` in agent.toml].
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Facts(args) => facts(&args),
        Command::Install(args) => install(&args),
        Command::Checkin(args) => checkin(&args),
        Command::Nix(args) => nix(args),
        Command::Node(args) => node(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with every cause, as people read it; `{:?}` would add a backtrace meant for developers.
            eprintln!("sendan-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn nix(args: NixArgs) -> anyhow::Result<()> {
    use sendan_agents::nix::ConfigFile;
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let flags = ConfigFile {
        server: args.server,
        token_file: args.token_file,
        ca_file: args.ca_file,
        node: args.node,
        state_dir: args.state_dir,
        profile: args.profile,
        current_system: args.current_system,
        booted_system: args.booted_system,
        systemd_run: args.systemd_run,
        ..ConfigFile::default()
    };
    let config = file.overlay(flags).validate(sendan_agents::nix::config::hostname())?;
    sendan_agents::nix::run(config, args.once)?;
    Ok(())
}

fn node(args: NodeArgs) -> anyhow::Result<()> {
    use sendan_agents::node::ConfigFile;
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let flags = ConfigFile {
        server: args.server,
        token_file: args.token_file,
        ca_file: args.ca_file,
        node: args.node,
        state_dir: args.state_dir,
        advertise: args.advertise,
        port_range: args.port_range,
        systemd_run: args.systemd_run,
        poll_interval_ms: args.poll_interval_ms,
        ..ConfigFile::default()
    };
    let config = file.overlay(flags).validate(sendan_agents::node::config::hostname())?;
    sendan_agents::node::run(config)?;
    Ok(())
}

fn install(args: &InstallArgs) -> anyhow::Result<()> {
    use sendan_agents::install::{self, Mode, Outcome, cmdline};
    let cmdline_path = args.root.join("proc/cmdline");
    let kernel = std::fs::read_to_string(&cmdline_path).map(|t| cmdline::parse(&t)).unwrap_or_default();
    let from_kernel = |key: &str| kernel.get(key).cloned();
    let server = args.server.clone().or_else(|| from_kernel("server")).with_context(|| {
        format!("no server: pass --server, or boot with `sendan.server=` (read from {})", cmdline_path.display())
    })?;
    let token = args.token.clone().or_else(|| from_kernel("token")).with_context(|| {
        format!("no bootstrap token: pass --token, or boot with `sendan.token=` (read from {})", cmdline_path.display())
    })?;
    let mode = match (args.mode, from_kernel("mode")) {
        (Some(m), _) => m,
        (None, Some(m)) => {
            m.parse::<Mode>().map_err(anyhow::Error::msg).context("`sendan.mode=` on the kernel command line")?
        }
        (None, None) => Mode::Plan,
    };
    let opts = install::Options {
        server,
        token,
        ca_file: args.ca_file.clone(),
        root: args.root.clone(),
        target: args.target.clone(),
        work: args.work_dir.clone(),
        mode,
        lldp: args.lldp.clone(),
        wait: std::time::Duration::from_secs(args.wait_secs),
        poll: std::time::Duration::from_millis(500),
    };
    let mut out = std::io::stdout().lock();
    match install::run(&opts)? {
        Outcome::Plan(plan) => writeln!(out, "{}", serde_json::to_string_pretty(&plan)?)?,
        Outcome::Installed { plan, exchanged, rehearsal: true } => writeln!(
            out,
            "rehearsed the install of node {} (dry run: nothing was written outside {} and {}); its node token is recorded at seq {}",
            plan.node,
            opts.target.display(),
            opts.work.display(),
            exchanged.seq
        )?,
        Outcome::Installed { plan, exchanged, rehearsal: false } => writeln!(
            out,
            "installed node {} into {}; its node token is recorded at seq {}: reboot into the new system",
            plan.node,
            opts.target.display(),
            exchanged.seq
        )?,
    }
    Ok(())
}

fn checkin(args: &CheckinArgs) -> anyhow::Result<()> {
    use sendan_agents::checkin::{self, CheckedIn};
    let opts = checkin::Options {
        root: args.root.clone(),
        state_dir: args.state_dir.clone(),
        server: args.server.clone(),
        node: args.node.clone(),
        ca_file: args.ca_file.clone(),
    };
    let mut out = std::io::stdout().lock();
    match checkin::run(&opts)? {
        CheckedIn::Activated { node, seq } => writeln!(out, "node {node} checked in: `active` at seq {seq}")?,
        CheckedIn::AlreadyActive { node } => writeln!(out, "node {node} is `active` already")?,
    }
    Ok(())
}

fn facts(args: &FactsArgs) -> anyhow::Result<()> {
    let mut facts = sendan_agents::facts::collect(&args.root)
        .with_context(|| format!("collecting hardware facts below `{}`", args.root.display()))?;
    let neighbours = sendan_agents::lldp::neighbours(&args.lldp, &args.root).context("reading LLDP neighbours")?;
    sendan_agents::lldp::merge(&mut facts, &neighbours);
    let json = serde_json::to_string_pretty(&facts).context("encoding the facts as JSON")?;
    // Not `println!`, which panics when the reader has gone away (`sendan-agent facts | head`).
    writeln!(std::io::stdout().lock(), "{json}").context("writing the facts to stdout")
}
