//! `GET /v1/boot/files/{path}`: the member's boot directory (`--boot-dir`) over HTTP — installer and rescue
//! kernels and initrds for iPXE — with byte ranges (`tower-http`'s `ServeFile`) and a strong ETag made of the
//! file's size and modification time, so a lab needs no second web server. Unauthenticated, like the netboot
//! script that points at it, and under the same rate limit.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::P;

/// The ETag of a file: its size and modification time, which change whenever its bytes do.
fn etag(meta: &std::fs::Metadata) -> String {
    let nanos = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{nanos:x}\"", meta.len())
}

/// Whether an `If-None-Match` list names `tag` (or is `*`).
fn matches(list: &str, tag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

pub async fn file(State(app): State<Arc<App>>, P(path): P<String>, mut req: Request) -> Result<Response, ApiError> {
    let dir =
        app.config.netboot.boot_dir.as_ref().ok_or_else(|| {
            ApiError::NotFound("this member serves no boot files: start it with --boot-dir DIR".into())
        })?;
    let full = crate::bootstrap::below(dir, &path).ok_or_else(|| {
        ApiError::bad_request(format!("`{path}` is not a plain relative path (no `..`, no hidden files)"))
    })?;
    let meta = tokio::fs::metadata(&full).await.ok().filter(|m| m.is_file());
    let meta = meta.ok_or_else(|| ApiError::NotFound(format!("there is no boot file {path}")))?;
    let tag = etag(&meta);
    let headers = req.headers_mut();
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|l| matches(l, &tag)) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&tag).expect("an ETag is ASCII"));
        return Ok(r);
    }
    // `If-Range` with an entity tag: the range applies only to this very file; otherwise the whole file goes.
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned)
        && if_range.starts_with('"')
    {
        headers.remove(header::IF_RANGE);
        if if_range != tag {
            headers.remove(header::RANGE);
        }
    }
    let served = tower_http::services::ServeFile::new(&full).oneshot(req).await;
    let mut response = match served {
        Ok(r) => r.into_response(),
        Err(e) => return Err(ApiError::Internal(format!("cannot read boot file {path}: {e}"))),
    };
    if response.status().is_success() {
        response.headers_mut().insert(header::ETAG, HeaderValue::from_str(&tag).expect("an ETag is ASCII"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        assert!(super::matches("\"a-1\"", "\"a-1\""));
        assert!(super::matches("\"x\", W/\"a-1\"", "\"a-1\""));
        assert!(super::matches("*", "\"a-1\""));
        assert!(!super::matches("\"a-2\"", "\"a-1\""));
    }
}
