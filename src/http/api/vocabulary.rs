//! `GET /api/v1/vocabulary`: the lists the dashboard decides with, from the enums the server
//! itself uses, so the browser never keeps its own copy to drift: event kinds (what the live
//! stream can carry), verification outcomes, bot run states and reason codes (with which park a
//! bot), the policy editor's fields and choices, and the chart names.

use schemars::JsonSchema;
use serde::Serialize;
use warp::http::{Method, StatusCode};

use crate::domain::{AuditTarget, EventKind, Outcome, ReasonCode, RunState};
use crate::enforce::policy;
use crate::http::api::charts::{ChartName, Period};
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};
use crate::http::static_files::{PAGES, Page};

pub fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/v1/vocabulary",
        Access::Admin,
        "The lists the dashboard decides with: event kinds, outcomes, run states, reason codes, policy fields, charts",
        |c| Box::pin(vocabulary(c)),
    )
    .returns::<Vocabulary>(StatusCode::OK)]
}

/// The lists the dashboard decides with.
#[derive(Serialize, JsonSchema)]
struct Vocabulary {
    event_kinds: &'static [EventKind],
    outcomes: &'static [Outcome],
    run_states: [RunState; 6],
    reason_codes: Vec<Reason>,
    /// The policy editor's keys, in its order, with how each is edited.
    policy_fields: Vec<policy::Field>,
    #[schemars(with = "Vec<ChartName>")]
    charts: [&'static str; 13],
    /// The periods a chart covers, with their buckets.
    periods: Vec<PeriodBuckets>,
    /// What audit entries are about (`target_type`).
    audit_targets: &'static [AuditTarget],
    /// The dashboard's pages: its router's table.
    pages: [Page; 12],
}

/// A chart period and how the API buckets it.
#[derive(Serialize, JsonSchema)]
struct PeriodBuckets {
    period: Period,
    /// Width of one bucket, ms.
    bucket_ms: i64,
    /// Buckets in the period.
    buckets: i64,
}

/// A reason code and whether a bot with it is parked (kept stopped until someone starts it).
#[derive(Serialize, JsonSchema)]
struct Reason {
    code: ReasonCode,
    parks: bool,
}

async fn vocabulary(_: Ctx) -> ApiResult {
    respond::ok(&Vocabulary {
        event_kinds: EventKind::ALL,
        outcomes: Outcome::ALL,
        run_states: RunState::ALL,
        reason_codes: ReasonCode::ALL
            .iter()
            .map(|&code| Reason {
                code,
                parks: code.parks(),
            })
            .collect(),
        policy_fields: policy::fields(),
        charts: super::charts::CHARTS,
        periods: Period::ALL
            .iter()
            .map(|&period| PeriodBuckets {
                period,
                bucket_ms: period.bucket_ms(),
                buckets: period.span_ms() / period.bucket_ms(),
            })
            .collect(),
        audit_targets: AuditTarget::ALL,
        pages: PAGES,
    })
}
