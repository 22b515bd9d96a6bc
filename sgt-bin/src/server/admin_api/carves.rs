//! `/carves…`: request carves, follow them, download archives (streamed).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{answer, body, ctx, error_response, parse, Ctx};
use crate::admin_types::{CarveListParams, CarveRequest};
use crate::server::services::admin::{AdminService, ArchiveInfo};

/// Pieces of an archive read at a time while streaming a download.
const CHUNK_BYTES: u64 = 1024 * 1024;

pub(super) fn routes(
    admin: Arc<AdminService>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("carves")
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .and(warp::query::<CarveListParams>())
        .then(|c: Ctx, params: CarveListParams| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.list_carves(
                    &caller,
                    params.node_id.as_deref(),
                    params.cursor.as_deref(),
                    params.limit.unwrap_or(0),
                )
                .await
            })
        });
    let request = warp::path!("carves")
        .and(warp::post())
        .and(ctx(Arc::clone(&admin)))
        .and(body())
        .then(|c: Ctx, body: Bytes| {
            answer(c, StatusCode::CREATED, move |a, caller| async move {
                let request: CarveRequest = parse(&body)?;
                a.request_carve(&caller, request).await
            })
        });
    let show = warp::path!("carves" / String)
        .and(warp::get())
        .and(ctx(Arc::clone(&admin)))
        .then(|session: String, c: Ctx| {
            answer(c, StatusCode::OK, move |a, caller| async move {
                a.carve(&caller, &session).await
            })
        });
    let download = warp::path!("carves" / String / "archive")
        .and(warp::get())
        .and(ctx(admin))
        .then(|session: String, c: Ctx| async move {
            let result = async {
                let caller = c.admin.authenticate(c.bearer.as_deref()).await?;
                c.admin.carve_archive(&caller, &session).await
            }
            .await;
            match result {
                Ok(info) => stream_archive(Arc::clone(&c.admin), info),
                Err(e) => error_response(&e),
            }
        });
    list.or(request)
        .unify()
        .or(show)
        .unify()
        .or(download)
        .unify()
}

/// Streams the archive a piece at a time: at most two pieces are in memory per download.
fn stream_archive(admin: Arc<AdminService>, info: ArchiveInfo) -> Response {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let headers_of = info.clone();
    tokio::spawn(async move {
        let mut offset = 0;
        while offset < info.size {
            let piece = admin
                .read_archive(&info, offset, CHUNK_BYTES)
                .await
                .map_err(std::io::Error::other);
            let failed = piece.is_err();
            if let Ok(piece) = &piece {
                if piece.is_empty() {
                    break;
                }
                offset += piece.len() as u64;
            }
            if sender.send(piece).await.is_err() || failed {
                break;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let mut response = warp::reply::stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(headers_of.content_type),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(headers_of.size));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        headers_of.file_name
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
