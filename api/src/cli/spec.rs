//! `sendan plan FILE`, `sendan apply FILE` and `sendan spec show`: the Nix declaration (or its ClusterSpec
//! JSON) against the live spec.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sendan_core::event::SpecApplied;
use sendan_core::spec::{ClusterSpec, Op};
use sendan_core::wire::{PlanView, ProposalIn};

use crate::client::Client;

/// Read a ClusterSpec from a `.json` file or a `.nix` file (evaluated with `nix-instantiate --eval --strict
/// --json`; a file that evaluates to a whole `mkCluster` result is read through its `spec` attribute).
pub fn load(path: &Path) -> Result<ClusterSpec> {
    let text = if path.extension().is_some_and(|e| e == "nix") {
        let abs = std::fs::canonicalize(path).with_context(|| format!("reading {}", path.display()))?;
        // A whole `mkCluster` result holds functions (nixosConfigurations); only its `spec` is JSON.
        let expr = format!(
            "let r = import {}; in if builtins.isAttrs r && r ? spec && !(r ? apiVersion) then r.spec else r",
            nix_string(&abs.to_string_lossy())
        );
        let out = std::process::Command::new("nix-instantiate")
            .args(["--eval", "--strict", "--json", "--expr", &expr])
            .output()
            .context("running nix-instantiate (install Nix, e.g. Debian's nix-bin, to read .nix files)")?;
        if !out.status.success() {
            bail!("evaluating {} failed:\n{}", path.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        String::from_utf8(out.stdout).context("nix-instantiate printed something that is not UTF-8")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let mut value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if value.get("apiVersion").is_none()
        && let Some(spec) = value.get_mut("spec")
    {
        value = spec.take();
    }
    let spec = ClusterSpec::from_json(&value.to_string()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    spec.validate().map_err(|e| anyhow::anyhow!("{}: the cluster spec is invalid: {e}", path.display()))?;
    Ok(spec)
}

/// A Nix string literal of `s`.
fn nix_string(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace("${", "\\${");
    format!("\"{escaped}\"")
}

pub async fn plan(client: &Client, spec: &ClusterSpec) -> Result<PlanView> {
    Ok(client.post_text("/v1/spec/plan", spec.canonical_json()).await?)
}

pub fn print_plan(plan: &PlanView) {
    if plan.diff.is_empty() {
        println!("No changes: spec {} is what the cluster already runs.", plan.digest);
        return;
    }
    for c in &plan.diff.changes {
        let mark = match c.op {
            Op::Add => '+',
            Op::Change => '~',
            Op::Remove => '-',
        };
        let name = if c.name.is_empty() { String::new() } else { format!(" {}", c.name) };
        println!("{mark} {}{name}", c.object);
        for d in &c.details {
            println!("      {d}");
        }
    }
    println!(
        "\nPlan: {} to add, {} to change, {} to remove (spec {} → {}).",
        plan.diff.count(Op::Add),
        plan.diff.count(Op::Change),
        plan.diff.count(Op::Remove),
        plan.live.map(|d| d.to_hex()[..12].to_owned()).unwrap_or_else(|| "none".into()),
        &plan.digest.to_hex()[..12],
    );
}

/// Apply `spec`: nothing when it is already live, else one `SpecApplied` event. Returns the plan and the
/// seq it was recorded at.
pub async fn apply(client: &Client, spec: &ClusterSpec) -> Result<(PlanView, Option<u64>)> {
    let plan = plan(client, spec).await?;
    if plan.live == Some(plan.digest) {
        return Ok((plan, None));
    }
    let mut events = vec![ProposalIn {
        id: None,
        comment: Some("sendan apply".into()),
        cause: None,
        payload: SpecApplied { digest: plan.digest, document: spec.canonical_json() }.into(),
    }];
    let r = client.submit(&mut events, Duration::from_secs(30)).await?;
    Ok((plan, Some(r.events[0].seq)))
}

#[derive(clap::Subcommand, Debug)]
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

/// `sendan plan FILE`.
pub async fn plan_cmd(client: &Client, file: &Path, json: bool) -> Result<std::process::ExitCode> {
    let spec = load(file)?;
    let plan = plan(client, &spec).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print_plan(&plan);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `sendan apply FILE`.
pub async fn apply_cmd(client: &Client, file: &Path, json: bool) -> Result<std::process::ExitCode> {
    let spec = load(file)?;
    let (plan, seq) = apply(client, &spec).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "plan": plan, "seq": seq }))?);
    } else {
        print_plan(&plan);
        match seq {
            Some(seq) => println!("Applied spec {} at seq {seq}.", plan.digest),
            None => println!("Nothing applied."),
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `sendan spec show`.
pub async fn show(client: &Client, cmd: &SpecCmd, json: bool) -> Result<std::process::ExitCode> {
    let SpecCmd::Show { at, digest } = cmd;
    let c = client;
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
    Ok(std::process::ExitCode::SUCCESS)
}
