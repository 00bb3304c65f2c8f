//! The peer endpoints (`/raft/*`): Raft RPCs, forwarded submissions and membership changes, and member
//! status. Bodies are postcard; every request carries the cluster secret.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sendan_raft::types::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::{Body, Peer};
use crate::routes::cluster::{MembershipAnswer, MembershipChange, change, local_status};
use crate::write::{ForwardAnswer, Forwarded};

fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    postcard::from_bytes(body).map_err(|e| ApiError::bad_request(format!("the peer request does not decode: {e}")))
}

pub fn reply<T: Serialize>(v: &T) -> Response {
    match postcard::to_allocvec(v) {
        Ok(bytes) => ([("content-type", "application/x-postcard")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub async fn append(State(app): State<Arc<App>>, _: Peer, Body(body): Body) -> Result<Response, ApiError> {
    let req: AppendEntriesRequest = decode(&body)?;
    Ok(reply(&app.node.raft.append_entries(req).await))
}

pub async fn vote(State(app): State<Arc<App>>, _: Peer, Body(body): Body) -> Result<Response, ApiError> {
    let req: VoteRequest = decode(&body)?;
    Ok(reply(&app.node.raft.vote(req).await))
}

pub async fn snapshot(State(app): State<Arc<App>>, _: Peer, Body(body): Body) -> Result<Response, ApiError> {
    let req: InstallSnapshotRequest = decode(&body)?;
    Ok(reply(&app.node.raft.install_snapshot(req).await))
}

/// A follower's group of submissions: each goes through this member's proposer (and is grouped with
/// this member's own traffic); the answer is every outcome, or the first reason one could not commit.
pub async fn submit(State(app): State<Arc<App>>, _: Peer, Body(body): Body) -> Result<Response, ApiError> {
    let fwd: Forwarded = decode(&body)?;
    let outcomes =
        futures_util::future::join_all(fwd.batches.into_iter().map(|b| app.proposer.submit(b, fwd.hops))).await;
    let answer: ForwardAnswer =
        outcomes.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| format!("{}", ApiError::from(e)));
    Ok(reply(&answer))
}

pub async fn membership(State(app): State<Arc<App>>, _: Peer, Body(body): Body) -> Result<Response, ApiError> {
    let (c, hops): (MembershipChange, u8) = decode(&body)?;
    let answer: MembershipAnswer = change(&app, c, hops).await.map_err(|e| (e.status().as_u16(), e.to_string()));
    Ok(reply(&answer))
}

pub async fn status(State(app): State<Arc<App>>, _: Peer) -> Response {
    reply(&local_status(&app))
}
