//! The write path: stamp proposals, propose them through Raft on the leader (forwarding from a follower
//! over the peer channel), and map the state machine's answer.
//!
//! Retrying is always safe: proposals carry their ids, and the state machine answers an id it applied
//! before with the original seq. So every "don't know" (leader lost mid-request, forward failed) is
//! retried with the same ids until a deadline.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use sendan_core::wire::{ProposalIn, Receipt, SubmitResponse};
use sendan_core::{EventId, Proposal, Timestamp};
use sendan_raft::types::{ClientWriteError, RaftError};
use sendan_raft::{PeerError, PeerPath, Request, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;

/// How long a submission may wait for a leader before answering 503.
const WRITE_DEADLINE: Duration = Duration::from_secs(15);
/// A forwarded submission is forwarded at most this many times (leaders change).
const MAX_HOPS: u8 = 3;

/// What a follower sends the leader.
#[derive(Serialize, Deserialize)]
pub struct Forwarded {
    pub proposals: Vec<Proposal>,
    pub hops: u8,
}

/// What the leader answers a forwarded submission.
pub type ForwardAnswer = Result<Response, String>;

pub fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Timestamp(ms)
}

pub fn new_event_id() -> EventId {
    EventId(uuid::Uuid::new_v4())
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
            payload: p.payload,
        })
        .collect();
    let response = propose(app, proposals, 0).await?;
    app.metrics.observe_submit(started);
    match response {
        Response::Appended(receipts) => {
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
        Response::Rejected(b) => {
            app.metrics.batches_rejected.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::Rejected { rejection: b.rejection, index: b.index })
        }
        Response::Nothing => Err(ApiError::internal("the state machine answered a submission with nothing")),
    }
}

/// Propose on the leader, wherever it is, retrying through leader changes until [`WRITE_DEADLINE`].
pub async fn propose(app: &App, mut proposals: Vec<Proposal>, hops: u8) -> Result<Response, ApiError> {
    let deadline = Instant::now() + WRITE_DEADLINE;
    let mut last_problem;
    loop {
        // The leader's clock, fixed before replication; only a leader's client_write succeeds.
        let t = now();
        for p in &mut proposals {
            p.time = t;
        }
        match app.node.raft.client_write(Request::Append { proposals: proposals.clone() }).await {
            Ok(resp) => return Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                match (f.leader_id, f.leader_node) {
                    (Some(leader), Some(member)) if leader != app.node.id && hops < MAX_HOPS => {
                        let fwd = Forwarded { proposals: proposals.clone(), hops: hops + 1 };
                        let answer: Result<ForwardAnswer, PeerError> = app
                            .node
                            .network
                            .post(leader, &member.addr, PeerPath::Submit, &fwd, WRITE_DEADLINE)
                            .await;
                        app.metrics.forwarded.fetch_add(1, Ordering::Relaxed);
                        match answer {
                            Ok(Ok(resp)) => return Ok(resp),
                            Ok(Err(problem)) => last_problem = format!("leader {leader}: {problem}"),
                            Err(e) => last_problem = format!("forwarding to leader {leader} failed: {e}"),
                        }
                    }
                    _ => last_problem = "no leader is known to this member".into(),
                }
            }
            Err(RaftError::APIError(e)) => return Err(ApiError::internal(e)),
            Err(RaftError::Fatal(e)) => return Err(ApiError::Unavailable(format!("this member's Raft stopped: {e}"))),
        }
        if Instant::now() >= deadline {
            return Err(ApiError::Unavailable(format!(
                "the write could not be committed in {}s ({last_problem}); retry with the same event ids",
                WRITE_DEADLINE.as_secs()
            )));
        }
        // Wait for a leader to be known (or a short backoff) and try again with the same ids.
        let _ = app
            .node
            .raft
            .wait(Some(Duration::from_millis(300)))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await; // backoff between retries
    }
}
