//! Export and erasure of one user's data (GDPR / CCPA): each test runs on SQLite and, when
//! `GAIA_TEST_DATABASE_URL` is set, on PostgreSQL.

use base64::Engine as _;
use chrono::{Duration, Utc};
use gaia_core::storage::{
    BudgetPeriod, LimitScope, NewBudget, NewUsage, PersonaInput, PersonaMemory, Storage, UsageFilter, UserExport,
    UserSettings, ERASED_USER,
};
use gaia_core::testing::{database_urls, every_value, mentions};
use gaia_core::types::{ModelPrice, Role};
use gaia_core::CoreError;
use sqlx::Row;

/// A tiny PNG (only its signature matters to the storage).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-erase-test-image";

fn usage(user: &str, key: Option<&str>, cost: f64, error: Option<String>) -> NewUsage {
    NewUsage {
        user_id: user.into(),
        api_key_id: key.map(str::to_string),
        provider: "openai".into(),
        model: "gpt".into(),
        endpoint: "chat".into(),
        input_tokens: 10,
        output_tokens: 20,
        cost_usd: cost,
        latency_ms: 5,
        ttft_ms: None,
        status: if error.is_some() { 502 } else { 200 },
        error,
        ..Default::default()
    }
}

fn persona(name: &str) -> PersonaInput {
    PersonaInput { name: Some(name.into()), system_prompt: Some(format!("You are {name}.")), ..Default::default() }
}

/// One user's data in the tables the storage API reaches (conversation, messages, an attachment, a
/// persona, a memory, an API key, usage). Returns (conversation id, persona id, key id, attachment id).
async fn some_data(s: &Storage, user: &str, tag: &str) -> (String, String, String, String) {
    let c = s.create_conversation(user, Some(&format!("chat of {tag}")), None).await.unwrap();
    let m = s.add_message(&c.id, Role::User, &format!("hello from {tag}"), None, None).await.unwrap();
    s.add_message(&c.id, Role::Assistant, &format!("hi {tag}"), Some("gpt"), None).await.unwrap();
    let a = s.create_attachment(user, Some(&format!("{tag}.png")), PNG).await.unwrap();
    s.attach_to_message(user, std::slice::from_ref(&a.id), &m.id).await.unwrap();
    let p = s.create_persona(user, &persona(&format!("Sage of {tag}"))).await.unwrap();
    let memory = PersonaMemory {
        facts: vec![format!("{tag} likes tea")],
        summary: format!("talked with {tag}"),
        ..Default::default()
    };
    s.put_persona_memory(user, &p.id, memory).await.unwrap();
    let k = s
        .insert_api_key(user, Some(&format!("key of {tag}")), &format!("gaia_{tag}"), &format!("secret-hash-of-{tag}"))
        .await
        .unwrap();
    s.insert_usage(&[usage(user, Some(&k.id), 0.25, None)]).await.unwrap();
    (c.id, p.id, k.id, a.id)
}

#[tokio::test]
async fn export_holds_everything_of_the_user_and_nothing_of_others() {
    for db in database_urls().await {
        let s = db.storage().await;
        let b = db.backend;
        let ann = s.create_user("ann.export@example.com", Some("argon2-hash-of-ann"), Some("Ann")).await.unwrap();
        let bob = s.create_user("bob.export@example.com", Some("argon2-hash-of-bob"), Some("Bob")).await.unwrap();
        let (a_conv, a_persona, a_key, a_att) = some_data(&s, &ann.id, "ann").await;
        let (b_conv, b_persona, b_key, b_att) = some_data(&s, &bob.id, "bob").await;
        let gone = s.create_conversation(&ann.id, Some("deleted chat"), None).await.unwrap();
        s.delete_conversation(&ann.id, &gone.id).await.unwrap();
        s.update_user_settings(&ann.id, &UserSettings { theme: Some("dark".into()), ..Default::default() })
            .await
            .unwrap();
        s.create_sign_in(&ann.id, "refresh-hash-of-ann", Utc::now() + Duration::days(1)).await.unwrap();
        s.set_rate_limit(LimitScope::Key, &a_key, Some(5), None, None).await.unwrap();
        // Ann and Bob in a game world: Ann carries a medkit and knows Sam.
        let world = [
            ("INSERT INTO world_instances (id, experience_id, owner_id, content_version, version, created_at, updated_at) \
              VALUES ('w-export', 'safe-house', NULL, '1.0.0', 2, 0, 0)", vec![]),
            ("INSERT INTO world_players (world_id, user_id, location_id, area_id, stats, version, updated_at) \
              VALUES ('w-export', $1, 'safe_house', 'roof', '{\"health\": 80}', 1, 0)", vec![ann.id.clone()]),
            ("INSERT INTO world_players (world_id, user_id, location_id, area_id, version, updated_at) \
              VALUES ('w-export', $1, 'pharmacy', 'front', 1, 0)", vec![bob.id.clone()]),
            ("INSERT INTO world_items (world_id, item_id, template_id, holder, data, version) \
              VALUES ('w-export', 'medkit_1', 'medkit', $1, '{\"instance_id\": \"medkit_1\"}', 1)", vec![format!("player:{}", ann.id)]),
            ("INSERT INTO world_npc_relations (world_id, user_id, npc_id, trust, updated_at) \
              VALUES ('w-export', $1, 'radio_operator', 55, 0)", vec![ann.id.clone()]),
            ("INSERT INTO world_npc_memories (world_id, user_id, npc_id, id, text, importance, created_at) \
              VALUES ('w-export', $1, 'radio_operator', 'h1', 'Ann has a dog called Biscuit', 6, 0)", vec![ann.id.clone()]),
            ("INSERT INTO world_scene_lines (world_id, scene_id, seq, user_id, speaker, text, created_at) \
              VALUES ('w-export', 'night_watch', 1, $1, 'player', 'I see a horde!', 0)", vec![ann.id.clone()]),
        ];
        for (sql, params) in &world {
            exec(&s, sql, &params.iter().map(String::as_str).collect::<Vec<_>>()).await;
        }

        let x = s.export_user(&ann.id).await.unwrap();
        assert_eq!(x.worlds.len(), 1, "{b}: {:?}", x.worlds);
        assert_eq!(x.worlds[0]["current_area"], "roof");
        assert_eq!(x.worlds[0]["stats"]["health"], 80);
        assert_eq!(x.worlds[0]["inventory"][0]["instance_id"], "medkit_1");
        assert_eq!(x.worlds[0]["relationships"][0]["trust"], 55);
        assert_eq!(x.worlds[0]["npc_memories"][0]["text"], "Ann has a dog called Biscuit", "{b}: {:?}", x.worlds);
        assert_eq!(x.worlds[0]["scene_lines"][0]["text"], "I see a horde!", "{b}: {:?}", x.worlds);
        assert_eq!((x.user.id.as_str(), x.user.email.as_str()), (ann.id.as_str(), "ann.export@example.com"), "{b}");
        assert_eq!(x.user.display_name.as_deref(), Some("Ann"));
        assert_eq!(x.settings.theme.as_deref(), Some("dark"));
        assert!(!x.truncated);
        let ids: Vec<&str> = x.conversations.iter().map(|c| c.conversation.id.as_str()).collect();
        assert_eq!(ids.len(), 2, "{b}: the live conversation and the deleted one");
        assert!(ids.contains(&a_conv.as_str()) && ids.contains(&gone.id.as_str()));
        let chat = x.conversations.iter().find(|c| c.conversation.id == a_conv).unwrap();
        assert!(chat.deleted_at.is_none());
        let texts: Vec<&str> = chat.messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["hello from ann", "hi ann"], "{b}");
        assert!(x.conversations.iter().find(|c| c.conversation.id == gone.id).unwrap().deleted_at.is_some());
        assert_eq!(
            x.personas.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            [a_persona.as_str()],
            "{b}: no built-in"
        );
        assert_eq!(x.persona_memories.len(), 1);
        assert_eq!(x.persona_memories[0].memory.facts, ["ann likes tea"]);
        assert_eq!(x.attachments.len(), 1);
        assert_eq!(x.attachments[0].id, a_att);
        assert_eq!(x.attachments[0].message_id.as_deref(), Some(chat.messages[0].id.as_str()));
        assert_eq!(x.attachments[0].size, PNG.len() as i64);
        assert_eq!(x.api_keys.len(), 1);
        assert_eq!((x.api_keys[0].id.as_str(), x.api_keys[0].prefix.as_str()), (a_key.as_str(), "gaia_ann"));
        assert_eq!(x.sign_ins.len(), 1);
        assert_eq!(x.usage.summary.totals.requests, 1, "{b}");
        assert_eq!(x.usage.summary.by_day.len(), 1);
        assert_eq!(x.usage.records.len(), 1);
        assert_eq!(x.rate_limits.len(), 1);

        let json = serde_json::to_string(&x).unwrap();
        let bob_things = [
            bob.id.as_str(),
            "bob.export@example.com",
            &b_conv,
            &b_persona,
            &b_key,
            &b_att,
            "hello from bob",
            "bob likes tea",
        ];
        for foreign in bob_things {
            assert!(!json.contains(foreign), "{b}: the export of Ann holds `{foreign}` of Bob");
        }
        for secret in [
            "secret-hash-of-ann",
            "secret-hash-of-bob",
            "argon2-hash-of-ann",
            "refresh-hash-of-ann",
            "IHDR-erase-test-image",
        ] {
            assert!(!json.contains(secret), "{b}: the export holds the secret `{secret}`");
        }
        let base64 = base64::engine::general_purpose::STANDARD.encode(PNG);
        assert!(!json.contains(&base64), "{b}: attachment bytes are downloaded, not exported");
        let back: UserExport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, x, "{b}: the export reads back");

        assert_eq!(s.export_user(&bob.id).await.unwrap().conversations.len(), 1);
    }
}

async fn exec(s: &Storage, sql: &str, params: &[&str]) {
    let mut q = sqlx::query(sql);
    for p in params {
        q = q.bind(*p);
    }
    q.execute(s.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn erasing_a_user_leaves_nothing_of_them_in_any_table() {
    for db in database_urls().await {
        let s = db.storage().await;
        let b = db.backend;
        let email = "ann.erase@example.com";
        let bob = s.create_user("bob.bystander@example.com", Some("bob-hash"), Some("Bob")).await.unwrap();
        let later = Utc::now() + Duration::days(7);
        // Ann registers with an invitation addressed to her, made by Bob.
        s.create_invite("invite-hash-for-ann", Some(email), Some(&bob.id), later).await.unwrap();
        let ann = s.create_user_with_invite("invite-hash-for-ann", email, Some("ann-hash"), Some("Ann")).await.unwrap();
        let id = ann.id.clone();

        // Ann's own data.
        let (_, a_persona, a_key, _) = some_data(&s, &id, "ann").await;
        let gone = s.create_conversation(&id, Some("deleted chat"), None).await.unwrap();
        s.add_message(&gone.id, Role::User, &format!("my email is {email}"), None, None).await.unwrap();
        s.delete_conversation(&id, &gone.id).await.unwrap();
        s.create_attachment(&id, Some("unsent.png"), PNG).await.unwrap();
        s.put_persona_memory(&id, "default", PersonaMemory { facts: vec!["ann".into()], ..Default::default() })
            .await
            .unwrap();
        let settings = UserSettings { default_persona_id: Some(a_persona.clone()), ..Default::default() };
        s.update_user_settings(&id, &settings).await.unwrap();
        s.insert_refresh_token(&id, "legacy-refresh-of-ann", later).await.unwrap();
        s.create_sign_in(&id, "refresh-of-ann", later).await.unwrap();
        s.insert_web_session("web-session-of-ann", &id, "csrf-of-ann", later).await.unwrap();
        let quota = format!("quota of {email} reached");
        // One call for one of Ann's players, tagged: the player's daily total is named after Ann.
        let for_player = NewUsage {
            end_user: Some("player-7".into()),
            tags: gaia_core::attribution::Tags::parse("npc=louisa").unwrap(),
            ..usage(&id, None, 1.0, None)
        };
        s.insert_usage(&[usage(&id, Some(&a_key), 0.5, Some(quota)), for_player]).await.unwrap();
        let budget = |scope, subject: &str| NewBudget {
            scope,
            subject_id: subject.into(),
            period: BudgetPeriod::Monthly,
            limit_usd: 10.0,
            hard: true,
        };
        s.create_budget(&budget(LimitScope::User, &id), Some(&bob.id)).await.unwrap();
        s.create_budget(&budget(LimitScope::Key, &a_key), None).await.unwrap();
        s.set_rate_limit(LimitScope::User, &id, Some(10), None, Some(&bob.id)).await.unwrap();
        s.set_rate_limit(LimitScope::Key, &a_key, Some(10), Some(1000), None).await.unwrap();
        s.create_budget(&budget(LimitScope::EndUser, &format!("{id}:player-7")), None).await.unwrap();
        s.create_budget(&budget(LimitScope::KeyEndUsers, &a_key), None).await.unwrap();
        s.set_rate_limit(LimitScope::EndUser, &format!("{id}:player-7"), Some(2), None, None).await.unwrap();
        s.set_rate_limit(LimitScope::KeyEndUsers, &a_key, Some(2), None, None).await.unwrap();
        let player_spent_before = s.spent_by_end_user_since(&format!("{id}:player-7"), Utc::now()).await.unwrap();
        assert!((player_spent_before - 1.0).abs() < 1e-9, "{b}: {player_spent_before}");
        s.record_audit(Some(&id), "auth.login", &id, &serde_json::json!({ "email": email, "ip": "192.0.2.1" }))
            .await
            .unwrap();
        let kb_path = format!("/kb/users/{id}/notes.md");
        s.record_audit(Some(&bob.id), "kb.write", &kb_path, &serde_json::json!({ "owner": id })).await.unwrap();

        // What Ann did as an administrator, on things that stay.
        s.create_budget(&budget(LimitScope::User, &bob.id), Some(&id)).await.unwrap();
        s.set_rate_limit(LimitScope::User, &bob.id, Some(3), None, Some(&id)).await.unwrap();
        s.add_price("openai", "gpt", ModelPrice::new(1.0, 2.0), Utc::now(), Some(&id)).await.unwrap();
        s.remove_runtime_provider("retired", Some(&id)).await.unwrap();
        let for_carol =
            s.create_invite("invite-hash-for-carol", Some("carol@example.com"), Some(&id), later).await.unwrap();

        // Tables other crates write (access control, knowledge bases), through SQL.
        let rows: Vec<(&str, Vec<String>)> = vec![
            (
                "INSERT INTO rbac_teams (id, kind, name, created_by, created_at) VALUES ('team-1', 'team', 'Red', $1, 0)",
                vec![id.clone()],
            ),
            ("INSERT INTO rbac_members (group_id, user_id, role, created_at) VALUES ('team-1', $1, 'member', 0)", vec![id.clone()]),
            ("INSERT INTO rbac_members (group_id, user_id, role, created_at) VALUES ('team-1', $1, 'owner', 0)", vec![bob.id.clone()]),
            (
                "INSERT INTO rbac_grants (id, user_id, role, group_id, created_by, created_at) VALUES ('grant-ann', $1, 'editor', NULL, $2, 0)",
                vec![id.clone(), bob.id.clone()],
            ),
            (
                "INSERT INTO rbac_grants (id, user_id, role, group_id, created_by, created_at) VALUES ('grant-bob', $1, 'editor', 'team-1', $2, 0)",
                vec![bob.id.clone(), id.clone()],
            ),
            (
                "INSERT INTO rbac_shares (id, resource_type, path, user_id, group_id, access, created_by, created_at) \
                 VALUES ('share-to-ann', 'conversation', $1, $2, NULL, 'read', $3, 0)",
                vec![format!("/users/{}/conversations/c1", bob.id), id.clone(), bob.id.clone()],
            ),
            (
                "INSERT INTO rbac_shares (id, resource_type, path, user_id, group_id, access, created_by, created_at) \
                 VALUES ('share-of-ann', 'kb', $1, $2, NULL, 'read', $3, 0)",
                vec![kb_path.clone(), bob.id.clone(), id.clone()],
            ),
            (
                "INSERT INTO rbac_shares (id, resource_type, path, user_id, group_id, access, created_by, created_at) \
                 VALUES ('share-by-ann', 'kb', '/kb/teams/team-1/lore.md', NULL, 'team-1', 'write', $1, 0)",
                vec![id.clone()],
            ),
            (
                "INSERT INTO rbac_roles (name, scope, description, permissions, created_at, updated_at) \
                 VALUES ('ann-reader', 'global', $1, $2, 0, 0)",
                vec![
                    format!("reads the notes of {email}"),
                    format!(r#"[{{"resource_type":"kb","action":"read","pattern":"/kb/users/{id}/**"}}]"#),
                ],
            ),
            (
                "INSERT INTO rbac_audit (id, actor_id, action, target, details, created_at) VALUES ('ra-1', $1, 'grant.create', 'grant-bob', $2, 0)",
                vec![id.clone(), format!(r#"{{"by":"{email}","user":"{}"}}"#, bob.id)],
            ),
            (
                "INSERT INTO kb_documents (kb, path, content, hash, updated_at, updated_by) VALUES ('main', $1, 'my notes', 'h1', 0, $2)",
                vec![format!("users/{id}/notes.md"), id.clone()],
            ),
            (
                "INSERT INTO kb_documents (kb, path, content, hash, updated_at, updated_by) VALUES ('main', 'common/lore.md', 'lore', 'h2', 0, $1)",
                vec![id.clone()],
            ),
            (
                "INSERT INTO kb_documents (kb, path, content, hash, updated_at, updated_by) VALUES ('main', $1, 'bob notes', 'h3', 0, $1)",
                vec![format!("users/{}/b.md", bob.id)],
            ),
            (
                "INSERT INTO kb_unmirrored (kb, path, author_name, author_email, message, edited_at) VALUES ('main', $1, 'ann.erase', $2, $3, 1)",
                vec![format!("users/{id}/notes.md"), email.into(), format!("Edit users/{id}/notes.md")],
            ),
            (
                "INSERT INTO kb_unmirrored (kb, path, author_name, author_email, message, edited_at) VALUES ('main', 'common/lore.md', 'ann.erase', $1, 'Edit lore', 1)",
                vec![email.into()],
            ),
            // Game worlds: a shared world where Ann plays, carries an item and knows an NPC; Ann's own
            // copy of an isolated world; Bob's view of the shared one.
            (
                "INSERT INTO world_instances (id, experience_id, owner_id, content_version, version, created_at, updated_at) \
                 VALUES ('safe-house', 'safe-house', NULL, '1.0.0', 3, 0, 0)",
                vec![],
            ),
            (
                "INSERT INTO world_instances (id, experience_id, owner_id, content_version, version, created_at, updated_at) \
                 VALUES ($1, 'solo', $2, '1.0.0', 1, 0, 0)",
                vec![format!("solo:{id}"), id.clone()],
            ),
            (
                "INSERT INTO world_items (world_id, item_id, template_id, holder, data, version) \
                 VALUES ('safe-house', 'medkit_1', 'medkit', $1, '{}', 2)",
                vec![format!("player:{id}")],
            ),
            (
                "INSERT INTO world_items (world_id, item_id, template_id, holder, data, version) \
                 VALUES ($1, 'lamp_1', 'lamp', $2, '{}', 1)",
                vec![format!("solo:{id}"), format!("player:{id}")],
            ),
            (
                "INSERT INTO world_players (world_id, user_id, location_id, area_id, version, updated_at) \
                 VALUES ('safe-house', $1, 'safe_house', 'main_room', 2, 0)",
                vec![id.clone()],
            ),
            (
                "INSERT INTO world_players (world_id, user_id, location_id, area_id, version, updated_at) \
                 VALUES ($1, $2, 'cave', 'mouth', 1, 0)",
                vec![format!("solo:{id}"), id.clone()],
            ),
            (
                "INSERT INTO world_players (world_id, user_id, location_id, area_id, version, updated_at) \
                 VALUES ('safe-house', $1, 'pharmacy', 'front', 3, 0)",
                vec![bob.id.clone()],
            ),
            (
                "INSERT INTO world_npc_relations (world_id, user_id, npc_id, trust, updated_at) \
                 VALUES ('safe-house', $1, 'radio_operator', 60, 0)",
                vec![id.clone()],
            ),
            (
                "INSERT INTO world_npc_memories (world_id, user_id, npc_id, id, text, importance, created_at) \
                 VALUES ('safe-house', $1, 'radio_operator', 'h1', 'likes tea', 5, 0)",
                vec![id.clone()],
            ),
            (
                "INSERT INTO world_scene_lines (world_id, scene_id, seq, user_id, speaker, text, created_at) \
                 VALUES ('safe-house', 'night_watch', 1, $1, 'player', 'Dana, look!', 0)",
                vec![id.clone()],
            ),
            (
                "INSERT INTO world_scene_lines (world_id, scene_id, seq, user_id, speaker, text, created_at) \
                 VALUES ($1, 'cave_talk', 1, NULL, 'narrator', 'Dark.', 0)",
                vec![format!("solo:{id}")],
            ),
            (
                "INSERT INTO world_scenes (world_id, scene_id, data, updated_at) VALUES ($1, 'cave_talk', '{}', 0)",
                vec![format!("solo:{id}")],
            ),
            (
                "INSERT INTO embeddings (scope, space, hash, dims, vector, created_at) \
                 VALUES ($1, 'mock@2', 'h1', 2, 'AACAPwAAAAA=', 0)",
                vec![format!("npcmem:{id}:safe-house:radio_operator")],
            ),
        ];
        for (sql, params) in &rows {
            exec(&s, sql, &params.iter().map(String::as_str).collect::<Vec<_>>()).await;
        }

        // Bob, the bystander.
        let (b_conv, b_persona, b_key, _) = some_data(&s, &bob.id, "bob").await;

        let before = every_value(&s).await;
        let found = mentions(&before, &id, email);
        for table in [
            "users.id",
            "api_keys.user_id",
            "refresh_tokens.user_id",
            "auth_sessions.user_id",
            "web_sessions.user_id",
            "auth_invites.email",
            "auth_invites.used_by",
            "auth_invites.created_by",
            "conversations.user_id",
            "messages.content",
            "attachments.user_id",
            "personas.user_id",
            "persona_memories.user_id",
            "usage_records.user_id",
            "usage_records.error",
            "usage_daily.subject_id",
            "budgets.subject_id",
            "budgets.created_by",
            "rate_limits.subject_id",
            "rate_limits.updated_by",
            "model_prices.created_by",
            "runtime_providers.updated_by",
            "audit_log.actor_id",
            "audit_log.target",
            "audit_log.details",
            "rbac_teams.created_by",
            "rbac_members.user_id",
            "rbac_grants.user_id",
            "rbac_grants.created_by",
            "rbac_shares.user_id",
            "rbac_shares.path",
            "rbac_shares.created_by",
            "rbac_roles.permissions",
            "rbac_roles.description",
            "rbac_audit.actor_id",
            "rbac_audit.details",
            "kb_documents.path",
            "kb_documents.updated_by",
            "kb_unmirrored.author_email",
            "kb_unmirrored.message",
            "world_instances.owner_id",
            "world_items.holder",
            "world_players.user_id",
            "world_npc_relations.user_id",
            "world_npc_memories.user_id",
            "world_scene_lines.user_id",
            "world_scene_lines.world_id",
            "world_scenes.world_id",
            "embeddings.scope",
        ] {
            assert!(found.contains(&table.to_string()), "{b}: the setup put Ann in {table}; found in {found:?}");
        }
        let spent_before = s.spent_since(&[&id], None, Utc::now()).await.unwrap();
        let key_spent_before = s.spent_since(&[], Some(&a_key), Utc::now()).await.unwrap();
        let all_before = s.usage_summary(&UsageFilter::default()).await.unwrap().totals;
        let versions = s.credentials_versions().await.unwrap();

        s.erase_user(&id).await.unwrap_or_else(|e| panic!("{b}: {e}"));

        // Nothing of Ann anywhere.
        let after = every_value(&s).await;
        let left = mentions(&after, &id, email);
        assert!(left.is_empty(), "{b}: Ann's id or email is still in {left:?}");
        assert!(!after.iter().any(|(_, v)| v.contains("ann-hash") || v.contains("csrf-of-ann")), "{b}");
        assert!(s.get_user(&id).await.unwrap().is_none());
        // The shared world stays (Bob plays in it); what Ann carried left with her.
        let pool = s.pool().clone();
        let count = |sql: &'static str| {
            let pool = pool.clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
        };
        assert_eq!(
            count("SELECT COUNT(*) FROM world_players WHERE world_id = 'safe-house'").await,
            1,
            "{b}: Bob's view stays"
        );
        assert_eq!(count("SELECT COUNT(*) FROM world_items WHERE holder = 'gone'").await, 1, "{b}");
        assert_eq!(count("SELECT COUNT(*) FROM world_instances").await, 1, "{b}: Ann's own world went");
        assert!(s.get_user_by_email(email).await.unwrap().is_none());

        // Usage and spend stay, under ERASED_USER.
        let erased = UsageFilter { user_id: Some(ERASED_USER.into()), ..Default::default() };
        let totals = s.usage_summary(&erased).await.unwrap().totals;
        assert_eq!((totals.requests, totals.errors), (3, 1), "{b}: Ann's usage counts under {ERASED_USER}");
        assert!((totals.cost_usd - 1.75).abs() < 1e-9, "{b}: {}", totals.cost_usd);
        assert_eq!(s.usage_summary(&UsageFilter::default()).await.unwrap().totals, all_before, "{b}: totals unchanged");
        let spent = s.spent_since(&[ERASED_USER], None, Utc::now()).await.unwrap();
        assert!((spent - spent_before).abs() < 1e-9 && spent_before > 0.0, "{b}: {spent} vs {spent_before}");
        let key_spent = s.spent_since(&[], Some(ERASED_USER), Utc::now()).await.unwrap();
        assert!((key_spent - key_spent_before).abs() < 1e-9 && key_spent > 0.0, "{b}");
        assert_eq!(s.spent_by_end_user_since(&format!("{id}:player-7"), Utc::now()).await.unwrap(), 0.0, "{b}");
        let records = s.list_usage(&erased, 10).await.unwrap();
        assert!(records.iter().all(|r| r.usage.end_user.is_none()), "{b}: the records forget the player");
        assert!(records.iter().any(|r| r.usage.error.as_deref() == Some("quota of erased-user reached")), "{b}");

        // Audit trails stay, anonymized.
        let audit = s.audit_records(None, 100).await.unwrap();
        let login = audit.iter().find(|r| r.action == "auth.login").unwrap();
        assert_eq!(login.actor_id.as_deref(), Some(ERASED_USER));
        assert_eq!(login.target, ERASED_USER);
        assert_eq!(login.details["email"], ERASED_USER);
        assert_eq!(login.details["ip"], "192.0.2.1");
        let write = audit.iter().find(|r| r.action == "kb.write").unwrap();
        assert_eq!(write.target, "/kb/users/erased-user/notes.md");
        assert_eq!(write.actor_id.as_deref(), Some(bob.id.as_str()));
        assert!(audit.iter().any(|r| r.id == "ra-1" && r.actor_id.as_deref() == Some(ERASED_USER)), "{b}");

        // Bob is intact; what Ann made for him stays, made by ERASED_USER.
        assert!(s.get_user(&bob.id).await.unwrap().is_some());
        let chats = s.list_conversations(&bob.id, 10, 0).await.unwrap();
        assert_eq!(chats.len(), 1);
        assert_eq!(chats[0].id, b_conv);
        assert_eq!(s.list_messages(&b_conv).await.unwrap().len(), 2);
        assert!(s.get_persona(&bob.id, &b_persona).await.unwrap().is_some());
        assert_eq!(s.persona_memories_of(&bob.id).await.unwrap().len(), 1);
        assert!(s.get_api_key(&b_key).await.unwrap().is_some());
        let bob_usage = UsageFilter { user_id: Some(bob.id.clone()), ..Default::default() };
        assert_eq!(s.usage_summary(&bob_usage).await.unwrap().totals.requests, 1);
        let bob_budgets = s.list_budgets(Some((LimitScope::User, &bob.id))).await.unwrap();
        assert_eq!(bob_budgets.len(), 1);
        assert_eq!(bob_budgets[0].created_by.as_deref(), Some(ERASED_USER));
        let bob_limit = s.rate_limit(LimitScope::User, &bob.id).await.unwrap().unwrap();
        assert_eq!(bob_limit.updated_by.as_deref(), Some(ERASED_USER));
        assert_eq!(s.list_budgets(None).await.unwrap().len(), 1, "{b}: Ann's budgets and her key's are gone");
        assert_eq!(s.list_rate_limits().await.unwrap().len(), 1, "{b}: Ann's limits and her key's are gone");
        assert_eq!(s.list_prices().await.unwrap()[0].created_by.as_deref(), Some(ERASED_USER));
        assert_eq!(s.list_runtime_providers().await.unwrap()[0].updated_by.as_deref(), Some(ERASED_USER));
        let invites = s.list_invites(10).await.unwrap();
        assert_eq!(invites.len(), 1, "{b}: the invitation that admitted Ann is gone, the one she sent stays");
        assert_eq!(
            (invites[0].id.as_str(), invites[0].created_by.as_deref()),
            (for_carol.id.as_str(), Some(ERASED_USER))
        );
        assert!(s.invite_is_usable("invite-hash-for-carol", "carol@example.com").await.unwrap());

        let count = |sql: &'static str| {
            let pool = s.pool().clone();
            async move { sqlx::query(sql).fetch_one(&pool).await.unwrap().get::<i64, _>(0) }
        };
        assert_eq!(count("SELECT COUNT(*) FROM rbac_members").await, 1, "{b}: Bob's membership stays");
        assert_eq!(count("SELECT COUNT(*) FROM rbac_grants WHERE id = 'grant-bob'").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM rbac_grants").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM rbac_shares WHERE id = 'share-by-ann'").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM rbac_shares").await, 1, "{b}: shares with and of Ann are gone");
        assert_eq!(count("SELECT COUNT(*) FROM rbac_teams").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM kb_documents").await, 2, "{b}: Ann's area is gone, the rest stays");
        assert_eq!(count("SELECT COUNT(*) FROM kb_unmirrored WHERE author_name = 'erased-user'").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM kb_unmirrored").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM personas WHERE user_id IS NULL").await, 1, "{b}: built-ins stay");
        assert_eq!(count("SELECT version FROM rbac_state WHERE id = 1").await, 1, "{b}: access control reloads");

        // Cached validations of Ann's keys and sessions are outdated everywhere.
        let now = s.credentials_versions().await.unwrap();
        assert!(now.keys > versions.keys && now.sessions > versions.sessions, "{b}: {versions:?} -> {now:?}");

        // Erased once: unknown now.
        assert!(matches!(s.erase_user(&id).await, Err(CoreError::NotFound(_))), "{b}");
        assert!(matches!(s.erase_user(ERASED_USER).await, Err(CoreError::InvalidInput(_))), "{b}");
    }
}

#[tokio::test]
async fn unknown_users_are_not_found() {
    for db in database_urls().await {
        let s = db.storage().await;
        let versions = s.credentials_versions().await.unwrap();
        let e = s.export_user("no-such-user").await.unwrap_err();
        assert!(matches!(e, CoreError::NotFound(_)), "{}: {e}", db.backend);
        let e = s.erase_user("no-such-user").await.unwrap_err();
        assert!(matches!(e, CoreError::NotFound(_)), "{}: {e}", db.backend);
        assert_eq!(s.credentials_versions().await.unwrap(), versions, "{}: nothing changed", db.backend);
    }
}
