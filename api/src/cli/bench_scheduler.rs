//! `sendan bench scheduler`: the scheduler on a large synthetic fleet — the pure planner placing every replica
//! from scratch (placements per second; the anchors are Kubernetes' scheduler_perf, ≥ 680 pods/s at 5,000
//! nodes, and Nomad's C1M, ~3,750 placements/s), planning again once everything is placed, and placements
//! committed through the log of a three-member cluster of real `sendan server` processes.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use sendan_core::event::*;
use sendan_core::facts::{Cpu, HardwareFacts};
use sendan_core::fleet::FleetState;
use sendan_core::ids::{Actor, EventId, Hash, MachineId, NodeId, Timestamp};
use sendan_core::spec::ClusterSpec;
use sendan_core::wire::ProposalIn;

#[derive(Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// Nodes in the fleet.
    #[arg(long, default_value_t = 5000)]
    pub nodes: usize,
    /// Racks they are spread over (100 nodes a rack at most).
    #[arg(long, default_value_t = 50)]
    pub racks: usize,
    /// Services, each with `replicas` instances.
    #[arg(long, default_value_t = 100)]
    pub services: usize,
    #[arg(long, default_value_t = 500)]
    pub replicas: u32,
    /// Also measure placements committed through a cluster of this many `sendan server` processes (0: skip).
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    machine: String,
    nodes: usize,
    racks: usize,
    services: usize,
    instances: u64,
    plan_from_scratch_seconds: f64,
    planner_placements_per_sec: f64,
    plan_when_placed_seconds: f64,
    members: usize,
    committed_seconds: f64,
    committed_placements_per_sec: f64,
}

/// A valid ClusterSpec: `nodes` workers in pool `workers` over `racks` racks (a /24 ip pool each), and
/// `services` services of `replicas` replicas each, spread across racks, reserving 1 CPU thread and 1 GiB each.
pub fn spec(nodes: usize, racks: usize, services: usize, replicas: u32) -> Result<ClusterSpec> {
    let racks = racks.max(nodes.div_ceil(100)).max(1);
    let mut doc: Value = serde_json::from_str(include_str!("../../../core/src/spec/fixture.json"))?;
    doc["name"] = "bench".into();
    let rack = doc["racks"]["rack1"].clone();
    let pool = doc["ipPools"]["rack1-v4"].clone();
    let node = doc["nodes"]["worker-01"].clone();
    let (mut rs, mut ips, mut decl, mut pool_ips) = (json!({}), json!({}), json!({}), json!({}));
    for r in 0..racks {
        let name = format!("r{r:03}");
        let mut rk = rack.clone();
        rk["switches"] = json!([format!("{name}-tor")]);
        rs[&name] = rk;
        let mut p = pool.clone();
        p["cidr"] = format!("10.{}.{}.0/24", 100 + r / 250, r % 250).into();
        p["gateway"] = format!("10.{}.{}.1", 100 + r / 250, r % 250).into();
        p["reserved"] = json!([]);
        ips[format!("{name}-v4")] = p;
        pool_ips[&name] = format!("{name}-v4").into();
    }
    for k in 0..nodes {
        let r = k % racks;
        let mut d = node.clone();
        d["rack"] = format!("r{r:03}").into();
        d["network"]["ipPool"] = format!("r{r:03}-v4").into();
        d["network"]["address"] = format!("10.{}.{}.{}", 100 + r / 250, r % 250, 10 + k / racks).into();
        // Pool members are numbered from 1 and placed in the pool's racks in turn.
        let name = format!("w{:05}", k + 1);
        d["system"]["flake"] =
            format!("git+https://git.example.com/lab#nixosConfigurations.{name}.config.system.build.toplevel").into();
        decl[name] = d;
    }
    doc["racks"] = rs;
    doc["ipPools"] = ips;
    doc["nodes"] = decl;
    doc["enrollmentRules"] = json!({});
    doc["bgp"]["peers"] = json!({});
    let mut workers = doc["pools"]["workers"].clone();
    workers["racks"] = json!((0..racks).map(|r| format!("r{r:03}")).collect::<Vec<_>>());
    workers["ipPools"] = pool_ips;
    workers["size"] = nodes.into();
    workers["namePattern"] = "w{index}".into();
    workers["indexWidth"] = 5.into();
    doc["pools"] = json!({ "workers": workers });
    let mut svcs = json!({});
    for s in 0..services {
        svcs[format!("svc-{s:03}")] = json!({
            "package": "/nix/store/0c0m3hxf0r8bw4ragbmfkm3mn4bpbq6z-web-1.0",
            "command": ["bin/web"],
            "replicas": replicas,
            "pools": ["workers"],
            "constraints": { "maxPerNode": 10, "spreadAcrossRacks": true },
            "resources": { "cpu": 1, "memoryBytes": 1u64 << 30 },
            "ports": { "http": {} },
        });
    }
    doc["services"] = svcs;
    let spec = ClusterSpec::from_json(&doc.to_string()).map_err(|e| anyhow::anyhow!("the bench spec: {e}"))?;
    spec.validate().map_err(|e| anyhow::anyhow!("the bench spec is invalid: {e}"))?;
    Ok(spec)
}

/// The events that bring every node of `spec` into the fleet, `active` with its agent started (64 threads,
/// 256 GiB each): what the cluster is given before the spec.
fn fleet_events(spec: &ClusterSpec) -> Vec<Payload> {
    let mut out = Vec::new();
    for (k, name) in spec.nodes.keys().enumerate() {
        let (Ok(node), Ok(machine)) = (NodeId::new(name.as_str()), MachineId::new(format!("m-{k:05}"))) else {
            continue;
        };
        let facts = HardwareFacts {
            cpu: Cpu { model: "bench".into(), sockets: 2, cores: 32, threads: 64, virtualization: Vec::new() },
            memory_bytes: 256 << 30,
            ..HardwareFacts::default()
        };
        out.push(MachineDiscovered { machine: machine.clone(), facts }.into());
        out.push(
            NodeCommissioned {
                node: node.clone(),
                machine,
                class: None,
                pool: Some("workers".into()),
                profile: None,
                rule: None,
            }
            .into(),
        );
        out.push(NodeInstallRequested { node: node.clone() }.into());
        out.push(NodeInstallStarted { node: node.clone() }.into());
        out.push(NodeActivated { node: node.clone() }.into());
        out.push(NodeAgentStarted { node, address: format!("10.0.{}.{}", k / 250, k % 250) }.into());
    }
    out
}

fn fold_all(state: &mut FleetState, payloads: impl IntoIterator<Item = Payload>) {
    for payload in payloads {
        let seq = state.seq + 1;
        let p = Proposal {
            id: EventId::from_u128(u128::from(seq)),
            time: Timestamp(1_000_000 + seq as i64),
            actor: Actor::Admin,
            comment: None,
            cause: None,
            payload,
        };
        let e = sendan_core::record::seal(&p, seq, p.time, state.head);
        sendan_core::evolve(state, &e);
    }
}

pub async fn run(args: SchedulerArgs) -> Result<std::process::ExitCode> {
    let say = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let spec = spec(args.nodes, args.racks, args.services, args.replicas)?;
    let instances = args.services as u64 * u64::from(args.replicas);
    let mut report = Report {
        machine: super::bench::machine_description(),
        nodes: args.nodes,
        racks: spec.racks.len(),
        services: args.services,
        instances,
        members: args.members,
        ..Report::default()
    };

    // The pure planner.
    say(format!(
        "planner: {} nodes, {} racks, {} services × {} replicas…",
        args.nodes, report.racks, args.services, args.replicas
    ));
    let mut state = FleetState::default();
    fold_all(&mut state, fleet_events(&spec));
    let document = spec.canonical_json();
    fold_all(&mut state, [SpecApplied { digest: Hash::of(document.as_bytes()), document }.into()]);
    let now = Timestamp(state.last_time.0 + 1);
    let t = Instant::now();
    let plan = sendan_core::services::planner::plan(&state.services, &state, now);
    report.plan_from_scratch_seconds = t.elapsed().as_secs_f64();
    if plan.decisions.len() as u64 != instances {
        bail!(
            "the planner placed {} of {instances} instances: {:?}",
            plan.decisions.len(),
            plan.shortfalls.values().next()
        );
    }
    report.planner_placements_per_sec = instances as f64 / report.plan_from_scratch_seconds;
    fold_all(&mut state, plan.decisions.into_iter().map(|d| d.decision.into()));
    let t = Instant::now();
    let again = sendan_core::services::planner::plan(&state.services, &state, now);
    report.plan_when_placed_seconds = t.elapsed().as_secs_f64();
    anyhow::ensure!(again.decisions.is_empty(), "planning again changed {} things", again.decisions.len());
    drop(state);

    if args.members > 0 {
        say(format!("through the log: a {}-member cluster of `sendan server` processes…", args.members));
        let members = super::bench::Members::start(None, args.members)?;
        let leader = members.leader().await?;
        let client = members.client(leader);
        let events = fleet_events(&spec);
        for chunk in events.chunks(3000) {
            let mut batch: Vec<ProposalIn> =
                chunk.iter().map(|p| ProposalIn { id: None, comment: None, cause: None, payload: p.clone() }).collect();
            client.submit(&mut batch, Duration::from_secs(120)).await?;
        }
        say(format!("applying the spec; timing until {instances} placements are committed…"));
        let t = Instant::now();
        super::spec::apply(&client, &spec).await?;
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let v: sendan_core::wire::ServicesView = client.get("/v1/services", &()).await?;
            let live: u64 = v.services.iter().map(|s| u64::from(s.live)).sum();
            if live >= instances {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "only {live} of {instances} placed after 30 minutes");
            tokio::time::sleep(Duration::from_millis(200)).await; // poll pacing
        }
        report.committed_seconds = t.elapsed().as_secs_f64();
        report.committed_placements_per_sec = instances as f64 / report.committed_seconds;
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "scheduler on {} ({} nodes, {} racks, {} instances)",
            report.machine, report.nodes, report.racks, report.instances
        );
        println!(
            "  planner, from scratch:   {:>10.0} placements/s ({:.2} s)",
            report.planner_placements_per_sec, report.plan_from_scratch_seconds
        );
        println!("  planner, all placed:     {:>10.3} s per pass", report.plan_when_placed_seconds);
        if report.members > 0 {
            println!(
                "  committed, {} members:   {:>10.0} placements/s ({:.1} s)",
                report.members, report.committed_placements_per_sec, report.committed_seconds
            );
        }
        println!("  targets: planner ≥ 20,000/s; committed ≥ 3,750/s (Nomad C1M); Kubernetes scheduler_perf ≥ 680/s");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bench_spec_is_valid_and_places_everything() {
        let spec = super::spec(300, 5, 4, 50).unwrap();
        assert_eq!(spec.nodes.len(), 300);
    }
}
