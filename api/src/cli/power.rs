//! `sendan node power NODE on|off|reboot|soft-off|status` and `sendan node boot-device NODE pxe|disk`: power
//! requests recorded as events and carried out by the leader's power controller through the node's BMC; the
//! command waits until the log records how it went (or `--no-wait`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::ValueEnum;
use sendan_core::event::{BootDevice, BootOverride, Payload, PowerAction, PowerOutcome, PowerRequested};
use sendan_core::wire::{NodePowerView, PowerResultView, ProposalIn};

use crate::client::Client;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PowerVerb {
    /// Power on.
    On,
    /// Cut the power at once.
    Off,
    /// Power off at once, then on (on, when it is off).
    Reboot,
    /// Ask the operating system to shut down (ACPI), and wait until the power is off.
    SoftOff,
    /// Ask the BMC now, beside what the log last recorded.
    Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The network: the installer or rescue image Sendan serves.
    Pxe,
    /// The local disk.
    Disk,
}

/// How long the CLI waits for the controller (which itself gives the BMC `--power-deadline-secs`).
const WAIT: Duration = Duration::from_secs(300);

fn node_id(id: &str) -> Result<sendan_core::NodeId> {
    sendan_core::NodeId::new(id).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The power request event, for a batch.
pub fn request_event(
    node: &str,
    action: Option<PowerAction>,
    boot: Option<BootOverride>,
    force: bool,
    comment: Option<String>,
) -> Result<ProposalIn> {
    let payload: Payload = PowerRequested { node: node_id(node)?, action, boot, force }.into();
    Ok(ProposalIn { id: None, comment, cause: None, payload })
}

pub async fn power(
    client: &Client,
    node: &str,
    verb: PowerVerb,
    force: bool,
    wait: bool,
    comment: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let action = match verb {
        PowerVerb::On => PowerAction::On,
        PowerVerb::Off => PowerAction::Off,
        PowerVerb::Reboot => PowerAction::Reboot,
        PowerVerb::SoftOff => PowerAction::SoftOff,
        PowerVerb::Status => return status(client, node, json).await,
    };
    let event = request_event(node, Some(action), None, force, comment)?;
    submit_and_wait(client, node, vec![event], wait, json).await
}

pub async fn boot_device(
    client: &Client,
    node: &str,
    device: DeviceArg,
    once: bool,
    wait: bool,
    comment: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let device = match device {
        DeviceArg::Pxe => BootDevice::Pxe,
        DeviceArg::Disk => BootDevice::Disk,
    };
    let event = request_event(node, None, Some(BootOverride { device, once }), false, comment)?;
    submit_and_wait(client, node, vec![event], wait, json).await
}

/// Submit `events` (their last one a power request) atomically, then wait for the request's completion.
pub async fn submit_and_wait(
    client: &Client,
    node: &str,
    mut events: Vec<ProposalIn>,
    wait: bool,
    json: bool,
) -> Result<ExitCode> {
    let receipt = client.submit(&mut events, Duration::from_secs(30)).await?;
    let seqs: Vec<u64> = receipt.events.iter().map(|e| e.seq).collect();
    let request = *seqs.last().unwrap_or(&0);
    let summary = match &events.last().map(|e| &e.payload) {
        Some(Payload::PowerRequested(p)) => sendan_core::power::describe(p.action, p.boot),
        _ => String::new(),
    };
    if !wait {
        if json {
            println!("{}", serde_json::json!({ "node": node, "seqs": seqs, "request": request }));
        } else {
            println!("node {node}: power request `{summary}` recorded at seq {request}; the leader carries it out");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        eprintln!("node {node}: power request `{summary}` recorded at seq {request}; waiting for the BMC…");
    }
    let result = wait_for(client, node, request).await?;
    if json {
        println!("{}", serde_json::json!({ "node": node, "seqs": seqs, "result": result }));
    } else {
        println!("node {node}: {}", outcome(&result));
    }
    Ok(if result.outcome == PowerOutcome::Done { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Poll the node's power view until request `request` has a result.
pub async fn wait_for(client: &Client, node: &str, request: u64) -> Result<PowerResultView> {
    let until = Instant::now() + WAIT;
    loop {
        let view = client.node_power(node, None, false).await?;
        if let Some(last) = view.last.filter(|l| l.request.seq == request) {
            return Ok(last);
        }
        if Instant::now() >= until {
            bail!(
                "node {node}'s power request at seq {request} is not done after {} s; see `sendan node show {node}`",
                WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // poll pacing
    }
}

/// How a request ended: "`reboot` done (seq 34)", "`on` failed (seq 40): why".
fn outcome(r: &PowerResultView) -> String {
    match (&r.outcome, &r.error) {
        (PowerOutcome::Done, _) => format!("`{}` done (seq {})", r.request.summary, r.seq),
        (PowerOutcome::Failed, e) => {
            format!("`{}` failed (seq {}): {}", r.request.summary, r.seq, e.as_deref().unwrap_or("no reason given"))
        }
    }
}

async fn status(client: &Client, node: &str, json: bool) -> Result<ExitCode> {
    let view = client.node_power(node, None, true).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    lines(&view).iter().for_each(|l| println!("{l}"));
    Ok(if view.live.as_ref().is_some_and(|l| l.error.is_some()) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// What `sendan node show` and `status` print about power.
pub fn lines(v: &NodePowerView) -> Vec<String> {
    let mut out = Vec::new();
    let Some(bmc) = &v.bmc else {
        out.push("power:    no BMC declared (nodes.<id>.bmc)".to_owned());
        return out;
    };
    out.push(format!("bmc:      {} {} as {}", bmc.driver, bmc.address, bmc.user));
    if let Some(live) = &v.live {
        match (&live.power, &live.error) {
            (Some(p), _) => out.push(format!("power:    {} (the BMC, just now)", p.as_str())),
            (None, Some(e)) => out.push(format!("power:    unknown: {e}")),
            (None, None) => {}
        }
    } else if let Some((p, seq)) = v.observed {
        out.push(format!("power:    {} (recorded at seq {seq})", p.as_str()));
    }
    if let Some(p) = &v.pending {
        out.push(format!("pending:  `{}` requested at seq {}; the leader is carrying it out", p.summary, p.seq));
    }
    if let Some(l) = &v.last {
        out.push(format!("last:     {}", outcome(l)));
    }
    out
}
