//! `/nodes…`

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, ctx, Ctx};
use crate::server::services::admin::{page_limit, AdminService};
use sgt_core::error::Error;
use sgt_core::store::ListNodes;
use sgt_core::types::{EnvironmentName, NodeId, UnixSeconds};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NodeListParams {
    environment: Option<String>,
    platform: Option<String>,
    search: Option<String>,
    seen_since: Option<UnixSeconds>,
    cursor: Option<String>,
    limit: Option<usize>,
}

impl NodeListParams {
    fn filter(self) -> sgt_core::error::Result<ListNodes> {
        Ok(ListNodes {
            environment: self.environment.map(EnvironmentName::parse).transpose()?,
            platform: self.platform,
            search: self.search,
            seen_since: self.seen_since,
            after: super::non_empty(self.cursor.as_deref())
                .map(|c| NodeId::parse(c).map_err(|_| Error::invalid_input("bad cursor")))
                .transpose()?,
            limit: page_limit(self.limit),
        })
    }
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
                a.list_nodes(&caller, params.filter()?).await
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
    let delete = warp::path!("nodes" / String)
        .and(warp::delete())
        .and(ctx(admin))
        .then(|id: String, c: Ctx| {
            answer(c, StatusCode::NO_CONTENT, move |a, caller| async move {
                a.delete_node(&caller, &id).await
            })
        });
    list.or(show).unify().or(delete).unify()
}
