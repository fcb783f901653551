//! RBAC over HTTP: every route declares its access (walked here, with and without credentials), the
//! admin API with its audit log, isolation between users and teams for the knowledge base,
//! conversations and personas (404 where existence would leak), shares, expiring grants, the first
//! user as administrator, and a change on one instance reaching another that shares the database.
//! SQLite and PostgreSQL.

use crate::common;

use common::{start, start_with};
use gaia_core::testing::{database_urls, sqlite_db};
use gaia_kb::{Kb, KbConfig};
use serde_json::{json, Value};
use std::time::Duration;

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    (status, v)
}

/// A concrete URL path for a route pattern.
fn concrete(path: &str) -> String {
    path.split('/').map(|seg| if seg.starts_with('{') { "x" } else { seg }).collect::<Vec<_>>().join("/")
}

#[tokio::test]
async fn every_route_declares_its_access_and_it_holds() {
    let s = start(sqlite_db(), Some(gaia_providers::mock::MockConfig::default())).await;
    let table = gaia_server::route_table(&s.state);
    assert!(table.len() > 60, "{} routes", table.len());
    let public: Vec<_> =
        table.iter().filter(|r| r.access == "public").map(|r| format!("{} {}", r.method, r.path)).collect();
    // The public routes are exactly these: sign-in, health, assets, the signed webhook, and the game
    // client's socket (it authenticates with the token in its query and checks access itself:
    // `play::` tests).
    let mut want = vec![
        "GET /",
        "GET /login",
        "POST /login",
        "GET /register",
        "POST /register",
        "POST /logout",
        "GET /assets/{file}",
        "GET /health",
        // For orchestrators: a status and nothing else (`chat::draining_*`).
        "GET /health/live",
        "GET /health/ready",
        "POST /api/v1/auth/register",
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/logout",
        "POST /api/v1/auth/validate",
        "POST /api/v1/kb/webhook",
        "GET /ws/experience",
        // A signed asset URL's target: the HMAC signature is the access (`assets::` tests bend it).
        "GET /media/{id}",
    ];
    want.sort();
    let mut got = public.clone();
    got.sort();
    assert_eq!(got, want);

    // A viewer: read-only everywhere.
    let (token, _, viewer_id) = s.register("viewer@example.com").await;
    s.state.rbac().await.grant(None, &viewer_id, "viewer", None, None).await.unwrap();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for r in &table {
        let url = format!("{}{}", s.url, concrete(&r.path));
        let method: reqwest::Method = r.method.parse().unwrap();
        let anon = client.request(method.clone(), &url).send().await.unwrap().status().as_u16();
        if r.access == "public" {
            // `validate` reports on the credentials it is given: none is its own 401.
            if r.path != "/api/v1/auth/validate" {
                assert_ne!(anon, 401, "{} {} is public", r.method, r.path);
            }
            continue;
        }
        if r.page {
            assert_eq!(anon, 303, "{} {}: a page sends strangers to /login", r.method, r.path);
            continue;
        }
        assert_eq!(anon, 401, "{} {} needs credentials", r.method, r.path);
        // What the policy says a viewer may do here decides: refused (403) before the handler runs,
        // or let through.
        let as_viewer = client.request(method, &url).bearer_auth(&token).send().await.unwrap().status().as_u16();
        let viewer = gaia_rbac::Subject::user(viewer_id.clone());
        let rbac = s.state.rbac().await;
        let expected = if r.access.starts_with("signed in") {
            true
        } else {
            let (needs, template) = r.access.split_once(' ').unwrap();
            let (t, a) = needs.split_once(':').unwrap();
            let (t, a): (gaia_rbac::ResourceType, gaia_rbac::Action) = (t.parse().unwrap(), a.parse().unwrap());
            if template == "(per resource)" {
                rbac.can_any(&viewer, a, t)
            } else {
                let path = concrete(&template.replace("{user}", &viewer_id));
                rbac.check(&viewer, a, &gaia_rbac::Resource::new(t, path)).allowed
            }
        };
        if expected {
            assert_ne!(as_viewer, 403, "{} {} ({}) is allowed to a viewer", r.method, r.path, r.access);
        } else {
            assert_eq!(as_viewer, 403, "{} {} ({}) is refused to a viewer", r.method, r.path, r.access);
        }
        // Writing, deleting and administration are never a viewer's.
        if ["write", "delete", "admin", "share"].iter().any(|a| r.access.contains(&format!(":{a} "))) {
            assert!(!expected, "{} {}", r.method, r.path);
        }
    }
}

#[tokio::test]
async fn the_first_user_is_admin_and_the_admin_api_is_audited() {
    for db in database_urls().await {
        let mut config =
            gaia_core::Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Default::default() };
        config.rbac.admin_emails = vec!["Boss@Example.com".into()];
        let s = start_with(db, None, config).await;
        let b = s.backend;
        let url = |p: &str| format!("{}/api/v1{p}", s.url);
        let (first, _, first_id) = s.register("first@example.com").await;
        let (second, _, second_id) = s.register("second@example.com").await;
        let me = |t: &str| s.http.get(url("/rbac/me")).bearer_auth(t).send();
        assert_eq!(json_of(me(&first).await.unwrap()).await.1["is_admin"], true, "{b}");
        assert_eq!(json_of(me(&second).await.unwrap()).await.1["is_admin"], false, "{b}");
        // An address of `rbac.admin_emails` is proven by an invitation the administrator made for it.
        let (st, invite) = json_of(
            s.http
                .post(url("/auth/invites"))
                .bearer_auth(&first)
                .json(&json!({"email": "boss@example.com"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 201, "{b}: {invite}");
        let body = json!({"email": "boss@example.com", "password": "correct horse battery",
                          "invite_token": invite["token"]});
        let (st, v) = json_of(s.http.post(url("/auth/register")).json(&body).send().await.unwrap()).await;
        assert_eq!(st, 201, "{b}: {v}");
        let boss = v["access_token"].as_str().unwrap().to_string();
        assert_eq!(json_of(me(&boss).await.unwrap()).await.1["is_admin"], true, "{b}: by configuration");

        // Non-admins cannot touch the admin API.
        let (st, _) = json_of(s.http.get(url("/rbac/roles")).bearer_auth(&second).send().await.unwrap()).await;
        assert_eq!(st, 403);
        let (st, v) = json_of(s.http.get(url("/rbac/roles")).bearer_auth(&first).send().await.unwrap()).await;
        assert_eq!(st, 200);
        let names: Vec<&str> = v["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        for r in ["admin", "developer", "user", "viewer", "kb_reader", "kb_editor", "kb_admin"] {
            assert!(names.contains(&r), "{r}");
        }
        // A team, a member, a custom role, a grant that expires; bad input is a clear 4xx.
        let (st, team) = json_of(
            s.http.post(url("/rbac/teams")).bearer_auth(&first).json(&json!({"name": "Red"})).send().await.unwrap(),
        )
        .await;
        assert_eq!(st, 201, "{b}: {team}");
        let tid = team["id"].as_str().unwrap();
        let (st, _) = json_of(
            s.http.post(url("/rbac/teams")).bearer_auth(&first).json(&json!({"name": "Red"})).send().await.unwrap(),
        )
        .await;
        assert_eq!(st, 409);
        let add = |body: Value| {
            s.http.post(url(&format!("/rbac/groups/{tid}/members"))).bearer_auth(&first).json(&body).send()
        };
        assert_eq!(json_of(add(json!({"user_id": second_id, "role": "admin"})).await.unwrap()).await.0, 400);
        assert_eq!(json_of(add(json!({"user_id": "nobody"})).await.unwrap()).await.0, 404, "{b}");
        assert_eq!(json_of(add(json!({"user_id": second_id, "role": "kb_editor"})).await.unwrap()).await.0, 201);
        let role = json!({"name": "lore_keeper", "scope": "system", "description": "Edits the common lore",
                          "permissions": [{"resource_type": "kb", "action": "write", "pattern": "/kb/common/**"}]});
        let (st, _) =
            json_of(s.http.post(url("/rbac/roles")).bearer_auth(&first).json(&role).send().await.unwrap()).await;
        assert_eq!(st, 201, "{b}");
        let bad = json!({"name": "x", "scope": "galaxy", "description": "", "permissions": []});
        assert_eq!(
            json_of(s.http.post(url("/rbac/roles")).bearer_auth(&first).json(&bad).send().await.unwrap()).await.0,
            400
        );
        let grant = json!({"user_id": second_id, "role": "lore_keeper", "expires_at": (chrono::Utc::now() + chrono::Duration::milliseconds(600)).to_rfc3339()});
        let (st, g) =
            json_of(s.http.post(url("/rbac/grants")).bearer_auth(&first).json(&grant).send().await.unwrap()).await;
        assert_eq!(st, 201, "{b}: {g}");
        let check =
            json!({"user_id": second_id, "action": "write", "resource_type": "kb", "path": "/kb/common/world/lore.md"});
        let (st, d) =
            json_of(s.http.post(url("/rbac/check")).bearer_auth(&first).json(&check).send().await.unwrap()).await;
        assert_eq!(st, 200);
        assert_eq!(d["allowed"], true, "{b}: {d}");
        assert!(d["reason"].as_str().unwrap().contains("lore_keeper"));
        // The grant expires on its own.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (_, d) =
            json_of(s.http.post(url("/rbac/check")).bearer_auth(&first).json(&check).send().await.unwrap()).await;
        assert_eq!(d["allowed"], false, "{b}: {d}");
        // who-can, and the audit log with the admin as actor.
        let (st, w) = json_of(
            s.http
                .get(url(&format!("/rbac/who-can?action=write&resource_type=kb&path=/kb/teams/{tid}/plan.md")))
                .bearer_auth(&first)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(w["users"][0]["user_id"], second_id.as_str(), "{b}: {w}");
        let (_, log) = json_of(s.http.get(url("/rbac/audit")).bearer_auth(&first).send().await.unwrap()).await;
        let actions: Vec<&str> =
            log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["grant.create", "role.create", "member.add", "team.create"], "{b}");
        assert!(log["entries"].as_array().unwrap().iter().all(|e| e["actor_id"] == first_id.as_str()));
    }
}

#[tokio::test]
async fn users_and_teams_are_isolated() {
    for db in database_urls().await {
        let s = start(db, Some(gaia_providers::mock::MockConfig::default())).await;
        let b = s.backend;
        let url = |p: &str| format!("{}/api/v1{p}", s.url);
        let (ann, _, ann_id) = s.register("ann@example.com").await;
        let (bob, _, bob_id) = s.register("bob@example.com").await;
        let (cid, _, cid_id) = s.register("cid@example.com").await;
        let rbac = s.state.rbac().await.clone();
        let team = rbac.create_group(None, gaia_rbac::GroupKind::Team, "Blue").await.unwrap();
        rbac.add_member(None, &team.id, &ann_id, "kb_editor").await.unwrap();
        rbac.add_member(None, &team.id, &cid_id, "kb_reader").await.unwrap();

        // A vault with a common area, Ann's private area and the team's area.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vault");
        for (p, text) in [
            ("world/lore.md".to_string(), "# Lore\nThe moonstone legend."),
            (format!("users/{ann_id}/diary.md"), "# Diary\nMy moonstone secret."),
            (format!("teams/{}/plan.md", team.id), "# Plan\nFind the moonstone first."),
        ] {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
        let kb = Kb::open(KbConfig { root, sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
        assert!(s.state.set_kb(kb));
        let search = |t: &str| s.http.get(url("/kb/search?q=moonstone")).bearer_auth(t).send();
        let paths = |v: &Value| -> Vec<String> {
            let mut p: Vec<String> =
                v["response"].as_array().unwrap().iter().map(|h| h["path"].as_str().unwrap().to_string()).collect();
            p.sort();
            p
        };
        let (_, v) = json_of(search(&ann).await.unwrap()).await;
        assert_eq!(paths(&v).len(), 3, "{b}: Ann sees all three: {v}");
        let (_, v) = json_of(search(&bob).await.unwrap()).await;
        assert_eq!(paths(&v), ["world/lore.md"], "{b}: Bob sees only the common area");
        assert_eq!(v["metadata"]["total"], 1);
        let (_, v) = json_of(search(&cid).await.unwrap()).await;
        assert_eq!(paths(&v), [format!("teams/{}/plan.md", team.id), "world/lore.md".to_string()], "{b}");
        // Reading another's private note: 404, exactly like a missing one; regex search, list, tools too.
        let diary = format!("users/{ann_id}/diary.md");
        let (st, _) =
            json_of(s.http.get(url(&format!("/kb/read?path={diary}"))).bearer_auth(&bob).send().await.unwrap()).await;
        let (st_missing, _) = json_of(
            s.http
                .get(url(&format!("/kb/read?path=users/{ann_id}/nothing.md")))
                .bearer_auth(&bob)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, st_missing), (404, 404), "{b}");
        assert_eq!(
            json_of(s.http.get(url(&format!("/kb/read?path={diary}"))).bearer_auth(&ann).send().await.unwrap()).await.0,
            200
        );
        let (_, v) =
            json_of(s.http.get(url("/kb/search?q=secret&mode=exact")).bearer_auth(&bob).send().await.unwrap()).await;
        assert_eq!(v["response"].as_array().unwrap().len(), 0, "{b}: {v}");
        let (_, v) = json_of(s.http.get(url("/kb/list?recursive=true")).bearer_auth(&bob).send().await.unwrap()).await;
        let listed: Vec<&str> = v["response"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
        assert_eq!(listed, ["world/lore.md"], "{b}");
        let (_, v) = json_of(
            s.http
                .post(url("/kb/tools/read_kb_file"))
                .bearer_auth(&bob)
                .json(&json!({"path": diary}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(v["status"], "error", "{b}: a tool cannot read it either");
        // Writes: own area yes, common no, team area for its editors only.
        let write = |t: &str, path: String| {
            s.http.post(url("/kb/write")).bearer_auth(t).json(&json!({"path": path, "content": "x"})).send()
        };
        assert_eq!(json_of(write(&bob, format!("users/{bob_id}/notes.md")).await.unwrap()).await.0, 201, "{b}");
        assert_eq!(json_of(write(&bob, "world/new.md".into()).await.unwrap()).await.0, 403);
        assert_eq!(json_of(write(&bob, format!("users/{ann_id}/x.md")).await.unwrap()).await.0, 403);
        assert_eq!(
            json_of(write(&cid, format!("teams/{}/x.md", team.id)).await.unwrap()).await.0,
            403,
            "{b}: a reader"
        );
        assert_eq!(
            json_of(write(&ann, format!("teams/{}/x.md", team.id)).await.unwrap()).await.0,
            201,
            "{b}: an editor"
        );

        // Conversations and personas: another user's are 404 (get, messages, rename, delete), never listed or found.
        let (_, v) = json_of(
            s.http
                .post(url("/chat"))
                .bearer_auth(&ann)
                .json(&json!({"message": "moonstone plans"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let conv = v["_metadata"]["conversation_id"].as_str().unwrap().to_string();
        for (m, p) in [
            ("GET", format!("/conversations/{conv}")),
            ("GET", format!("/conversations/{conv}/messages")),
            ("PATCH", format!("/conversations/{conv}")),
            ("DELETE", format!("/conversations/{conv}")),
        ] {
            let r = s
                .http
                .request(m.parse().unwrap(), url(&p))
                .bearer_auth(&bob)
                .json(&json!({"title": "mine"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{b}: {m} {p}");
        }
        let (_, v) =
            json_of(s.http.get(url("/conversations?q=moonstone")).bearer_auth(&bob).send().await.unwrap()).await;
        assert!(!v.to_string().contains(&conv), "{b}: {v}");
        let (_, p) = json_of(
            s.http
                .post(url("/personas"))
                .bearer_auth(&ann)
                .json(&json!({"name": "Seer", "system_prompt": "See."}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let pid = p["id"].as_str().unwrap();
        assert_eq!(
            json_of(s.http.get(url(&format!("/personas/{pid}"))).bearer_auth(&bob).send().await.unwrap()).await.0,
            404
        );
        let r = s
            .http
            .post(url("/chat"))
            .bearer_auth(&bob)
            .json(&json!({"message": "hi", "persona_id": pid}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{b}: cannot use another's persona");

        // Sharing: Ann shares the conversation with Bob (read); Bob reads it but cannot change it.
        let share = |t: &str, body: Value| s.http.post(url("/rbac/shares")).bearer_auth(t).json(&body).send();
        let (st, _) = json_of(share(&bob, json!({"conversation_id": conv, "user_id": bob_id})).await.unwrap()).await;
        assert_eq!(st, 404, "{b}: only the owner can share it");
        let (st, sh) = json_of(share(&ann, json!({"conversation_id": conv, "user_id": bob_id})).await.unwrap()).await;
        assert_eq!(st, 201, "{b}: {sh}");
        assert_eq!(
            json_of(
                s.http.get(url(&format!("/conversations/{conv}/messages"))).bearer_auth(&bob).send().await.unwrap()
            )
            .await
            .0,
            200
        );
        let r = s
            .http
            .patch(url(&format!("/conversations/{conv}")))
            .bearer_auth(&bob)
            .json(&json!({"title": "mine"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        // KB share: Ann shares her diary with Bob.
        let (st, _) = json_of(share(&bob, json!({"kb_path": diary, "user_id": bob_id})).await.unwrap()).await;
        assert_eq!(st, 403, "{b}: not Bob's to share");
        let (st, ksh) = json_of(share(&ann, json!({"kb_path": diary, "user_id": bob_id})).await.unwrap()).await;
        assert_eq!(st, 201);
        assert_eq!(
            json_of(s.http.get(url(&format!("/kb/read?path={diary}"))).bearer_auth(&bob).send().await.unwrap()).await.0,
            200,
            "{b}"
        );
        // Searches find the shared document too (filtered in the index, not document by document).
        let found = |v: &Value| -> Vec<String> {
            let mut p: Vec<String> =
                v["response"].as_array().unwrap().iter().map(|h| h["path"].as_str().unwrap().to_string()).collect();
            p.sort();
            p
        };
        let search = |q: &str| s.http.get(url(&format!("/kb/search?q={q}"))).bearer_auth(&bob).send();
        let (_, v) = json_of(search("moonstone").await.unwrap()).await;
        assert_eq!(found(&v), [diary.clone(), "world/lore.md".to_string()], "{b}: {v}");
        let id = ksh["id"].as_str().unwrap();
        assert_eq!(
            json_of(s.http.delete(url(&format!("/rbac/shares/{id}"))).bearer_auth(&bob).send().await.unwrap()).await.0,
            404
        );
        assert_eq!(
            s.http.delete(url(&format!("/rbac/shares/{id}"))).bearer_auth(&ann).send().await.unwrap().status(),
            204
        );
        assert_eq!(
            json_of(s.http.get(url(&format!("/kb/read?path={diary}"))).bearer_auth(&bob).send().await.unwrap()).await.0,
            404,
            "{b}"
        );
        let (_, v) = json_of(search("moonstone").await.unwrap()).await;
        assert_eq!(found(&v), ["world/lore.md"], "{b}: the share is gone from searches too: {v}");
        // A custom role whose pattern has a wildcard inside (every user area's `public` folder): such
        // permissions are matched document by document, and still only they are found.
        let rbac = s.state.rbac().await.clone();
        let role = gaia_rbac::Role {
            name: "public_reader".into(),
            scope: gaia_rbac::Scope::System,
            description: "reads every user's public folder".into(),
            permissions: vec![
                gaia_rbac::Permission::new(gaia_rbac::ResourceType::Kb, gaia_rbac::Action::Read, "/kb/common/**"),
                gaia_rbac::Permission::new(
                    gaia_rbac::ResourceType::Kb,
                    gaia_rbac::Action::Read,
                    "/kb/users/*/public/**",
                ),
            ],
            builtin: false,
        };
        rbac.create_role(None, role).await.unwrap();
        rbac.grant(None, &bob_id, "public_reader", None, None).await.unwrap();
        let kb = s.state.kb().unwrap();
        let public = format!("users/{ann_id}/public/map.md");
        for (p, text) in
            [(public.as_str(), "# Map\nThe moonstone lies north."), ("ruins.md", "# Ruins\nNo moonstone here.")]
        {
            let w = gaia_kb::WriteRequest { path: p.into(), content: text.into(), ..Default::default() };
            kb.write(w).await.unwrap();
        }
        let (_, v) = json_of(search("moonstone").await.unwrap()).await;
        assert_eq!(found(&v), ["ruins.md".to_string(), public, "world/lore.md".to_string()], "{b}: {v}");
        let _ = sh;
    }
}

#[tokio::test]
async fn a_change_on_one_instance_reaches_the_other() {
    // Two servers sharing one database (PostgreSQL in CI) and, when configured, one Redis.
    for db in database_urls().await {
        let b = db.backend;
        let alias = db.alias();
        let mut config =
            gaia_core::Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Default::default() };
        config.chat.auto_title = false;
        config.chat.memory = false;
        config.rbac.first_user_admin = false;
        // With Redis (CI), changes travel by pub/sub alone: database polling is off. Without it, the
        // instances poll the database.
        let redis = gaia_core::testing::redis_url();
        config.rbac.refresh_interval_ms = if redis.is_some() { 0 } else { 100 };
        let one = start_with(db, Some(gaia_providers::mock::MockConfig::default()), config.clone()).await;
        let two = start_with(alias, Some(gaia_providers::mock::MockConfig::default()), config).await;
        if let Some(url) = &redis {
            one.state.rbac().await.connect_redis(url).await.unwrap();
            two.state.rbac().await.connect_redis(url).await.unwrap();
        }
        let (tok, _, uid) = one.register("dev@example.com").await;
        // Everyone's usage: a developer's right, not a user's.
        let everyones_usage =
            |s: &common::TestServer| s.http.get(format!("{}/api/v1/usage?user_id=*", s.url)).bearer_auth(&tok).send();
        assert_eq!(everyones_usage(&two).await.unwrap().status(), 403, "{b}");
        // Made a developer on instance one: instance two lets them read everyone's usage within a second.
        let g = one.state.rbac().await.grant(None, &uid, "developer", None, None).await.unwrap();
        let mut ok = false;
        for _ in 0..50 {
            if everyones_usage(&two).await.unwrap().status() == 200 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "{b}: the grant reached instance two");
        one.state.rbac().await.revoke(None, &g.id).await.unwrap();
        let mut denied = false;
        for _ in 0..50 {
            if everyones_usage(&two).await.unwrap().status() == 403 {
                denied = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(denied, "{b}: the revocation reached instance two");
    }
}
