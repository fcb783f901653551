//! The engine over real storage: changes, audit, expiring grants, and a change made by one instance
//! reaching another that shares the database. SQLite and PostgreSQL.

use chrono::Utc;
use gaia_core::storage::Storage;
use gaia_core::testing::database_urls;
use gaia_rbac::{
    Action, GroupKind, Permission, Rbac, RbacError, Resource, ResourceType, Role, Scope, ShareAccess, Subject,
};
use std::time::Duration;

async fn setup(url: &str) -> (Storage, Rbac) {
    let s = Storage::connect(url).await.unwrap();
    s.migrate().await.unwrap();
    let r = Rbac::load(s.clone()).await.unwrap();
    (s, r)
}

#[tokio::test]
async fn changes_are_checked_audited_and_shared_between_instances() {
    for db in database_urls().await {
        let b = db.backend;
        let (s, one) = setup(&db.url).await;
        let two = Rbac::load(s.clone()).await.unwrap();
        let admin = s.create_user("admin@example.com", None, None).await.unwrap();
        let ann = s.create_user("ann@example.com", None, None).await.unwrap();
        let bob = s.create_user("bob@example.com", None, None).await.unwrap();
        let (ann_s, bob_s) = (Subject::user(&ann.id), Subject::user(&bob.id));
        let actor = Some(admin.id.as_str());

        let red = one.create_group(actor, GroupKind::Team, "Red").await.unwrap();
        assert!(matches!(one.create_group(actor, GroupKind::Team, "Red").await, Err(RbacError::Conflict(_))), "{b}");
        let plan = Resource::kb_document(&format!("teams/{}/plan.md", red.id));
        assert!(!one.check(&ann_s, Action::Write, &plan).allowed);
        // System roles cannot be given as team roles; unknown users are refused.
        assert!(matches!(one.add_member(actor, &red.id, &ann.id, "admin").await, Err(RbacError::Invalid(_))));
        assert!(
            matches!(one.add_member(actor, &red.id, "nobody", "kb_editor").await, Err(RbacError::NotFound(_))),
            "{b}"
        );
        one.add_member(actor, &red.id, &ann.id, "kb_editor").await.unwrap();
        let d = one.check(&ann_s, Action::Write, &plan);
        assert!(d.allowed && d.reason.contains("member of team Red"), "{b}: {}", d.reason);
        assert_eq!(one.members(&red.id).await.unwrap().len(), 1);

        // The other instance sees it after a refresh (its poll), not before.
        assert!(!two.check(&ann_s, Action::Write, &plan).allowed, "{b}: cached snapshot");
        assert!(two.refresh().await.unwrap());
        assert!(two.check(&ann_s, Action::Write, &plan).allowed, "{b}");
        assert!(!two.refresh().await.unwrap(), "nothing new");
        // With the background poll, a revocation reaches it on its own.
        let _poll = two.spawn_refresh(Duration::from_millis(20));
        one.remove_member(actor, &red.id, &ann.id).await.unwrap();
        let mut seen = false;
        for _ in 0..250 {
            if !two.check(&ann_s, Action::Write, &plan).allowed {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(seen, "{b}: the removal reached the other instance");

        // Expiring grants: allowed now, not after the expiry (even from the cache).
        let soon = Utc::now() + chrono::Duration::milliseconds(300);
        let g = one.grant(actor, &bob.id, "kb_reader", Some(&red.id), Some(soon)).await.unwrap();
        assert!(one.check(&bob_s, Action::Read, &plan).allowed, "{b}");
        assert!(!one.check(&bob_s, Action::Write, &plan).allowed);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!one.check(&bob_s, Action::Read, &plan).allowed, "{b}: the grant expired");
        assert!(matches!(
            one.grant(actor, &bob.id, "viewer", None, Some(Utc::now())).await,
            Err(RbacError::Invalid(_))
        ));
        one.revoke(actor, &g.id).await.unwrap();
        assert!(matches!(one.revoke(actor, &g.id).await, Err(RbacError::NotFound(_))));

        // A viewer grant replaces the default role: read own things, no writing.
        let v = one.grant(actor, &bob.id, "viewer", None, None).await.unwrap();
        let mine = Resource::conversation(&bob.id, "c1");
        assert!(one.check(&bob_s, Action::Read, &mine).allowed);
        assert!(!one.check(&bob_s, Action::Write, &mine).allowed, "{b}");
        one.revoke(actor, &v.id).await.unwrap();
        assert!(one.check(&bob_s, Action::Write, &mine).allowed);

        // Shares: a conversation shared read-only with a team's members.
        let conv = Resource::conversation(&ann.id, "c9");
        assert!(!one.check(&bob_s, Action::Read, &conv).allowed);
        one.add_member(actor, &red.id, &bob.id, "kb_reader").await.unwrap();
        let sh = one.share(Some(&ann.id), conv.clone(), None, Some(&red.id), ShareAccess::Read).await.unwrap();
        let d = one.check(&bob_s, Action::Read, &conv);
        assert!(d.allowed && d.reason.contains(&sh.id), "{b}: {}", d.reason);
        assert!(!one.check(&bob_s, Action::Write, &conv).allowed);
        let who = one.who_can(Action::Read, &conv);
        let users: Vec<_> = who.users.iter().map(|(u, _)| u.as_str()).collect();
        assert!(users.contains(&bob.id.as_str()) && users.contains(&ann.id.as_str()), "{b}: {users:?}");
        assert!(matches!(
            one.share(actor, Resource::kb_document("x/../y"), Some(&bob.id), None, ShareAccess::Read).await,
            Err(RbacError::Invalid(_))
        ));
        one.unshare(actor, &sh.id).await.unwrap();
        assert!(!one.check(&bob_s, Action::Read, &conv).allowed);

        // Custom roles: created, granted, in use (cannot delete), revoked, deleted; built-ins are fixed.
        let role = Role {
            name: "quest_writer".into(),
            scope: Scope::Team,
            description: "Writes quests".into(),
            permissions: vec![Permission::new(ResourceType::Kb, Action::Write, "/kb/{scope}/quests/**")],
            builtin: false,
        };
        one.create_role(actor, role.clone()).await.unwrap();
        assert!(matches!(one.create_role(actor, role.clone()).await, Err(RbacError::Conflict(_))));
        let qw = one.grant(actor, &bob.id, "quest_writer", Some(&red.id), None).await.unwrap();
        let quest = Resource::kb_document(&format!("teams/{}/quests/q1.md", red.id));
        assert!(one.check(&bob_s, Action::Write, &quest).allowed, "{b}");
        assert!(!one.check(&bob_s, Action::Write, &plan).allowed);
        assert!(matches!(one.delete_role(actor, "quest_writer").await, Err(RbacError::Conflict(_))));
        one.revoke(actor, &qw.id).await.unwrap();
        one.delete_role(actor, "quest_writer").await.unwrap();
        assert!(matches!(one.delete_role(actor, "admin").await, Err(RbacError::Conflict(_))));
        let mut bad = role.clone();
        bad.name = "Bad Name".into();
        assert!(matches!(one.create_role(actor, bad).await, Err(RbacError::Invalid(_))));

        // what_can explains; the audit log has every change, newest first, with the actor.
        let can = one.what_can(&Subject::user(&bob.id));
        assert!(can.iter().any(|e| e.via.contains("member of team Red")), "{b}");
        let log = one.audit_log(100).await.unwrap();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        for want in [
            "team.create",
            "member.add",
            "member.remove",
            "grant.create",
            "grant.delete",
            "share.create",
            "share.delete",
            "role.create",
            "role.delete",
        ] {
            assert!(actions.contains(&want), "{b}: {want} missing from {actions:?}");
        }
        assert_eq!(log[0].action, "role.delete");
        assert_eq!(log[0].actor_id.as_deref(), Some(admin.id.as_str()));

        // Deleting the team removes its memberships.
        one.delete_group(actor, &red.id).await.unwrap();
        assert!(!one.check(&bob_s, Action::Read, &plan).allowed, "{b}");
        assert!(matches!(one.members(&red.id).await, Err(RbacError::NotFound(_))));
    }
}

#[tokio::test]
async fn redis_announcements_reach_other_instances_at_once() {
    let Some(redis) = gaia_core::testing::redis_url() else {
        eprintln!("skipping: GAIA_TEST_REDIS_URL is not set");
        return;
    };
    for db in database_urls().await {
        let b = db.backend;
        let (s, one) = setup(&db.url).await;
        let two = Rbac::load(s.clone()).await.unwrap();
        // No database polling here: only the Redis announcement can tell instance two.
        let _l1 = one.connect_redis(&redis).await.unwrap();
        let _l2 = two.connect_redis(&redis).await.unwrap();
        let u = s.create_user("u@example.com", None, None).await.unwrap();
        let subject = Subject::user(&u.id);
        // Developers read everyone's usage.
        let usage = Resource::new(ResourceType::Usage, "/users/someone-else/usage");
        assert!(!two.check(&subject, Action::Read, &usage).allowed);
        one.grant(None, &u.id, "developer", None, None).await.unwrap();
        let mut seen = false;
        for _ in 0..100 {
            if two.check(&subject, Action::Read, &usage).allowed {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(seen, "{b}: the announcement reached instance two");
    }
}
