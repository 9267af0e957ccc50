//! The API's OpenAPI 3.1 document, generated from the handlers and types
//! (`/api/openapi.json`), and a reference page that renders it
//! (`/api/docs`), self-contained so it works without internet access.

use std::sync::LazyLock;

use axum::Json;
use axum::response::Html;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What the document says besides its routes: title, the problem schema
/// every error uses and the bearer scheme. The routes add their operations
/// ([`crate::route`]).
#[derive(OpenApi)]
#[openapi(
    info(title = "paas public API", description = "Tenants, quotas, clusters and access. Errors are RFC 7807 problem+json."),
    components(schemas(kernel::error::Problem)),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

/// The document: [`ApiDoc`] with every route's operation.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| crate::api().document(ApiDoc::openapi()));
    &DOCUMENT
}

/// `GET /api/openapi.json`
pub async fn serve() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}

/// `GET /api/docs`: the reference, rendered in the browser from the document.
pub async fn reference() -> Html<&'static str> {
    Html(REFERENCE)
}

const REFERENCE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>paas API reference</title>
<style>body{font:15px system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}
.op{margin:.4em 0;padding:.4em .6em;border-left:4px solid #888;background:#f7f7f7}.m{display:inline-block;width:5em;font-weight:bold}
.get{border-color:#2a7}.post{border-color:#27a}.put,.patch{border-color:#a72}.delete{border-color:#a22}code{font-size:90%}</style></head>
<body><h1>paas API reference</h1><p>From <a href="/api/openapi.json">/api/openapi.json</a>. Send <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<div id="ops">Loading…</div>
<script>
fetch('/api/openapi.json').then(r => r.json()).then(doc => {
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) {
    const tag = (op.tags || ['other'])[0]; (byTag[tag] = byTag[tag] || []).push({path, method, op});
  }
  const el = document.getElementById('ops'); el.textContent = '';
  for (const tag of Object.keys(byTag).sort()) {
    const h = document.createElement('h2'); h.textContent = tag; el.appendChild(h);
    for (const {path, method, op} of byTag[tag]) {
      const d = document.createElement('div'); d.className = 'op ' + method;
      const codes = Object.keys(op.responses || {}).join(', ');
      d.innerHTML = '<span class="m"></span><code></code> <small></small>';
      d.children[0].textContent = method.toUpperCase(); d.children[1].textContent = path; d.children[2].textContent = 'responses: ' + codes;
      el.appendChild(d);
    }
  }
});
</script></body></html>"#;
