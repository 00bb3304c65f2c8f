//! The HTTP client of the API, used by the CLI, the benchmark and the tests.
//!
//! Submissions are retried on "don't know" failures (connection lost, 503) with the same event ids until a
//! deadline, which the server's exactly-once guarantee makes safe.

use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use sendan_core::Event;
use sendan_core::wire::{
    AddMember, ClusterStatus, ErrorBody, EventPage, MemberStatus, NodeView, NodesView, ProposalIn, SubmitResponse,
    VerifyView,
};
use sendan_raft::Trust;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{message} (HTTP {status}, {code})")]
    Api { status: u16, code: String, message: String, index: Option<usize> },
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("the answer from {url} does not decode: {reason}")]
    Decode { url: String, reason: String },
}

impl ClientError {
    /// Worth retrying with the same event ids.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { status, .. } => *status == 503 || *status == 502 || *status == 504,
            ClientError::Decode { .. } => false,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Filters of `GET /v1/events`; unset fields are omitted.
/// `GET /v1/nodes`'s query: the fleet at a seq, one state (a lifecycle state or `declared`), one pool.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodesQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct EventFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

fn transport(url: &str, e: reqwest::Error) -> ClientError {
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        reason = format!("{reason}: {s}");
        src = s.source();
    }
    if reason.contains("invalid peer certificate") {
        reason.push_str(" (pass --ca-file with the certificates the cluster's TLS certificates chain to)");
    } else if url.starts_with("http://") && reason.contains("invalid HTTP version") {
        reason.push_str(" (the server may serve HTTPS: use an https:// address)");
    }
    ClientError::Transport { url: url.to_owned(), reason }
}

impl Client {
    /// `base` is `http://host:port` (a bare `host:port` gets `http://`); `https://` servers are not trusted.
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client::with_trust(base, token, &Trust::plain())
    }

    /// `base` is `http[s]://host:port`, or a bare `host:port` that gets `trust`'s scheme; HTTPS servers are
    /// verified against `trust`'s roots.
    pub fn with_trust(base: &str, token: Option<String>, trust: &Trust) -> Client {
        let http = trust
            .http_builder()
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .build()
            .expect("an HTTP client with a preconfigured TLS config builds");
        Client { http, base: trust.base_url(base), token }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn req(&self, method: reqwest::Method, path: &str) -> (String, reqwest::RequestBuilder) {
        let url = format!("{}{path}", self.base);
        let mut b = self.http.request(method, &url);
        if let Some(t) = &self.token {
            b = b.bearer_auth(t);
        }
        (url, b)
    }

    async fn send<T: DeserializeOwned>(url: &str, b: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let resp = b.send().await.map_err(|e| transport(url, e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport(url, e))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => ClientError::Api {
                    status: status.as_u16(),
                    code: b.error.code,
                    message: b.error.message,
                    index: b.error.index,
                },
                Err(_) => ClientError::Api {
                    status: status.as_u16(),
                    code: "http".into(),
                    message: String::from_utf8_lossy(&bytes).trim().to_owned(),
                    index: None,
                },
            });
        }
        let body = if bytes.is_empty() { b"null".as_slice() } else { &bytes };
        serde_json::from_slice(body).map_err(|e| ClientError::Decode { url: url.to_owned(), reason: e.to_string() })
    }

    pub async fn get<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let (url, b) = self.req(reqwest::Method::GET, path);
        Self::send(&url, b.query(query)).await
    }

    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let (url, b) = self.req(reqwest::Method::POST, path);
        Self::send(&url, b.json(body)).await
    }

    /// POST a raw JSON document.
    pub async fn post_text<T: DeserializeOwned>(&self, path: &str, body: String) -> Result<T, ClientError> {
        let (url, b) = self.req(reqwest::Method::POST, path);
        Self::send(&url, b.header("content-type", "application/json").body(body)).await
    }

    pub async fn spec(&self, at: Option<u64>) -> Result<sendan_core::wire::SpecView, ClientError> {
        self.get("/v1/spec", &[("at", at)]).await
    }

    pub async fn spec_by_digest(&self, digest: &str) -> Result<sendan_core::wire::SpecView, ClientError> {
        self.get(&format!("/v1/specs/{digest}"), &()).await
    }

    pub async fn issue_node_token(&self, node: &str) -> Result<sendan_core::wire::IssuedToken, ClientError> {
        self.post(&format!("/v1/nodes/{node}/token"), &()).await
    }

    /// `GET /v1/machines`: every machine that phoned home, with why an unbound one is not bound.
    pub async fn machines(&self, at: Option<u64>) -> Result<sendan_core::wire::MachinesView, ClientError> {
        self.get("/v1/machines", &[("at", at)]).await
    }

    /// `GET /v1/machines/refused`: the member's recent phone-home refusals.
    pub async fn refused(&self) -> Result<sendan_core::wire::RefusedView, ClientError> {
        self.get("/v1/machines/refused", &()).await
    }

    /// `POST /v1/machines/refused/{id}/accept`: record a refused phone-home's facts as its machine's.
    pub async fn accept_refused(&self, id: u64) -> Result<sendan_core::wire::SubmitResponse, ClientError> {
        self.post(&format!("/v1/machines/refused/{id}/accept"), &serde_json::json!({})).await
    }

    /// `POST /v1/enroll/dry-run`: which enrollment rule would bind a machine with `facts`, and why.
    pub async fn enroll_dry_run(
        &self,
        facts: &sendan_core::facts::HardwareFacts,
    ) -> Result<sendan_core::machines::enrollment::Explanation, ClientError> {
        self.post("/v1/enroll/dry-run", facts).await
    }

    /// `GET /v1/nodes/{id}/plan`: the install plan the node's installer is served.
    pub async fn node_plan(&self, node: &str) -> Result<sendan_core::machines::install::ServedPlan, ClientError> {
        self.get(&format!("/v1/nodes/{node}/plan"), &()).await
    }

    /// `GET /v1/nodes/{id}/install`: what the log says about the node's install.
    pub async fn node_install(
        &self,
        node: &str,
        at: Option<u64>,
    ) -> Result<sendan_core::wire::InstallView, ClientError> {
        self.get(&format!("/v1/nodes/{node}/install"), &[("at", at)]).await
    }

    /// `GET /v1/boot/ipxe?mac=`: the netboot script, as text (this may issue a bootstrap token).
    pub async fn ipxe(&self, mac: &str) -> Result<String, ClientError> {
        let (url, b) = self.req(reqwest::Method::GET, "/v1/boot/ipxe");
        let resp = b.query(&[("mac", mac)]).send().await.map_err(|e| transport(&url, e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| transport(&url, e))?;
        if status != 200 {
            let (code, message) = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| (b.error.code, b.error.message))
                .unwrap_or(("http".into(), text));
            return Err(ClientError::Api { status, code, message, index: None });
        }
        Ok(text)
    }

    /// Submit events once. Events without an id are sent without one (the server picks it).
    pub async fn submit_once(&self, events: &[ProposalIn]) -> Result<SubmitResponse, ClientError> {
        self.post("/v1/events", events).await
    }

    /// Submit events, giving each one without an id a fresh id first, and retrying "don't know"
    /// failures with the same ids until `deadline` has passed.
    pub async fn submit(&self, events: &mut [ProposalIn], deadline: Duration) -> Result<SubmitResponse, ClientError> {
        for e in events.iter_mut() {
            if e.id.is_none() {
                e.id = Some(sendan_core::EventId(uuid::Uuid::now_v7()));
            }
        }
        let until = Instant::now() + deadline;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.submit_once(events).await {
                Err(e) if e.is_retryable() && Instant::now() < until => {
                    tokio::time::sleep(backoff).await; // backoff before retrying with the same ids
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    pub async fn events(&self, f: &EventFilter) -> Result<EventPage, ClientError> {
        self.get("/v1/events", f).await
    }

    pub async fn nodes(&self, query: &NodesQuery) -> Result<NodesView, ClientError> {
        self.get("/v1/nodes", query).await
    }

    /// `GET /v1/nodes/{id}/power`; `live`: ask the BMC now.
    pub async fn node_power(
        &self,
        id: &str,
        at: Option<u64>,
        live: bool,
    ) -> Result<sendan_core::wire::NodePowerView, ClientError> {
        #[derive(serde::Serialize)]
        struct Q {
            #[serde(skip_serializing_if = "Option::is_none")]
            at: Option<u64>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            live: bool,
        }
        self.get(&format!("/v1/nodes/{id}/power"), &Q { at, live }).await
    }

    pub async fn node(&self, id: &str, at: Option<u64>) -> Result<NodeView, ClientError> {
        self.get(&format!("/v1/nodes/{id}"), &[("at", at)]).await
    }

    pub async fn history(&self, id: &str, f: &EventFilter) -> Result<EventPage, ClientError> {
        self.get(&format!("/v1/nodes/{id}/history"), f).await
    }

    pub async fn verify(&self) -> Result<VerifyView, ClientError> {
        self.get("/v1/audit/verify", &()).await
    }

    pub async fn cluster(&self) -> Result<ClusterStatus, ClientError> {
        self.get("/v1/cluster", &()).await
    }

    pub async fn member(&self) -> Result<MemberStatus, ClientError> {
        self.get("/v1/cluster/local", &()).await
    }

    pub async fn add_member(&self, id: u64, addr: &str) -> Result<(), ClientError> {
        self.post("/v1/cluster/members", &AddMember { id, addr: addr.to_owned() }).await
    }

    pub async fn remove_member(&self, id: u64) -> Result<(), ClientError> {
        let (url, b) = self.req(reqwest::Method::DELETE, &format!("/v1/cluster/members/{id}"));
        Self::send(&url, b).await
    }

    /// Follow `GET /v1/events/watch` from `after`: every event after it, in order, then live ones.
    pub async fn watch(
        &self,
        after: u64,
        node: Option<&str>,
        kind: Option<&str>,
    ) -> Result<impl Stream<Item = Result<Event, ClientError>> + use<>, ClientError> {
        let (url, b) = self.req(reqwest::Method::GET, "/v1/events/watch");
        let resp = b
            .query(&[
                ("after", Some(after.to_string())),
                ("node", node.map(str::to_owned)),
                ("type", kind.map(str::to_owned)),
            ])
            .send()
            .await
            .map_err(|e| transport(&url, e))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let (code, message) = serde_json::from_str::<ErrorBody>(&body)
                .map(|b| (b.error.code, b.error.message))
                .unwrap_or(("http".into(), body));
            return Err(ClientError::Api { status, code, message, index: None });
        }
        Ok(sse_events(url, resp.bytes_stream()))
    }

    /// Follow `GET /v1/services/{name}/endpoints/watch`: the endpoints now, then each time they change.
    pub async fn watch_endpoints(
        &self,
        name: &str,
    ) -> Result<impl Stream<Item = Result<sendan_core::wire::EndpointsView, ClientError>> + use<>, ClientError> {
        let (url, b) = self.req(reqwest::Method::GET, &format!("/v1/services/{name}/endpoints/watch"));
        let resp = b.send().await.map_err(|e| transport(&url, e))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let (code, message) = serde_json::from_str::<ErrorBody>(&body)
                .map(|b| (b.error.code, b.error.message))
                .unwrap_or(("http".into(), body));
            return Err(ClientError::Api { status, code, message, index: None });
        }
        Ok(sse_data(url, resp.bytes_stream(), "endpoints"))
    }
}

/// Parse a Server-Sent Events byte stream into events; an `error` event or a broken stream is an error.
fn sse_events(
    url: String,
    bytes: impl Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
) -> impl Stream<Item = Result<Event, ClientError>> {
    sse_data(url, bytes, "event")
}

/// Parse a Server-Sent Events byte stream: the data of every message named `wanted`, decoded; an `error`
/// message or a broken stream is an error; keep-alives and other messages are skipped.
fn sse_data<T: DeserializeOwned + Send + 'static>(
    url: String,
    bytes: impl Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
    wanted: &'static str,
) -> impl Stream<Item = Result<T, ClientError>> {
    let state = (Box::pin(bytes), Vec::<u8>::new(), url, false);
    futures_util::stream::unfold(state, move |(mut bytes, mut buf, url, done)| async move {
        if done {
            return None;
        }
        loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = buf.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&raw);
                let (mut kind, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if kind == wanted {
                    let item = serde_json::from_str::<T>(&data)
                        .map_err(|e| ClientError::Decode { url: url.clone(), reason: e.to_string() });
                    return Some((item, (bytes, buf, url, false)));
                }
                if kind == "error" {
                    let err = ClientError::Api { status: 500, code: "watch_failed".into(), message: data, index: None };
                    return Some((Err(err), (bytes, buf, url, true)));
                }
                continue; // keep-alive comments and other messages
            }
            match bytes.next().await {
                Some(Ok(chunk)) => buf.extend(chunk.iter().filter(|b| **b != b'\r')),
                Some(Err(e)) => return Some((Err(transport(&url, e)), (bytes, buf, url, true))),
                None => return None,
            }
        }
    })
}
