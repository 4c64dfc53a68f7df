//! The dashboard's files (`ui/`), compiled into the binary and served at `/`. A dashboard page
//! (`/bots`, `/login`) gets `index.html`, which routes in the browser. An address shaped like a
//! page that no page has (`/nope`, `/bots/x`) gets it too, answered 404, so that a person sees the
//! dashboard's own not-found page and a program the status; a missing file (`/js/nope.js`) stays a
//! plain 404, and `/api/…` never falls through to here.
//!
//! Every file carries an `ETag` (from its content's SHA-256) and `Cache-Control: no-cache`: the
//! browser keeps it but asks each time, and gets `304 Not Modified` (RFC 9110 §13.1.2) while it is
//! unchanged, so a new release is never mixed with a cached script of the old one.

use rust_embed::Embed;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

#[derive(Embed)]
#[folder = "ui/"]
struct Ui;

/// The file for `path`, or `None` to let the API's 404/405 answer stand.
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if !(method == Method::GET || method == Method::HEAD) || path.starts_with("/api/") {
        return None;
    }
    let name = match path.trim_start_matches('/') {
        // Asked for by browsers on pages that name no icon (a JSON answer, a probe): the same
        // icon, rather than a 404 in every such visit.
        "favicon.ico" => "favicon.svg",
        name => name,
    };
    let (file, status) = match Ui::get(name) {
        Some(file) if !name.is_empty() => (file, StatusCode::OK),
        // A join request's Mini App check page, outside the dashboard's shell (no session).
        None if is_join_page(name) => (Ui::get("join.html")?, StatusCode::OK),
        _ => match address(name) {
            Address::Page => (Ui::get("index.html")?, StatusCode::OK),
            Address::NoSuchPage => (Ui::get("index.html")?, StatusCode::NOT_FOUND),
            Address::NoSuchFile => return None,
        },
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!("\"{}\"", hex::encode(&hash[..16]));
    // A not-found answer is never "not modified": the shell's tag says nothing about the address.
    let unchanged = status == StatusCode::OK
        && headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == etag
            });
    let mut response = Response::new(if method == Method::HEAD || unchanged {
        Vec::new().into()
    } else {
        file.data.into_owned().into()
    });
    *response.status_mut() = if unchanged {
        StatusCode::NOT_MODIFIED
    } else {
        status
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    let mime = file.metadata.mimetype();
    // The files are UTF-8; saying so spares the browser a guess.
    let mime = if mime.starts_with("text/") && !mime.contains("charset") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    if let Ok(value) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    // Revalidated every time: a 304 costs a round trip, a stale script a broken page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    let policy = if is_join_page(name) {
        JOIN_PAGE_POLICY
    } else {
        super::router::CONTENT_SECURITY_POLICY
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    Some(response)
}

/// The dashboard's policy, but framable by Telegram Web, which opens Mini Apps in a frame (the
/// apps use a web view of their own).
const JOIN_PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors https://web.telegram.org";

/// `join/<request id>`: the Mini App check page a guard bot shows (`ui/join.html`).
fn is_join_page(name: &str) -> bool {
    // Spelled as the API reads ids: digits, no leading zero, a positive 64-bit number.
    name.strip_prefix("join/").is_some_and(|id| {
        !id.starts_with('0')
            && id.bytes().all(|b| b.is_ascii_digit())
            && id.parse::<i64>().is_ok_and(|n| n > 0)
    })
}

/// One page of the dashboard.
#[derive(Debug, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
pub struct Page {
    /// The address; `:id` stands for a numeric id.
    pub path: &'static str,
    /// The script under `ui/js/pages/` (without `.js`) that renders it.
    pub module: &'static str,
    /// The navigation section it is shown under.
    pub section: &'static str,
}

/// The dashboard's pages, in one place: the server serves the page shell for their addresses
/// (anything else is a 404), and `GET /api/v1/vocabulary` hands the table to the dashboard's
/// router, which loads each page's script by its `module`.
pub const PAGES: [Page; 12] = [
    page("/login", "login", "/login"),
    page("/", "overview", "/"),
    page("/bots", "bots", "/bots"),
    page("/bots/:id", "bot", "/bots"),
    page("/groups", "groups", "/groups"),
    page("/groups/:id", "group", "/groups"),
    page("/channels", "channels", "/channels"),
    page("/channels/:id", "channel", "/channels"),
    page("/analytics", "analytics", "/analytics"),
    page("/logs", "logs", "/logs"),
    page("/audit", "audit", "/audit"),
    page("/settings", "settings", "/settings"),
];

const fn page(path: &'static str, module: &'static str, section: &'static str) -> Page {
    Page {
        path,
        module,
        section,
    }
}

/// What an address that names no file is.
#[derive(Debug, PartialEq)]
enum Address {
    /// One of [`PAGES`] (`bots`, `bots/12`).
    Page,
    /// Shaped like a page (no extension), but none has it (`nope`, `bots/x`, `bots/12/more`).
    NoSuchPage,
    /// A file's name (`js/nope.js`).
    NoSuchFile,
}

/// What `name` (the path without its leading `/`) is; `:id` in a page's path matches digits,
/// as in the dashboard's router.
fn address(name: &str) -> Address {
    if name.rsplit('/').next().unwrap_or("").contains('.') {
        return Address::NoSuchFile;
    }
    let segments: Vec<&str> = name.split('/').collect();
    let matches = |page: &Page| {
        let pattern: Vec<&str> = page.path.trim_start_matches('/').split('/').collect();
        pattern.len() == segments.len()
            && pattern.iter().zip(&segments).all(|(want, got)| {
                want == got
                    || (*want == ":id"
                        && !got.is_empty()
                        && got.bytes().all(|b| b.is_ascii_digit()))
            })
    };
    if PAGES.iter().any(matches) {
        Address::Page
    } else {
        Address::NoSuchPage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_its_script_and_its_shell() {
        for page in PAGES {
            let script = format!("js/pages/{}.js", page.module);
            assert!(Ui::get(&script).is_some(), "{script} for {}", page.path);
            let address = page.path.replace(":id", "12");
            assert!(
                serve(&Method::GET, &address, &HeaderMap::new()).is_some(),
                "{address}"
            );
        }
    }

    #[test]
    fn pages_get_the_shell_and_missing_assets_do_not() {
        let index = serve(&Method::GET, "/", &HeaderMap::new()).unwrap();
        assert_eq!(
            index.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(serve(&Method::GET, "/bots", &HeaderMap::new()).is_some());
        assert!(serve(&Method::GET, "/login", &HeaderMap::new()).is_some());
        let script = serve(&Method::GET, "/js/app.js", &HeaderMap::new()).unwrap();
        assert!(
            script.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .contains("javascript")
        );
        assert!(serve(&Method::GET, "/js/nope.js", &HeaderMap::new()).is_none());
        assert!(serve(&Method::GET, "/css/nope.css", &HeaderMap::new()).is_none());
        // The shell, whose router shows the dashboard's not-found page, with the status saying so.
        for nowhere in ["/nope", "/bots/x", "/bots/12/more", "/js"] {
            let shell = serve(&Method::GET, nowhere, &HeaderMap::new()).unwrap();
            assert_eq!(shell.status(), StatusCode::NOT_FOUND, "{nowhere}");
            assert_eq!(
                shell.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
        }
        assert_eq!(
            serve(&Method::GET, "/bots/12", &HeaderMap::new())
                .unwrap()
                .status(),
            StatusCode::OK
        );
        assert!(serve(&Method::GET, "/api/v1/nope", &HeaderMap::new()).is_none());
        assert!(serve(&Method::POST, "/", &HeaderMap::new()).is_none());
    }

    #[test]
    fn an_unchanged_file_is_revalidated_with_its_etag_and_answered_304() {
        let first = serve(&Method::GET, "/js/app.js", &HeaderMap::new()).unwrap();
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = first.headers()[header::ETAG].clone();
        let mut asking = HeaderMap::new();
        asking.insert(header::IF_NONE_MATCH, etag.clone());
        let again = serve(&Method::GET, "/js/app.js", &asking).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag);
        asking.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"old\""));
        let changed = serve(&Method::GET, "/js/app.js", &asking).unwrap();
        assert_eq!(
            changed.status(),
            StatusCode::OK,
            "another release's tag gets the file"
        );
        let other = serve(&Method::GET, "/js/api.js", &HeaderMap::new()).unwrap();
        assert_ne!(other.headers()[header::ETAG], etag);
    }
}
