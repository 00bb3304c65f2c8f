//! `sendan bench`: start a three-member loopback cluster of real `sendan server` processes and measure
//! commit throughput and latency of single-event submissions at several concurrencies, batched
//! throughput, replay (fold) rate, cold start, and node-history query latency over a large log — and,
//! when an etcd cluster from `bench/etcd3.sh` is reachable, the same single-put workload against it, side
//! by side, so ratios come from one run on one machine.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use crate::client::Client;
use sendan_core::event::*;
use sendan_core::fleet::FleetState;
use sendan_core::ids::{Actor, EventId, MachineId, NodeId, Timestamp};
use sendan_core::wire::ProposalIn;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Seconds each throughput phase runs.
    #[arg(long, default_value_t = 8)]
    pub seconds: u64,
    /// Concurrent clients for the single-event phases.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub clients: Vec<usize>,
    /// Events in the log used for the history, cold-start and replay measurements.
    #[arg(long, default_value_t = 1_000_000)]
    pub log_events: u64,
    /// Events per batch in the batched phase.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// etcd's JSON gateway (started by `bench/etcd3.sh start DIR`); skipped when it does not answer.
    #[arg(long, default_value = "http://127.0.0.1:23791")]
    pub etcd: String,
    /// Do not try etcd.
    #[arg(long)]
    pub no_etcd: bool,
    /// Where the cluster's data goes [default: a fresh temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Cluster members (3 for the comparison with etcd; 1 isolates the cost of replication).
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    #[command(subcommand)]
    pub what: Option<BenchWhat>,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum BenchWhat {
    /// The scheduler: the pure planner on a large synthetic fleet, and placements committed through the log.
    Scheduler(super::bench_scheduler::SchedulerArgs),
}

#[derive(Debug, Default, Serialize)]
struct Latency {
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    ops: u64,
    errors: u64,
    /// Submissions per Raft entry (how much grouping the write path achieved).
    per_entry: f64,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    machine: String,
    members: usize,
    request_bytes: usize,
    sendan_single: Vec<(usize, Latency)>,
    etcd_single: Vec<(usize, Latency)>,
    batched_events_per_sec: f64,
    log_events: u64,
    replay_events_per_sec: f64,
    decode_and_replay_events_per_sec: f64,
    cold_start_seconds: f64,
    history_p50_ms: f64,
    history_p99_ms: f64,
}

pub(super) struct Members {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    addrs: Vec<String>,
    children: Vec<Option<Child>>,
    token: String,
}

impl Members {
    pub(super) fn start(dir: Option<PathBuf>, n: usize) -> Result<Members> {
        let (tmp, dir) = match dir {
            Some(d) => (None, d),
            None => {
                let t = tempfile::Builder::new().prefix("sendan-bench-").tempdir()?;
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cluster.secret"), crate::auth::generate("cluster"))?;
        let token = crate::auth::generate("admin");
        std::fs::write(dir.join("admin.token"), &token)?;
        let addrs: Vec<String> = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").map(|l| l.local_addr().unwrap().to_string()))
            .collect::<std::io::Result<_>>()?;
        let mut m = Members { dir, _tmp: tmp, addrs, children: Vec::new(), token };
        for i in 0..n {
            let child = m.spawn(i)?;
            m.children.push(Some(child));
        }
        Ok(m)
    }

    fn spawn(&self, i: usize) -> Result<Child> {
        let cluster =
            self.addrs.iter().enumerate().map(|(j, a)| format!("{}={a}", j + 1)).collect::<Vec<_>>().join(",");
        let log = std::fs::File::create(self.dir.join(format!("member-{}.log", i + 1)))?;
        Command::new(std::env::current_exe()?)
            .arg("server")
            .args(["--node-id", &(i + 1).to_string(), "--listen", &self.addrs[i], "--initial-cluster", &cluster])
            .arg("--data-dir")
            .arg(self.dir.join(format!("member-{}", i + 1)))
            .arg("--cluster-secret-file")
            .arg(self.dir.join("cluster.secret"))
            .arg("--admin-token-file")
            .arg(self.dir.join("admin.token"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a member")
    }

    pub(super) fn client(&self, i: usize) -> Client {
        Client::new(&self.addrs[i], Some(self.token.clone()))
    }

    pub(super) async fn leader(&self) -> Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for i in 0..self.addrs.len() {
                if let Ok(m) = self.client(i).member().await
                    && m.role == "leader"
                {
                    return Ok(i);
                }
            }
            if Instant::now() > deadline {
                bail!("no leader after 30s; logs are in {}", self.dir.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // poll pacing
        }
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Run `clients` loops of `op` for `seconds` and collect latencies.
async fn closed_loop<F, Fut>(clients: usize, seconds: u64, op: F) -> Latency
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (op, stop, errors) = (op.clone(), stop.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if op(c, n).await {
                    lat.push(t.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await; // the measurement window
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Latency {
        ops_per_sec: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        ops: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        per_entry: 0.0,
    }
}

fn single_event(run: u64, client: usize, n: u64) -> ProposalIn {
    let machine = MachineId::new(format!("bench-{run}-{client}-{n}")).unwrap();
    ProposalIn {
        id: Some(EventId(uuid::Uuid::now_v7())),
        comment: None,
        cause: None,
        payload: MachineDiscovered { machine, facts: Default::default() }.into(),
    }
}

/// The lifecycle script of one synthetic node: the `k`th event about node `i`.
fn scripted(i: u64, k: u64) -> Payload {
    let node = NodeId::new(format!("n{i}")).unwrap();
    let machine = MachineId::new(format!("m{i}")).unwrap();
    match k {
        0 => MachineDiscovered { machine, facts: Default::default() }.into(),
        1 => NodeCommissioned {
            node,
            machine,
            class: Some("compute".into()),
            pool: Some("workers".into()),
            profile: None,
            rule: None,
        }
        .into(),
        2 => NodeInstallRequested { node }.into(),
        3 => NodeInstallStarted { node }.into(),
        4 => NodeActivated { node }.into(),
        k if k % 2 == 1 => NodeDrainRequested { node }.into(),
        _ => NodeUncordoned { node }.into(),
    }
}

/// A realistic log of `total` events over `nodes` nodes, each following its lifecycle script.
fn synthetic_log(total: u64, nodes: u64) -> Vec<Event> {
    let mut state = FleetState::default();
    let mut out = Vec::with_capacity(total as usize);
    let mut k = 0;
    'outer: loop {
        for i in 0..nodes {
            if out.len() as u64 >= total {
                break 'outer;
            }
            let p = Proposal {
                id: EventId::from_u128((u128::from(i) << 64) | u128::from(k)),
                time: Timestamp(1_800_000_000_000 + out.len() as i64),
                actor: Actor::Admin,
                comment: None,
                cause: None,
                payload: scripted(i, k),
            };
            out.extend(sendan_core::log::append(&mut state, &[p]).expect("the script is legal"));
        }
        k += 1;
    }
    out
}

pub async fn run(args: BenchArgs) -> Result<std::process::ExitCode> {
    if let Some(BenchWhat::Scheduler(s)) = args.what {
        return super::bench_scheduler::run(s).await;
    }
    let mut report = Report {
        machine: machine_description(),
        members: args.members.max(1),
        log_events: args.log_events,
        ..Report::default()
    };
    let say = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };

    // Pure core: replay (fold) rate, with and without decoding stored records.
    say(format!("building a {}-event synthetic log in memory…", args.log_events));
    let log = synthetic_log(args.log_events, (args.log_events / 100).max(1));
    let t = Instant::now();
    let mut s = FleetState::default();
    sendan_core::log::fold(&mut s, &log);
    report.replay_events_per_sec = log.len() as f64 / t.elapsed().as_secs_f64();
    let records: Vec<Vec<u8>> = log.iter().map(sendan_core::record::encode).collect();
    let t = Instant::now();
    let mut s2 = FleetState::default();
    for r in &records {
        sendan_core::evolve(&mut s2, &sendan_core::record::decode(r)?);
    }
    report.decode_and_replay_events_per_sec = log.len() as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(s == s2, "replaying decoded records gave a different state");
    drop(records);

    say(format!("starting a {}-member cluster of `sendan server` processes…", args.members.max(1)));
    let mut members = Members::start(args.dir.clone(), args.members.max(1))?;
    let leader = members.leader().await?;
    let client = members.client(leader);
    report.request_bytes = serde_json::to_vec(&[single_event(0, 0, 0)])?.len();

    for (run, &c) in args.clients.iter().enumerate() {
        say(format!("sendan: single-event submissions, {c} concurrent clients, {}s…", args.seconds));
        let cl = client.clone();
        let before = client.member().await?;
        let mut lat = closed_loop(c, args.seconds, move |client, n| {
            let cl = cl.clone();
            async move { cl.submit_once(&[single_event(run as u64, client, n)]).await.is_ok() }
        })
        .await;
        let after = client.member().await?;
        let entries = after.last_log_index.unwrap_or(0).saturating_sub(before.last_log_index.unwrap_or(0));
        lat.per_entry = (after.seq - before.seq) as f64 / entries.max(1) as f64;
        report.sendan_single.push((c, lat));
    }

    if !args.no_etcd {
        let http = sendan_raft::Trust::plain().http_builder().tcp_nodelay(true).build()?;
        let url = format!("{}/v3/kv/put", args.etcd.trim_end_matches('/'));
        let probe = http.post(&url).json(&serde_json::json!({"key": "cHJvYmU=", "value": "cHJvYmU="})).send().await;
        if probe.is_ok_and(|r| r.status().is_success()) {
            for &c in &args.clients {
                say(format!("etcd: single puts of the same size, {c} concurrent clients, {}s…", args.seconds));
                let (http, url) = (http.clone(), url.clone());
                let size = report.request_bytes;
                let lat = closed_loop(c, args.seconds, move |client, n| {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        let key = format!("bench/{client}/{n}");
                        // base64 grows 4/3: a value of 3/4 of the Sendan body makes the same body size.
                        let value = "v".repeat((size * 3 / 4).saturating_sub(key.len() + 20));
                        let body = serde_json::json!({ "key": b64(key.as_bytes()), "value": b64(value.as_bytes()) });
                        http.post(&url).json(&body).send().await.is_ok_and(|r| r.status().is_success())
                    }
                })
                .await;
                report.etcd_single.push((c, lat));
            }
        } else {
            say(format!("etcd does not answer at {} (start it with bench/etcd3.sh start DIR); skipping it", args.etcd));
        }
    }

    // Batched throughput, which also loads the large log for the query measurements.
    say(format!("sendan: loading {} events in batches of {} (4 clients)…", args.log_events, args.batch));
    let nodes = (args.log_events / 100).max(4);
    let per_client = nodes / 4;
    let loaded = Arc::new(AtomicU64::new(0));
    let already = client.member().await?.seq;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..4u64 {
        let (cl, loaded) = (client.clone(), loaded.clone());
        let (batch, target) = (args.batch as u64, args.log_events);
        tasks.push(tokio::spawn(async move {
            // Client `c` owns nodes [c*per_client, (c+1)*per_client) and walks their scripts in step.
            let mut k = 0u64;
            let mut i = 0u64;
            loop {
                let mut events = Vec::with_capacity(batch as usize);
                while (events.len() as u64) < batch {
                    let node = c * per_client + i;
                    events.push(ProposalIn {
                        id: Some(EventId(uuid::Uuid::now_v7())),
                        comment: None,
                        cause: None,
                        payload: scripted(node, k),
                    });
                    i += 1;
                    if i == per_client {
                        i = 0;
                        k += 1;
                    }
                }
                // Stop before a batch could overshoot the target by much.
                if loaded.fetch_add(batch, Ordering::Relaxed) >= target {
                    return Ok::<(), anyhow::Error>(());
                }
                cl.submit(&mut events, Duration::from_secs(60)).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let head = client.member().await?.seq;
    report.batched_events_per_sec = (head - already) as f64 / t.elapsed().as_secs_f64();

    // Node history queries over the whole log, on a follower (every member answers every audit query).
    let follower = (0..members.addrs.len()).find(|i| *i != leader).unwrap_or(leader);
    let fc = members.client(follower);
    let deadline = Instant::now() + Duration::from_secs(120);
    while fc.member().await?.seq < head {
        anyhow::ensure!(Instant::now() < deadline, "the follower did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await; // poll pacing
    }
    say("sendan: node-history queries (limit 100) on a follower…".into());
    let mut lat = Vec::new();
    for q in 0..2000u64 {
        let node = format!("n{}", (q * 7919) % nodes);
        let filter = crate::client::EventFilter { limit: Some(100), ..Default::default() };
        let t = Instant::now();
        let page = fc.history(&node, &filter).await?;
        lat.push(t.elapsed());
        anyhow::ensure!(!page.events.is_empty(), "node {node} has no history");
    }
    lat.sort();
    report.history_p50_ms = percentile(&lat, 0.50);
    report.history_p99_ms = percentile(&lat, 0.99);

    // Cold start: restart the follower and time until it serves its full state again.
    say("sendan: cold start of a member holding the whole log…".into());
    if let Some(mut c) = members.children[follower].take() {
        // SAFETY: kill(2) on our own child; SIGTERM lets it close its stores.
        unsafe { kill(c.id() as i32, 15) };
        let _ = c.wait();
    }
    let t = Instant::now();
    members.children[follower] = Some(members.spawn(follower)?);
    loop {
        if let Ok(m) = fc.member().await
            && m.seq >= head
        {
            break;
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "the restarted member did not come back");
        tokio::time::sleep(Duration::from_millis(10)).await; // poll pacing
    }
    report.cold_start_seconds = t.elapsed().as_secs_f64();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(A[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(super) fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<u64>().ok()))
        .map(|kb| format!("{} GiB", kb >> 20))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem}")
}

fn print_report(r: &Report) {
    println!("machine: {}", r.machine);
    println!(
        "single-event submissions ({} bytes per request), {} member(s) on loopback, fsync on:",
        r.request_bytes, r.members
    );
    println!(
        "  {:>8}  {:>12} {:>9} {:>9} {:>9}   {:>12} {:>9} {:>9}   {:>7}",
        "clients", "sendan ops/s", "p50 ms", "p99 ms", "per entry", "etcd ops/s", "p50 ms", "p99 ms", "ratio"
    );
    for (c, s) in &r.sendan_single {
        let e = r.etcd_single.iter().find(|(ec, _)| ec == c).map(|(_, l)| l);
        match e {
            Some(e) => println!(
                "  {c:>8}  {:>12.0} {:>9.2} {:>9.2} {:>9.1}   {:>12.0} {:>9.2} {:>9.2}   {:>6.2}x",
                s.ops_per_sec,
                s.p50_ms,
                s.p99_ms,
                s.per_entry,
                e.ops_per_sec,
                e.p50_ms,
                e.p99_ms,
                s.ops_per_sec / e.ops_per_sec.max(1e-9)
            ),
            None => println!(
                "  {c:>8}  {:>12.0} {:>9.2} {:>9.2} {:>9.1}   {:>12} {:>9} {:>9}   {:>7}",
                s.ops_per_sec, s.p50_ms, s.p99_ms, s.per_entry, "-", "-", "-", "-"
            ),
        }
    }
    println!("batched submissions: {:.0} events/s", r.batched_events_per_sec);
    println!(
        "replay (fold) rate: {:.0} events/s; decode + fold: {:.0} events/s",
        r.replay_events_per_sec, r.decode_and_replay_events_per_sec
    );
    println!("cold start with {} events: {:.2} s", r.log_events, r.cold_start_seconds);
    println!(
        "node history (limit 100) over {} events: p50 {:.2} ms, p99 {:.2} ms",
        r.log_events, r.history_p50_ms, r.history_p99_ms
    );
}
