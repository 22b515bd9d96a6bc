//! `GET /audit`

use std::sync::Arc;

use http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{answer, ctx, Ctx};
use crate::admin_types::{non_empty, page_limit, AuditListParams};
use crate::server::services::admin::AdminService;

pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("audit")
        .and(warp::get())
        .and(ctx(admin))
        .and(warp::query::<AuditListParams>())
        .then(|c: Ctx, params: AuditListParams| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                let cursor = non_empty(params.cursor.as_deref());
                a.audit_log(&caller, &params.filter(), cursor, page_limit(params.limit))
                    .await
            })
        })
}
