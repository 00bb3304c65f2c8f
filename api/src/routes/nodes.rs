//! `GET /v1/nodes`, `GET /v1/nodes/{id}` and `GET /v1/nodes/{id}/history`, with `?at=SEQ` time travel.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use sendan_core::NodeId;
use sendan_core::fleet::FleetState;
use sendan_core::lifecycle;
use sendan_core::wire::{EventPage, Machine, Node, NodeFilter, NodeView, NodesView, StateFilter};
use serde::Deserialize;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::{Auth, P, Q};
use crate::routes::events::{ListParams, page};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AtParams {
    /// Read the fleet as it was right after this event.
    pub at: Option<u64>,
}

pub async fn fleet_at(app: &App, at: Option<u64>) -> Result<Arc<FleetState>, ApiError> {
    match at {
        None => Ok(app.node.reader.fleet()),
        Some(seq) => {
            // A client reading right after its own write may ask this member for a seq it is about to apply:
            // give it a moment (a seq past the head is answered after that, as before).
            let mut applied = app.node.reader.subscribe();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), applied.wait_for(|s| *s >= seq)).await;
            app.node.reader.caught_up().await?;
            app.node.reader.fleet_at(seq).map_err(ApiError::from)
        }
    }
}

fn node_id(id: &str) -> Result<NodeId, ApiError> {
    NodeId::new(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodesParams {
    /// Read the fleet as it was right after this event.
    pub at: Option<u64>,
    /// Only this state: a lifecycle state (`discovered` lists the machines no node is bound to), or `declared`
    /// (the live spec's nodes no machine is bound to yet).
    pub state: Option<String>,
    /// Only the nodes, bound or declared, of this pool.
    pub pool: Option<String>,
}

pub async fn list(State(app): State<Arc<App>>, auth: Auth, Q(p): Q<NodesParams>) -> Result<Json<NodesView>, ApiError> {
    auth.admin()?;
    let state = p.state.as_deref().map(str::parse::<StateFilter>).transpose().map_err(ApiError::bad_request)?;
    let fleet = fleet_at(&app, p.at).await?;
    Ok(Json(NodesView::of(&fleet, &NodeFilter { state, pool: p.pool })))
}

pub async fn show(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<String>,
    Q(p): Q<AtParams>,
) -> Result<Json<NodeView>, ApiError> {
    auth.may_read_node(&id)?;
    let id = node_id(&id)?;
    let fleet = fleet_at(&app, p.at).await?;
    let node = fleet.node(&id).map(Node::from).ok_or_else(|| {
        ApiError::NotFound(format!("node {id} does not exist at seq {} (it has not been commissioned)", fleet.seq))
    })?;
    let machine = fleet.machine(&node.machine).map(Machine::from);
    let allowed = lifecycle::allowed_events(node.state);
    Ok(Json(NodeView { seq: fleet.seq, node, machine, allowed }))
}

pub async fn history(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<String>,
    Q(mut p): Q<ListParams>,
) -> Result<Json<EventPage>, ApiError> {
    auth.may_read_node(&id)?;
    p.node = Some(node_id(&id)?.to_string());
    page(&app, &p.query()?).await.map(Json)
}

/// `POST /v1/nodes/{id}/token`: issue a new node token (replacing the node's previous one) and show it
/// once; only its hash enters the log.
pub async fn issue_token(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<String>,
) -> Result<Json<sendan_core::wire::IssuedToken>, ApiError> {
    auth.admin()?;
    let node = node_id(&id)?;
    let token = crate::auth::generate("node");
    let event = sendan_core::wire::ProposalIn {
        id: None,
        comment: Some("issued with `sendan node token`".into()),
        cause: None,
        payload: sendan_core::event::NodeTokenIssued { node: node.clone(), token: crate::auth::hash(&token) }.into(),
    };
    let receipt = crate::write::submit(&app, &auth.0, vec![event]).await?;
    Ok(Json(sendan_core::wire::IssuedToken { node, token, seq: receipt.events[0].seq }))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerParams {
    /// Read the fleet as it was right after this event.
    pub at: Option<u64>,
    /// Also ask the BMC now (this member reads the password file); a power state other than the one the log
    /// last recorded is recorded (`PowerObserved`).
    #[serde(default)]
    pub live: bool,
}

/// `GET /v1/nodes/{id}/power`: the node's BMC, pending and last power request, recorded power state, and with
/// `?live=true` what the BMC says now.
pub async fn power(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<String>,
    Q(p): Q<PowerParams>,
) -> Result<Json<sendan_core::wire::NodePowerView>, ApiError> {
    auth.admin()?;
    let id = node_id(&id)?;
    if p.live && p.at.is_some() {
        return Err(ApiError::bad_request("`live` asks the BMC now; it cannot be combined with `at`"));
    }
    let fleet = fleet_at(&app, p.at).await?;
    if fleet.node(&id).is_none() {
        return Err(ApiError::NotFound(format!("node {id} does not exist at seq {}", fleet.seq)));
    }
    let mut view = sendan_core::wire::NodePowerView::of(&fleet, &id);
    if p.live {
        let bmc = fleet.bmc(&id).cloned();
        let Some(bmc) = bmc else {
            return Err(ApiError::bad_request(format!(
                "node {id} has no BMC in the live spec; declare `nodes.{id}.bmc` and apply the spec"
            )));
        };
        let now = match crate::power::Driver::connect(&bmc).await {
            Ok(driver) => driver.power().await,
            Err(e) => Err(e),
        };
        view.live = Some(match now {
            Ok(power) => {
                if view.observed.map(|o| o.0) != Some(power) {
                    let event = sendan_core::wire::ProposalIn {
                        id: None,
                        comment: Some("read from the BMC by a status query".into()),
                        cause: None,
                        payload: sendan_core::event::PowerObserved { node: id.clone(), power }.into(),
                    };
                    let principal = crate::auth::Principal::System(crate::controller::power::NAME);
                    // Another query may have recorded the same change first; that is fine.
                    if let Ok(r) = crate::write::submit(&app, &principal, vec![event]).await {
                        view.observed = Some((power, r.events[0].seq));
                    }
                }
                sendan_core::wire::LivePower { power: Some(power), error: None }
            }
            Err(e) => sendan_core::wire::LivePower { power: None, error: Some(e.0) },
        });
    }
    Ok(Json(view))
}
