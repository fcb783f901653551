//! `gaia rbac ...`: roles, administrators, grants, teams, workspaces, shares, checks and the audit log,
//! straight on the database (changes are audited with no actor: the command line). Running servers
//! pick the changes up within `rbac.refresh_interval_ms`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use gaia_core::storage::Storage;
use gaia_rbac::{Action, GroupKind, Rbac, Resource, ResourceType, ShareAccess, Subject};
use serde_json::json;

#[derive(Args)]
pub struct RbacArgs {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: RbacCommand,
}

#[derive(Subcommand)]
enum RbacCommand {
    /// List the roles and their permissions.
    Roles,
    /// Make a user an administrator (or, with --revoke, no longer one).
    Admin {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Take the administrator flag away.
        #[arg(long)]
        revoke: bool,
    },
    /// Grant a role to a user, system-wide or within a team or workspace.
    Grant {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// The role.
        #[arg(long)]
        role: String,
        /// Within this team (by name).
        #[arg(long, conflicts_with = "workspace")]
        team: Option<String>,
        /// Within this workspace (by name).
        #[arg(long)]
        workspace: Option<String>,
        /// Until this time (RFC 3339, e.g. 2027-01-31T00:00:00Z).
        #[arg(long)]
        expires: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Revoke a grant by id.
    Revoke {
        /// Grant id (from `gaia rbac grants`).
        id: String,
    },
    /// List grants.
    Grants {
        /// Only this user's.
        #[arg(long)]
        email: Option<String>,
    },
    /// Teams and their members.
    Team {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Workspaces and their members.
    Workspace {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Share a KB document or folder, or a conversation, with a user or a team.
    Share {
        /// A KB document or folder (vault path).
        #[arg(long, conflicts_with = "conversation")]
        kb_path: Option<String>,
        /// A conversation id (of its owner, `--owner`).
        #[arg(long, requires = "owner")]
        conversation: Option<String>,
        /// The conversation's owner (email).
        #[arg(long)]
        owner: Option<String>,
        /// With this user (email).
        #[arg(long, conflicts_with = "with_team")]
        with_email: Option<String>,
        /// With this team (name).
        #[arg(long)]
        with_team: Option<String>,
        /// Read and write (default: read).
        #[arg(long)]
        write: bool,
    },
    /// Remove a share by id.
    Unshare {
        /// Share id.
        id: String,
    },
    /// May this user do this? Prints the decision and the grant behind it.
    Check {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// read, write, delete, share or admin.
        action: String,
        /// kb, conversation, persona, provider, usage, user, api_key or admin.
        resource_type: String,
        /// The resource path (e.g. /kb/common/world/lore.md).
        path: String,
    },
    /// Who may do this?
    WhoCan {
        /// read, write, delete, share or admin.
        action: String,
        /// The resource type.
        resource_type: String,
        /// The resource path.
        path: String,
    },
    /// Everything a user may do, and why.
    WhatCan {
        /// The user's email.
        #[arg(long)]
        email: String,
    },
    /// The newest changes.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create one.
    Create {
        /// Name.
        name: String,
    },
    /// List them.
    List,
    /// Delete one (with its memberships, grants and shares).
    Delete {
        /// Name.
        name: String,
    },
    /// Add a member (or change their role).
    Add {
        /// Name of the team or workspace.
        name: String,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// A team-scope role.
        #[arg(long, default_value = "kb_reader")]
        role: String,
    },
    /// Remove a member.
    Remove {
        /// Name of the team or workspace.
        name: String,
        /// The user's email.
        #[arg(long)]
        email: String,
    },
    /// List the members.
    Members {
        /// Name of the team or workspace.
        name: String,
    },
}

async fn user_id(storage: &Storage, email: &str) -> Result<(String, bool)> {
    let u = storage.get_user_by_email(email).await?.with_context(|| format!("no user with email {email}"))?;
    Ok((u.id, u.is_admin))
}

async fn group_id(rbac: &Rbac, kind: GroupKind, name: &str) -> Result<String> {
    let all = rbac.groups(kind).await?;
    match all.into_iter().find(|g| g.name == name) {
        Some(g) => Ok(g.id),
        None => bail!("no {} named {name}", kind.as_str()),
    }
}

fn show(json_out: bool, v: serde_json::Value, text: impl FnOnce() -> String) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("{}", text());
    }
}

/// Runs `gaia rbac ...` against the configured database.
pub async fn run(database_url: &str, args: RbacArgs) -> Result<()> {
    let storage = Storage::connect(database_url).await?;
    storage.migrate().await?;
    let rbac = Rbac::load(storage.clone()).await?;
    let j = args.json;
    match args.command {
        RbacCommand::Roles => {
            let roles = rbac.roles();
            show(j, json!(roles), || {
                roles
                    .iter()
                    .map(|r| {
                        let perms: Vec<String> = r
                            .permissions
                            .iter()
                            .map(|p| format!("    {}:{} {}", p.resource_type, p.action, p.pattern.as_str()))
                            .collect();
                        format!(
                            "{} ({}{}) — {}\n{}",
                            r.name,
                            r.scope,
                            if r.builtin { ", built in" } else { "" },
                            r.description,
                            perms.join("\n")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        RbacCommand::Admin { email, revoke } => {
            let (id, _) = user_id(&storage, &email).await?;
            storage.set_admin(&id, !revoke).await?;
            // Running servers drop the user's cached validations (and so the old flag) within a poll.
            storage.bump_credentials_version().await?;
            println!("{email} is {}an administrator", if revoke { "no longer " } else { "now " });
        }
        RbacCommand::Grant { email, role, team, workspace, expires } => {
            let (uid, _) = user_id(&storage, &email).await?;
            let group = match (team, workspace) {
                (Some(t), _) => Some(group_id(&rbac, GroupKind::Team, &t).await?),
                (_, Some(w)) => Some(group_id(&rbac, GroupKind::Workspace, &w).await?),
                _ => None,
            };
            let g = rbac.grant(None, &uid, &role, group.as_deref(), expires).await?;
            show(j, json!(g), || format!("granted {role} to {email} (grant {})", g.id));
        }
        RbacCommand::Revoke { id } => {
            let g = rbac.revoke(None, &id).await?;
            println!("revoked {} from {}", g.role, g.user_id);
        }
        RbacCommand::Grants { email } => {
            let uid = match email {
                Some(e) => Some(user_id(&storage, &e).await?.0),
                None => None,
            };
            let grants = rbac.grants(uid.as_deref()).await?;
            show(j, json!(grants), || {
                grants
                    .iter()
                    .map(|g| {
                        format!(
                            "{}  {}  {}{}{}",
                            g.id,
                            g.user_id,
                            g.role,
                            g.group_id.as_deref().map(|x| format!(" in {x}")).unwrap_or_default(),
                            g.expires_at.map(|t| format!(" until {t}")).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        RbacCommand::Team { command } => group(&storage, &rbac, GroupKind::Team, command, j).await?,
        RbacCommand::Workspace { command } => group(&storage, &rbac, GroupKind::Workspace, command, j).await?,
        RbacCommand::Share { kb_path, conversation, owner, with_email, with_team, write } => {
            let resource = match (kb_path, conversation) {
                (Some(p), None) => {
                    let vp = gaia_kb::VaultPath::parse(&p).map_err(|e| anyhow::anyhow!("{e}"))?;
                    Resource::kb_document(vp.as_str())
                }
                (None, Some(c)) => {
                    let (owner_id, _) = user_id(&storage, owner.as_deref().unwrap_or_default()).await?;
                    Resource::conversation(&owner_id, &c)
                }
                _ => bail!("give --kb-path or --conversation"),
            };
            let (u, t) = match (with_email, with_team) {
                (Some(e), None) => (Some(user_id(&storage, &e).await?.0), None),
                (None, Some(t)) => (None, Some(group_id(&rbac, GroupKind::Team, &t).await?)),
                _ => bail!("give --with-email or --with-team"),
            };
            let access = if write { ShareAccess::Write } else { ShareAccess::Read };
            let s = rbac.share(None, resource, u.as_deref(), t.as_deref(), access).await?;
            show(j, json!(s), || format!("shared {} ({}) as share {}", s.resource.path, access.as_str(), s.id));
        }
        RbacCommand::Unshare { id } => {
            let s = rbac.unshare(None, &id).await?;
            println!("removed the share of {}", s.resource.path);
        }
        RbacCommand::Check { email, action, resource_type, path } => {
            let (id, is_admin) = user_id(&storage, &email).await?;
            let action: Action = action.parse()?;
            let t: ResourceType = resource_type.parse()?;
            let d = rbac.check(&Subject { user_id: id, is_admin }, action, &Resource::new(t, path));
            show(j, json!({"allowed": d.allowed, "reason": d.reason}), || {
                format!("{}: {}", if d.allowed { "allowed" } else { "denied" }, d.reason)
            });
            if !d.allowed && !j {
                std::process::exit(1);
            }
        }
        RbacCommand::WhoCan { action, resource_type, path } => {
            let action: Action = action.parse()?;
            let t: ResourceType = resource_type.parse()?;
            let w = rbac.who_can(action, &Resource::new(t, path));
            show(j, json!(w), || {
                let mut lines = vec!["administrators".to_string()];
                if w.everyone_via_default_role {
                    lines.push("every user with the default role".into());
                }
                lines.extend(w.users.iter().map(|(u, why)| format!("{u}: {why}")));
                lines.join("\n")
            });
        }
        RbacCommand::WhatCan { email } => {
            let (id, is_admin) = user_id(&storage, &email).await?;
            let can = rbac.what_can(&Subject { user_id: id, is_admin });
            show(j, json!(can), || {
                can.iter()
                    .map(|e| {
                        format!(
                            "{}:{} {}  ({})",
                            e.permission.resource_type,
                            e.permission.action,
                            e.permission.pattern.as_str(),
                            e.via
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        RbacCommand::Audit { limit } => {
            let log = rbac.audit_log(limit).await?;
            show(j, json!(log), || {
                log.iter()
                    .map(|e| {
                        format!(
                            "{}  {}  {} {}  {}",
                            e.created_at,
                            e.actor_id.as_deref().unwrap_or("(cli)"),
                            e.action,
                            e.target,
                            e.details
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

async fn group(storage: &Storage, rbac: &Rbac, kind: GroupKind, cmd: GroupCommand, j: bool) -> Result<()> {
    match cmd {
        GroupCommand::Create { name } => {
            let g = rbac.create_group(None, kind, &name).await?;
            show(j, json!(g), || format!("created {} {} ({})", kind.as_str(), g.name, g.id));
        }
        GroupCommand::List => {
            let all = rbac.groups(kind).await?;
            show(j, json!(all), || all.iter().map(|g| format!("{}  {}", g.id, g.name)).collect::<Vec<_>>().join("\n"));
        }
        GroupCommand::Delete { name } => {
            let id = group_id(rbac, kind, &name).await?;
            rbac.delete_group(None, &id).await?;
            println!("deleted {} {name}", kind.as_str());
        }
        GroupCommand::Add { name, email, role } => {
            let id = group_id(rbac, kind, &name).await?;
            let (uid, _) = user_id(storage, &email).await?;
            rbac.add_member(None, &id, &uid, &role).await?;
            println!("{email} is a member of {name} as {role}");
        }
        GroupCommand::Remove { name, email } => {
            let id = group_id(rbac, kind, &name).await?;
            let (uid, _) = user_id(storage, &email).await?;
            rbac.remove_member(None, &id, &uid).await?;
            println!("{email} left {name}");
        }
        GroupCommand::Members { name } => {
            let id = group_id(rbac, kind, &name).await?;
            let m = rbac.members(&id).await?;
            show(j, json!(m), || m.iter().map(|m| format!("{}  {}", m.user_id, m.role)).collect::<Vec<_>>().join("\n"));
        }
    }
    Ok(())
}
