//! The cluster spec: `GET /v1/spec[?at=SEQ]` (the live spec, now or at any seq), `GET /v1/specs/{digest}`
//! (any spec ever applied) and `POST /v1/spec/plan` (what applying a document would change). Applying is
//! submitting a `SpecApplied` event.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use sendan_core::Hash;
use sendan_core::Payload;
use sendan_core::spec::{self, ClusterSpec};
use sendan_core::wire::{PlanView, SpecView};

use crate::app::App;
use crate::error::ApiError;
use crate::extract::{Auth, Body, P, Q};
use crate::routes::nodes::{AtParams, fleet_at};

pub async fn live(State(app): State<Arc<App>>, auth: Auth, Q(p): Q<AtParams>) -> Result<Json<SpecView>, ApiError> {
    auth.admin()?;
    let fleet = fleet_at(&app, p.at).await?;
    let live = fleet.specs.live.as_ref().ok_or_else(|| {
        ApiError::NotFound(format!("no spec is live at seq {}; apply one with `sendan apply`", fleet.seq))
    })?;
    Ok(Json(SpecView { seq: live.seq, digest: live.digest, live: true, spec: (*live.spec).clone() }))
}

pub async fn by_digest(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(digest): P<String>,
) -> Result<Json<SpecView>, ApiError> {
    auth.admin()?;
    let digest: Hash =
        digest.parse().map_err(|e: sendan_core::ids::InvalidValue| ApiError::bad_request(e.to_string()))?;
    app.node.reader.caught_up().await?;
    let fleet = app.node.reader.fleet();
    let seq = *fleet
        .specs
        .applied
        .get(&digest)
        .ok_or_else(|| ApiError::NotFound(format!("no spec with digest {digest} was ever applied")))?;
    let event = app.node.reader.event(seq)?.ok_or_else(|| ApiError::internal(format!("event {seq} is missing")))?;
    let Payload::SpecApplied(applied) = event.payload else {
        return Err(ApiError::internal(format!("event {seq} is not a SpecApplied")));
    };
    let spec = ClusterSpec::from_json(&applied.document).map_err(ApiError::internal)?;
    let live = fleet.specs.live.as_ref().is_some_and(|l| l.digest == digest);
    Ok(Json(SpecView { seq, digest, live, spec }))
}

pub async fn plan(State(app): State<Arc<App>>, auth: Auth, Body(body): Body) -> Result<Json<PlanView>, ApiError> {
    auth.admin()?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the spec is not UTF-8"))?;
    let new = ClusterSpec::from_json(text).map_err(|e| ApiError::BadRequest {
        code: "invalid_spec",
        message: e.to_string(),
        index: None,
    })?;
    new.validate().map_err(|e| ApiError::BadRequest {
        code: "invalid_spec",
        message: format!("the cluster spec is invalid: {e}"),
        index: None,
    })?;
    let fleet = app.node.reader.fleet();
    let live = fleet.specs.live.as_ref();
    Ok(Json(PlanView {
        live: live.map(|l| l.digest),
        digest: new.digest(),
        diff: spec::diff(live.map(|l| l.spec.as_ref()), &new),
    }))
}
