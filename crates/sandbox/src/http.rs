//! The sandbox over HTTP: the Bot API at `/bot<token>/<method>` and the control API at
//! `POST /_sandbox/<operation>` (JSON in, `{"ok": true, "result": …}` out).

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::control::ControlError;
use super::faults::{Fault, RateLimits};
use super::model::{AdminRights, ChatKind, Status};
use super::spec::Encoding;
use super::{Answer, Sandbox};

/// Bodies above this are refused, as Telegram refuses them (50 MB uploads).
const MAX_BODY: u64 = 50 * 1024 * 1024;

pub async fn serve(
    sandbox: Sandbox,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let routes = control(sandbox.clone())
        .or(bot_api(sandbox))
        .recover(not_found);
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

fn bot_api(
    sandbox: Sandbox,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    // GET carries parameters in the query only; POST may add a body (with a Content-Length).
    let body = warp::post()
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .or(warp::get().map(Bytes::new))
        .unify();
    warp::path!(String / String)
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(body)
        .and(warp::any().map(move || sandbox.clone()))
        .and_then(|first: String, method: String, content_type: Option<String>, query: String, body: Bytes, sandbox: Sandbox| async move {
            let Some(token) = first.strip_prefix("bot") else {
                return Err(warp::reject::not_found());
            };
            let answer = match parse_params(content_type.as_deref(), &query, body).await {
                Ok((params, encoding)) => sandbox.handle(token, &method, params, encoding).await,
                Err(reason) => Answer::Reply {
                    status: 400,
                    body: json!({ "ok": false, "error_code": 400, "description": format!("Bad Request: {reason}") }),
                },
            };
            Ok::<_, Rejection>(render(answer))
        })
}

fn render(answer: Answer) -> warp::reply::Response {
    match answer {
        Answer::Reply { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            warp::reply::with_status(warp::reply::json(&body), status).into_response()
        }
        // A body that fails makes hyper abort the connection: the client sees it dropped.
        Answer::Drop => {
            warp::reply::stream(futures_util::stream::iter([Err::<Bytes, std::io::Error>(
                std::io::Error::other("connection dropped by an injected fault"),
            )]))
            .into_response()
        }
    }
}

/// Reads parameters from the query string and the body (JSON, form or multipart).
async fn parse_params(
    content_type: Option<&str>,
    query: &str,
    body: Bytes,
) -> Result<(Map<String, Value>, Encoding), String> {
    let mut params = Map::new();
    let mut encoding = Encoding::Text;
    for (key, value) in
        serde_urlencoded::from_str::<Vec<(String, String)>>(query).map_err(|e| e.to_string())?
    {
        params.insert(key, Value::String(value));
    }
    let mime = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        _ if body.is_empty() => {}
        "application/json" => {
            let value: Value =
                serde_json::from_slice(&body).map_err(|e| format!("can't parse JSON body: {e}"))?;
            let Value::Object(object) = value else {
                return Err("the JSON body must be an object".into());
            };
            params.extend(object);
            encoding = Encoding::Json;
        }
        "application/x-www-form-urlencoded" => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())?;
            params.extend(pairs.into_iter().map(|(k, v)| (k, Value::String(v))));
        }
        "multipart/form-data" => {
            let boundary =
                multer::parse_boundary(content_type.unwrap_or("")).map_err(|e| e.to_string())?;
            let stream =
                futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
            let mut multipart = multer::Multipart::new(stream, boundary);
            while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
                let name = field.name().unwrap_or_default().to_string();
                // A file part stands for an InputFile; its content does not matter to the sandbox.
                let value = match field.file_name().map(str::to_string) {
                    Some(file) => format!("attach://{file}"),
                    None => field.text().await.map_err(|e| e.to_string())?,
                };
                params.insert(name, Value::String(value));
            }
        }
        other => return Err(format!("unsupported content type \"{other}\"")),
    }
    Ok((params, encoding))
}

fn control(
    sandbox: Sandbox,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("_sandbox" / String)
        .and(warp::post())
        .and(warp::body::content_length_limit(1024 * 1024))
        .and(
            warp::body::json::<Value>()
                .or(warp::any().map(|| json!({})))
                .unify(),
        )
        .and(warp::any().map(move || sandbox.clone()))
        .map(|op: String, body: Value, sandbox: Sandbox| {
            let (status, reply) = match control_op(&sandbox, &op, body) {
                Ok(result) => (StatusCode::OK, json!({ "ok": true, "result": result })),
                Err(error) => (
                    StatusCode::BAD_REQUEST,
                    json!({ "ok": false, "error": error.to_string() }),
                ),
            };
            warp::reply::with_status(warp::reply::json(&reply), status).into_response()
        })
}

#[derive(Deserialize)]
struct ChatUser {
    chat: i64,
    user: i64,
}

fn args<T: for<'de> Deserialize<'de>>(body: Value) -> Result<T, ControlError> {
    serde_json::from_value(body).map_err(|e| ControlError::Telegram(format!("bad arguments: {e}")))
}

fn to_json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// One control operation, named as the Rust method of [`Sandbox`] it calls.
fn control_op(sandbox: &Sandbox, op: &str, body: Value) -> Result<Value, ControlError> {
    #[derive(Deserialize)]
    struct Named {
        first_name: String,
        username: Option<String>,
    }
    #[derive(Deserialize)]
    struct NewChat {
        kind: ChatKind,
        title: String,
        username: Option<String>,
    }
    #[derive(Deserialize)]
    struct SetMember {
        chat: i64,
        user: i64,
        status: Status,
    }
    #[derive(Deserialize)]
    struct Promote {
        chat: i64,
        user: i64,
        #[serde(default)]
        rights: AdminRights,
    }
    #[derive(Deserialize)]
    struct Say {
        chat: i64,
        user: i64,
        text: String,
    }
    #[derive(Deserialize)]
    struct Private {
        bot: i64,
        user: i64,
        text: String,
    }
    #[derive(Deserialize)]
    struct Post {
        chat: i64,
        text: String,
    }
    #[derive(Deserialize)]
    struct Press {
        chat: i64,
        message_id: i64,
        user: i64,
        data: String,
    }
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    #[derive(Deserialize)]
    struct Chat {
        chat: i64,
    }
    #[derive(Deserialize)]
    struct Bot {
        bot: i64,
    }
    #[derive(Deserialize, Default)]
    struct CallFilter {
        bot: Option<i64>,
        method: Option<String>,
    }
    #[derive(Deserialize)]
    struct Clock {
        seconds: i64,
    }

    Ok(match op {
        "create_bot" => {
            let a: Named = args(body)?;
            to_json(sandbox.create_bot(
                &a.first_name,
                a.username.as_deref().unwrap_or("sandbox_bot"),
            ))
        }
        "create_user" => {
            let a: Named = args(body)?;
            to_json(sandbox.create_user(&a.first_name, a.username.as_deref()))
        }
        "create_chat" => {
            let a: NewChat = args(body)?;
            json!({ "id": sandbox.create_chat(a.kind, &a.title, a.username.as_deref()) })
        }
        "set_member" => {
            let a: SetMember = args(body)?;
            sandbox
                .set_member(a.chat, a.user, a.status)
                .map(|()| json!(true))?
        }
        "promote" => {
            let a: Promote = args(body)?;
            sandbox
                .promote(a.chat, a.user, a.rights)
                .map(|()| json!(true))?
        }
        "join" | "leave" | "request_join" => {
            let a: ChatUser = args(body)?;
            let done = match op {
                "join" => sandbox.join(a.chat, a.user),
                "leave" => sandbox.leave(a.chat, a.user),
                _ => sandbox.request_join(a.chat, a.user),
            };
            done.map(|()| json!(true))?
        }
        "send" => {
            let a: Say = args(body)?;
            json!({ "message_id": sandbox.send(a.chat, a.user, &a.text)? })
        }
        "send_private" => {
            let a: Private = args(body)?;
            json!({ "message_id": sandbox.send_private(a.bot, a.user, &a.text)? })
        }
        "post" => {
            let a: Post = args(body)?;
            json!({ "message_id": sandbox.post(a.chat, &a.text)? })
        }
        "press_button" => {
            let a: Press = args(body)?;
            json!({ "callback_id": sandbox.press_button(a.chat, a.message_id, a.user, &a.data)? })
        }
        "callback_answer" => sandbox
            .callback_answer(&args::<Id>(body)?.id)
            .unwrap_or(Value::Null),
        "member" => {
            let a: ChatUser = args(body)?;
            to_json(sandbox.member(a.chat, a.user))
        }
        "transcript" => to_json(sandbox.transcript(args::<Chat>(body)?.chat)),
        "blocked" => to_json(sandbox.blocked(args::<Chat>(body)?.chat)),
        "calls" => {
            let a: CallFilter = args(body)?;
            to_json(sandbox.calls(a.bot, a.method.as_deref()))
        }
        "violations" => to_json(sandbox.violations()),
        "counters" => to_json(sandbox.counters()),
        "inject_fault" => {
            sandbox.inject_fault(args::<Fault>(body)?);
            json!(true)
        }
        "clear_faults" => {
            sandbox.clear_faults();
            json!(true)
        }
        "revoke_token" => {
            sandbox.revoke_token(args::<Bot>(body)?.bot);
            json!(true)
        }
        "restore_token" => {
            sandbox.restore_token(args::<Bot>(body)?.bot);
            json!(true)
        }
        "advance_clock" => {
            sandbox.advance_clock(args::<Clock>(body)?.seconds);
            json!(true)
        }
        "set_rate_limits" => {
            sandbox.set_rate_limits(args::<RateLimits>(body)?);
            json!(true)
        }
        other => {
            return Err(ControlError::Telegram(format!(
                "unknown control operation `{other}`"
            )));
        }
    })
}

async fn not_found(_: Rejection) -> Result<impl Reply, Infallible> {
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({ "ok": false, "error_code": 404, "description": "Not Found" })),
        StatusCode::NOT_FOUND,
    ))
}
