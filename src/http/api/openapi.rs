//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the route table the server
//! dispatches with, so every route is in it and nothing else is.

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};
use warp::http::{Method, StatusCode};

use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, AnswerBody, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/openapi.json",
            Access::Admin,
            "This document",
            |c| Box::pin(document(c)),
        )
        .returns::<Document>(StatusCode::OK),
    ]
}

/// An OpenAPI 3.1 document (<https://spec.openapis.org/oas/v3.1.0>).
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// `3.1.0`.
    pub openapi: &'static str,
    pub info: Value,
    pub json_schema_dialect: &'static str,
    pub components: Value,
    pub paths: Map<String, Value>,
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

/// The document for `routes`: every route's parameters, body and answers, their schemas generated
/// from the Rust types the handlers read and write (named types under `#/components/schemas`).
pub fn build(routes: &[Route]) -> Document {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut paths = Map::new();
    for route in routes {
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation(route, &mut generator);
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Problem".into(), problem_schema());
    Document {
        openapi: "3.1.0",
        info: json!({
            "title": "Nezuko admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Errors are application/problem+json with a stable `code`. Lists are {items, page} or {items, next_cursor}. State-changing requests need the X-CSRF-Token header of the session. Ids in paths are positive integers. A request body with a field its schema does not name, or a query parameter the operation does not list, is refused (4XX).",
        }),
        json_schema_dialect: "https://json-schema.org/draft/2020-12/schema",
        components: json!({
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": crate::http::auth::SESSION_COOKIE },
                "csrf": { "type": "apiKey", "in": "header", "name": "X-CSRF-Token" },
                "metrics": { "type": "http", "scheme": "bearer" },
                "telegram_secret": { "type": "apiKey", "in": "header", "name": "X-Telegram-Bot-Api-Secret-Token" },
            },
            "schemas": schemas,
        }),
        paths,
    }
}

/// An error answer (RFC 9457); some carry more members (`field` on a 422, `allow` on a 405,
/// `problems` on a 422 `missing_rights`).
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "code": {"type": "string", "description": "stable; clients branch on it"},
            "detail": {"type": "string", "description": "for the person reading it"},
            "field": {"type": "string", "description": "the request field a 422 is about"},
            "allow": {"type": "array", "items": {"type": "string"}, "description": "on a 405: the methods the resource accepts (also in `Allow`)"},
            "problems": {"type": "array", "items": {"type": "string"}, "description": "on a 422 `missing_rights`: each right the bot lacks, as the fix in English"},
        },
    })
}

fn operation(route: &Route, generator: &mut SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
        .map(|name| {
            let schema = match route.params.iter().find(|(param, _)| *param == name) {
                Some((_, schema)) => schema(generator).to_value(),
                None => json!({ "type": "integer", "minimum": 1 }),
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    if let Some(query) = route.query {
        parameters.extend(query_parameters(&query(generator), generator));
    }
    let safe = matches!(route.method, Method::GET | Method::HEAD);
    let security = match route.access {
        Access::Public => json!([]),
        Access::Metrics => json!([{ "session": [] }, { "metrics": [] }]),
        Access::SecretToken => json!([{ "telegram_secret": [] }]),
        _ if safe => json!([{ "session": [] }]),
        _ => json!([{ "session": [], "csrf": [] }]),
    };
    let problem = json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } });
    let mut responses = Map::new();
    for answer in &route.answers {
        let mut documented =
            json!({ "description": answer.status.canonical_reason().unwrap_or("answer") });
        match answer.body {
            AnswerBody::Json(schema) => {
                documented["content"] =
                    json!({ "application/json": { "schema": schema(generator) } });
            }
            AnswerBody::Text(media_type) => {
                documented["content"] = json!({ media_type: { "schema": { "type": "string" } } });
            }
            AnswerBody::Empty => {}
        }
        responses.insert(answer.status.as_str().to_string(), documented);
    }
    responses.insert(
        "4XX".into(),
        json!({ "description": "client mistake", "content": problem.clone() }),
    );
    responses.insert(
        "5XX".into(),
        json!({ "description": "server or database failure", "content": problem }),
    );
    let mut op = json!({
        "summary": route.summary,
        "operationId": format!("{} {}", route.method, route.path),
        "tags": [route.path.trim_start_matches("/api/v1/").split('/').next().unwrap_or("")],
        "parameters": parameters,
        "security": security,
        "responses": responses,
    });
    if let Some(body) = route.body {
        op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": body(generator) } } });
    }
    op
}

/// One query parameter per property of the query type's object schema, with its schema and the
/// field's doc comment as its description.
/// An optional field's schema without its `null`: a parameter is absent, never null.
fn present(mut schema: Value) -> Value {
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            schema["type"] = types[0].clone();
        }
        return schema;
    }
    if let Some(any_of) = schema.get("anyOf").and_then(Value::as_array) {
        let kept: Vec<&Value> = any_of.iter().filter(|s| s["type"] != "null").collect();
        if let [only] = kept.as_slice() {
            return (*only).clone();
        }
    }
    schema
}

fn query_parameters(schema: &Schema, generator: &SchemaGenerator) -> Vec<Value> {
    let object = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.rsplit('/').next())
        .and_then(|name| generator.definitions().get(name))
        .unwrap_or(schema.as_value());
    let required: Vec<&str> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    object
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .map(|(name, property)| {
                    let mut property = property.clone();
                    let description = property
                        .as_object_mut()
                        .and_then(|p| p.remove("description"));
                    let mut parameter = json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": present(property),
                    });
                    if let Some(description) = description {
                        parameter["description"] = description;
                    }
                    parameter
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`.
    fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference);
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_route_documents_its_answers_and_every_reference_resolves() {
        let routes = crate::http::api::routes();
        for route in &routes {
            assert!(
                route.answers.iter().any(|a| a.status.is_success()),
                "{} {} documents its success",
                route.method,
                route.path
            );
        }
        let document = serde_json::to_value(build(&routes)).unwrap();
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(found.len() > 20, "types are shared by reference");
        for reference in found {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{reference} points into components"));
            assert!(
                document["components"]["schemas"].get(name).is_some(),
                "{reference} resolves"
            );
        }
        // Ids are integers, other path parameters say what they are.
        let bot = &document["paths"]["/api/v1/bots/{id}"]["get"]["parameters"][0]["schema"];
        assert_eq!(bot["type"], "integer");
        let language =
            &document["paths"]["/api/v1/settings/texts/{language}"]["put"]["parameters"][0];
        assert!(language["schema"]["$ref"].is_string(), "{language}");
    }
}
