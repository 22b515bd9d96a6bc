//! `/environments…`: environments, their config, packs and enroll secrets.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, body, ctx, parse, Ctx};
use crate::admin_types::{Caller, NewEnvironment, NewSecret, VersionedConfig};
use crate::server::services::admin::AdminService;
use sgt_core::error::Error;
use sgt_core::store::EnvironmentSettings;

fn parse_value(body: &[u8]) -> sgt_core::error::Result<Value> {
    parse(body)
}

/// The version an `If-Match` header names: `"N"` (the `ETag` of `GET …/config`), or `*` for
/// any version (`None`).
fn parse_if_match(header: &str) -> sgt_core::error::Result<Option<u64>> {
    let header = header.trim();
    if header == "*" {
        return Ok(None);
    }
    VersionedConfig::version_of(header)
        .map(Some)
        .ok_or_else(|| {
            Error::invalid_input(
                "If-Match must be the ETag of GET .../config (a quoted version number) or *",
            )
        })
}

/// Answers with the config as the body and its version as the `ETag`, for `If-Match`.
async fn answer_config<F, Fut>(c: Ctx, f: F) -> Response
where
    F: FnOnce(Arc<AdminService>, Caller) -> Fut,
    Fut: Future<Output = sgt_core::error::Result<VersionedConfig>>,
{
    let version = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&version);
    let mut response = answer(c, StatusCode::OK, move |a, caller| async move {
        let versioned = f(a, caller).await?;
        seen.store(versioned.version, Ordering::Relaxed);
        Ok(versioned.config)
    })
    .await;
    if response.status() == StatusCode::OK {
        let etag = VersionedConfig::etag(version.load(Ordering::Relaxed));
        if let Ok(etag) = http::HeaderValue::from_str(&etag) {
            response.headers_mut().insert(http::header::ETAG, etag);
        }
    }
    response
}

pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("environments")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|c: Ctx| {
            answer(c, StatusCode::OK, |a, caller| async move {
                a.list_environments(&caller).await
            })
        });
    let create = warp::path!("environments")
        .and(warp::post())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|c: Ctx, body: Bytes| {
            answer(c, StatusCode::CREATED, move |a, caller| async move {
                let body: NewEnvironment = parse(&body)?;
                a.create_environment(&caller, &body.name, body.config).await
            })
        });
    let show = warp::path!("environments" / String)
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.environment(&caller, &name).await
            })
        });
    let put_settings = warp::path!("environments" / String / "settings")
        .and(warp::put())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|name: String, c: Ctx, body: Bytes| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                let settings: EnvironmentSettings = parse(&body)?;
                a.put_environment_settings(&caller, &name, settings).await
            })
        });
    let delete = warp::path!("environments" / String)
        .and(warp::delete())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.delete_environment(&caller, &name).await
            })
        });
    let get_config = warp::path!("environments" / String / "config")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer_config(c, move |a, caller| async move {
                a.versioned_config(&caller, &name).await
            })
        });
    let put_config = warp::path!("environments" / String / "config")
        .and(warp::put())
        .and(ctx(Arc::clone(&admin)))
        .and(warp::header::optional::<String>("if-match"))
        .and(body())
        .then(
            |name: String, c: Ctx, if_match: Option<String>, body: Bytes| {
                answer_config(c, move |a, caller| async move {
                    let expected_version = if_match.as_deref().map(parse_if_match).transpose()?;
                    let config = parse_value(&body)?;
                    a.put_config(&caller, &name, config, expected_version.flatten())
                        .await
                })
            },
        );
    let list_packs = warp::path!("environments" / String / "packs")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.packs(&caller, &name).await
            })
        });
    let show_pack = warp::path!("environments" / String / "packs" / String)
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, pack: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.pack(&caller, &name, &pack).await
            })
        });
    let put_pack = warp::path!("environments" / String / "packs" / String)
        .and(warp::put())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|name: String, pack: String, c: Ctx, body: Bytes| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                let value = parse_value(&body)?;
                a.put_pack(&caller, &name, &pack, value).await
            })
        });
    let delete_pack = warp::path!("environments" / String / "packs" / String)
        .and(warp::delete())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, pack: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.delete_pack(&caller, &name, &pack).await
            })
        });
    let list_secrets = warp::path!("environments" / String / "secrets")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.list_secrets(&caller, &name).await
            })
        });
    let create_secret = warp::path!("environments" / String / "secrets")
        .and(warp::post())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|name: String, c: Ctx, body: Bytes| {
            answer(c, StatusCode::CREATED, move |a, caller| async move {
                let body: NewSecret = if body.is_empty() {
                    NewSecret::default()
                } else {
                    parse(&body)?
                };
                a.create_secret(&caller, &name, body.expires_in_days).await
            })
        });
    let revoke_secret = warp::path!("environments" / String / "secrets" / String)
        .and(warp::delete())
        .and(ctx(admin))
        .then(|name: String, id: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.revoke_secret(&caller, &name, &id).await
            })
        });
    list.or(create)
        .unify()
        .or(show)
        .unify()
        .or(put_settings)
        .unify()
        .or(delete)
        .unify()
        .or(get_config)
        .unify()
        .or(put_config)
        .unify()
        .or(list_packs)
        .unify()
        .or(show_pack)
        .unify()
        .or(put_pack)
        .unify()
        .or(delete_pack)
        .unify()
        .or(list_secrets)
        .unify()
        .or(create_secret)
        .unify()
        .or(revoke_secret)
        .unify()
}
