//! Prometheus metrics: request counts by route and status, submission latency, and the member's Raft
//! and log positions, rendered as text at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::app::App;

/// Upper bounds (seconds) of the submission latency histogram.
const BUCKETS: [f64; 12] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, Method, u16), u64>>,
    submit_buckets: [AtomicU64; BUCKETS.len()],
    submit_count: AtomicU64,
    submit_sum_micros: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub batches_rejected: AtomicU64,
    pub forwarded: AtomicU64,
}

impl Metrics {
    pub fn observe_submit(&self, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.submit_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.submit_count.fetch_add(1, Ordering::Relaxed);
        self.submit_sum_micros.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Middleware counting every request by matched route, method and status.
pub async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let resp = next.run(req).await;
    let route = route.as_ref().map_or("other", |p| p.as_str());
    let status = resp.status().as_u16();
    let mut counts = app.metrics.requests.lock().expect("metrics lock");
    // Look up by borrowed parts first: a new key (and its allocation) only for a new combination.
    match counts.iter_mut().find(|((r, m, s), _)| r == route && *m == method && *s == status) {
        Some((_, n)) => *n += 1,
        None => {
            counts.insert((route.to_owned(), method, status), 1);
        }
    }
    resp
}

pub fn render(app: &App) -> String {
    let m = &app.metrics;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# HELP sendan_http_requests_total HTTP requests by route, method and status.");
    let _ = writeln!(w, "# TYPE sendan_http_requests_total counter");
    for ((route, method, status), n) in m.requests.lock().expect("metrics lock").iter() {
        let _ =
            writeln!(w, "sendan_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}");
    }
    let _ = writeln!(w, "# HELP sendan_submit_seconds Time to commit and apply a submission, as seen by this member.");
    let _ = writeln!(w, "# TYPE sendan_submit_seconds histogram");
    for (i, b) in BUCKETS.iter().enumerate() {
        let _ =
            writeln!(w, "sendan_submit_seconds_bucket{{le=\"{b}\"}} {}", m.submit_buckets[i].load(Ordering::Relaxed));
    }
    let count = m.submit_count.load(Ordering::Relaxed);
    let _ = writeln!(w, "sendan_submit_seconds_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(w, "sendan_submit_seconds_sum {}", m.submit_sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
    let _ = writeln!(w, "sendan_submit_seconds_count {count}");
    let counters = [
        ("sendan_events_accepted_total", "Events this member committed for its clients.", &m.events_accepted),
        (
            "sendan_events_duplicate_total",
            "Re-submitted event ids answered with their original seq.",
            &m.events_duplicate,
        ),
        ("sendan_batches_rejected_total", "Submissions the log refused.", &m.batches_rejected),
        ("sendan_submissions_forwarded_total", "Submissions forwarded to the leader.", &m.forwarded),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
    }
    let raft = app.node.raft.metrics().borrow().clone();
    let fleet = app.node.reader.fleet();
    let gauges: [(&str, &str, f64); 7] = [
        ("sendan_raft_term", "Current Raft term.", raft.current_term as f64),
        (
            "sendan_raft_is_leader",
            "1 if this member is the leader.",
            f64::from(u8::from(raft.current_leader == Some(app.node.id))),
        ),
        ("sendan_raft_last_log_index", "Last Raft log index on this member.", raft.last_log_index.unwrap_or(0) as f64),
        (
            "sendan_raft_applied_index",
            "Last Raft log index applied on this member.",
            raft.last_applied.map(|l| l.index).unwrap_or(0) as f64,
        ),
        ("sendan_log_seq", "Last event seq applied on this member.", fleet.seq as f64),
        ("sendan_fleet_nodes", "Nodes in the fleet projection.", fleet.nodes.len() as f64),
        ("sendan_uptime_seconds", "Seconds since this member started.", app.started.elapsed().as_secs_f64()),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    out
}
