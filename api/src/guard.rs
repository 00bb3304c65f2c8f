//! What protects the unauthenticated edge of a member — the netboot script and the installer's endpoints, the
//! part of the API a machine on the provisioning network reaches with nothing but what netboot hands out: a rate
//! limit per source address, and the bounded list of recent phone-home refusals an operator reads
//! (`GET /v1/machines/refused`). Neither is an event: a refused caller proved nothing, so nothing about it
//! belongs in the permanent log.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sendan_core::wire::RefusedPhoneHome;

use crate::app::App;
use crate::error::ApiError;

/// Addresses tracked at once; past this, the longest-idle ones are forgotten (a forgotten address starts again
/// with a full bucket, so forgetting never blocks anyone).
const MAX_TRACKED: usize = 16_384;

/// A token bucket per source address: `rate` requests a second, bursts of `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` requests per second per address (0: no limit), bursts of ten seconds' worth.
    pub fn new(rate: u32) -> RateLimiter {
        let rate = f64::from(rate);
        RateLimiter { rate, burst: (rate * 10.0).max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    pub fn is_off(&self) -> bool {
        self.rate == 0.0
    }

    /// Take one request for `ip` now: `Ok`, or how many seconds until one is allowed.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        if self.is_off() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let (rate, burst) = (self.rate, self.burst);
            // Full buckets carry no information: drop them first, then the oldest half.
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_TRACKED {
                let mut ages: Vec<Instant> = buckets.values().map(|(_, at)| *at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                buckets.retain(|_, (_, at)| *at > cut);
            }
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// Middleware for the netboot and installer endpoints: past the limit a source address gets 429 with
/// `Retry-After`, counted in `/metrics`.
pub async fn bootstrap_rate_limit(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
        && let Err(wait) = app.bootstrap_limiter.take(peer.ip(), Instant::now())
    {
        app.metrics.rate_limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return ApiError::TooManyRequests {
            message: format!(
                "{} is sending netboot and installer requests faster than this member allows; retry in {wait}s",
                peer.ip()
            ),
            retry_after: wait,
        }
        .into_response();
    }
    next.run(req).await
}

/// The most recent refusals, newest last; a flood only ever replaces older entries.
pub struct Refusals {
    max: usize,
    next: u64,
    list: VecDeque<RefusedPhoneHome>,
}

impl Refusals {
    pub const MAX: usize = 256;

    pub fn new(max: usize) -> Refusals {
        Refusals { max, next: 1, list: VecDeque::new() }
    }

    pub fn push(&mut self, mut r: RefusedPhoneHome) -> u64 {
        r.id = self.next;
        self.next += 1;
        if self.list.len() >= self.max {
            self.list.pop_front();
        }
        let id = r.id;
        self.list.push_back(r);
        id
    }

    pub fn list(&self) -> Vec<RefusedPhoneHome> {
        self.list.iter().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<&RefusedPhoneHome> {
        self.list.iter().find(|r| r.id == id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use sendan_core::Timestamp;
    use sendan_core::facts::HardwareFacts;
    use sendan_core::rejection::IdentityRefusal;

    #[test]
    fn each_address_gets_its_burst_then_its_rate() {
        let l = RateLimiter::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..20 {
            assert_eq!(l.take(a, t0), Ok(()));
        }
        assert_eq!(l.take(a, t0), Err(1), "the burst is ten seconds' worth");
        assert_eq!(l.take(b, t0), Ok(()), "another address has its own bucket");
        assert_eq!(l.take(a, t0 + Duration::from_millis(500)), Ok(()), "two a second refill");
        assert!(l.take(a, t0 + Duration::from_millis(500)).is_err());
        assert!(RateLimiter::new(0).take(a, t0).is_ok(), "0 turns the limit off");
    }

    #[test]
    fn many_addresses_never_grow_the_table_without_bound() {
        let l = RateLimiter::new(1);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 5_000) {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = l.take(ip, t0 + Duration::from_micros(u64::from(i)));
            let _ = l.take(ip, t0 + Duration::from_micros(u64::from(i)));
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_TRACKED);
    }

    #[test]
    fn refusals_keep_the_newest() {
        let mut r = Refusals::new(2);
        let entry = |mac: &str| RefusedPhoneHome {
            id: 0,
            time: Timestamp(0),
            source: "10.0.0.9:1234".into(),
            mac: mac.into(),
            machine: None,
            refusal: IdentityRefusal::NicNotReported { mac: mac.into() },
            message: String::new(),
            facts: HardwareFacts::default(),
        };
        for mac in ["a", "b", "c"] {
            r.push(entry(mac));
        }
        let macs: Vec<String> = r.list().into_iter().map(|e| e.mac).collect();
        assert_eq!(macs, ["b", "c"]);
        assert_eq!(r.get(3).map(|e| e.mac.as_str()), Some("c"));
        assert!(r.get(1).is_none());
    }
}
