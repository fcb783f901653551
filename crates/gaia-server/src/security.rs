//! Response headers every answer carries, and CORS for browser clients of other origins.
//!
//! - `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`;
//! - a `Content-Security-Policy` that allows only Gaia's own scripts, styles and connections (the web
//!   UI has no inline script; images may also be `data:` and `blob:` previews), unless a route set a
//!   stricter one (image downloads do);
//! - CORS only for the origins of `server.cors_origins` (`*`: any origin, never with credentials);
//! - `Strict-Transport-Security` on answers sent over HTTPS: when Gaia serves TLS itself, or behind a
//!   proxy that says `X-Forwarded-Proto: https` (browsers ignore it over plain HTTP). When Gaia serves
//!   TLS, every request is marked `X-Forwarded-Proto: https` (what a proxy would say), so cookies are
//!   `Secure` whichever way HTTPS is provided ([`crate::session::is_https`]).
//!
//! [`client_address`] tells who sent a request: the peer address, or the client named by
//! `X-Forwarded-For` when the peer is one of `auth.trusted_proxies`.

use axum::extract::Request;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use tower::util::BoxCloneSyncService;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// The Content-Security-Policy of Gaia's pages.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                       connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The `Strict-Transport-Security` value: one year, subdomains not included (they may be other services).
pub const HSTS: &str = "max-age=31536000";

/// Marks requests that arrived over Gaia's own TLS as HTTPS (`tls`), and adds HSTS to answers sent over
/// HTTPS. A plain tower service rather than `axum::middleware::from_fn`, which would clone the whole
/// stack of the route it wraps for every request (measured: about 5 % of the gateway's per-request
/// instructions).
#[derive(Clone)]
struct Transport<S> {
    inner: S,
    tls: bool,
}

type Answered<E> = Result<Response, E>;

/// Adds HSTS to an answer sent over HTTPS, unless the route set its own.
fn with_hsts<E>(answered: Answered<E>) -> Answered<E> {
    answered.map(|mut resp| {
        if !resp.headers().contains_key(header::STRICT_TRANSPORT_SECURITY) {
            resp.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
        }
        resp
    })
}

impl<S> tower::Service<Request> for Transport<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = futures::future::Either<
        futures::future::Map<S::Future, fn(Answered<S::Error>) -> Answered<S::Error>>,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        use futures::FutureExt;
        if self.tls {
            req.headers_mut().insert("x-forwarded-proto", HeaderValue::from_static("https"));
        }
        if crate::session::is_https(req.headers()) {
            futures::future::Either::Left(self.inner.call(req).map(with_hsts as fn(_) -> _))
        } else {
            futures::future::Either::Right(self.inner.call(req))
        }
    }
}

/// Whether `ip` is in the network `(base, prefix)`.
fn in_network(ip: IpAddr, (base, prefix): (IpAddr, u8)) -> bool {
    let (ip, base, bits) = match (ip, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)) << 96, u128::from(u32::from(b)) << 96, prefix),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), prefix),
        // An IPv4 peer seen as IPv4-mapped IPv6 (dual-stack sockets).
        (IpAddr::V6(a), IpAddr::V4(_)) => match a.to_ipv4_mapped() {
            Some(a) => return in_network(IpAddr::V4(a), (base, prefix)),
            None => return false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => return false,
    };
    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits.min(128))) };
    ip & mask == base & mask
}

/// Most `X-Forwarded-For` entries looked at.
const MAX_FORWARDED_HOPS: usize = 32;

/// The address of the client that sent a request: the peer (`ConnectInfo`), unless the peer is one of
/// `trusted_proxies` (addresses or networks, `auth.trusted_proxies`): then the right-most address of
/// `X-Forwarded-For` that is not a trusted proxy (entries to its left could be forged by the client).
/// `None` when the server was not given peer addresses (a router served without connect info).
pub fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>, trusted_proxies: &[String]) -> Option<IpAddr> {
    let peer = peer?.ip();
    if trusted_proxies.is_empty() {
        return Some(peer);
    }
    let trusted: Vec<(IpAddr, u8)> =
        trusted_proxies.iter().filter_map(|p| gaia_core::config::parse_network(p)).collect();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| in_network(ip, *n));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(MAX_FORWARDED_HOPS)
        .map_while(|h| h.parse::<IpAddr>().ok().or_else(|| h.parse::<SocketAddr>().ok().map(|s| s.ip())))
        .collect();
    let mut client = peer;
    for hop in hops {
        client = hop;
        if !is_trusted(hop) {
            break;
        }
    }
    Some(client)
}

/// The headers a reverse proxy adds to say whom it forwards for.
const FORWARDING_HEADERS: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];

/// Whether a request carries a header a reverse proxy adds (`X-Forwarded-For`, `Forwarded`,
/// `X-Real-IP`): then its peer address is the proxy's, not its client's.
pub fn is_forwarded(headers: &HeaderMap) -> bool {
    FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h))
}

/// Whether `ip` is a loopback or private address (RFC 1918, IPv6 unique local `fc00::/7`), where a
/// reverse proxy of the same host or network would connect from.
fn is_local_network(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local_network(IpAddr::V4(v4)),
            None => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        },
    }
}

/// Whether a request looks like it came through a reverse proxy that `auth.trusted_proxies` does not
/// name: a loopback or private peer that sends `X-Forwarded-For` while no proxy is trusted. Every client
/// of such a proxy then shares its address (and its sign-in limits).
pub fn untrusted_proxy(headers: &HeaderMap, peer: Option<SocketAddr>, trusted_proxies: &[String]) -> bool {
    trusted_proxies.is_empty()
        && peer.is_some_and(|p| is_local_network(p.ip()))
        && headers.contains_key("x-forwarded-for")
}

/// Logs once per process that requests come through a reverse proxy `auth.trusted_proxies` does not name.
pub(crate) fn warn_untrusted_proxy_once() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::AcqRel) {
        tracing::warn!(
            "requests come from a local address with X-Forwarded-For, but auth.trusted_proxies is empty: every \
             client behind that reverse proxy shares its address, so one client's failed sign-ins throttle them \
             all; set auth.trusted_proxies to the proxy's address (X-Forwarded-For is not believed otherwise)"
        );
    }
}

/// Wraps `service` (the whole router) in the security headers (where a route did not set its own),
/// HSTS over HTTPS (`tls`: Gaia serves TLS itself) and, when configured, CORS. The layers are composed
/// once around the router, not per route: axum clones a route's whole stack for every request, one
/// allocation per layer added with `Router::layer`.
pub fn wrap<S>(service: S, cors_origins: &[String], tls: bool) -> BoxCloneSyncService<Request, Response, Infallible>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    let secured = tower::ServiceBuilder::new()
        .layer(tower::layer::layer_fn(move |inner| Transport { inner, tls }))
        .layer(set(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .service(service);
    if cors_origins.is_empty() {
        return BoxCloneSyncService::new(secured);
    }
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
    BoxCloneSyncService::new(tower::ServiceBuilder::new().layer(cors).service(secured))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_believes_forwarded_for_only_from_trusted_proxies() {
        let peer: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.9.9.9"));
        assert_eq!(client_address(&h, Some(peer), &[]), Some(peer.ip()), "no trusted proxy: the peer");
        let other = ["192.168.0.0/16".to_string()];
        assert_eq!(client_address(&h, Some(peer), &other), Some(peer.ip()), "peer not trusted");
        let trusted = ["10.0.0.0/8".to_string()];
        // The right-most untrusted hop: the forged 6.6.6.6 on its left is ignored.
        assert_eq!(client_address(&h, Some(peer), &trusted), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(client_address(&HeaderMap::new(), Some(peer), &trusted), Some(peer.ip()));
        assert_eq!(client_address(&h, None, &trusted), None);
        assert!(in_network("::ffff:10.0.0.1".parse().unwrap(), ("10.0.0.0".parse().unwrap(), 8)));
        assert!(in_network("fd00::1".parse().unwrap(), ("fd00::".parse().unwrap(), 8)));
        assert!(!in_network("fe00::1".parse().unwrap(), ("fd00::".parse().unwrap(), 8)));
        assert!(in_network("1.2.3.4".parse().unwrap(), ("0.0.0.0".parse().unwrap(), 0)));
        // A local proxy not named in auth.trusted_proxies is noticed; a remote client's header is not.
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert!(untrusted_proxy(&h, Some(local), &[]));
        assert!(untrusted_proxy(&h, Some(peer), &[]), "10.0.0.0/8 is private");
        assert!(!untrusted_proxy(&h, Some("203.0.113.5:1".parse().unwrap()), &[]));
        assert!(!untrusted_proxy(&h, Some(local), &trusted));
        assert!(!untrusted_proxy(&HeaderMap::new(), Some(local), &[]));
        assert!(untrusted_proxy(&h, Some("[fd00::1]:1".parse().unwrap()), &[]));
        assert!(is_forwarded(&h));
        let mut fwd = HeaderMap::new();
        fwd.insert("forwarded", HeaderValue::from_static("for=203.0.113.9"));
        assert!(is_forwarded(&fwd));
        assert!(!is_forwarded(&HeaderMap::new()));
    }
}
