//! `gaia limits ...`, `gaia budgets ...`, `gaia prices ...` and `gaia usage report`: rate limits,
//! budgets, model prices and usage reports straight on the database, for scripts. Running servers pick
//! changes up within a few seconds (limits and budgets are cached for 2 s, prices re-read every 10 s).

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use gaia_core::quota::Quotas;
use gaia_core::storage::{BudgetPeriod, LimitScope, NewBudget, Storage, UsageFilter, UsageGroupBy};
use gaia_core::types::ModelPrice;
use serde_json::json;

/// Options shared by the quota commands.
#[derive(Args)]
pub struct QuotaArgs {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: QuotaCommand,
}

#[derive(Subcommand)]
enum QuotaCommand {
    /// Rate limits set per user or API key (the defaults are `[limits]`).
    Limits {
        #[command(subcommand)]
        command: LimitsCommand,
    },
    /// Spending limits per user, team or key.
    Budgets {
        #[command(subcommand)]
        command: BudgetsCommand,
    },
    /// Model prices with the date they take effect.
    Prices {
        #[command(subcommand)]
        command: PricesCommand,
    },
    /// Usage totals grouped by day, model, provider, user, key, end user or a tag's value.
    Report {
        /// `day`, `model`, `provider`, `user`, `key`, `end_user` or `tag:<key>`.
        #[arg(long, default_value = "day")]
        group_by: String,
        /// From this time (RFC 3339).
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        /// Until this time (RFC 3339, exclusive).
        #[arg(long)]
        until: Option<DateTime<Utc>>,
        /// Print CSV.
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand)]
enum LimitsCommand {
    /// List the limits set.
    List,
    /// Set the limits of a user, key or end user (an option left out keeps the default; 0 is unlimited).
    Set {
        /// `user`, `key`, `end_user` (one player: `USER_ID:PLAYER_ID`) or `key_end_users` (each player
        /// of a key).
        scope: String,
        /// The user, key or end user id.
        id: String,
        /// Model requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
    },
    /// Remove the limits of a user, key or end user (the defaults apply again).
    Clear {
        /// `user`, `key`, `end_user` or `key_end_users`.
        scope: String,
        /// The user, key or end user id.
        id: String,
    },
}

#[derive(Subcommand)]
enum BudgetsCommand {
    /// List the budgets with what was spent in their current period.
    List,
    /// Add a budget.
    Add {
        /// `user`, `team` or `key`.
        #[arg(long)]
        scope: String,
        /// The user, team or key id.
        #[arg(long)]
        subject: String,
        /// `daily` or `monthly`.
        #[arg(long, default_value = "monthly")]
        period: String,
        /// The limit in US dollars.
        #[arg(long)]
        limit_usd: f64,
        /// Only raise an event when reached, instead of refusing requests.
        #[arg(long)]
        soft: bool,
    },
    /// Change a budget's limit, or make it hard or soft (running servers apply it within seconds).
    Set {
        /// Budget id.
        id: String,
        /// The new limit in US dollars.
        #[arg(long)]
        limit_usd: Option<f64>,
        /// Refuse requests once reached.
        #[arg(long, conflicts_with = "soft")]
        hard: bool,
        /// Only raise an event when reached.
        #[arg(long)]
        soft: bool,
    },
    /// Remove a budget by id.
    Remove {
        /// Budget id.
        id: String,
    },
}

#[derive(Subcommand)]
enum PricesCommand {
    /// List the recorded prices.
    List,
    /// Record a price taking effect now or at `--from`.
    Set {
        /// Provider name.
        provider: String,
        /// Model id at the provider.
        model: String,
        /// US dollars per million input tokens.
        #[arg(long)]
        input: f64,
        /// US dollars per million output tokens.
        #[arg(long)]
        output: f64,
        /// US dollars per million input tokens read from the provider's prompt cache (default: `--input`).
        #[arg(long)]
        cached_input: Option<f64>,
        /// US dollars per million input tokens written to the provider's prompt cache (default:
        /// `--input`; Anthropic charges 1.25 times it).
        #[arg(long)]
        cache_write: Option<f64>,
        /// When it takes effect (RFC 3339; default now).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
    },
    /// Remove a recorded price by id.
    Remove {
        /// Price id.
        id: String,
    },
}

pub(crate) fn print(v: impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// Runs a quota command on the database at `database_url`.
pub async fn run(database_url: &str, args: QuotaArgs) -> Result<()> {
    let storage = Storage::connect(database_url).await?;
    storage.migrate().await?;
    let json = args.json;
    match args.command {
        QuotaCommand::Limits { command } => match command {
            LimitsCommand::List => {
                let all = storage.list_rate_limits().await?;
                if json {
                    return print(&all);
                }
                for l in all {
                    let show = |v: Option<u64>| v.map_or("default".to_string(), |v| v.to_string());
                    let (rpm, tpm) = (show(l.requests_per_minute), show(l.tokens_per_minute));
                    println!("{} {}: {rpm} requests/min, {tpm} tokens/min", l.scope, l.subject_id);
                }
            }
            LimitsCommand::Set { scope, id, rpm, tpm } => {
                let scope: LimitScope = scope.parse()?;
                let l = storage.set_rate_limit(scope, &id, rpm, tpm, None).await?;
                if json {
                    return print(&l);
                }
                println!("limits of {scope} {id} set");
            }
            LimitsCommand::Clear { scope, id } => {
                let scope: LimitScope = scope.parse()?;
                if !storage.delete_rate_limit(scope, &id).await? {
                    bail!("no limits are set for {scope} {id}");
                }
                println!("limits of {scope} {id} removed; the defaults apply");
            }
        },
        QuotaCommand::Budgets { command } => match command {
            BudgetsCommand::List => {
                // Team budgets count their members' spend, from the access-control policy.
                let policy = gaia_rbac::Rbac::load(storage.clone()).await?.policy();
                let quotas = Quotas::new(storage.clone(), Default::default());
                let mut out = Vec::new();
                for b in storage.list_budgets(None).await? {
                    out.push(quotas.status(&b, &policy.members_of(&b.subject_id)).await?);
                }
                if json {
                    return print(&out);
                }
                for s in out {
                    let b = &s.budget;
                    let kind = if b.hard { "hard" } else { "soft" };
                    println!(
                        "{} {} {}: ${:.4} of ${:.4} {} ({kind}), resets {}",
                        b.id,
                        b.scope,
                        b.subject_id,
                        s.spent_usd,
                        b.limit_usd,
                        b.period.as_str(),
                        s.resets_at.to_rfc3339()
                    );
                }
            }
            BudgetsCommand::Add { scope, subject, period, limit_usd, soft } => {
                let nb = NewBudget {
                    scope: scope.parse()?,
                    subject_id: subject,
                    period: period.parse::<BudgetPeriod>()?,
                    limit_usd,
                    hard: !soft,
                };
                let b = storage.create_budget(&nb, None).await?;
                if json {
                    return print(&b);
                }
                println!("budget {} added", b.id);
            }
            BudgetsCommand::Set { id, limit_usd, hard, soft } => {
                let Some(old) = storage.budget(&id).await? else { bail!("budget {id} not found") };
                let hard = if hard || soft { hard } else { old.hard };
                let Some(b) = storage.update_budget(&id, limit_usd.unwrap_or(old.limit_usd), hard).await? else {
                    bail!("budget {id} not found")
                };
                if json {
                    return print(&b);
                }
                println!(
                    "budget {} now ${} {} ({})",
                    b.id,
                    b.limit_usd,
                    b.period.as_str(),
                    if b.hard { "hard" } else { "soft" }
                );
            }
            BudgetsCommand::Remove { id } => {
                if !storage.delete_budget(&id).await? {
                    bail!("budget {id} not found");
                }
                println!("budget {id} removed");
            }
        },
        QuotaCommand::Prices { command } => match command {
            PricesCommand::List => {
                let all = storage.list_prices().await?;
                if json {
                    return print(&all);
                }
                for p in all {
                    println!(
                        "{} {}/{}: ${} in, ${} out per million tokens from {}",
                        p.id,
                        p.provider,
                        p.model,
                        p.price.input,
                        p.price.output,
                        p.effective_from.to_rfc3339()
                    );
                }
            }
            PricesCommand::Set { provider, model, input, output, cached_input, cache_write, from } => {
                let from = from.unwrap_or_else(Utc::now);
                let price = ModelPrice { input, output, cached_input, cache_write_input: cache_write };
                let p = storage.add_price(&provider, &model, price, from, None).await?;
                if json {
                    return print(&p);
                }
                println!("price {} recorded for {provider}/{model} from {}", p.id, from.to_rfc3339());
            }
            PricesCommand::Remove { id } => {
                if !storage.delete_price(&id).await? {
                    bail!("price {id} not found");
                }
                println!("price {id} removed");
            }
        },
        QuotaCommand::Report { group_by, since, until, csv } => {
            let filter = UsageFilter { user_id: None, since, until, end_user: None };
            let groups = match group_by.strip_prefix("tag:") {
                Some(key) => storage.usage_grouped_by_tag(&filter, key).await?,
                None => storage.usage_grouped(&filter, group_by.parse::<UsageGroupBy>().context("--group-by")?).await?,
            };
            if csv {
                use std::io::Write;
                std::io::stdout().write_all(&gaia_core::storage::UsageGroup::to_csv(&group_by, &groups))?;
            } else if json {
                print(json!({"group_by": group_by, "groups": groups}))?;
            } else {
                for g in groups {
                    let t = g.totals;
                    println!("{}: {} calls, {} errors, ${:.4}", g.key, t.requests, t.errors, t.cost_usd);
                }
            }
        }
    }
    Ok(())
}
