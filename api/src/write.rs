//! The write path: stamp proposals, group concurrent submissions into one Raft entry, propose it on the
//! leader (forwarding from a follower over the peer channel), and hand each submission its outcome.
//!
//! Grouping is what makes throughput scale with clients: openraft 0.9 flushes the leader's log once per
//! entry, so submissions that arrive while earlier entries are in flight are gathered into the next
//! entry and share its replication round and fsyncs. At most [`IN_FLIGHT`] entries are in flight at once;
//! with no load an entry leaves at once, so a lone client pays no batching delay.
//!
//! Retrying is always safe: proposals carry their ids, and the state machine answers an id it applied
//! before with the original seq. So every "don't know" (leader lost mid-request, forward failed) is
//! retried with the same ids until a deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use sendan_core::wire::{ProposalIn, Receipt, SubmitResponse};
use sendan_core::{EventId, Proposal, Timestamp};
use sendan_raft::types::{ClientWriteError, RaftError};
use sendan_raft::{Outcome, PeerError, PeerPath, RaftNode, Request, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;

/// How long a submission may wait for a leader before answering 503.
const WRITE_DEADLINE: Duration = Duration::from_secs(15);
/// A forwarded submission is forwarded at most this many times (leaders change).
const MAX_HOPS: u8 = 3;
/// Raft entries this member has in flight at once.
const IN_FLIGHT: usize = 2;
/// The most events gathered into one entry.
const MAX_GROUP_EVENTS: usize = 20_000;

/// What a follower sends the leader: submissions, each atomic on its own.
#[derive(Serialize, Deserialize)]
pub struct Forwarded {
    pub batches: Vec<Vec<Proposal>>,
    pub hops: u8,
}

/// What the leader answers a forwarded group: one outcome per submission, or why it could not commit.
pub type ForwardAnswer = Result<Vec<Outcome>, String>;

/// Why a group could not be committed (the same for every submission in it).
#[derive(Clone, Debug)]
pub enum ProposeError {
    Unavailable(String),
    Internal(String),
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> ApiError {
        match e {
            ProposeError::Unavailable(m) => ApiError::Unavailable(m),
            ProposeError::Internal(m) => ApiError::Internal(m),
        }
    }
}

pub fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Timestamp(ms)
}

pub fn new_event_id() -> EventId {
    EventId(uuid::Uuid::now_v7())
}

struct Pending {
    proposals: Vec<Proposal>,
    hops: u8,
    reply: oneshot::Sender<Result<Outcome, ProposeError>>,
}

/// Gathers submissions into Raft entries. Dropping it stops its task.
pub struct Proposer {
    tx: mpsc::Sender<Pending>,
}

impl Proposer {
    pub fn start(node: RaftNode) -> Proposer {
        let (tx, rx) = mpsc::channel(65_536);
        tokio::spawn(gather(node, rx));
        Proposer { tx }
    }

    /// Commit one submission (atomic) and return its outcome.
    pub async fn submit(&self, proposals: Vec<Proposal>, hops: u8) -> Result<Outcome, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { proposals, hops, reply })
            .await
            .map_err(|_| ProposeError::Unavailable("this member is shutting down".into()))?;
        rx.await.map_err(|_| ProposeError::Unavailable("this member is shutting down".into()))?
    }
}

async fn gather(node: RaftNode, mut rx: mpsc::Receiver<Pending>) {
    let n = std::env::var("SENDAN_INFLIGHT").ok().and_then(|v| v.parse().ok()).unwrap_or(IN_FLIGHT);
    let slots = Arc::new(Semaphore::new(n));
    loop {
        // Take a slot first: while all are busy, submissions queue up and leave together.
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let Some(first) = rx.recv().await else { return };
        let mut events = first.proposals.len();
        let mut group = vec![first];
        while events < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(p) => {
                    events += p.proposals.len();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        let node = node.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let hops = group.iter().map(|p| p.hops).max().unwrap_or(0);
            let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|p| (p.proposals, p.reply)).unzip();
            match propose(&node, batches, hops).await {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// Submit client proposals as `principal`.
pub async fn submit(app: &App, principal: &Principal, items: Vec<ProposalIn>) -> Result<SubmitResponse, ApiError> {
    let started = Instant::now();
    let actor = principal.actor();
    let proposals: Vec<Proposal> = items
        .into_iter()
        .map(|p| Proposal {
            id: p.id.unwrap_or_else(new_event_id),
            time: Timestamp(0),
            actor: actor.clone(),
            comment: p.comment,
            cause: p.cause,
            payload: p.payload,
        })
        .collect();
    let outcome = app.proposer.submit(proposals, 0).await?;
    app.metrics.observe_submit(started);
    match outcome {
        Outcome::Appended(receipts) => {
            let dups = receipts.iter().filter(|r| r.duplicate).count() as u64;
            app.metrics.events_duplicate.fetch_add(dups, Ordering::Relaxed);
            app.metrics.events_accepted.fetch_add(receipts.len() as u64 - dups, Ordering::Relaxed);
            Ok(SubmitResponse {
                events: receipts
                    .into_iter()
                    .map(|r| Receipt { id: r.id, seq: r.seq, hash: r.hash, duplicate: r.duplicate })
                    .collect(),
            })
        }
        Outcome::Rejected(b) => {
            app.metrics.batches_rejected.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::Rejected { rejection: b.rejection, index: b.index })
        }
    }
}

/// Commit `batches` as one entry on the leader, wherever it is, retrying through leader changes until
/// [`WRITE_DEADLINE`]. Returns one outcome per batch.
pub async fn propose(node: &RaftNode, mut batches: Vec<Vec<Proposal>>, hops: u8) -> Result<Vec<Outcome>, ProposeError> {
    let deadline = Instant::now() + WRITE_DEADLINE;
    let mut last_problem;
    loop {
        // The leader's clock, fixed before replication; only a leader's client_write succeeds.
        let t = now();
        for p in batches.iter_mut().flatten() {
            p.time = t;
        }
        match node.raft.client_write(Request::Append { batches: batches.clone() }).await {
            Ok(resp) => {
                return match resp.data {
                    Response::Appended(outcomes) if outcomes.len() == batches.len() => Ok(outcomes),
                    other => Err(ProposeError::Internal(format!("the state machine answered {other:?}"))),
                };
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => match (f.leader_id, f.leader_node) {
                (Some(leader), Some(member)) if leader != node.id && hops < MAX_HOPS => {
                    let fwd = Forwarded { batches: batches.clone(), hops: hops + 1 };
                    let answer: Result<ForwardAnswer, PeerError> =
                        node.network.post(leader, &member.addr, PeerPath::Submit, &fwd, WRITE_DEADLINE).await;
                    match answer {
                        Ok(Ok(outcomes)) if outcomes.len() == batches.len() => return Ok(outcomes),
                        Ok(Ok(_)) => last_problem = format!("leader {leader} answered a different number of outcomes"),
                        Ok(Err(problem)) => last_problem = format!("leader {leader}: {problem}"),
                        Err(e) => last_problem = format!("forwarding to leader {leader} failed: {e}"),
                    }
                }
                _ => last_problem = "no leader is known to this member".into(),
            },
            Err(RaftError::APIError(e)) => return Err(ProposeError::Internal(e.to_string())),
            Err(RaftError::Fatal(e)) => {
                return Err(ProposeError::Unavailable(format!("this member's Raft stopped: {e}")));
            }
        }
        if Instant::now() >= deadline {
            return Err(ProposeError::Unavailable(format!(
                "the write could not be committed in {}s ({last_problem}); retry with the same event ids",
                WRITE_DEADLINE.as_secs()
            )));
        }
        // Wait for a leader to be known (or a short backoff) and try again with the same ids.
        let _ = node
            .raft
            .wait(Some(Duration::from_millis(300)))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await; // backoff between retries
    }
}
