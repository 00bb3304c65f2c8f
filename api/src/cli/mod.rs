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
pub mod bootstrap;
pub mod output;
mod server;
pub mod spec;
pub mod systems;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;
use sendan_core::EventKind;
use sendan_core::wire::{ProposalIn, decode_submission};

use crate::client::{Client, EventFilter};
use output::{Table, dash, events_table};

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
    /// List nodes and the machines no node is bound to yet.
    Nodes {
        /// Show the fleet as it was right after this event.
        #[arg(long)]
        at: Option<u64>,
    },
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
    /// Benchmark a 3-member loopback cluster (and etcd from bench/etcd3.sh, side by side, when it answers).
    Bench(bench::BenchArgs),
    /// Make a small CA and member certificates for `sendan server --tls-*` (works offline; any PKI will do).
    #[command(subcommand)]
    Tls(TlsCmd),
    #[command(flatten)]
    Enrollment(bootstrap::EnrollCmd),
}

#[derive(Subcommand, Debug)]
pub enum TlsCmd {
    /// Make a CA in DIR: `ca.pem` (give it to clients and members as --ca-file / --tls-ca-file) and
    /// `ca-key.pem` (mode 0600; keep it off the servers once the certificates are issued).
    Init { dir: PathBuf },
    /// Issue `DIR/NAME.pem` and `DIR/NAME-key.pem` (mode 0600), signed by DIR's CA, for the hosts clients and
    /// members reach it by.
    Issue {
        dir: PathBuf,
        name: String,
        /// A DNS name or IP address the certificate is valid for (repeat for each).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCmd {
    /// Submit events from a JSON file (one event object or an array), or `-` for stdin.
    /// Events without an `id` get a fresh one, so retries after a lost answer are safe.
    Submit {
        /// The JSON file, or `-` for stdin.
        file: PathBuf,
    },
    /// List events (paged audit query).
    List(ListArgs),
    /// Replay events after a cursor, then follow new ones as they are committed.
    Watch {
        /// Start after this seq (0 = from the beginning).
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long)]
        node: Option<String>,
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// List the event types and who may emit them.
    Types,
}

#[derive(Args, Debug, Default)]
pub struct ListArgs {
    /// Only events after this seq.
    #[arg(long)]
    pub after: Option<u64>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Only events about this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Only events of this type (such as NodeDrainRequested).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
}

impl ListArgs {
    fn filter(&self) -> EventFilter {
        EventFilter {
            after: self.after,
            limit: Some(self.limit),
            node: self.node.clone(),
            kind: self.kind.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// A node's state, machine and allowed lifecycle events, and its audit history.
    Show {
        id: String,
        /// Show the node as it was right after this event.
        #[arg(long)]
        at: Option<u64>,
    },
    /// Issue a new token for the node's agent (its previous token stops working); printed once.
    Token { id: String },
    /// The node's desired and running NixOS system, its pin and its agent's latest attempt.
    System {
        id: String,
        /// As it was right after this event.
        #[arg(long)]
        at: Option<u64>,
    },
    /// Decide the node's system: a store path (/nix/store/…) or a flake reference (ref#attr).
    SetSystem {
        id: String,
        system: String,
        /// switch-to-configuration's verb: switch, boot or test.
        #[arg(long, default_value = "switch")]
        action: sendan_core::event::SwitchAction,
    },
    /// Leave the node's system alone: its agent and rollouts skip it until `sendan node unpin`.
    Pin {
        id: String,
        /// Why, for the next operator.
        #[arg(long)]
        reason: String,
    },
    /// Let the node follow its desired system again.
    Unpin { id: String },
    #[command(flatten)]
    Verb(bootstrap::NodeVerb),
}

#[derive(Subcommand, Debug)]
pub enum SpecCmd {
    /// The spec's digest, when it was applied, and its document.
    Show {
        /// The spec live right after this event.
        #[arg(long)]
        at: Option<u64>,
        /// Any spec ever applied, by digest.
        #[arg(long, conflicts_with = "at")]
        digest: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Recompute the hash chain over the whole log of the member asked; exits 1 if it is broken.
    Verify,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Every member's role, term and log positions.
    Status,
    /// Add a member (it must be running with `--initial-cluster-state existing`).
    Add { id: u64, addr: String },
    /// Remove a member.
    Remove { id: u64 },
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

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    let ok = std::process::ExitCode::SUCCESS;
    let client = || -> Result<Client> {
        let token = std::env::var("SENDAN_TOKEN").ok().filter(|t| !t.is_empty());
        let token = match token {
            Some(t) => t,
            None => crate::auth::read_secret(&cli.conn.token_file).map_err(|e| {
                anyhow::anyhow!("{e}; pass --token-file (or set SENDAN_TOKEN) with the server's admin token")
            })?,
        };
        let trust = match &cli.conn.ca_file {
            Some(path) => sendan_raft::Trust::from_pem_file(path)?,
            None => sendan_raft::Trust::plain(),
        };
        Ok(Client::with_trust(&cli.conn.server, Some(token), &trust))
    };
    let json = cli.conn.output == Output::Json;
    match &cli.command {
        Command::Server(args) => return server::run(args.clone()).await,
        Command::Bench(args) => return bench::run(args.clone()).await,
        Command::Tls(TlsCmd::Init { dir }) => {
            let (cert, key) = crate::tls::init_ca(dir)?;
            println!("CA certificate: {} (for --ca-file and --tls-ca-file)", cert.display());
            println!("CA key:         {} (mode 0600)", key.display());
            return Ok(ok);
        }
        Command::Tls(TlsCmd::Issue { dir, name, hosts }) => {
            let (cert, key) = crate::tls::issue(dir, name, hosts)?;
            println!("certificate: {} (for --tls-cert-file), valid for {}", cert.display(), hosts.join(", "));
            println!("key:         {} (for --tls-key-file, mode 0600)", key.display());
            return Ok(ok);
        }
        Command::Enrollment(cmd) => return bootstrap::enroll(&client()?, cmd, json).await,
        Command::Node(NodeCmd::Verb(verb)) => return bootstrap::node_verb(&client()?, verb, json).await,
        Command::Events(EventsCmd::Submit { file }) => {
            let bytes = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::stdin().read_to_end(&mut b).context("reading stdin")?;
                b
            } else {
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
            };
            let mut events: Vec<ProposalIn> = decode_submission(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
            let resp = client()?.submit(&mut events, Duration::from_secs(30)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
            } else {
                let mut t = Table::new(&["SEQ", "ID", "HASH", "NOTE"]);
                for r in &resp.events {
                    let note = if r.duplicate { "already applied" } else { "" };
                    t.row(vec![r.seq.to_string(), r.id.to_string(), r.hash.to_hex()[..16].to_owned(), note.into()]);
                }
                print!("{}", t.render());
            }
        }
        Command::Events(EventsCmd::List(args)) => {
            let page = client()?.events(&args.filter()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", events_table(&page.events));
                if let Some(next) = page.next {
                    eprintln!("(more: --after {next})");
                }
            }
        }
        Command::Events(EventsCmd::Watch { after, node, kind }) => {
            let mut stream = Box::pin(client()?.watch(*after, node.as_deref(), kind.as_deref()).await?);
            while let Some(e) = stream.next().await {
                let e = e?;
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    print!("{}", events_table(std::slice::from_ref(&e)).lines().nth(1).unwrap_or_default());
                    println!();
                }
            }
        }
        Command::Events(EventsCmd::Types) => {
            let mut t = Table::new(&["TYPE", "CODE", "EMITTED BY"]);
            for k in EventKind::ALL {
                let e = k.emitters();
                use sendan_core::event::Emitters as E;
                let who: Vec<&str> =
                    [(E::ADMIN, "admin"), (E::SYSTEM, "system"), (E::NODE, "node"), (E::BOOTSTRAP, "installer")]
                        .into_iter()
                        .filter(|(f, _)| e.contains(*f))
                        .map(|(_, n)| n)
                        .collect();
                t.row(vec![k.name().into(), k.code().to_string(), who.join(", ")]);
            }
            print!("{}", t.render());
        }
        Command::Nodes { at } => {
            let view = client()?.nodes(*at).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let mut t = Table::new(&["NODE", "STATE", "MACHINE", "CLASS", "POOL", "SINCE"]);
                for n in &view.nodes {
                    t.row(vec![
                        n.id.to_string(),
                        n.state.to_string(),
                        n.machine.to_string(),
                        dash(n.class.as_deref()),
                        dash(n.pool.as_deref()),
                        n.since.to_string(),
                    ]);
                }
                print!("{}", t.render());
                if !view.machines.is_empty() {
                    println!("\nDiscovered machines not bound to a node:");
                    let mut t = Table::new(&["MACHINE", "CPU THREADS", "MEMORY", "DISKS", "FIRST SEEN"]);
                    for m in &view.machines {
                        t.row(vec![
                            m.id.to_string(),
                            m.facts.cpu.threads.to_string(),
                            format!("{} GiB", m.facts.memory_bytes >> 30),
                            m.facts.disks.len().to_string(),
                            m.first_seen.to_string(),
                        ]);
                    }
                    print!("{}", t.render());
                }
                eprintln!("(as of seq {})", view.seq);
            }
        }
        Command::Node(NodeCmd::Show { id, at }) => {
            let c = client()?;
            let view = c.node(id, *at).await?;
            let until_seq = view.seq;
            let mut history = Vec::new();
            let mut after = 0;
            loop {
                let page =
                    c.history(id, &EventFilter { after: Some(after), limit: Some(1000), ..Default::default() }).await?;
                let done = page.next.is_none();
                after = page.events.last().map(|e| e.seq).unwrap_or(after);
                history.extend(page.events.into_iter().filter(|e| e.seq <= until_seq));
                if done || after >= until_seq {
                    break;
                }
            }
            let install = c.node_install(id, *at).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "view": view, "install": install, "history": history })
                    )?
                );
            } else {
                let n = &view.node;
                println!("node:     {}", n.id);
                println!("state:    {} (since seq {})", n.state, n.since);
                println!("machine:  {}", n.machine);
                println!(
                    "class:    {}   pool: {}   profile: {}",
                    dash(n.class.as_deref()),
                    dash(n.pool.as_deref()),
                    dash(n.profile.as_deref())
                );
                if let Some(r) = &n.reason {
                    println!("reason:   {r}");
                }
                bootstrap::install_lines(&install).iter().for_each(|l| println!("{l}"));
                let allowed: Vec<String> = view.allowed.iter().map(|k| k.to_string()).collect();
                println!("allowed:  {}", if allowed.is_empty() { "-".into() } else { allowed.join(", ") });
                println!("as of:    seq {}\n", view.seq);
                print!("{}", events_table(&history));
            }
        }
        Command::Node(NodeCmd::Token { id }) => {
            let t = client()?.issue_node_token(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!("{}", t.token);
                eprintln!(
                    "(node {}'s new token, recorded by its hash at seq {}; it is not shown again)",
                    t.node, t.seq
                );
            }
        }
        Command::Node(NodeCmd::System { id, at }) => {
            let view = systems::node_system(&client()?, id, *at).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                systems::print_node_system(&view);
            }
        }
        Command::Node(NodeCmd::SetSystem { id, system, action }) => {
            let seq = systems::set_system(&client()?, id, system, *action).await?;
            if json {
                println!("{}", serde_json::json!({ "node": id, "seq": seq }));
            } else {
                println!("Node {id} should run {system} (`{action}`), decided at seq {seq}.");
            }
        }
        Command::Node(NodeCmd::Pin { id, reason }) => {
            let seq = systems::pin(&client()?, id, reason).await?;
            if json {
                println!("{}", serde_json::json!({ "node": id, "seq": seq }));
            } else {
                println!("Node {id} is pinned at seq {seq}: its agent and rollouts leave its system alone.");
            }
        }
        Command::Node(NodeCmd::Unpin { id }) => {
            let seq = systems::unpin(&client()?, id).await?;
            if json {
                println!("{}", serde_json::json!({ "node": id, "seq": seq }));
            } else {
                println!("Node {id} is unpinned at seq {seq}: it follows its desired system again.");
            }
        }
        Command::Rollout(cmd) => return systems::run(&client()?, cmd, json).await,
        Command::Plan { file } => {
            let spec = spec::load(file)?;
            let plan = spec::plan(&client()?, &spec).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                spec::print_plan(&plan);
            }
        }
        Command::Apply { file } => {
            let spec = spec::load(file)?;
            let (plan, seq) = spec::apply(&client()?, &spec).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "plan": plan, "seq": seq }))?);
            } else {
                spec::print_plan(&plan);
                match seq {
                    Some(seq) => println!("Applied spec {} at seq {seq}.", plan.digest),
                    None => println!("Nothing applied."),
                }
            }
        }
        Command::Spec(SpecCmd::Show { at, digest }) => {
            let c = client()?;
            let view = match digest {
                Some(d) => c.spec_by_digest(d).await?,
                None => c.spec(*at).await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("spec {} applied at seq {}{}", view.digest, view.seq, if view.live { " (live)" } else { "" });
                println!("{}", serde_json::to_string_pretty(&view.spec)?);
            }
        }
        Command::Audit(AuditCmd::Verify) => {
            let v = client()?.verify().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v.ok {
                println!("ok: {} events verified on member {}; head {}", v.verified, v.member, v.head);
            } else if let Some(b) = &v.broken {
                println!("BROKEN on member {}: {b} ({} events verified before it)", v.member, v.verified);
            }
            if !v.ok {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Cluster(ClusterCmd::Status) => {
            let s = client()?.cluster().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let mut t =
                    Table::new(&["ID", "ADDR", "ROLE", "TERM", "LAST LOG", "COMMITTED", "APPLIED", "SEQ", "HEAD"]);
                for m in &s.members {
                    t.row(vec![
                        m.id.to_string(),
                        m.addr.clone(),
                        m.role.clone(),
                        m.term.to_string(),
                        dash(m.last_log_index),
                        dash(m.committed_index),
                        dash(m.applied_index),
                        m.seq.to_string(),
                        m.head.to_hex()[..12].to_owned(),
                    ]);
                }
                print!("{}", t.render());
                println!("leader: {}   term: {}", dash(s.leader), s.term);
                for m in s.members.iter().filter(|m| m.error.is_some()) {
                    eprintln!("member {}: {}", m.id, m.error.as_deref().unwrap_or_default());
                }
            }
        }
        Command::Cluster(ClusterCmd::Add { id, addr }) => {
            client()?.add_member(*id, addr).await?;
            println!("member {id} ({addr}) added as a voter");
        }
        Command::Cluster(ClusterCmd::Remove { id }) => {
            client()?.remove_member(*id).await?;
            println!("member {id} removed");
        }
    }
    Ok(ok)
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
