//! The API's routes, each declared once. A module lists its handlers as
//! `.route(permission, routes!(handler))`: the handler's `#[utoipa::path]`
//! gives the method, the path and the OpenAPI operation, and `permission` is
//! what [`crate::guard`] asks of its callers. The router, the served document
//! ([`crate::openapi`]) and the access rules ([`crate::rbac`]) are all read
//! from these declarations, so none of them can list a route the others lack.

use axum::Router;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::PathItem;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::AppState;
use crate::rbac::Permission;

/// One route's access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The path template, spelt as the router and the document spell it.
    pub path: String,
    /// What the caller needs.
    pub permission: Permission,
}

/// Routes with their documentation and access rules.
#[derive(Default)]
pub struct Routes {
    guarded: OpenApiRouter<AppState>,
    public: OpenApiRouter<AppState>,
    rules: Vec<Rule>,
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler, given as `routes!(handler)`, that callers meeting
    /// `permission` may call. [`Permission::Public`] routes are served
    /// outside the guard.
    #[must_use]
    pub fn route(mut self, permission: Permission, handler: UtoipaMethodRouter<AppState>) -> Self {
        for (path, item) in &handler.1.paths {
            self.rules.extend(methods(item).map(|method| Rule {
                method,
                path: path.clone(),
                permission,
            }));
        }
        if permission == Permission::Public {
            self.public = self.public.routes(handler);
        } else {
            self.guarded = self.guarded.routes(handler);
        }
        self
    }

    /// These routes and `other`'s.
    #[must_use]
    pub fn merge(mut self, other: Self) -> Self {
        self.guarded = self.guarded.merge(other.guarded);
        self.public = self.public.merge(other.public);
        self.rules.extend(other.rules);
        self
    }

    /// Every route's access rule.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// `base` (title, shared schemas, security schemes) with every route's operation.
    pub fn document(&self, mut base: OpenApi) -> OpenApi {
        base.merge(self.guarded.get_openapi().clone());
        base.merge(self.public.get_openapi().clone());
        base
    }

    /// The routes that need a caller (to be put behind the guard) and the public ones.
    pub fn into_routers(self) -> (Router<AppState>, Router<AppState>) {
        (self.guarded.into(), self.public.into())
    }
}

/// The methods a documented path item has operations for.
pub fn methods(item: &PathItem) -> impl Iterator<Item = &'static str> {
    [
        ("GET", item.get.is_some()),
        ("POST", item.post.is_some()),
        ("PUT", item.put.is_some()),
        ("PATCH", item.patch.is_some()),
        ("DELETE", item.delete.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(method, _)| method)
}
