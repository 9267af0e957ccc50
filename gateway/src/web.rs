//! The web application (tenant portal and admin console) at `/`: the files
//! `npm run build` writes to `gateway/web/dist`, read from that directory
//! on each request (so a rebuild needs no gateway restart, and the Rust
//! build needs no Node.js; docs/portal.md says why not embedded). This
//! module owns the serving rules only: which paths are the application's,
//! how long browsers may cache what, the Content-Security-Policy. It knows
//! nothing of the API the application calls.
//!
//! - `/assets/*` are Vite's content-hashed files: cached for a year,
//!   `immutable`; a missing one is a 404, never `index.html`.
//! - Any other file of the build (favicon) is served `no-cache`.
//! - Every other GET is a client route: `index.html`, `no-cache`, so a new
//!   build is picked up on the next navigation.
//! - `/api/*`, `/v2/*`, the probes and every non-GET request pass through
//!   to the API untouched.
//! - Without a build the gateway still runs and `/` says how to make one.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

/// The directory holding the built application (`index.html`, `assets/`).
/// Default: `gateway/web/dist` of the source tree the gateway was built
/// from, where `scripts/up` and `scripts/test` build it.
pub const WEB_DIR: &str = "PAAS_WEB_DIR";

/// The build directory when [`WEB_DIR`] is unset.
pub const DEFAULT_WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist");

/// What the application may load: its own scripts only (no inline script,
/// no `eval`), inline styles (Ant Design writes its CSS-in-JS into `<style>`
/// elements at run time), images and fonts from itself or `data:`, API calls
/// to itself; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Hashed assets: their name changes with their content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` and unhashed files: revalidated on every use.
const NO_CACHE: &str = "no-cache";

/// Path prefixes that belong to the API, the registry and the probes.
const NOT_THE_APPLICATION: [&str; 5] = ["/api", "/v2", "/healthz", "/readyz", "/metrics"];

/// Where the built application is.
#[derive(Debug, Clone)]
pub struct Portal {
    dir: PathBuf,
}

impl Portal {
    /// The application built into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory [`WEB_DIR`] names, else [`DEFAULT_WEB_DIR`].
    pub fn from_environment() -> Self {
        let env = kernel::settings::Env::load().ok();
        let dir = env
            .as_ref()
            .and_then(|env| env.raw(WEB_DIR))
            .filter(|dir| !dir.is_empty())
            .unwrap_or(DEFAULT_WEB_DIR);
        Self::new(dir)
    }

    /// The build directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Middleware: answers the application's paths, passes the rest on.
pub async fn serve(State(portal): State<Portal>, request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) || !is_application_path(request.uri().path()) {
        return next.run(request).await;
    }
    answer(&portal, request.uri().path()).await
}

/// Whether `path` is the application's rather than the API's.
fn is_application_path(path: &str) -> bool {
    !NOT_THE_APPLICATION
        .iter()
        .any(|prefix| path == *prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')))
}

async fn answer(portal: &Portal, path: &str) -> Response {
    let Some(relative) = file_path(path) else {
        return not_found();
    };
    if relative.starts_with("assets") {
        return match tokio::fs::read(portal.dir.join(&relative)).await {
            Ok(bytes) => file(bytes, &relative, IMMUTABLE),
            Err(_) => not_found(),
        };
    }
    if relative.components().count() == 1
        && relative != Path::new("index.html")
        && let Ok(bytes) = tokio::fs::read(portal.dir.join(&relative)).await
    {
        return file(bytes, &relative, NO_CACHE);
    }
    match tokio::fs::read(portal.dir.join("index.html")).await {
        Ok(bytes) => file(bytes, Path::new("index.html"), NO_CACHE),
        Err(_) => not_built(portal),
    }
}

/// The request path as a path inside the build directory; `None` when it
/// tries to leave it (`..`, an absolute or drive path after decoding).
fn file_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    if decoded.contains('\\') || decoded.contains('\0') {
        return None;
    }
    let mut relative = PathBuf::new();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            // Dot files (the build's `.source-hash`) are not the application's.
            Component::Normal(part) if part.to_string_lossy().starts_with('.') => return None,
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(relative)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn file(bytes: Vec<u8>, path: &Path, cache: &'static str) -> Response {
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    protect(response)
}

/// The headers every answer of the application carries.
fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn not_found() -> Response {
    let mut response = (StatusCode::NOT_FOUND, "not found\n").into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    protect(response)
}

/// The page in place of the application when it was never built: what to
/// run, not an error (the API works without it).
fn not_built(portal: &Portal) -> Response {
    let dir = html_escape(&portal.dir.display().to_string());
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>paas: web console not built</title>\
         </head><body><h1>The web console is not built</h1>\
         <p>The gateway serves the portal from <code>{dir}</code>, which has no <code>index.html</code>.</p>\
         <p>Build it with <code>scripts/up</code> (it builds the console when its sources changed), or by hand:</p>\
         <pre>cd gateway/web &amp;&amp; npm ci &amp;&amp; npm run build</pre>\
         <p>Set <code>{WEB_DIR}</code> to serve a build from elsewhere. The API is at <a href=\"/api/docs\">/api/docs</a>.\
         </p></body></html>\n"
    );
    let mut response = (StatusCode::OK, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    protect(response)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// A build (`<root>/dist`: an index, a hashed asset, a favicon) and a
    /// file beside it that must stay out of reach.
    struct Build(PathBuf);

    impl Build {
        fn new() -> Self {
            let root = std::env::temp_dir().join(format!("paas-web-{}", uuid::Uuid::new_v4()));
            let dist = root.join("dist");
            std::fs::create_dir_all(dist.join("assets")).unwrap();
            std::fs::write(
                dist.join("index.html"),
                "<!doctype html><script type=\"module\" src=\"/assets/index-abc123.js\"></script>",
            )
            .unwrap();
            std::fs::write(dist.join("assets/index-abc123.js"), "console.log(1)").unwrap();
            std::fs::write(dist.join("favicon.svg"), "<svg/>").unwrap();
            std::fs::write(dist.join(".source-hash"), "secret").unwrap();
            std::fs::write(root.join("secret.txt"), "secret").unwrap();
            Self(root)
        }

        fn dist(&self) -> PathBuf {
            self.0.join("dist")
        }
    }

    impl Drop for Build {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The application in front of a stand-in for the API, which answers
    /// 418 to everything it is given, so a pass-through is visible.
    fn app(dir: &Path) -> Router {
        Router::new()
            .route("/api/v1/session", get(|| async { StatusCode::IM_A_TEAPOT }))
            .fallback(|| async { StatusCode::IM_A_TEAPOT })
            .layer(axum::middleware::from_fn_with_state(Portal::new(dir), serve))
    }

    async fn get_path(app: &Router, method: Method, path: &str) -> Response {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        app.clone().oneshot(request).await.unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_root_and_client_routes_get_index_html_revalidated_on_every_use() {
        let build = Build::new();
        let app = app(&build.dist());
        for path in [
            "/",
            "/login",
            "/tenants/acme/applications/web",
            "/admin/clusters?page=2",
        ] {
            let response = get_path(&app, Method::GET, path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache", "{path}");
            assert_eq!(header_of(&response, header::CONTENT_TYPE), "text/html; charset=utf-8");
            assert!(text(response).await.contains("/assets/index-abc123.js"), "{path}");
        }
    }

    #[tokio::test]
    async fn hashed_assets_are_cached_for_a_year_and_a_missing_one_is_404_not_the_index() {
        let build = Build::new();
        let app = app(&build.dist());
        let response = get_path(&app, Method::GET, "/assets/index-abc123.js").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(text(response).await, "console.log(1)");
        let missing = get_path(&app, Method::GET, "/assets/index-gone.js").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let favicon = get_path(&app, Method::GET, "/favicon.svg").await;
        assert_eq!(favicon.status(), StatusCode::OK);
        assert_eq!(header_of(&favicon, header::CACHE_CONTROL), "no-cache");
        assert_eq!(header_of(&favicon, header::CONTENT_TYPE), "image/svg+xml");
    }

    #[tokio::test]
    async fn the_api_the_registry_the_probes_and_writes_pass_through() {
        let build = Build::new();
        let app = app(&build.dist());
        for path in [
            "/api",
            "/api/v1/session",
            "/api/v1/nope",
            "/v2/",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            let response = get_path(&app, Method::GET, path).await;
            assert_eq!(response.status(), StatusCode::IM_A_TEAPOT, "{path}");
        }
        let write = get_path(&app, Method::POST, "/login").await;
        assert_eq!(write.status(), StatusCode::IM_A_TEAPOT);
        // A client route that merely starts like a reserved one is the application's.
        let lookalike = get_path(&app, Method::GET, "/apis-overview").await;
        assert_eq!(lookalike.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn every_answer_forbids_inline_scripts_and_framing() {
        let build = Build::new();
        let app = app(&build.dist());
        for path in ["/", "/assets/index-abc123.js", "/assets/gone.js"] {
            let response = get_path(&app, Method::GET, path).await;
            let policy = header_of(&response, header::CONTENT_SECURITY_POLICY);
            let scripts = policy
                .split(';')
                .map(str::trim)
                .find(|directive| directive.starts_with("script-src"))
                .expect("a script-src directive");
            assert_eq!(scripts, "script-src 'self'", "{path}");
            assert!(policy.contains("frame-ancestors 'none'"), "{path}");
            assert_eq!(header_of(&response, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        }
    }

    #[tokio::test]
    async fn paths_leaving_the_build_directory_are_refused() {
        let build = Build::new();
        let app = app(&build.dist());
        for path in [
            "/.source-hash",
            "/assets/../../secret.txt",
            "/assets/%2e%2e/%2e%2e/secret.txt",
            "/assets/..%5c..%5csecret.txt",
        ] {
            let response = get_path(&app, Method::GET, path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(!text(response).await.contains("secret"), "{path}");
        }
    }

    #[tokio::test]
    async fn without_a_build_the_root_says_how_to_build_it() {
        let dir = std::env::temp_dir().join(format!("paas-web-absent-{}", uuid::Uuid::new_v4()));
        let app = app(&dir);
        let response = get_path(&app, Method::GET, "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_of(&response, header::CONTENT_TYPE), "text/html; charset=utf-8");
        let page = text(response).await;
        assert!(page.contains("npm ci &amp;&amp; npm run build"), "{page}");
        assert!(page.contains("PAAS_WEB_DIR"), "{page}");
        let api = get_path(&app, Method::GET, "/api/v1/session").await;
        assert_eq!(api.status(), StatusCode::IM_A_TEAPOT);
    }

    /// `gateway/openapi.json` is the document the web application's API
    /// types are generated from (`npm run api` in gateway/web); it must be
    /// the one the gateway serves. `PAAS_WRITE_OPENAPI=1` rewrites it.
    #[test]
    fn the_checked_in_openapi_document_is_the_served_one() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let served = serde_json::to_string_pretty(crate::openapi::served()).unwrap() + "\n";
        if std::env::var_os("PAAS_WRITE_OPENAPI").is_some_and(|v| v == "1") {
            std::fs::write(&path, &served).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == served,
            "gateway/openapi.json is not the served document: run `npm run api` in gateway/web and commit \
             gateway/openapi.json and gateway/web/src/api/schema.d.ts"
        );
    }
}
