//! `sendan-agent install`: the netbooted installer. It collects the machine's hardware facts, phones home with
//! its bootstrap token, waits for enrollment to bind it and request its install, fetches its install plan,
//! checks the plan's disks against the disks it sees (refusing before anything is written), and installs:
//! disko, the system, the SSH host key generated on the node, and a node token generated on the node, whose hash
//! it exchanges for its single-use bootstrap token. Every step is reported as an event.
//!
//! Modes: `plan` prints the plan and changes nothing; `dry-run` rehearses — it reports every step but records
//! the disko and nixos-install commands instead of running them, writing only below the target and work
//! directories; `install` writes the disks.

pub mod cmdline;
pub mod exec;
pub mod steps;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sendan_core::event::{NodeInstallFailed, NodeInstallStarted};
use sendan_core::facts::HardwareFacts;
use sendan_core::lifecycle::NodeState;
use sendan_core::machines::install::{Exchanged, PhoneHome, PhoneHomeView, ServedPlan, TokenExchange};
use sendan_core::wire::ProposalIn;
use sendan_core::{EventId, Hash, Payload};

use crate::client::{ApiClient, ClientError};
use crate::facts::FactsError;
use crate::lldp::LldpError;
use exec::Executor;
use steps::Step;

/// What the installer does once it has its plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Print the plan; change nothing.
    Plan,
    /// Report every step, run no disko or nix command, write only below the target and work directories.
    DryRun,
    /// Install: partition and format the disks.
    Install,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plan" => Ok(Mode::Plan),
            "dry-run" => Ok(Mode::DryRun),
            "install" => Ok(Mode::Install),
            other => Err(format!("`{other}` is not a mode: plan, dry-run or install")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub server: String,
    pub token: String,
    /// PEM certificates an `https://` server must chain to; also copied onto the installed node.
    pub ca_file: Option<PathBuf>,
    /// The `/` the facts are read below.
    pub root: PathBuf,
    /// Where the new system is mounted and installed.
    pub target: PathBuf,
    /// Scratch files: the disko configuration, and in a dry run the commands it would have run.
    pub work: PathBuf,
    pub mode: Mode,
    pub lldp: crate::lldp::Source,
    /// How long to wait for enrollment to bind the machine and request its install.
    pub wait: Duration,
    /// Pause between asking for the plan.
    pub poll: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("collecting hardware facts")]
    Facts(#[from] FactsError),
    #[error("reading LLDP neighbours")]
    Lldp(#[from] LldpError),
    #[error("{what}")]
    Api {
        what: &'static str,
        #[source]
        source: ClientError,
    },
    #[error("no install plan after waiting {waited:?}: {why}")]
    NotReady { waited: Duration, why: String },
    #[error("the server will not install this machine: {0}")]
    Refused(String),
    #[error("the plan's disks are not this machine's: {0}; nothing was written")]
    DisksChanged(String),
    #[error("`{tool}` is not installed: {why}")]
    MissingTool { tool: String, why: String },
    #[error("`{command}` failed: {why}")]
    Command { command: String, why: String },
    #[error("cannot write `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// What an install run ended with.
#[derive(Debug)]
pub enum Outcome {
    /// `--mode plan`: the plan, printed by the caller.
    Plan(ServedPlan),
    Installed {
        plan: ServedPlan,
        exchanged: Exchanged,
        rehearsal: bool,
    },
}

fn api(what: &'static str) -> impl FnOnce(ClientError) -> InstallError {
    move |source| InstallError::Api { what, source }
}

fn say(line: &str) {
    // Progress for the person at the console; a closed stderr must not stop the install.
    let _ = writeln!(std::io::stderr().lock(), "sendan-agent: {line}");
}

/// The machine's facts: sysfs, procfs and DMI below `root`, plus LLDP neighbours.
pub fn facts(root: &Path, lldp: &crate::lldp::Source) -> Result<HardwareFacts, InstallError> {
    let mut facts = crate::facts::collect(root)?;
    crate::lldp::merge(&mut facts, &crate::lldp::neighbours(lldp, root)?);
    Ok(facts)
}

/// Phone home, wait for the plan, and (unless `Mode::Plan`) install.
pub fn run(opts: &Options) -> Result<Outcome, InstallError> {
    if opts.mode == Mode::Install && opts.root != Path::new("/") {
        return Err(InstallError::Config(
            "--mode install writes this machine's disks, so it reads this machine's facts: drop --root".into(),
        ));
    }
    // Firmware writes what it likes into DMI and sysfs strings; the server accepts printable text only.
    let facts = facts(&opts.root, &opts.lldp)?.cleaned();
    let trust = crate::client::Trust::from_optional_file(opts.ca_file.as_deref())
        .map_err(|source| InstallError::Api { what: "reading the CA certificates", source })?;
    let client = ApiClient::with_trust(&opts.server, &opts.token, &trust);
    let bootstrap_hash = Hash::of(opts.token.trim().as_bytes());
    match client.post::<PhoneHomeView, _>("/v1/bootstrap/phone-home", &PhoneHome { facts: facts.clone() }) {
        Ok(v) => say(&format!(
            "phoned home as machine {} (seq {}){}",
            v.machine,
            v.seq,
            v.node.map(|n| format!("; it is node {n}, `{}`", v.state)).unwrap_or_default()
        )),
        // An earlier attempt got through but its answer was lost; the plan tells whose session this is.
        Err(ClientError::Api { code, .. }) if code == "bootstrap_token_used" => {
            say("this bootstrap token phoned home before; asking for the plan")
        }
        Err(e) => return Err(api("phoning home")(e)),
    }
    let plan = wait_for_plan(&client, opts)?;
    say(&format!("install plan for node {} (`{}`): {}", plan.node, plan.state, steps::disks_line(&plan)));
    if opts.mode == Mode::Plan {
        return Ok(Outcome::Plan(plan));
    }
    // Before anything is reported: a broken installer image leaves the node as it was, to be netbooted again.
    preflight(opts.mode, &plan)?;
    let result = match opts.mode {
        Mode::Install => install(&client, opts, &facts, &plan, bootstrap_hash, &mut exec::Host),
        _ => {
            let log = opts.work.join("commands.sh");
            install(&client, opts, &facts, &plan, bootstrap_hash, &mut exec::Rehearsal { log })
        }
    };
    if let Err(e) = &result {
        // The node is this installer's: whatever stopped it is the node's failure, for the operator to see.
        let reason = error_chain(e);
        let failed = NodeInstallFailed { node: plan.node.clone(), reason: reason.clone() };
        let mut report = vec![proposal(bootstrap_hash, "failed", failed.into(), None)];
        match client.submit(&mut report, Duration::from_secs(30)) {
            Ok(_) => say(&format!("reported the install of node {} as failed: {reason}", plan.node)),
            Err(r) => say(&format!("could not report the failure ({r})")),
        }
    }
    result
}

/// `error: cause: cause`, as one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// An install report with an id derived from the bootstrap token and the step, so a retried report is
/// recorded once.
fn proposal(token: Hash, step: &str, payload: Payload, comment: Option<String>) -> ProposalIn {
    ProposalIn { id: Some(EventId::derive(&[b"install", &token.0, step.as_bytes()])), comment, cause: None, payload }
}

/// Ask for the plan until there is one, while the answer is "not yet" (`not_enrolled`, `plan_not_ready`).
fn wait_for_plan(client: &ApiClient, opts: &Options) -> Result<ServedPlan, InstallError> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        match client.get::<ServedPlan>("/v1/bootstrap/plan", &[]) {
            Ok(plan) => return Ok(plan),
            Err(ClientError::Api { code, message, .. })
                if matches!(code.as_str(), "not_enrolled" | "plan_not_ready" | "not_phoned_home") =>
            {
                if message != last {
                    say(&format!("waiting: {message}"));
                    last = message;
                }
                if started.elapsed() >= opts.wait {
                    return Err(InstallError::NotReady { waited: opts.wait, why: last });
                }
            }
            Err(ClientError::Api { code, message, .. })
                if matches!(code.as_str(), "plan_refused" | "no_plan" | "not_installing") =>
            {
                return Err(InstallError::Refused(message));
            }
            Err(e) if e.is_retryable() && started.elapsed() < opts.wait => say(&format!("retrying: {e}")),
            Err(e) => return Err(api("fetching the install plan")(e)),
        }
        std::thread::sleep(opts.poll); // pacing between asking again
    }
}

/// Whether `tool` is an executable file in a directory of `PATH`.
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The tools the install runs must be there, and for a real install every device the plan names.
fn preflight(mode: Mode, plan: &ServedPlan) -> Result<(), InstallError> {
    let mut tools = vec!["ssh-keygen"];
    if mode == Mode::Install {
        tools.extend(["disko", "nixos-install"]);
        if plan.plan.system.store_path.is_none() {
            tools.push("nix");
        }
    }
    if let Some(missing) = tools.into_iter().find(|t| !on_path(t)) {
        return Err(InstallError::MissingTool {
            tool: missing.to_owned(),
            why: "the installer image must provide it (the SSH host key is generated on the node, with no fallback)"
                .into(),
        });
    }
    if mode == Mode::Install
        && let Some((name, d)) = plan.disks.iter().find(|(_, d)| !Path::new(&d.device).exists())
    {
        return Err(InstallError::DisksChanged(format!("layout disk '{name}' is {}, which does not exist", d.device)));
    }
    Ok(())
}

/// Every disk the plan resolved must be one this machine has, the same size: the plan was made from the facts
/// this installer reported, so a difference means the machine is not what the plan is for.
pub fn check_disks(plan: &ServedPlan, facts: &HardwareFacts) -> Result<(), InstallError> {
    let problems: Vec<String> = plan
        .disks
        .iter()
        .filter_map(|(name, d)| match facts.disks.iter().find(|f| f.name == d.name) {
            None => Some(format!("layout disk '{name}' is {}, which this machine does not have", d.name)),
            Some(f) if f.size_bytes != d.size_bytes => Some(format!(
                "layout disk '{name}' is {} of {} bytes, but it has {} bytes here",
                d.name, d.size_bytes, f.size_bytes
            )),
            Some(f) if f.removable => Some(format!("layout disk '{name}' is {}, a removable disk", d.name)),
            Some(_) => None,
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(InstallError::DisksChanged(problems.join("; "))) }
}

fn install(
    client: &ApiClient,
    opts: &Options,
    facts: &HardwareFacts,
    plan: &ServedPlan,
    bootstrap: Hash,
    exec: &mut dyn Executor,
) -> Result<Outcome, InstallError> {
    check_disks(plan, facts)?;
    let rehearsal = exec.rehearsal();
    let installing = plan.state == NodeState::Installing;
    let ca_pem = match &opts.ca_file {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            InstallError::Config(format!("cannot read the CA certificates in {}: {e}", path.display()))
        })?),
        None => None,
    };
    let reach = steps::Reach { server: client.base(), ca_pem: ca_pem.as_deref() };
    let steps = steps::steps(plan, &reach, &opts.target, &opts.work, rehearsal, installing);
    let mut captured: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut host_key = None;
    let mut node_token = None;
    for step in steps {
        match step {
            Step::Report(step, detail) => {
                let payload = sendan_core::event::InstallProgressed { node: plan.node.clone(), step, detail };
                let mut report = vec![proposal(bootstrap, step.name(), payload.into(), None)];
                client.submit(&mut report, Duration::from_secs(60)).map_err(api("reporting install progress"))?;
                say(&format!("{step}"));
            }
            Step::Started => {
                let payload = NodeInstallStarted { node: plan.node.clone() }.into();
                let comment = rehearsal.then(|| "dry run: no disk is written".to_owned());
                let mut report = vec![proposal(bootstrap, "started", payload, comment)];
                client.submit(&mut report, Duration::from_secs(60)).map_err(api("reporting the install's start"))?;
            }
            Step::Write { path, contents, mode } => exec.write(&path, contents.as_bytes(), mode)?,
            Step::Run { argv, capture } => {
                let argv: Vec<String> = argv
                    .iter()
                    .map(|a| captured.iter().fold(a.clone(), |a, (k, v)| a.replace(&format!("{{{k}}}"), v)))
                    .collect();
                say(&format!("{}{}", if rehearsal { "dry run, not running: " } else { "running: " }, argv.join(" ")));
                let out = exec.run(&argv)?;
                if let Some(name) = capture {
                    captured.insert(name, out);
                }
            }
            Step::HostKey { path, comment } => host_key = Some(exec::host_key(&path, &comment)?),
            Step::NodeToken { path } => node_token = Some(exec::node_token(&path)?),
            Step::Exchange => {
                let (Some(key), Some(token)) = (host_key.clone(), node_token.clone()) else {
                    return Err(InstallError::Config("the exchange needs the host key and node token first".into()));
                };
                let exchanged = exchange(client, &key, &token, plan)?;
                say(&format!(
                    "node {} has its node token (seq {}); the bootstrap token is spent",
                    exchanged.node, exchanged.seq
                ));
                return Ok(Outcome::Installed { plan: plan.clone(), exchanged, rehearsal });
            }
        }
    }
    Err(InstallError::Config("the install steps end without the token exchange".into()))
}

/// Spend the bootstrap token for `token`. If an earlier attempt got through but its answer was lost, the
/// bootstrap token no longer works; the node token then proves the exchange happened.
fn exchange(client: &ApiClient, key: &str, token: &str, plan: &ServedPlan) -> Result<Exchanged, InstallError> {
    let body = TokenExchange { ssh_host_key: key.to_owned(), token_hash: Hash::of(token.as_bytes()) };
    match client.post::<Exchanged, _>("/v1/bootstrap/node-token", &body) {
        Ok(e) => Ok(e),
        Err(ClientError::Api { status: 401, .. }) => {
            let own = client.with_token(token);
            let view: sendan_core::wire::NodeView =
                own.get(&format!("/v1/nodes/{}", plan.node), &[]).map_err(api("exchanging the bootstrap token"))?;
            Ok(Exchanged { node: plan.node.clone(), seq: view.node.updated })
        }
        Err(e) => Err(api("exchanging the bootstrap token")(e)),
    }
}

#[cfg(test)]
mod tests {
    use sendan_core::facts::{Disk, HardwareFacts};

    use super::*;

    /// The installer's last look before anything destructive: the plan's disks (resolved on the server from
    /// the facts the machine reported) must still be here, the same size, and not removable.
    #[test]
    fn the_installer_refuses_disks_that_changed_since_it_phoned_home() {
        let plan = steps::tests::plan(Some("/nix/store/abc-nixos-system-vm-1"));
        let facts = |disks: Vec<Disk>| HardwareFacts { disks, ..HardwareFacts::default() };
        let vda = Disk { name: "vda".into(), size_bytes: 1, ..Disk::default() };
        assert!(check_disks(&plan, &facts(vec![vda.clone()])).is_ok());
        let cases = [
            (vec![], "layout disk 'root' is vda, which this machine does not have"),
            (vec![Disk { size_bytes: 2, ..vda.clone() }], "is vda of 1 bytes, but it has 2 bytes here"),
            (vec![Disk { removable: true, ..vda.clone() }], "is vda, a removable disk"),
        ];
        for (disks, want) in cases {
            match check_disks(&plan, &facts(disks)) {
                Err(InstallError::DisksChanged(why)) => assert!(why.contains(want), "{why:?} should say {want:?}"),
                other => panic!("expected DisksChanged, got {other:?}"),
            }
        }
    }
}
