//! The store: nodes, environments and their config, distributed queries, carve sessions,
//! saved queries, labels, admin users and tokens, the audit log.
//!
//! Split into one trait per concern; [`Store`] is all of them together, which is what the
//! service layer holds (`Arc<dyn Store>`). A backend implements every trait and gets
//! [`Store`] by the blanket impl.

mod audit;
mod carves;
mod environments;
mod labels;
mod nodes;
mod queries;
mod saved_queries;
mod users;

pub use audit::{AuditEntry, AuditFilter, AuditStore, SecretUsage};
pub use carves::{BlockRecorded, CarveSession, CarveStatus, CarveStore, NewCarve};
pub use environments::{Environment, EnvironmentSettings, EnvironmentStore};
pub use labels::{Label, LabelStore, MAX_LABELS};
pub use nodes::{
    host_details_summary, ChangedKey, ListNodes, NewNode, Node, NodeStore, MAX_NODES_BY_IDS,
};
pub use queries::{
    DeliveryState, DistributedQuery, NewQuery, NodeQueryResult, NodeRef, PendingQuery, QueryResult,
    QueryStore, QueryTarget, QueryTargets,
};
pub use saved_queries::{SavedQuery, SavedQueryStore};
pub use users::{ApiToken, Role, TokenKind, User, UserStore};

/// The page size of a list asked for with `limit` 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The page size a list call with `limit` means: `limit`, or [`DEFAULT_PAGE_SIZE`] for 0.
pub fn page_size(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        limit
    }
}

/// Every store concern together; implemented for any type that implements all of them.
pub trait Store:
    NodeStore
    + EnvironmentStore
    + QueryStore
    + SavedQueryStore
    + LabelStore
    + CarveStore
    + UserStore
    + AuditStore
{
}

impl<T> Store for T where
    T: NodeStore
        + EnvironmentStore
        + QueryStore
        + SavedQueryStore
        + LabelStore
        + CarveStore
        + UserStore
        + AuditStore
{
}
