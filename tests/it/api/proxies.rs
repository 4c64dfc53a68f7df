//! Behind a reverse proxy: the client's address comes from `Forwarded`/`X-Forwarded-For` only when
//! the connection is from a proxy in `server.trusted_proxies`; sign-in throttling and the audit log
//! see each client, not the proxy, and a forged header from anyone else changes nothing.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Answer, ApiWorld, OWNER, answer, contract};
use crate::support::TestDb;

/// `POST /api/v1/auth/link` with `token`, sent as if forwarded for `client`.
async fn link_from(world: &ApiWorld, client: &str, token: &str) -> Answer {
    let path = "/api/v1/auth/link";
    let response = world
        .client
        .post(format!("{}{path}", world.base))
        .header("x-forwarded-for", client)
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("the service answers");
    let answer = answer(response).await;
    contract::check(&Method::POST, path, &answer);
    answer
}

/// Fails sign-ins as `client` until refused; how many failures were let through.
async fn failures_until_refused(world: &ApiWorld, client: &str) -> usize {
    for attempt in 0..20 {
        let answer = link_from(world, client, &format!("guess-{attempt}")).await;
        if answer.status == 429 {
            return attempt;
        }
        answer.problem(401, "unauthenticated");
    }
    panic!("{client} was never refused");
}

/// The address of the newest sign-in in the audit log.
async fn last_sign_in_address(world: &ApiWorld) -> Value {
    let audit = world
        .get("/api/v1/audit?action=session.login&limit=1")
        .await;
    audit.ok()["items"][0]["ip"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_are_told_apart_and_forged_headers_are_not_believed() {
    // The suite connects from 127.0.0.1: here that address is the reverse proxy.
    let proxied = [("NEZUKO_SERVER__TRUSTED_PROXIES", "127.0.0.1, ::1")];
    let world = ApiWorld::start_with(TestDb::sqlite().await, &proxied).await;
    assert_eq!(failures_until_refused(&world, "198.51.100.1").await, 10);
    // Another person behind the same proxy is not locked out by the first one's failures.
    let other = link_from(&world, "198.51.100.2", "a-wrong-guess").await;
    other.problem(401, "unauthenticated");
    // A client that forges an address in front of its own is counted as itself.
    let forged = link_from(&world, "198.51.100.2, 198.51.100.1", "another-guess").await;
    assert_eq!(forged.status, 429, "{:?}", forged.body);
    // The audit log records who signed in, not the proxy.
    let token = world.login_link(OWNER).await;
    assert_eq!(link_from(&world, "203.0.113.5", &token).await.status, 200);
    assert_eq!(last_sign_in_address(&world).await, "203.0.113.5");
    world.finish().await;

    // Without trusted proxies the connecting address is the client, whatever the headers say.
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let token = world.login_link(OWNER).await;
    assert_eq!(link_from(&world, "203.0.113.5", &token).await.status, 200);
    assert_eq!(last_sign_in_address(&world).await, "127.0.0.1");
    assert_eq!(failures_until_refused(&world, "198.51.100.1").await, 10);
    let elsewhere = link_from(&world, "198.51.100.2", "a-wrong-guess").await;
    assert_eq!(
        elsewhere.status, 429,
        "one address, one limit: {:?}",
        elsewhere.body
    );
    world.finish().await;
}
