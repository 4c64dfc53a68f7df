//! The audit trail: every admin mutation is recorded (who, what, target, before, after, time,
//! address) and published as an `audit` event; `GET /api/v1/audit` lists it with filters and
//! `GET /api/v1/audit.csv` exports the same selection.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warp::Reply;
use warp::http::{HeaderValue, Method, StatusCode, header};

use crate::db::{AuditEntry, AuditFilter, NewAuditEntry};
use crate::http::input;
use crate::http::respond::{self, ApiResult, CursorPage};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/audit",
            Access::Admin,
            "Audit entries, newest first",
            |c| Box::pin(list(c)),
        )
        .query::<AuditQuery>()
        .returns::<CursorPage<AuditView>>(StatusCode::OK),
        Route::new(
            Method::GET,
            "/api/v1/audit.csv",
            Access::Admin,
            "The same selection as CSV",
            |c| Box::pin(csv(c)),
        )
        .query::<AuditQuery>()
        .returns_text(StatusCode::OK, "text/csv"),
    ]
}

/// Records one mutation by the caller and publishes it. A failure to record is logged, not
/// returned: the change itself already happened and the caller must learn that it did.
pub async fn record(
    ctx: &Ctx,
    action: &str,
    target_type: crate::domain::AuditTarget,
    target_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
) {
    let (actor_id, actor_name) = match &ctx.admin {
        Some(admin) => (Some(admin.telegram_user_id), admin.name.clone()),
        None => (None, "anonymous".to_string()),
    };
    let entry = NewAuditEntry {
        actor_id,
        actor_name,
        action: action.to_string(),
        target_type: target_type.as_str().to_string(),
        target_id,
        before,
        after,
        ip: ctx.client_ip(),
    };
    match ctx.state.store.append_audit(&entry).await {
        Ok(row) => ctx.state.fleet.publisher().publish(
            crate::domain::EventKind::Audit,
            None,
            serde_json::to_value(view(&row)).unwrap_or_default(),
        ),
        Err(error) => tracing::error!(%error, action, "could not record an audit entry"),
    }
}

/// Which entries (CSV: up to 100,000, default 10,000).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Telegram id of the admin, or `cli` for what the command line did.
    #[schemars(regex(pattern = r"^(cli|[0-9]+)$"))]
    actor: Option<String>,
    /// e.g. `bot.stop`, `group.policy`.
    action: Option<String>,
    /// What the entries are about.
    #[schemars(with = "Option<crate::domain::AuditTarget>")]
    target_type: Option<String>,
    /// Epoch ms, inclusive.
    from: Option<i64>,
    /// Epoch ms, exclusive.
    to: Option<i64>,
    /// Cursor: entries with a smaller id.
    before: Option<i64>,
    /// 1..=500, default 100 (`audit.csv`: 1..=100,000, default 10,000).
    limit: Option<i64>,
}

fn filter(
    ctx: &Ctx,
    default: i64,
    max: i64,
) -> Result<AuditFilter, crate::http::problem::ApiError> {
    let query: AuditQuery = ctx.query()?;
    if let Some(target) = query.target_type.as_deref().filter(|t| !t.is_empty())
        && crate::domain::AuditTarget::parse(target).is_none()
    {
        let known: Vec<&str> = crate::domain::AuditTarget::ALL
            .iter()
            .map(|t| t.as_str())
            .collect();
        return Err(crate::http::problem::ApiError::invalid(
            "target_type",
            format!(
                "`{target}` is not an audit target; known: {}",
                known.join(", ")
            ),
        ));
    }
    let (actor_id, actor_name) = match query.actor.as_deref().map(str::trim) {
        None | Some("") => (None, None),
        Some(crate::domain::CLI_ACTOR) => (None, Some(crate::domain::CLI_ACTOR.to_string())),
        Some(id) => match id.parse::<i64>() {
            Ok(id) if id > 0 => (Some(id), None),
            _ => {
                return Err(crate::http::problem::ApiError::invalid(
                    "actor",
                    format!("`{id}` is neither a Telegram user id nor `cli`"),
                ));
            }
        },
    };
    Ok(AuditFilter {
        actor_id,
        actor_name,
        action: query.action.filter(|a| !a.is_empty()),
        target_type: query.target_type.filter(|t| !t.is_empty()),
        from: query.from,
        to: query.to,
        before_id: query.before,
        limit: input::limit(query.limit, default, max)?,
    })
}

async fn list(ctx: Ctx) -> ApiResult {
    let filter = filter(&ctx, 100, 500)?;
    let rows = ctx.state.store.query_audit(&filter).await?;
    let items: Vec<AuditView> = rows.iter().map(view).collect();
    respond::cursor_page(items, filter.limit, rows.last().map(|r| r.id))
}

async fn csv(ctx: Ctx) -> ApiResult {
    let filter = filter(&ctx, 10_000, 100_000)?;
    let rows = ctx.state.store.query_audit(&filter).await?;
    let mut text = String::from(
        "id,created_at,actor_id,actor_name,action,target_type,target_id,ip,before,after\n",
    );
    for row in &rows {
        let fields = [
            row.id.to_string(),
            row.created_at.to_string(),
            row.actor_id.map(|a| a.to_string()).unwrap_or_default(),
            row.actor_name.clone(),
            row.action.clone(),
            row.target_type.clone(),
            row.target_id.clone().unwrap_or_default(),
            row.ip.clone().unwrap_or_default(),
            row.before
                .as_ref()
                .map(|v| v.0.to_string())
                .unwrap_or_default(),
            row.after
                .as_ref()
                .map(|v| v.0.to_string())
                .unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        text.push_str(&line.join(","));
        text.push('\n');
    }
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"nezuko-audit.csv\""),
    );
    Ok(response)
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'` so spreadsheets do not
/// run an admin-controlled value as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// One audit entry.
#[derive(Serialize, JsonSchema)]
pub struct AuditView {
    id: i64,
    /// Telegram id of who did it; null for no one signed in (a failed sign-in, …).
    actor_id: Option<i64>,
    actor_name: String,
    action: String,
    target_type: String,
    target_id: Option<String>,
    /// The target before the change, as the API showed it.
    before: Option<Value>,
    /// The target after the change.
    after: Option<Value>,
    /// The client's address.
    ip: Option<String>,
    /// Epoch ms.
    created_at: i64,
}

fn view(row: &AuditEntry) -> AuditView {
    AuditView {
        id: row.id,
        actor_id: row.actor_id,
        actor_name: row.actor_name.clone(),
        action: row.action.clone(),
        target_type: row.target_type.clone(),
        target_id: row.target_id.clone(),
        before: row.before.as_ref().map(|v| v.0.clone()),
        after: row.after.as_ref().map(|v| v.0.clone()),
        ip: row.ip.clone(),
        created_at: row.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-5"), "-5");
    }
}
