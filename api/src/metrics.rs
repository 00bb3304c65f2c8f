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
    /// By matched route (or `unmatched`), method (or `other`) and status: labels from a fixed set only, so no
    /// request can add a line to `/metrics` that another request with a different path or method would not.
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    submit_buckets: [AtomicU64; BUCKETS.len()],
    submit_count: AtomicU64,
    submit_sum_micros: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub batches_rejected: AtomicU64,
    pub forwarded: AtomicU64,
    /// Phone-homes refused because their facts claimed an identity their token does not prove.
    pub phone_home_refused: AtomicU64,
    /// Netboot and installer requests answered 429.
    pub rate_limited: AtomicU64,
}

/// The method label: one of the methods the API answers, or `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Route templates are the router's own strings; interning them once keeps the label set fixed.
fn route_label(path: Option<&MatchedPath>) -> &'static str {
    static ROUTES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let Some(p) = path else { return "unmatched" };
    let mut routes = ROUTES.lock().expect("route labels lock");
    if let Some(r) = routes.iter().find(|r| **r == p.as_str()) {
        return r;
    }
    // Only the router's templates get here (a few dozen, fixed when it is built), so this leaks a bounded set.
    let r: &'static str = Box::leak(p.as_str().to_owned().into_boxed_str());
    routes.push(r);
    r
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
    let route = route_label(req.extensions().get::<MatchedPath>());
    let method = method_label(req.method());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    *app.metrics.requests.lock().expect("metrics lock").entry((route, method, status)).or_insert(0) += 1;
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
        (
            "sendan_phone_home_refused_total",
            "Phone-homes refused for claiming an identity their bootstrap token does not prove.",
            &m.phone_home_refused,
        ),
        (
            "sendan_bootstrap_rate_limited_total",
            "Netboot and installer requests answered 429 (rate limit per source address).",
            &m.rate_limited,
        ),
        ("sendan_connections_accepted_total", "TCP connections accepted.", &app.conns.accepted),
        (
            "sendan_connections_refused_total",
            "Connections closed at once because --max-connections were open.",
            &app.conns.refused,
        ),
        (
            "sendan_accept_errors_total",
            "Failed accepts (such as running out of file descriptors).",
            &app.conns.accept_errors,
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
    }
    let raft = app.node.raft.metrics().borrow().clone();
    let fleet = app.node.reader.fleet();
    let gauges: [(&str, &str, f64); 9] = [
        ("sendan_connections_open", "Connections open now.", app.conns.open.load(Ordering::Relaxed) as f64),
        ("sendan_connections_max", "The connection limit.", app.config.http.max_connections as f64),
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
        ("sendan_fleet_nodes", "Nodes in the fleet projection.", fleet.nodes.records.len() as f64),
        ("sendan_uptime_seconds", "Seconds since this member started.", app.started.elapsed().as_secs_f64()),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    out
}
