//! `GET /api/v1/vocabulary`: the lists the dashboard decides with, from the enums the server
//! itself uses, so the browser never keeps its own copy to drift: event kinds (what the live
//! stream can carry), verification outcomes, bot run states and reason codes (with which park a
//! bot), the policy editor's fields and choices, and the chart names.

use serde_json::json;
use warp::http::Method;

use crate::domain::{EventKind, Outcome, ReasonCode, RunState};
use crate::enforce::policy;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/v1/vocabulary",
        Access::Admin,
        "The lists the dashboard decides with: event kinds, outcomes, run states, reason codes, policy fields, charts",
        |c| Box::pin(vocabulary(c)),
    )]
}

async fn vocabulary(_: Ctx) -> ApiResult {
    let reason_codes: Vec<_> = ReasonCode::ALL
        .iter()
        .map(|code| json!({ "code": code.as_str(), "parks": code.parks() }))
        .collect();
    respond::ok(&json!({
        "event_kinds": EventKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "outcomes": Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "run_states": RunState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "reason_codes": reason_codes,
        "policy_fields": policy::fields(),
        "charts": super::charts::CHARTS,
    }))
}
