//! Web UI sessions: the `gaia_session` cookie (`HttpOnly`, `SameSite=Lax`) and CSRF protection.
//!
//! A signed-in browser carries the session cookie; every request that changes something (any method
//! but GET, HEAD and OPTIONS) must also send the session's CSRF token, as the `x-csrf-token` header
//! (scripts, htmx) or a `csrf_token` form field (plain forms). Before sign-in, the login and register
//! forms use a double-submit token: a random `gaia_csrf` cookie that the form must echo.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "gaia_session";
/// Name of the pre-login CSRF cookie.
pub const CSRF_COOKIE: &str = "gaia_csrf";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Lifetime of a session.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// The value of cookie `name`, if the request has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, path `/`; `Secure` when `secure`; removed when
/// `max_age_secs` is 0.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}");
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("gaia_invalid=; Max-Age=0"))
}

/// Appends a `Set-Cookie` header.
pub fn add_cookie(headers: &mut HeaderMap, value: HeaderValue) {
    headers.append(SET_COOKIE, value);
}

/// Whether the request came over HTTPS (Gaia serving TLS itself: [`crate::security`] marks those
/// requests, or by `X-Forwarded-Proto`, through a proxy): then
/// cookies get `Secure`.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Whether `method` can change state (and so needs a CSRF token).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Constant-time comparison of two tokens.
pub fn tokens_match(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new random token (for the pre-login CSRF cookie).
pub fn random_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_and_formatted() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; gaia_session=tok; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, "missing"), None);
        let c = set_cookie(SESSION_COOKIE, "v", 60, true);
        let c = c.to_str().unwrap();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure") && c.contains("Max-Age=60")
        );
        assert!(tokens_match("abc", "abc") && !tokens_match("abc", "abd") && !tokens_match("", ""));
        assert!(is_unsafe(&Method::POST) && !is_unsafe(&Method::GET));
    }
}
