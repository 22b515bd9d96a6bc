//! `GET /api/v1/openapi.json`: an OpenAPI 3 document of the admin API, built from
//! [`ROUTES`], which a test checks against the live router.

use serde_json::{json, Map, Value};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::admin_types::ROUTES;
use crate::server::transport::reply::json_bytes;

/// The OpenAPI 3 document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let (method, path, role) = (&route.method, &route.path, &route.role);
        let parameters: Vec<Value> = route
            .parameters()
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
            "operationId": route.operation,
            "summary": route.summary,
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
