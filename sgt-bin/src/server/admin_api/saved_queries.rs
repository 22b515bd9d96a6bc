//! `/saved-queries…`: the library of named queries.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, body, ctx, parse, Ctx};
use crate::admin_types::SavedQueryBody;
use crate::server::services::admin::AdminService;

pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("saved-queries")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|c: Ctx| {
            answer(c, StatusCode::OK, |a, caller| async move {
                a.list_saved_queries(&caller).await
            })
        });
    let show = warp::path!("saved-queries" / String)
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.saved_query(&caller, &name).await
            })
        });
    let put = warp::path!("saved-queries" / String)
        .and(warp::put())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|name: String, c: Ctx, body: Bytes| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                let body: SavedQueryBody = parse(&body)?;
                a.put_saved_query(&caller, &name, body).await
            })
        });
    let delete = warp::path!("saved-queries" / String)
        .and(warp::delete())
        .and(ctx(admin))
        .then(|name: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.delete_saved_query(&caller, &name).await
            })
        });
    list.or(show).unify().or(put).unify().or(delete).unify()
}
