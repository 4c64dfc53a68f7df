//! The sandbox over HTTP: the Bot API at `/bot<token>/<method>` and the control API at
//! `POST /_sandbox/<operation>` (JSON in, `{"ok": true, "result": …}` out).

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::control::{Operation, OperationError};
use super::spec::Encoding;
use super::{Answer, Sandbox};

/// Bodies above this are refused, as Telegram refuses them (50 MB uploads).
const MAX_BODY: usize = 50 * 1024 * 1024;
/// Control operations are small JSON objects.
const CONTROL_MAX_BODY: usize = 1024 * 1024;

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
    // GET carries parameters in the query only; POST may add a body, with a Content-Length,
    // chunked, or none at all (an empty body).
    let body = warp::post()
        .and(limited_body(MAX_BODY))
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

/// A request body of at most `limit` bytes, however it is framed: with a `Content-Length`,
/// chunked, or absent. A longer one is refused with 413 once the limit is passed.
fn limited_body(limit: usize) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::stream().and_then(move |stream| async move {
        let mut stream = std::pin::pin!(stream);
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            let Ok(chunk) = chunk else {
                return Err(warp::reject::custom(BodyError::Broken));
            };
            if body.len() + bytes::Buf::remaining(&chunk) > limit {
                return Err(warp::reject::custom(BodyError::TooLarge));
            }
            bytes::BufMut::put(&mut body, chunk);
        }
        Ok::<_, Rejection>(body.freeze())
    })
}

#[derive(Debug)]
enum BodyError {
    TooLarge,
    Broken,
}

impl warp::reject::Reject for BodyError {}

fn render(answer: Answer) -> warp::reply::Response {
    match answer {
        Answer::Reply { status, body } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response =
                warp::reply::with_status(warp::reply::json(&body), code).into_response();
            // The Bot API server repeats `retry_after` as a header (`HttpConnection::send_response`).
            if let Some(seconds) = body["parameters"]["retry_after"].as_u64() {
                response.headers_mut().insert("retry-after", seconds.into());
            }
            response
        }
        Answer::Raw { status, body } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = warp::reply::with_status(body, code).into_response();
            response.headers_mut().insert(
                "content-type",
                warp::http::HeaderValue::from_static("application/json"),
            );
            response
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
        // Without a type the Bot API server does not read the body (`HttpReader`, tdlib).
        _ if body.is_empty() || mime.is_empty() => {}
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
        .and(limited_body(CONTROL_MAX_BODY))
        .and(warp::any().map(move || sandbox.clone()))
        .and_then(|op: String, body: Bytes, sandbox: Sandbox| async move {
            let parsed = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(Value::Null)
            } else {
                serde_json::from_slice::<Value>(&body)
            };
            let outcome = match parsed {
                Err(error) => Err((
                    StatusCode::BAD_REQUEST,
                    format!("the body is not JSON: {error}"),
                )),
                Ok(body) => match Operation::parse(&op, body) {
                    Err(error @ OperationError::Unknown(_)) => {
                        Err((StatusCode::NOT_FOUND, error.to_string()))
                    }
                    Err(error) => Err((StatusCode::BAD_REQUEST, error.to_string())),
                    Ok(operation) => sandbox
                        .apply(operation)
                        .await
                        .map_err(|error| (StatusCode::BAD_REQUEST, error.to_string())),
                },
            };
            let (status, reply) = match outcome {
                Ok(result) => (StatusCode::OK, json!({ "ok": true, "result": result })),
                Err((status, error)) => (status, json!({ "ok": false, "error": error })),
            };
            Ok::<_, Rejection>(
                warp::reply::with_status(warp::reply::json(&reply), status).into_response(),
            )
        })
}

/// What is not a Bot API or control path is 404 as Telegram words it; a refused body says why.
async fn not_found(rejection: Rejection) -> Result<impl Reply, Infallible> {
    let (status, description) = match rejection.find::<BodyError>() {
        Some(BodyError::TooLarge) => (StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
        Some(BodyError::Broken) => (
            StatusCode::BAD_REQUEST,
            "Bad Request: the body could not be read",
        ),
        None => (StatusCode::NOT_FOUND, "Not Found"),
    };
    Ok(warp::reply::with_status(
        warp::reply::json(
            &json!({ "ok": false, "error_code": status.as_u16(), "description": description }),
        ),
        status,
    ))
}
