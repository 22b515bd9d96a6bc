//! `/nodes…`

use std::sync::Arc;

use http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, ctx, Ctx};
use crate::admin_types::{non_empty, page_limit, NodeListParams};
use crate::server::services::admin::AdminService;
use sgt_core::error::Error;
use sgt_core::store::ListNodes;
use sgt_core::types::{EnvironmentName, LabelName, NodeId};

/// The store's reading of a node list request.
fn filter(params: NodeListParams) -> sgt_core::error::Result<ListNodes> {
    Ok(ListNodes {
        environment: params.environment.map(EnvironmentName::parse).transpose()?,
        platform: params.platform,
        search: params.search,
        seen_since: params.seen_since,
        named: params.host.filter(|h| !h.is_empty()),
        pending: params.pending,
        label: non_empty(params.label.as_deref())
            .map(LabelName::parse)
            .transpose()?,
        after: non_empty(params.cursor.as_deref())
            .map(|c| NodeId::parse(c).map_err(|_| Error::invalid_input("bad cursor")))
            .transpose()?,
        limit: page_limit(params.limit),
    })
}

pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("nodes")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .and(warp::query::<NodeListParams>())
        .then(|c: Ctx, params: NodeListParams| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.list_nodes(&caller, filter(params)?).await
            })
        });
    let show = warp::path!("nodes" / String)
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|id: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.node(&caller, &id).await
            })
        });
    let approve = warp::path!("nodes" / String / "approve")
        .and(warp::post())
        .and(ctx(Arc::clone(&admin)))
        .then(|id: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.approve_node(&caller, &id).await
            })
        });
    let reject = warp::path!("nodes" / String / "reject")
        .and(warp::post())
        .and(ctx(Arc::clone(&admin)))
        .then(|id: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.reject_node(&caller, &id).await
            })
        });
    let delete = warp::path!("nodes" / String)
        .and(warp::delete())
        .and(ctx(admin))
        .then(|id: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.delete_node(&caller, &id).await
            })
        });
    list.or(show)
        .unify()
        .or(delete)
        .unify()
        .or(approve)
        .unify()
        .or(reject)
        .unify()
}
