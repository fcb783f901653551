//! Security headers on every answer (API, pages, errors), a stricter policy on image downloads, and
//! CORS only for the configured origins.

use crate::common;

use common::{start, start_with};
use gaia_core::testing::sqlite_db;

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let s = start(sqlite_db(), None).await;
    for path in ["/health", "/login", "/api/v1/conversations", "/no/such/route", "/assets/app.js"] {
        let r = s.http.get(format!("{}{path}", s.url)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(h.get("access-control-allow-origin").is_none(), "{path}: no CORS unless configured");
    }
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let mut config =
        gaia_core::Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Default::default() };
    config.server.cors_origins = vec!["https://game.example".into()];
    config.validate().unwrap();
    let s = start_with(sqlite_db(), None, config).await;
    let preflight = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, format!("{}/v1/chat/completions", s.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let r = preflight("https://game.example").await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://game.example");
    let methods = r.headers()["access-control-allow-methods"].to_str().unwrap().to_string();
    assert!(methods.contains("POST"), "{methods}");
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // A plain request from the allowed origin gets the header too.
    let r = s.http.get(format!("{}/health", s.url)).header("origin", "https://game.example").send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://game.example");
    // Bad origins are refused at start-up.
    let mut bad = gaia_core::Config::default();
    bad.server.cors_origins = vec!["game.example/path".into()];
    assert!(bad.validate().unwrap_err().to_string().contains("cors_origins"));
}
