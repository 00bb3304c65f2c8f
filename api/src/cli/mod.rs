//! The `sendan` command line: `sendan server` runs a member; every other subcommand is an operator
//! client of the HTTP API (tables by default, `--output json` for scripts).
//!
//! Everything it prints comes, in the end, from the log and from what machines reported, so these three macros
//! shadow the standard ones for this module and every module below it: each line goes through
//! [`output::safe`], which writes control characters as `\u{…}` escapes, so nothing printed can drive the
//! operator's terminal.

macro_rules! println {
    () => { ::std::println!() };
    ($($arg:tt)*) => { ::std::println!("{}", $crate::cli::output::safe(&::std::format!($($arg)*))) };
}
macro_rules! print {
    ($($arg:tt)*) => { ::std::print!("{}", $crate::cli::output::safe(&::std::format!($($arg)*))) };
}
macro_rules! eprintln {
    () => { ::std::eprintln!() };
    ($($arg:tt)*) => { ::std::eprintln!("{}", $crate::cli::output::safe(&::std::format!($($arg)*))) };
}

mod bench;
mod bench_scheduler;
pub mod bootstrap;
mod cluster;
mod events;
mod nodes;
pub mod output;
mod power;
mod server;
pub mod services;
pub mod spec;
pub mod systems;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::Client;
use cluster::{AuditCmd, ClusterCmd, TlsCmd};
use events::EventsCmd;
use nodes::NodeCmd;
use spec::SpecCmd;

/// Sendan: one Nix declaration of a bare-metal NixOS fleet, kept running from one replicated event log.
#[derive(Parser, Debug)]
#[command(name = "sendan", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: Command,
}

/// How operator subcommands reach the API.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// API address of any member.
    #[arg(long, global = true, env = "SENDAN_SERVER", default_value = "http://127.0.0.1:7770")]
    pub server: String,
    /// File holding the admin token (the embedded server writes it to ./sendan-data/admin.token).
    #[arg(long, global = true, env = "SENDAN_TOKEN_FILE", default_value = "sendan-data/admin.token")]
    pub token_file: PathBuf,
    /// PEM certificates an `https://` server's certificate must chain to (the cluster's CA).
    #[arg(long, global = true, env = "SENDAN_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a cluster member (with no flags: a single-member cluster on 127.0.0.1:7770, data in ./sendan-data).
    Server(server::ServerArgs),
    /// Submit, list and follow events.
    #[command(subcommand)]
    Events(EventsCmd),
    /// List nodes, the machines no node is bound to yet, and the live spec's nodes no machine is bound to yet.
    Nodes(nodes::NodesArgs),
    /// Inspect one node, move it through its lifecycle, and decide or pin its NixOS system.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Audit the event log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Inspect and change cluster membership.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Show what applying a cluster spec (a `.nix` declaration or its ClusterSpec `.json`) would change, without
    /// writing anything.
    Plan { file: PathBuf },
    /// Apply a cluster spec: record it as the live spec (nothing happens when it is live already).
    Apply { file: PathBuf },
    /// Show the live spec (or the one live at a seq, or any applied one by digest).
    #[command(subcommand)]
    Spec(SpecCmd),
    /// Roll a pool out to a new NixOS system in waves, and follow or abort it.
    #[command(subcommand)]
    Rollout(systems::RolloutCmd),
    /// Native services: where their instances run, their health and endpoints, and the scheduler's dry run.
    #[command(subcommand)]
    Service(services::ServiceCmd),
    /// Benchmark a 3-member loopback cluster (and etcd from bench/etcd3.sh, side by side, when it answers);
    /// `sendan bench scheduler` measures the scheduler.
    Bench(bench::BenchArgs),
    /// Make a small CA and member certificates for `sendan server --tls-*` (works offline; any PKI will do).
    #[command(subcommand)]
    Tls(TlsCmd),
    #[command(flatten)]
    Enrollment(bootstrap::EnrollCmd),
}

/// Entry point of the `sendan` binary.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Server(_)) {
        restore_sigpipe();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sendan: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sendan: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let json = cli.conn.output == Output::Json;
    let client = || cli.conn.client();
    match &cli.command {
        Command::Server(args) => server::run(args.clone()).await,
        Command::Bench(args) => bench::run(args.clone()).await,
        Command::Tls(cmd) => cluster::tls(cmd),
        Command::Events(cmd) => events::run(&client()?, cmd, json).await,
        Command::Nodes(args) => nodes::list(&client()?, args, json).await,
        Command::Node(cmd) => nodes::run(&client()?, cmd, json).await,
        Command::Rollout(cmd) => systems::run(&client()?, cmd, json).await,
        Command::Service(cmd) => match client() {
            Ok(c) => services::run(&c, cmd, json).await,
            // `sendan service plan` exits 2 on any error, like `nomad job plan`.
            Err(e) if matches!(cmd, services::ServiceCmd::Plan { .. }) => {
                eprintln!("sendan: {e:#}");
                Ok(ExitCode::from(2))
            }
            Err(e) => Err(e),
        },
        Command::Plan { file } => spec::plan_cmd(&client()?, file, json).await,
        Command::Apply { file } => spec::apply_cmd(&client()?, file, json).await,
        Command::Spec(cmd) => spec::show(&client()?, cmd, json).await,
        Command::Audit(cmd) => cluster::audit(&client()?, cmd, json).await,
        Command::Cluster(cmd) => cluster::run(&client()?, cmd, json).await,
        Command::Enrollment(cmd) => bootstrap::enroll(&client()?, cmd, json).await,
    }
}

impl Conn {
    /// A client of the server these flags name, with the admin token from `SENDAN_TOKEN` or the token file.
    fn client(&self) -> Result<Client> {
        let token = std::env::var("SENDAN_TOKEN").ok().filter(|t| !t.is_empty());
        let token = match token {
            Some(t) => t,
            None => crate::auth::read_secret(&self.token_file).map_err(|e| {
                anyhow::anyhow!("{e}; pass --token-file (or set SENDAN_TOKEN) with the server's admin token")
            })?,
        };
        let trust = match &self.ca_file {
            Some(path) => sendan_raft::Trust::from_pem_file(path)?,
            None => sendan_raft::Trust::plain(),
        };
        Ok(Client::with_trust(&self.server, Some(token), &trust))
    }
}

/// Let a client command die quietly when its output pipe closes (`sendan events list | head`), as Unix
/// tools do; Rust ignores SIGPIPE by default. The server keeps ignoring it (its sockets report EPIPE).
fn restore_sigpipe() {
    #[cfg(unix)]
    {
        unsafe extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: resetting a signal's disposition to its default before any other thread exists.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}
