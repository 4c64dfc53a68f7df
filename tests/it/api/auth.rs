//! Sign-in and access control: every protected route refuses a missing session (401), a user who is
//! not allowed (403) and a missing CSRF token (403); the widget check, login links, logout, throttling.

use nezuko::http::Access;
use nezuko::http::auth::widget;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{ApiWorld, OWNER, api_tests, session_of};

api_tests!(
    every_protected_route_needs_a_session_and_csrf,
    users_who_are_not_allowed_get_403,
    the_widget_accepts_signed_fresh_data_of_allowed_users_only,
    a_login_link_works_once_and_logout_ends_the_session,
    sign_in_attempts_are_rate_limited,
    admins_are_managed_by_the_owner_only,
);

/// A concrete path for a route template (ids that exist or not do not matter before auth).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| if part.starts_with('{') { "1" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

async fn every_protected_route_needs_a_session_and_csrf(world: &mut ApiWorld) {
    // A session whose user is no longer allowed in (the admin row removed behind its back).
    world
        .post(
            "/api/v1/admins",
            json!({ "telegram_user_id": 779, "display_name": "Gone" }),
        )
        .await
        .ok();
    let gone = world.sign_in(779).await;
    sqlx_delete_admin(world, 779).await;
    let router = nezuko::http::router();
    let mut checked = 0;
    for route in router.routes() {
        let path = concrete(route.path);
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let anonymous = world.anon(method.clone(), &path, None).await;
        assert!(
            anonymous.headers.contains_key("x-request-id"),
            "{} {path}",
            route.method
        );
        if route.access == Access::Public {
            assert_ne!(anonymous.status, 401, "{} {path} is public", route.method);
            continue;
        }
        if route.access == Access::SecretToken {
            // A session opens nothing here; only the bot's webhook secret does.
            anonymous.problem(401, "unauthenticated");
            world
                .send(method.clone(), &path, None, Some(&gone), true)
                .await
                .problem(401, "unauthenticated");
            continue;
        }
        anonymous.problem(401, "unauthenticated");
        world
            .send(method.clone(), &path, None, Some(&gone), true)
            .await
            .problem(403, "not_admin");
        let safe = matches!(route.method.as_str(), "GET" | "HEAD");
        if !safe {
            let without_csrf = world
                .send(method, &path, Some(json!({})), Some(&world.session), false)
                .await;
            without_csrf.problem(403, "csrf");
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} protected routes");

    // The OpenAPI document lists exactly the routes of the table.
    let document = world.get("/api/v1/openapi.json").await;
    let paths = document.ok()["paths"].as_object().unwrap();
    let documented: usize = paths
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, router.routes().len());
    for route in router.routes() {
        let operation = &paths[route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(
            operation["summary"].is_string(),
            "{} {} is documented",
            route.method,
            route.path
        );
    }
    assert_eq!(document.body["openapi"], "3.1.0");

    // Routes that do not exist and wrong methods are problems too.
    world
        .get("/api/v1/nothing-here")
        .await
        .problem(404, "no_route");
    world
        .call(Method::DELETE, "/api/v1/stats", None)
        .await
        .problem(405, "method_not_allowed");
    let given = world
        .client
        .get(format!("{}/healthz", world.base))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-123");
}

async fn users_who_are_not_allowed_get_403(world: &mut ApiWorld) {
    // A link for a stranger: the link is valid, the person is not allowed in.
    let token = world.login_link(555).await;
    world
        .anon(
            Method::POST,
            "/api/v1/auth/link",
            Some(json!({ "token": token })),
        )
        .await
        .problem(403, "not_admin");
    // An admin whose access is withdrawn loses their sessions at once.
    world
        .post(
            "/api/v1/admins",
            json!({ "telegram_user_id": 777, "display_name": "Mia" }),
        )
        .await
        .ok();
    let mia = world.sign_in(777).await;
    let me = world
        .send(Method::GET, "/api/v1/auth/me", None, Some(&mia), true)
        .await;
    assert_eq!(me.ok()["name"], "Mia");
    assert_eq!(me.body["is_owner"], false);
    world
        .call(Method::DELETE, "/api/v1/admins/777", None)
        .await
        .ok();
    world
        .send(Method::GET, "/api/v1/bots", None, Some(&mia), true)
        .await
        .problem(401, "unauthenticated");
    // A session that outlives its user's access (removed by another process, say) is refused with 403.
    world
        .post(
            "/api/v1/admins",
            json!({ "telegram_user_id": 778, "display_name": "Noa" }),
        )
        .await
        .ok();
    let noa = world.sign_in(778).await;
    sqlx_delete_admin(world, 778).await;
    world
        .send(Method::GET, "/api/v1/bots", None, Some(&noa), true)
        .await
        .problem(403, "not_admin");
}

/// Removes an admin row without touching sessions (what a manual edit of the table would do).
async fn sqlx_delete_admin(world: &ApiWorld, user: i64) {
    world.db.store.remove_admin_row_only(user).await.unwrap();
}

fn widget_fields(id: i64, auth_date: i64, token: &str) -> Map<String, Value> {
    let mut fields =
        json!({ "id": id, "first_name": "Olga", "username": "olga", "auth_date": auth_date })
            .as_object()
            .unwrap()
            .clone();
    let hash = widget::sign(&fields, token);
    fields.insert("hash".into(), hash.into());
    fields
}

async fn the_widget_accepts_signed_fresh_data_of_allowed_users_only(world: &mut ApiWorld) {
    let config = world.anon(Method::GET, "/api/v1/auth/config", None).await;
    assert_eq!(config.ok()["login_link"], true);
    let login_bot: i64 = world
        .login_token
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(config.body["widget"]["bot_id"], login_bot);
    let now = nezuko::db::now_ms() / 1000;
    let fields = widget_fields(OWNER, now, &world.login_token);
    let signed = world
        .anon(
            Method::POST,
            "/api/v1/auth/telegram",
            Some(Value::Object(fields.clone())),
        )
        .await;
    assert_eq!(signed.ok()["telegram_user_id"], OWNER);
    let cookie = signed.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http locally: {cookie}");
    let session = session_of(&signed);
    world
        .send(Method::GET, "/api/v1/auth/me", None, Some(&session), false)
        .await
        .ok();

    let mut tampered = fields.clone();
    tampered.insert("first_name".into(), "Mallory".into());
    world
        .anon(
            Method::POST,
            "/api/v1/auth/telegram",
            Some(Value::Object(tampered)),
        )
        .await
        .problem(401, "unauthenticated");
    let stale = widget_fields(OWNER, now - 2 * 86_400, &world.login_token);
    let answer = world
        .anon(
            Method::POST,
            "/api/v1/auth/telegram",
            Some(Value::Object(stale)),
        )
        .await;
    answer.problem(401, "unauthenticated");
    assert!(
        answer.body["detail"].as_str().unwrap().contains("old"),
        "{:?}",
        answer.body
    );
    let other_bot = widget_fields(OWNER, now, "42:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    world
        .anon(
            Method::POST,
            "/api/v1/auth/telegram",
            Some(Value::Object(other_bot)),
        )
        .await
        .problem(401, "unauthenticated");
    let stranger = widget_fields(4242, now, &world.login_token);
    world
        .anon(
            Method::POST,
            "/api/v1/auth/telegram",
            Some(Value::Object(stranger)),
        )
        .await
        .problem(403, "not_admin");
}

async fn a_login_link_works_once_and_logout_ends_the_session(world: &mut ApiWorld) {
    let token = world.login_link(OWNER).await;
    let first = world
        .anon(
            Method::POST,
            "/api/v1/auth/link",
            Some(json!({ "token": token })),
        )
        .await;
    first.ok();
    world
        .anon(
            Method::POST,
            "/api/v1/auth/link",
            Some(json!({ "token": token })),
        )
        .await
        .problem(401, "unauthenticated");
    world
        .anon(
            Method::POST,
            "/api/v1/auth/link",
            Some(json!({ "token": "made-up" })),
        )
        .await
        .problem(401, "unauthenticated");
    let session = session_of(&first);
    let out = world
        .send(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(&session),
            true,
        )
        .await;
    assert_eq!(out.status, 204);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    world
        .send(Method::GET, "/api/v1/auth/me", None, Some(&session), false)
        .await
        .problem(401, "unauthenticated");
    // The world's own session is untouched, and both sign-ins are audited.
    let audit = world.get("/api/v1/audit?action=session.login").await;
    assert!(audit.ok()["items"].as_array().unwrap().len() >= 2);
}

async fn sign_in_attempts_are_rate_limited(world: &mut ApiWorld) {
    // Successful sign-ins never count: more than the limit of them in a row all succeed.
    for _ in 0..12 {
        world.sign_in(OWNER).await;
    }
    let mut limited = None;
    for attempt in 0..12 {
        let answer = world
            .anon(
                Method::POST,
                "/api/v1/auth/link",
                Some(json!({ "token": format!("guess-{attempt}") })),
            )
            .await;
        if answer.status == 429 {
            assert_eq!(
                attempt, 10,
                "ten failures are allowed, the eleventh try is not"
            );
            limited = Some(answer);
            break;
        }
        answer.problem(401, "unauthenticated");
    }
    let limited = limited.expect("the eleventh attempt after ten failures is refused");
    limited.problem(429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
}

async fn admins_are_managed_by_the_owner_only(world: &mut ApiWorld) {
    let added = world
        .post(
            "/api/v1/admins",
            json!({ "telegram_user_id": 900, "display_name": "Ivo", "username": "@ivo" }),
        )
        .await;
    assert_eq!(added.status, 201);
    assert_eq!(added.body["username"], "ivo");
    world
        .post(
            "/api/v1/admins",
            json!({ "telegram_user_id": 900, "display_name": "Ivo" }),
        )
        .await
        .problem(409, "conflict");
    world
        .post(
            "/api/v1/admins",
            json!({ "telegram_user_id": -3, "display_name": "X" }),
        )
        .await
        .problem(422, "invalid_field");
    let ivo = world.sign_in(900).await;
    world
        .send(
            Method::POST,
            "/api/v1/admins",
            Some(json!({ "telegram_user_id": 901, "display_name": "Eve" })),
            Some(&ivo),
            true,
        )
        .await
        .problem(403, "owner_only");
    let list = world
        .send(Method::GET, "/api/v1/admins", None, Some(&ivo), false)
        .await;
    assert_eq!(list.ok()["owner"], OWNER);
    assert_eq!(list.body["items"][0]["telegram_user_id"], 900);
    world.call(Method::DELETE, "/api/v1/admins/900", None).await;
    world
        .call(Method::DELETE, "/api/v1/admins/900", None)
        .await
        .problem(404, "not_found");
}
