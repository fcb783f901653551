//! The admin console over plain HTTP: every page renders for an administrator and is a 403 page for
//! anyone else (every form too); each form changes what its REST route changes, audited, only with
//! the session's CSRF token; a budget changed in the console applies to the user's next request.
//! (In headless Chromium: `browser::the_admin_console_in_headless_chromium`.) SQLite and PostgreSQL.

use crate::common;

use common::{start_with, Fetch, TestServer};
use gaia_core::testing::database_urls;
use gaia_core::types::ModelPrice;
use gaia_providers::mock::MockConfig;
use serde_json::{json, Value};

fn config() -> gaia_core::Config {
    let mut c = common::test_config();
    c.guardrails = toml::from_str(
        r#"
        [[rules]]
        name = "pii"
        check = "pii"
        stage = "input"
        action = "redact"
        "#,
    )
    .unwrap();
    c
}

/// The console's pages and forms from the route table, with `x` for path parameters.
fn console_routes(s: &TestServer) -> Vec<(String, String)> {
    gaia_server::route_table(&s.state)
        .into_iter()
        .filter(|r| r.path == "/admin" || r.path.starts_with("/admin/"))
        .map(|r| {
            let path = r.path.split('/').map(|seg| if seg.starts_with('{') { "x" } else { seg }).collect::<Vec<_>>();
            (r.method, path.join("/"))
        })
        .collect()
}

/// A chat through the API with `key` for player `player`, tagged.
async fn chat(s: &TestServer, key: &str, player: &str) -> reqwest::Response {
    s.post("/v1/chat/completions", key)
        .header("x-gaia-tags", "npc=louisa")
        .json(&json!({"model": "mock-gpt", "user": player, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_console_page_renders_for_administrators_and_is_refused_to_others() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), config()).await;
        let b = s.backend;
        let (_, _, admin_id) = s.register("boss@example.com").await;
        s.state.storage().set_admin(&admin_id, true).await.unwrap();
        let (token, _, _) = s.register("player@example.com").await;
        // A developer reads everyone's usage, and only that: the usage page, no other.
        let (_, _, dev_id) = s.register("dev@example.com").await;
        s.state.rbac().await.grant(None, &dev_id, "developer", None, None).await.unwrap();
        // Something to chart: tagged calls for two players.
        let (key, _) = s.api_key(&token).await;
        for p in ["ana", "ben", "ana"] {
            assert_eq!(chat(&s, &key, p).await.status(), 200, "{b}");
        }
        let admin = s.sign_in_web("boss@example.com").await;
        let user = s.sign_in_web("player@example.com").await;
        let dev = s.sign_in_web("dev@example.com").await;

        let routes = console_routes(&s);
        let pages: Vec<&String> = routes.iter().filter(|(m, _)| m == "GET").map(|(_, p)| p).collect();
        assert!(pages.len() >= 10, "{pages:?}");
        for path in &pages {
            let (status, html) = admin.page(path).await;
            assert_eq!(status, 200, "{b}: {path} for an administrator: {html}");
            if *path != "/admin/providers/live" {
                assert!(html.contains("Gaia admin") && html.contains("<h1>"), "{path}");
            }
            let (status, html) = user.page(path).await;
            assert_eq!(status, 403, "{b}: {path} for a user");
            if *path != "/admin/providers/live" {
                assert!(html.contains("403 Forbidden") && !html.contains("Gaia admin"), "{path}: a refusal page");
            }
            let (status, _) = dev.page(path).await;
            assert_eq!(status, if *path == "/admin/usage" { 200 } else { 403 }, "{b}: {path} for a developer");
        }
        // Every form refuses a non-administrator before doing anything, whatever the token.
        for (_, path) in routes.iter().filter(|(m, _)| m == "POST") {
            let (status, _, _) = user.submit(path, &[("limit_usd", "1")]).await;
            assert_eq!(status, 403, "{b}: POST {path} for a user");
        }

        // The chat page links to the console for administrators only.
        assert!(admin.page("/chat").await.1.contains("href=\"/admin\""));
        assert!(!user.page("/chat").await.1.contains("href=\"/admin\""));

        // The usage page charts the calls by day, model, user, player and tag, as SVG.
        let (_, html) = admin.page("/admin/usage?days=7").await;
        for part in ["by-day", "by-model", "by-user", "by-end-user", "by-tag"] {
            assert!(html.contains(&format!("id=\"{part}")), "{part}");
        }
        assert!(html.contains("<svg") && html.contains("mock-gpt") && html.contains("player@example.com"), "{b}");
        let players = &html[html.find("id=\"by-end-user").unwrap()..html.find("id=\"by-tag").unwrap()];
        // Players are told apart by their caller.
        assert!(players.contains(">ana (player@example.com)<"), "{b}: players are charted: {players}");
        assert!(players.contains(">ben (player@example.com)<"), "{b}: {players}");
        assert!(html[html.find("id=\"by-tag").unwrap()..].contains(">louisa<"), "{b}: tags are charted");
        assert!(!html.contains("style="), "no inline style: the CSP holds");
        // Its CSV links work with the session.
        let csv = html.split("href=\"/api/v1/usage/report?").nth(1).unwrap();
        let csv = csv[..csv.find('"').unwrap()].replace("&amp;", "&");
        let r = admin
            .http
            .get(format!("{}/api/v1/usage/report?{csv}", s.url))
            .header("cookie", &admin.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}: {csv}");
        assert!(r.text().await.unwrap().contains("requests"));
        // So does the report over everyone's usage.
        let r = admin
            .http
            .get(format!("{}/api/v1/usage/report?user_id=*&group_by=end_user", s.url))
            .header("cookie", &admin.cookie)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let keys: Vec<&str> = v["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap()).collect();
        let player_id = s.state.storage().get_user_by_email("player@example.com").await.unwrap().unwrap().id;
        assert!(keys.contains(&format!("{player_id}:ana").as_str()), "{b}: {keys:?}");
        // Odd query values are ignored rather than failing the page.
        assert_eq!(admin.page("/admin/usage?days=abc&tag=%3Cx%3E").await.0, 200);
        assert_eq!(admin.page("/admin/audit?action=%25_%27").await.0, 200);
    }
}

#[tokio::test]
async fn administrators_change_everything_from_the_console_and_it_applies() {
    for db in database_urls().await {
        let s = start_with(db, Some(MockConfig::default()), config()).await;
        let b = s.backend;
        // One dollar per thousand tokens: every call costs something.
        s.state.providers().set_price("openai", "mock-gpt", ModelPrice::new(1000.0, 1000.0));
        let (_, _, admin_id) = s.register("boss@example.com").await;
        s.state.storage().set_admin(&admin_id, true).await.unwrap();
        let (token, _, user_id) = s.register("player@example.com").await;
        let (key, _) = s.api_key(&token).await;
        let admin = s.sign_in_web("boss@example.com").await;
        let done = |r: (u16, String, String), code: &str| {
            assert_eq!((r.0, r.1.as_str()), (303, code), "{b}: {}", r.2);
        };

        // Without the session's CSRF token nothing changes.
        let budget = [
            ("scope", "user"),
            ("subject", "player@example.com"),
            ("period", "daily"),
            ("limit_usd", "5"),
            ("hard", "1"),
        ];
        let (status, _, _) = admin.post_form("/admin/budgets", &budget).await;
        assert_eq!(status, 403, "{b}");
        let (status, _, _) =
            admin.post_form("/admin/budgets", &[&budget[..], &[("csrf_token", "forged")]].concat()).await;
        assert_eq!(status, 403, "{b}");
        assert!(s.state.storage().list_budgets(None).await.unwrap().is_empty());

        // A budget made and then lowered in the console stops the user's next call.
        done(admin.submit("/admin/budgets", &budget).await, "/admin/limits?done=budget.create");
        let mine: Value = s.get("/api/v1/budgets/mine", &key).fetch_json().await;
        assert_eq!(mine["budgets"][0]["limit_usd"], 5.0, "{b}: {mine}");
        assert_eq!(chat(&s, &key, "ana").await.status(), 200, "{b}");
        let (_, html) = admin.page("/admin/limits").await;
        assert!(html.contains("player@example.com") && html.contains("of $5.00"), "{b}: spend shown");
        let id = s.state.storage().list_budgets(None).await.unwrap()[0].id.clone();
        done(
            admin.submit(&format!("/admin/budgets/{id}"), &[("limit_usd", "0.000001"), ("hard", "1")]).await,
            "/admin/limits?done=budget.update",
        );
        let r = chat(&s, &key, "ana").await;
        assert_eq!(r.status(), 402, "{b}: the lowered budget applies at once");
        let mine: Value = s.get("/api/v1/budgets/mine", &key).fetch_json().await;
        assert_eq!(mine["budgets"][0]["limit_usd"], 0.000001, "{b}: the user sees the new limit");
        // A bad value is an error in the page, and the budget is kept.
        let (status, _, html) = admin.submit(&format!("/admin/budgets/{id}"), &[("limit_usd", "lots")]).await;
        assert_eq!(status, 400, "{b}");
        assert!(html.contains("limit: `lots` is not a number") && html.contains("Gaia admin"), "{html}");
        let (status, _, html) = admin.submit(&format!("/admin/budgets/{id}"), &[("limit_usd", "-3")]).await;
        assert_eq!(status, 400);
        assert!(html.contains("positive"), "{html}");
        assert_eq!(s.state.storage().budget(&id).await.unwrap().unwrap().limit_usd, 0.000001);
        // The REST route changes it the same way.
        let r = s
            .http
            .patch(format!("{}/api/v1/budgets/{id}", s.url))
            .header("cookie", &admin.cookie)
            .header("x-csrf-token", &admin.csrf)
            .json(&json!({"limit_usd": 50}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{b}");
        assert_eq!(chat(&s, &key, "ana").await.status(), 200, "{b}");
        done(admin.submit(&format!("/admin/budgets/{id}/delete"), &[]).await, "/admin/limits?done=budget.delete");

        // Rate limits, by email.
        let limit = [
            ("scope", "user"),
            ("subject", "player@example.com"),
            ("requests_per_minute", "7"),
            ("tokens_per_minute", ""),
        ];
        done(admin.submit("/admin/limits", &limit).await, "/admin/limits?done=limit.set");
        let set = s.state.storage().rate_limit(gaia_core::storage::LimitScope::User, &user_id).await.unwrap().unwrap();
        assert_eq!((set.requests_per_minute, set.tokens_per_minute), (Some(7), None));
        let (status, _, html) = admin.submit("/admin/limits", &[("scope", "galaxy"), ("subject", "x")]).await;
        assert_eq!(status, 400, "{b}");
        assert!(html.contains("class=\"error\""), "{html}");
        done(
            admin.submit(&format!("/admin/limits/user/{user_id}/delete"), &[]).await,
            "/admin/limits?done=limit.delete",
        );

        // Keys: made for a user (shown once), rotated, revoked.
        let (status, _, html) =
            admin.submit("/admin/keys", &[("owner", "player@example.com"), ("name", "game server")]).await;
        assert_eq!(status, 200, "{b}: {html}");
        let shown = |html: &str| {
            let at = html.find("id=\"new-key\">").expect("the new key") + "id=\"new-key\">".len();
            html[at..at + html[at..].find('<').unwrap()].to_string()
        };
        let made = shown(&html);
        assert_eq!(s.get("/v1/models", &made).send().await.unwrap().status(), 200, "{b}: the new key works");
        assert!(!admin.page("/admin/keys").await.1.contains(&made), "shown once only");
        let rec = s.state.storage().list_api_keys(Some(&user_id)).await.unwrap();
        let made_id = rec.iter().find(|k| k.name.as_deref() == Some("game server")).unwrap().id.clone();
        let (status, _, html) = admin.submit(&format!("/admin/keys/{made_id}/rotate"), &[("overlap_secs", "0")]).await;
        assert_eq!(status, 200, "{b}: {html}");
        let rotated = shown(&html);
        assert_eq!(s.get("/v1/models", &rotated).send().await.unwrap().status(), 200);
        assert_eq!(s.get("/v1/models", &made).send().await.unwrap().status(), 401, "{b}: no overlap asked");
        let rotated_id = s
            .state
            .storage()
            .list_api_keys(Some(&user_id))
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.name.as_deref() == Some("game server") && k.id != made_id)
            .unwrap()
            .id;
        done(admin.submit(&format!("/admin/keys/{rotated_id}/revoke"), &[]).await, "/admin/keys?done=key.revoke");
        assert_eq!(s.get("/v1/models", &rotated).send().await.unwrap().status(), 401, "{b}: revoked");
        let (status, _, _) = admin.submit("/admin/keys", &[("owner", "nobody@example.com")]).await;
        assert_eq!(status, 404);

        // Prices.
        let price = [
            ("model", "openai/mock-gpt"),
            ("input", "2.5"),
            ("output", "10"),
            ("cached_input", "1.25"),
            ("effective_from", ""),
        ];
        done(admin.submit("/admin/prices", &price).await, "/admin/models?done=price.add");
        let p = s.state.providers().price_at("openai", "mock-gpt", chrono::Utc::now()).unwrap();
        assert_eq!((p.price.input, p.price.output, p.price.cached_input), (2.5, 10.0, Some(1.25)), "{b}");
        let (status, _, _) =
            admin.submit("/admin/prices", &[("model", "openai/mock-gpt"), ("input", "NaN"), ("output", "1")]).await;
        assert_eq!(status, 400, "{b}");

        // Roles, teams and members; the names shown are escaped.
        s.state
            .storage()
            .update_user_settings(
                &user_id,
                &gaia_core::storage::UserSettings {
                    display_name: Some("<img src=x onerror=alert(1)>".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        done(
            admin.submit("/admin/grants", &[("user", "player@example.com"), ("role", "developer")]).await,
            "/admin/users?done=grant.create",
        );
        let grants = s.state.rbac().await.grants(Some(&user_id)).await.unwrap();
        assert!(grants.iter().any(|g| g.role == "developer"), "{b}");
        let (_, html) = admin.page("/admin/users?q=player").await;
        assert!(html.contains("&lt;img src=x") && !html.contains("<img src=x"), "{b}: escaped");
        let grant_id = grants.iter().find(|g| g.role == "developer").unwrap().id.clone();
        done(admin.submit(&format!("/admin/grants/{grant_id}/revoke"), &[]).await, "/admin/users?done=grant.revoke");
        done(
            admin.submit("/admin/groups", &[("kind", "team"), ("name", "Quest writers")]).await,
            "/admin/teams?done=group.create",
        );
        let team = s.state.rbac().await.groups(gaia_rbac::GroupKind::Team).await.unwrap().remove(0);
        done(
            admin
                .submit(
                    &format!("/admin/groups/{}/members", team.id),
                    &[("user", "player@example.com"), ("role", "kb_editor")],
                )
                .await,
            "/admin/teams?done=member.add",
        );
        assert!(admin.page("/admin/teams").await.1.contains("player@example.com · kb_editor"), "{b}");
        done(
            admin.submit(&format!("/admin/groups/{}/members/{user_id}/remove", team.id), &[]).await,
            "/admin/teams?done=member.remove",
        );
        done(admin.submit(&format!("/admin/groups/{}/delete", team.id), &[]).await, "/admin/teams?done=group.delete");

        // Guardrails: configured rules only.
        let (status, _, html) =
            admin.submit("/admin/guardrails", &[("scope", "key"), ("subject", "k1"), ("rules", "pii, nope")]).await;
        assert_eq!(status, 400, "{b}");
        assert!(html.contains("no guardrail rule is named `nope`"), "{html}");
        done(
            admin.submit("/admin/guardrails", &[("scope", "key"), ("subject", "k1"), ("rules", "pii")]).await,
            "/admin/guardrails?done=guardrails.bind",
        );
        assert!(admin.page("/admin/guardrails").await.1.contains("k1"));
        done(admin.submit("/admin/guardrails/key/k1/unbind", &[]).await, "/admin/guardrails?done=guardrails.unbind");

        // Providers: a probe joins the statistics.
        done(admin.submit("/admin/providers/openai/probe", &[]).await, "/admin/providers?done=probe");
        assert!(s.state.providers().stats("openai").snapshot().last_probe_ok == Some(true), "{b}");
        let (status, _, _) = admin.submit("/admin/providers/nope/probe", &[]).await;
        assert_eq!(status, 404);

        // Everything above is in the audit log, by the administrator, and shown on its page.
        let records = s.state.storage().audit_records(None, 500).await.unwrap();
        for action in [
            "budget.create",
            "budget.update",
            "budget.delete",
            "limit.set",
            "key.create",
            "key.rotate",
            "key.revoke",
            "price.add",
            "guardrails.bind",
        ] {
            let r = records.iter().find(|r| r.action == action).unwrap_or_else(|| panic!("{b}: {action} audited"));
            assert_eq!(r.actor_id.as_deref(), Some(admin_id.as_str()), "{action}");
        }
        let made_by_admin = records.iter().find(|r| r.action == "key.create" && r.details["owner"] == user_id.as_str());
        assert!(made_by_admin.is_some(), "{b}: a key made for someone else names its owner");
        let (_, html) = admin.page("/admin/audit?action=budget.").await;
        assert!(html.contains("budget.update") && !html.contains("key.revoke"), "{b}");
    }
}
