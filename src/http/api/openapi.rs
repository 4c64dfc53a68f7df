//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the route table the server
//! dispatches with, so every route is in it and nothing else is.

use serde_json::{Map, Value, json};
use warp::http::Method;

use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/v1/openapi.json",
        Access::Admin,
        "This document",
        |c| Box::pin(document(c)),
    )]
}

async fn document(ctx: Ctx) -> ApiResult {
    let routes = ctx
        .state
        .router
        .get()
        .map(|r| r.routes().to_vec())
        .unwrap_or_else(super::routes);
    respond::ok(&build(&routes))
}

/// The document for `routes`.
pub fn build(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Nezuko admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Errors are application/problem+json with a stable `code`. Lists are {items, page} or {items, next_cursor}. State-changing requests need the X-CSRF-Token header of the session.",
        },
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": crate::http::auth::SESSION_COOKIE },
                "csrf": { "type": "apiKey", "in": "header", "name": "X-CSRF-Token" },
                "metrics": { "type": "http", "scheme": "bearer" },
                "telegram_secret": { "type": "apiKey", "in": "header", "name": "X-Telegram-Bot-Api-Secret-Token" },
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "code", "detail"],
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                        "code": {"type": "string"}, "detail": {"type": "string"},
                    },
                },
            },
        },
        "paths": paths,
    })
}

fn operation(route: &Route) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(route.query.iter().map(|(name, description)| {
        json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } })
    }));
    let safe = matches!(route.method, Method::GET | Method::HEAD);
    let security = match route.access {
        Access::Public => json!([]),
        Access::Metrics => json!([{ "session": [] }, { "metrics": [] }]),
        Access::SecretToken => json!([{ "telegram_secret": [] }]),
        _ if safe => json!([{ "session": [] }]),
        _ => json!([{ "session": [], "csrf": [] }]),
    };
    let problem = json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } });
    let mut op = json!({
        "summary": route.summary,
        "operationId": format!("{} {}", route.method, route.path),
        "tags": [route.path.trim_start_matches("/api/v1/").split('/').next().unwrap_or("")],
        "parameters": parameters,
        "security": security,
        "responses": {
            "2XX": { "description": "success" },
            "4XX": { "description": "client mistake", "content": problem.clone() },
            "5XX": { "description": "server or database failure", "content": problem },
        },
    });
    if let Some(schema) = &route.body {
        op["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    op
}
