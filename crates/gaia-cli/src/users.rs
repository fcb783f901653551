//! `gaia users ...`: accounts straight on the database — the way to make the first administrator of a
//! server that is not on a loopback address (where registering first does not make one), and
//! invitations when `auth.registration = "invite"`.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use gaia_core::auth::{hash_password, sign_in};
use gaia_core::storage::Storage;
use gaia_core::Config;
use std::io::BufRead;
use std::time::Duration;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create an account (with --admin: an administrator). Without --password-stdin it has no
    /// password: give it an API key with `gaia keys create --email E`.
    Create {
        /// The account's email.
        #[arg(long)]
        email: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input (never from the command line).
        #[arg(long)]
        password_stdin: bool,
        /// Name shown in the UI.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Create a single-use invitation to register (printed once), for `auth.registration = "invite"`.
    Invite {
        /// Only this email address may use it.
        #[arg(long)]
        email: Option<String>,
        /// Hours it stays valid (default `auth.invite_ttl_secs`; at most 720, 30 days).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=720))]
        ttl_hours: Option<u64>,
    },
}

pub async fn run(cfg: &Config, cmd: UsersCommand) -> Result<()> {
    let storage = Storage::connect(&cfg.database_url).await?;
    storage.migrate().await?;
    match cmd {
        UsersCommand::Create { email, admin, password_stdin, display_name } => {
            if storage.get_user_by_email(&email).await?.is_some() {
                bail!("a user with email {email} already exists (make it an administrator with `gaia rbac admin --email {email}`)");
            }
            let hash = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
                let pw = line.trim_end_matches(['\r', '\n']);
                Some(hash_password(pw)?)
            } else {
                None
            };
            let user = storage.create_user(&email, hash.as_deref(), display_name.as_deref()).await?;
            if admin {
                storage.set_admin(&user.id, true).await?;
            }
            let details = serde_json::json!({"via": "cli", "admin": admin});
            if let Err(e) = storage.record_audit(None, "auth.register", &user.id, &details).await {
                tracing::warn!(error = %e, "cannot write the audit log");
            }
            println!("created {} ({}){}", user.email, user.id, if admin { ", an administrator" } else { "" });
        }
        UsersCommand::Invite { email, ttl_hours } => {
            let ttl = Duration::from_secs(ttl_hours.map_or(cfg.auth.invite_ttl_secs, |h| h * 3600));
            let (invite, token) = sign_in::create_invite(&storage, email.as_deref(), None, ttl).await?;
            let details = serde_json::json!({"via": "cli", "email": invite.email});
            if let Err(e) = storage.record_audit(None, "auth.invite", &invite.id, &details).await {
                tracing::warn!(error = %e, "cannot write the audit log");
            }
            eprintln!(
                "invitation {} valid until {} (shown once; send it as `invite_token` with the registration)",
                invite.id,
                invite.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            println!("{token}");
        }
    }
    Ok(())
}
