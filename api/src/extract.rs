//! Request extractors that fail with [`ApiError`] (so every failure has the same JSON shape): the bearer
//! principal, the peer secret, size-limited bodies and strict query strings.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;

/// The authenticated principal of a request.
pub struct Auth(pub Principal);

impl FromRequestParts<Arc<App>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        app.tokens.resolve(header, &app.node.reader.fleet()).map(Auth)
    }
}

impl Auth {
    /// Operator-only endpoints.
    pub fn admin(&self) -> Result<(), ApiError> {
        match &self.0 {
            Principal::Admin | Principal::System(_) => Ok(()),
            Principal::Node(n) => Err(ApiError::Forbidden(format!(
                "node {n}'s token may only read its own node and submit its own events; this needs the admin token"
            ))),
            Principal::Bootstrap { .. } => Err(bootstrap_forbidden()),
        }
    }

    /// Reading about node `id`: the admin, or that node's own token.
    pub fn may_read_node(&self, id: &str) -> Result<(), ApiError> {
        match &self.0 {
            Principal::Admin | Principal::System(_) => Ok(()),
            Principal::Node(n) if n.as_str() == id => Ok(()),
            Principal::Node(n) => {
                Err(ApiError::Forbidden(format!("node {n}'s token may only read node {n}, not {id}")))
            }
            Principal::Bootstrap { .. } => Err(bootstrap_forbidden()),
        }
    }

    /// The installer endpoints (`/v1/bootstrap/*`): a bootstrap token only.
    pub fn installer(&self) -> Result<(sendan_core::Hash, &str, Option<&sendan_core::MachineId>), ApiError> {
        match &self.0 {
            Principal::Bootstrap { token, mac, machine } => Ok((*token, mac.as_str(), machine.as_ref())),
            _ => Err(ApiError::Forbidden(
                "this endpoint is for a netbooted installer: it needs the bootstrap token from the machine's iPXE script"
                    .into(),
            )),
        }
    }
}

fn bootstrap_forbidden() -> ApiError {
    ApiError::Forbidden(
        "a bootstrap token may only phone home, fetch its install plan and report install progress (/v1/bootstrap/…, \
         and its own install events on /v1/events)"
            .into(),
    )
}

/// A request from another member, carrying the cluster secret.
pub struct Peer;

impl FromRequestParts<Arc<App>> for Peer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let given = parts.headers.get(sendan_raft::PEER_SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        let want = app.cluster_secret.as_bytes();
        // Compare in constant time.
        let equal = given.len() == want.len() && given.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if equal { Ok(Peer) } else { Err(ApiError::Unauthorized("peer requests need the cluster secret".into())) }
    }
}

/// A whole request body, refused with 413 past the configured limit.
pub struct Body(pub Bytes);

impl FromRequest<Arc<App>> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, ApiError> {
        match Bytes::from_request(req, app).await {
            Ok(b) => Ok(Body(b)),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge { limit: app.config.max_body_bytes })
            }
            Err(e) => Err(ApiError::bad_request(format!("cannot read the request body: {}", e.body_text()))),
        }
    }
}

/// Query parameters; unknown or malformed ones are a 400 naming them.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state).await.map(|Query(q)| Q(q)).map_err(|e| ApiError::BadRequest {
            code: "bad_query",
            message: e.body_text(),
            index: None,
        })
    }
}
