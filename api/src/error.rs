//! Every way a request can fail, and the one place where a failure becomes an HTTP status and a JSON
//! body (`{"error": {"code", "message", "index"?, "details"?}}`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sendan_core::Rejection;
use sendan_core::wire::{ErrorBody, ErrorInfo};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be read: malformed JSON, unknown fields, bad query parameters.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String, index: Option<usize> },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// What was asked for does not exist yet, or not in this state (an install plan before the node is
    /// install-pending, or one that was refused); `code` says which.
    #[error("{message}")]
    NotReady { code: &'static str, message: String },
    /// The log refused an event; nothing of the batch was applied.
    #[error("{rejection}")]
    Rejected { rejection: Rejection, index: usize },
    #[error("the request body is larger than this endpoint's {limit}-byte limit; split the batch")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// The source address sends faster than this member allows.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// No leader right now, or the leader cannot be reached: retry with the same event ids.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code: "bad_request", message: message.into(), index: None }
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Rejected { rejection: Rejection::Forbidden { .. }, .. } => StatusCode::FORBIDDEN,
            ApiError::Rejected { rejection: Rejection::InvalidSpec { .. }, .. } => StatusCode::BAD_REQUEST,
            ApiError::Rejected {
                rejection: Rejection::InvalidSystem { .. } | Rejection::InvalidRollout { .. },
                ..
            } => StatusCode::BAD_REQUEST,
            ApiError::Rejected {
                rejection:
                    Rejection::BootstrapTokenUsed { .. }
                    | Rejection::BootstrapTokenRefused { .. }
                    | Rejection::IdentityRefused { .. },
                ..
            } => StatusCode::FORBIDDEN,
            ApiError::Rejected { rejection: Rejection::MalformedEvent { .. }, .. } => StatusCode::BAD_REQUEST,
            ApiError::Rejected { .. } => StatusCode::CONFLICT,
            ApiError::NotReady { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (code, index, details) = match self {
            ApiError::BadRequest { code, index, .. } => (*code, *index, None),
            ApiError::Unauthorized(_) => ("unauthorized", None, None),
            ApiError::Forbidden(_) => ("forbidden", None, None),
            ApiError::NotFound(_) => ("not_found", None, None),
            ApiError::NotReady { code, .. } => (*code, None, None),
            ApiError::Rejected { rejection, index } => {
                (rejection.code(), Some(*index), serde_json::to_value(rejection).ok())
            }
            ApiError::PayloadTooLarge { .. } => ("payload_too_large", None, None),
            ApiError::RequestTimeout(_) => ("request_timeout", None, None),
            ApiError::TooManyRequests { .. } => ("too_many_requests", None, None),
            ApiError::Unavailable(_) => ("unavailable", None, None),
            ApiError::Internal(_) => ("internal", None, None),
        };
        ErrorBody { error: ErrorInfo { code: code.to_owned(), message: self.to_string(), index, details } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(m) = &self {
            tracing::error!(error = %m, "request failed");
        }
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        if matches!(self, ApiError::Unauthorized(_)) {
            resp.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooManyRequests { retry_after, .. } = &self
            && let Ok(v) = axum::http::HeaderValue::from_str(&retry_after.to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        resp
    }
}

impl From<sendan_raft::StoreError> for ApiError {
    fn from(e: sendan_raft::StoreError) -> Self {
        match e {
            sendan_raft::StoreError::NotYetApplied { .. } => ApiError::NotFound(e.to_string()),
            sendan_raft::StoreError::Unavailable(m) => ApiError::Unavailable(m),
            other => ApiError::Internal(format!("{other}: {}", source_chain(&other))),
        }
    }
}

/// `a: b: c` from an error's sources, for logs of internal errors.
pub fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}
