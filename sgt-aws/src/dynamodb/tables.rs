//! The DynamoDB tables of one deployment, as data: `sgt provision` creates them from this list,
//! the store reads and writes them by these names, and `sgt-aws/README.md` explains each.

/// The type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// A string.
    String,
    /// A number.
    Number,
}

/// One key attribute: its name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttribute {
    /// The attribute name.
    pub name: &'static str,
    /// Its type.
    pub key_type: KeyType,
}

const fn string(name: &'static str) -> KeyAttribute {
    KeyAttribute {
        name,
        key_type: KeyType::String,
    }
}

const fn number(name: &'static str) -> KeyAttribute {
    KeyAttribute {
        name,
        key_type: KeyType::Number,
    }
}

/// Which attributes a global secondary index copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// Only the table and index keys; the store reads the items themselves afterwards.
    KeysOnly,
    /// The whole item.
    All,
}

/// A global secondary index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index name.
    pub name: &'static str,
    /// Its partition key.
    pub hash: KeyAttribute,
    /// Its sort key.
    pub range: Option<KeyAttribute>,
    /// What it copies.
    pub projection: Projection,
}

/// A table: its name after the deployment prefix, keys, indexes and TTL attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The table is named `<prefix>-<suffix>`.
    pub suffix: &'static str,
    /// The partition key.
    pub hash: KeyAttribute,
    /// The sort key.
    pub range: Option<KeyAttribute>,
    /// Global secondary indexes.
    pub indexes: &'static [IndexSpec],
    /// The attribute DynamoDB's TTL deletes expired items by, if any.
    pub ttl_attribute: Option<&'static str>,
}

impl TableSpec {
    /// The table's full name for a deployment prefix.
    pub fn table_name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.suffix)
    }
}

/// The attribute holding an item's expiry (unix seconds) for DynamoDB TTL.
pub(crate) const TTL_ATTRIBUTE: &str = "expires_ttl";
/// The constant-valued attribute that puts every item of a table in one index partition, so a
/// whole collection can be listed in order with Query instead of Scan.
pub(crate) const LIST_ATTRIBUTE: &str = "kind";

pub(crate) const NODES: TableSpec = TableSpec {
    suffix: "nodes",
    hash: string("id"),
    range: None,
    indexes: &[
        IndexSpec {
            name: "by-environment",
            hash: string("environment"),
            range: Some(string("id")),
            projection: Projection::KeysOnly,
        },
        IndexSpec {
            name: "all-by-id",
            hash: string(LIST_ATTRIBUTE),
            range: Some(string("id")),
            projection: Projection::KeysOnly,
        },
    ],
    ttl_attribute: None,
};

pub(crate) const LOOKUPS: TableSpec = TableSpec {
    suffix: "lookups",
    hash: string("lookup"),
    range: None,
    indexes: &[],
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

pub(crate) const ENVIRONMENTS: TableSpec = TableSpec {
    suffix: "environments",
    hash: string("name"),
    range: None,
    indexes: &[IndexSpec {
        name: "all-by-name",
        hash: string(LIST_ATTRIBUTE),
        range: Some(string("name")),
        projection: Projection::All,
    }],
    ttl_attribute: None,
};

pub(crate) const QUERIES: TableSpec = TableSpec {
    suffix: "queries",
    hash: string("id"),
    range: None,
    indexes: &[
        IndexSpec {
            name: "all-by-created",
            hash: string(LIST_ATTRIBUTE),
            range: Some(string("created_key")),
            projection: Projection::All,
        },
        IndexSpec {
            name: "live",
            hash: string("live"),
            range: Some(string("id")),
            projection: Projection::All,
        },
    ],
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

pub(crate) const DELIVERIES: TableSpec = TableSpec {
    suffix: "deliveries",
    hash: string("query_id"),
    range: Some(string("node_id")),
    indexes: &[IndexSpec {
        name: "pending-by-node",
        hash: string("pending_node"),
        range: Some(string("query_id")),
        projection: Projection::KeysOnly,
    }],
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

pub(crate) const SAVED_QUERIES: TableSpec = TableSpec {
    suffix: "saved-queries",
    hash: string("name"),
    range: None,
    indexes: &[IndexSpec {
        name: "all-by-name",
        hash: string(LIST_ATTRIBUTE),
        range: Some(string("name")),
        projection: Projection::All,
    }],
    ttl_attribute: None,
};

pub(crate) const LABELS: TableSpec = TableSpec {
    suffix: "labels",
    hash: string("label"),
    range: Some(string("member")),
    indexes: &[IndexSpec {
        name: "all-by-name",
        hash: string(LIST_ATTRIBUTE),
        range: Some(string("label")),
        projection: Projection::All,
    }],
    ttl_attribute: None,
};

pub(crate) const CARVES: TableSpec = TableSpec {
    suffix: "carves",
    hash: string("session_id"),
    range: None,
    indexes: &[
        IndexSpec {
            name: "by-node",
            hash: string("node_id"),
            range: Some(string("created_key")),
            projection: Projection::All,
        },
        IndexSpec {
            name: "all-by-created",
            hash: string(LIST_ATTRIBUTE),
            range: Some(string("created_key")),
            projection: Projection::All,
        },
    ],
    ttl_attribute: None,
};

pub(crate) const CARVE_BLOCKS: TableSpec = TableSpec {
    suffix: "carve-blocks",
    hash: string("session_id"),
    range: Some(number("block_id")),
    indexes: &[],
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

pub(crate) const USERS: TableSpec = TableSpec {
    suffix: "users",
    hash: string("username"),
    range: None,
    indexes: &[IndexSpec {
        name: "all-by-name",
        hash: string(LIST_ATTRIBUTE),
        range: Some(string("username")),
        projection: Projection::All,
    }],
    ttl_attribute: None,
};

pub(crate) const TOKENS: TableSpec = TableSpec {
    suffix: "tokens",
    hash: string("token_hash"),
    range: None,
    indexes: &[
        IndexSpec {
            name: "by-user",
            hash: string("username"),
            range: Some(string("created_key")),
            projection: Projection::All,
        },
        IndexSpec {
            name: "all-by-created",
            hash: string(LIST_ATTRIBUTE),
            range: Some(string("created_key")),
            projection: Projection::All,
        },
    ],
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

pub(crate) const AUDIT: TableSpec = TableSpec {
    suffix: "audit",
    hash: string("stream"),
    range: Some(string("id")),
    indexes: &[],
    // Only revoked-key items carry it; audit entries and counters never expire.
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

/// Every table the DynamoDB store uses.
pub const TABLES: &[TableSpec] = &[
    NODES,
    LOOKUPS,
    ENVIRONMENTS,
    QUERIES,
    DELIVERIES,
    SAVED_QUERIES,
    LABELS,
    CARVES,
    CARVE_BLOCKS,
    USERS,
    TOKENS,
    AUDIT,
];
