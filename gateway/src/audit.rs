//! The audit log: every write through the API (and, with the identity work,
//! every login attempt), with actor, tenant, action, target, request id,
//! source IP, user agent, result and time. A record is stored before the
//! request is forwarded and completed with its result after, so none is lost;
//! one left `pending` marks a request the gateway did not see finish.
//! Platform administrators read all of it; tenant administrators their
//! tenants'. Exported as JSON or CSV.

use chrono::{DateTime, Utc};
use kernel::caller::{Caller, Role};
use kernel::{Error, Result, id};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Record {
    /// Its id.
    pub id: Uuid,
    /// When it began.
    pub at: DateTime<Utc>,
    /// Who (subject), or `anonymous`.
    pub actor: String,
    /// The tenant concerned, when known.
    pub tenant_id: Option<Uuid>,
    /// Method and route.
    pub action: String,
    /// Ids from the path.
    pub target: String,
    /// The request id.
    pub request_id: String,
    /// Where it came from.
    pub source_ip: String,
    /// The client.
    pub user_agent: String,
    /// `pending` or the HTTP status.
    pub result: String,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// What is known of an attempt when it begins.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    /// Who, if authenticated.
    pub actor: Option<String>,
    /// The tenant concerned.
    pub tenant: Option<Uuid>,
    /// Method and route.
    pub action: String,
    /// Ids from the path.
    pub target: String,
    /// The request id.
    pub request_id: String,
    /// Source address.
    pub source_ip: String,
    /// User agent.
    pub user_agent: String,
}

/// Filters for reading the log.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this tenant.
    pub tenant: Option<Uuid>,
    /// Actions starting with this text (`POST`, `DELETE /api/v1/tenants`).
    pub action_prefix: Option<String>,
    /// From.
    pub since: Option<DateTime<Utc>>,
    /// To.
    pub until: Option<DateTime<Utc>>,
}

/// The most records one read returns.
pub const MAX_ROWS: i64 = 10_000;

/// The audit log in the gateway's schema.
#[derive(Clone)]
pub struct AuditLog {
    pool: PgPool,
}

impl AuditLog {
    /// The log stored in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Records an attempt as pending; returns its id.
    ///
    /// # Errors
    /// The database fails: the request must then not go ahead unaudited.
    pub async fn begin(&self, a: &Attempt) -> Result<Uuid> {
        let id = id::new_id();
        // Whatever a client sent must be storable (PostgreSQL text takes no
        // NUL) and readable: control characters become U+FFFD.
        let clean = |s: &str| -> String { s.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect() };
        sqlx::query!(
            "INSERT INTO audit (id, actor, tenant_id, action, target, request_id, source_ip, user_agent, result)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')",
            id,
            clean(a.actor.as_deref().unwrap_or("anonymous")),
            a.tenant,
            clean(&a.action),
            clean(&a.target),
            clean(&a.request_id),
            clean(&a.source_ip),
            clean(&a.user_agent),
        )
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Completes an attempt with its result.
    ///
    /// # Errors
    /// The database fails (the record stays `pending`).
    pub async fn finish(&self, id: Uuid, result: &str) -> Result<()> {
        sqlx::query!(
            "UPDATE audit SET result = $2, finished_at = now() WHERE id = $1",
            id,
            result
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the caller may read, newest first.
    ///
    /// # Errors
    /// The caller administers no tenant and is not a platform administrator.
    pub async fn read(&self, caller: &Caller, filter: &Filter) -> Result<Vec<Record>> {
        let administered: Option<Vec<Uuid>> = if caller.platform_admin {
            None
        } else {
            let tenants: Vec<Uuid> = caller
                .memberships
                .iter()
                .filter(|m| m.role == Role::TenantAdmin)
                .map(|m| m.tenant)
                .collect();
            if tenants.is_empty() {
                return Err(Error::PermissionDenied(
                    "the audit log is for platform and tenant administrators".into(),
                ));
            }
            Some(tenants)
        };
        Ok(sqlx::query_as!(
            Record,
            "SELECT id, at, actor, tenant_id, action, target, request_id, source_ip, user_agent, result, finished_at
             FROM audit
             WHERE ($1::uuid[] IS NULL OR tenant_id = ANY($1)) AND ($2::text IS NULL OR actor = $2)
               AND ($3::uuid IS NULL OR tenant_id = $3) AND ($4::text IS NULL OR starts_with(action, $4))
               AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at <= $6)
             ORDER BY at DESC LIMIT $7",
            administered.as_deref(),
            filter.actor,
            filter.tenant,
            filter.action_prefix,
            filter.since,
            filter.until,
            MAX_ROWS,
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Records as CSV (RFC 4180 quoting), with a header row.
pub fn to_csv(records: &[Record]) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut out =
        String::from("id,at,actor,tenant_id,action,target,request_id,source_ip,user_agent,result,finished_at\n");
    for r in records {
        let cells = [
            r.id.to_string(),
            r.at.to_rfc3339(),
            r.actor.clone(),
            r.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
            r.action.clone(),
            r.target.clone(),
            r.request_id.clone(),
            r.source_ip.clone(),
            r.user_agent.clone(),
            r.result.clone(),
            r.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ];
        out.push_str(&cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let r = Record {
            id: Uuid::nil(),
            at: DateTime::from_timestamp(0, 0).unwrap(),
            actor: "ldap:o\"brien".into(),
            tenant_id: None,
            action: "POST /api/v1/tenants".into(),
            target: "a,b".into(),
            request_id: String::new(),
            source_ip: "127.0.0.1".into(),
            user_agent: "curl/8".into(),
            result: "201".into(),
            finished_at: None,
        };
        let csv = to_csv(&[r]);
        let line = csv.lines().nth(1).unwrap();
        assert!(line.contains("\"ldap:o\"\"brien\""), "{line}");
        assert!(line.contains("\"a,b\""), "{line}");
        assert_eq!(csv.lines().next().unwrap().split(',').count(), 11);
    }
}

/// `GET /api/v1/audit`: filters `actor`, `tenant_id`, `action` (prefix),
/// `since`, `until`; `format=csv` for a CSV export.
pub mod routes {
    use axum::Json;
    use axum::extract::State;
    use axum::http::header;
    use axum::response::{IntoResponse, Response};
    use chrono::{DateTime, Utc};
    use kernel::caller::Role;
    use serde::Deserialize;
    use utoipa_axum::routes;

    use super::{Filter, to_csv};
    use crate::AppState;
    use crate::auth::Authenticated;
    use crate::problem::{ApiError, Problems};
    use crate::rbac::Permission;
    use crate::request::Query;
    use crate::route::Routes;

    /// The routes, each with who may call it.
    pub fn routes() -> Routes {
        Routes::new().route(Permission::Role(Role::TenantAdmin), routes!(read))
    }

    /// Query of `GET /audit`.
    #[derive(Debug, Deserialize, utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct AuditQuery {
        actor: Option<String>,
        /// Only this tenant's; empty: every tenant the caller sees.
        tenant_id: Option<String>,
        action: Option<String>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        #[param(inline)]
        format: Option<Format>,
    }

    /// How the records are answered.
    #[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Format {
        /// A JSON array (the default).
        Json,
        /// A CSV file, one record a line, for a spreadsheet.
        Csv,
    }

    #[utoipa::path(
        get,
        path = "/api/v1/audit",
        tag = "audit",
        params(AuditQuery),
        responses(
            (status = 200, description = "the records: JSON, or CSV with `format=csv`", content(
                (Vec<super::Record> = "application/json"),
                (String = "text/csv", example = "id,at,actor,tenant_id,action,target,request_id,source_ip,user_agent,result,finished_at"),
            )),
            Problems,
        ),
        security(("bearer" = [])))]
    pub(crate) async fn read(
        State(s): State<AppState>,
        Authenticated(caller): Authenticated,
        Query(q): Query<AuditQuery>,
    ) -> Result<Response, ApiError> {
        let filter = Filter {
            actor: q.actor,
            tenant: kernel::id::parse_optional_id("tenant_id", q.tenant_id.as_deref().unwrap_or_default())?,
            action_prefix: q.action,
            since: q.since,
            until: q.until,
        };
        let records = s.audit.read(&caller, &filter).await?;
        Ok(match q.format.unwrap_or(Format::Json) {
            Format::Csv => (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (header::CONTENT_DISPOSITION, "attachment; filename=\"audit.csv\""),
                ],
                to_csv(&records),
            )
                .into_response(),
            Format::Json => Json(records).into_response(),
        })
    }
}
