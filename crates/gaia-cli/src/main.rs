//! `gaia`: run the server, manage API keys, chat from the terminal, run the mock upstream, use the
//! knowledge base (`gaia kb search|read|ls|sync|reindex`), manage access (`gaia rbac ...`), apply data
//! retention (`gaia retention run`).

mod assets;
mod otel;
mod quotas;
mod rbac;
mod users;
mod world;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use gaia_core::auth::{Authenticator, JwtKeys};
use gaia_core::storage::Storage;
use gaia_core::{cache, Config};
use gaia_providers::mock::{Fault, MockConfig, MockUpstream};
use gaia_server::AppState;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// mimalloc gives freed memory back to the system, so a server's RSS follows what it holds (10,000
/// game sockets: see BENCHMARKS.md) rather than its peak, as glibc's allocator keeps it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gaia", version, about = "Gaia: an AI platform for games — server, keys, chat, mock LLM")]
struct Cli {
    /// Path to a gaia.toml (default: ./gaia.toml when present).
    #[arg(long, global = true, env = "GAIA_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Export traces with OpenTelemetry (OTLP over HTTP) to this collector, such as
    /// `http://localhost:4318` (`/v1/traces` is added unless present). Needs a build with the `otel`
    /// feature.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otel_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (graceful shutdown on Ctrl-C / SIGTERM).
    Serve {
        /// Listen address (overrides server.bind).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Run the database migrations and exit.
    Migrate,
    /// Ask a running server whether it is ready (exit 0) or not (exit 1): a container's health check.
    Health(HealthArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Send a prompt to a running server and stream the answer.
    Chat(ChatArgs),
    /// Run the mock LLM upstream (OpenAI and Anthropic wire formats) for tests and demos.
    MockLlm(MockArgs),
    /// Use the knowledge base configured in `[kb]` (or a folder given with `--root`) directly.
    Kb(KbArgs),
    /// Accounts: create one (the first administrator: `gaia users create --email E --admin`), or an
    /// invitation to register.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Access control: roles, administrators, grants, teams, workspaces, shares, checks, audit log.
    Rbac(rbac::RbacArgs),
    /// Rate limits, budgets, model prices and usage reports (`gaia quotas limits|budgets|prices|report`).
    Quotas(quotas::QuotaArgs),
    /// Generated assets: list them, their cost and revenue report, unit and sell prices.
    Assets(assets::AssetArgs),
    /// Game worlds: list and validate the experiences of the vault; a player's state, commands, resets.
    World(world::WorldArgs),
    /// Data retention: delete messages, usage records and audit rows older than `[retention]` says.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// MCP: offer Gaia's tools to other agents.
    Mcp {
        #[command(subcommand)]
        command: McpCommand,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Run one retention pass now and print what was deleted (the server also runs it every
    /// `retention.interval_secs`). Options override `[retention]`; 0 keeps forever.
    Run {
        /// Days chat messages are kept (overrides retention.messages_days).
        #[arg(long)]
        messages_days: Option<u32>,
        /// Days usage records are kept (overrides retention.usage_days).
        #[arg(long)]
        usage_days: Option<u32>,
        /// Days audit rows are kept (overrides retention.audit_days).
        #[arg(long)]
        audit_days: Option<u32>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum McpCommand {
    /// Serve the knowledge-base tools, `gaia__chat` (when providers are configured and `--user` is
    /// given) and the filesystem tool of `[agents] fs_root` as an MCP server on stdin/stdout, for
    /// Claude Desktop, IDEs or other agents. Logs go to stderr.
    Serve {
        /// Vault folder (overrides kb.root; needed when no [kb] is configured).
        #[arg(long)]
        root: Option<PathBuf>,
        /// The user (email) `gaia__chat` asks as: admitted with their permission, rate limits and
        /// budgets, and metered to them as `mcp_chat`, as on the server's `/mcp`.
        #[arg(long, env = "GAIA_MCP_USER")]
        user: Option<String>,
    },
}

#[derive(Args)]
struct KbArgs {
    /// Vault folder (overrides kb.root; a plain folder or git working copy when no [kb] is configured).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Keep the search index in this folder (overrides kb.index_dir): later runs re-index only the
    /// documents that changed instead of building the index again.
    #[arg(long, global = true)]
    index_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: KbCommand,
}

#[derive(Subcommand)]
enum KbCommand {
    /// Search: ranked (default), exact text / regex line by line, or by meaning (semantic, hybrid).
    Search {
        /// Query (words, "phrases", prefix*, -excluded, tag:x, folder:x) or pattern.
        query: String,
        /// Most results.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Only under this folder.
        #[arg(long)]
        folder: Option<String>,
        /// Only with this tag (repeatable).
        #[arg(long)]
        tag: Vec<String>,
        /// Exact text search over the raw text.
        #[arg(long, conflicts_with_all = ["regex", "semantic", "hybrid"])]
        exact: bool,
        /// Search by meaning: the notes whose sections are nearest the query (needs `[embeddings]
        /// model`; notes not embedded yet are embedded first, their vectors kept in the database).
        #[arg(long, conflicts_with_all = ["regex", "hybrid"])]
        semantic: bool,
        /// Ranked and semantic search together (reciprocal rank fusion).
        #[arg(long, conflicts_with = "regex")]
        hybrid: bool,
        /// Regular-expression search over the raw text.
        #[arg(long)]
        regex: bool,
        /// Exact and regex search: match case.
        #[arg(long)]
        case_sensitive: bool,
    },
    /// Print a document (by path or note name).
    Read {
        /// Path or name.
        path: String,
    },
    /// List a folder.
    Ls {
        /// Folder (the root when absent).
        path: Option<String>,
        /// Every document below.
        #[arg(long, short)]
        recursive: bool,
    },
    /// Fetch and fast-forward from the remote, then re-index what changed.
    Sync,
    /// Re-index: changed documents only, or everything with --full.
    Reindex {
        /// Drop the index and build it again.
        #[arg(long)]
        full: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a user (created if missing); the key is printed once.
    Create {
        /// Owner's email.
        #[arg(long)]
        email: String,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
        /// The key expires this many days from now (default: never).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36500))]
        expires_in_days: Option<u32>,
    },
    /// Rotate a key: create its successor (printed once) and let the old one work for the overlap.
    Rotate {
        /// Key id (from `gaia keys list`).
        id: String,
        /// Seconds the old key keeps working (0: it stops at once; at most 2592000, 30 days).
        #[arg(long, default_value_t = 86_400)]
        overlap_secs: u64,
    },
    /// List keys (prefix, owner, created, last used, revoked, expires).
    List {
        /// Only this user's keys.
        #[arg(long)]
        email: Option<String>,
    },
    /// Revoke a key by id.
    Revoke {
        /// Key id (from `gaia keys list`).
        id: String,
    },
}

#[derive(Args)]
struct ChatArgs {
    /// The prompt.
    prompt: String,
    /// Model (`id` or `provider/id`).
    #[arg(long)]
    model: Option<String>,
    /// Continue this conversation.
    #[arg(long)]
    conversation: Option<String>,
    /// Server URL.
    #[arg(long, env = "GAIA_URL", default_value = "http://127.0.0.1:8666")]
    url: String,
    /// API key (or a JWT).
    #[arg(long, env = "GAIA_API_KEY", hide_env_values = true)]
    api_key: String,
}

#[derive(Args)]
struct MockArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9100")]
    bind: SocketAddr,
    /// Delay before each streamed chunk, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Number of chunks a reply is split into.
    #[arg(long, default_value_t = 4)]
    chunks: usize,
    /// Fault for every request: disconnect, stall, malformed, slow, or error-NNN.
    #[arg(long)]
    fault: Option<String>,
    /// Require this API key.
    #[arg(long, hide_env_values = true)]
    require_key: Option<String>,
}

/// Logs to stderr (text or JSON, filtered by `RUST_LOG`), plus trace export when `otel_endpoint` is
/// set (feature `otel`). `from_flag`: the endpoint was given on the command line rather than in the
/// environment (without the feature that is an error, an environment variable only a warning).
fn init_logging(format: LogFormat, otel_endpoint: Option<&str>, from_flag: bool) -> Result<Option<otel::Guard>> {
    use tracing_subscriber::prelude::*;
    type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: Boxed = match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    };
    #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
    let mut layers = vec![fmt];
    let otel_endpoint = otel_endpoint.map(str::trim).filter(|e| !e.is_empty());
    #[cfg(feature = "otel")]
    let guard = match otel_endpoint {
        Some(endpoint) => {
            let (layer, guard) = otel::layer(endpoint)?;
            layers.push(layer);
            Some(guard)
        }
        None => None,
    };
    #[cfg(not(feature = "otel"))]
    let guard = {
        if otel_endpoint.is_some() && from_flag {
            bail!(
                "--otel-endpoint needs a gaia built with the `otel` feature (cargo build -p gaia-cli --features otel)"
            );
        }
        None
    };
    tracing_subscriber::registry().with(layers).init();
    #[cfg(feature = "otel")]
    if let Some(endpoint) = otel_endpoint {
        let endpoint = otel::display_url(&otel::traces_url(endpoint));
        tracing::info!(%endpoint, "exporting traces with OpenTelemetry");
    }
    #[cfg(not(feature = "otel"))]
    if otel_endpoint.is_some() {
        tracing::warn!(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but this gaia was built without the `otel` feature: no traces are exported"
        );
    }
    #[cfg(feature = "otel")]
    let _ = from_flag;
    Ok(guard)
}

#[tokio::main]
async fn main() -> Result<()> {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let from_flag = matches.value_source("otel_endpoint") == Some(clap::parser::ValueSource::CommandLine);
    let _otel = init_logging(cli.log_format, cli.otel_endpoint.as_deref(), from_flag)?;
    match cli.command {
        Command::Serve { bind } => serve(cli.config, bind).await,
        Command::Migrate => {
            let cfg = load(cli.config)?;
            let storage = Storage::connect(&cfg.database_url).await?;
            storage.migrate().await?;
            println!("migrations applied ({})", storage.backend().as_str());
            Ok(())
        }
        Command::Health(args) => health(cli.config, args).await,
        Command::Keys { command } => keys(cli.config, command).await,
        Command::Chat(args) => chat(args).await,
        Command::MockLlm(args) => mock(args).await,
        Command::Kb(args) => kb(cli.config, args).await,
        Command::Users { command } => users::run(&load(cli.config)?, command).await,
        Command::Rbac(args) => rbac::run(&load(cli.config)?.database_url, args).await,
        Command::Quotas(args) => quotas::run(&load(cli.config)?.database_url, args).await,
        Command::World(args) => world::run(load(cli.config)?, args).await,
        Command::Assets(args) => assets::run(&load(cli.config)?.database_url, args).await,
        Command::Mcp { command: McpCommand::Serve { root, user } } => mcp_serve(cli.config, root, user).await,
        Command::Retention { command } => retention(cli.config, command).await,
    }
}

/// Opens the knowledge base of `[kb]` (or a plain folder given as `root`); `None` when neither.
async fn open_kb(cfg: &Config, root: Option<PathBuf>) -> Result<Option<gaia_kb::Kb>> {
    Ok(open_kb_reporting(cfg, root, None).await?.map(|(kb, _)| kb))
}

/// Like [`open_kb`] (with `index_dir` overriding kb.index_dir), with what was indexed on opening.
async fn open_kb_reporting(
    cfg: &Config,
    root: Option<PathBuf>,
    index_dir: Option<PathBuf>,
) -> Result<Option<(gaia_kb::Kb, gaia_kb::SyncReport)>> {
    use gaia_kb::{Kb, KbStorageMode};
    let mut kc = cfg.kb.clone().unwrap_or_default();
    if let Some(root) = root {
        kc.root = root;
    } else if cfg.kb.is_none() {
        return Ok(None);
    }
    if index_dir.is_some() {
        kc.index_dir = index_dir;
    }
    kc.sync_interval_secs = 0;
    let storage = if matches!(kc.mode, KbStorageMode::Git) {
        None
    } else {
        let s = Storage::connect(&cfg.database_url).await?;
        s.migrate().await?;
        Some(s)
    };
    Ok(Some(Kb::open_reporting(kc, storage).await.context("cannot open the knowledge base")?))
}

async fn mcp_serve(path: Option<PathBuf>, root: Option<PathBuf>, user: Option<String>) -> Result<()> {
    use std::sync::Arc;
    let cfg = load(path)?;
    let mut tools = gaia_mcp::Toolbox::new();
    if let Some(kb) = open_kb(&cfg, root).await? {
        tools.add(Arc::new(gaia_mcp::KbToolSource::new(kb)));
    }
    if let Some(dir) = &cfg.agents.fs_root {
        tools.add(Arc::new(gaia_mcp::FsToolSource::new(dir)?));
    }
    // The chat tool goes through the conversation engine, as a named user (never around it).
    match user {
        Some(email) => {
            let (state, principal) = acting_as(cfg.clone(), &email).await?;
            if state.providers().is_empty() {
                tracing::warn!("no provider configured: gaia__chat is not served");
            } else {
                tools.add(Arc::new(gaia_chat::chat_tool(state.engine(), principal)));
            }
        }
        None => {
            tracing::info!("gaia__chat is not served: pass --user EMAIL (or GAIA_MCP_USER) to ask models as that user")
        }
    }
    for (source, err) in tools.refresh().await {
        tracing::warn!(%source, %err, "tools left out");
    }
    if tools.is_empty() {
        bail!("nothing to serve: configure [kb] (or pass --root FOLDER), [agents] fs_root, or providers with --user");
    }
    tracing::info!(tools = tools.specs().len(), "serving MCP on stdio");
    gaia_mcp::ToolServer::new(Arc::new(tools)).serve_stdio().await?;
    Ok(())
}

/// The server's state (database, providers, the conversation engine; no background job, no web UI),
/// for commands that call models. No token is issued, so a missing `jwt_secret` is replaced by one of
/// this process only.
async fn engine_state(mut cfg: Config, kb: Option<gaia_kb::Kb>) -> Result<AppState> {
    cfg.jwt_secret.get_or_insert_with(|| uuid::Uuid::new_v4().to_string() + &uuid::Uuid::new_v4().to_string());
    let mut builder = gaia_server::Gaia::builder().config(cfg).background_jobs(false).ui(false);
    if let Some(kb) = kb {
        builder = builder.kb(kb);
    }
    let gaia = builder.build().await.context("cannot start the engine")?;
    Ok(gaia.state().clone())
}

/// The server's state (database, providers, the conversation engine; no background job, no web UI) and
/// the existing user `email` as the principal the command acts as: how the CLI runs the engine for a
/// user (`gaia mcp serve --user`, `gaia world`). No token is issued, so a missing `jwt_secret` is
/// replaced by one of this process only.
pub(crate) async fn acting_as(cfg: Config, email: &str) -> Result<(AppState, gaia_core::auth::Principal)> {
    let state = engine_state(cfg, None).await?;
    let u = state
        .storage()
        .get_user_by_email(email)
        .await?
        .with_context(|| format!("no user {email}: create it first (gaia users create)"))?;
    let principal = gaia_core::auth::Principal {
        user_id: u.id,
        email: Some(u.email),
        is_admin: u.is_admin,
        method: gaia_core::auth::AuthMethod::Jwt,
    };
    Ok((state, principal))
}

async fn kb(path: Option<PathBuf>, args: KbArgs) -> Result<()> {
    use gaia_kb::{GrepOptions, SearchOptions};
    let cfg = load(path)?;
    let Some((kb, opened)) = open_kb_reporting(&cfg, args.root, args.index_dir).await? else {
        bail!("no knowledge base configured: add a [kb] section to gaia.toml or pass --root FOLDER");
    };
    let print = |v: serde_json::Value| println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    match args.command {
        KbCommand::Search { query, limit, folder, tag, exact, regex, case_sensitive, semantic, hybrid } => {
            if semantic || hybrid {
                // The server's engine embeds (metered, through the configured providers), and the
                // vectors other instances stored are used as they are.
                let _state = engine_state(cfg.clone(), Some(kb.clone())).await?;
                if kb.semantic_status().is_none() {
                    bail!("semantic and hybrid search need an embedding model: set `[embeddings] model` in gaia.toml (or GAIA_EMBEDDINGS__MODEL)");
                }
                kb.index_vectors().await.context("cannot embed the notes")?;
                let mode = if semantic {
                    gaia_kb::semantic::MeaningMode::Semantic
                } else {
                    gaia_kb::semantic::MeaningMode::Hybrid
                };
                let hits = kb.search_by_meaning(mode, &query, limit).await?;
                if args.json {
                    print(serde_json::to_value(&hits)?);
                    return Ok(());
                }
                println!("{} result(s)", hits.len());
                for h in hits {
                    let place =
                        if h.heading.is_empty() { h.title.clone() } else { format!("{} > {}", h.title, h.heading) };
                    println!("{:.3}  {}  ({place})", h.score, h.path);
                }
            } else if exact || regex {
                let m = kb.grep(&GrepOptions { pattern: query, regex, case_sensitive, folder, limit })?;
                if args.json {
                    print(serde_json::to_value(&m)?);
                }
                for g in m.iter().filter(|_| !args.json) {
                    println!("{}:{}: {}", g.path, g.line, g.text);
                }
            } else {
                let r = kb.search(&SearchOptions { query, limit, folder, tags: tag, ..Default::default() })?;
                if args.json {
                    print(serde_json::to_value(&r)?);
                    return Ok(());
                }
                println!("{} result(s)", r.total);
                for h in r.hits {
                    let snippet = h.snippet.replace("<b>", "").replace("</b>", "").replace('\n', " ");
                    let snippet = snippet
                        .replace("&quot;", "\"")
                        .replace("&#x27;", "'")
                        .replace("&#39;", "'")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&amp;", "&");
                    println!("{:.2}  {}  ({})\n      {}", h.score, h.path, h.title, snippet);
                }
            }
        }
        KbCommand::Read { path } => {
            let d = kb.read(&path).await?;
            if args.json {
                print(serde_json::to_value(&*d)?);
            } else {
                print!("{}", d.content);
            }
        }
        KbCommand::Ls { path, recursive } => {
            let entries = kb.list(path.as_deref(), recursive)?;
            if args.json {
                print(serde_json::to_value(&entries)?);
            }
            for e in entries.iter().filter(|_| !args.json) {
                match e.kind {
                    "folder" => println!("{}/  ({} documents)", e.path, e.size),
                    _ => println!("{}  {}", e.path, e.title.as_deref().unwrap_or_default()),
                }
            }
        }
        KbCommand::Sync => {
            // Always JSON: the report is what scripts and cron jobs read.
            let r = kb.sync().await?;
            print(serde_json::to_value(&r)?);
        }
        KbCommand::Reindex { full } => {
            let r = if full {
                kb.rebuild_index().await?
            } else {
                // Opening already re-indexed what changed since the index was written: report it too.
                let mut r = kb.reindex().await?;
                let mut changed = opened.changed;
                for p in r.changed {
                    if !changed.contains(&p) {
                        changed.push(p);
                    }
                }
                r.changed = changed;
                r.deleted = opened.deleted.into_iter().chain(r.deleted).collect();
                r.took_ms += opened.took_ms;
                r
            };
            if args.json {
                print(serde_json::to_value(&r)?);
            } else {
                println!("{} document(s) indexed, {} removed, in {} ms", r.changed.len(), r.deleted.len(), r.took_ms);
            }
        }
    }
    Ok(())
}

#[derive(Args)]
struct HealthArgs {
    /// The URL to ask (default: `/health/ready` of the configured `server.bind`, through loopback when
    /// it listens on every address).
    #[arg(long)]
    url: Option<String>,
    /// Ask `/health/live` (the process answers) instead of `/health/ready`.
    #[arg(long)]
    live: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

/// `gaia health`: exits 0 when the server answers 200, else with an error (exit 1).
async fn health(path: Option<PathBuf>, args: HealthArgs) -> Result<()> {
    let check = if args.live { "live" } else { "ready" };
    let (url, tls) = match args.url {
        Some(u) => (u, false),
        None => {
            let cfg = load(path)?;
            let mut addr: SocketAddr = cfg.server.bind.parse().context("server.bind")?;
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
            }
            let tls = cfg.server.tls.is_some();
            (format!("{}://{addr}/health/{check}", if tls { "https" } else { "http" }), tls)
        }
    };
    // The server's own certificate may not name the loopback address: this request reads nothing
    // secret and sends no credential.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs.max(1)))
        .danger_accept_invalid_certs(tls)
        .build()?;
    let r = http.get(&url).send().await.with_context(|| format!("{url}: no answer"))?;
    if !r.status().is_success() {
        bail!("{url}: {}", r.status());
    }
    println!("{check}");
    Ok(())
}

fn load(path: Option<PathBuf>) -> Result<Config> {
    Config::load(path.as_deref()).context("invalid configuration")
}

async fn serve(path: Option<PathBuf>, bind: Option<String>) -> Result<()> {
    let mut cfg = load(path)?;
    if let Some(b) = bind {
        cfg.server.bind = b;
        cfg.validate()?;
    }
    let addr = cfg.server.bind.clone();
    // Read the certificate and keys first: a bad TLS file fails before anything else starts.
    let tls = match &cfg.server.tls {
        Some(t) => Some(gaia_server::tls::server_config(t).context("invalid TLS configuration")?),
        None => None,
    };
    // How the first administrator comes to be, and who may register.
    let notice = gaia_server::routes::auth::first_user_admin_notice(&cfg);
    if notice.contains("NOT") {
        tracing::warn!("{notice}");
    } else {
        tracing::info!("{notice}");
    }
    tracing::info!(registration = ?cfg.auth.registration, "registration (auth.registration)");
    // Starting may wait (for the migrations another step runs, for a first clone of the vault): a
    // shutdown signal meanwhile stops it at once (in a container, `gaia` is PID 1: a signal it does not
    // handle is ignored).
    let state = tokio::select! {
        state = AppState::from_config(cfg) => state.context("cannot start")?,
        _ = gaia_server::shutdown_signal() => {
            tracing::info!("stopped before starting");
            return Ok(());
        }
    };
    if state.providers().is_empty() {
        tracing::warn!("no LLM provider configured: chat answers 503 until OPENAI_API_KEY or ANTHROPIC_API_KEY is set");
    }
    let listener = gaia_core::net::listen(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    match tls {
        Some(tls) => gaia_server::serve_tls(listener, tls, state, gaia_server::shutdown_signal()).await?,
        None => gaia_server::serve(listener, state, gaia_server::shutdown_signal()).await?,
    }
    Ok(())
}

async fn retention(path: Option<PathBuf>, cmd: RetentionCommand) -> Result<()> {
    let RetentionCommand::Run { messages_days, usage_days, audit_days, json } = cmd;
    let cfg = load(path)?;
    let mut rc = cfg.retention.clone();
    rc.messages_days = messages_days.unwrap_or(rc.messages_days);
    rc.usage_days = usage_days.unwrap_or(rc.usage_days);
    rc.audit_days = audit_days.unwrap_or(rc.audit_days);
    let storage = Storage::connect(&cfg.database_url).await?;
    storage.migrate().await?;
    if !rc.is_enabled() {
        eprintln!("retention is off (messages_days, usage_days, audit_days and sign_ins_days are all 0: keep forever)");
    }
    let report = gaia_core::retention::run_once(&storage, &rc, chrono::Utc::now()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

async fn keys(path: Option<PathBuf>, cmd: KeysCommand) -> Result<()> {
    let cfg = load(path)?;
    let storage = Storage::connect(&cfg.database_url).await?;
    storage.migrate().await?;
    match cmd {
        KeysCommand::Create { email, name, expires_in_days } => {
            let user = match storage.get_user_by_email(&email).await? {
                Some(u) => u,
                None => storage.create_user(&email, None, None).await?,
            };
            let cache = cache::from_config(&cfg).await?;
            let auth = Authenticator::new(storage, cache, JwtKeys::random(), Duration::from_secs(60));
            let expires_at = expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d)));
            let (rec, key) = auth.create_api_key_with_expiry(&user.id, name.as_deref(), expires_at).await?;
            let details = serde_json::json!({"prefix": rec.prefix, "name": rec.name, "expires_at": rec.expires_at,
                                             "via": "cli"});
            if let Err(e) = auth.storage().record_audit(None, "key.create", &rec.id, &details).await {
                tracing::warn!(error = %e, "cannot write the audit log");
            }
            match rec.expires_at {
                Some(e) => eprintln!(
                    "created key {} for {}, expiring {} (shown once; store it now)",
                    rec.id,
                    user.email,
                    e.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                None => eprintln!("created key {} for {} (shown once; store it now)", rec.id, user.email),
            }
            println!("{key}");
        }
        KeysCommand::Rotate { id, overlap_secs } => {
            // Through the configured cache so a shared (Redis) cache forgets the old key's validation.
            let cache = cache::from_config(&cfg).await?;
            let auth = Authenticator::new(storage, cache, JwtKeys::random(), Duration::from_secs(60));
            let r = auth.rotate_api_key(&id, Duration::from_secs(overlap_secs)).await?;
            let details = serde_json::json!({"new_key_id": r.new.id, "prefix": r.new.prefix,
                "overlap_secs": overlap_secs, "old_expires_at": r.old.expires_at, "via": "cli"});
            if let Err(e) = auth.storage().record_audit(None, "key.rotate", &id, &details).await {
                tracing::warn!(error = %e, "cannot write the audit log");
            }
            let until = r.old.expires_at.map(|e| e.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default();
            eprintln!("rotated {id} to {} (shown once; store it now); the old key works until {until}", r.new.id);
            println!("{}", r.key);
        }
        KeysCommand::List { email } => {
            let user_id = match &email {
                Some(e) => Some(storage.get_user_by_email(e).await?.with_context(|| format!("no user {e}"))?.id),
                None => None,
            };
            let keys = storage.list_api_keys(user_id.as_deref()).await?;
            println!(
                "{:<36}  {:<12}  {:<20}  {:<20}  {:<20}  {:<20}  name",
                "id", "prefix", "created", "last used", "revoked", "expires"
            );
            for k in keys {
                let t = |d: Option<chrono::DateTime<chrono::Utc>>| {
                    d.map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into())
                };
                println!(
                    "{:<36}  {:<12}  {:<20}  {:<20}  {:<20}  {:<20}  {}",
                    k.id,
                    k.prefix,
                    t(Some(k.created_at)),
                    t(k.last_used_at),
                    t(k.revoked_at),
                    t(k.expires_at),
                    k.name.unwrap_or_default()
                );
            }
        }
        KeysCommand::Revoke { id } => {
            // Through the configured cache so a shared (Redis) cache forgets the key at once too.
            let cache = cache::from_config(&cfg).await?;
            let auth = Authenticator::new(storage, cache, JwtKeys::random(), Duration::from_secs(60));
            match auth.revoke_api_key(&id).await? {
                Some(_) => println!("revoked {id}"),
                None => bail!("no API key with id {id}"),
            }
        }
    }
    Ok(())
}

async fn chat(args: ChatArgs) -> Result<()> {
    use eventsource_stream::Eventsource;
    let mut body = serde_json::json!({"message": args.prompt, "stream": true});
    if let Some(m) = &args.model {
        body["model"] = m.clone().into();
    }
    if let Some(c) = &args.conversation {
        body["conversation_id"] = c.clone().into();
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/chat", args.url.trim_end_matches('/')))
        .bearer_auth(&args.api_key)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {}", args.url))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        bail!("{status}: {}", v["detail"].as_str().unwrap_or("request failed"));
    }
    let mut events = resp.bytes_stream().eventsource();
    let mut out = std::io::stdout();
    let mut conversation = None;
    while let Some(ev) = events.next().await {
        let ev = ev.context("the answer stream broke")?;
        if ev.data == "[DONE]" {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or_default();
        if v["type"] == "metadata" {
            conversation = v["conversation_id"].as_str().map(str::to_string);
        } else if v["type"] == "tool_call" {
            // Tool use goes to stderr, so that stdout is the answer alone.
            eprintln!("[{} {}]", v["name"].as_str().unwrap_or("tool"), v["arguments"].as_str().unwrap_or(""));
        } else if v["type"] == "tool_result" {
            if v["ok"] == false {
                eprintln!("[{} failed]", v["name"].as_str().unwrap_or("tool"));
            }
        } else if let Some(e) = v.get("error") {
            writeln!(out)?;
            bail!("the model failed mid-answer: {}", e["message"].as_str().unwrap_or("unknown error"));
        } else if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            write!(out, "{t}")?;
            out.flush()?;
        }
    }
    writeln!(out)?;
    if let Some(c) = conversation {
        eprintln!("conversation: {c}");
    }
    Ok(())
}

async fn mock(args: MockArgs) -> Result<()> {
    let fault = args.fault.as_deref().map(str::parse::<Fault>).transpose().map_err(anyhow::Error::msg)?;
    let cfg = MockConfig {
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        chunks: args.chunks.max(1),
        fault,
        require_key: args.require_key,
    };
    let handle =
        MockUpstream::start(args.bind, cfg).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    println!(
        "mock LLM upstream on {} (OpenAI base URL {}, Anthropic base URL {})",
        handle.addr(),
        handle.openai_base_url(),
        handle.base_url()
    );
    gaia_server::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
