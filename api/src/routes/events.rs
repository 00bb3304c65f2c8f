//! `POST /v1/events`, `GET /v1/events` and `GET /v1/events/watch` (Server-Sent Events).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use sendan_core::wire::{EventPage, SubmitResponse, decode_submission};
use sendan_core::{Event, EventKind, NodeId, Timestamp};
use sendan_raft::EventQuery;
use serde::Deserialize;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::{Auth, Body, Q};

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 10_000;

pub async fn submit(
    State(app): State<Arc<App>>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<SubmitResponse>, ApiError> {
    let items = decode_submission(&body).map_err(|e| ApiError::BadRequest {
        code: "bad_event",
        message: e.to_string(),
        index: e.index,
    })?;
    crate::routes::bootstrap::only_install_reports(&auth.0, &items)?;
    crate::write::submit(&app, &auth.0, items).await.map(Json)
}

/// Filters shared by listing and watching.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default)]
    pub after: u64,
    pub limit: Option<usize>,
    pub node: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

impl ListParams {
    pub fn query(&self) -> Result<EventQuery, ApiError> {
        let bad = |e: sendan_core::ids::InvalidValue| ApiError::bad_request(e.to_string());
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::bad_request(format!("`limit` must be between 1 and {MAX_PAGE}")));
        }
        Ok(EventQuery {
            after: self.after,
            limit,
            node: self.node.as_deref().map(NodeId::new).transpose().map_err(bad)?,
            kind: self.kind.as_deref().map(str::parse::<EventKind>).transpose().map_err(bad)?,
            since: self.since.as_deref().map(Timestamp::parse_rfc3339).transpose().map_err(bad)?,
            until: self.until.as_deref().map(Timestamp::parse_rfc3339).transpose().map_err(bad)?,
        })
    }
}

pub async fn page(app: &App, q: &EventQuery) -> Result<EventPage, ApiError> {
    app.node.reader.caught_up().await?;
    let head = app.node.reader.seq();
    let (events, cut) = app.node.reader.events_page(q)?;
    let next = (cut || events.len() >= q.limit).then(|| events.last().map(|e| e.seq)).flatten();
    Ok(EventPage { events, next, head })
}

/// The admin reads everything; a node token reads only its own node's events (`node=` its id).
fn may_list(auth: &Auth, node: Option<&str>) -> Result<(), ApiError> {
    match (&auth.0, node) {
        (crate::auth::Principal::Admin | crate::auth::Principal::System(_), _) => Ok(()),
        (_, Some(n)) => auth.may_read_node(n),
        (crate::auth::Principal::Node(n), None) => {
            Err(ApiError::Forbidden(format!("node {n}'s token may only read its own events: add node={n}")))
        }
        (crate::auth::Principal::Bootstrap { .. }, None) => auth.admin(),
    }
}

pub async fn list(State(app): State<Arc<App>>, auth: Auth, Q(p): Q<ListParams>) -> Result<Json<EventPage>, ApiError> {
    may_list(&auth, p.node.as_deref())?;
    page(&app, &p.query()?).await.map(Json)
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchParams {
    pub after: Option<u64>,
    pub node: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// Replay from the cursor (`after`, or the `Last-Event-ID` a reconnecting client sends), then follow.
/// The log is never compacted, so every cursor can be served; a read failure ends the stream with an
/// explicit `error` event rather than skipping anything.
pub async fn watch(
    State(app): State<Arc<App>>,
    auth: Auth,
    headers: HeaderMap,
    Q(p): Q<WatchParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    may_list(&auth, p.node.as_deref())?;
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => {
            Some(v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| ApiError::BadRequest {
                code: "bad_cursor",
                message: format!(
                    "the Last-Event-ID header must be the seq of the last event received (such as 42), not `{}`",
                    String::from_utf8_lossy(v.as_bytes()).chars().take(40).collect::<String>()
                ),
                index: None,
            })?)
        }
    };
    let after = p.after.or(resume).unwrap_or(0);
    cursor_exists(&app, after).await?;
    let list = ListParams { after, limit: Some(1000), node: p.node, kind: p.kind, ..Default::default() };
    let query = list.query()?;
    Ok(Sse::new(follow(app, query)).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

/// How long a watch waits for this member to apply its cursor before calling the cursor wrong: a member a
/// little behind the leader must not refuse a cursor another member just handed out.
const CURSOR_GRACE: Duration = Duration::from_secs(3);

/// A cursor past the end of the log cannot be served: following it would skip the events that later take
/// those seqs (a cursor from another cluster, or from before the data was replaced), so it is an explicit
/// error, never a silent gap.
async fn cursor_exists(app: &App, after: u64) -> Result<(), ApiError> {
    let mut applied = app.node.reader.subscribe();
    let reached = tokio::time::timeout(CURSOR_GRACE, applied.wait_for(|s| *s >= after)).await.is_ok_and(|r| r.is_ok());
    if reached {
        return Ok(());
    }
    let head = *applied.borrow();
    Err(ApiError::NotReady {
        code: "cursor_past_head",
        message: format!(
            "cursor {after} is past the end of the log (this member's last event is seq {head}); \
             resume from {head} or lower — a cursor from another cluster, or from before its data was replaced, \
             cannot be followed"
        ),
    })
}

struct Follow {
    app: Arc<App>,
    query: EventQuery,
    buffer: VecDeque<Event>,
    applied: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    done: bool,
}

fn follow(app: Arc<App>, query: EventQuery) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let applied = app.node.reader.subscribe();
    let shutdown = app.shutdown.subscribe();
    let st = Follow { app, query, buffer: VecDeque::new(), applied, shutdown, done: false };
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if let Some(e) = st.buffer.pop_front() {
                let data = serde_json::to_string(&e).unwrap_or_default();
                let msg = SseEvent::default().id(e.seq.to_string()).event("event").data(data);
                return Some((Ok(msg), st));
            }
            // Everything applied up to `seen` has been scanned once this query returns.
            let seen = *st.applied.borrow_and_update();
            match st.app.node.reader.events(&st.query) {
                Ok(events) if !events.is_empty() => {
                    st.query.after = events.last().map(|e| e.seq).unwrap_or(st.query.after);
                    st.buffer.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    st.done = true;
                    let msg = SseEvent::default().event("error").data(format!("the log could not be read: {e}"));
                    return Some((Ok(msg), st));
                }
            }
            // Nothing new matches: wait until something is applied after `seen`, or the server stops.
            tokio::select! {
                changed = st.applied.wait_for(|s| *s > seen) => {
                    if changed.is_err() { return None; }
                }
                _ = st.shutdown.wait_for(|stop| *stop) => return None,
            }
        }
    })
}
