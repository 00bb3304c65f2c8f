//! `sendan service …`: the services the live spec declares — where their instances run and how they are doing
//! (`list`, `status`), where their healthy instances are reached (`endpoints`, `--watch`), and the scheduler's
//! dry run (`plan`, exit codes like `nomad job plan`: 0 no change, 1 changes, 2 error) with every reason each
//! node got nothing (`why-not`), and a deployment's operator verbs (`promote` its canaries, `abort` it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Subcommand;
use sendan_core::event::{DeploymentEnded, DeploymentOutcome, DeploymentPromoted, Payload};
use sendan_core::wire::{
    DeploymentView, EndpointsView, NodeVerdictView, ProposalIn, ServicePlanRequest, ServicePlanView, ServiceView,
    ServicesView, ShortfallView,
};

use crate::cli::output::{Table, dash};
use crate::client::Client;

#[derive(Subcommand, Debug)]
pub enum ServiceCmd {
    /// Every declared service: replicas wanted, live and healthy instances, replicas that fit nowhere.
    List,
    /// One service: its instances per node, their health, and what is pending and why.
    Status { name: String },
    /// Where the service's healthy instances are reached (what a load balancer or DNS exporter reads).
    Endpoints {
        name: String,
        /// Keep printing the endpoints each time they change.
        #[arg(long)]
        watch: bool,
    },
    /// What the scheduler would do for a service now, and for every node that would get nothing, every reason.
    /// Exit 0: no change; 1: changes; 2: error.
    Plan {
        name: String,
        /// Plan this declaration (a `.nix` file or its ClusterSpec `.json`) instead of the live spec.
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
    },
    /// Why a service has no (more) instances on a node: every filter that excludes it, or its rank.
    WhyNot { name: String, node: String },
    /// Let a deployment that waits on its canaries go on to every instance (they must have been healthy for
    /// `update.minHealthySeconds`).
    Promote {
        name: String,
        /// Why, recorded with the event.
        #[arg(long, short = 'm')]
        comment: Option<String>,
    },
    /// Abort the service's running deployment: the scheduler puts its stable version back (the last one whose
    /// instances were all healthy).
    Abort {
        name: String,
        #[arg(long, short = 'm')]
        comment: Option<String>,
    },
}

pub async fn run(client: &Client, cmd: &ServiceCmd, json: bool) -> Result<ExitCode> {
    match cmd {
        ServiceCmd::List => list(client, json).await,
        ServiceCmd::Status { name } => status(client, name, json).await,
        ServiceCmd::Endpoints { name, watch } => endpoints(client, name, *watch, json).await,
        ServiceCmd::Plan { name, spec } => match plan(client, name, spec.as_ref(), json).await {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("sendan: {e:#}");
                Ok(ExitCode::from(2))
            }
        },
        ServiceCmd::WhyNot { name, node } => why_not(client, name, node, json).await,
        ServiceCmd::Promote { name, comment } => deployment_verb(client, name, true, comment.clone(), json).await,
        ServiceCmd::Abort { name, comment } => deployment_verb(client, name, false, comment.clone(), json).await,
    }
}

async fn list(client: &Client, json: bool) -> Result<ExitCode> {
    let v: ServicesView = client.get("/v1/services", &()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["SERVICE", "REPLICAS", "LIVE", "HEALTHY", "UNPLACED"]);
    for s in &v.services {
        t.row(vec![
            s.name.clone(),
            s.replicas.to_string(),
            s.live.to_string(),
            s.healthy.to_string(),
            s.unplaced.to_string(),
        ]);
    }
    print!("{}", t.render());
    println!("(as of seq {})", v.seq);
    Ok(ExitCode::SUCCESS)
}

fn print_shortfall(s: &ShortfallView) {
    if s.unplaced > 0 {
        let reasons: Vec<String> = s.filtered.iter().map(|(f, n)| format!("{f}: {n} node(s)")).collect();
        println!("pending:   {} replica(s) fit on no node ({})", s.unplaced, reasons.join(", "));
    }
    for w in &s.waiting {
        println!("waiting:   {}: {}", w.instance, w.why);
    }
}

/// `promote` (true) or `abort` the service's running deployment.
async fn deployment_verb(
    client: &Client,
    name: &str,
    promote: bool,
    comment: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let v: ServiceView = client.get(&format!("/v1/services/{name}"), &()).await?;
    let Some(d) = v.deployment.filter(|d| d.ended.is_none()) else {
        bail!("service {name} has no deployment running");
    };
    let payload: Payload = if promote {
        DeploymentPromoted { service: name.to_owned(), task_digest: d.version }.into()
    } else {
        DeploymentEnded {
            service: name.to_owned(),
            task_digest: d.version,
            outcome: DeploymentOutcome::Aborted,
            reason: comment.clone().unwrap_or_else(|| "aborted by the operator".into()),
        }
        .into()
    };
    let kind = payload.kind();
    let mut events = vec![ProposalIn { id: None, comment, cause: None, payload }];
    let r = client.submit(&mut events, Duration::from_secs(30)).await?;
    let seq = r.events[0].seq;
    if json {
        println!("{}", serde_json::json!({ "service": name, "event": kind, "seq": seq, "version": d.version }));
    } else {
        println!("service {name}: `{kind}` for version {} recorded at seq {seq}", d.version);
    }
    Ok(ExitCode::SUCCESS)
}

fn short(h: &sendan_core::Hash) -> String {
    h.to_hex()[..12].to_owned()
}

fn print_deployment(d: &DeploymentView) {
    let from = d.from.as_ref().map(|f| format!(" from {}", short(f))).unwrap_or_default();
    let what = if d.revert { "revert" } else { "deployment" };
    println!("{what}: {}{from} (seq {}): {}", short(&d.version), d.started, d.status);
    println!(
        "           {} new of {} replicas placed, {} healthy for minHealthySeconds, {} of other versions left",
        d.placed, d.replicas, d.healthy, d.old
    );
    if d.status == "awaiting-promotion" {
        println!(
            "           its {} canary(ies) placed: `sendan service promote` to go on, `sendan service abort` to go back",
            d.canaries
        );
    }
    if let (Some(seq), Some(why)) = (d.ended, &d.reason) {
        println!("           ended at seq {seq}: {}", crate::cli::output::safe(why));
    }
    if let Some(stable) = &d.stable {
        println!("stable:    {}", short(stable));
    }
}

async fn status(client: &Client, name: &str, json: bool) -> Result<ExitCode> {
    let v: ServiceView = client.get(&format!("/v1/services/{name}"), &()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = &v.summary;
    println!(
        "service:   {} ({} of {} replicas live, {} healthy; seq {})",
        s.name, s.live, s.replicas, s.healthy, v.seq
    );
    if let Some(d) = &v.deployment {
        print_deployment(d);
    }
    print_shortfall(&v.shortfall);
    // Versions matter once the service has had a deployment (or runs more than one).
    let versions: std::collections::BTreeSet<_> = v.instances.iter().map(|i| i.version).collect();
    let with_version = v.deployment.is_some() || versions.len() > 1;
    let mut head = vec!["INSTANCE", "NODE", "VERSION", "STATUS", "SINCE", "ADDRESS", "PORTS", "RESTARTS", "NOTE"];
    if !with_version {
        head.remove(2);
    }
    let mut t = Table::new(&head);
    for i in &v.instances {
        let ports: Vec<String> = i.ports.iter().map(|(k, p)| format!("{k}={p}")).collect();
        let note = i
            .lost
            .clone()
            .map(|l| format!("lost: {l}"))
            .or_else(|| i.stopping.clone().map(|r| format!("stopping: {r}")))
            .or_else(|| i.replaced_by.clone().map(|r| format!("replaced by {r}")))
            .or_else(|| i.reason.clone())
            .unwrap_or_default();
        let mut row = vec![
            i.id.to_string(),
            i.node.to_string(),
            short(&i.version),
            i.status.name().to_owned(),
            i.since.to_string(),
            dash(i.address.as_deref()),
            if ports.is_empty() { "-".into() } else { ports.join(",") },
            i.restarts.to_string(),
            note,
        ];
        if !with_version {
            row.remove(2);
        }
        t.row(row);
    }
    print!("{}", t.render());
    Ok(ExitCode::SUCCESS)
}

fn print_endpoints(v: &EndpointsView, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    println!("{} at seq {}: {} healthy endpoint(s)", v.service, v.seq, v.endpoints.len());
    for e in &v.endpoints {
        let ports: Vec<String> = e.ports.iter().map(|(k, p)| format!("{k}={}:{p}", e.address)).collect();
        println!(
            "  {} on {}: {}",
            e.instance,
            e.node,
            if ports.is_empty() { e.address.clone() } else { ports.join(" ") }
        );
    }
    Ok(())
}

async fn endpoints(client: &Client, name: &str, watch: bool, json: bool) -> Result<ExitCode> {
    if !watch {
        let v: EndpointsView = client.get(&format!("/v1/services/{name}/endpoints"), &()).await?;
        print_endpoints(&v, json)?;
        return Ok(ExitCode::SUCCESS);
    }
    use futures_util::StreamExt;
    let mut stream = std::pin::pin!(client.watch_endpoints(name).await?);
    while let Some(v) = stream.next().await {
        print_endpoints(&v?, json)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_verdict(v: &NodeVerdictView) -> String {
    if v.filters.is_empty() {
        match (v.placed, v.rank) {
            (0, Some(r)) => format!("fits (rank {r}), ranked below the nodes chosen"),
            (n, _) if n > 0 => format!("gets {n}"),
            _ => "fits".into(),
        }
    } else {
        v.filters.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("; ")
    }
}

async fn plan_view(client: &Client, name: &str, spec: Option<&PathBuf>) -> Result<ServicePlanView> {
    let spec = match spec {
        Some(path) => Some(crate::cli::spec::load(path)?),
        None => None,
    };
    let req = ServicePlanRequest { service: name.to_owned(), spec };
    Ok(client.post("/v1/services/plan", &req).await?)
}

async fn plan(client: &Client, name: &str, spec: Option<&PathBuf>, json: bool) -> Result<ExitCode> {
    let v = plan_view(client, name, spec).await?;
    let code = if v.changes { ExitCode::from(1) } else { ExitCode::SUCCESS };
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(code);
    }
    println!("service {}: {} of {} replicas live (seq {})", v.service, v.live, v.replicas, v.seq);
    if v.decisions.is_empty() {
        println!("no change");
    }
    for d in &v.decisions {
        println!("  {:<10} {} on {}: {}", d.action, d.instance, d.node, d.why);
    }
    print_shortfall(&v.shortfall);
    let mut t = Table::new(&["NODE", "RUNNING", "VERDICT"]);
    for n in &v.nodes {
        t.row(vec![n.node.to_string(), n.running.to_string(), print_verdict(n)]);
    }
    print!("{}", t.render());
    let mut counts = std::collections::BTreeMap::new();
    for n in &v.nodes {
        for f in &n.filters {
            *counts.entry(f.filter.as_str()).or_insert(0) += 1;
        }
    }
    if !counts.is_empty() {
        let line: Vec<String> = counts.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!("nodes filtered, by reason: {}", line.join(", "));
    }
    Ok(code)
}

async fn why_not(client: &Client, name: &str, node: &str, json: bool) -> Result<ExitCode> {
    let v = plan_view(client, name, None).await?;
    let Some(n) = v.nodes.iter().find(|n| n.node.as_str() == node) else {
        bail!("node {node} is neither in the fleet nor declared in service {name}'s pools");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(n)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("service {name} on node {node}: runs {} instance(s) now", n.running);
    if n.filters.is_empty() {
        println!("  {}", print_verdict(n));
    }
    for f in &n.filters {
        println!("  - {} ({})", f.message, f.filter);
    }
    Ok(ExitCode::SUCCESS)
}
