//! `GET /v1/cluster` (every member's view, asked over the peer channel), `GET /v1/cluster/local`,
//! and membership changes (`POST /v1/cluster/members`, `DELETE /v1/cluster/members/{id}`), which run on
//! the leader wherever they are received.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sendan_core::wire::{AddMember, ClusterStatus, MemberStatus};
use sendan_raft::types::{ChangeMembers, ClientWriteError, RaftError, ServerState};
use sendan_raft::{Member, PeerPath};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::ApiError;
use crate::extract::{Auth, Body, P};

/// A membership change, as forwarded from a follower to the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MembershipChange {
    Add { id: u64, addr: String },
    Remove { id: u64 },
}

/// The leader's answer: `Err` carries an HTTP status and a sentence.
pub type MembershipAnswer = Result<(), (u16, String)>;

pub fn local_status(app: &App) -> MemberStatus {
    let m = app.node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voter = membership.voter_ids().any(|v| v == app.node.id);
    let role = match m.state {
        ServerState::Leader => "leader",
        ServerState::Candidate => "candidate",
        ServerState::Follower if voter => "follower",
        ServerState::Follower | ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    };
    let fleet = app.node.reader.fleet();
    MemberStatus {
        id: app.node.id,
        addr: app.config.advertise.clone(),
        role: role.into(),
        voter,
        term: m.current_term,
        leader: m.current_leader,
        last_log_index: m.last_log_index,
        committed_index: app.node.committed_index().ok().flatten(),
        applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        seq: fleet.seq,
        head: fleet.head,
        error: None,
    }
}

pub async fn local(State(app): State<Arc<App>>, auth: Auth) -> Result<Json<MemberStatus>, ApiError> {
    auth.admin()?;
    Ok(Json(local_status(&app)))
}

pub async fn status(State(app): State<Arc<App>>, auth: Auth) -> Result<Json<ClusterStatus>, ApiError> {
    auth.admin()?;
    let me = local_status(&app);
    let m = app.node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let asks = membership.nodes().map(|(id, member)| {
        let (id, member, app, me) = (*id, member.clone(), app.clone(), me.clone());
        let voter = membership.voter_ids().any(|v| v == id);
        async move {
            if id == app.node.id {
                return me;
            }
            let answer: Result<MemberStatus, _> =
                app.node.network.post(id, &member.addr, PeerPath::Status, &(), Duration::from_secs(2)).await;
            answer.unwrap_or_else(|e| MemberStatus {
                id,
                addr: member.addr.clone(),
                role: "unreachable".into(),
                voter,
                term: 0,
                leader: None,
                last_log_index: None,
                committed_index: None,
                applied_index: None,
                snapshot_index: None,
                purged_index: None,
                seq: 0,
                head: sendan_core::Hash::GENESIS,
                error: Some(e.to_string()),
            })
        }
    });
    let members = futures_util::future::join_all(asks).await;
    Ok(Json(ClusterStatus { leader: m.current_leader, term: m.current_term, members }))
}

pub async fn add(State(app): State<Arc<App>>, auth: Auth, Body(body): Body) -> Result<StatusCode, ApiError> {
    auth.admin()?;
    let req: AddMember = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"id\": N, \"addr\": \"HOST:PORT\"}}: {e}")))?;
    if req.id == 0 {
        return Err(ApiError::bad_request("member ids start at 1"));
    }
    if req.addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
        return Err(ApiError::bad_request(format!("`{}` is not HOST:PORT", req.addr)));
    }
    change(&app, MembershipChange::Add { id: req.id, addr: req.addr }, 0).await.map(|_| StatusCode::NO_CONTENT)
}

pub async fn remove(State(app): State<Arc<App>>, auth: Auth, P(id): P<u64>) -> Result<StatusCode, ApiError> {
    auth.admin()?;
    change(&app, MembershipChange::Remove { id }, 0).await.map(|_| StatusCode::NO_CONTENT)
}

fn to_api((status, message): (u16, String)) -> ApiError {
    match status {
        400 => ApiError::bad_request(message),
        404 => ApiError::NotFound(message),
        409 => ApiError::BadRequest { code: "membership_conflict", message, index: None },
        _ => ApiError::Unavailable(message),
    }
}

/// Run `c` on the leader (forwarding at most twice) and wait until it is committed.
pub async fn change(app: &App, c: MembershipChange, hops: u8) -> Result<(), ApiError> {
    let result = match &c {
        MembershipChange::Add { id, addr } => {
            match app.node.raft.add_learner(*id, Member { addr: addr.clone() }, true).await {
                Ok(_) => {
                    app.node.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*id])), false).await
                }
                Err(e) => Err(e),
            }
        }
        MembershipChange::Remove { id } => {
            let m = app.node.raft.metrics().borrow().clone();
            let membership = m.membership_config.membership();
            if membership.get_node(id).is_none() {
                return Err(ApiError::NotFound(format!("member {id} is not part of the cluster")));
            }
            let change = if membership.voter_ids().any(|v| v == *id) {
                ChangeMembers::RemoveVoters(BTreeSet::from([*id]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([*id]))
            };
            app.node.raft.change_membership(change, false).await
        }
    };
    match result {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => match (f.leader_id, f.leader_node) {
            (Some(leader), Some(member)) if leader != app.node.id && hops < 2 => {
                let answer: MembershipAnswer = app
                    .node
                    .network
                    .post(leader, &member.addr, PeerPath::Membership, &(c, hops + 1), Duration::from_secs(60))
                    .await
                    .map_err(|e| ApiError::Unavailable(format!("cannot reach leader {leader}: {e}")))?;
                answer.map_err(to_api)
            }
            _ => Err(ApiError::Unavailable("no leader is known right now; retry shortly".into())),
        },
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(ApiError::BadRequest { code: "membership_conflict", message: e.to_string(), index: None })
        }
        Err(RaftError::Fatal(e)) => Err(ApiError::Unavailable(format!("this member's Raft stopped: {e}"))),
    }
}
