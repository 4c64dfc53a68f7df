//! The dashboard's files (`ui/`), compiled into the binary and served at `/`. A dashboard page
//! (`/bots`, `/login`) gets `index.html`, which routes in the browser; anything else that names no
//! file (`/js/nope.js`, `/nope`) stays a 404, and `/api/…` never falls through to here.

use rust_embed::Embed;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

#[derive(Embed)]
#[folder = "ui/"]
struct Ui;

/// The file for `path`, or `None` to let the API's 404/405 answer stand.
pub fn serve(method: &Method, path: &str) -> Option<Response> {
    if !(method == Method::GET || method == Method::HEAD) || path.starts_with("/api/") {
        return None;
    }
    let name = path.trim_start_matches('/');
    let (file, name) = match Ui::get(name) {
        Some(file) if !name.is_empty() => (file, name),
        _ if looks_like_a_page(name) => (Ui::get("index.html")?, "index.html"),
        _ => return None,
    };
    let mut response = Response::new(if method == Method::HEAD {
        Vec::new().into()
    } else {
        file.data.into_owned().into()
    });
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    let mime = file.metadata.mimetype();
    if let Ok(value) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    // The page itself is always revalidated (it names the current scripts); assets for an hour.
    let cache = if name == "index.html" {
        "no-cache"
    } else {
        "public, max-age=3600"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::router::CONTENT_SECURITY_POLICY),
    );
    Some(response)
}

/// The dashboard's pages (the browser routes within them); anything else stays a 404.
const PAGES: [&str; 9] = [
    "",
    "login",
    "bots",
    "groups",
    "channels",
    "analytics",
    "logs",
    "audit",
    "settings",
];

/// `bots`, `login`, and `bots/12`-style detail paths of a known page.
fn looks_like_a_page(name: &str) -> bool {
    let first = name.split('/').next().unwrap_or("");
    PAGES.contains(&first) && !name.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_get_the_shell_and_missing_assets_do_not() {
        let index = serve(&Method::GET, "/").unwrap();
        assert_eq!(index.headers()[header::CONTENT_TYPE], "text/html");
        assert!(serve(&Method::GET, "/bots").is_some());
        assert!(serve(&Method::GET, "/login").is_some());
        let script = serve(&Method::GET, "/js/app.js").unwrap();
        assert!(
            script.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .contains("javascript")
        );
        assert!(serve(&Method::GET, "/js/nope.js").is_none());
        assert!(serve(&Method::GET, "/nope").is_none());
        assert!(serve(&Method::GET, "/api/v1/nope").is_none());
        assert!(serve(&Method::POST, "/").is_none());
    }

    /// Every address the browser router knows (`ui/js/app.js`) is served the shell, so a reload or
    /// a shared link of any page works.
    #[test]
    fn every_page_of_the_browser_router_is_served() {
        let router = Ui::get("js/app.js").unwrap();
        let source = std::str::from_utf8(&router.data).unwrap();
        let table = source.split("const pages = [").nth(1).unwrap();
        let table = table.split("];").next().unwrap();
        let paths: Vec<String> = table
            .split("[\"")
            .skip(1)
            .map(|entry| entry.split('"').next().unwrap().replace(":id", "7"))
            .collect();
        assert!(paths.len() >= 11, "{paths:?}");
        for path in paths {
            assert!(serve(&Method::GET, &path).is_some(), "{path} is served");
        }
    }
}
