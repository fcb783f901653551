//! Access control with `gaia_rbac::Rbac`: a team with its own knowledge-base area, members with team
//! roles, a system-wide role, a share, then permission checks that say *why* they allow or refuse, and
//! who may do something.
//!
//! Everything lives in an in-memory SQLite database, so it needs no configuration:
//!
//! ```sh
//! cargo run -p gaia-examples --example rbac_check
//! ```

use anyhow::ensure;
use gaia_core::storage::Storage;
use gaia_rbac::{Action, GroupKind, Rbac, Resource, ResourceType, ShareAccess, Subject};
use std::collections::HashMap;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Gaia's storage (use `sqlite://game.db` or a `postgres://` URL to keep the data) with its tables.
    let storage = Storage::connect("sqlite::memory:").await?;
    storage.migrate().await?;
    // The engine keeps the policy in memory and caches decisions; every change below is written to the
    // `rbac_*` tables with an audit row, and other instances on the same database pick it up.
    let rbac = Rbac::load(storage.clone()).await?;

    // Users (your game creates them at sign-up, or they arrive with a JWT).
    let admin = storage.create_user("admin@example.com", None, Some("Admin")).await?;
    let ann = storage.create_user("ann@example.com", None, Some("Ann")).await?;
    let bob = storage.create_user("bob@example.com", None, Some("Bob")).await?;
    let cid = storage.create_user("cid@example.com", None, Some("Cid")).await?;
    let names: HashMap<&str, &str> = [(&admin.id, "Admin"), (&ann.id, "Ann"), (&bob.id, "Bob"), (&cid.id, "Cid")]
        .map(|(id, n)| (id.as_str(), n))
        .into();
    // Who makes the changes (recorded in the audit log).
    let by = Some(admin.id.as_str());

    // A team of quest writers. Its knowledge-base area is the vault folder `teams/<team id>/`.
    let writers = rbac.create_group(by, GroupKind::Team, "Quest writers").await?;
    // Team roles: Ann reads, writes and deletes in the team's area; Bob only reads it.
    rbac.add_member(by, &writers.id, &ann.id, "kb_editor").await?;
    rbac.add_member(by, &writers.id, &bob.id, "kb_reader").await?;
    // A system-wide role: Bob also reads everyone's usage (changing providers stays with administrators:
    // a provider decides where the server's keys are sent).
    rbac.grant(by, &bob.id, "developer", None, None).await?;
    // One draft shared, read-only, with Cid, who is not in the team.
    let draft = Resource::kb_document(&format!("teams/{}/quests/night-run.md", writers.id));
    rbac.share(by, draft.clone(), Some(&cid.id), None, ShareAccess::Read).await?;
    println!("team {:?} ({}), draft at {}\n", writers.name, writers.id, draft.path);

    // Vault paths outside `users/`, `teams/` and `workspaces/` are in the common area.
    let lore = Resource::kb_document("world/lore.md");
    let providers = Resource::new(ResourceType::Provider, "/providers/openai");
    let anns_usage = Resource::new(ResourceType::Usage, format!("/users/{}/usage", ann.id));
    let anns_chat = Resource::conversation(&ann.id, "c-1");
    // (who, what, on what, expected). Every user also holds the default `user` role: their own
    // conversations and the common knowledge base. `Subject::admin` is an account flagged administrator.
    let checks = [
        (Subject::user(&ann.id), Action::Write, &draft, true),
        (Subject::user(&bob.id), Action::Read, &draft, true),
        (Subject::user(&bob.id), Action::Write, &draft, false),
        (Subject::user(&cid.id), Action::Read, &draft, true),
        (Subject::user(&cid.id), Action::Write, &draft, false),
        (Subject::user(&cid.id), Action::Read, &lore, true),
        (Subject::user(&cid.id), Action::Write, &lore, false),
        (Subject::user(&bob.id), Action::Read, &anns_usage, true),
        (Subject::user(&cid.id), Action::Read, &anns_usage, false),
        (Subject::user(&bob.id), Action::Write, &providers, false),
        (Subject::admin(&admin.id), Action::Write, &providers, true),
        (Subject::user(&ann.id), Action::Read, &anns_chat, true),
        (Subject::user(&cid.id), Action::Read, &anns_chat, false),
        (Subject::admin(&admin.id), Action::Delete, &anns_chat, true),
    ];
    for (subject, action, resource, expected) in checks {
        let decision = rbac.check(&subject, action, resource);
        let verdict = if decision.allowed { "ALLOW" } else { "DENY " };
        let who = names[subject.user_id.as_str()];
        println!("{verdict} {who} {action:?} {}\n       because: {}", resource.path, decision.reason);
        ensure!(decision.allowed == expected, "{who} {action:?} {}: expected allowed = {expected}", resource.path);
    }

    // The other way round: who may change the draft?
    let who = rbac.who_can(Action::Write, &draft);
    println!("\nwho can write {}?", draft.path);
    println!("  administrators: {}, everyone: {}", who.administrators, who.everyone_via_default_role);
    for (user, via) in &who.users {
        println!("  {}: {via}", names.get(user.as_str()).unwrap_or(&user.as_str()));
    }
    ensure!(who.users.iter().map(|(u, _)| u).eq([&ann.id]), "only Ann (and administrators) may write the draft");

    // Every change above is in the audit log.
    let audit = rbac.audit_log(20).await?;
    println!("\naudit log (newest first):");
    for entry in &audit {
        println!("  {} {} by {}", entry.action, entry.target, entry.actor_id.as_deref().map_or("system", |a| names[a]));
    }
    ensure!(audit.len() >= 5, "the team, two members, the grant and the share are audited");

    println!("\nrbac_check: all checks passed");
    Ok(())
}
