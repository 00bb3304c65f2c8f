//! `sendan nodes` and `sendan node show|token|system|set-system|pin|unpin|power|boot-device` (the lifecycle verbs
//! are in `bootstrap.rs`, power in `power.rs`): what the fleet holds, node by node.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::output::{Table, dash, events_table};
use super::{bootstrap, systems};
use crate::client::{Client, EventFilter, NodesQuery};

#[derive(Args, Debug)]
pub struct NodesArgs {
    /// Show the fleet as it was right after this event.
    #[arg(long)]
    pub at: Option<u64>,
    /// Only this state: a lifecycle state (`discovered`: the machines no node is bound to), or `declared` (the
    /// live spec's nodes no machine is bound to yet).
    #[arg(long)]
    pub state: Option<String>,
    /// Only the nodes, bound or declared, of this pool.
    #[arg(long)]
    pub pool: Option<String>,
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
    /// Power the node through its BMC (declared in `nodes.<id>.bmc`), or ask the BMC its power state (`status`).
    /// Off, soft-off and reboot keep every service within its disruption budget unless `--force`. Waits until
    /// the leader has carried the request out.
    Power {
        id: String,
        #[arg(value_enum)]
        action: super::power::PowerVerb,
        /// Skip the disruption budget check.
        #[arg(long)]
        force: bool,
        /// Return once the request is recorded.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Set the device the node boots from through its BMC.
    BootDevice {
        id: String,
        #[arg(value_enum)]
        device: super::power::DeviceArg,
        /// For the next boot only.
        #[arg(long)]
        once: bool,
        /// Return once the request is recorded.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        comment: Option<String>,
    },
    #[command(flatten)]
    Verb(bootstrap::NodeVerb),
}

/// The state, with a cordon or a drain's progress: `active (cordoned)`, `draining`, `draining (drained)`.
pub fn state_label(n: &sendan_core::wire::Node) -> String {
    match (&n.cordoned, &n.drain) {
        (Some(_), _) => format!("{} (cordoned)", n.state),
        (_, Some(d)) if d.drained.is_some() => format!("{} (drained)", n.state),
        (_, Some(d)) if d.force => format!("{} (forced)", n.state),
        _ => n.state.to_string(),
    }
}

/// `sendan nodes`: nodes with a lifecycle, then the machines no node is bound to, then the declared nodes no
/// machine is bound to yet.
pub async fn list(client: &Client, args: &NodesArgs, json: bool) -> Result<ExitCode> {
    let query = NodesQuery { at: args.at, state: args.state.clone(), pool: args.pool.clone() };
    let view = client.nodes(&query).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["NODE", "STATE", "MACHINE", "CLASS", "POOL", "SINCE"]);
    for n in &view.nodes {
        t.row(vec![
            n.id.to_string(),
            state_label(n),
            n.machine.to_string(),
            dash(n.class.as_deref()),
            dash(n.pool.as_deref()),
            n.since.to_string(),
        ]);
    }
    if view.nodes.is_empty() && view.machines.is_empty() && view.declared.is_empty() {
        println!("Nothing matches.");
    } else if !view.nodes.is_empty() {
        print!("{}", t.render());
    }
    if !view.machines.is_empty() {
        if !view.nodes.is_empty() {
            println!();
        }
        println!("Discovered machines not bound to a node:");
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
    if !view.declared.is_empty() {
        if !view.nodes.is_empty() || !view.machines.is_empty() {
            println!();
        }
        println!("Declared in the live spec, no machine bound yet (no lifecycle state until one is):");
        let mut t = Table::new(&["NODE", "STATE", "CLASS", "POOL", "RACK", "BOUND BY", "WAITING FOR"]);
        for d in &view.declared {
            let rules = if d.rules.is_empty() { "-".to_owned() } else { d.rules.join(", ") };
            t.row(vec![
                d.id.to_string(),
                "(declared)".into(),
                d.class.clone(),
                dash(d.pool.as_deref()),
                d.rack.clone(),
                rules,
                d.waiting.clone(),
            ]);
        }
        print!("{}", t.render());
    }
    eprintln!("(as of seq {})", view.seq);
    Ok(ExitCode::SUCCESS)
}

pub async fn run(client: &Client, cmd: &NodeCmd, json: bool) -> Result<ExitCode> {
    match cmd {
        NodeCmd::Show { id, at } => show(client, id, *at, json).await?,
        NodeCmd::Token { id } => token(client, id, json).await?,
        NodeCmd::System { id, at } => system(client, id, *at, json).await?,
        NodeCmd::SetSystem { id, system, action } => set_system(client, id, system, *action, json).await?,
        NodeCmd::Pin { id, reason } => pin(client, id, reason, json).await?,
        NodeCmd::Unpin { id } => unpin(client, id, json).await?,
        NodeCmd::Power { id, action, force, no_wait, comment } => {
            return super::power::power(client, id, *action, *force, !no_wait, comment.clone(), json).await;
        }
        NodeCmd::BootDevice { id, device, once, no_wait, comment } => {
            return super::power::boot_device(client, id, *device, *once, !no_wait, comment.clone(), json).await;
        }
        NodeCmd::Verb(verb) => return bootstrap::node_verb(client, verb, json).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(client: &Client, id: &str, at: Option<u64>, json: bool) -> Result<()> {
    let c = client;
    let view = c.node(id, at).await?;
    let until_seq = view.seq;
    let mut history = Vec::new();
    let mut after = 0;
    loop {
        let page = c.history(id, &EventFilter { after: Some(after), limit: Some(1000), ..Default::default() }).await?;
        let done = page.next.is_none();
        after = page.events.last().map(|e| e.seq).unwrap_or(after);
        history.extend(page.events.into_iter().filter(|e| e.seq <= until_seq));
        if done || after >= until_seq {
            break;
        }
    }
    let install = c.node_install(id, at).await?;
    let power = c.node_power(id, Some(until_seq), false).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "view": view, "install": install, "power": power, "history": history })
            )?
        );
    } else {
        let n = &view.node;
        println!("node:     {}", n.id);
        println!("state:    {} (since seq {})", n.state, n.since);
        if let Some(why) = &n.cordoned {
            println!("cordoned: {}", crate::cli::output::safe(why));
        }
        if let Some(d) = &n.drain {
            let deadline = d.deadline.map_or("none".to_owned(), |t| t.to_string());
            let done = d.drained.map_or("no: instances are still being handed over or stopped".to_owned(), |s| {
                format!("yes, at seq {s}: its agent reported every instance stopped")
            });
            println!(
                "drain:    started at seq {}, deadline {deadline}{}; drained: {done}",
                d.seq,
                if d.force { ", forced" } else { "" }
            );
        }
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
        if power.bmc.is_some() || power.pending.is_some() || power.last.is_some() {
            super::power::lines(&power).iter().for_each(|l| println!("{l}"));
        }
        let allowed: Vec<String> = view.allowed.iter().map(|k| k.to_string()).collect();
        println!("allowed:  {}", if allowed.is_empty() { "-".into() } else { allowed.join(", ") });
        println!("as of:    seq {}\n", view.seq);
        print!("{}", events_table(&history));
    }
    Ok(())
}

async fn token(client: &Client, id: &str, json: bool) -> Result<()> {
    let t = client.issue_node_token(id).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
    } else {
        println!("{}", t.token);
        eprintln!("(node {}'s new token, recorded by its hash at seq {}; it is not shown again)", t.node, t.seq);
    }
    Ok(())
}

async fn system(client: &Client, id: &str, at: Option<u64>, json: bool) -> Result<()> {
    let view = systems::node_system(client, id, at).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        systems::print_node_system(&view);
    }
    Ok(())
}

async fn set_system(
    client: &Client,
    id: &str,
    system: &str,
    action: sendan_core::event::SwitchAction,
    json: bool,
) -> Result<()> {
    let seq = systems::set_system(client, id, system, action).await?;
    if json {
        println!("{}", serde_json::json!({ "node": id, "seq": seq }));
    } else {
        println!("Node {id} should run {system} (`{action}`), decided at seq {seq}.");
    }
    Ok(())
}

async fn pin(client: &Client, id: &str, reason: &str, json: bool) -> Result<()> {
    let seq = systems::pin(client, id, reason).await?;
    if json {
        println!("{}", serde_json::json!({ "node": id, "seq": seq }));
    } else {
        println!("Node {id} is pinned at seq {seq}: its agent and rollouts leave its system alone.");
    }
    Ok(())
}

async fn unpin(client: &Client, id: &str, json: bool) -> Result<()> {
    let seq = systems::unpin(client, id).await?;
    if json {
        println!("{}", serde_json::json!({ "node": id, "seq": seq }));
    } else {
        println!("Node {id} is unpinned at seq {seq}: it follows its desired system again.");
    }
    Ok(())
}
