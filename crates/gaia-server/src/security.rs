//! Response headers every answer carries, and CORS for browser clients of other origins.
//!
//! - `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`;
//! - a `Content-Security-Policy` that allows only Gaia's own scripts, styles and connections (the web
//!   UI has no inline script; images may also be `data:` and `blob:` previews), unless a route set a
//!   stricter one (image downloads do);
//! - CORS only for the origins of `server.cors_origins` (`*`: any origin, never with credentials).

use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::Method;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// The Content-Security-Policy of Gaia's pages.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                       connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers (where a route did not set its own) and, when configured, CORS.
pub fn layers<S: Clone + Send + Sync + 'static>(router: Router<S>, cors_origins: &[String]) -> Router<S> {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    let mut r = router
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(header::CONTENT_SECURITY_POLICY, CSP));
    if !cors_origins.is_empty() {
        let origin = if cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        };
        let cors = CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("anthropic-version"),
                HeaderName::from_static("x-gaia-cache"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id"), HeaderName::from_static("x-gaia-cache")])
            .max_age(std::time::Duration::from_secs(600));
        r = r.layer(cors);
    }
    r
}
