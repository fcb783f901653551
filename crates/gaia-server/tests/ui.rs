//! The web UI over plain HTTP: sign-up and sign-in with CSRF, the session cookie's flags, the chat
//! page, the API from the browser (cookie + CSRF header), safe rendering, logout. (Browser-level
//! tests in headless Chromium come with the rest of the UI.) SQLite and PostgreSQL.

use crate::common;

use common::{set_cookie, start, Fetch};
use gaia_core::testing::database_urls;
use gaia_core::Config;
use gaia_providers::mock::MockConfig;
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use std::time::Duration;

fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf_token\" value=\"").or_else(|| html.find("name=\"csrf-token\" content=\"")).unwrap();
    let rest = &html[at..];
    let start = rest.find("=\"").unwrap();
    let rest = &rest[start + 2..];
    let rest = &rest[rest.find("\"").unwrap() + 1..];
    let rest = &rest[rest.find('"').unwrap() + 1..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test]
async fn register_login_chat_and_logout_in_the_browser_flow() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
        let url = |p: &str| format!("{}{p}", s.url);

        // Signed out: the chat sends you to the login page.
        let r = http.get(url("/chat")).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/login"), "{b}");
        // The register form sets a double-submit CSRF cookie and embeds the same token.
        let r = http.get(url("/register")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let (cookie_token, _) = set_cookie(&r, "gaia_csrf").unwrap();
        let page = r.text().await.unwrap();
        assert!(page.contains("/assets/htmx.min.js") && !page.contains("https://unpkg"), "htmx is served locally");
        let form_token = csrf_in(&page);
        assert_eq!(form_token, cookie_token);
        // Without the cookie (a cross-site post), the form is refused.
        let r = http
            .post(url("/register"))
            .form(&[("email", "p@example.com"), ("password", "correct horse"), ("csrf_token", form_token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{b}");
        // A short password: 400 and the form again with the message.
        let r = http
            .post(url("/register"))
            .header("cookie", format!("gaia_csrf={cookie_token}"))
            .form(&[("email", "p@example.com"), ("password", "short"), ("csrf_token", form_token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("at least 8 characters"));
        let r = http
            .post(url("/register"))
            .header("cookie", format!("gaia_csrf={cookie_token}"))
            .form(&[
                ("email", "p@example.com"),
                ("password", "correct horse"),
                ("display_name", "Pia <b>"),
                ("csrf_token", form_token.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{b}");
        let (session, raw) = set_cookie(&r, "gaia_session").unwrap();
        assert!(raw.contains("HttpOnly") && raw.contains("SameSite=Lax"), "{raw}");
        let cookie = format!("gaia_session={session}");

        // The chat page, with the session's CSRF token; the display name is escaped.
        let r = http.get(url("/chat")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains("Pia &lt;b&gt;"), "escaped name");
        let csrf = csrf_in(&page);
        // The API accepts the cookie, but changes need the CSRF header.
        let chat = json!({"message": "Say <script>alert(1)</script> please"});
        let r = http.post(url("/api/v1/chat")).header("cookie", &cookie).json(&chat).send().await.unwrap();
        assert_eq!(r.status(), 403, "{b}");
        let r = http
            .post(url("/api/v1/chat"))
            .header("cookie", &cookie)
            .header("x-csrf-token", "wrong")
            .json(&chat)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let r = http
            .post(url("/api/v1/chat"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&chat)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        let v: Value = r.json().await.unwrap();
        let conv = v["_metadata"]["conversation_id"].as_str().unwrap().to_string();
        // GETs need no CSRF token.
        let r = http.get(url("/api/v1/conversations")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200);

        // Messages render as sanitised Markdown: the model's echo of <script> is text.
        let r = http
            .get(url(&format!("/ui/conversations/{conv}/messages")))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let frag = r.text().await.unwrap();
        assert!(!frag.contains("<script>"), "{frag}");
        assert!(frag.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{frag}");
        let page = http.get(url(&format!("/chat/{conv}"))).header("cookie", &cookie).fetch_text().await;
        assert!(page.contains("class=\"conv current\""), "the open conversation is marked");
        // Search in the sidebar fragment.
        let frag = http.get(url("/ui/conversations?q=script")).header("cookie", &cookie).fetch_text().await;
        assert!(frag.contains(&conv));
        let frag = http.get(url("/ui/conversations?q=nothing-like-this")).header("cookie", &cookie).fetch_text().await;
        assert!(frag.contains("No conversations"));

        // Logout needs the token, ends the session and clears the cookie.
        let r =
            http.post(url("/logout")).header("cookie", &cookie).form(&[("csrf_token", "nope")]).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let r = http
            .post(url("/logout"))
            .header("cookie", &cookie)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert!(set_cookie(&r, "gaia_session").unwrap().1.contains("Max-Age=0"));
        let r = http.get(url("/api/v1/conversations")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 401, "{b}: the session is over");

        // Login: wrong password is a 401 page; right one a new session.
        let r = http.get(url("/login")).send().await.unwrap();
        let (tok, _) = set_cookie(&r, "gaia_csrf").unwrap();
        let r = http
            .post(url("/login"))
            .header("cookie", format!("gaia_csrf={tok}"))
            .form(&[("email", "p@example.com"), ("password", "wrong password"), ("csrf_token", tok.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.text().await.unwrap().contains("Invalid email or password"));
        let r = http
            .post(url("/login"))
            .header("cookie", format!("gaia_csrf={tok}"))
            .form(&[("email", "P@example.com"), ("password", "correct horse"), ("csrf_token", tok.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert!(set_cookie(&r, "gaia_session").is_some());
        // Assets.
        let r = http.get(url("/assets/app.js")).send().await.unwrap();
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
        assert_eq!(http.get(url("/assets/nope.js")).send().await.unwrap().status(), 404);
    }
}

#[tokio::test]
async fn the_settings_page_saves_the_profile() {
    for db in database_urls().await {
        let s = start(db, Some(MockConfig::default())).await;
        let b = s.backend;
        let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
        let url = |p: &str| format!("{}{p}", s.url);
        let uid = s.register("set@example.com").await.2;
        let (token, _) = s.state.auth().create_session(&uid, std::time::Duration::from_secs(600)).await.unwrap();
        let cookie = format!("gaia_session={token}");
        let r = http.get(url("/settings")).send().await.unwrap();
        assert_eq!(r.headers()["location"], "/login", "signed out");
        let page = http.get(url("/settings")).header("cookie", &cookie).fetch_text().await;
        assert!(page.contains("Profile and settings") && page.contains("set@example.com"), "{b}");
        assert!(page.contains("openai/mock-gpt"), "models to pick from");
        let csrf = csrf_in(&page);
        // A pirate persona to pick.
        let p: Value = http
            .post(url("/api/v1/personas"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({"name": "Pirate", "system_prompt": "Arr."}))
            .fetch_json()
            .await;
        let pid = p["id"].as_str().unwrap();
        let form = |csrf: &str, theme: &str| {
            vec![
                ("csrf_token", csrf.to_string()),
                ("display_name", "Captain <Mara>".to_string()),
                ("default_model", "openai/mock-gpt".to_string()),
                ("default_persona_id", pid.to_string()),
                ("theme", theme.to_string()),
            ]
        };
        // Without the token: 403 and nothing changes.
        let r = http.post(url("/settings")).header("cookie", &cookie).form(&form("bad", "light")).send().await.unwrap();
        assert_eq!(r.status(), 403);
        // A bad theme: 400 with the reason on the page.
        let r = http.post(url("/settings")).header("cookie", &cookie).form(&form(&csrf, "pink")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{b}");
        assert!(r.text().await.unwrap().contains("theme must be"));
        let r = http.post(url("/settings")).header("cookie", &cookie).form(&form(&csrf, "light")).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/settings?saved=1"));
        let saved: Value = http.get(url("/api/v1/settings")).header("cookie", &cookie).fetch_json().await;
        assert_eq!(saved["display_name"], "Captain <Mara>", "{b}");
        assert_eq!(
            (saved["default_model"].as_str(), saved["theme"].as_str()),
            (Some("openai/mock-gpt"), Some("light"))
        );
        assert_eq!(saved["default_persona_id"], pid);
        // Pages now use them: light theme, the escaped name, the persona preselected.
        let page = http.get(url("/chat")).header("cookie", &cookie).fetch_text().await;
        assert!(page.contains("data-theme=\"light\"") && page.contains("Captain &lt;Mara&gt;"), "{b}");
        assert!(page.contains(&format!("value=\"{pid}\" selected")), "{b}");
        let page = http.get(url("/settings?saved=1")).header("cookie", &cookie).fetch_text().await;
        assert!(page.contains("Settings saved."));
    }
}

#[tokio::test]
async fn the_register_form_asks_for_an_invitation_only_when_registration_needs_one() {
    for (mode, asked) in
        [(gaia_core::config::Registration::Open, false), (gaia_core::config::Registration::Invite, true)]
    {
        let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
        config.rbac.first_user_admin = false;
        config.auth.registration = mode;
        let s = common::start_with(gaia_core::testing::sqlite_db(), None, config).await;
        let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
        let url = |p: &str| format!("{}{p}", s.url);
        let r = http.get(url("/register")).send().await.unwrap();
        let (cookie_token, _) = set_cookie(&r, "gaia_csrf").unwrap();
        let page = r.text().await.unwrap();
        assert_eq!(page.contains("name=\"invite_token\""), asked, "{mode:?}");
        if !asked {
            continue;
        }
        // The form with an invitation made for the address: an account, signed in.
        let admin = s.state.storage().create_user("root@example.com", None, None).await.unwrap();
        let (_, token) = gaia_core::auth::sign_in::create_invite(
            s.state.storage(),
            Some("p@example.com"),
            Some(&admin.id),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let form = |invite: &str| {
            [
                ("email", "p@example.com".to_string()),
                ("password", "correct horse".to_string()),
                ("csrf_token", cookie_token.clone()),
                ("invite_token", invite.to_string()),
            ]
        };
        let r = http
            .post(url("/register"))
            .header("cookie", format!("gaia_csrf={cookie_token}"))
            .form(&form("gaia_inv_forged"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "a made-up invitation");
        assert!(r.text().await.unwrap().contains("name=\"invite_token\""), "the form again, with its field");
        let r = http
            .post(url("/register"))
            .header("cookie", format!("gaia_csrf={cookie_token}"))
            .form(&form(&token))
            .send()
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/chat"));
    }
}
