//! `GET /v1/nodes/{id}/system` (what a node's agent acts on; a node token may read its own), `GET /v1/rollouts`
//! and `GET /v1/rollouts/{id}` (pool rollouts and where each member stands). Deciding — setting a system, pinning,
//! starting or halting a rollout — is submitting events.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use sendan_core::NodeId;
use sendan_core::rollouts::view::{self as rollout, RolloutView};
use sendan_core::wire::{NodeSystemView, RolloutsView};
use serde::Deserialize;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::{Auth, P, Q};
use crate::routes::nodes::{AtParams, fleet_at};

pub async fn node_system(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<String>,
    Q(p): Q<AtParams>,
) -> Result<Json<NodeSystemView>, ApiError> {
    auth.may_read_node(&id)?;
    let id = NodeId::new(id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fleet = fleet_at(&app, p.at).await?;
    let node = fleet.node(&id).ok_or_else(|| {
        ApiError::NotFound(format!("node {id} does not exist at seq {} (it has not been commissioned)", fleet.seq))
    })?;
    let (substituters, trusted_public_keys) = fleet.substituters();
    Ok(Json(NodeSystemView {
        seq: fleet.seq,
        node: id.clone(),
        state: node.state,
        system: fleet.node_system(&id).map(sendan_core::wire::NodeSystem::from).unwrap_or_default(),
        substituters,
        trusted_public_keys,
        rollout: fleet.rollout_of(&id).map(|r| r.id),
        reboot: fleet.node_system(&id).and_then(|s| s.pending_reboot()).map(|(decision, system)| {
            sendan_core::wire::RebootView {
                decision,
                system: system.to_owned(),
                drained: node.drain.is_some_and(|d| d.drained.is_some()),
            }
        }),
    }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutParams {
    /// Only this pool's rollouts.
    pub pool: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

pub async fn list(
    State(app): State<Arc<App>>,
    auth: Auth,
    Q(p): Q<RolloutParams>,
) -> Result<Json<RolloutsView>, ApiError> {
    auth.admin()?;
    if p.limit == Some(0) {
        return Err(ApiError::bad_request("`limit` must be at least 1 (leave it out for every rollout)"));
    }
    let fleet = app.node.reader.fleet();
    let now = crate::write::now();
    let rollouts = fleet
        .rollouts
        .rollouts
        .values()
        .rev()
        .filter(|r| p.pool.as_deref().is_none_or(|pool| r.pool == pool))
        .take(p.limit.unwrap_or(usize::MAX))
        .map(|r| rollout::view(&fleet.rollouts, &*fleet, r, now))
        .collect();
    Ok(Json(RolloutsView { seq: fleet.seq, rollouts }))
}

pub async fn show(State(app): State<Arc<App>>, auth: Auth, P(id): P<String>) -> Result<Json<RolloutView>, ApiError> {
    auth.admin()?;
    let id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!("`{id}` is not a rollout id; rollout ids are the seq of their RolloutStarted"))
    })?;
    let fleet = app.node.reader.fleet();
    let r = fleet.rollout(id).ok_or_else(|| ApiError::NotFound(format!("rollout {id} does not exist")))?;
    Ok(Json(rollout::view(&fleet.rollouts, &*fleet, r, crate::write::now())))
}

/// `POST /v1/rollouts/{id}/abort`: halt a running rollout as the operator. A halt names the members it puts back
/// at once (`RolloutHalted.revert`); this fills them in from the rollout as it stands and, if the rollout moved
/// meanwhile (a report landed), decides again.
pub async fn abort(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<u64>,
    crate::extract::Body(body): crate::extract::Body,
) -> Result<Json<sendan_core::wire::SubmitResponse>, ApiError> {
    auth.admin()?;
    let req: sendan_core::wire::AbortRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the abort request is not valid: {e}")))?;
    sendan_core::bounds::text("reason", &req.reason, sendan_core::bounds::MAX_TEXT)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let event_id = req.id.unwrap_or_else(crate::write::new_event_id);
    let mut last = None;
    for _ in 0..5 {
        let fleet = app.node.reader.fleet();
        let r = fleet.rollout(id).ok_or_else(|| ApiError::NotFound(format!("rollout {id} does not exist")))?;
        let revert = sendan_core::rollouts::planner::halt_reverts(
            r,
            &sendan_core::rollouts::planner::assess(&*fleet, r, crate::write::now()),
        );
        let halt = sendan_core::event::RolloutHalted { rollout: id, reason: req.reason.clone(), revert };
        let proposal = sendan_core::wire::ProposalIn {
            id: Some(event_id),
            comment: Some(format!("rollout {id} aborted by an operator: {}", req.reason)),
            cause: None,
            payload: halt.into(),
        };
        match crate::write::submit(&app, &auth.0, vec![proposal]).await {
            Err(ApiError::Rejected {
                rejection: sendan_core::Rejection::RolloutRefused { ref reason, .. }, ..
            }) if reason.contains("puts back at once") => {
                last = Some(reason.clone());
                crate::bootstrap::wait_applied(&app, fleet.seq + 1).await.ok();
            }
            other => return other.map(Json),
        }
    }
    Err(ApiError::Unavailable(format!(
        "rollout {id} kept moving while it was being aborted ({}); retry",
        last.unwrap_or_default()
    )))
}
