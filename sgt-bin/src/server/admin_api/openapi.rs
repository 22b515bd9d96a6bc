//! `GET /api/v1/openapi.json`: an OpenAPI 3 document of the admin API, built from
//! [`ROUTES`], which a test checks against the live router.

use serde_json::{json, Map, Value};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::server::transport::reply::json_bytes;

/// Every admin route: method, path (with `{params}`), who may call it, and what it does.
pub(crate) const ROUTES: &[(&str, &str, &str, &str)] = &[
    (
        "post",
        "/api/v1/login",
        "anyone",
        "Exchange a user name and password for a session token",
    ),
    ("get", "/api/v1/me", "viewer", "The calling user and role"),
    ("get", "/api/v1/users", "viewer", "List users"),
    ("post", "/api/v1/users", "admin", "Create a user"),
    ("get", "/api/v1/users/{username}", "viewer", "Show a user"),
    (
        "patch",
        "/api/v1/users/{username}",
        "admin (or self, password only)",
        "Change a user's role or password (your own needs current_password); the user's other sessions end",
    ),
    (
        "delete",
        "/api/v1/users/{username}",
        "admin",
        "Delete a user and their tokens",
    ),
    (
        "get",
        "/api/v1/tokens",
        "viewer",
        "List your tokens (?all=true: everyone's, admin)",
    ),
    (
        "post",
        "/api/v1/tokens",
        "operator",
        "Create an API token (shown once)",
    ),
    (
        "delete",
        "/api/v1/tokens/{id}",
        "viewer",
        "Revoke one of your tokens (admin: anyone's)",
    ),
    ("get", "/api/v1/environments", "viewer", "List environments"),
    (
        "post",
        "/api/v1/environments",
        "admin",
        "Create an environment",
    ),
    (
        "get",
        "/api/v1/environments/{environment}",
        "viewer",
        "Show an environment",
    ),
    (
        "delete",
        "/api/v1/environments/{environment}",
        "admin",
        "Delete an environment and revoke its secrets",
    ),
    (
        "get",
        "/api/v1/environments/{environment}/config",
        "viewer",
        "Get the osquery config document; its ETag is the config's version",
    ),
    (
        "put",
        "/api/v1/environments/{environment}/config",
        "operator",
        "Replace the osquery config document; with If-Match, only at that version (409 when stale)",
    ),
    (
        "get",
        "/api/v1/environments/{environment}/packs",
        "viewer",
        "List packs",
    ),
    (
        "get",
        "/api/v1/environments/{environment}/packs/{pack}",
        "viewer",
        "Show a pack",
    ),
    (
        "put",
        "/api/v1/environments/{environment}/packs/{pack}",
        "operator",
        "Add or replace a pack",
    ),
    (
        "delete",
        "/api/v1/environments/{environment}/packs/{pack}",
        "operator",
        "Remove a pack",
    ),
    (
        "get",
        "/api/v1/environments/{environment}/secrets",
        "viewer",
        "List enroll secrets (never their values)",
    ),
    (
        "post",
        "/api/v1/environments/{environment}/secrets",
        "admin",
        "Create an enroll secret (value shown once)",
    ),
    (
        "delete",
        "/api/v1/environments/{environment}/secrets/{id}",
        "admin",
        "Revoke an enroll secret",
    ),
    (
        "get",
        "/api/v1/nodes",
        "viewer",
        "List nodes (?environment, platform, search, seen_since, cursor, limit)",
    ),
    (
        "get",
        "/api/v1/nodes/{id}",
        "viewer",
        "Show a node with its host details",
    ),
    (
        "delete",
        "/api/v1/nodes/{id}",
        "operator",
        "Delete a node; its agent re-enrolls",
    ),
    (
        "get",
        "/api/v1/queries",
        "viewer",
        "List live queries, newest first",
    ),
    (
        "post",
        "/api/v1/queries",
        "operator",
        "Create a live query for targets",
    ),
    (
        "get",
        "/api/v1/queries/{id}",
        "viewer",
        "Show a live query with per-state counts",
    ),
    (
        "get",
        "/api/v1/queries/{id}/targets",
        "viewer",
        "Per-node state of a live query",
    ),
    (
        "get",
        "/api/v1/queries/{id}/results",
        "viewer",
        "Results with the node they came from (paginated)",
    ),
    (
        "post",
        "/api/v1/queries/{id}/cancel",
        "operator",
        "Stop delivering a live query",
    ),
    (
        "get",
        "/api/v1/carves",
        "viewer",
        "List carves with status and progress, newest first (?node_id, ?cursor=&limit=)",
    ),
    ("post", "/api/v1/carves", "operator", "Ask a node for files"),
    ("get", "/api/v1/carves/{id}", "viewer", "Show a carve"),
    (
        "get",
        "/api/v1/carves/{id}/archive",
        "viewer",
        "Download a carve's archive (streamed)",
    ),
    (
        "get",
        "/api/v1/audit",
        "viewer",
        "The audit log, newest first (paginated)",
    ),
    ("get", "/api/v1/openapi.json", "anyone", "This document"),
];

/// The OpenAPI 3 document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, role, summary) in ROUTES {
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let success = match *method {
            "delete" => json!({"204": {"description": "Done"}}),
            "post" if !path.ends_with("/cancel") && !path.ends_with("/login") => {
                json!({"201": {"description": "Created", "content": {"application/json": {"schema": {"type": "object"}}}}})
            }
            _ => {
                json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}})
            }
        };
        let mut responses = success.as_object().cloned().unwrap_or_default();
        responses.insert(
            "default".into(),
            json!({"$ref": "#/components/responses/Error"}),
        );
        let mut operation = json!({
            "summary": summary,
            "description": format!("Role: {role}."),
            "parameters": parameters,
            "responses": responses,
        });
        if *role == "anyone" {
            operation["security"] = json!([]);
        }
        if matches!(*method, "post" | "put" | "patch") && !path.ends_with("/cancel") {
            operation["requestBody"] = json!({"required": !path.ends_with("/secrets"), "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "sgt admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Environments, enroll secrets, configs and packs, nodes, live queries, carves, users and tokens. Errors are {\"error\":{\"code\",\"message\"}} with a fitting status. Lists take ?cursor=&limit= and answer {\"items\":[…],\"next_cursor\":…}."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "An error", "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}
                }}}
            }}}}}
        }
    })
}

pub(super) fn route() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("openapi.json").and(warp::get()).map(|| {
        json_bytes(
            http::StatusCode::OK,
            serde_json::to_vec(&document()).unwrap_or_default(),
        )
    })
}
