//! Issue 17 (security hardening), sign-in, registration and sessions: each test performs the attack.
//!
//! - registration modes (`auth.registration`: open, invite, closed) and invitations;
//! - the first account becomes an administrator only on a loopback listener or when enabled, and only
//!   when it registers straight from this machine (not through a reverse proxy); an address of
//!   `rbac.admin_emails` is proven only by an invitation made for it;
//! - a burst of anonymous wrong-password sign-ins is bounded (hashes at once never above the gate)
//!   and throttled (503 / 429 with `Retry-After`), per account and client address and per client
//!   address, charged before hashing (a parallel burst gets at most the limit checked); guessing from
//!   one address does not lock the owner out;
//! - logout ends the refresh token and the access token (even sent with a stale access token), "sign
//!   out everywhere" ends web sessions too; a reused refresh token ends its family; another issuer's
//!   OIDC `sid` is not mistaken for Gaia's sign-in;
//! - invitations are listed without tokens and can be revoked;
//! - cookies are `Secure` and HSTS is sent when Gaia serves TLS itself.

use crate::common::{start_with, TestServer};
use gaia_core::auth::hash_api_key;
use gaia_core::cache::MemoryCache;
use gaia_core::config::{Registration, TlsConfig};
use gaia_core::storage::Storage;
use gaia_core::testing::{database_urls, sqlite_db, TestDb};
use gaia_core::Config;
use gaia_providers::ProviderRegistry;
use gaia_server::AppState;
use serde_json::{json, Value};
use std::sync::Arc;

fn config() -> Config {
    let mut c = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
    c.chat.auto_title = false;
    c.chat.memory = false;
    c.rbac.first_user_admin = false;
    c
}

async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = s.http.post(format!("{}/api/v1{path}", s.url)).json(&body).send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

async fn register(s: &TestServer, email: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"email": email, "password": "correct horse battery"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (st, v, _) = post(s, "/auth/register", body).await;
    (st, v)
}

async fn login(s: &TestServer, email: &str, password: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    post(s, "/auth/login", json!({"email": email, "password": password})).await
}

/// An administrator made straight in storage (registration may be closed), with an API key.
async fn admin_key(s: &TestServer) -> String {
    let u = s.state.storage().create_user("root@example.com", None, None).await.unwrap();
    s.state.storage().set_admin(&u.id, true).await.unwrap();
    s.state.auth().create_api_key(&u.id, Some("root")).await.unwrap().1
}

async fn status_with(s: &TestServer, path: &str, token: &str) -> u16 {
    s.http.get(format!("{}/api/v1{path}", s.url)).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn registration_closed_refuses_everyone() {
    for db in database_urls().await {
        let mut c = config();
        c.auth.registration = Registration::Closed;
        let s = start_with(db, None, c).await;
        let (st, v) = register(&s, "mallory@example.com", json!({})).await;
        assert_eq!(st, 403, "{}: {v}", s.backend);
        assert!(v["detail"].as_str().unwrap().contains("closed"), "{v}");
        // The web form is refused the same way (no way around the API's rule).
        let r = s
            .http
            .post(format!("{}/register", s.url))
            .header("cookie", "gaia_csrf=tok")
            .form(&[("email", "mallory@example.com"), ("password", "correct horse battery"), ("csrf_token", "tok")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(s.state.storage().count_users().await.unwrap(), 0, "{}", s.backend);
    }
}

#[tokio::test]
async fn registration_by_invitation_needs_a_valid_single_use_invitation() {
    for db in database_urls().await {
        let mut c = config();
        c.auth.registration = Registration::Invite;
        let s = start_with(db, None, c).await;
        let b = s.backend;
        // No invitation, a made-up one: 403.
        assert_eq!(register(&s, "a@example.com", json!({})).await.0, 403, "{b}");
        assert_eq!(register(&s, "a@example.com", json!({"invite_token": "gaia_inv_forged"})).await.0, 403, "{b}");
        let too_long = "x".repeat(10_000);
        assert_eq!(register(&s, "a@example.com", json!({"invite_token": too_long})).await.0, 403, "{b}");

        // Only administrators create invitations.
        let admin = admin_key(&s).await;
        let player = s.state.storage().create_user("player@example.com", None, None).await.unwrap();
        let (player_key, _) = (s.state.auth().create_api_key(&player.id, None).await.unwrap().1, ());
        let invite = |key: String, body: Value| {
            let http = s.http.clone();
            let url = format!("{}/api/v1/auth/invites", s.url);
            async move { http.post(url).header("x-api-key", key).json(&body).send().await.unwrap() }
        };
        assert_eq!(invite(player_key, json!({})).await.status(), 403, "{b}");
        assert_eq!(s.http.post(format!("{}/api/v1/auth/invites", s.url)).send().await.unwrap().status(), 401);
        assert_eq!(invite(admin.clone(), json!({"ttl_secs": 99_999_999})).await.status(), 400, "{b}");
        let r = invite(admin.clone(), json!({})).await;
        assert_eq!(r.status(), 201, "{b}");
        let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("gaia_inv_"));

        // Used once, then never again.
        let (st, v) = register(&s, "a@example.com", json!({"invite_token": token})).await;
        assert_eq!(st, 201, "{b}: {v}");
        assert_eq!(register(&s, "b@example.com", json!({"invite_token": token})).await.0, 403, "{b}: reused");

        // Bound to an email: another address cannot use it, and a refused attempt does not burn it.
        let r = invite(admin.clone(), json!({"email": "c@example.com"})).await;
        let bound = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
        assert_eq!(register(&s, "mallory@example.com", json!({"invite_token": bound})).await.0, 403, "{b}");
        assert_eq!(register(&s, "C@example.com", json!({"invite_token": bound})).await.0, 201, "{b}");

        // Expired: refused.
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        s.state.storage().create_invite(&hash_api_key("gaia_inv_expired"), None, None, past).await.unwrap();
        assert_eq!(register(&s, "d@example.com", json!({"invite_token": "gaia_inv_expired"})).await.0, 403, "{b}");
    }
}

#[tokio::test]
async fn registration_open_still_works() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        assert_eq!(register(&s, "open@example.com", json!({})).await.0, 201, "{}", s.backend);
    }
}

#[tokio::test]
async fn the_first_account_is_admin_only_on_loopback_or_when_enabled() {
    for (bind, anywhere, admin) in [
        ("0.0.0.0:8666", false, false),
        ("[::]:8666", false, false),
        ("0.0.0.0:8666", true, true),
        ("127.0.0.1:8666", false, true),
    ] {
        for db in database_urls().await {
            let mut c = config();
            c.rbac.first_user_admin = true;
            c.rbac.first_user_admin_anywhere = anywhere;
            c.server.bind = bind.into();
            let notice = gaia_server::routes::auth::first_user_admin_notice(&c);
            assert_eq!(notice.contains("NOT"), !admin, "{notice}");
            let s = start_with(db, None, c).await;
            // The attacker who reaches a fresh public server first.
            let (st, v) = register(&s, "first@example.com", json!({})).await;
            assert_eq!(st, 201);
            assert_eq!(v["user"]["is_admin"], admin, "{} bind {bind} anywhere {anywhere}", s.backend);
            let me = status_with(&s, "/rbac/roles", v["access_token"].as_str().unwrap()).await;
            assert_eq!(me == 200, admin, "{} bind {bind}", s.backend);
        }
    }
}

#[tokio::test]
async fn an_admin_email_counts_only_once_proven() {
    for registration in [Registration::Open, Registration::Invite] {
        for db in database_urls().await {
            check_admin_email_proof(registration, db).await;
        }
    }
}

async fn check_admin_email_proof(registration: Registration, db: TestDb) {
    {
        let mut c = config();
        c.server.bind = "0.0.0.0:8666".into();
        c.auth.registration = registration;
        c.rbac.admin_emails = vec!["Boss@Studio.example".into(), "ops@studio.example".into()];
        let s = start_with(db, None, c).await;
        let b = format!("{} {registration:?}", s.backend);
        let admin = admin_key(&s).await;
        let invite = |email: Option<&str>| {
            let body = match email {
                Some(e) => json!({"email": e}),
                None => json!({}),
            };
            let r = s.http.post(format!("{}/api/v1/auth/invites", s.url)).header("x-api-key", &admin).json(&body);
            async move { r.send().await.unwrap().json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string() }
        };
        // The attacker registers the administrator's address first (with an invitation made for nobody
        // in particular when one is needed): an ordinary user.
        let extra = match registration {
            Registration::Invite => json!({"invite_token": invite(None).await}),
            _ => json!({}),
        };
        let (st, v) = register(&s, "boss@studio.example", extra).await;
        assert_eq!(st, 201, "{b}: {v}");
        assert_eq!(v["user"]["is_admin"], false, "{b}: an unproven address of rbac.admin_emails");
        assert_eq!(status_with(&s, "/rbac/roles", v["access_token"].as_str().unwrap()).await, 403, "{b}");
        if registration == Registration::Invite {
            // An invitation made for the address proves it.
            let token = invite(Some("ops@studio.example")).await;
            let (st, v) = register(&s, "ops@studio.example", json!({"invite_token": token})).await;
            assert_eq!(st, 201, "{b}: {v}");
            assert_eq!(v["user"]["is_admin"], true, "{b}: proven by an invitation made for it");
        }
    }
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_is_bounded_and_throttled() {
    let db = sqlite_db();
    let mut c = config();
    c.auth.hash_concurrency = 1;
    c.auth.hash_queue = 2;
    // Only the hashing bound is under test here.
    c.auth.login_attempts_per_address = 0;
    c.auth.login_failures_per_account = 0;
    let s = start_with(db, None, c).await;
    register(&s, "victim@example.com", json!({})).await;
    let gate = s.state.password_gate().clone();
    let burst: Vec<_> = (0..40)
        .map(|i| {
            let (http, url) = (s.http.clone(), format!("{}/api/v1/auth/login", s.url));
            // Known and unknown accounts alike.
            let email = if i % 2 == 0 { "victim@example.com".to_string() } else { format!("nobody{i}@example.com") };
            tokio::spawn(async move {
                let r =
                    http.post(url).json(&json!({"email": email, "password": "wrong password"})).send().await.unwrap();
                (r.status().as_u16(), r.headers().get("retry-after").is_some())
            })
        })
        .collect();
    let mut busy = 0;
    for t in burst {
        let (status, retry_after) = t.await.unwrap();
        match status {
            401 => {}
            503 => {
                assert!(retry_after, "503 must say when to retry");
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(busy > 0, "40 at once through 1 slot and 2 places: some are refused");
    assert_eq!(gate.peak(), 1, "never more hashes at once than the bound");
    assert!(gate.refused() >= busy as u64);
    assert!(gate.peak() <= gate.concurrency());
    // The server is still answering.
    assert_eq!(s.http.get(format!("{}/health", s.url)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn unknown_accounts_cost_a_hash_too() {
    let s = start_with(sqlite_db(), None, config()).await;
    assert_eq!(s.state.password_gate().peak(), 0);
    assert_eq!(login(&s, "nobody@example.com", "some password").await.0, 401);
    assert_eq!(s.state.password_gate().peak(), 1, "the unknown account was checked against a dummy hash");
    // Over-long inputs are refused before any lookup or hash.
    let (st, _, _) = login(&s, &format!("{}@example.com", "a".repeat(400)), "pw").await;
    assert_eq!(st, 400);
    assert_eq!(login(&s, "nobody@example.com", &"p".repeat(5000)).await.0, 400);
}

#[tokio::test]
async fn per_account_and_per_address_limits_trip() {
    for db in database_urls().await {
        let mut c = config();
        c.auth.login_failures_per_account = 3;
        c.auth.login_attempts_per_address = 1000;
        let s = start_with(db, None, c).await;
        let b = s.backend;
        register(&s, "victim@example.com", json!({})).await;
        register(&s, "other@example.com", json!({})).await;
        for _ in 0..3 {
            assert_eq!(login(&s, "victim@example.com", "guess guess").await.0, 401, "{b}");
        }
        // Guessing stops at the limit, whatever the password (and the case of the email).
        let (st, _, h) = login(&s, "VICTIM@example.com", "guess guess").await;
        assert_eq!(st, 429, "{b}");
        assert!(h.get("retry-after").unwrap().to_str().unwrap().parse::<u64>().unwrap() >= 1);
        assert_eq!(login(&s, "victim@example.com", "correct horse battery").await.0, 429, "{b}");
        // Other accounts are not affected; successful sign-ins do not count.
        for _ in 0..5 {
            assert_eq!(login(&s, "other@example.com", "correct horse battery").await.0, 200, "{b}");
        }
    }
    for db in database_urls().await {
        let mut c = config();
        c.auth.login_failures_per_account = 0;
        c.auth.login_attempts_per_address = 4;
        c.auth.registrations_per_address = 2;
        let s = start_with(db, None, c).await;
        let b = s.backend;
        assert_eq!(register(&s, "one@example.com", json!({})).await.0, 201, "{b}");
        assert_eq!(register(&s, "two@example.com", json!({})).await.0, 201, "{b}");
        // Registration spraying from one address.
        let (st, v) = register(&s, "three@example.com", json!({})).await;
        assert_eq!(st, 429, "{b}: {v}");
        // Credential spraying over many accounts from one address.
        for i in 0..4 {
            assert_eq!(login(&s, &format!("u{i}@example.com"), "spray spray").await.0, 401, "{b}");
        }
        let (st, _, h) = login(&s, "u9@example.com", "spray spray").await;
        assert_eq!(st, 429, "{b}");
        assert!(h.contains_key("retry-after"));
        // X-Forwarded-For from an untrusted peer changes nothing.
        let r = s
            .http
            .post(format!("{}/api/v1/auth/login", s.url))
            .header("x-forwarded-for", "203.0.113.77")
            .json(&json!({"email": "one@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429, "{b}: the header is ignored without auth.trusted_proxies");
    }
    // Behind a trusted proxy each client has its own budget.
    let mut c = config();
    c.auth.login_failures_per_account = 0;
    c.auth.login_attempts_per_address = 2;
    c.auth.trusted_proxies = vec!["127.0.0.0/8".into()];
    let s = start_with(sqlite_db(), None, c).await;
    let from = |ip: &'static str| {
        s.http
            .post(format!("{}/api/v1/auth/login", s.url))
            .header("x-forwarded-for", format!("6.6.6.6, {ip}"))
            .json(&json!({"email": "x@example.com", "password": "spray spray"}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(from("203.0.113.1").await.unwrap().status(), 401);
    }
    assert_eq!(from("203.0.113.1").await.unwrap().status(), 429);
    assert_eq!(from("203.0.113.2").await.unwrap().status(), 401, "another client behind the proxy");
}

#[tokio::test]
async fn logout_ends_the_refresh_token_and_the_access_token() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        let b = s.backend;
        let (access, refresh, _) = s.register("mara@example.com").await;
        let (st, v, _) = login(&s, "mara@example.com", "correct horse battery").await;
        assert_eq!(st, 200);
        let other_access = v["access_token"].as_str().unwrap().to_string();
        assert_eq!(status_with(&s, "/conversations", &access).await, 200, "{b}");

        // Logout with the refresh token: both tokens of that sign-in die, the other sign-in lives.
        assert_eq!(post(&s, "/auth/logout", json!({"refresh_token": refresh})).await.0, 204);
        assert_eq!(status_with(&s, "/conversations", &access).await, 401, "{b}: access token after logout");
        let (st, _, _) = post(&s, "/auth/refresh", json!({"refresh_token": refresh})).await;
        assert_eq!(st, 401, "{b}: refresh token after logout");
        assert_eq!(status_with(&s, "/conversations", &other_access).await, 200, "{b}");

        // Logout with only the access token (the bearer) ends its sign-in too.
        let r = s.http.post(format!("{}/api/v1/auth/logout", s.url)).bearer_auth(&other_access).send().await.unwrap();
        assert_eq!(r.status(), 204, "{b}");
        assert_eq!(status_with(&s, "/conversations", &other_access).await, 401, "{b}");

        // "Everywhere": every sign-in's access token dies.
        let tokens: Vec<String> = {
            let mut t = Vec::new();
            for _ in 0..2 {
                let (_, v, _) = login(&s, "mara@example.com", "correct horse battery").await;
                t.push(v["access_token"].as_str().unwrap().to_string());
            }
            t
        };
        let r = s
            .http
            .post(format!("{}/api/v1/auth/logout", s.url))
            .bearer_auth(&tokens[0])
            .json(&json!({"all": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        for t in &tokens {
            assert_eq!(status_with(&s, "/conversations", t).await, 401, "{b}");
        }
        // A forged `sid` (a session that never existed) is refused as well.
        let forged = s
            .state
            .auth()
            .jwt()
            .issue_for_session("mara", None, Some("no-such-session"), std::time::Duration::from_secs(60))
            .unwrap();
        assert_eq!(status_with(&s, "/conversations", &forged).await, 401, "{b}");
    }
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        let b = s.backend;
        let (access1, refresh1, _) = s.register("theft@example.com").await;
        // The owner refreshes...
        let (st, v, _) = post(&s, "/auth/refresh", json!({"refresh_token": refresh1})).await;
        assert_eq!(st, 200, "{b}");
        let (refresh2, access2) =
            (v["refresh_token"].as_str().unwrap().to_string(), v["access_token"].as_str().unwrap().to_string());
        assert_eq!(status_with(&s, "/conversations", &access2).await, 200, "{b}");
        // ...then a thief replays the stolen first token: refused, and the family ends.
        let (st, v, _) = post(&s, "/auth/refresh", json!({"refresh_token": refresh1})).await;
        assert_eq!(st, 401, "{b}");
        assert!(v["detail"].as_str().unwrap().contains("already used"), "{v}");
        let (st, _, _) = post(&s, "/auth/refresh", json!({"refresh_token": refresh2})).await;
        assert_eq!(st, 401, "{b}: the latest refresh token of the family is revoked too");
        assert_eq!(status_with(&s, "/conversations", &access2).await, 401, "{b}");
        assert_eq!(status_with(&s, "/conversations", &access1).await, 401, "{b}");
        // Another sign-in of the same user is untouched.
        let (st, v, _) = login(&s, "theft@example.com", "correct horse battery").await;
        assert_eq!(st, 200);
        assert_eq!(status_with(&s, "/conversations", v["access_token"].as_str().unwrap()).await, 200);
        // Bounded input.
        let (st, _, _) = post(&s, "/auth/refresh", json!({"refresh_token": "r".repeat(100_000)})).await;
        assert_eq!(st, 401);
    }
}

/// A server over `serve_tls` with a self-signed certificate for `gaia.test`.
async fn tls_server(db: &TestDb) -> (reqwest::Client, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["gaia.test".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let tls = TlsConfig {
        cert_path: dir.path().join("cert.pem"),
        key_path: dir.path().join("key.pem"),
        client_ca_path: None,
        require_client_cert: false,
    };
    let storage = Storage::connect(&db.url).await.unwrap();
    storage.migrate().await.unwrap();
    let mut c = config();
    c.server.tls = Some(tls.clone());
    let state = AppState::new(c, storage, Arc::new(MemoryCache::new(100)), ProviderRegistry::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_config = gaia_server::tls::server_config(&tls).unwrap();
    tokio::spawn(gaia_server::serve_tls(listener, server_config, state, std::future::pending()));
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .resolve("gaia.test", addr)
        .build()
        .unwrap();
    (client, format!("https://gaia.test:{}", addr.port()), dir)
}

fn set_cookies(h: &reqwest::header::HeaderMap) -> Vec<String> {
    h.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn cookies_are_secure_and_hsts_is_sent_when_gaia_serves_tls() {
    let db = sqlite_db();
    let (client, base, _dir) = tls_server(&db).await;
    let r = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let sts = r.headers().get("strict-transport-security").expect("HSTS over TLS").to_str().unwrap().to_string();
    assert!(sts.contains("max-age="), "{sts}");
    let cookies = set_cookies(r.headers());
    assert!(!cookies.is_empty() && cookies.iter().all(|c| c.contains("; Secure")), "{cookies:?}");
    // JSON API answers carry HSTS too.
    let r = client.get(format!("{base}/health")).send().await.unwrap();
    assert!(r.headers().contains_key("strict-transport-security"));

    // Plain HTTP: no HSTS, no Secure; behind an HTTPS proxy: both.
    let s = start_with(sqlite_db(), None, config()).await;
    let r = s.http.get(format!("{}/login", s.url)).send().await.unwrap();
    assert!(!r.headers().contains_key("strict-transport-security"));
    assert!(set_cookies(r.headers()).iter().all(|c| !c.contains("Secure")));
    let r = s.http.get(format!("{}/login", s.url)).header("x-forwarded-proto", "https").send().await.unwrap();
    assert!(r.headers().contains_key("strict-transport-security"));
    assert!(set_cookies(r.headers()).iter().all(|c| c.contains("; Secure")));
}

/// A registration through a reverse proxy on the same host (loopback peer, with a forwarding header)
/// is not the machine's owner: never made the first administrator. A direct loopback one is.
#[tokio::test]
async fn a_registration_through_a_proxy_is_not_made_the_first_administrator() {
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        for db in database_urls().await {
            let mut c = config();
            c.rbac.first_user_admin = true;
            assert_eq!(c.server.bind, "127.0.0.1:8666", "the default bind: loopback");
            let s = start_with(db, None, c).await;
            let b = s.backend;
            // nginx on the same host forwards the first Internet registrant.
            let value = if header == "forwarded" { "for=203.0.113.66" } else { "203.0.113.66" };
            let r = s
                .http
                .post(format!("{}/api/v1/auth/register", s.url))
                .header(header, value)
                .json(&json!({"email": "first@example.com", "password": "correct horse battery"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{b}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["user"]["is_admin"], false, "{b}: through a proxy ({header})");
            assert_eq!(status_with(&s, "/rbac/roles", v["access_token"].as_str().unwrap()).await, 403, "{b}");
        }
    }
    for db in database_urls().await {
        let mut c = config();
        c.rbac.first_user_admin = true;
        let s = start_with(db, None, c).await;
        let (st, v) = register(&s, "owner@example.com", json!({})).await;
        assert_eq!(st, 201);
        assert_eq!(v["user"]["is_admin"], true, "{}: straight from this machine", s.backend);
    }
}

/// An address of `rbac.admin_emails` registered openly is not proven, even on a loopback listener
/// (a proxy may forward anyone to it): an ordinary user.
#[tokio::test]
async fn an_admin_email_on_a_loopback_listener_is_not_proven_without_an_invitation() {
    for db in database_urls().await {
        let mut c = config();
        c.rbac.admin_emails = vec!["boss@example.com".into()];
        let s = start_with(db, None, c).await;
        let (st, v) = register(&s, "boss@example.com", json!({})).await;
        assert_eq!(st, 201);
        assert_eq!(v["user"]["is_admin"], false, "{}: typing the address proves nothing", s.backend);
    }
}

/// A login request from a client at `ip` behind the trusted proxy (the test client's loopback).
fn login_from(s: &TestServer, ip: &str, email: &str, password: &str) -> reqwest::RequestBuilder {
    s.http
        .post(format!("{}/api/v1/auth/login", s.url))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
}

/// Guessing from one address locks out that address only: the owner signs in from another.
#[tokio::test]
async fn failed_sign_ins_from_one_address_do_not_lock_the_owner_out() {
    for db in database_urls().await {
        let mut c = config();
        c.auth.login_failures_per_account = 3;
        c.auth.login_attempts_per_address = 1000;
        c.auth.trusted_proxies = vec!["127.0.0.0/8".into()];
        let s = start_with(db, None, c).await;
        let b = s.backend;
        register(&s, "victim@example.com", json!({})).await;
        for _ in 0..3 {
            let st = login_from(&s, "203.0.113.66", "victim@example.com", "guess guess").send().await.unwrap().status();
            assert_eq!(st, 401, "{b}");
        }
        let attacker = login_from(&s, "203.0.113.66", "victim@example.com", "correct horse battery");
        assert_eq!(attacker.send().await.unwrap().status(), 429, "{b}: the guessing address is locked out");
        let owner = login_from(&s, "198.51.100.7", "victim@example.com", "correct horse battery");
        assert_eq!(owner.send().await.unwrap().status(), 200, "{b}: the owner, from elsewhere");
    }
}

/// Attempts are charged before hashing: a parallel burst of guesses from one address gets at most the
/// limit through to the hash (it used to get the limit + the hashing slots + the queue).
#[tokio::test]
async fn a_parallel_burst_of_guesses_gets_at_most_the_limit_through() {
    let mut c = config();
    c.auth.login_failures_per_account = 3;
    c.auth.login_attempts_per_address = 0;
    c.auth.hash_concurrency = 1;
    c.auth.hash_queue = 64;
    let s = start_with(sqlite_db(), None, c).await;
    register(&s, "victim@example.com", json!({})).await;
    let burst: Vec<_> = (0..24)
        .map(|_| {
            let (http, url) = (s.http.clone(), format!("{}/api/v1/auth/login", s.url));
            tokio::spawn(async move {
                let body = json!({"email": "victim@example.com", "password": "guess guess"});
                http.post(url).json(&body).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in burst {
        statuses.push(t.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, throttled), (3, 21), "{statuses:?}");
}

/// Logout with an access token that is no longer valid (revoked, or expired) in the header still
/// revokes the refresh token of the body; `all` still needs valid credentials.
#[tokio::test]
async fn logout_with_a_stale_access_token_still_revokes_the_refresh_token() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        let b = s.backend;
        let logout = |bearer: String, body: Value| {
            let r = s.http.post(format!("{}/api/v1/auth/logout", s.url)).bearer_auth(bearer).json(&body);
            async move { r.send().await.unwrap().status().as_u16() }
        };
        let (revoked_access, _, user_id) = s.register("stale@example.com").await;
        assert_eq!(logout(revoked_access.clone(), json!({})).await, 204, "{b}");
        let expired = s
            .state
            .auth()
            .jwt()
            .sign(&gaia_core::auth::Claims {
                sub: user_id.clone(),
                exp: 1,
                iat: 0,
                aud: "authenticated".into(),
                email: None,
                role: None,
                sid: None,
            })
            .unwrap();
        for stale in [revoked_access.clone(), expired] {
            let (_, v, _) = login(&s, "stale@example.com", "correct horse battery").await;
            let refresh = v["refresh_token"].as_str().unwrap().to_string();
            assert_eq!(logout(stale.clone(), json!({"refresh_token": refresh})).await, 204, "{b}");
            let (st, _, _) = post(&s, "/auth/refresh", json!({"refresh_token": refresh})).await;
            assert_eq!(st, 401, "{b}: the refresh token was revoked");
            assert_eq!(logout(stale.clone(), json!({"all": true})).await, 401, "{b}: `all` needs valid credentials");
            assert_eq!(logout(stale, json!({})).await, 401, "{b}: nothing valid to sign out");
        }
    }
}

/// An HS256 token signed with `secret` over arbitrary `claims` (what another issuer sharing the secret,
/// such as Supabase, sends).
fn hs256(secret: &[u8], claims: &Value) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!("{}.{}", b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#), b64.encode(claims.to_string()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64.encode(mac.finalize().into_bytes()))
}

/// Another issuer's token with a standard OIDC `sid` claim is not checked against Gaia's sign-in
/// sessions (it used to be refused); Gaia's own forged `gaia_sid` still is.
#[tokio::test]
async fn an_external_token_with_an_oidc_sid_is_accepted() {
    for db in database_urls().await {
        let c = config();
        let secret = c.jwt_secret.clone().unwrap();
        let s = start_with(db, None, c).await;
        let b = s.backend;
        let exp = chrono::Utc::now().timestamp() + 300;
        let external = hs256(
            secret.as_bytes(),
            &json!({"sub": "a0f1c2d3-external-user", "aud": "authenticated", "exp": exp, "role": "authenticated",
                    "email": "ext@example.com", "sid": "4f9e1c7a-supabase-session"}),
        );
        assert_eq!(status_with(&s, "/conversations", &external).await, 200, "{b}");
        let forged = hs256(
            secret.as_bytes(),
            &json!({"sub": "a0f1c2d3-external-user", "aud": "authenticated", "exp": exp,
                    "gaia_sid": "no-such-session"}),
        );
        assert_eq!(status_with(&s, "/conversations", &forged).await, 401, "{b}: Gaia's marker is checked");
    }
}

/// "Sign out everywhere" ends the web UI sessions too.
#[tokio::test]
async fn signing_out_everywhere_ends_web_sessions() {
    for db in database_urls().await {
        let s = start_with(db, None, config()).await;
        let b = s.backend;
        let (access, _, user_id) = s.register("everywhere@example.com").await;
        let (token, _) = s.state.auth().create_session(&user_id, std::time::Duration::from_secs(600)).await.unwrap();
        let with_cookie = || {
            let r =
                s.http.get(format!("{}/api/v1/conversations", s.url)).header("cookie", format!("gaia_session={token}"));
            async move { r.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(with_cookie().await, 200, "{b}");
        let r = s
            .http
            .post(format!("{}/api/v1/auth/logout", s.url))
            .bearer_auth(&access)
            .json(&json!({"all": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{b}");
        assert_eq!(with_cookie().await, 401, "{b}: the browser's session ended too");
    }
}

/// Administrators list invitations (never their tokens) and revoke one: it then registers nobody.
#[tokio::test]
async fn invitations_are_listed_without_tokens_and_can_be_revoked() {
    for db in database_urls().await {
        let mut c = config();
        c.auth.registration = Registration::Invite;
        let s = start_with(db, None, c).await;
        let b = s.backend;
        let admin = admin_key(&s).await;
        let url = format!("{}/api/v1/auth/invites", s.url);
        let r = s.http.post(&url).header("x-api-key", &admin).json(&json!({"email": "new@example.com"})).send();
        let created: Value = r.await.unwrap().json().await.unwrap();
        let (id, token) = (created["id"].as_str().unwrap(), created["token"].as_str().unwrap());

        let r = s.http.get(&url).header("x-api-key", &admin).send().await.unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let text = r.text().await.unwrap();
        assert!(!text.contains(token) && !text.contains(&hash_api_key(token)), "{b}: no token, no hash: {text}");
        let listed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(listed["invites"][0]["id"], id, "{b}");
        assert_eq!(listed["invites"][0]["status"], "pending", "{b}");
        assert_eq!(listed["invites"][0]["email"], "new@example.com", "{b}");

        // Only administrators.
        let player = s.state.storage().create_user("player@example.com", None, None).await.unwrap();
        let player_key = s.state.auth().create_api_key(&player.id, None).await.unwrap().1;
        assert_eq!(s.http.get(&url).header("x-api-key", &player_key).send().await.unwrap().status(), 403);
        let del =
            |key: &str, id: &str| s.http.delete(format!("{url}/{id}")).header("x-api-key", key.to_string()).send();
        assert_eq!(del(&player_key, id).await.unwrap().status(), 403, "{b}");
        assert_eq!(s.http.delete(format!("{url}/{id}")).send().await.unwrap().status(), 401, "{b}");

        // Revoked: the token registers nobody; a second revocation is a 404.
        assert_eq!(del(&admin, id).await.unwrap().status(), 204, "{b}");
        let (st, _) = register(&s, "new@example.com", json!({"invite_token": token})).await;
        assert_eq!(st, 403, "{b}: a revoked invitation");
        assert_eq!(del(&admin, id).await.unwrap().status(), 404, "{b}");
        assert_eq!(del(&admin, &"x".repeat(10_000)).await.unwrap().status(), 404, "{b}");
        let listed: Value = s.http.get(&url).header("x-api-key", &admin).send().await.unwrap().json().await.unwrap();
        assert_eq!(listed["invites"].as_array().unwrap().len(), 0, "{b}");
    }
}
