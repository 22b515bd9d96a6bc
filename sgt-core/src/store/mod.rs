//! The store: nodes, environments and their config, distributed queries, carve sessions.
//!
//! Split into one trait per concern; [`Store`] is all of them together, which is what the
//! service layer holds (`Arc<dyn Store>`). A backend implements the four traits and gets
//! [`Store`] by the blanket impl.

mod carves;
mod environments;
mod nodes;
mod queries;

pub use carves::{BlockRecorded, CarveSession, CarveStatus, CarveStore, NewCarve};
pub use environments::{Environment, EnvironmentStore};
pub use nodes::{ListNodes, NewNode, Node, NodeStore};
pub use queries::{
    DeliveryState, DistributedQuery, NewQuery, NodeQueryResult, PendingQuery, QueryResult,
    QueryStore, QueryTarget,
};

/// Every store concern together; implemented for any type that implements all four.
pub trait Store: NodeStore + EnvironmentStore + QueryStore + CarveStore {}

impl<T: NodeStore + EnvironmentStore + QueryStore + CarveStore> Store for T {}
