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

    /// The installer endpoints (`/v1/bootstrap/*`): a bootstrap token only. Its hash, MAC, machine (once it
    /// phoned home) and expiry.
    #[allow(clippy::type_complexity)]
    pub fn installer(
        &self,
    ) -> Result<(sendan_core::Hash, &str, Option<&sendan_core::MachineId>, sendan_core::Timestamp), ApiError> {
        match &self.0 {
            Principal::Bootstrap { token, mac, machine, expires } => {
                Ok((*token, mac.as_str(), machine.as_ref(), *expires))
            }
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

/// A whole request body, refused with 413 past the configured limit and 408 when it does not arrive within the
/// body timeout.
pub struct Body(pub Bytes);

/// The largest body an installer endpoint accepts: hardware facts within their caps are far smaller.
pub const BOOTSTRAP_BODY_LIMIT: usize = 256 << 10;

/// Read the whole body of `req`, at most `limit` bytes, within `app`'s body timeout.
async fn read_body(req: Request, app: &App, limit: usize) -> Result<Bytes, ApiError> {
    let timeout = app.config.http.body_timeout;
    if let Some(len) = req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok())
        && len.parse::<u64>().is_ok_and(|n| n > limit as u64)
    {
        // Refused before a byte of it is read: a declared length past the limit never arrives.
        return Err(ApiError::PayloadTooLarge { limit });
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(req.into_body(), limit)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let e = axum::Error::into_inner(e);
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                Err(ApiError::PayloadTooLarge { limit })
            } else {
                Err(ApiError::bad_request(format!("cannot read the request body: {e}")))
            }
        }
        Err(_) => Err(ApiError::RequestTimeout(format!(
            "the request body did not arrive within {}s; send it whole",
            timeout.as_secs()
        ))),
    }
}

impl FromRequest<Arc<App>> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, ApiError> {
        read_body(req, app, app.config.max_body_bytes).await.map(Body)
    }
}

/// The body of an installer endpoint (phone-home, token exchange): [`BOOTSTRAP_BODY_LIMIT`] at most.
pub struct BootstrapBody(pub Bytes);

impl FromRequest<Arc<App>> for BootstrapBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, ApiError> {
        read_body(req, app, BOOTSTRAP_BODY_LIMIT.min(app.config.max_body_bytes)).await.map(BootstrapBody)
    }
}

/// A path parameter; one that does not decode (such as bytes that are not UTF-8) is a 400 in the JSON error
/// shape, naming it.
pub struct P<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| P(v))
            .map_err(|e| ApiError::BadRequest { code: "bad_path", message: e.body_text(), index: None })
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
