//! The admin API as a contract: its routes, request bodies, query parameters and answers,
//! one module per resource. The server's `admin_api` serves these types and the CLI's
//! [`AdminClient`](crate::cli::client::AdminClient) sends and reads them, so the two cannot
//! drift apart; the OpenAPI document is built from [`ROUTES`].

mod audit;
mod auth;
mod carves;
mod environments;
mod labels;
mod nodes;
mod queries;
pub mod routes;

use serde::{Deserialize, Serialize};

pub use audit::AuditListParams;
pub use auth::{
    Caller, LoginOutcome, LoginRequest, NewToken, NewTokenOutcome, NewUser, TokenListParams,
    TokenView, UserUpdate, UserView,
};
pub use carves::{CarveListParams, CarveRequest, CarveView};
pub use environments::{
    EnvironmentView, NewEnvironment, NewSecret, NewSecretOutcome, SecretView, VersionedConfig,
};
pub use labels::{LabelBody, MembersChange, MembersChanged};
pub use nodes::{NodeListParams, NodeView};
pub use queries::{NewCampaign, QueryView, ResultView, SavedQueryBody};
pub use routes::{Route, ROUTES};

/// Page sizes a list takes: the stores' default page size
/// ([`sgt_core::store::DEFAULT_PAGE_SIZE`]) when none is asked for, at most
/// [`MAX_PAGE_LIMIT`], at least 1.
pub fn page_limit(requested: Option<usize>) -> usize {
    requested
        .unwrap_or(sgt_core::store::DEFAULT_PAGE_SIZE)
        .clamp(1, MAX_PAGE_LIMIT)
}

/// The largest page a list answers.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// A page of items and the cursor of the next page (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items` out of a request for `limit` (0: the default page size, as the
    /// stores read it), whose cursor is `cursor_of(last)`: a full page has a next cursor.
    pub fn new(items: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let limit = page_limit((limit > 0).then_some(limit));
        let next_cursor = if items.len() == limit {
            items.last().map(cursor_of)
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// Paging parameters of a list: `?cursor=…&limit=…`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// The previous page's `next_cursor`; absent or empty: the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size (see [`page_limit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl PageParams {
    /// The cursor; an empty one (`?cursor=`) is none: the first page, on every list.
    pub fn cursor(&self) -> Option<&str> {
        non_empty(self.cursor.as_deref())
    }
}

/// A list request that names its page: the client follows `next_cursor` through it.
pub trait PageRequest {
    /// Asks for the page after `cursor` (none: the first), of `limit` items.
    fn ask_for(&mut self, cursor: Option<String>, limit: usize);
}

/// `PageRequest` for list parameters with `cursor` and `limit` fields.
macro_rules! page_request {
    ($($params:ty),*) => {$(
        impl PageRequest for $params {
            fn ask_for(&mut self, cursor: Option<String>, limit: usize) {
                self.cursor = cursor;
                self.limit = Some(limit);
            }
        }
    )*};
}
page_request!(PageParams, NodeListParams, CarveListParams, AuditListParams);

/// `cursor` unless it is empty: every list takes `?cursor=` as its first page.
pub fn non_empty(cursor: Option<&str>) -> Option<&str> {
    cursor.filter(|c| !c.is_empty())
}

/// Every refusal's body: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable code: `not_found`, `already_exists`, `conflict`, `invalid_input`,
    /// `unauthorized`, `forbidden`, `unavailable`, `unsupported`, `rate_limited`,
    /// `too_large`, `method_not_allowed` or `internal`.
    pub code: String,
    /// A message for a person.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limits_default_and_clamp() {
        assert_eq!(page_limit(None), 100);
        assert_eq!(page_limit(Some(0)), 1);
        assert_eq!(page_limit(Some(5000)), 1000);
        let full = Page::new(vec![1, 2], 2, |n: &i32| n.to_string());
        assert_eq!(full.next_cursor.as_deref(), Some("2"));
        assert_eq!(
            Page::new(vec![1], 2, |n: &i32| n.to_string()).next_cursor,
            None
        );
    }

    #[test]
    fn page_params_leave_out_what_is_not_given() {
        let query = serde_urlencoded::to_string(PageParams::default()).unwrap();
        assert_eq!(query, "");
        let params = PageParams {
            cursor: Some("a b".into()),
            limit: Some(5),
        };
        let query = serde_urlencoded::to_string(&params).unwrap();
        assert_eq!(query, "cursor=a+b&limit=5");
        assert_eq!(
            serde_urlencoded::from_str::<PageParams>(&query).unwrap(),
            params
        );
        assert_eq!(
            serde_urlencoded::from_str::<PageParams>("cursor=")
                .unwrap()
                .cursor(),
            None
        );
    }
}
