//! `sendan rollout …` (pool rollouts: start, status, abort, list) and the systems verbs of `sendan node`
//! (`system`, `set-system`, `pin`, `unpin`): thin clients that submit decisions and show where nodes stand.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use sendan_core::event::{NodePinned, NodeSystemSet, NodeUnpinned, RolloutDrainsMembers, RolloutStarted, SwitchAction};
use sendan_core::rollouts::RolloutState;
use sendan_core::rollouts::planner::Member;
use sendan_core::rollouts::view::RolloutView;
use sendan_core::wire::{NodeSystemView, ProposalIn, RolloutsView};
use sendan_core::{NodeId, Payload};

use crate::cli::output::{Table, dash};
use crate::client::Client;

#[derive(Subcommand, Debug)]
pub enum RolloutCmd {
    /// Move a pool to a new system in waves: canaries first, then at most --max-unavailable members at a time,
    /// each confirming within --health-timeout; a failed canary or too many failures halts it and puts every
    /// moved member back.
    Start(StartArgs),
    /// A rollout's waves and where each member stands (the pool's latest rollout, or one by id).
    Status {
        /// A pool name or a rollout id.
        target: String,
    },
    /// Halt a pool's running rollout and put its moved members back on what they ran before.
    Abort {
        pool: String,
        /// Why, for the audit trail.
        #[arg(long, default_value = "aborted by an operator")]
        reason: String,
    },
    /// Every rollout, newest first.
    List {
        /// Only this pool's.
        #[arg(long)]
        pool: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// The pool, as the live spec declares it.
    pub pool: String,
    /// The system: a store path (/nix/store/…) or a flake reference with an attribute (ref#attr).
    pub system: String,
    /// At most this many members away from a healthy system at once.
    #[arg(long, default_value_t = 1)]
    pub max_unavailable: u32,
    /// This many members go first, alone; a failing canary halts the rollout.
    #[arg(long, default_value_t = 0)]
    pub canary: u32,
    /// Failed members tolerated after the canaries; one more halts the rollout and puts the pool back.
    #[arg(long, default_value_t = 0)]
    pub max_failures: u32,
    /// Seconds a moved member has to confirm its new system.
    #[arg(long, default_value_t = 600)]
    pub health_timeout: u32,
    /// switch-to-configuration's verb: switch, boot or test.
    #[arg(long, default_value = "switch")]
    pub action: SwitchAction,
    /// Follow the rollout until it completes (exit 0) or is reverted (exit 1).
    #[arg(long)]
    pub wait: bool,
    /// Drain each member before its wave (its instances handed over within their services' budgets) and
    /// uncordon it once it confirms, as a `boot` rollout does; one member per wave.
    #[arg(long)]
    pub drain: bool,
}

async fn submit(client: &Client, comment: &str, payload: Payload) -> Result<u64> {
    let mut events = vec![ProposalIn { id: None, comment: Some(comment.to_owned()), cause: None, payload }];
    let r = client.submit(&mut events, Duration::from_secs(30)).await?;
    Ok(r.events[0].seq)
}

fn node_id(id: &str) -> Result<NodeId> {
    NodeId::new(id).map_err(|e| anyhow::anyhow!("{e}"))
}

pub async fn node_system(client: &Client, id: &str, at: Option<u64>) -> Result<NodeSystemView> {
    Ok(client.get(&format!("/v1/nodes/{id}/system"), &[("at", at)]).await?)
}

pub fn print_node_system(v: &NodeSystemView) {
    let s = &v.system;
    println!("node:      {} ({})", v.node, v.state);
    match &s.desired {
        Some(d) => {
            let rollout = d.rollout.map(|r| format!(", rollout {r}")).unwrap_or_default();
            println!(
                "desired:   {} ({}, decided at seq {} by {}{rollout})",
                d.system,
                d.action,
                d.seq,
                d.source.name()
            );
        }
        None => println!("desired:   - (no decision yet)"),
    }
    println!("current:   {}", dash(s.current.as_deref()));
    println!("booted:    {}", dash(s.booted.as_deref()));
    if let Some(p) = &s.pinned {
        println!("pinned:    since seq {}: {}", p.seq, p.reason);
    }
    if let Some(r) = v.rollout {
        println!("rollout:   member of rollout {r}");
    }
    match &s.attempt {
        Some(a) => {
            let mut line = format!("decision {}: {}", a.decision, a.phase.name());
            if let Some(p) = &a.path {
                line.push_str(&format!(" ({p})"));
            }
            if let Some(c) = a.exit_code {
                line.push_str(&format!(", exit {c}"));
            }
            if a.reboot_required {
                line.push_str(", reboot required");
            }
            println!("attempt:   {line}");
            if let Some(e) = &a.error {
                println!("           {e}");
            }
        }
        None => println!("attempt:   -"),
    }
    println!("as of:     seq {}", v.seq);
}

pub async fn set_system(client: &Client, id: &str, system: &str, action: SwitchAction) -> Result<u64> {
    let payload = NodeSystemSet { node: node_id(id)?, system: system.to_owned(), action }.into();
    submit(client, "sendan node set-system", payload).await
}

pub async fn pin(client: &Client, id: &str, reason: &str) -> Result<u64> {
    submit(client, "sendan node pin", NodePinned { node: node_id(id)?, reason: reason.to_owned() }.into()).await
}

pub async fn unpin(client: &Client, id: &str) -> Result<u64> {
    submit(client, "sendan node unpin", NodeUnpinned { node: node_id(id)? }.into()).await
}

async fn rollout(client: &Client, id: u64) -> Result<RolloutView> {
    Ok(client.get(&format!("/v1/rollouts/{id}"), &()).await?)
}

async fn rollouts(client: &Client, pool: Option<&str>, limit: Option<usize>) -> Result<RolloutsView> {
    Ok(client
        .get("/v1/rollouts", &[("pool", pool.map(str::to_owned)), ("limit", limit.map(|l| l.to_string()))])
        .await?)
}

/// Rollout `id`, just started: a member that forwarded the start to the leader may not have applied it yet, so a
/// 404 is asked again for a few seconds.
async fn rollout_once_applied(client: &Client, id: u64) -> Result<RolloutView> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.get(&format!("/v1/rollouts/{id}"), &()).await {
            Err(crate::client::ClientError::Api { status: 404, .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await; // poll pacing while this member catches up
            }
            other => return Ok(other?),
        }
    }
}

/// A pool's latest rollout, or a rollout by id.
async fn find(client: &Client, target: &str) -> Result<RolloutView> {
    if let Ok(id) = target.parse::<u64>() {
        return rollout(client, id).await;
    }
    match rollouts(client, Some(target), Some(1)).await?.rollouts.into_iter().next() {
        Some(r) => Ok(r),
        None => bail!("pool {target} has no rollout; start one with `sendan rollout start {target} SYSTEM`"),
    }
}

/// Run `sendan rollout …`; the exit code is 1 for `start --wait` ending reverted.
pub async fn run(client: &Client, cmd: &RolloutCmd, json: bool) -> Result<std::process::ExitCode> {
    let ok = std::process::ExitCode::SUCCESS;
    match cmd {
        RolloutCmd::Start(a) => {
            let payload = RolloutStarted {
                pool: a.pool.clone(),
                system: a.system.clone(),
                action: a.action,
                max_unavailable: a.max_unavailable,
                canary: a.canary,
                max_failures: a.max_failures,
                health_timeout_secs: a.health_timeout,
            };
            let mut events = vec![ProposalIn {
                id: None,
                comment: Some("sendan rollout start".into()),
                cause: None,
                payload: payload.into(),
            }];
            if a.drain {
                // One batch: the rollout drains its members from its start, before any wave can begin.
                events.push(ProposalIn {
                    id: None,
                    comment: Some("sendan rollout start --drain".into()),
                    cause: None,
                    payload: RolloutDrainsMembers { pool: a.pool.clone() }.into(),
                });
            }
            let id = client.submit(&mut events, Duration::from_secs(30)).await?.events[0].seq;
            if !a.wait {
                let view = rollout_once_applied(client, id).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&view)?);
                } else {
                    println!(
                        "Started rollout {id} of pool {} ({} members) to {}.\nFollow it with `sendan rollout status {}`.",
                        a.pool, view.counts.members, a.system, a.pool
                    );
                }
                return Ok(ok);
            }
            if !json {
                println!("Started rollout {id} of pool {} to {}.", a.pool, a.system);
            }
            let view = follow(client, id, json).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_rollout(&view);
            }
            if view.state != RolloutState::Completed {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        RolloutCmd::Status { target } => {
            let view = find(client, target).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_rollout(&view);
            }
        }
        RolloutCmd::Abort { pool, reason } => {
            let view = find(client, pool).await?;
            if !view.state.is_open() {
                bail!(
                    "rollout {} of pool {} already ended ({}); nothing to abort",
                    view.id,
                    view.pool,
                    view.state.name()
                );
            }
            let body = serde_json::json!({ "reason": reason, "id": sendan_core::EventId(uuid::Uuid::now_v7()) });
            let resp: sendan_core::wire::SubmitResponse =
                client.post(&format!("/v1/rollouts/{}/abort", view.id), &body).await?;
            let seq = resp.events[0].seq;
            if json {
                println!("{}", serde_json::json!({ "rollout": view.id, "seq": seq }));
            } else {
                println!(
                    "Halted rollout {} of pool {} at seq {seq}; its moved members are being put back (`sendan rollout status {}`).",
                    view.id, view.pool, view.pool
                );
            }
        }
        RolloutCmd::List { pool } => {
            let list = rollouts(client, pool.as_deref(), None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let mut t = Table::new(&["ID", "POOL", "STATE", "SYSTEM", "CONFIRMED", "FAILED", "STARTED"]);
                for r in &list.rollouts {
                    t.row(vec![
                        r.id.to_string(),
                        r.pool.clone(),
                        r.state.name().to_owned(),
                        r.system.clone(),
                        format!("{}/{}", r.counts.confirmed, r.counts.members),
                        r.counts.failed.to_string(),
                        r.started_at.to_rfc3339(),
                    ]);
                }
                print!("{}", t.render());
            }
        }
    }
    Ok(ok)
}

/// Poll the rollout until it ends, printing a line whenever a member's standing changes.
async fn follow(client: &Client, id: u64, quiet: bool) -> Result<RolloutView> {
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut view = rollout_once_applied(client, id).await?;
    loop {
        if !quiet {
            for m in view.waves.iter().flat_map(|w| &w.members) {
                let now = (m.node.to_string(), m.phase.name().to_owned());
                if !seen.contains(&now) {
                    let wave = m.wave.map(|w| format!("wave {w}")).unwrap_or_default();
                    let why = m.why.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
                    println!("  {wave:<8} {:<20} {}{why}", m.node, m.phase.name());
                    seen.push(now);
                }
            }
        }
        if !view.state.is_open() {
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // poll pacing while following
        view = rollout(client, id).await?;
    }
}

fn member_row(wave: String, m: &Member) -> Vec<String> {
    vec![
        wave,
        m.node.to_string(),
        m.phase.name().to_owned(),
        if m.unhealthy { "unhealthy".into() } else { String::new() },
        m.why.clone().unwrap_or_default(),
    ]
}

pub fn print_rollout(v: &RolloutView) {
    println!("rollout {} of pool {}: {} ({} with `{}`)", v.id, v.pool, v.state.name(), v.system, v.action);
    println!(
        "budget:  max-unavailable {}, canary {}, max-failures {}, health timeout {}s; started {}",
        v.max_unavailable,
        v.canary,
        v.max_failures,
        v.health_timeout_secs,
        v.started_at.to_rfc3339()
    );
    if let Some(r) = &v.reason {
        println!("halted:  {r}");
    }
    println!();
    let mut t = Table::new(&["WAVE", "NODE", "STATUS", "HEALTH", "WHY"]);
    for w in &v.waves {
        for m in &w.members {
            t.row(member_row(format!("{}{}", w.number, if w.canary { " (canary)" } else { "" }), m));
        }
    }
    for m in &v.unmoved {
        t.row(member_row("-".into(), m));
    }
    print!("{}", t.render());
    let c = &v.counts;
    println!(
        "\n{}/{} confirmed, {} moving, {} failed, {} pending, {} skipped, {} untouched, {} reverted; {} unavailable (seq {})",
        c.confirmed, c.members, c.moving, c.failed, c.pending, c.skipped, c.untouched, c.reverted, c.unavailable, v.seq
    );
    if let Some(w) = &v.waiting {
        println!("{w}");
    }
}
