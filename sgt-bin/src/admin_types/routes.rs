//! Every admin route: its method, path, who may call it and what it does. The OpenAPI
//! document is built from [`ROUTES`], a test checks that table against the live router, and
//! the CLI's client reaches the server only through these constants.

/// One admin API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// A name for the operation, unique: the OpenAPI `operationId` and the name of the
    /// client's method that calls it.
    pub operation: &'static str,
    /// The HTTP method, lower case (`get`, `post`, `put`, `patch`, `delete`).
    pub method: &'static str,
    /// The path, with `{name}` for each parameter segment.
    pub path: &'static str,
    /// Who may call it.
    pub role: &'static str,
    /// What it does.
    pub summary: &'static str,
}

impl Route {
    /// The path with its parameters filled in, in order, each percent-escaped as one path
    /// segment (so a name holding `/` or `?` stays one segment).
    ///
    /// # Panics
    /// When `params` does not hold one value per parameter: a mistake in the caller's code.
    pub fn path_with(&self, params: &[&str]) -> String {
        let mut params = params.iter();
        let filled: Vec<String> = self
            .path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    let value = params
                        .next()
                        .unwrap_or_else(|| panic!("{} needs more parameters", self.path));
                    escape_segment(value)
                } else {
                    segment.to_owned()
                }
            })
            .collect();
        assert!(
            params.next().is_none(),
            "{} takes fewer parameters",
            self.path
        );
        filled.join("/")
    }

    /// The names of its path parameters, in order.
    pub fn parameters(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }
}

/// Percent-escapes everything but RFC 3986's unreserved characters.
fn escape_segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /api/v1/login`
pub const LOGIN: Route = Route {
    operation: "login",
    method: "post",
    path: "/api/v1/login",
    role: "anyone",
    summary: "Exchange a user name and password for a session token",
};

/// `GET /api/v1/me`
pub const ME: Route = Route {
    operation: "me",
    method: "get",
    path: "/api/v1/me",
    role: "viewer",
    summary: "The calling user and role",
};

/// `GET /api/v1/users`
pub const LIST_USERS: Route = Route {
    operation: "list_users",
    method: "get",
    path: "/api/v1/users",
    role: "viewer",
    summary: "List users",
};

/// `POST /api/v1/users`
pub const CREATE_USER: Route = Route {
    operation: "create_user",
    method: "post",
    path: "/api/v1/users",
    role: "admin",
    summary: "Create a user",
};

/// `GET /api/v1/users/{username}`
pub const USER: Route = Route {
    operation: "user",
    method: "get",
    path: "/api/v1/users/{username}",
    role: "viewer",
    summary: "Show a user",
};

/// `PATCH /api/v1/users/{username}`
pub const UPDATE_USER: Route = Route {
    operation: "update_user",
    method: "patch",
    path: "/api/v1/users/{username}",
    role: "admin (or self, password only)",
    summary: "Change a user's role or password (your own needs current_password); the user's other sessions end",
};

/// `DELETE /api/v1/users/{username}`
pub const DELETE_USER: Route = Route {
    operation: "delete_user",
    method: "delete",
    path: "/api/v1/users/{username}",
    role: "admin",
    summary: "Delete a user and their tokens",
};

/// `GET /api/v1/tokens`
pub const LIST_TOKENS: Route = Route {
    operation: "list_tokens",
    method: "get",
    path: "/api/v1/tokens",
    role: "viewer",
    summary: "List your tokens (?all=true: everyone's, admin)",
};

/// `POST /api/v1/tokens`
pub const CREATE_TOKEN: Route = Route {
    operation: "create_token",
    method: "post",
    path: "/api/v1/tokens",
    role: "operator",
    summary: "Create an API token (shown once)",
};

/// `DELETE /api/v1/tokens/{id}`
pub const REVOKE_TOKEN: Route = Route {
    operation: "revoke_token",
    method: "delete",
    path: "/api/v1/tokens/{id}",
    role: "viewer",
    summary: "Revoke one of your tokens (admin: anyone's)",
};

/// `GET /api/v1/environments`
pub const LIST_ENVIRONMENTS: Route = Route {
    operation: "list_environments",
    method: "get",
    path: "/api/v1/environments",
    role: "viewer",
    summary: "List environments",
};

/// `POST /api/v1/environments`
pub const CREATE_ENVIRONMENT: Route = Route {
    operation: "create_environment",
    method: "post",
    path: "/api/v1/environments",
    role: "admin",
    summary: "Create an environment",
};

/// `GET /api/v1/environments/{environment}`
pub const ENVIRONMENT: Route = Route {
    operation: "environment",
    method: "get",
    path: "/api/v1/environments/{environment}",
    role: "viewer",
    summary: "Show an environment",
};

/// `DELETE /api/v1/environments/{environment}`
pub const DELETE_ENVIRONMENT: Route = Route {
    operation: "delete_environment",
    method: "delete",
    path: "/api/v1/environments/{environment}",
    role: "admin",
    summary: "Delete an environment and revoke its secrets",
};

/// `PUT /api/v1/environments/{environment}/settings`
pub const PUT_ENVIRONMENT_SETTINGS: Route = Route {
    operation: "put_environment_settings",
    method: "put",
    path: "/api/v1/environments/{environment}/settings",
    role: "admin",
    summary: "Replace how the server treats the environment's nodes (node_expiry_days)",
};

/// `GET /api/v1/environments/{environment}/config`
pub const CONFIG: Route = Route {
    operation: "config",
    method: "get",
    path: "/api/v1/environments/{environment}/config",
    role: "viewer",
    summary: "Get the osquery config document; its ETag is the config's version",
};

/// `PUT /api/v1/environments/{environment}/config`
pub const PUT_CONFIG: Route = Route {
    operation: "put_config",
    method: "put",
    path: "/api/v1/environments/{environment}/config",
    role: "operator",
    summary:
        "Replace the osquery config document; with If-Match, only at that version (409 when stale)",
};

/// `GET /api/v1/environments/{environment}/packs`
pub const PACKS: Route = Route {
    operation: "packs",
    method: "get",
    path: "/api/v1/environments/{environment}/packs",
    role: "viewer",
    summary: "List packs",
};

/// `GET /api/v1/environments/{environment}/packs/{pack}`
pub const PACK: Route = Route {
    operation: "pack",
    method: "get",
    path: "/api/v1/environments/{environment}/packs/{pack}",
    role: "viewer",
    summary: "Show a pack",
};

/// `PUT /api/v1/environments/{environment}/packs/{pack}`
pub const PUT_PACK: Route = Route {
    operation: "put_pack",
    method: "put",
    path: "/api/v1/environments/{environment}/packs/{pack}",
    role: "operator",
    summary: "Add or replace a pack",
};

/// `DELETE /api/v1/environments/{environment}/packs/{pack}`
pub const DELETE_PACK: Route = Route {
    operation: "delete_pack",
    method: "delete",
    path: "/api/v1/environments/{environment}/packs/{pack}",
    role: "operator",
    summary: "Remove a pack",
};

/// `GET /api/v1/environments/{environment}/secrets`
pub const LIST_SECRETS: Route = Route {
    operation: "list_secrets",
    method: "get",
    path: "/api/v1/environments/{environment}/secrets",
    role: "viewer",
    summary: "List enroll secrets (never their values)",
};

/// `POST /api/v1/environments/{environment}/secrets`
pub const CREATE_SECRET: Route = Route {
    operation: "create_secret",
    method: "post",
    path: "/api/v1/environments/{environment}/secrets",
    role: "admin",
    summary: "Create an enroll secret (value shown once)",
};

/// `DELETE /api/v1/environments/{environment}/secrets/{id}`
pub const REVOKE_SECRET: Route = Route {
    operation: "revoke_secret",
    method: "delete",
    path: "/api/v1/environments/{environment}/secrets/{id}",
    role: "admin",
    summary: "Revoke an enroll secret",
};

/// `GET /api/v1/nodes`
pub const LIST_NODES: Route = Route {
    operation: "list_nodes",
    method: "get",
    path: "/api/v1/nodes",
    role: "viewer",
    summary: "List nodes (?environment, platform, search, seen_since, cursor, limit)",
};

/// `GET /api/v1/nodes/{id}`
pub const NODE: Route = Route {
    operation: "node",
    method: "get",
    path: "/api/v1/nodes/{id}",
    role: "viewer",
    summary: "Show a node with its host details",
};

/// `DELETE /api/v1/nodes/{id}`
pub const DELETE_NODE: Route = Route {
    operation: "delete_node",
    method: "delete",
    path: "/api/v1/nodes/{id}",
    role: "operator",
    summary: "Delete a node; its agent re-enrolls",
};

/// `POST /api/v1/nodes/{id}/approve`
pub const APPROVE_NODE: Route = Route {
    operation: "approve_node",
    method: "post",
    path: "/api/v1/nodes/{id}/approve",
    role: "operator",
    summary: "Approve a node awaiting enrollment approval",
};

/// `POST /api/v1/nodes/{id}/reject`
pub const REJECT_NODE: Route = Route {
    operation: "reject_node",
    method: "post",
    path: "/api/v1/nodes/{id}/reject",
    role: "operator",
    summary: "Reject a node awaiting enrollment approval: it is deleted",
};

/// `GET /api/v1/queries`
pub const LIST_QUERIES: Route = Route {
    operation: "list_queries",
    method: "get",
    path: "/api/v1/queries",
    role: "viewer",
    summary: "List live queries, newest first",
};

/// `POST /api/v1/queries`
pub const CREATE_QUERY: Route = Route {
    operation: "create_query",
    method: "post",
    path: "/api/v1/queries",
    role: "operator",
    summary: "Create a live query for targets",
};

/// `GET /api/v1/queries/{id}`
pub const QUERY: Route = Route {
    operation: "query",
    method: "get",
    path: "/api/v1/queries/{id}",
    role: "viewer",
    summary: "Show a live query with per-state counts",
};

/// `GET /api/v1/queries/{id}/targets`
pub const QUERY_TARGETS: Route = Route {
    operation: "query_targets",
    method: "get",
    path: "/api/v1/queries/{id}/targets",
    role: "viewer",
    summary: "Per-node state of a live query",
};

/// `GET /api/v1/queries/{id}/results`
pub const QUERY_RESULTS: Route = Route {
    operation: "query_results",
    method: "get",
    path: "/api/v1/queries/{id}/results",
    role: "viewer",
    summary: "Results with the node they came from (paginated)",
};

/// `POST /api/v1/queries/{id}/cancel`
pub const CANCEL_QUERY: Route = Route {
    operation: "cancel_query",
    method: "post",
    path: "/api/v1/queries/{id}/cancel",
    role: "operator",
    summary: "Stop delivering a live query",
};

/// `GET /api/v1/carves`
pub const LIST_CARVES: Route = Route {
    operation: "list_carves",
    method: "get",
    path: "/api/v1/carves",
    role: "viewer",
    summary: "List carves with status and progress, newest first (?node_id, ?cursor=&limit=)",
};

/// `POST /api/v1/carves`
pub const REQUEST_CARVE: Route = Route {
    operation: "request_carve",
    method: "post",
    path: "/api/v1/carves",
    role: "operator",
    summary: "Ask a node for files",
};

/// `GET /api/v1/carves/{id}`
pub const CARVE: Route = Route {
    operation: "carve",
    method: "get",
    path: "/api/v1/carves/{id}",
    role: "viewer",
    summary: "Show a carve",
};

/// `GET /api/v1/carves/{id}/archive`
pub const CARVE_ARCHIVE: Route = Route {
    operation: "carve_archive",
    method: "get",
    path: "/api/v1/carves/{id}/archive",
    role: "viewer",
    summary: "Download a carve's archive (streamed)",
};

/// `GET /api/v1/audit`
pub const AUDIT_LOG: Route = Route {
    operation: "audit_log",
    method: "get",
    path: "/api/v1/audit",
    role: "viewer",
    summary: "The audit log, newest first (paginated)",
};

/// `GET /api/v1/openapi.json`
pub const OPENAPI: Route = Route {
    operation: "openapi",
    method: "get",
    path: "/api/v1/openapi.json",
    role: "anyone",
    summary: "This document",
};

/// `GET /api/v1/saved-queries`
pub const LIST_SAVED_QUERIES: Route = Route {
    operation: "list_saved_queries",
    method: "get",
    path: "/api/v1/saved-queries",
    role: "viewer",
    summary: "List saved queries by name",
};

/// `GET /api/v1/saved-queries/{name}`
pub const SAVED_QUERY: Route = Route {
    operation: "saved_query",
    method: "get",
    path: "/api/v1/saved-queries/{name}",
    role: "viewer",
    summary: "Show a saved query",
};

/// `PUT /api/v1/saved-queries/{name}`
pub const PUT_SAVED_QUERY: Route = Route {
    operation: "put_saved_query",
    method: "put",
    path: "/api/v1/saved-queries/{name}",
    role: "operator",
    summary: "Save a query by name, replacing one of that name",
};

/// `DELETE /api/v1/saved-queries/{name}`
pub const DELETE_SAVED_QUERY: Route = Route {
    operation: "delete_saved_query",
    method: "delete",
    path: "/api/v1/saved-queries/{name}",
    role: "operator",
    summary: "Delete a saved query",
};

/// `GET /api/v1/labels`
pub const LIST_LABELS: Route = Route {
    operation: "list_labels",
    method: "get",
    path: "/api/v1/labels",
    role: "viewer",
    summary: "List labels by name",
};

/// `GET /api/v1/labels/{name}`
pub const LABEL: Route = Route {
    operation: "label",
    method: "get",
    path: "/api/v1/labels/{name}",
    role: "viewer",
    summary: "Show a label (its members: GET /nodes?label=NAME)",
};

/// `PUT /api/v1/labels/{name}`
pub const PUT_LABEL: Route = Route {
    operation: "put_label",
    method: "put",
    path: "/api/v1/labels/{name}",
    role: "operator",
    summary: "Create or replace a label: manual, or dynamic with a query",
};

/// `DELETE /api/v1/labels/{name}`
pub const DELETE_LABEL: Route = Route {
    operation: "delete_label",
    method: "delete",
    path: "/api/v1/labels/{name}",
    role: "operator",
    summary: "Delete a label no pack is for, with its memberships",
};

/// `POST /api/v1/labels/{name}/members`
pub const CHANGE_LABEL_MEMBERS: Route = Route {
    operation: "change_label_members",
    method: "post",
    path: "/api/v1/labels/{name}/members",
    role: "operator",
    summary: "Add nodes to and remove nodes from a manual label",
};

/// Every admin route, in the order the OpenAPI document lists them.
pub const ROUTES: &[Route] = &[
    LOGIN,
    ME,
    LIST_USERS,
    CREATE_USER,
    USER,
    UPDATE_USER,
    DELETE_USER,
    LIST_TOKENS,
    CREATE_TOKEN,
    REVOKE_TOKEN,
    LIST_ENVIRONMENTS,
    CREATE_ENVIRONMENT,
    ENVIRONMENT,
    DELETE_ENVIRONMENT,
    PUT_ENVIRONMENT_SETTINGS,
    CONFIG,
    PUT_CONFIG,
    PACKS,
    PACK,
    PUT_PACK,
    DELETE_PACK,
    LIST_SECRETS,
    CREATE_SECRET,
    REVOKE_SECRET,
    LIST_NODES,
    NODE,
    DELETE_NODE,
    APPROVE_NODE,
    REJECT_NODE,
    LIST_QUERIES,
    CREATE_QUERY,
    QUERY,
    QUERY_TARGETS,
    QUERY_RESULTS,
    CANCEL_QUERY,
    LIST_SAVED_QUERIES,
    SAVED_QUERY,
    PUT_SAVED_QUERY,
    DELETE_SAVED_QUERY,
    LIST_LABELS,
    LABEL,
    PUT_LABEL,
    DELETE_LABEL,
    CHANGE_LABEL_MEMBERS,
    LIST_CARVES,
    REQUEST_CARVE,
    CARVE,
    CARVE_ARCHIVE,
    AUDIT_LOG,
    OPENAPI,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_and_routes_are_unique() {
        let mut operations: Vec<&str> = ROUTES.iter().map(|r| r.operation).collect();
        operations.sort_unstable();
        operations.dedup();
        assert_eq!(operations.len(), ROUTES.len());
        let mut routes: Vec<(&str, &str)> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
        routes.sort_unstable();
        routes.dedup();
        assert_eq!(routes.len(), ROUTES.len());
    }

    #[test]
    fn parameters_fill_one_segment_each() {
        assert_eq!(
            REVOKE_SECRET.path_with(&["prod", "a/b?c"]),
            "/api/v1/environments/prod/secrets/a%2Fb%3Fc"
        );
        assert_eq!(
            REVOKE_SECRET.parameters().collect::<Vec<_>>(),
            ["environment", "id"]
        );
        assert_eq!(LIST_NODES.path_with(&[]), "/api/v1/nodes");
    }

    #[test]
    #[should_panic(expected = "needs more parameters")]
    fn a_missing_parameter_is_a_mistake() {
        NODE.path_with(&[]);
    }
}
