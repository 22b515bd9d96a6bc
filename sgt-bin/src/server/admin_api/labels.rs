//! `/labels…`: labels and the members of manual ones.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, body, ctx, parse, Ctx};
use crate::admin_types::{LabelBody, MembersChange};
use crate::server::services::admin::AdminService;

pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("labels")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|c: Ctx| {
            answer(c, StatusCode::OK, |a, caller| async move {
                a.list_labels(&caller).await
            })
        });
    let show = warp::path!("labels" / String)
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.label(&caller, &name).await
            })
        });
    let put = warp::path!("labels" / String)
        .and(warp::put())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|name: String, c: Ctx, body: Bytes| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                let body: LabelBody = parse(&body)?;
                a.put_label(&caller, &name, body).await
            })
        });
    let delete = warp::path!("labels" / String)
        .and(warp::delete())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.delete_label(&caller, &name).await
            })
        });
    let members = warp::path!("labels" / String / "members")
        .and(warp::post())
        .and(ctx(admin))
        .and(body())
        .then(|name: String, c: Ctx, body: Bytes| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                let change: MembersChange = parse(&body)?;
                a.change_label_members(&caller, &name, change).await
            })
        });
    list.or(show)
        .unify()
        .or(put)
        .unify()
        .or(delete)
        .unify()
        .or(members)
        .unify()
}
