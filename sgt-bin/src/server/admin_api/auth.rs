//! `POST /login`, `GET /me`, `/users…`, `/tokens…`

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, body, ctx, error_response, parse, Ctx};
use crate::admin_types::{LoginRequest, NewToken, NewUser, TokenListParams, UserUpdate};
use crate::server::services::admin::AdminService;
use crate::server::transport::reply::json_bytes;

pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let login = warp::path!("login")
        .and(warp::post())
        .and(crate::server::transport::client_address())
        .and(body())
        .then({
            let admin = Arc::clone(&admin);
            move |source: Option<std::net::IpAddr>, body: Bytes| {
                let admin = Arc::clone(&admin);
                async move {
                    let outcome = async {
                        let body: LoginRequest = parse(&body)?;
                        admin.login(&body.username, &body.password, source).await
                    }
                    .await;
                    match outcome {
                        Ok(o) => {
                            json_bytes(StatusCode::OK, serde_json::to_vec(&o).unwrap_or_default())
                        }
                        Err(e) => error_response(&e),
                    }
                }
            }
        });
    let me = warp::path!("me")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|c: Ctx| answer(c, StatusCode::OK, |_, caller| async move { Ok(caller) }));
    let list_users = warp::path!("users")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|c: Ctx| {
            answer(c, StatusCode::OK, |a, caller| async move {
                a.list_users(&caller).await
            })
        });
    let create_user = warp::path!("users")
        .and(warp::post())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|c: Ctx, body: Bytes| {
            answer(c, StatusCode::CREATED, move |a, caller| async move {
                let body: NewUser = parse(&body)?;
                a.create_user(&caller, &body.username, body.role, &body.password)
                    .await
            })
        });
    let show_user = warp::path!("users" / String)
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.user(&caller, &name).await
            })
        });
    let update_user = warp::path!("users" / String)
        .and(warp::patch())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|name: String, c: Ctx, body: Bytes| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                let body: UserUpdate = parse(&body)?;
                a.update_user(
                    &caller,
                    &name,
                    body.role,
                    body.password.as_deref(),
                    body.current_password.as_deref(),
                )
                .await
            })
        });
    let delete_user = warp::path!("users" / String)
        .and(warp::delete())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.delete_user(&caller, &name).await
            })
        });
    let list_tokens = warp::path!("tokens")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .and(warp::query::<TokenListParams>())
        .then(|c: Ctx, params: TokenListParams| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.list_tokens(&caller, params.all).await
            })
        });
    let create_token = warp::path!("tokens")
        .and(warp::post())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|c: Ctx, body: Bytes| {
            answer(c, StatusCode::CREATED, move |a, caller| async move {
                let body: NewToken = parse(&body)?;
                a.create_api_token(
                    &caller,
                    &body.name,
                    body.username.as_deref(),
                    body.expires_in_days,
                )
                .await
            })
        });
    let revoke_token = warp::path!("tokens" / String)
        .and(warp::delete())
        .and(ctx(admin))
        .then(|id: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.revoke_token(&caller, &id).await
            })
        });
    login
        .or(me)
        .unify()
        .or(list_users)
        .unify()
        .or(create_user)
        .unify()
        .or(show_user)
        .unify()
        .or(update_user)
        .unify()
        .or(delete_user)
        .unify()
        .or(list_tokens)
        .unify()
        .or(create_token)
        .unify()
        .or(revoke_token)
        .unify()
}
