//! `gaia world ...`: game worlds for designers and scripts. `list` and `validate` read the
//! experiences of the vault (`--root`, else `kb.root`); `state`, `command` and `reset` act on the live
//! worlds in the database as a user (`--user EMAIL`), through the same engine as the server (commands
//! that call a model are admitted and metered like the server's).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use gaia_core::Config;
use gaia_world::content::load_catalog;
use gaia_world::{Action, Caller};
use std::path::{Path, PathBuf};

/// Options of `gaia world`.
#[derive(Args)]
pub struct WorldArgs {
    /// The vault holding `experiences/` (overrides kb.root).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: WorldCommand,
}

#[derive(Subcommand)]
enum WorldCommand {
    /// The experiences of the vault.
    List,
    /// Checks every experience; lists each problem with its file and field (exit code 1 when any).
    Validate,
    /// A player's view of an experience.
    State {
        /// The experience.
        experience: String,
        /// The player (an existing user's email).
        #[arg(long)]
        user: String,
    },
    /// Runs a command as a player (`look`, `go to pharmacy`, `talk to sam: hello`, `@stats`, …).
    Command {
        /// The experience.
        experience: String,
        /// The player (an existing user's email).
        #[arg(long)]
        user: String,
        /// Allow the `@` admin commands (whoever runs the CLI holds the database).
        #[arg(long)]
        admin: bool,
        /// The command.
        #[arg(required = true, num_args = 1..)]
        action: Vec<String>,
    },
    /// Starts a world (or one player) again from the content; `--undo` puts back what the last reset
    /// replaced.
    Reset {
        /// The experience.
        experience: String,
        /// The administrator running it (an existing user's email).
        #[arg(long)]
        user: String,
        /// Only this player (email), not the whole world.
        #[arg(long, conflicts_with = "undo")]
        player: Option<String>,
        /// Undo the last reset.
        #[arg(long)]
        undo: bool,
    },
}

fn vault_root(cfg: &Config, root: Option<PathBuf>) -> Result<PathBuf> {
    match root {
        Some(r) => Ok(r),
        None if cfg.kb.is_some() => Ok(cfg.kb.as_ref().map(|k| k.root.clone()).unwrap_or_default()),
        None => bail!("no knowledge base configured: add a [kb] section to gaia.toml or pass --root VAULT"),
    }
}

/// Runs `gaia world`.
pub async fn run(cfg: Config, args: WorldArgs) -> Result<()> {
    let root = vault_root(&cfg, args.root)?;
    let print = |v: serde_json::Value| println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    match args.command {
        WorldCommand::List => {
            let catalog = load_catalog(&root);
            if args.json {
                let list: Vec<_> = catalog.experiences.values().map(|e| &e.config).collect();
                print(serde_json::json!({"experiences": list, "errors": catalog.errors}));
            } else {
                for e in catalog.experiences.values() {
                    let c = &e.config;
                    println!("{}\t{}\t{}\t{:?}", c.id, c.version, c.name, c.state.model);
                }
                if !catalog.errors.is_empty() {
                    eprintln!("{} problem(s): run `gaia world validate`", catalog.errors.len());
                }
            }
        }
        WorldCommand::Validate => {
            let catalog = load_catalog(&root);
            if args.json {
                print(
                    serde_json::json!({"valid": catalog.experiences.keys().collect::<Vec<_>>(), "errors": catalog.errors}),
                );
            } else {
                for id in catalog.experiences.keys() {
                    println!("ok\t{id}");
                }
                for e in &catalog.errors {
                    println!("error\t{}\t{}\t{}\t{}", e.experience, e.file, e.field, e.message);
                }
            }
            if !catalog.errors.is_empty() {
                std::process::exit(1);
            }
        }
        WorldCommand::State { experience, user } => {
            let (state, principal) = engine(cfg, &root, &user).await?;
            let view = state.worlds().view(&experience, &principal.user_id).await?;
            print(serde_json::to_value(view)?);
        }
        WorldCommand::Command { experience, user, admin, action } => {
            let (state, principal) = engine(cfg, &root, &user).await?;
            let action = Action::new(action.join(" "));
            let caller = caller(&state, &principal, &action).await?.with_admin(admin);
            let r = state.worlds().command(&experience, caller, &action).await?;
            if args.json {
                print(serde_json::to_value(&r)?);
            } else {
                println!("{}", r.message);
                if !r.success {
                    std::process::exit(1);
                }
            }
        }
        WorldCommand::Reset { experience, user, player, undo } => {
            let (state, principal) = engine(cfg, &root, &user).await?;
            let text = match (player, undo) {
                (_, true) => "@reset undo".to_string(),
                (Some(email), false) => {
                    let p =
                        state.storage().get_user_by_email(&email).await?.with_context(|| format!("no user {email}"))?;
                    format!("@reset player {}", p.id)
                }
                (None, false) => "@reset experience".to_string(),
            };
            let caller = Caller::player(principal.user_id.clone()).with_admin(true);
            let r = state.worlds().command(&experience, caller, &Action::new(text)).await?;
            println!("{}", r.message);
            if !r.success {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// The server's state with the experiences of `root` loaded, and the user `email` as a principal.
async fn engine(cfg: Config, root: &Path, email: &str) -> Result<(gaia_server::AppState, gaia_core::auth::Principal)> {
    let (state, principal) = crate::acting_as(cfg, email).await?;
    let root = root.to_path_buf();
    let catalog = tokio::task::spawn_blocking(move || load_catalog(&root)).await?;
    state.worlds().set_catalog_from(state.worlds().begin_load(), catalog);
    Ok((state, principal))
}

/// The caller for `action`: admitted to call models when it may call one.
async fn caller(state: &gaia_server::AppState, p: &gaia_core::auth::Principal, action: &Action) -> Result<Caller> {
    if !gaia_world::Worlds::needs_model(action) {
        return Ok(Caller::player(p.user_id.clone()));
    }
    let gate = state.engine().admit(p, false).await.map_err(|r| anyhow::anyhow!("refused: {}", r.message))?;
    let admitted = gate.budgets(None).await.map_err(|r| anyhow::anyhow!("refused: {}", r.message))?;
    Ok(Caller::admitted(admitted))
}
