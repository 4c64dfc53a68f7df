//! The admin API's contract, checked on every answer the suite receives: each response of an
//! [`super::ApiWorld`] request is looked up in the OpenAPI document the server publishes (built
//! from the same route table), by route, status and media type, and its body validated against
//! the documented schema with a JSON Schema validator. A field the server sends that the
//! document does not name fails too (the test reads every documented object as closed), so the
//! document and the server cannot drift apart in either direction.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use nezuko::db::NewGroup;
use nezuko::http::api::charts::CHARTS;
use nezuko::http::auth::widget;
use nezuko::http::router::Route;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{Answer, ApiWorld, OWNER, Session, api_tests};

api_tests!(every_route_answers_as_the_document_says);

/// The document and the validators compiled from it so far.
struct Contract {
    routes: Vec<Route>,
    document: Value,
    /// Closed copies of `components/schemas`, which every validator's `$ref`s point into.
    components: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

static CONTRACT: LazyLock<Contract> = LazyLock::new(|| {
    let routes = nezuko::http::api::routes();
    let document = serde_json::to_value(nezuko::http::api::openapi::build(&routes))
        .expect("the document serializes");
    let mut components = document["components"].clone();
    if let Some(schemas) = components["schemas"].as_object_mut() {
        for schema in schemas.values_mut() {
            close(schema);
        }
    }
    Contract {
        routes,
        document,
        components,
        validators: Mutex::new(HashMap::new()),
    }
});

/// Reads an object schema that names its properties as naming all of them (JSON Schema's
/// `unevaluatedProperties`, which sees through `allOf`/`oneOf`, so flattened and tagged types
/// keep their other members).
fn close(schema: &mut Value) {
    if let Some(object) = schema.as_object_mut()
        && (object.contains_key("properties") || object.contains_key("oneOf"))
        && !object.contains_key("additionalProperties")
        && !object.contains_key("unevaluatedProperties")
    {
        object.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
}

/// Panics unless `answer` to `method path` is what the document says that route answers.
pub fn check(method: &Method, path: &str, answer: &Answer) {
    if let Err(drift) = verify(method, path, answer) {
        panic!("{drift}");
    }
}

/// Whether `answer` to `method path` is what the document says that route answers; if not, how
/// they differ.
fn verify(method: &Method, path: &str, answer: &Answer) -> Result<(), String> {
    let contract = &*CONTRACT;
    let path = path.split('?').next().unwrap_or(path);
    let method = nezuko_method(method);
    let content_type = answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let Some(route) = contract.routes.iter().find(|r| r.serves(&method, path)) else {
        // No route: the dashboard's files, or a problem (404, 405) that must still be one.
        if content_type.as_deref() == Some("application/problem+json") {
            validate(
                contract,
                "problem",
                &json!({ "$ref": "#/components/schemas/Problem" }),
                &answer.body,
                || format!("{method} {path} → {}", answer.status),
            )?;
        }
        return Ok(());
    };
    let operation =
        &contract.document["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
    let status = answer.status;
    let documented = operation["responses"]
        .get(status.as_str())
        .or_else(|| operation["responses"].get(class(status)))
        .ok_or_else(|| {
            format!(
                "{method} {path} answered {status}, which {} {} does not document: {}",
                route.method, route.path, answer.body
            )
        })?;
    let Some(content) = documented.get("content").and_then(Value::as_object) else {
        return match answer.body {
            Value::Null => Ok(()),
            ref body => Err(format!(
                "{method} {path} → {status} is documented without a body, but sent {body}"
            )),
        };
    };
    if method == Method::HEAD {
        return Ok(());
    }
    let content_type = content_type.unwrap_or_default();
    let (_, media) = content
        .iter()
        .find(|(documented, _)| documented.split(';').next().unwrap_or("").trim() == content_type)
        .ok_or_else(|| {
            format!(
                "{method} {path} → {status} sent {content_type}; the document says {:?}",
                content.keys().collect::<Vec<_>>()
            )
        })?;
    if content_type.ends_with("json") {
        let key = format!("{} {} {}", route.method, route.path, status);
        validate(contract, &key, &media["schema"], &answer.body, || {
            format!("{method} {path} → {status}")
        })?;
    }
    Ok(())
}

/// `HEAD` is served by the `GET` route.
fn nezuko_method(method: &Method) -> warp::http::Method {
    warp::http::Method::from_bytes(method.as_str().as_bytes()).expect("a standard method")
}

fn class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        2 => "2XX",
        3 => "3XX",
        4 => "4XX",
        _ => "5XX",
    }
}

fn validate(
    contract: &Contract,
    key: &str,
    schema: &Value,
    body: &Value,
    what: impl Fn() -> String,
) -> Result<(), String> {
    let validator = {
        let mut validators = contract.validators.lock().unwrap();
        validators
            .entry(key.to_string())
            .or_insert_with(|| {
                let mut root = Map::new();
                root.insert(
                    "$schema".into(),
                    "https://json-schema.org/draft/2020-12/schema".into(),
                );
                root.insert("components".into(), contract.components.clone());
                root.insert("allOf".into(), json!([schema]));
                let mut root = Value::Object(root);
                close(&mut root["allOf"][0]);
                Arc::new(
                    jsonschema::validator_for(&root)
                        .unwrap_or_else(|error| panic!("the schema of {key} compiles: {error}")),
                )
            })
            .clone()
    };
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|error| format!("at {}: {error}", error.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} does not match its documented schema:\n  {}\nbody: {body}",
            what(),
            errors.join("\n  ")
        ))
    }
}

/// The routes one test called successfully (each answer checked by [`check`] on the way).
struct Covered<'w> {
    world: &'w ApiWorld,
    routes: Vec<Route>,
    seen: BTreeSet<String>,
}

impl<'w> Covered<'w> {
    fn new(world: &'w ApiWorld) -> Self {
        Self {
            world,
            routes: nezuko::http::api::routes(),
            seen: BTreeSet::new(),
        }
    }

    /// `method path` as the owner; it must succeed.
    async fn hit(&mut self, method: Method, path: &str, body: Option<Value>) -> Value {
        let session = self.world.session.clone();
        self.hit_as(Some(&session), method, path, body).await
    }

    /// `method path` with `session` (none: signed out); it must succeed.
    async fn hit_as(
        &mut self,
        session: Option<&Session>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let answer = self
            .world
            .send(method.clone(), path, body, session, session.is_some())
            .await;
        assert!(
            answer.status.is_success(),
            "{method} {path}: {} {}",
            answer.status,
            answer.body
        );
        let bare = path.split('?').next().unwrap_or(path);
        let route = self
            .routes
            .iter()
            .find(|r| r.serves(&nezuko_method(&method), bare))
            .unwrap_or_else(|| panic!("{method} {path} is a route"));
        self.seen.insert(format!("{} {}", route.method, route.path));
        answer.body
    }
}

/// Calls every route of the table with a request it takes, so that each route's successful
/// answer has met its documented schema at least once (errors meet theirs wherever the suite
/// provokes them).
async fn every_route_answers_as_the_document_says(world: &mut ApiWorld) {
    let mut covered = Covered::new(world);
    covered.hit_as(None, Method::GET, "/healthz", None).await;
    covered.hit_as(None, Method::GET, "/readyz", None).await;
    covered
        .hit_as(None, Method::GET, "/api/v1/auth/config", None)
        .await;
    let token = world.login_link(OWNER).await;
    let link = Some(json!({ "token": token }));
    covered
        .hit_as(None, Method::POST, "/api/v1/auth/link", link)
        .await;
    let mut fields =
        json!({ "id": OWNER, "first_name": "Olga", "auth_date": nezuko::db::now_ms() / 1000 });
    let hash = widget::sign(fields.as_object().unwrap(), &world.login_token);
    fields["hash"] = hash.into();
    covered
        .hit_as(None, Method::POST, "/api/v1/auth/telegram", Some(fields))
        .await;
    covered.hit(Method::GET, "/api/v1/auth/me", None).await;

    // A bot, a group of it and a channel, through every change the API offers.
    let token = world.sandbox.create_bot("Contract", "contract_bot").token;
    let body = Some(json!({ "token": token, "enabled": false }));
    let bot = covered.hit(Method::POST, "/api/v1/bots", body).await["id"]
        .as_i64()
        .unwrap();
    let group = world
        .db
        .store
        .upsert_group(&NewGroup {
            bot_instance_id: bot,
            chat_id: -1_009_001,
            title: "Contract group".into(),
            username: None,
        })
        .await
        .unwrap()
        .id;
    covered.hit(Method::GET, "/api/v1/bots", None).await;
    covered
        .hit(Method::GET, &format!("/api/v1/bots/{bot}"), None)
        .await;
    for action in ["enable", "start", "restart", "stop", "disable"] {
        let path = format!("/api/v1/bots/{bot}/{action}");
        covered.hit(Method::POST, &path, None).await;
    }
    let rotate = Some(json!({ "token": token }));
    let path = format!("/api/v1/bots/{bot}/token");
    covered.hit(Method::POST, &path, rotate).await;
    let channel = json!({ "chat_id": -1_009_002, "title": "News", "username": "contract_news" });
    let channel = covered
        .hit(Method::POST, "/api/v1/channels", Some(channel))
        .await["id"]
        .as_i64()
        .unwrap();
    covered.hit(Method::GET, "/api/v1/channels", None).await;
    let path = format!("/api/v1/channels/{channel}");
    covered.hit(Method::GET, &path, None).await;
    let title = Some(json!({ "title": "News, renamed" }));
    covered.hit(Method::PATCH, &path, title).await;
    covered
        .hit(Method::GET, "/api/v1/groups?sort=-title", None)
        .await;
    let path = format!("/api/v1/groups/{group}/channels");
    let link = Some(json!({ "channel_id": channel }));
    covered.hit(Method::POST, &path, link).await;
    covered
        .hit(Method::GET, &format!("/api/v1/groups/{group}"), None)
        .await;
    let path = format!("/api/v1/groups/{group}/policy");
    let policy = Some(json!({ "action": "warn", "language": "es" }));
    covered.hit(Method::PUT, &path, policy).await;
    for action in ["disable", "enable"] {
        let path = format!("/api/v1/groups/{group}/{action}");
        covered.hit(Method::POST, &path, None).await;
    }
    let path = format!("/api/v1/groups/{group}/join-requests");
    covered.hit(Method::GET, &path, None).await;
    let path = format!("/api/v1/groups/{group}/channels/{channel}");
    covered.hit(Method::DELETE, &path, None).await;
    let path = format!("/api/v1/channels/{channel}");
    covered.hit(Method::DELETE, &path, None).await;
    let defaults = Some(json!({ "grace_s": 30 }));
    covered
        .hit(Method::PUT, "/api/v1/settings/policy", defaults)
        .await;
    let texts = Some(json!({ "verified": "Gracias, ya puedes escribir." }));
    covered
        .hit(Method::PUT, "/api/v1/settings/texts/es", texts)
        .await;
    covered.hit(Method::GET, "/api/v1/settings", None).await;
    let chat = world.operators_chat(true);
    let alerts = Some(json!({ "chat_id": chat, "sender": "login" }));
    covered
        .hit(Method::PUT, "/api/v1/settings/alerts", alerts)
        .await;
    covered
        .hit(Method::GET, "/api/v1/settings/alerts", None)
        .await;
    covered
        .hit(Method::POST, "/api/v1/settings/alerts/test", None)
        .await;

    // What the dashboard reads.
    for path in [
        "/api/v1/stats",
        "/api/v1/activity?limit=5",
        "/api/v1/audit?limit=5",
        "/api/v1/audit.csv",
        "/api/v1/logs?min_level=info",
        "/api/v1/nodes",
        "/api/v1/attention",
        "/api/v1/vocabulary",
        "/api/v1/openapi.json",
        "/api/v1/charts",
        "/metrics",
    ] {
        covered.hit(Method::GET, path, None).await;
    }
    for chart in CHARTS {
        for period in ["24h", "7d"] {
            let path = format!("/api/v1/charts/{chart}?period={period}");
            covered.hit(Method::GET, &path, None).await;
        }
    }

    let admin = Some(json!({ "telegram_user_id": 4_242, "display_name": "Ada" }));
    covered.hit(Method::POST, "/api/v1/admins", admin).await;
    covered.hit(Method::GET, "/api/v1/admins", None).await;
    covered
        .hit(Method::DELETE, "/api/v1/admins/4242", None)
        .await;
    covered
        .hit(Method::DELETE, &format!("/api/v1/bots/{bot}"), None)
        .await;
    let other = world.sign_in(OWNER).await;
    covered
        .hit_as(Some(&other), Method::POST, "/api/v1/auth/logout", None)
        .await;

    // Some routes have clients of their own, which check their answers too: Telegram's webhook
    // deliveries (`webhooks.rs`), the event stream (`sse.rs`), deciding on a join request,
    // which needs a real one from a running guard bot (`join_page.rs`), and protecting a chat,
    // which needs a running bot administering real chats (`protect.rs`).
    let elsewhere = [
        "POST /api/v1/groups",
        "POST /telegram/{id}",
        "GET /api/v1/events/stream",
        "POST /api/v1/join-requests/{id}/check",
        "POST /api/v1/join-requests/{id}/approve",
        "POST /api/v1/join-requests/{id}/decline",
    ];
    let missed: Vec<String> = covered
        .routes
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .filter(|r| !covered.seen.contains(r) && !elsewhere.contains(&r.as_str()))
        .collect();
    assert!(missed.is_empty(), "routes never called here: {missed:?}");
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;

    fn json_answer(status: u16, content_type: &'static str, body: Value) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static(content_type));
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body,
            headers,
        }
    }

    /// The check is only worth its name if it fails: each kind of drift is caught.
    #[test]
    fn answers_that_drift_from_the_document_are_caught() {
        let ok = json_answer(200, "application/json", json!({ "status": "ok" }));
        assert_eq!(verify(&Method::GET, "/healthz", &ok), Ok(()));
        // A value the enumeration does not list.
        let fine = json_answer(200, "application/json", json!({ "status": "fine" }));
        assert!(verify(&Method::GET, "/healthz", &fine).is_err());
        // A member the document does not name.
        let extra = json_answer(
            200,
            "application/json",
            json!({ "status": "ok", "mood": 1 }),
        );
        let drift = verify(&Method::GET, "/healthz", &extra).unwrap_err();
        assert!(drift.contains("mood"), "{drift}");
        // An id as a string, and a missing member, in a nested, referenced type.
        let nodes =
            json!({ "items": [{ "id": "n", "host": "h", "pid": "7" }], "runner_alive": true });
        let nodes = json_answer(200, "application/json", nodes);
        let drift = verify(&Method::GET, "/api/v1/nodes", &nodes).unwrap_err();
        assert!(
            drift.contains("pid") && drift.contains("version"),
            "{drift}"
        );
        // A status the route does not document, and a media type it does not send.
        let created = json_answer(201, "application/json", json!({ "status": "ok" }));
        assert!(verify(&Method::GET, "/healthz", &created).is_err());
        let text = json_answer(200, "text/plain", Value::Null);
        assert!(verify(&Method::GET, "/healthz", &text).is_err());
        // A body where none is documented; an error that is not a problem document.
        let body = json_answer(204, "application/json", json!({ "bye": true }));
        assert!(verify(&Method::POST, "/api/v1/auth/logout", &body).is_err());
        let problem = json_answer(404, "application/problem+json", json!({ "error": "gone" }));
        assert!(verify(&Method::GET, "/api/v1/bots/9", &problem).is_err());
    }
}
