//! `gaia assets ...`: generated assets, their cost and revenue report, and the unit and sell prices,
//! straight on the database, for scripts. Running servers re-read prices within seconds.

use crate::quotas::print;
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use gaia_core::storage::{AssetFilter, AssetGroup, AssetKind, NewUnitPrice, Storage, UnitPriceKind};
use serde_json::json;

/// Options shared by the asset commands.
#[derive(Args)]
pub struct AssetArgs {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AssetCommand,
}

#[derive(Subcommand)]
enum AssetCommand {
    /// Assets, newest first.
    List {
        /// Only this user's (id).
        #[arg(long)]
        user: Option<String>,
        /// Only this kind: image, speech, transcription, model_3d.
        #[arg(long = "type")]
        kind: Option<String>,
        /// How many (at most 200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Assets, units, cost, revenue and margin by type, provider, model, user or day.
    Report {
        /// `type`, `provider`, `model`, `user` or `day`.
        #[arg(long, default_value = "type")]
        group_by: String,
        /// From this time (RFC 3339).
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        /// Until this time (RFC 3339, exclusive).
        #[arg(long)]
        until: Option<DateTime<Utc>>,
        /// Only this user's (id).
        #[arg(long)]
        user: Option<String>,
        /// Print CSV.
        #[arg(long)]
        csv: bool,
    },
    /// Unit prices (what providers charge) and sell prices (what the game charges).
    Prices {
        #[command(subcommand)]
        command: PricesCommand,
    },
}

#[derive(Subcommand)]
enum PricesCommand {
    /// Every recorded price.
    List,
    /// Records a provider's price per unit of a model: `image` (or `image:1024x1024:hd`),
    /// `character`, `second`, `credit`.
    Cost {
        #[arg(long)]
        provider: String,
        #[arg(long)]
        model: String,
        #[arg(long)]
        unit: String,
        /// US dollars per unit.
        #[arg(long)]
        usd: f64,
        /// When it takes effect (RFC 3339; default now).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
    },
    /// Records what the game charges for one asset of a kind.
    Sell {
        /// image, speech, transcription or model_3d.
        #[arg(long = "type")]
        kind: String,
        /// US dollars per asset.
        #[arg(long)]
        usd: f64,
        /// When it takes effect (RFC 3339; default now).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
    },
    /// Deletes a recorded price.
    Delete { id: String },
}

fn kind(k: Option<&str>) -> Result<Option<AssetKind>> {
    match k {
        None => Ok(None),
        Some(k) => match AssetKind::parse(k) {
            Some(k) => Ok(Some(k)),
            None => bail!("--type: `{k}` is not image, speech, transcription or model_3d"),
        },
    }
}

/// Runs an asset command on the database at `database_url`.
pub async fn run(database_url: &str, args: AssetArgs) -> Result<()> {
    let storage = Storage::connect(database_url).await?;
    storage.migrate().await?;
    let json = args.json;
    match args.command {
        AssetCommand::List { user, kind: k, limit } => {
            let assets = storage.list_assets(user.as_deref(), kind(k.as_deref())?, None, limit).await?;
            if json {
                return print(&assets);
            }
            for a in assets {
                println!(
                    "{} {} {} {}/{} ${:.4} {}",
                    a.id,
                    a.kind.as_str(),
                    a.status.as_str(),
                    a.provider,
                    a.model,
                    a.cost_usd,
                    a.prompt.chars().take(60).collect::<String>()
                );
            }
        }
        AssetCommand::Report { group_by, since, until, user, csv } => {
            let group = match group_by.as_str() {
                "type" | "kind" => AssetGroup::Kind,
                "provider" => AssetGroup::Provider,
                "model" => AssetGroup::Model,
                "user" => AssetGroup::User,
                "day" => AssetGroup::Day,
                other => bail!("--group-by: `{other}` is not type, provider, model, user or day"),
            };
            let filter = AssetFilter { owners: user.map(|u| vec![u]), since, until, kind: None };
            let rows = storage.asset_report(&filter, group).await?;
            if csv {
                println!("{group_by},assets,failed,units,cost_usd,revenue_usd,margin_usd");
                for r in rows {
                    let key = gaia_core::storage::spreadsheet_safe(&r.key);
                    let key = if key.contains([',', '"', '\n']) {
                        format!("\"{}\"", key.replace('"', "\"\""))
                    } else {
                        key.into_owned()
                    };
                    println!(
                        "{key},{},{},{:.3},{:.6},{:.6},{:.6}",
                        r.assets, r.failed, r.units, r.cost_usd, r.revenue_usd, r.margin_usd
                    );
                }
            } else if json {
                print(json!({"group_by": group_by, "rows": rows}))?;
            } else {
                for r in rows {
                    println!(
                        "{}: {} assets ({} failed), cost ${:.4}, revenue ${:.4}, margin ${:.4}",
                        r.key, r.assets, r.failed, r.cost_usd, r.revenue_usd, r.margin_usd
                    );
                }
            }
        }
        AssetCommand::Prices { command } => match command {
            PricesCommand::List => {
                let all = storage.list_unit_prices().await?;
                if json {
                    return print(&all);
                }
                for p in all {
                    let what = match p.price_kind {
                        UnitPriceKind::Cost => format!("cost {}/{} per {}", p.provider, p.model, p.unit),
                        UnitPriceKind::Sell => format!("sell {}", p.unit),
                    };
                    println!("{} {what}: ${} from {}", p.id, p.usd_per_unit, p.effective_from.to_rfc3339());
                }
            }
            PricesCommand::Cost { provider, model, unit, usd, from } => {
                let new = NewUnitPrice {
                    kind: UnitPriceKind::Cost,
                    provider,
                    model,
                    unit,
                    usd_per_unit: usd,
                    effective_from: from,
                };
                recorded(storage.add_unit_price(&new, None).await?, json)?;
            }
            PricesCommand::Sell { kind: k, usd, from } => {
                let new = NewUnitPrice {
                    kind: UnitPriceKind::Sell,
                    provider: String::new(),
                    model: String::new(),
                    unit: k,
                    usd_per_unit: usd,
                    effective_from: from,
                };
                recorded(storage.add_unit_price(&new, None).await?, json)?;
            }
            PricesCommand::Delete { id } => {
                if !storage.delete_unit_price(&id).await? {
                    bail!("no price {id}");
                }
                println!("deleted {id}");
            }
        },
    }
    Ok(())
}

fn recorded(e: gaia_core::storage::UnitPriceEntry, json: bool) -> Result<()> {
    if json {
        return print(&e);
    }
    println!("recorded {}", e.id);
    Ok(())
}
