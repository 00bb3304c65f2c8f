//! The `sendan-agent node` loop: announce the agent (`NodeAgentStarted`), heartbeat the leader from a thread of its
//! own, follow the node's events (the watch stream wakes the loop; a timer re-reads anyway), and on every pass
//! observe what runs, health-check it when due, read `GET /v1/nodes/{id}/instances`, [`plan`], and carry the
//! steps out. What runs is recorded in the state directory before anything else happens, so a restarted agent
//! adopts running instances instead of starting second copies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use sendan_core::event::NodeAgentStarted;
use sendan_core::wire::{AssignedInstance, HeartbeatAck, NodeInstancesView, ProposalIn};
use sendan_core::{EventId, InstanceId};

use super::config::Config;
use super::health;
use super::plan::{Exit, Health, Local, Step, plan};
use super::runner::{self, Runner, Supervisor, Systemd};
use crate::client::{ApiClient, ClientError};

#[derive(Debug, thiserror::Error)]
pub enum NodeAgentError {
    #[error("cannot read the node token from {path}: {reason}")]
    Token { path: String, reason: String },
    #[error("another sendan-agent node holds {path}; only one may run per node")]
    Locked { path: String },
    #[error("cannot use the state directory {path}: {reason}")]
    State { path: String, reason: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Where the agent records what it runs: `<state-dir>/instances.json`, replaced atomically.
struct Store {
    path: PathBuf,
}

impl Store {
    fn load(&self) -> Result<BTreeMap<InstanceId, Local>, NodeAgentError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NodeAgentError::State {
                path: self.path.display().to_string(),
                reason: format!("it does not decode: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(NodeAgentError::State { path: self.path.display().to_string(), reason: e.to_string() }),
        }
    }

    fn save(&self, locals: &BTreeMap<InstanceId, Local>) -> Result<(), NodeAgentError> {
        let err =
            |e: std::io::Error| NodeAgentError::State { path: self.path.display().to_string(), reason: e.to_string() };
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(locals).unwrap_or_default();
        {
            use std::io::Write;
            let mut f = File::create(&tmp).map_err(err)?;
            f.write_all(&bytes).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err)
    }
}

unsafe extern "C" {
    fn flock(fd: i32, operation: i32) -> i32;
}

fn lock(dir: &Path) -> Result<File, NodeAgentError> {
    let path = dir.join("lock");
    let f = File::create(&path)
        .map_err(|e| NodeAgentError::State { path: path.display().to_string(), reason: e.to_string() })?;
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock(2) on a descriptor this function owns and returns.
    if unsafe { flock(f.as_raw_fd(), 2 | 4) } != 0 {
        return Err(NodeAgentError::Locked { path: path.display().to_string() });
    }
    Ok(f)
}

/// Health-check bookkeeping of one running instance (in memory: a restarted agent checks again).
#[derive(Default)]
struct Checks {
    next: Option<Instant>,
    failures: u32,
}

pub struct NodeAgent {
    config: Config,
    client: ApiClient,
    runner: Box<dyn Runner>,
    store: Store,
    locals: BTreeMap<InstanceId, Local>,
    checks: HashMap<InstanceId, Checks>,
    /// Why the agent ended an instance it is about to see exit (a failed health check).
    killed: HashMap<InstanceId, String>,
    /// The latest view of the node's instances.
    view: Option<NodeInstancesView>,
    seen: Arc<AtomicU64>,
    prefix: String,
}

/// Run the agent until it is killed.
pub fn run(config: Config) -> Result<(), NodeAgentError> {
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| NodeAgentError::State { path: config.state_dir.display().to_string(), reason: e.to_string() })?;
    let _lock = lock(&config.state_dir)?;
    let token = std::fs::read_to_string(&config.token_file).map_err(|e| NodeAgentError::Token {
        path: config.token_file.display().to_string(),
        reason: format!("{e}; issue one with `sendan node token {}`", config.node),
    })?;
    let trust = crate::client::Trust::from_optional_file(config.ca_file.as_deref())?;
    let client = ApiClient::with_trust(&config.server, token.trim(), &trust);
    let runner: Box<dyn Runner> = if config.systemd_run { Box::new(Systemd) } else { Box::new(Supervisor::default()) };
    let store = Store { path: config.state_dir.join("instances.json") };
    let locals = store.load()?;
    let prefix = format!("sendan-agent node [{}]", config.node);
    let mut agent = NodeAgent {
        config,
        client,
        runner,
        store,
        locals,
        checks: HashMap::new(),
        killed: HashMap::new(),
        view: None,
        seen: Arc::new(AtomicU64::new(0)),
        prefix,
    };
    eprintln!(
        "{}: started; {} instance(s) recorded in {}",
        agent.prefix,
        agent.locals.len(),
        agent.config.state_dir.display()
    );
    agent.announce();
    agent.spawn_heartbeat();
    let (tx, rx) = mpsc::channel();
    agent.spawn_watch(tx);
    let mut last_read = Instant::now() - agent.config.poll_interval;
    loop {
        let changed = agent.observe()?;
        let due = last_read.elapsed() >= agent.config.poll_interval;
        let woken = rx.try_recv().is_ok();
        while rx.try_recv().is_ok() {}
        if changed || due || woken || agent.view.is_none() {
            match agent.read() {
                Ok(()) => last_read = Instant::now(),
                Err(e) => eprintln!("{}: cannot read the node's instances: {e}", agent.prefix),
            }
        }
        if agent.view.is_some() {
            let acted = agent.pass()?;
            if acted {
                // Something was started, stopped or reported: read again at once.
                agent.view = None;
                continue;
            }
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(()) => {
                let _ = agent.read();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

impl NodeAgent {
    /// `NodeAgentStarted`, retried until the log has it (the node may not be commissioned yet).
    fn announce(&self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut p = vec![ProposalIn {
                id: Some(EventId(uuid::Uuid::now_v7())),
                comment: Some(format!("sendan-agent node {} started", env!("CARGO_PKG_VERSION"))),
                cause: None,
                payload: NodeAgentStarted {
                    node: self.config.node.clone(),
                    address: self.config.advertise.to_string(),
                }
                .into(),
            }];
            match self.client.submit(&mut p, Duration::from_secs(30)) {
                Ok(_) => return,
                Err(e) => eprintln!("{}: cannot announce the agent: {e}; retrying", self.prefix),
            }
            std::thread::sleep(backoff); // backoff before announcing again
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    fn spawn_heartbeat(&self) {
        let client = self.client.clone();
        let node = self.config.node.to_string();
        let prefix = self.prefix.clone();
        std::thread::spawn(move || {
            let mut every = Duration::from_secs(1);
            loop {
                match client.post::<HeartbeatAck, _>(&format!("/v1/nodes/{node}/heartbeat"), &serde_json::json!({})) {
                    Ok(ack) => every = Duration::from_millis(ack.interval_ms.clamp(100, 10_000)),
                    Err(e) => eprintln!("{prefix}: heartbeat: {e}"),
                }
                std::thread::sleep(every); // pacing between heartbeats
            }
        });
    }

    fn spawn_watch(&self, tx: mpsc::Sender<()>) {
        let client = self.client.clone();
        let node = self.config.node.to_string();
        let seen = self.seen.clone();
        let prefix = self.prefix.clone();
        std::thread::spawn(move || {
            let mut backoff = Duration::from_millis(200);
            loop {
                match client.watch(seen.load(Ordering::Relaxed), Some(&node)) {
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
                std::thread::sleep(backoff); // reconnect a little later each time while the server stays away
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        });
    }

    fn read(&mut self) -> Result<(), ClientError> {
        let v: NodeInstancesView = self.client.get(&format!("/v1/nodes/{}/instances", self.config.node), &[])?;
        self.seen.fetch_max(v.seq, Ordering::Relaxed);
        self.view = Some(v);
        Ok(())
    }

    fn save(&self) -> Result<(), NodeAgentError> {
        self.store.save(&self.locals)
    }

    fn assigned(&self, id: &InstanceId) -> Option<&AssignedInstance> {
        self.view.as_ref()?.instances.iter().find(|i| &i.id == id)
    }

    /// See which local instances ended, and health-check the running ones that are due. Whether anything changed.
    fn observe(&mut self) -> Result<bool, NodeAgentError> {
        let mut changed = false;
        let ids: Vec<InstanceId> = self.locals.keys().cloned().collect();
        for id in ids {
            let Some(l) = self.locals.get(&id) else { continue };
            if l.exit.is_some() {
                continue;
            }
            if let Some(mut exit) = self.runner.ended(l) {
                if let Some(why) = self.killed.remove(&id) {
                    exit.reason = why;
                }
                eprintln!("{}: {id} ended: {}", self.prefix, exit.reason);
                if let Some(l) = self.locals.get_mut(&id) {
                    l.exit = Some(exit);
                    l.health = Health::Unknown;
                }
                self.checks.remove(&id);
                changed = true;
                continue;
            }
            changed |= self.check_health(&id);
        }
        if changed {
            self.save()?;
        }
        Ok(changed)
    }

    /// Run `id`'s health check if it is due; whether its health changed.
    fn check_health(&mut self, id: &InstanceId) -> bool {
        let Some(task) = self.assigned(id).map(|a| a.task.clone()) else { return false };
        let Some(l) = self.locals.get(id) else { return false };
        let Some(check) = &task.health else {
            // No check: a running instance is healthy.
            let healthy = l.health != Health::Healthy;
            if let Some(l) = self.locals.get_mut(id) {
                l.health = Health::Healthy;
            }
            return healthy;
        };
        let c = self.checks.entry(id.clone()).or_default();
        if c.next.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        c.next = Some(Instant::now() + Duration::from_secs(u64::from(check.interval_seconds.max(1))));
        let env = BTreeMap::new();
        let result = health::probe(check, self.config.advertise, &l.ports, &env);
        let c = self.checks.entry(id.clone()).or_default();
        let health = match result {
            Ok(()) => {
                c.failures = 0;
                Health::Healthy
            }
            Err(why) => {
                c.failures += 1;
                if c.failures >= check.unhealthy_after.max(1) {
                    Health::Unhealthy(format!("{why} ({} times in a row)", c.failures))
                } else {
                    l.health.clone()
                }
            }
        };
        let Some(l) = self.locals.get_mut(id) else { return false };
        let changed = std::mem::discriminant(&l.health) != std::mem::discriminant(&health);
        l.health = health;
        changed
    }

    /// Plan against the latest view and carry the steps out; whether anything was done.
    fn pass(&mut self) -> Result<bool, NodeAgentError> {
        let Some(view) = self.view.clone() else { return Ok(false) };
        let mut alive = BTreeSet::new();
        for (id, l) in &self.locals {
            if l.exit.is_none() {
                alive.insert(id.clone());
            }
        }
        let address = self.config.advertise.to_string();
        let steps = plan(&self.config.node, &address, &view.instances, &self.locals, &alive, now_ms());
        let mut acted = false;
        for step in steps {
            acted |= self.execute(step, &view)?;
        }
        Ok(acted)
    }

    /// Carry out one step; whether it changed anything (a refused report did not).
    fn execute(&mut self, step: Step, view: &NodeInstancesView) -> Result<bool, NodeAgentError> {
        match step {
            Step::Start(id) | Step::Restart(id) => {
                let restart = self.locals.get(&id).is_some_and(|l| l.exit.is_some());
                let Some(a) = view.instances.iter().find(|i| i.id == id).cloned() else { return Ok(false) };
                let local = self.start(&a, view, restart);
                self.locals.insert(id, local);
                self.save()?;
            }
            Step::Stop { id, .. } => {
                if let Some(l) = self.locals.get(&id).cloned() {
                    eprintln!("{}: stopping {id}", self.prefix);
                    self.runner.stop(&l, self.config.stop_grace);
                }
                self.locals.remove(&id);
                self.checks.remove(&id);
                self.save()?;
            }
            Step::Kill { id, reason } => {
                if let Some(l) = self.locals.get(&id).cloned() {
                    eprintln!("{}: ending {id}: {reason}", self.prefix);
                    self.killed.insert(id.clone(), reason);
                    self.runner.stop(&l, self.config.stop_grace);
                }
            }
            Step::Forget(id) => {
                self.locals.remove(&id);
                self.checks.remove(&id);
                self.save()?;
            }
            Step::Report { id, payload } => {
                let kind = payload.kind();
                let mut p = vec![ProposalIn { id: Some(id), comment: None, cause: None, payload }];
                match self.client.submit(&mut p, Duration::from_secs(30)) {
                    Ok(_) => {}
                    // Refused: the log moved on (another report, a stop); the next pass decides again.
                    Err(e @ ClientError::Api { .. }) => {
                        eprintln!("{}: {kind} refused: {e}", self.prefix);
                        return Ok(false);
                    }
                    Err(e) => {
                        eprintln!("{}: {kind} could not be reported: {e}", self.prefix);
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    /// Fetch the package, allocate ports and start `a`; the local record (with an exit when it could not start,
    /// which the restart policy then handles like any exit).
    fn start(&mut self, a: &AssignedInstance, view: &NodeInstancesView, restart: bool) -> Local {
        let previous = self.locals.get(&a.id).cloned();
        let mut restarts = previous.as_ref().map(|l| l.restarts.clone()).unwrap_or_default();
        if restart {
            restarts.push(now_ms());
            restarts.retain(|t| *t > now_ms() - i64::from(a.task.restart.interval_seconds) * 1000);
        }
        let mut local = Local { restarts, started_ms: now_ms(), ..Local::new(a.id.clone(), &a.service) };
        let failed = |mut l: Local, reason: String| {
            l.exit = Some(Exit { code: None, signal: None, at_ms: now_ms(), reason });
            l
        };
        let package = match &a.task.package {
            Some(p) => match crate::nix::host::realise(
                self.config.nix_bin_dir.as_deref(),
                p,
                &view.substituters,
                &view.trusted_public_keys,
                self.config.fetch_timeout,
            ) {
                Ok(path) => Some(path),
                Err(e) => return failed(local, format!("its package could not be fetched: {e}")),
            },
            None => None,
        };
        let used: BTreeSet<u16> =
            self.locals.values().filter(|l| l.id != a.id).flat_map(|l| l.ports.values().copied()).collect();
        let ports = match previous.filter(|p| !p.ports.is_empty()) {
            Some(p) => p.ports,
            None => match runner::allocate_ports(&a.task, &used, self.config.ports, self.config.advertise) {
                Ok(p) => p,
                Err(e) => return failed(local, e),
            },
        };
        local.ports = ports.clone();
        let log = self.config.state_dir.join("logs").join(format!("{}.log", a.id));
        let launch = match runner::launch(
            &a.id,
            &a.service,
            self.config.node.as_str(),
            &self.config.advertise.to_string(),
            &a.task,
            package.as_deref(),
            &ports,
            &log,
        ) {
            Ok(l) => l,
            Err(e) => return failed(local, e),
        };
        match self.runner.start(&launch) {
            Ok(s) => {
                eprintln!("{}: started {} ({}) with ports {ports:?}", self.prefix, a.id, launch.program.display());
                local.pid = s.pid;
                local.start_ticks = s.start_ticks;
                local.unit = s.unit;
                local
            }
            Err(e) => failed(local, e),
        }
    }
}
