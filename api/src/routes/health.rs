//! `/healthz` (the process serves), `/readyz` (a leader is known and this member has applied what it
//! knows to be committed), `/metrics` (Prometheus text), and the JSON 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;

use crate::app::App;
use crate::error::ApiError;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let m = app.node.raft.metrics().borrow().clone();
    let committed = app.node.committed_index().ok().flatten();
    let applied = m.last_applied.map(|l| l.index);
    let ready = m.current_leader.is_some() && applied >= committed;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(sendan_core::wire::Readiness {
            ready,
            leader: m.current_leader,
            committed_index: committed,
            applied_index: applied,
        }),
    )
}

/// Prometheus text. Not a probe: it needs the admin token (Prometheus: `authorization: { credentials_file: … }`).
pub async fn metrics(State(app): State<Arc<App>>, auth: crate::extract::Auth) -> Result<impl IntoResponse, ApiError> {
    auth.admin()?;
    Ok(([("content-type", "text/plain; version=0.0.4")], crate::metrics::render(&app)))
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("there is no endpoint {method} {}; the API lives under /v1", uri.path()))
}
