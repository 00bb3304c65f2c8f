//! Services: `GET /v1/services` and `/v1/services/{name}` (instances per node, health, what is pending and
//! why), `GET /v1/services/{name}/endpoints` (healthy instances only, and a watch of them), `POST
//! /v1/services/plan` (the scheduler's dry run with every node's verdict); and a node agent's side:
//! `GET /v1/nodes/{id}/instances` (what its node is to run) and `POST /v1/nodes/{id}/heartbeat`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use sendan_core::NodeId;
use sendan_core::services::{planner, view};
use sendan_core::wire::{
    DeploymentView, EndpointsView, HeartbeatAck, InstanceView, NodeInstancesView, ServicePlanRequest, ServicePlanView,
    ServiceSummary, ServiceView, ServicesView, ShortfallView,
};
use sendan_raft::PeerPath;
use sendan_raft::types::ServerState;

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{Auth, Body, P, Peer};

fn summary(fleet: &sendan_core::fleet::FleetState, name: &str, replicas: u32, unplaced: u32) -> ServiceSummary {
    let (live, healthy) = view::counts(&fleet.services, name);
    ServiceSummary { name: name.to_owned(), replicas, live, healthy, unplaced }
}

pub async fn list(State(app): State<Arc<App>>, auth: Auth) -> Result<Json<ServicesView>, ApiError> {
    auth.admin()?;
    let fleet = app.node.reader.fleet();
    let plan = planner::plan(&fleet.services, &*fleet, crate::write::now());
    let services = match fleet.live() {
        Some(live) => live
            .spec
            .services
            .iter()
            .map(|(name, s)| {
                let unplaced = plan.shortfalls.get(name).map_or(0, |x| x.unplaced);
                summary(&fleet, name, s.replicas, unplaced)
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Json(ServicesView { seq: fleet.seq, services }))
}

fn declared<'f>(
    fleet: &'f sendan_core::fleet::FleetState,
    name: &str,
) -> Result<&'f sendan_core::spec::Service, ApiError> {
    let live = fleet.live().ok_or_else(|| ApiError::NotFound("no spec is live, so no service is declared".into()))?;
    live.spec.services.get(name).ok_or_else(|| {
        let known: Vec<&str> = live.spec.services.keys().map(String::as_str).collect();
        ApiError::NotFound(format!(
            "the live spec declares no service {name}; it declares {}",
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        ))
    })
}

pub async fn show(State(app): State<Arc<App>>, auth: Auth, P(name): P<String>) -> Result<Json<ServiceView>, ApiError> {
    auth.admin()?;
    let fleet = app.node.reader.fleet();
    let service = declared(&fleet, &name)?;
    let now = crate::write::now();
    let plan = planner::plan(&fleet.services, &*fleet, now);
    let shortfall = plan.shortfalls.get(&name).map(ShortfallView::from).unwrap_or_default();
    let instances = fleet.services.of_service(&name).map(|i| InstanceView::of(&*fleet, &fleet.services, i)).collect();
    Ok(Json(ServiceView {
        seq: fleet.seq,
        summary: summary(&fleet, &name, service.replicas, shortfall.unplaced),
        deployment: DeploymentView::of(&fleet.services, &name, service, now),
        instances,
        shortfall,
    }))
}

/// Who may read a service's endpoints: the admin, or any node's agent (a node-local proxy or DNS exporter).
fn may_read_endpoints(auth: &Auth) -> Result<(), ApiError> {
    match &auth.0 {
        Principal::Admin | Principal::System(_) | Principal::Node(_) => Ok(()),
        Principal::Bootstrap { .. } => {
            Err(ApiError::Forbidden("an installer's bootstrap token reads only its own plan".into()))
        }
    }
}

pub async fn endpoints(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(name): P<String>,
) -> Result<Json<EndpointsView>, ApiError> {
    may_read_endpoints(&auth)?;
    let fleet = app.node.reader.fleet();
    declared(&fleet, &name)?;
    Ok(Json(EndpointsView::of(&fleet.services, &name, fleet.seq)))
}

/// A watch of the endpoints: the current set first, then a new one each time it changes (not on every event).
pub async fn watch_endpoints(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(name): P<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    may_read_endpoints(&auth)?;
    declared(&app.node.reader.fleet(), &name)?;
    let applied = app.node.reader.subscribe();
    let shutdown = app.shutdown.subscribe();
    let state = (app, name, applied, shutdown, None::<Vec<sendan_core::wire::Endpoint>>);
    let stream = futures_util::stream::unfold(state, |(app, name, mut applied, mut shutdown, last)| async move {
        loop {
            let seen = *applied.borrow_and_update();
            let fleet = app.node.reader.fleet();
            let now = EndpointsView::of(&fleet.services, &name, fleet.seq);
            if last.as_ref() != Some(&now.endpoints) {
                let data = serde_json::to_string(&now).unwrap_or_default();
                let msg = SseEvent::default().id(now.seq.to_string()).event("endpoints").data(data);
                return Some((Ok(msg), (app, name, applied, shutdown, Some(now.endpoints))));
            }
            tokio::select! {
                changed = applied.wait_for(|s| *s > seen) => if changed.is_err() { return None },
                _ = shutdown.wait_for(|stop| *stop) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

pub async fn plan(
    State(app): State<Arc<App>>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<ServicePlanView>, ApiError> {
    auth.admin()?;
    let req: ServicePlanRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the plan request is not valid: {e}")))?;
    if let Some(spec) = &req.spec {
        spec.validate().map_err(|e| ApiError::BadRequest {
            code: "invalid_spec",
            message: format!("the cluster spec is invalid: {e}"),
            index: None,
        })?;
    }
    let fleet = app.node.reader.fleet();
    let declared_spec = req.spec.as_ref().map(|s| (s, fleet.live().map_or(0, |l| l.seq)));
    let service_known = match &req.spec {
        Some(s) => s.services.contains_key(&req.service),
        None => declared(&fleet, &req.service).is_ok(),
    };
    if !service_known {
        return Err(ApiError::NotFound(format!("the spec planned declares no service {}", req.service)));
    }
    let e = planner::explain_placement(&fleet.services, &*fleet, crate::write::now(), &req.service, declared_spec)
        .ok_or_else(|| ApiError::NotFound(format!("no spec declares service {}", req.service)))?;
    Ok(Json(ServicePlanView::of(&e, fleet.seq)))
}

fn node_id(id: &str) -> Result<NodeId, ApiError> {
    NodeId::new(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub async fn node_instances(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<String>,
) -> Result<Json<NodeInstancesView>, ApiError> {
    auth.may_read_node(&id)?;
    let id = node_id(&id)?;
    let fleet = app.node.reader.fleet();
    if fleet.node(&id).is_none() {
        return Err(ApiError::NotFound(format!("node {id} does not exist (it has not been commissioned)")));
    }
    Ok(Json(NodeInstancesView::of(&fleet.services, &id, fleet.seq, fleet.substituters())))
}

/// Record a heartbeat on the leader, or pass it on to the leader.
async fn beat(app: &App, node: NodeId) -> Result<(), ApiError> {
    let m = app.node.raft.metrics().borrow().clone();
    if m.state == ServerState::Leader {
        app.liveness.beat(node);
        return Ok(());
    }
    let leader = m.current_leader.ok_or_else(|| ApiError::Unavailable("no leader is known right now; retry".into()))?;
    let member = m
        .membership_config
        .membership()
        .get_node(&leader)
        .cloned()
        .ok_or_else(|| ApiError::Unavailable(format!("leader {leader} is not a known member yet; retry")))?;
    let answer: Result<(), String> = app
        .node
        .network
        .post(leader, &member.addr, PeerPath::Heartbeat, &node.to_string(), Duration::from_secs(5))
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot pass the heartbeat on to leader {leader}: {e}")))?;
    answer.map_err(ApiError::Unavailable)
}

pub async fn heartbeat(
    State(app): State<Arc<App>>,
    auth: Auth,
    P(id): P<String>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    auth.may_read_node(&id)?;
    let id = node_id(&id)?;
    if app.node.reader.fleet().node(&id).is_none() {
        return Err(ApiError::NotFound(format!("node {id} does not exist (it has not been commissioned)")));
    }
    beat(&app, id).await?;
    let deadline = app.config.agent_deadline;
    Ok(Json(HeartbeatAck { deadline_ms: deadline.as_millis() as u64, interval_ms: (deadline / 4).as_millis() as u64 }))
}

/// A follower passing a heartbeat on: recorded if this member leads.
pub async fn peer_heartbeat(State(app): State<Arc<App>>, _: Peer, Body(body): Body) -> axum::response::Response {
    let answer: Result<(), String> = match postcard::from_bytes::<String>(&body).map(NodeId::new) {
        Ok(Ok(node)) if app.node.raft.metrics().borrow().state == ServerState::Leader => {
            app.liveness.beat(node);
            Ok(())
        }
        Ok(Ok(_)) => Err("this member no longer leads; retry".into()),
        _ => Err("the heartbeat does not decode".into()),
    };
    crate::routes::peer::reply(&answer)
}
