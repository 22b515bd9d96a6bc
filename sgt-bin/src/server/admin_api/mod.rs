//! The admin API under `/api/v1/` (everything but `/api/v1/osquery/`): one module per
//! resource. Bearer-token authentication, roles checked by the admin service, real HTTP
//! status codes, errors as `{"error":{"code":"…","message":"…"}}`.

mod audit;
mod auth;
mod carves;
mod environments;
mod labels;
mod nodes;
pub(crate) mod openapi;
mod queries;
mod saved_queries;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::admin_types::{Caller, ErrorBody, ErrorDetail, Route};
use crate::server::services::admin::AdminService;
use crate::server::transport::body_budget::{BodyBudget, BodyShare};
use crate::server::transport::reply::json_bytes;
use sgt_core::error::{Error, ErrorKind, Result};

/// Every admin route as documented, the source of `GET /api/v1/openapi.json`.
pub fn documented_routes() -> &'static [Route] {
    crate::admin_types::ROUTES
}

/// Largest admin request body (a config document is at most 1 MiB, plus room).
const BODY_LIMIT: u64 = 4 * 1024 * 1024;

/// Every admin route, with the admin error shape for anything under the prefix.
pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let not_agent = warp::path::peek()
        .and_then(|peek: warp::path::Peek| async move {
            if peek.segments().next() == Some("osquery") {
                Err(warp::reject::not_found())
            } else {
                Ok(())
            }
        })
        .untuple_one();
    let resources = auth::routes(Arc::clone(&admin))
        .or(environments::routes(Arc::clone(&admin)))
        .unify()
        .or(nodes::routes(Arc::clone(&admin)))
        .unify()
        .or(queries::routes(Arc::clone(&admin)))
        .unify()
        .or(saved_queries::routes(Arc::clone(&admin)))
        .unify()
        .or(labels::routes(Arc::clone(&admin)))
        .unify()
        .or(carves::routes(Arc::clone(&admin)))
        .unify()
        .or(audit::routes(admin))
        .unify()
        .or(openapi::route())
        .unify();
    warp::path("api")
        .and(warp::path("v1"))
        .and(not_agent)
        .and(resources.recover(rejection).unify())
}

/// The shared parts of an admin request: the service and the bearer token, if any.
#[derive(Clone)]
pub(crate) struct Ctx {
    admin: Arc<AdminService>,
    bearer: Option<String>,
}

pub(crate) fn ctx(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Ctx,), Error = Infallible> + Clone {
    warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify()
        .map(move |authorization: Option<String>| Ctx {
            admin: Arc::clone(&admin),
            bearer: authorization
                .as_deref()
                .and_then(|h| crate::server::transport::request::credentials(h, "Bearer"))
                .map(str::to_owned),
        })
}

/// A request body too large for the admin API.
#[derive(Debug)]
struct BodyTooLarge;

impl warp::reject::Reject for BodyTooLarge {}

/// A request body that would pass the server's body budget.
#[derive(Debug)]
struct OverBodyBudget;

impl warp::reject::Reject for OverBodyBudget {}

/// A request body of at most [`BODY_LIMIT`] bytes: refused early by its Content-Length when
/// it has one, else read with a cap (an empty POST from curl has none), and then charged to
/// the server's body budget as it arrives (the server charged a declared length already).
pub(crate) fn body() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(|length: Option<u64>| async move {
            match length {
                Some(length) if length > BODY_LIMIT => Err(warp::reject::custom(BodyTooLarge)),
                _ => Ok(length.is_none()),
            }
        })
        .and(warp::ext::optional::<BodyBudget>())
        .and(warp::body::stream())
        .and_then(
            |undeclared: bool, budget: Option<BodyBudget>, stream| async move {
                collect_capped(stream, budget.filter(|_| undeclared)).await
            },
        )
}

async fn collect_capped<S, B>(
    stream: S,
    budget: Option<BodyBudget>,
) -> std::result::Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = std::result::Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures_util::StreamExt;
    let mut stream = std::pin::pin!(stream);
    let mut body = bytes::BytesMut::new();
    // The budget's share for what has been read, given back once the body is collected.
    let mut held: Option<BodyShare> = None;
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| warp::reject::custom(BodyTooLarge))?;
        if (body.len() + chunk.remaining()) as u64 > BODY_LIMIT {
            return Err(warp::reject::custom(BodyTooLarge));
        }
        if let Some(budget) = &budget {
            if !budget.try_add(&mut held, chunk.remaining() as u64) {
                return Err(warp::reject::custom(OverBodyBudget));
            }
        }
        while chunk.has_remaining() {
            let n = chunk.chunk().len();
            body.extend_from_slice(chunk.chunk());
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// Parses a JSON object body into `T`.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    // Unlike agents, API clients have no excuse for invalid UTF-8: refuse it rather than
    // store replacement characters.
    if std::str::from_utf8(body).is_err() {
        return Err(Error::invalid_input("request body is not valid UTF-8"));
    }
    crate::server::transport::request::parse_json(body)
}

/// Authenticates, runs `f`, answers `status` with its JSON result or the error.
pub(crate) async fn answer<T, F, Fut>(ctx: Ctx, status: StatusCode, f: F) -> Response
where
    T: Serialize,
    F: FnOnce(Arc<AdminService>, Caller) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let result = async {
        let caller = ctx.admin.authenticate(ctx.bearer.as_deref()).await?;
        f(Arc::clone(&ctx.admin), caller).await
    }
    .await;
    match result {
        Ok(value) if status == StatusCode::NO_CONTENT => {
            let _ = value;
            let mut response = Response::new(Bytes::new().into());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Ok(value) => match serde_json::to_vec(&value) {
            Ok(body) => json_bytes(status, body),
            Err(e) => error_response(&Error::backend("json", e)),
        },
        Err(e) => error_response(&e),
    }
}

/// The admin error shape, with the status that fits the error's kind.
pub(crate) fn error_response(err: &Error) -> Response {
    let (status, code) = match err.kind() {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
        ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_input"),
        ErrorKind::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorKind::Unsupported => (StatusCode::NOT_IMPLEMENTED, "unsupported"),
        ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    let message = match err.kind() {
        ErrorKind::Backend => {
            tracing::error!(error = %err, "admin request failed: backend error");
            "internal error".to_owned()
        }
        ErrorKind::Unavailable => {
            tracing::warn!(error = %err, "admin request failed: backend unavailable");
            "temporarily unavailable, retry later".to_owned()
        }
        _ => err.to_string(),
    };
    error_body(status, code, &message)
}

fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    };
    json_bytes(status, serde_json::to_vec(&body).unwrap_or_default())
}

async fn rejection(rejection: Rejection) -> std::result::Result<Response, Infallible> {
    // Most specific first: a request refused for its body also collects "method not
    // allowed" from the routes it did not match.
    let (status, code, message) = if rejection.find::<BodyTooLarge>().is_some()
        || rejection.find::<warp::reject::PayloadTooLarge>().is_some()
    {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body is too large",
        )
    } else if rejection.find::<OverBodyBudget>().is_some() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server is busy, retry later",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        (
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "invalid query string",
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        )
    } else if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    } else {
        (StatusCode::BAD_REQUEST, "invalid_input", "bad request")
    };
    Ok(error_body(status, code, message))
}
