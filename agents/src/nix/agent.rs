//! The `sendan-agent nix` loop: follow the node's events (the watch stream wakes it up; a timer re-reads anyway),
//! read the node's desired system, [`plan`], execute the first step on the [`Host`], record it, plan again. Every
//! step is reported as an event through a durable outbox; the control plane's acceptance of `SystemActivating`
//! gates any change and its acceptance of `SystemConfirmed` keeps it.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use sendan_core::event::{
    SystemActivating, SystemConfirmed, SystemHealthFailed, SystemPrefetchFailed, SystemPrefetched, SystemProfileSet,
    SystemReported, SystemRolledBack, SystemSwitched,
};
use sendan_core::wire::{NodeSystemView, ProposalIn, SubmitResponse};
use sendan_core::{EventId, Payload};

use super::config::Config;
use super::host::{Host, RealHost, Started};
use super::plan::{Action, Desired, Observed, plan};
use super::state::{Activation, Local, Prefetched, StateError, Step, Store};
use crate::client::{ApiClient, ClientError};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot read the node token from {path}: {reason}")]
    Token { path: String, reason: String },
    #[error("another sendan-agent nix holds {path}; activations are serialised, so only one may run")]
    Locked { path: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
}

/// What to do after a step.
enum Flow {
    /// Plan again now.
    Next,
    /// Wait for an event or the timer.
    Stop,
    /// Start a new pass now (re-read the desired system).
    Again,
}

/// What a flush of the outbox did.
#[derive(Default)]
struct Flushed {
    delivered: Vec<String>,
    rejected: Vec<(String, String)>,
}

/// The rollback step for `reason`, its switch not started yet.
fn rolling_back(reason: String) -> Step {
    Step::RollingBack { reason, pid: None, unit: None, started_ms: None }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn read_token(config: &Config) -> Result<String, AgentError> {
    let t = std::fs::read_to_string(&config.token_file).map_err(|e| AgentError::Token {
        path: config.token_file.display().to_string(),
        reason: format!("{e}; issue one with `sendan node token {}`", config.node),
    })?;
    let t = t.trim();
    if t.is_empty() {
        return Err(AgentError::Token { path: config.token_file.display().to_string(), reason: "it is empty".into() });
    }
    Ok(t.to_owned())
}

unsafe extern "C" {
    fn flock(fd: i32, operation: i32) -> i32;
}

/// Hold an exclusive lock on `<state-dir>/lock` for the life of the process.
fn lock(config: &Config) -> Result<File, AgentError> {
    let path = config.state_dir.join("lock");
    let f = File::create(&path).map_err(|source| StateError::Io { path: path.clone(), source })?;
    use std::os::unix::io::AsRawFd;
    const LOCK_EX: i32 = 2;
    const LOCK_NB: i32 = 4;
    // SAFETY: flock(2) on a descriptor this function owns and returns.
    if unsafe { flock(f.as_raw_fd(), LOCK_EX | LOCK_NB) } != 0 {
        return Err(AgentError::Locked { path: path.display().to_string() });
    }
    Ok(f)
}

pub struct Agent<H: Host> {
    config: Config,
    client: ApiClient,
    host: H,
    store: Store,
    local: Local,
    /// The last seq the agent read the node at (where the watch stream starts).
    seen: Arc<AtomicU64>,
}

/// Run the agent until it is killed (or, with `once`, until a pass finds nothing to do).
pub fn run(config: Config, once: bool) -> Result<(), AgentError> {
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|source| StateError::Io { path: config.state_dir.clone(), source })?;
    let _lock = lock(&config)?;
    let trust = crate::client::Trust::from_optional_file(config.ca_file.as_deref())?;
    let client = ApiClient::with_trust(&config.server, &read_token(&config)?, &trust);
    let host = RealHost::new(&config);
    let mut agent = Agent::new(config, client, host)?;
    agent.log(format!("started; state in {}", agent.config.state_dir.display()));
    let (tx, rx) = mpsc::channel();
    let mut watching = false;
    loop {
        let again = agent.pass()?;
        if again {
            continue;
        }
        if once {
            return Ok(());
        }
        if !watching {
            watching = true;
            agent.spawn_watch(tx.clone());
        }
        match rx.recv_timeout(agent.config.poll_interval) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => while rx.try_recv().is_ok() {},
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(agent.config.poll_interval),
        }
    }
}

impl<H: Host> Agent<H> {
    pub fn new(config: Config, client: ApiClient, host: H) -> Result<Agent<H>, AgentError> {
        let store = Store::new(&config.state_dir);
        let local = store.load()?;
        Ok(Agent { config, client, host, store, local, seen: Arc::new(AtomicU64::new(0)) })
    }

    fn log(&self, msg: impl AsRef<str>) {
        eprintln!("sendan-agent nix [{}]: {}", self.config.node, msg.as_ref());
    }

    /// Follow the node's events on a thread; each one wakes the loop up.
    fn spawn_watch(&self, tx: mpsc::Sender<()>) {
        let client = self.client.clone();
        let node = self.config.node.to_string();
        let seen = self.seen.clone();
        let prefix = format!("sendan-agent nix [{node}]");
        std::thread::spawn(move || {
            let mut backoff = Duration::from_millis(200);
            loop {
                let after = seen.load(Ordering::Relaxed);
                match client.watch(after, Some(&node)) {
                    Ok(events) => {
                        backoff = Duration::from_millis(200);
                        for e in events {
                            match e {
                                Ok(e) => {
                                    seen.fetch_max(e.seq, Ordering::Relaxed);
                                    if tx.send(()).is_err() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    eprintln!("{prefix}: the event stream broke: {e}");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => eprintln!("{prefix}: cannot follow the node's events: {e}"),
                }
                // Reconnect, a little later each time while the server stays away.
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        });
    }

    fn save(&self) -> Result<(), StateError> {
        self.store.save(&self.local)
    }

    /// Queue a report with a fresh id (kept with it, so a retry is never a second event); the id.
    fn enqueue(&mut self, payload: Payload) -> String {
        let id = EventId(uuid::Uuid::now_v7());
        // Reports quote nix's and switch-to-configuration's output; the log takes printable text within its caps.
        let p = ProposalIn { id: Some(id), comment: None, cause: None, payload }.cleaned();
        self.local.outbox.push(p.to_json());
        id.to_string()
    }

    /// Deliver queued reports in order until one cannot be delivered now. A refused report is dropped (the log
    /// says it does not hold any more) and logged.
    fn flush(&mut self) -> Result<Flushed, StateError> {
        let mut done = Flushed::default();
        while let Some(entry) = self.local.outbox.first().cloned() {
            let id = entry.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            match self.client.post::<SubmitResponse, _>("/v1/events", &entry) {
                Ok(_) => done.delivered.push(id),
                Err(ClientError::Api { status: 400 | 404 | 409, message, .. }) => {
                    let kind = entry.get("type").and_then(|v| v.as_str()).unwrap_or("event");
                    self.log(format!("the control plane refused {kind}: {message}"));
                    done.rejected.push((id, message));
                }
                Err(e) => {
                    if let ClientError::Api { status: 401, .. } = e
                        && let Ok(token) = read_token(&self.config)
                    {
                        self.client = self.client.with_token(&token);
                    }
                    break;
                }
            }
            self.local.outbox.remove(0);
        }
        if !(done.delivered.is_empty() && done.rejected.is_empty()) {
            self.settle(&done);
            self.save()?;
        }
        Ok(done)
    }

    /// Move the activation on when the control plane answered its request or its confirmation.
    fn settle(&mut self, done: &Flushed) {
        let Some(a) = self.local.activation.as_mut() else { return };
        let refused = |id: &str| done.rejected.iter().find(|(r, _)| r == id).map(|(_, m)| m.clone());
        let mut note = None;
        match &a.step {
            Step::Requested { id } if done.delivered.contains(id) => a.step = Step::Begun,
            Step::Requested { id } => {
                if let Some(why) = refused(id) {
                    note = Some(format!("decision {} is not activated: {why}", a.decision));
                    self.local.activation = None;
                }
            }
            Step::Healthy { id, .. } if done.delivered.contains(id) => a.step = Step::Confirmed,
            Step::Healthy { id, .. } => {
                if let Some(why) = refused(id) {
                    a.step = rolling_back(format!("the control plane refused the confirmation: {why}"));
                }
            }
            _ => {}
        }
        if let Some(note) = note {
            self.log(note);
        }
    }

    /// One pass: deliver what is queued, read the desired system, then plan and execute until nothing is left or
    /// something must be waited for. `true`: start another pass at once.
    pub fn pass(&mut self) -> Result<bool, AgentError> {
        self.flush()?;
        let path = format!("/v1/nodes/{}/system", self.config.node);
        let view = match self.client.get::<NodeSystemView>(&path, &[]) {
            Ok(v) => Some(v),
            Err(e) => {
                if let ClientError::Api { status: 401, .. } = e
                    && let Ok(token) = read_token(&self.config)
                {
                    self.client = self.client.with_token(&token);
                }
                self.log(format!("cannot read the desired system: {e}"));
                None
            }
        };
        if let Some(v) = &view {
            self.seen.fetch_max(v.seq, Ordering::Relaxed);
        }
        if view.is_none() && self.local.activation.is_none() {
            return Ok(false);
        }
        let desired = view.as_ref().map(Desired::from_node_view).unwrap_or_default();
        loop {
            let leftover_running = match self.local.activation.as_ref().map(|a| &a.step) {
                Some(Step::Switching { pid, unit, .. } | Step::RollingBack { pid, unit, .. })
                    if pid.is_some() || unit.is_some() =>
                {
                    self.host.still_running(&Started { pid: *pid, unit: unit.clone() })
                }
                _ => false,
            };
            let observed = Observed {
                current: self.host.current_system(),
                booted: self.host.booted_system(),
                local: &self.local,
                now_ms: now_ms(),
                leftover_running,
            };
            let actions = plan(&desired, &observed);
            let Some(first) = actions.into_iter().next() else { return Ok(false) };
            match self.execute(first, view.as_ref())? {
                Flow::Next => continue,
                Flow::Stop => return Ok(false),
                Flow::Again => return Ok(true),
            }
        }
    }

    fn activation(&self) -> Activation {
        self.local.activation.clone().expect("the plan continues an activation only when there is one")
    }

    fn set_step(&mut self, step: Step) -> Result<(), StateError> {
        if let Some(a) = self.local.activation.as_mut() {
            a.step = step;
        }
        self.save()
    }

    /// Carry out one step of the plan, each in its own method.
    fn execute(&mut self, action: Action, view: Option<&NodeSystemView>) -> Result<Flow, AgentError> {
        match action {
            Action::Report => self.report(),
            Action::Skip { decision } => self.skip(decision),
            Action::Acknowledge { decision, path } => self.acknowledge(decision, path),
            Action::Prefetch { decision, system } => self.prefetch(decision, system, view),
            Action::Request { decision, path, action, previous } => self.request(decision, path, action, previous),
            Action::AwaitAcceptance => self.await_acceptance(),
            Action::SetProfile => self.set_profile(),
            Action::AwaitLeftover => self.await_leftover(),
            Action::Switch => self.switch(),
            Action::HealthGate => self.health_gate(),
            Action::Confirm => self.confirm(),
            Action::RollBack { reason } => self.roll_back(reason),
            Action::Finish => self.finish(),
            Action::Reboot { decision, path } => self.reboot(decision, path),
        }
    }

    /// Report what runs and what is booted.
    fn report(&mut self) -> Result<Flow, AgentError> {
        let node = self.config.node.clone();
        let (current, booted) = (self.host.current_system(), self.host.booted_system());
        self.enqueue(SystemReported { node, current: current.clone(), booted: booted.clone() }.into());
        self.local.reported = Some((current, booted));
        self.save()?;
        self.flush()?;
        Ok(Flow::Next)
    }

    /// Leave a decision alone (pinned, or superseded before it started).
    fn skip(&mut self, decision: u64) -> Result<Flow, AgentError> {
        self.local.handled = self.local.handled.max(decision);
        self.local.prefetched = None;
        self.save()?;
        Ok(Flow::Next)
    }

    /// The decision's system runs already: confirm it without switching.
    fn acknowledge(&mut self, decision: u64, path: String) -> Result<Flow, AgentError> {
        let node = self.config.node.clone();
        self.log(format!("decision {decision}: {path} already runs; confirming it"));
        self.enqueue(SystemConfirmed { node, decision, path, switched: false }.into());
        self.local.handled = self.local.handled.max(decision);
        self.local.prefetched = None;
        self.save()?;
        self.flush()?;
        Ok(Flow::Next)
    }

    /// Fetch the decision's closure from the substituters; a failure gives the decision up.
    fn prefetch(&mut self, decision: u64, system: String, view: Option<&NodeSystemView>) -> Result<Flow, AgentError> {
        let Some(v) = view else { return Ok(Flow::Stop) };
        let node = self.config.node.clone();
        let mut subs = v.substituters.clone();
        subs.extend(self.config.substituters.iter().cloned());
        let mut keys = v.trusted_public_keys.clone();
        keys.extend(self.config.trusted_public_keys.iter().cloned());
        self.log(format!("decision {decision}: fetching {system}"));
        match self.host.realise(&system, &subs, &keys) {
            Ok(path) => {
                self.enqueue(SystemPrefetched { node, decision, system, path: path.clone() }.into());
                self.local.prefetched = Some(Prefetched { decision, path });
            }
            Err(error) => {
                self.log(format!("decision {decision}: cannot fetch it, giving the decision up: {error}"));
                self.enqueue(SystemPrefetchFailed { node, decision, system, error }.into());
                self.local.handled = self.local.handled.max(decision);
            }
        }
        self.save()?;
        self.flush()?;
        Ok(Flow::Next)
    }

    /// Ask the log to accept the activation (`SystemActivating`) before touching anything.
    fn request(
        &mut self,
        decision: u64,
        path: String,
        action: sendan_core::event::SwitchAction,
        previous: Option<String>,
    ) -> Result<Flow, AgentError> {
        let node = self.config.node.clone();
        let id = self.enqueue(
            SystemActivating { node, decision, path: path.clone(), action, previous: previous.clone() }.into(),
        );
        self.local.prefetched = None;
        self.local.activation = Some(Activation { decision, path, action, previous, step: Step::Requested { id } });
        self.save()?;
        Ok(Flow::Next)
    }

    /// Wait until the log accepted the activation.
    fn await_acceptance(&mut self) -> Result<Flow, AgentError> {
        self.flush()?;
        Ok(match self.local.activation.as_ref().map(|a| &a.step) {
            Some(Step::Requested { .. }) => Flow::Stop,
            Some(_) => {
                let a = self.activation();
                self.log(format!("decision {}: activating {} (`{}`)", a.decision, a.path, a.action));
                Flow::Next
            }
            None => Flow::Again,
        })
    }

    /// Point the system profile at the new system.
    fn set_profile(&mut self) -> Result<Flow, AgentError> {
        let node = self.config.node.clone();
        let a = self.activation();
        match self.host.set_profile(&a.path) {
            Ok(()) => {
                let profile = self.config.profile.display().to_string();
                self.enqueue(SystemProfileSet { node, decision: a.decision, path: a.path, profile }.into());
                self.set_step(Step::ProfileSet)?;
            }
            Err(e) => self.set_step(rolling_back(format!("setting the profile failed: {e}")))?,
        }
        self.flush()?;
        Ok(Flow::Next)
    }

    /// A switch a previous run of the agent started may still run: wait for it (up to the switch timeout).
    fn await_leftover(&mut self) -> Result<Flow, AgentError> {
        let a = self.activation();
        let (pid, unit, started_ms) = match a.step.clone() {
            Step::Switching { pid, unit, started_ms } => (pid, unit, started_ms),
            Step::RollingBack { pid, unit, started_ms, .. } => (pid, unit, started_ms.unwrap_or(0)),
            _ => return Ok(Flow::Next),
        };
        let started = Started { pid, unit };
        let deadline_ms = started_ms + self.config.switch_timeout.as_millis() as i64;
        self.log("a switch started before the agent restarted is still running; waiting for it");
        while self.host.still_running(&started) && now_ms() < deadline_ms {
            std::thread::sleep(Duration::from_millis(200)); // poll pacing for a process we cannot wait on
        }
        if self.host.still_running(&started) {
            self.log("it ran past the switch timeout; stopping it");
            self.host.kill(&started);
        }
        // Forget it: the next step runs that switch again, to learn how it goes.
        if let Step::RollingBack { reason, .. } = a.step {
            self.set_step(rolling_back(reason))?;
        }
        Ok(Flow::Next)
    }

    /// Run `switch-to-configuration` and report how it went.
    fn switch(&mut self) -> Result<Flow, AgentError> {
        let node = self.config.node.clone();
        let a = self.activation();
        let tag = format!("{}-{}", a.decision, now_ms());
        let started_ms = now_ms();
        let exit_code = match self.host.start_switch(&a.path, a.action, &tag) {
            Ok(started) => {
                self.set_step(Step::Switching { pid: started.pid, unit: started.unit.clone(), started_ms })?;
                self.host.wait_switch(&started, Instant::now() + self.config.switch_timeout)
            }
            Err(e) => {
                self.log(e);
                1
            }
        };
        let reboot_required = exit_code == 100 || self.host.reboot_required(&a.path);
        self.log(format!(
            "decision {}: switch-to-configuration {} exited {exit_code}{}",
            a.decision,
            a.action,
            if reboot_required { " (reboot required)" } else { "" }
        ));
        let p = SystemSwitched { node, decision: a.decision, path: a.path, exit_code, reboot_required };
        self.enqueue(p.into());
        let health_by_ms = now_ms() + self.config.health_timeout.as_millis() as i64;
        self.set_step(Step::Switched { exit_code, health_by_ms })?;
        self.flush()?;
        Ok(Flow::Next)
    }

    /// Run the health checks until they pass (confirm) or their deadline passes (roll back).
    fn health_gate(&mut self) -> Result<Flow, AgentError> {
        let node = self.config.node.clone();
        let a = self.activation();
        let Step::Switched { health_by_ms, .. } = a.step else { return Ok(Flow::Next) };
        loop {
            let failures = self.host.check_health(&a.path);
            if failures.is_empty() {
                let p = SystemConfirmed { node, decision: a.decision, path: a.path.clone(), switched: true };
                let id = self.enqueue(p.into());
                let confirm_by_ms = now_ms() + self.config.confirm_timeout.as_millis() as i64;
                self.set_step(Step::Healthy { id, confirm_by_ms })?;
                break;
            }
            if now_ms() >= health_by_ms {
                let reason = format!("health gate failed: {}", failures.join("; "));
                self.log(format!("decision {}: {reason}", a.decision));
                let p = SystemHealthFailed { node, decision: a.decision, path: a.path.clone(), failures };
                self.enqueue(p.into());
                self.set_step(rolling_back(reason))?;
                break;
            }
            std::thread::sleep(self.config.health_interval); // pause between rounds of health checks
        }
        self.flush()?;
        Ok(Flow::Next)
    }

    /// Keep the change only if the log accepts the confirmation before its deadline; else roll back.
    fn confirm(&mut self) -> Result<Flow, AgentError> {
        loop {
            self.flush()?;
            let a = self.activation();
            match a.step {
                Step::Healthy { id, confirm_by_ms } => {
                    if now_ms() > confirm_by_ms {
                        // Whatever happens to the network later, this confirmation must not arrive after the
                        // rollback: take it out of the outbox.
                        self.local.outbox.retain(|e| e.get("id").and_then(|v| v.as_str()) != Some(id.as_str()));
                        let reason = format!(
                            "the control plane did not acknowledge the confirmation within {}s",
                            self.config.confirm_timeout.as_secs()
                        );
                        self.log(format!("decision {}: {reason}", a.decision));
                        self.set_step(rolling_back(reason))?;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200)); // retry pacing for the confirmation
                }
                Step::Confirmed => {
                    self.log(format!("decision {}: confirmed {}", a.decision, a.path));
                    break;
                }
                _ => break,
            }
        }
        Ok(Flow::Next)
    }

    /// Re-activate the system remembered before the change (never `nix-env --rollback`).
    fn roll_back(&mut self, reason: String) -> Result<Flow, AgentError> {
        let node = self.config.node.clone();
        let a = self.activation();
        match &a.previous {
            Some(previous) => {
                self.log(format!("decision {}: rolling back to {previous}: {reason}", a.decision));
                if a.action.sets_profile()
                    && let Err(e) = self.host.set_profile(previous)
                {
                    self.log(format!("resetting the profile failed: {e}"));
                }
                let tag = format!("{}-rollback-{}", a.decision, now_ms());
                let exit_code = match self.host.start_switch(previous, a.action, &tag) {
                    Ok(started) => {
                        self.set_step(Step::RollingBack {
                            reason: reason.clone(),
                            pid: started.pid,
                            unit: started.unit.clone(),
                            started_ms: Some(now_ms()),
                        })?;
                        self.host.wait_switch(&started, Instant::now() + self.config.switch_timeout)
                    }
                    Err(e) => {
                        self.log(e);
                        1
                    }
                };
                let p = SystemRolledBack {
                    node,
                    decision: a.decision,
                    path: a.path.clone(),
                    to: previous.clone(),
                    reason,
                    exit_code,
                };
                self.enqueue(p.into());
            }
            None => self.log(format!(
                "decision {}: cannot roll back ({reason}): no system was running before; the node needs an operator",
                a.decision
            )),
        }
        self.set_step(Step::RolledBack)?;
        self.flush()?;
        Ok(Flow::Next)
    }

    /// Reboot the drained node into `decision`'s system, once: remembered first, so an agent that comes back on
    /// another system (the boot loader kept the old one) reports it rather than rebooting again.
    fn reboot(&mut self, decision: u64, path: String) -> Result<Flow, AgentError> {
        self.local.rebooted = Some(decision);
        self.save()?;
        self.log(format!("decision {decision}: the node is drained; rebooting into {path}"));
        if let Err(e) = self.host.reboot(&path) {
            self.log(format!("decision {decision}: {e}; the node needs an operator to reboot it"));
        }
        // The machine goes down now; where the reboot command returns (a test host), the next pass reports the
        // booted system.
        Ok(Flow::Again)
    }

    /// The activation is over: the decision is handled.
    fn finish(&mut self) -> Result<Flow, AgentError> {
        if let Some(a) = self.local.activation.take() {
            self.local.handled = self.local.handled.max(a.decision);
        }
        self.save()?;
        self.flush()?;
        Ok(Flow::Again)
    }
}
