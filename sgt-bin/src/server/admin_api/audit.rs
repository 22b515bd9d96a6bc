//! `GET /audit`

use std::sync::Arc;

use http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, ctx, Ctx};
use crate::admin_types::{page_limit, PageParams};
use crate::server::services::admin::AdminService;

pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("audit")
        .and(warp::get())
        .and(ctx(admin))
        .and(warp::query::<PageParams>())
        .then(|c: Ctx, page: PageParams| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.audit_log(&caller, page.cursor(), page_limit(page.limit))
                    .await
            })
        })
}
