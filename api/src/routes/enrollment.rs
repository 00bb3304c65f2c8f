//! Enrollment for operators: `POST /v1/enroll/dry-run` (which rule would bind these facts, and why),
//! `GET /v1/machines` (every machine that phoned home, with why an unbound one was not bound),
//! `GET /v1/nodes/{id}/plan` (the install plan a node would be served) and `GET /v1/nodes/{id}/install`
//! (what the log says about its install).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use sendan_core::NodeId;
use sendan_core::facts::HardwareFacts;
use sendan_core::machines::enrollment::{self, Explanation};
use sendan_core::machines::install::{self, PlanUnavailable, ServedPlan};
use sendan_core::wire::{InstallView, MachinesView};

use crate::app::App;
use crate::error::ApiError;
use crate::extract::{Auth, Body, P, Q};
use crate::routes::nodes::{AtParams, fleet_at};

pub async fn dry_run(State(app): State<Arc<App>>, auth: Auth, Body(body): Body) -> Result<Json<Explanation>, ApiError> {
    auth.admin()?;
    let not_facts = |e: String| {
        ApiError::bad_request(format!("the body is not hardware facts (as `sendan-agent facts` prints them): {e}"))
    };
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| not_facts(e.to_string()))?;
    if !value.is_object() {
        return Err(not_facts("expected a JSON object".into()));
    }
    sendan_core::bounds::check_facts_json(&value).map_err(|e| not_facts(e.to_string()))?;
    let facts: HardwareFacts = serde_json::from_value(value).map_err(|e| not_facts(e.to_string()))?;
    facts.check().map_err(|e| not_facts(e.to_string()))?;
    Ok(Json(enrollment::explain(&*app.node.reader.fleet(), &facts)))
}

pub async fn machines(
    State(app): State<Arc<App>>,
    auth: Auth,
    Q(p): Q<AtParams>,
) -> Result<Json<MachinesView>, ApiError> {
    auth.admin()?;
    let fleet = fleet_at(&app, p.at).await?;
    Ok(Json(MachinesView::of(&fleet.machines, fleet.seq)))
}

fn node_id(id: &str) -> Result<NodeId, ApiError> {
    NodeId::new(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub async fn node_plan(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<String>,
) -> Result<Json<ServedPlan>, ApiError> {
    auth.may_read_node(&id)?;
    let node = node_id(&id)?;
    install::plan_for(&*app.node.reader.fleet(), &node).map(Json).map_err(|e| match e {
        PlanUnavailable::UnknownNode { .. } => ApiError::NotFound(e.to_string()),
        PlanUnavailable::DoesNotFit { .. } => ApiError::NotReady { code: "plan_refused", message: e.to_string() },
        other => ApiError::NotReady { code: "no_plan", message: other.to_string() },
    })
}

pub async fn node_install(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<String>,
    Q(p): Q<AtParams>,
) -> Result<Json<InstallView>, ApiError> {
    auth.may_read_node(&id)?;
    let node = node_id(&id)?;
    let fleet = fleet_at(&app, p.at).await?;
    InstallView::of(&fleet.machines, &*fleet, &node)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("node {node} does not exist at seq {}", fleet.seq)))
}
