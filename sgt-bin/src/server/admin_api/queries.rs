//! `/queries…`: live queries (campaigns).

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, body, ctx, parse, Ctx};
use crate::admin_types::{page_limit, NewCampaign, PageParams};
use crate::server::services::admin::AdminService;

pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("queries")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .and(warp::query::<PageParams>())
        .then(|c: Ctx, page: PageParams| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.list_campaigns(&caller, page.cursor(), page_limit(page.limit))
                    .await
            })
        });
    let create = warp::path!("queries")
        .and(warp::post())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|c: Ctx, body: Bytes| {
            answer(c, StatusCode::CREATED, move |a, caller| async move {
                let campaign: NewCampaign = parse(&body)?;
                a.create_campaign(&caller, campaign).await
            })
        });
    let show = warp::path!("queries" / String)
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|id: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.campaign(&caller, &id).await
            })
        });
    let targets = warp::path!("queries" / String / "targets")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|id: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.campaign_targets(&caller, &id).await
            })
        });
    let results = warp::path!("queries" / String / "results")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .and(warp::query::<PageParams>())
        .then(|id: String, c: Ctx, page: PageParams| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.campaign_results(&caller, &id, page.cursor(), page_limit(page.limit))
                    .await
            })
        });
    let cancel = warp::path!("queries" / String / "cancel")
        .and(warp::post())
        .and(ctx(admin))
        .then(|id: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.cancel_campaign(&caller, &id).await
            })
        });
    list.or(create)
        .unify()
        .or(show)
        .unify()
        .or(targets)
        .unify()
        .or(results)
        .unify()
        .or(cancel)
        .unify()
}
