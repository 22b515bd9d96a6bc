//! Building responses: JSON bodies, and the one place that maps errors to responses.

use bytes::Bytes;
use http::{header, StatusCode};
use serde::Serialize;
use warp::reply::Response;

use sgt_core::error::{Error, ErrorKind};

/// A JSON response with `status` and an already-serialized body.
pub(crate) fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let body: Bytes = body.into();
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A 200 response in Prometheus text exposition format.
pub(crate) fn prometheus_text(body: String) -> Response {
    let mut response = Response::new(Bytes::from(body).into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// A 200 JSON response serializing `value`.
pub(crate) fn ok_json(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_bytes(StatusCode::OK, body),
        Err(e) => error_response(&Error::backend("json", e)),
    }
}

/// `{}`: osquery's conventional success body.
pub(crate) fn ok_empty() -> Response {
    json_bytes(StatusCode::OK, Bytes::from_static(b"{}"))
}

/// The response for an error on an agent endpoint.
///
/// The body is never empty (osquery reads an empty body as success and drops its logs):
/// `{"node_invalid":true}` for an unknown node key or secret, so the agent re-enrolls, and
/// `{"error":"…"}` for everything else, so the agent keeps its data and retries. Backend
/// details stay in the server log.
pub(crate) fn error_response(err: &Error) -> Response {
    let (status, message) = match err.kind() {
        ErrorKind::Unauthorized => {
            return json_bytes(
                StatusCode::UNAUTHORIZED,
                Bytes::from_static(br#"{"node_invalid":true}"#),
            )
        }
        ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, err.to_string()),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, err.to_string()),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, err.to_string()),
        ErrorKind::AlreadyExists | ErrorKind::Conflict => (StatusCode::CONFLICT, err.to_string()),
        ErrorKind::Unavailable => {
            tracing::warn!(error = %err, "request failed: backend unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable, retry later".to_owned(),
            )
        }
        ErrorKind::Unsupported => (StatusCode::NOT_IMPLEMENTED, err.to_string()),
        ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, err.to_string()),
        _ => {
            tracing::error!(error = %err, "request failed: backend error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            )
        }
    };
    error_body(status, &message)
}

/// `{"error":"<message>"}` with `status`.
pub(crate) fn error_body(status: StatusCode, message: &str) -> Response {
    ok_json_with_status(status, &serde_json::json!({ "error": message }))
}

fn ok_json_with_status(status: StatusCode, value: &serde_json::Value) -> Response {
    let body =
        serde_json::to_vec(value).unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
    json_bytes(status, body)
}

/// Maps a handler's result to a response.
pub(crate) fn respond(result: sgt_core::error::Result<Response>) -> Response {
    result.unwrap_or_else(|e| error_response(&e))
}
