//! A route table over warp: every API route is one [`Route`] value (method, path template, access,
//! summary, handler). The dispatcher and the OpenAPI document are both built from the table, so the
//! published document cannot drift from what the server answers.
//!
//! The dispatcher also gives every response its `X-Request-Id`, applies access control (session,
//! owner-only, CSRF) before a handler runs, and records HTTP latency per route template.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;

use super::HttpState;
use super::auth::{self, Admin};
use super::forwarded::Client;
use super::input::{self, BODY_LIMIT};
use super::problem::ApiError;
use super::respond::{ApiResult, finish};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health probes, login).
    Public,
    /// A signed-in admin; CSRF token on state-changing methods.
    Admin,
    /// The owner only (managing admins).
    Owner,
    /// A session, or the configured metrics bearer token (for scrapers).
    Metrics,
    /// No session: the handler checks the bot's webhook secret in
    /// `X-Telegram-Bot-Api-Secret-Token` (Telegram's webhook deliveries).
    SecretToken,
}

pub type Handler = fn(Ctx) -> BoxFuture<'static, ApiResult>;

/// Writes the JSON Schema of one type into the document's generator: a `$ref` to
/// `#/components/schemas/…` for named types, inline for the rest.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// What a route answers with one status, for the OpenAPI document.
#[derive(Clone, Copy)]
pub struct Answer {
    pub status: StatusCode,
    pub body: AnswerBody,
}

/// The body of a documented answer.
#[derive(Clone, Copy)]
pub enum AnswerBody {
    /// `application/json` of this schema.
    Json(SchemaFn),
    /// Text of this media type (CSV, the Prometheus exposition format, a server-sent event stream).
    Text(&'static str),
    /// No body (204).
    Empty,
}

/// One route of the API.
#[derive(Clone)]
pub struct Route {
    pub method: Method,
    /// `/api/v1/bots/{id}`: `{name}` segments are captured in order; each is a positive integer
    /// id (see [`input::parse_id`]) unless [`Route::param`] says otherwise.
    pub path: &'static str,
    /// Path parameters that are not ids, and their schemas.
    pub params: Vec<(&'static str, SchemaFn)>,
    pub access: Access,
    pub summary: &'static str,
    /// Schema of the JSON body the handler reads.
    pub body: Option<SchemaFn>,
    /// Schema of the query the handler reads (an object: one parameter per property).
    pub query: Option<SchemaFn>,
    /// The successful answers, by status; errors are always problem documents (4XX, 5XX).
    pub answers: Vec<Answer>,
    /// The largest body taken, in bytes ([`BODY_LIMIT`] unless the route says otherwise).
    pub body_limit: u64,
    pub handler: Handler,
}

impl Route {
    pub fn new(
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: Handler,
    ) -> Self {
        Self {
            method,
            path,
            access,
            summary,
            params: Vec::new(),
            body: None,
            query: None,
            answers: Vec::new(),
            body_limit: BODY_LIMIT,
            handler,
        }
    }

    /// Takes bodies up to `bytes` (a route whose caller sends more than the usual limit).
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Path parameter `name` is a `T`, not an id.
    pub fn param<T: JsonSchema>(mut self, name: &'static str) -> Self {
        self.params
            .push((name, |generator| generator.subschema_for::<T>()));
        self
    }

    /// The handler reads its JSON body as `T`.
    pub fn accepts<T: JsonSchema>(mut self) -> Self {
        self.body = Some(|generator| generator.subschema_for::<T>());
        self
    }

    /// The handler reads its query string as `T`.
    pub fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(|generator| generator.subschema_for::<T>());
        self
    }

    /// The handler answers `status` with a JSON `T`.
    pub fn returns<T: JsonSchema>(mut self, status: StatusCode) -> Self {
        self.answers.push(Answer {
            status,
            body: AnswerBody::Json(|generator| generator.subschema_for::<T>()),
        });
        self
    }

    /// The handler answers `status` with text of `media_type`.
    pub fn returns_text(mut self, status: StatusCode, media_type: &'static str) -> Self {
        self.answers.push(Answer {
            status,
            body: AnswerBody::Text(media_type),
        });
        self
    }

    /// The handler answers `status` with no body.
    pub fn returns_empty(mut self, status: StatusCode) -> Self {
        self.answers.push(Answer {
            status,
            body: AnswerBody::Empty,
        });
        self
    }

    /// Whether this route serves `method` on `path` (a `GET` route also serves `HEAD`).
    pub fn serves(&self, method: &Method, path: &str) -> bool {
        (self.method == method || (method == Method::HEAD && self.method == Method::GET))
            && self.capture(path).is_some()
    }

    /// Path parameters if `path` matches this route's template.
    fn capture(&self, path: &str) -> Option<Vec<String>> {
        let template = self.path.trim_matches('/').split('/');
        let mut actual = path.trim_matches('/').split('/');
        let mut params = Vec::new();
        for part in template {
            let segment = actual.next()?;
            if part.starts_with('{') {
                if segment.is_empty() {
                    return None;
                }
                params.push(percent_decode(segment));
            } else if part != segment {
                return None;
            }
        }
        actual.next().is_none().then_some(params)
    }
}

/// Everything a handler gets: the state, the request, and who is calling.
pub struct Ctx {
    pub state: HttpState,
    pub params: Vec<String>,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub remote: Option<SocketAddr>,
    /// Who the client is, through the trusted proxies (`server.trusted_proxies`).
    pub client: Client,
    /// Set for `Admin` and `Owner` routes.
    pub admin: Option<Admin>,
}

impl Ctx {
    /// The signed-in admin; routes with `Access::Admin` always have one.
    pub fn admin(&self) -> Result<&Admin, ApiError> {
        self.admin
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("sign in first"))
    }

    /// Path parameter `index` as a positive id.
    pub fn id(&self, index: usize, what: &str) -> Result<i64, ApiError> {
        input::parse_id(
            what,
            self.params.get(index).map(String::as_str).unwrap_or(""),
        )
    }

    /// The body as JSON `T`, with a specific 4xx when it is not.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let is_json = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        // Every body of this API is an object; serde would also fill a struct from an array, by
        // position, which no schema of the document allows.
        let first = self.body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the JSON body must be an object ({\"name\": value, …})",
            ));
        }
        input::parse_json(&self.body)
    }

    /// The query string as `T`, with a specific 400 when it is not (and a 422 naming the
    /// parameter when a value holds a character no backend can store).
    pub fn query<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&self.query).unwrap_or_default();
        if let Some((name, _)) = pairs.iter().find(|(_, value)| input::is_unstorable(value)) {
            return Err(input::unstorable(&format!("query.{name}")));
        }
        serde_urlencoded::from_str::<T>(&self.query).map_err(|error| {
            ApiError::bad_request(
                "invalid_query",
                format!("the query string is not acceptable: {error}"),
            )
        })
    }

    /// The client's address as text, for the audit log and login throttling: the peer's, or the
    /// one a trusted proxy forwarded for (see [`super::forwarded`]).
    pub fn client_ip(&self) -> Option<String> {
        self.client.ip.map(|ip| ip.to_string())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The table, indexed for dispatch.
pub struct Router {
    routes: Vec<Route>,
    /// Whether paths no route matches fall back to the dashboard's files.
    dashboard: bool,
}

impl Router {
    /// The routes, and the dashboard's files for any other path.
    pub fn new(routes: Vec<Route>) -> Arc<Self> {
        Arc::new(Self {
            routes,
            dashboard: true,
        })
    }

    /// The routes alone: any other path is 404 (`serve --role bots` serves only its probes).
    pub fn without_dashboard(routes: Vec<Route>) -> Arc<Self> {
        Arc::new(Self {
            routes,
            dashboard: false,
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `path`, its parameters, or the 404/405 answer.
    fn find(&self, method: &Method, path: &str) -> Result<(&Route, Vec<String>), ApiError> {
        let mut allowed = Vec::new();
        for route in &self.routes {
            if let Some(params) = route.capture(path) {
                if route.method == method || (method == Method::HEAD && route.method == Method::GET)
                {
                    return Ok((route, params));
                }
                allowed.push(route.method.as_str());
                if route.method == Method::GET {
                    allowed.push(Method::HEAD.as_str());
                }
            }
        }
        if allowed.is_empty() {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                format!("no route {path}"),
            ))
        } else {
            let mut error = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{path} accepts {}, not {method}", allowed.join(", ")),
            );
            error.extra = Some(serde_json::json!({ "allow": allowed }));
            error.allow = Some(allowed.join(", "));
            Err(error)
        }
    }
}

/// The warp filter that serves every route of the table under any path it names.
pub fn filter(
    state: HttpState,
    router: Arc<Router>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::body::stream())
        .then(
            move |method, path: warp::path::FullPath, query, headers, remote, body| {
                let state = state.clone();
                let router = router.clone();
                async move {
                    dispatch(
                        state,
                        router,
                        method,
                        path.as_str().to_string(),
                        query,
                        headers,
                        remote,
                        body,
                    )
                    .await
                }
            },
        )
}

#[allow(clippy::too_many_arguments)] // warp hands the request over in parts
async fn dispatch<S, B>(
    state: HttpState,
    router: Arc<Router>,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    body: S,
) -> Response
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: bytes::Buf,
{
    let started = Instant::now();
    let request_id = request_id(&headers);
    let (template, mut response) = match router.find(&method, &path) {
        Ok((route, params)) => {
            let response = match read_body(&headers, body, route.body_limit).await {
                Ok(body) => run(state, route, params, query, headers, remote, body).await,
                Err(error) => error.into_response(),
            };
            (route.path, response)
        }
        Err(error) => match router
            .dashboard
            .then(|| super::static_files::serve(&method, &path, &headers))
            .flatten()
        {
            Some(response) => ("static", response),
            // A dashboard file or page asked for with another method: it exists, so 405.
            None if router.dashboard
                && error.status == StatusCode::NOT_FOUND
                && super::static_files::serve(&Method::GET, &path, &HeaderMap::new())
                    // The shell answered 404 for an unknown page: nothing there for any method.
                    .is_some_and(|page| page.status() != StatusCode::NOT_FOUND) =>
            {
                let mut refused = ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{path} accepts GET, HEAD, not {method}"),
                );
                refused.extra = Some(serde_json::json!({ "allow": ["GET", "HEAD"] }));
                refused.allow = Some("GET, HEAD".into());
                ("static", refused.into_response())
            }
            None => ("unmatched", error.into_response()),
        },
    };
    let status = response.status();
    crate::metrics::http_request(
        method.as_str(),
        template,
        status.as_u16(),
        started.elapsed(),
    );
    if status.is_server_error() {
        tracing::warn!(%method, %path, status = status.as_u16(), %request_id, "request failed");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), %request_id, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    secure(response.headers_mut());
    response
}

/// Headers every response carries: no address leaks to other sites through `Referer`, no
/// content-type guessing, and on HTML a content policy allowing only the dashboard's own files
/// (also refusing to be framed).
fn secure(headers: &mut HeaderMap) {
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    let is_html = headers
        .get(warp::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html && !headers.contains_key(warp::http::header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            warp::http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
}

/// The dashboard's content policy: its own scripts, styles and images only, never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

async fn run(
    state: HttpState,
    route: &Route,
    params: Vec<String>,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    body: Bytes,
) -> Response {
    if params.iter().any(|p| input::is_unstorable(p)) {
        return input::unstorable("path").into_response();
    }
    let admin = match route.access {
        Access::Public | Access::SecretToken => None,
        Access::Metrics if auth::metrics_bearer(&state, &headers) => None,
        access => match auth::authorize(&state, &route.method, &headers, access).await {
            Ok(admin) => Some(admin),
            Err(error) => return error.into_response(),
        },
    };
    // A route that reads no query refuses one, as the document says: a parameter it would
    // silently ignore (`?limit=5` on a list that is not paged) misleads the caller.
    if route.query.is_none() && !query.is_empty() {
        return ApiError::bad_request(
            "invalid_query",
            format!("{} takes no query parameters", route.path),
        )
        .into_response();
    }
    let client = state.auth.trusted_proxies.client(remote, &headers);
    let ctx = Ctx {
        state,
        params,
        query,
        headers,
        body,
        remote,
        client,
        admin,
    };
    finish((route.handler)(ctx).await)
}

/// The body, refused with 413 past `limit` bytes whether or not a length was declared.
async fn read_body<S, B>(headers: &HeaderMap, mut stream: S, limit: u64) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: bytes::Buf,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {limit} bytes"),
        )
    };
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|length| *length > limit) {
        if length <= DISCARD_LIMIT {
            discard(&mut stream).await;
        }
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|error| ApiError::bad_request("unreadable_body", error.to_string()))?;
        if body.len() as u64 + chunk.remaining() as u64 > limit {
            discard(&mut stream).await;
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(body))
}

/// Bodies up to this size are read and dropped before a 413, so the answer reaches the client.
const DISCARD_LIMIT: u64 = 1024 * 1024;

/// Reads and drops the rest of a refused body, up to [`DISCARD_LIMIT`]. Closing a connection
/// with unread data makes the kernel reset it, and a client still sending loses the 413 with it.
async fn discard<S, B>(stream: &mut S)
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: bytes::Buf,
{
    let mut seen = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.remaining() as u64;
        if seen > DISCARD_LIMIT {
            return;
        }
    }
}

/// The client's `X-Request-Id` when it is a sane token, else a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()))
}

/// A path segment as its characters (RFC 3986 §2.1): `%2B` and `+` are both a plus (`+` means a
/// space only in form-encoded queries), and bytes that are not UTF-8 are shown as U+FFFD.
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing(_: Ctx) -> BoxFuture<'static, ApiResult> {
        Box::pin(async { super::super::respond::no_content() })
    }

    #[test]
    fn templates_capture_their_parameters_and_nothing_else() {
        let route = Route::new(
            Method::POST,
            "/api/v1/groups/{id}/channels/{channel}",
            Access::Admin,
            "",
            nothing,
        );
        assert_eq!(
            route.capture("/api/v1/groups/4/channels/9"),
            Some(vec!["4".into(), "9".into()])
        );
        assert_eq!(route.capture("/api/v1/groups/4/channels"), None);
        assert_eq!(route.capture("/api/v1/groups/4/channels/9/x"), None);
        assert_eq!(route.capture("/api/v1/groups//channels/9"), None);
    }

    #[test]
    fn a_known_path_with_the_wrong_method_is_405_not_404() {
        let router = Router::new(vec![Route::new(
            Method::GET,
            "/api/v1/bots",
            Access::Admin,
            "",
            nothing,
        )]);
        let error = router.find(&Method::DELETE, "/api/v1/bots").err().unwrap();
        assert_eq!(error.status, StatusCode::METHOD_NOT_ALLOWED);
        let error = router.find(&Method::GET, "/api/v1/nope").err().unwrap();
        assert_eq!(error.status, StatusCode::NOT_FOUND);
        assert!(router.find(&Method::HEAD, "/api/v1/bots").is_ok());
        let error = router.find(&Method::POST, "/api/v1/bots").err().unwrap();
        let response = error.into_response();
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }
}
