//! The agents' client of the Sendan HTTP API: blocking, small (ureq, no async runtime), with a bearer
//! token. Event submissions give every event an id first and retry "don't know" failures with the same
//! ids, which the server's exactly-once guarantee makes safe; `watch` follows the event stream.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sendan_core::Event;
use sendan_core::wire::{ErrorBody, ProposalIn, SubmitResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{message} (HTTP {status}, {code})")]
    Api { status: u16, code: String, message: String },
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("the answer from {url} does not decode: {reason}")]
    Decode { url: String, reason: String },
    #[error("cannot read the CA certificates in {path}: {reason}")]
    Trust { path: String, reason: String },
}

impl ClientError {
    /// Worth retrying with the same event ids.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { status, .. } => matches!(status, 502..=504),
            ClientError::Decode { .. } | ClientError::Trust { .. } => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What an `https://` server's certificate must chain to: the public web roots, or the certificates in a PEM
/// file (the cluster's CA, as `sendan tls init` makes it).
#[derive(Clone, Debug, Default)]
pub struct Trust {
    roots: Option<Arc<Vec<ureq::tls::Certificate<'static>>>>,
}

impl Trust {
    pub fn from_pem_file(path: &Path) -> Result<Trust, ClientError> {
        let err = |reason: String| ClientError::Trust { path: path.display().to_string(), reason };
        let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| err(e.to_string()))? {
                certs.push(c);
            }
        }
        if certs.is_empty() {
            return Err(err("it holds no PEM certificate".into()));
        }
        Ok(Trust { roots: Some(Arc::new(certs)) })
    }

    /// `path`'s certificates, or the public roots without one.
    pub fn from_optional_file(path: Option<&Path>) -> Result<Trust, ClientError> {
        path.map_or(Ok(Trust::default()), Trust::from_pem_file)
    }
}

/// A client of one Sendan server (any member), speaking with one token.
#[derive(Clone)]
pub struct ApiClient {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl ApiClient {
    /// `base` is `http://host:port` (a bare `host:port` gets `http://`); `https://` servers must have a
    /// certificate from a public CA.
    pub fn new(base: &str, token: &str) -> ApiClient {
        ApiClient::with_trust(base, token, &Trust::default())
    }

    /// Like [`ApiClient::new`], verifying `https://` servers against `trust`.
    pub fn with_trust(base: &str, token: &str, trust: &Trust) -> ApiClient {
        let base = if base.contains("://") { base.trim_end_matches('/').to_owned() } else { format!("http://{base}") };
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(roots) = &trust.roots {
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(roots.clone()));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .tls_config(tls.build())
            .build();
        ApiClient { agent: ureq::Agent::new_with_config(config), base, token: token.trim().to_owned() }
    }

    /// The same server and connections, speaking with another token.
    pub fn with_token(&self, token: &str) -> ApiClient {
        ApiClient { agent: self.agent.clone(), base: self.base.clone(), token: token.trim().to_owned() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut url = format!("{}{path}", self.base);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&encode_query(v));
        }
        url
    }

    fn finish<T: DeserializeOwned>(
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut resp = result.map_err(|e| ClientError::Transport { url: url.to_owned(), reason: e.to_string() })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Transport { url: url.to_owned(), reason: e.to_string() })?;
        if !(200..300).contains(&status) {
            return Err(match serde_json::from_str::<ErrorBody>(&text) {
                Ok(b) => ClientError::Api { status, code: b.error.code, message: b.error.message },
                Err(_) => ClientError::Api { status, code: "http".into(), message: text.trim().to_owned() },
            });
        }
        let text = if text.is_empty() { "null" } else { text.as_str() };
        serde_json::from_str(text).map_err(|e| ClientError::Decode { url: url.to_owned(), reason: e.to_string() })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, ClientError> {
        let url = self.url(path, query);
        let r = self.agent.get(&url).header("authorization", &format!("Bearer {}", self.token)).call();
        Self::finish(&url, r)
    }

    pub fn post<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let url = self.url(path, &[]);
        let r = self.agent.post(&url).header("authorization", &format!("Bearer {}", self.token)).send_json(body);
        Self::finish(&url, r)
    }

    /// Submit events once.
    pub fn submit_once(&self, events: &[ProposalIn]) -> Result<SubmitResponse, ClientError> {
        self.post("/v1/events", &events)
    }

    /// Submit events, giving each one without an id a fresh (time-ordered) id first, and retrying
    /// "don't know" failures with the same ids until `deadline` has passed.
    ///
    /// What the agents report quotes commands' output, so every string is made reportable first (control
    /// characters become spaces, over-long text is cut at its cap): the log accepts printable text only.
    pub fn submit(&self, events: &mut [ProposalIn], deadline: Duration) -> Result<SubmitResponse, ClientError> {
        for e in events.iter_mut() {
            *e = e.cleaned();
            if e.id.is_none() {
                e.id = Some(sendan_core::EventId(uuid::Uuid::now_v7()));
            }
        }
        let until = Instant::now() + deadline;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.submit_once(events) {
                Err(e) if e.is_retryable() && Instant::now() < until => {
                    std::thread::sleep(backoff); // backoff before retrying with the same ids
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Follow `GET /v1/events/watch`: every event after `after` (optionally only `node`'s), in order,
    /// then new ones as they are committed. The iterator ends when the connection does; an `error` event
    /// from the server is an `Err`.
    pub fn watch(&self, after: u64, node: Option<&str>) -> Result<Watch, ClientError> {
        let mut query = vec![("after", after.to_string())];
        if let Some(n) = node {
            query.push(("node", n.to_owned()));
        }
        let url = self.url("/v1/events/watch", &query);
        let mut resp = self
            .agent
            .get(&url)
            .header("authorization", &format!("Bearer {}", self.token))
            .header("accept", "text/event-stream")
            .config()
            .timeout_recv_body(None)
            .timeout_global(None)
            .build()
            .call()
            .map_err(|e| ClientError::Transport { url: url.clone(), reason: e.to_string() })?;
        let status = resp.status().as_u16();
        if status != 200 {
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(match serde_json::from_str::<ErrorBody>(&text) {
                Ok(b) => ClientError::Api { status, code: b.error.code, message: b.error.message },
                Err(_) => ClientError::Api { status, code: "http".into(), message: text },
            });
        }
        let reader = BufReader::new(resp.into_body().into_reader());
        Ok(Watch { url, lines: Box::new(reader), done: false })
    }
}

/// The events of a watch stream, in order.
pub struct Watch {
    url: String,
    lines: Box<dyn BufRead + Send>,
    done: bool,
}

impl Iterator for Watch {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (mut kind, mut data) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            match self.lines.read_line(&mut line) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(ClientError::Transport { url: self.url.clone(), reason: e.to_string() }));
                }
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                match kind.as_str() {
                    "event" => {
                        let item = serde_json::from_str::<Event>(&data)
                            .map_err(|e| ClientError::Decode { url: self.url.clone(), reason: e.to_string() });
                        return Some(item);
                    }
                    "error" => {
                        self.done = true;
                        return Some(Err(ClientError::Api { status: 500, code: "watch_failed".into(), message: data }));
                    }
                    _ => {
                        // Keep-alive comments and unknown events.
                        kind.clear();
                        data.clear();
                        continue;
                    }
                }
            }
            if let Some(v) = line.strip_prefix("event:") {
                kind = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
    }
}

/// Percent-encode a query value (RFC 3986 unreserved characters stay as they are).
fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query("2026-11-23T10:00:00+01:00"), "2026-11-23T10%3A00%3A00%2B01%3A00");
        let c = ApiClient::new("127.0.0.1:7770", "t");
        assert_eq!(
            c.url("/v1/events", &[("node", "n1".into()), ("after", "3".into())]),
            "http://127.0.0.1:7770/v1/events?node=n1&after=3"
        );
    }
}
