//! Bootstrap and lifecycle verbs of the `sendan` CLI: `sendan node accept|commission|install|reprovision|rescue|
//! drain|uncordon|retire|rebind|plan`, `sendan enroll [--dry-run] FACTS.json` and `sendan machines`, and the
//! install lines of `sendan node show`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use sendan_core::event::{
    MachineDiscovered, NodeCordoned, NodeDrainStarted, NodeInstallRequested, NodeRebound, NodeReprovisionRequested,
    NodeRescueRequested, NodeRetired, NodeUncordoned,
};
use sendan_core::facts::HardwareFacts;
use sendan_core::machines::enrollment::{EnrollOutcome as Outcome, Explanation, LayoutCheck};
use sendan_core::wire::ProposalIn;
use sendan_core::{MachineId, NodeId, Payload};

use crate::cli::output::{Table, dash};
use crate::client::{Client, ClientError};

/// Lifecycle verbs on one node; each records one audited event.
#[derive(Subcommand, Debug)]
pub enum NodeVerb {
    /// Bind a discovered machine to node NODE by hand (class, pool and profile from the live spec's declaration).
    Accept {
        machine: String,
        /// The node id to bind it as.
        #[arg(long = "as", value_name = "NODE")]
        node: String,
        /// Why, kept in the audit trail.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Bind node ID to a discovered machine by hand (`accept`, from the node's side).
    Commission {
        id: String,
        #[arg(long)]
        machine: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Request the node's install: its installer may fetch its plan (the layout must fit its disks).
    Install {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Wipe and install the node again on the same hardware (a node must be drained first). With a BMC, in the
    /// same step: boot from the network once and reboot, and wait until the BMC did.
    Reprovision {
        id: String,
        #[command(flatten)]
        power: PowerFlags,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Boot the node into the rescue image on its next netboot. With a BMC, in the same step: boot from the
    /// network once and reboot (within the disruption budgets unless `--force`), and wait until the BMC did.
    Rescue {
        id: String,
        #[command(flatten)]
        power: PowerFlags,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Move the node's work away: each instance is handed over to a replacement elsewhere (the replacement
    /// healthy before the old one stops, `update.maxParallel` at a time per service); the node is drained once
    /// its agent reported every instance stopped. Run again to change the terms.
    Drain {
        id: String,
        /// Past this long (like `90s`, `15m`, `2h`), whatever is left stops without waiting for a replacement.
        #[arg(long, value_parser = parse_duration)]
        deadline: Option<Duration>,
        /// Stop everything on the node now, without waiting for replacements (services may go below budget).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Stop placing new instances on an active node; what runs there stays.
    Cordon {
        id: String,
        /// Why, for the log and `sendan nodes`.
        #[arg(long, default_value = "cordoned by an operator")]
        reason: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Let a cordoned or draining node take work again (a drain in progress ends).
    Uncordon {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Take the node out of the fleet for good; its id is never reused.
    Retire {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Replacement hardware: bind the node to another discovered machine, releasing the old one.
    Rebind {
        id: String,
        #[arg(long)]
        machine: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// The install plan the node's installer is served: network, system, the layout's resolved disks, disko.
    Plan { id: String },
}

/// Enrollment commands.
#[derive(Subcommand, Debug)]
pub enum EnrollCmd {
    /// Show which enrollment rule would bind a machine with these hardware facts (as `sendan-agent facts`
    /// prints them) and why; without --dry-run, record them as a machine that phoned home.
    Enroll {
        /// Change nothing; only explain.
        #[arg(long)]
        dry_run: bool,
        /// The facts JSON file, or `-` for stdin.
        facts: PathBuf,
    },
    /// Every machine that phoned home: the node it is bound to, or why enrollment did not bind it.
    Machines {
        /// As it was right after this event.
        #[arg(long)]
        at: Option<u64>,
        /// Instead: the phone-homes this member refused recently because their facts claimed an identity their
        /// bootstrap token does not prove (a hijack attempt, or a replaced NIC or board). Each member keeps its own.
        #[arg(long, conflicts_with_all = ["at", "accept_refused"])]
        refused: bool,
        /// Vouch for refused phone-home ID of this member (a NIC you replaced): record its facts as its machine's,
        /// so the machine's next netboot phones home as that machine.
        #[arg(long, value_name = "ID", conflicts_with = "at")]
        accept_refused: Option<u64>,
    },
}

/// `90s`, `15m`, `2h`, `1d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{s}` is not a duration like 90s, 15m, 2h or 1d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}` has unit `{unit}`; use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

fn id(s: &str) -> Result<NodeId> {
    NodeId::new(s).map_err(Into::into)
}

fn machine(s: &str) -> Result<MachineId> {
    MachineId::new(s).map_err(Into::into)
}

async fn submit(client: &Client, payload: Payload, comment: Option<String>) -> Result<u64> {
    let mut events = vec![ProposalIn { id: None, comment, cause: None, payload }];
    Ok(client.submit(&mut events, Duration::from_secs(30)).await?.events[0].seq)
}

/// How `reprovision` and `rescue` use the node's BMC.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct PowerFlags {
    /// Only move the lifecycle: leave the machine's power alone (boot it from the network yourself).
    #[arg(long)]
    pub no_power: bool,
    /// Reboot even if that takes a service below its disruption budget.
    #[arg(long)]
    pub force: bool,
    /// Return once recorded, without waiting for the BMC.
    #[arg(long)]
    pub no_wait: bool,
}

/// `reprovision` / `rescue`: the lifecycle event and — when the node has a BMC — a one-time network boot and a
/// reboot, in one atomic batch.
async fn with_power(
    client: &Client,
    node: &str,
    payload: Payload,
    flags: PowerFlags,
    comment: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let kind = payload.kind();
    let has_bmc = !flags.no_power && client.node_power(node, None, false).await?.bmc.is_some();
    if !has_bmc {
        if !flags.no_power && !json {
            eprintln!(
                "sendan: note: node {node} has no BMC declared; power it on or reboot it into the network yourself"
            );
        }
        let seq = submit(client, payload, comment).await?;
        let view = client.node(node, Some(seq)).await?;
        if json {
            println!("{}", serde_json::json!({ "node": node, "event": kind, "seq": seq, "state": view.node.state }));
        } else {
            println!("node {node}: `{kind}` recorded at seq {seq}; it is `{}` now", view.node.state);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let boot = Some(sendan_core::event::BootOverride { device: sendan_core::event::BootDevice::Pxe, once: true });
    let events = vec![
        ProposalIn { id: None, comment: comment.clone(), cause: None, payload },
        super::power::request_event(node, Some(sendan_core::event::PowerAction::Reboot), boot, flags.force, comment)?,
    ];
    if !json {
        eprintln!("node {node}: `{kind}`, then through its BMC: boot pxe once, then reboot");
    }
    let code = super::power::submit_and_wait(client, node, events, !flags.no_wait, json).await?;
    if code != ExitCode::SUCCESS && !json {
        eprintln!(
            "sendan: `{kind}` is recorded, but the machine was not rebooted: retry with `sendan node power {node} reboot`, or boot it from the network yourself"
        );
    }
    Ok(code)
}

pub async fn node_verb(client: &Client, verb: &NodeVerb, json: bool) -> Result<ExitCode> {
    let (node, payload, comment): (String, Payload, &Option<String>) = match verb {
        NodeVerb::Plan { id } => {
            let plan = client.node_plan(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print_plan(&plan);
            }
            return Ok(ExitCode::SUCCESS);
        }
        NodeVerb::Accept { machine: m, node: n, comment } | NodeVerb::Commission { id: n, machine: m, comment } => {
            let spec = match client.spec(None).await {
                Ok(view) => Some(view.spec),
                Err(ClientError::Api { status: 404, .. }) => None,
                Err(e) => return Err(e.into()),
            };
            if spec.as_ref().is_some_and(|s| !s.nodes.contains_key(n.as_str())) {
                eprintln!("sendan: note: the live spec does not declare node {n}, so it will have no install plan");
            }
            let binding = sendan_core::machines::enrollment::manual_binding(spec.as_ref(), id(n)?, machine(m)?);
            (n.clone(), binding.into(), comment)
        }
        NodeVerb::Install { id: n, comment } => (n.clone(), NodeInstallRequested { node: id(n)? }.into(), comment),
        NodeVerb::Reprovision { id: n, power, comment } => {
            let payload = NodeReprovisionRequested { node: id(n)? }.into();
            return with_power(client, n, payload, *power, comment.clone(), json).await;
        }
        NodeVerb::Rescue { id: n, power, comment } => {
            let payload = NodeRescueRequested { node: id(n)? }.into();
            return with_power(client, n, payload, *power, comment.clone(), json).await;
        }
        NodeVerb::Drain { id: n, deadline, force, comment } => {
            let deadline = deadline.map(|d| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                sendan_core::Timestamp((now + d).as_millis() as i64)
            });
            (n.clone(), NodeDrainStarted { node: id(n)?, deadline, force: *force }.into(), comment)
        }
        NodeVerb::Cordon { id: n, reason, comment } => {
            (n.clone(), NodeCordoned { node: id(n)?, reason: reason.clone() }.into(), comment)
        }
        NodeVerb::Uncordon { id: n, comment } => (n.clone(), NodeUncordoned { node: id(n)? }.into(), comment),
        NodeVerb::Retire { id: n, comment } => (n.clone(), NodeRetired { node: id(n)? }.into(), comment),
        NodeVerb::Rebind { id: n, machine: m, comment } => {
            (n.clone(), NodeRebound { node: id(n)?, machine: machine(m)? }.into(), comment)
        }
    };
    let kind = payload.kind();
    let seq = submit(client, payload, comment.clone()).await?;
    let view = client.node(&node, Some(seq)).await?;
    if json {
        println!("{}", serde_json::json!({ "node": node, "event": kind, "seq": seq, "state": view.node.state }));
    } else {
        println!("node {node}: `{kind}` recorded at seq {seq}; it is `{}` now", view.node.state);
    }
    Ok(ExitCode::SUCCESS)
}

fn read_facts(path: &PathBuf) -> Result<HardwareFacts> {
    let bytes = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("reading stdin")?;
        b
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not hardware facts as `sendan-agent facts` prints them", path.display()))
}

pub async fn enroll(client: &Client, cmd: &EnrollCmd, json: bool) -> Result<ExitCode> {
    match cmd {
        EnrollCmd::Enroll { dry_run: true, facts } => {
            let e = client.enroll_dry_run(&read_facts(facts)?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print_explanation(&e);
            }
        }
        EnrollCmd::Enroll { dry_run: false, facts } => {
            let facts = read_facts(facts)?;
            let machine = facts.machine_key()?;
            let seq = submit(
                client,
                MachineDiscovered { machine: machine.clone(), facts }.into(),
                Some("recorded with `sendan enroll`".into()),
            )
            .await?;
            if json {
                println!("{}", serde_json::json!({ "machine": machine, "seq": seq }));
            } else {
                println!(
                    "machine {machine} recorded at seq {seq}; enrollment binds it if a rule matches \
                     (see `sendan machines`)"
                );
            }
        }
        EnrollCmd::Machines { accept_refused: Some(id), .. } => {
            let resp = client.accept_refused(*id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
            } else if let Some(r) = resp.events.first() {
                println!("recorded the refused phone-home's facts at seq {}; netboot the machine again", r.seq);
            }
        }
        EnrollCmd::Machines { refused: true, .. } => {
            let view = client.refused().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let mut t = Table::new(&["ID", "TIME", "SOURCE", "MAC", "MACHINE", "WHY"]);
                for r in &view.refused {
                    t.row(vec![
                        r.id.to_string(),
                        r.time.to_rfc3339(),
                        r.source.clone(),
                        r.mac.clone(),
                        dash(r.machine.as_ref()),
                        r.message.clone(),
                    ]);
                }
                print!("{}", t.render());
                eprintln!(
                    "({} refused on member {}; accept one you vouch for with `sendan machines --accept-refused ID`)",
                    view.refused.len(),
                    view.member
                );
            }
        }
        EnrollCmd::Machines { at, .. } => {
            let view = client.machines(*at).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let mut t = Table::new(&["MACHINE", "NODE", "CPU THREADS", "MEMORY", "DISKS", "LAST SEEN", "STATUS"]);
                for m in &view.machines {
                    let r = &m.machine;
                    let status = match (&r.node, &m.problem) {
                        (Some(_), _) => "bound".to_owned(),
                        (None, Some(p)) => p.clone(),
                        (None, None) => "discovered: no enrollment rule binds it".to_owned(),
                    };
                    t.row(vec![
                        r.id.to_string(),
                        dash(r.node.as_ref()),
                        r.facts.cpu.threads.to_string(),
                        format!("{} GiB", r.facts.memory_bytes >> 30),
                        r.facts.disks.iter().filter(|d| !d.removable).count().to_string(),
                        r.last_seen.to_string(),
                        status,
                    ]);
                }
                print!("{}", t.render());
                eprintln!("(as of seq {})", view.seq);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_explanation(e: &Explanation) {
    match (&e.machine, &e.machine_error) {
        (Some(m), _) => println!("machine:  {m}"),
        (None, why) => println!("machine:  (none: {})", why.as_deref().unwrap_or("no key")),
    }
    println!("spec:     {}", e.spec.map(|d| d.to_hex()).unwrap_or_else(|| "none is live".into()));
    let ports: Vec<String> = e.switch_ports.iter().map(|p| p.to_string()).collect();
    println!(
        "location: rack {} (switch ports: {})",
        dash(e.rack.as_deref()),
        if ports.is_empty() { "none reported".into() } else { ports.join(", ") }
    );
    for r in &e.rules {
        let verdict = if r.matches { "matches" } else { "does not match" };
        println!("\nrule '{}' (priority {}, binds {}): {verdict}", r.name, r.priority, r.binds);
        if r.criteria.is_empty() {
            println!("    ok    it sets no criteria, so it matches every machine");
        }
        for c in &r.criteria {
            println!("    {}  {}: {}", if c.holds { "ok  " } else { "FAIL" }, c.name, c.why);
        }
    }
    println!();
    match &e.outcome {
        Outcome::NoSpec => {
            println!("result: no spec is live, so no rule binds anything; apply one with `sendan apply`")
        }
        Outcome::AlreadyBound { node } => println!("result: the machine is bound to node {node} already, and stays so"),
        Outcome::NoRule => {
            println!("result: no rule matches; the machine stays `discovered` until `sendan node accept`")
        }
        Outcome::Conflict { priority, rules } => println!(
            "result: conflict: rules {} all match at priority {priority}; nothing is bound",
            rules.iter().map(|r| format!("'{r}'")).collect::<Vec<_>>().join(", ")
        ),
        Outcome::Refused { rule, reasons } => {
            println!("result: rule '{rule}' matches, but the machine cannot be bound:");
            for r in reasons {
                println!("    {r}");
            }
        }
        Outcome::Binds(b) => println!(
            "result: binds node {} (class {}, pool {}, profile {}) by rule '{}'",
            b.node,
            b.class,
            dash(b.pool.as_deref()),
            b.profile,
            b.rule
        ),
    }
    match &e.layout {
        Some(LayoutCheck::Fits { layout, disks }) => {
            let disks: Vec<String> = disks.iter().map(|(k, d)| format!("{k} → {} ({})", d.name, d.device)).collect();
            println!("layout: '{layout}' fits: {}", disks.join(", "));
        }
        Some(LayoutCheck::DoesNotFit { layout, reasons }) => {
            println!("layout: '{layout}' does not fit, so the install would be refused: {}", reasons.join("; "));
        }
        None => {}
    }
}

fn print_plan(p: &sendan_core::machines::install::ServedPlan) {
    let plan = &p.plan;
    println!("node:     {} (machine {}, `{}`)", p.node, p.machine, p.state);
    println!("spec:     {}", p.spec);
    println!(
        "hostname: {}   class: {}   pool: {}   rack: {}",
        plan.hostname,
        plan.class,
        dash(plan.pool.as_deref()),
        plan.rack
    );
    let net = &plan.network;
    println!(
        "network:  {}/{} on {} (ip pool {}), gateway {}, dns {}{}",
        net.address,
        net.prefix_length,
        net.interface,
        net.ip_pool,
        dash(net.gateway),
        net.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        net.vlan.as_ref().map(|v| format!(", vlan {} ({})", v.id, v.name)).unwrap_or_default()
    );
    let system = plan.system.store_path.as_deref().or(plan.system.flake.as_deref()).unwrap_or("-");
    println!("system:   {system} ({})", plan.platform);
    println!("layout:   {}", plan.disk_layout.name);
    for (name, d) in &p.disks {
        println!("    {name} → {} ({}, {} bytes)", d.name, d.device, d.size_bytes);
    }
    println!("substituters: {}", plan.bootstrap.substituters.join(" "));
    println!("disko:\n{}", serde_json::to_string_pretty(&p.disko).unwrap_or_default());
}

/// The install lines of `sendan node show`.
pub fn install_lines(v: &sendan_core::wire::InstallView) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(r) = &v.refusal {
        lines.push(format!(
            "install:  REFUSED at seq {} (spec {}): disk layout '{}' does not fit: {}",
            r.seq,
            &r.spec.to_hex()[..12],
            r.layout,
            r.reasons.join("; ")
        ));
    }
    if let Some(p) = &v.progress {
        lines.push(format!("install:  last step `{}` at seq {}: {}", p.step, p.seq, p.detail));
    }
    if let Some(k) = &v.ssh_host_key {
        lines.push(format!("host key: {} (seq {})", k.key, k.seq));
    }
    lines
}
