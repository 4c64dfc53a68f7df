//! Pages that say only what is so: the sign-in page without navigation (also after a redirect and
//! after signing out), the dashboard's own not-found page for an unknown address or a missing
//! thing, no member count the API cannot fill, and a refused policy value at its field.

use serde_json::json;

use crate::api::{ApiWorld, OWNER};
use crate::browser::chromium::Chromium;
use crate::browser::{accessible, protected_group, signed_in};
use crate::support::TestDb;

/// Whether the element `selector` takes up room on the page (is shown).
fn shown(selector: &str) -> String {
    format!("document.querySelector('{selector}').getClientRects().length > 0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_out_visitors_see_no_navigation_and_unknown_pages_are_not_found() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let chromium = Chromium::launch(&world.base).await;
    let signed_out = format!(
        "location.pathname === '/login' && document.querySelector('main h1') && !({}) && !({})",
        shown("#nav"),
        shown("#logout")
    );

    // A page asked for without a session leads to the sign-in page, which has no navigation.
    chromium.open("/bots").await;
    chromium
        .wait_for("the sign-in page, bare", &signed_out)
        .await;
    let refused = chromium.take_failed_requests().await;
    assert!(
        refused.iter().all(|r| r.starts_with("401 ")),
        "only the session check failed: {refused:?}"
    );
    chromium.open("/login").await;
    chromium
        .wait_for("the sign-in page, bare", &signed_out)
        .await;

    chromium.open("/healthz").await;
    let token = world.login_link(OWNER).await;
    chromium.open(&format!("/login#token={token}")).await;
    chromium.wait_signed_in().await;
    assert!(
        chromium.text(&format!("String({})", shown("#nav"))).await == "true",
        "signed in, the navigation shows"
    );

    // Addresses no page has, and pages of something that does not exist.
    for (path, says) in [
        ("/no-such-page", "There is no page here."),
        ("/bots/999999", "does not exist."),
    ] {
        chromium.open(path).await;
        chromium
            .wait_for(
                &format!("{path} not found"),
                &format!("document.querySelector('main h1[data-not-found]') && document.querySelector('main').innerText.includes({says:?}) && document.querySelector('main a[href=\"/\"]')"),
            )
            .await;
        let failed = chromium.take_failed_requests().await;
        assert!(
            failed.len() == 1 && failed[0].starts_with("404 "),
            "{path}: {failed:?}"
        );
    }
    chromium.screenshot("truth-not-found").await;
    accessible(&chromium, "not found").await;
    // To the server, an unknown page is the dashboard's shell with a 404; a missing file a plain 404.
    let client = reqwest::Client::new();
    for (path, kind) in [
        ("/no-such-page", "text/html"),
        ("/js/no-such-file.js", "application/problem+json"),
    ] {
        let response = client
            .get(format!("{}{path}", world.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }

    // Signing out leaves the bare sign-in page.
    chromium.click("#logout").await;
    chromium.wait_for("signed out, bare", &signed_out).await;
    chromium.finish().await;
    world.finish().await;
}

/// Whether the policy form `form` (a selector) shows `says` at the field of `key`: the control
/// marked invalid, described by the message and focused, and nothing above the button.
fn refused_at(form: &str, key: &str, says: &str) -> String {
    format!(
        "document.querySelector('#policy-{key}-error')?.innerText.includes({says:?}) \
         && document.querySelector('#policy-{key}').getAttribute('aria-invalid') === 'true' \
         && document.querySelector('#policy-{key}').getAttribute('aria-describedby') === 'policy-{key}-error' \
         && document.activeElement === document.querySelector('#policy-{key}') \
         && document.querySelector('{form} > p.error').innerText === ''"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_policy_value_is_shown_at_its_field_and_groups_show_no_member_count() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let guarded = protected_group(&world, "field_bot", "Field Notes", "fieldnews").await;
    let chromium = signed_in(&world).await;

    // No member count: nothing fills it in, so the list neither shows nor sorts by it.
    chromium.click("nav a[href='/groups']").await;
    chromium
        .wait_for("the groups", "document.querySelector('tr[data-group]')")
        .await;
    let headings = chromium
        .text("[...document.querySelectorAll('table[aria-label=\"Groups\"] th')].map((th) => th.innerText).join(',')")
        .await;
    assert_eq!(headings, "Group,Bot,Enforcement,Health,Added");
    let sorts = chromium
        .text("[...document.querySelectorAll('#group-sort option')].map((o) => o.value).join(',')")
        .await;
    assert!(!sorts.contains("member_count"), "{sorts}");

    chromium
        .open(&format!("/groups/{}", guarded.group_id))
        .await;
    let form = "form[aria-label=\"Policy\"]";
    chromium
        .wait_for(
            "the policy form",
            &format!("document.querySelector('{form}')"),
        )
        .await;

    // A list that is not numbers is refused at its field before anything is sent.
    chromium.fill("#policy-allowlist", "12, twelve").await;
    chromium.submit("Policy").await;
    chromium
        .wait_for(
            "refused at the allowlist",
            &refused_at(form, "allowlist", "Numbers only"),
        )
        .await;
    accessible(&chromium, "a refused policy value").await;
    chromium.fill("#policy-allowlist", "12").await;

    // A value the server refuses: its problem names the key (`field`), and the message is shown there.
    chromium.fill("#policy-mute_for_s", "10").await;
    chromium.submit("Policy").await;
    chromium
        .wait_for(
            "refused at its field",
            &refused_at(form, "mute_for_s", "at least 30"),
        )
        .await;
    let refused = chromium.take_failed_requests().await;
    assert!(
        refused.len() == 1 && refused[0].starts_with("422 "),
        "{refused:?}"
    );

    // Corrected, it is saved and the marks go.
    chromium.fill("#policy-mute_for_s", "60").await;
    chromium.submit("Policy").await;
    chromium.toast_says("Policy saved").await;
    chromium
        .wait_for("no marks left", &format!("!document.querySelector('{form} [aria-invalid]') && !document.querySelector('{form} [data-refused]')"))
        .await;
    let group = world
        .get(&format!("/api/v1/groups/{}", guarded.group_id))
        .await;
    assert_eq!(
        group.ok()["policy"]["overrides"],
        json!({ "mute_for_s": 60, "allowlist": [12] })
    );

    // The same editor on the settings page, for the global defaults.
    chromium.click("nav a[href='/settings']").await;
    let defaults = "form[aria-label=\"Policy defaults\"]";
    chromium
        .wait_for(
            "the defaults",
            &format!("document.querySelector('{defaults}')"),
        )
        .await;
    chromium.fill("#policy-mute_for_s", "5").await;
    chromium.submit("Policy defaults").await;
    chromium
        .wait_for(
            "refused at its field",
            &refused_at(defaults, "mute_for_s", "at least 30"),
        )
        .await;
    let refused = chromium.take_failed_requests().await;
    assert!(
        refused.len() == 1 && refused[0].starts_with("422 "),
        "{refused:?}"
    );
    chromium.finish().await;
    world.finish().await;
}
