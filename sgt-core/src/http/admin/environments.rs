//! `/environments…`: environments, their config, packs and enroll secrets.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, body, ctx, parse, Ctx};
use crate::admin::AdminService;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEnvironmentBody {
    name: String,
    #[serde(default)]
    config: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewSecretBody {
    #[serde(default)]
    expires_in_days: Option<u32>,
}

fn parse_value(body: &[u8]) -> crate::error::Result<Value> {
    parse(body)
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
                let body: NewEnvironmentBody = parse(&body)?;
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
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.config(&caller, &name).await
            })
        });
    let put_config = warp::path!("environments" / String / "config")
        .and(warp::put())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|name: String, c: Ctx, body: Bytes| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                let config = parse_value(&body)?;
                a.put_config(&caller, &name, config).await?;
                a.config(&caller, &name).await
            })
        });
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
                a.put_pack(&caller, &name, &pack, value).await?;
                a.pack(&caller, &name, &pack).await
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
                let body: NewSecretBody = if body.is_empty() {
                    NewSecretBody::default()
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
