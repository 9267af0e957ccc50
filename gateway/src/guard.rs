//! The route layer every API request passes: authenticate the caller (401),
//! record write attempts in the audit log before anything happens, apply the
//! route's rule from [`crate::rbac`] (403; a route without a rule is refused;
//! an application access key is refused outside [`crate::access_keys::ACCEPTED`]),
//! hand the caller to the handler, and complete the audit record with the
//! outcome.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kernel::caller::Caller;
use uuid::Uuid;

use crate::AppState;
use crate::access_keys::Scope as AccessKeyScope;
use crate::audit::Attempt;
use crate::problem::ApiError;
use crate::rbac::{self, Permission};

/// The guard itself; mounted with `route_layer` so the matched route is known.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    // Nested routers see the path without its prefix; the route has it.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path().to_string(), |u| u.0.path().to_string());
    let method = request.method().clone();
    // HEAD is GET without the body, as the router serves it.
    let ruled = if method == Method::HEAD { "GET" } else { method.as_str() };
    let served = rbac::methods(&route);
    if !served.is_empty() && !served.contains(&ruled) {
        return method_not_allowed(&method, &served);
    }
    let write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let authenticated = crate::auth::authenticate(&state, request.headers(), write).await;

    let audit_id = if write {
        let attempt = Attempt {
            actor: authenticated.as_ref().ok().map(|c| c.subject.clone()),
            tenant: tenant_of(&route, &path, authenticated.as_ref().ok()),
            action: format!("{method} {route}"),
            target: path_values(&route, &path),
            request_id: header_text(&request, "x-request-id"),
            source_ip: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_default(),
            user_agent: header_text(&request, header::USER_AGENT.as_str()),
        };
        match state.audit.begin(&attempt).await {
            Ok(id) => Some(id),
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else {
        None
    };

    let response = match authenticated {
        Err(e) => e.into_response(),
        Ok(caller) => match rbac::rule(ruled, &route) {
            None => {
                tracing::error!(%method, %route, "route has no access rule; refused");
                forbidden("this route has no access rule").into_response()
            }
            Some(permission) if !permission.allows(&caller) => forbidden(&refusal(permission, &caller)).into_response(),
            Some(_) if AccessKeyScope::of(&caller).is_some() && !AccessKeyScope::accepts(ruled, &route) => {
                forbidden("an application access key reads and watches configuration only").into_response()
            }
            Some(_) => {
                request.extensions_mut().insert(caller);
                next.run(request).await
            }
        },
    };
    if let Some(id) = audit_id {
        finish(&state, id, response.status().as_u16()).await;
    }
    response
}

async fn finish(state: &AppState, id: Uuid, status: u16) {
    if let Err(e) = state.audit.finish(id, &status.to_string()).await {
        // The record stays `pending`: the attempt is still on file.
        tracing::warn!(audit = %id, error = %e, "audit result not recorded");
    }
}

/// Why `caller` may not call a route guarded by `permission`: the role it
/// needs and the roles the caller has, so the refusal tells whom to ask.
fn refusal(permission: Permission, caller: &Caller) -> String {
    match permission {
        Permission::Role(needed) => {
            let held: Vec<String> = caller
                .memberships
                .iter()
                .map(|m| format!("{} in tenant {}", m.role.as_str(), m.tenant))
                .collect();
            format!(
                "this needs the {} role (or higher) in the tenant concerned; the caller is {}",
                needed.as_str(),
                if held.is_empty() {
                    "a member of no tenant".to_string()
                } else {
                    held.join(", ")
                }
            )
        }
        Permission::PlatformAdmin | Permission::Public | Permission::Authenticated => {
            "platform administrators only".to_string()
        }
    }
}

/// 405 with `Allow` listing what the path serves: a method the route does
/// not have is not a question of access.
fn method_not_allowed(method: &Method, served: &[&str]) -> Response {
    let mut allow: Vec<&str> = served.to_vec();
    if served.contains(&"GET") {
        allow.push("HEAD");
    }
    let mut response = ApiError(Box::new(kernel::error::Problem::new(
        405,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not served here; {} is", allow.join(", ")),
    )))
    .into_response();
    if let Ok(value) = header::HeaderValue::from_str(&allow.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

fn forbidden(detail: &str) -> ApiError {
    ApiError(Box::new(kernel::error::Problem::new(
        403,
        "forbidden",
        "Forbidden",
        detail,
    )))
}

fn header_text(request: &Request, name: &str) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(512)
        .collect()
}

/// `id=...,step=...` from a route template and the actual path.
fn path_values(route: &str, path: &str) -> String {
    route
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(t, v)| {
            t.strip_prefix('{')
                .and_then(|t| t.strip_suffix('}'))
                .map(|name| format!("{name}={v}"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The tenant an action concerns: from a `/tenants/{id}` path, else the
/// caller's tenant when it belongs to exactly one (API tokens always do).
fn tenant_of(route: &str, path: &str, caller: Option<&Caller>) -> Option<Uuid> {
    if route.starts_with("/api/v1/tenants/{id}") {
        return path.split('/').nth(4).and_then(|t| Uuid::parse_str(t).ok());
    }
    match caller.map(|c| c.memberships.as_slice()) {
        Some([only]) => Some(only.tenant),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_values_pair_template_names_with_values() {
        assert_eq!(
            path_values("/api/v1/requests/{id}/{step}", "/api/v1/requests/abc/approve"),
            "id=abc,step=approve"
        );
        assert_eq!(path_values("/api/v1/tenants", "/api/v1/tenants"), "");
    }

    #[test]
    fn the_tenant_comes_from_the_path_or_a_single_membership() {
        let t = Uuid::now_v7();
        assert_eq!(
            tenant_of(
                "/api/v1/tenants/{id}/projects",
                &format!("/api/v1/tenants/{t}/projects"),
                None
            ),
            Some(t)
        );
        let robot = Caller::user(
            "token:x",
            vec![kernel::caller::Membership {
                tenant: t,
                role: kernel::caller::Role::Operator,
            }],
        );
        assert_eq!(
            tenant_of("/api/v1/reservations", "/api/v1/reservations", Some(&robot)),
            Some(t)
        );
        assert_eq!(
            tenant_of(
                "/api/v1/reservations",
                "/api/v1/reservations",
                Some(&Caller::platform_admin("p"))
            ),
            None
        );
    }
}
