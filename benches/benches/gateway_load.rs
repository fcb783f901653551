//! Gateway load harness: the latency Gaia adds on top of the upstream, and its throughput.
//!
//! Three processes on loopback: the mock upstream, the Gaia server (SQLite in memory, in-process cache,
//! usage metering on) — both child processes of this one, started from this same executable with
//! `GAIA_BENCH_ROLE` — and this process, an open-loop load generator on one thread that sends requests at
//! a fixed rate and measures each latency from its *scheduled* send time (no coordinated omission). Each case
//! is run against the mock directly (baseline) and through Gaia's `/v1/chat/completions`, in the same
//! run; the report gives p50/p99 of both and the difference.
//!
//! `cargo bench -p gaia-benches --bench gateway_load`
//! Settings: `GAIA_BENCH_RATE` (requests/s, default 1000), `GAIA_BENCH_SECS` (default 10),
//! `GAIA_SOAK_SECS` (default 0: no soak; 600 for the 10-minute memory soak, reporting the gateway
//! process's RSS each minute), `GAIA_BENCH_PROFILE=stream|plain` (only a closed loop through Gaia, for
//! a profiler attached to the gateway's pid, which is printed), `GAIA_BENCH_REDIS_URL` (run the gateway
//! as one instance of a scaled-out deployment: cache, rate-limit counters and events in Redis, with
//! per-key and per-user rate limits, a hard budget and a recorded price in force, so every request is
//! admitted through Redis and costed; `GAIA_BENCH_BUDGET=0` leaves the budget out).
//!
//! `GAIA_BENCH_GUARDRAILS=1` (gateway role) checks every request with typical guardrails.
//! Held streams (`GAIA_BENCH_STREAMS=N`, only this case is run): N slow streams opened within
//! `GAIA_BENCH_RAMP_SECS` (default 2) and held to their end, first straight to the mock, then through
//! Gaia; the mock sends `GAIA_BENCH_CHUNKS` chunks (default 8) with `GAIA_BENCH_CHUNK_MS` between them
//! (default 1000). Each stream is classified by how it ended (completed with `[DONE]`, an error event
//! inside a 200 stream, an HTTP error status, a refused connection, or cut), and the gateway's RSS is
//! sampled every 100 ms. `GAIA_BENCH_UPSTREAM_H2=1` has the gateway speak HTTP/2 to the mock (h2c).

use futures::StreamExt;
use gaia_core::cache::MemoryCache;
use gaia_core::storage::Storage;
use gaia_core::Config;
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::{OpenAiConfig, OpenAiProvider, ProviderRegistry};
use gaia_server::AppState;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The `gaia` binary's allocator, so that the gateway's memory is what a deployment would see.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Target {
    url: String,
    key: Option<String>,
}

async fn one(client: &reqwest::Client, t: &Target, stream: bool) -> Result<(), String> {
    let body = if stream {
        json!({"model": "mock-gpt", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "Where is the safe house?"}]})
    } else {
        json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "Where is the safe house?"}]})
    };
    let mut req = client.post(&t.url).json(&body);
    if let Some(k) = &t.key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        chunk.map_err(|e| e.to_string())?;
    }
    Ok(())
}

struct Report {
    sent: usize,
    errors: usize,
    /// Latency from the scheduled send time (includes the generator's own timer lateness, ≤ ~1 ms).
    p50: Duration,
    p99: Duration,
    /// Latency from the moment the request was actually handed to the client.
    sent_p50: Duration,
    sent_p99: Duration,
    achieved_rps: f64,
}

/// Open loop: one request every 1/rate seconds for `secs`, latency measured from the scheduled time.
async fn open_loop(client: &reqwest::Client, t: Arc<Target>, stream: bool, rate: u64, secs: u64) -> Report {
    let n = (rate * secs) as usize;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let due = start + period * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (c, t) = (client.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = one(&c, &t, stream).await;
            (due.elapsed(), sent.elapsed(), r.is_ok())
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut lat_sent = Vec::with_capacity(n);
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok((d, s, true)) => {
                lat.push(d);
                lat_sent.push(s);
            }
            _ => errors += 1,
        }
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    lat_sent.sort_unstable();
    let pick = |v: &[Duration], q: f64| {
        v.get(((q * v.len() as f64).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default()
    };
    Report {
        sent: n,
        errors,
        p50: pick(&lat, 0.50),
        p99: pick(&lat, 0.99),
        sent_p50: pick(&lat_sent, 0.50),
        sent_p99: pick(&lat_sent, 0.99),
        achieved_rps: lat.len() as f64 / elapsed.as_secs_f64(),
    }
}

/// Closed loop: `conc` clients back to back for `secs`; completed requests per second.
async fn closed_loop(client: &reqwest::Client, t: Arc<Target>, stream: bool, conc: usize, secs: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (c, t) = (client.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                if one(&c, &t, stream).await.is_ok() {
                    done += 1;
                }
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Resident memory of process `pid`, in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// What a child process of this benchmark is asked to be.
const ROLE_ENV: &str = "GAIA_BENCH_ROLE";

/// Child role `mock`: the mock upstream alone. Prints `URL <openai base url>` and runs until stdin closes.
async fn run_mock() {
    let config = MockConfig {
        chunks: env_u64("GAIA_BENCH_CHUNKS", 8) as usize,
        chunk_delay: Duration::from_millis(env_u64("GAIA_BENCH_CHUNK_MS", 0)),
        ..Default::default()
    };
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
    println!("URL {}", mock.openai_base_url());
    wait_for_stdin_close().await;
}

/// Child role `gateway`: a Gaia server (SQLite file in a temporary folder, as `gaia serve` uses by
/// default, in-process cache, metering on) in front of the upstream given in `GAIA_BENCH_UPSTREAM`.
/// (Not `sqlite::memory:`: its usage rows would grow the process's memory and hide what the soak looks for.) Prints `URL <endpoint> <api key>`, runs until stdin
/// closes, then flushes the usage writer.
async fn run_gateway() {
    let upstream = std::env::var("GAIA_BENCH_UPSTREAM").expect("GAIA_BENCH_UPSTREAM");
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::connect(&format!("sqlite://{}/bench.db", dir.path().display())).await.unwrap();
    storage.migrate().await.unwrap();
    let registry = ProviderRegistry::new();
    let mut oc = OpenAiConfig::new(upstream, None);
    oc.models = vec!["mock-gpt".into()];
    // `GAIA_BENCH_UPSTREAM_H2=1`: HTTP/2 to the upstream (h2c), streams sharing connections (lanes).
    oc.http2_prior_knowledge = std::env::var("GAIA_BENCH_UPSTREAM_H2").as_deref() == Ok("1");
    registry.register(Arc::new(OpenAiProvider::new(oc)));
    let mut config = Config { jwt_secret: Some("bench-secret-bench-secret-bench".into()), ..Config::default() };
    let redis = std::env::var("GAIA_BENCH_REDIS_URL").ok().filter(|u| !u.is_empty());
    let prefix = format!("gaia-bench-{}:", std::process::id());
    let cache: gaia_core::cache::SharedCache = match &redis {
        Some(url) => {
            // Limits far above the load: every request is checked and counted, none refused.
            config.limits = gaia_core::config::LimitsConfig {
                key_requests_per_minute: 100_000_000,
                key_tokens_per_minute: 1_000_000_000_000,
                user_requests_per_minute: 100_000_000,
                user_tokens_per_minute: 1_000_000_000_000,
                ..Default::default()
            };
            Arc::new(gaia_core::cache::RedisCache::connect_with_prefix(url, &prefix).await.unwrap())
        }
        None => Arc::new(MemoryCache::new(100_000)),
    };
    // `GAIA_BENCH_GUARDRAILS=1`: every request checked by typical guardrails (personal data redacted
    // and injection markers refused on input, a word list on the output, streamed in windows).
    if std::env::var("GAIA_BENCH_GUARDRAILS").as_deref() == Ok("1") {
        config.guardrails = toml::from_str(
            r#"
            apply = ["pii", "injection", "spoilers"]
            [[rules]]
            name = "pii"
            check = "pii"
            stage = "input"
            action = "redact"
            [[rules]]
            name = "injection"
            check = "injection"
            stage = "input"
            action = "refuse"
            [[rules]]
            name = "spoilers"
            check = "words"
            words = ["secret ending", "the butler did it", "final boss"]
            stage = "output"
            action = "refuse"
            "#,
        )
        .unwrap();
        eprintln!("gateway: guardrails on (pii, injection, a word list on the output)");
    }
    let state = AppState::new(config, storage.clone(), cache, registry);
    let user = storage.create_user("bench@example.com", None, None).await.unwrap();
    let (_, key) = state.auth().create_api_key(&user.id, None).await.unwrap();
    if let Some(url) = &redis {
        state.connect_redis(url, &prefix).await.unwrap();
        let price = gaia_core::types::ModelPrice::new(0.15, 0.6);
        storage.add_price("openai", "mock-gpt", price, chrono::Utc::now(), None).await.unwrap();
        state.quotas().reload_prices().await.unwrap();
        let budget = gaia_core::storage::NewBudget {
            scope: gaia_core::storage::LimitScope::User,
            subject_id: user.id.clone(),
            period: gaia_core::storage::BudgetPeriod::Monthly,
            limit_usd: 1e9,
            hard: true,
        };
        if std::env::var("GAIA_BENCH_BUDGET").as_deref() != Ok("0") {
            storage.create_budget(&budget, None).await.unwrap();
        }
        eprintln!("gateway: scaled-out mode (Redis cache, shared rate limits, a budget and a price in force)");
    }
    let listener = gaia_core::net::listen("127.0.0.1:0").await.unwrap();
    println!("URL http://{}/v1/chat/completions {key}", listener.local_addr().unwrap());
    let st = state.clone();
    tokio::spawn(async move { gaia_server::serve(listener, st, std::future::pending()).await });
    wait_for_stdin_close().await;
    state.usage().flush().await;
}

async fn wait_for_stdin_close() {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    let mut stdin = tokio::io::stdin();
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// A child process of this benchmark in a given role; killed when dropped.
struct Child {
    proc: std::process::Child,
    /// The words after `URL` on the child's first line.
    words: Vec<String>,
}

impl Child {
    fn spawn(role: &str, env: &[(&str, &str)]) -> Child {
        use std::io::BufRead;
        let exe = std::env::current_exe().unwrap();
        let mut cmd = std::process::Command::new(exe);
        cmd.env(ROLE_ENV, role).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = cmd.spawn().expect("spawn benchmark child");
        let mut line = String::new();
        std::io::BufReader::new(proc.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let words: Vec<String> = line.split_whitespace().skip(1).map(String::from).collect();
        assert!(!words.is_empty(), "child {role} printed {line:?}");
        Child { proc, words }
    }

    fn pid(&self) -> u32 {
        self.proc.id()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Closing stdin asks the child to finish; wait a little, then make sure.
        drop(self.proc.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.proc.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing to run here.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    match std::env::var(ROLE_ENV).as_deref() {
        // The servers get the machine's default runtime (a worker per core), as `gaia serve` does.
        Ok("mock") => tokio::runtime::Runtime::new().unwrap().block_on(run_mock()),
        Ok("gateway") => tokio::runtime::Runtime::new().unwrap().block_on(run_gateway()),
        // The load generator runs on one thread so that it takes as little from the servers as it can.
        _ => tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(drive()),
    }
}

/// How one held stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Ending {
    /// `data: [DONE]` after the content, no error event.
    Completed,
    /// An error event inside a 200 stream (the gateway's in-band error after the first byte).
    ErrorEvent,
    /// An HTTP error status.
    Status(u16),
    /// The connection was refused or failed before an answer.
    Refused,
    /// The body ended (or broke) before `[DONE]`.
    Cut,
}

/// One held stream: its ending, time to the first body byte, and whole duration.
async fn held_stream(client: &reqwest::Client, t: &Target) -> (Ending, Duration, Duration) {
    let body = json!({"model": "mock-gpt", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "Where is the safe house?"}]});
    let start = Instant::now();
    let mut req = client.post(&t.url).json(&body);
    if let Some(k) = &t.key {
        req = req.bearer_auth(k);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(_) => return (Ending::Refused, Duration::ZERO, start.elapsed()),
    };
    if !resp.status().is_success() {
        return (Ending::Status(resp.status().as_u16()), Duration::ZERO, start.elapsed());
    }
    let mut first = None;
    // Only the end of the body and whether an error event passed are kept.
    let mut tail: Vec<u8> = Vec::new();
    let mut error_event = false;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { return (Ending::Cut, first.unwrap_or_default(), start.elapsed()) };
        first.get_or_insert_with(|| start.elapsed());
        tail.extend_from_slice(&chunk);
        let text = String::from_utf8_lossy(&tail);
        error_event |= text.contains("\"error\"") || text.contains("event: error");
        let keep = tail.len().saturating_sub(64);
        tail.drain(..keep);
    }
    let done = String::from_utf8_lossy(&tail).trim_end().ends_with("data: [DONE]");
    let ending = match (error_event, done) {
        (true, _) => Ending::ErrorEvent,
        (false, true) => Ending::Completed,
        (false, false) => Ending::Cut,
    };
    (ending, first.unwrap_or_default(), start.elapsed())
}

/// Opens `n` streams within `ramp` and holds each to its end, sampling the RSS of `pid` meanwhile.
async fn hold_streams(t: Arc<Target>, n: usize, ramp: Duration, pid: u32) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A client of its own, so that every stream has its own connection as a game client's would.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).tcp_nodelay(true).build().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let most_open = Arc::new(AtomicUsize::new(0));
    let rss_start = rss_kib(pid);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let due = start + ramp.mul_f64(i as f64 / n as f64);
        tokio::time::sleep_until(due.into()).await;
        let (c, t, open, most) = (client.clone(), t.clone(), open.clone(), most_open.clone());
        tasks.push(tokio::spawn(async move {
            let now = open.fetch_add(1, Ordering::Relaxed) + 1;
            most.fetch_max(now, Ordering::Relaxed);
            let r = held_stream(&c, &t).await;
            open.fetch_sub(1, Ordering::Relaxed);
            r
        }));
    }
    let mut endings = std::collections::BTreeMap::<Ending, usize>::new();
    let (mut firsts, mut totals) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for task in tasks {
        let (e, first, total) = task.await.unwrap_or((Ending::Cut, Duration::ZERO, Duration::ZERO));
        *endings.entry(e).or_default() += 1;
        if e == Ending::Completed {
            firsts.push(first);
            totals.push(total);
        }
    }
    let elapsed = start.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await.unwrap_or(0);
    firsts.sort_unstable();
    totals.sort_unstable();
    let pick = |v: &[Duration], q: f64| {
        v.get(((q * v.len() as f64).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default()
    };
    let endings: Vec<String> = endings.iter().map(|(e, c)| format!("{e:?} {c}")).collect();
    println!(
        "| {n} | {} | {} | {} / {} | {} / {} | {:.1} s | {:.1} → {:.1} MiB |",
        endings.join(", "),
        most_open.load(Ordering::Relaxed),
        ms(pick(&firsts, 0.5)),
        ms(pick(&firsts, 0.99)),
        ms(pick(&totals, 0.5)),
        ms(pick(&totals, 0.99)),
        elapsed.as_secs_f64(),
        rss_start as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// The load generator: starts the mock and the gateway as child processes and measures both.
async fn drive() {
    let rate = env_u64("GAIA_BENCH_RATE", 1000);
    let secs = env_u64("GAIA_BENCH_SECS", 10);
    let soak = env_u64("GAIA_SOAK_SECS", 0);

    let streams = env_u64("GAIA_BENCH_STREAMS", 0) as usize;
    // Held streams are slow: a second between chunks unless told otherwise.
    let chunk_ms = env_u64("GAIA_BENCH_CHUNK_MS", if streams > 0 { 1000 } else { 0 }).to_string();
    let mock = Child::spawn("mock", &[("GAIA_BENCH_CHUNK_MS", &chunk_ms)]);
    let gaia = Child::spawn("gateway", &[("GAIA_BENCH_UPSTREAM", &mock.words[0])]);
    if streams > 0 {
        let ramp = Duration::from_secs_f64(env_u64("GAIA_BENCH_RAMP_SECS", 2) as f64);
        println!(
            "gateway_load: {streams} held streams opened within {} s, {} chunks {} ms apart",
            ramp.as_secs(),
            env_u64("GAIA_BENCH_CHUNKS", 8),
            chunk_ms
        );
        println!("| target | streams | endings | most open at once | first byte p50 / p99 | whole stream p50 / p99 | run | RSS (that process) start → peak |");
        println!("|---|---|---|---|---|---|---|---|");
        let direct = Arc::new(Target { url: format!("{}/chat/completions", mock.words[0]), key: None });
        let gateway = Arc::new(Target { url: gaia.words[0].clone(), key: Some(gaia.words[1].clone()) });
        print!("| mock direct (baseline) ");
        hold_streams(direct, streams, ramp, mock.pid()).await;
        print!("| through Gaia ");
        hold_streams(gateway, streams, ramp, gaia.pid()).await;
        return;
    }

    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build().unwrap();
    let direct = Arc::new(Target { url: format!("{}/chat/completions", mock.words[0]), key: None });
    let gateway = Arc::new(Target { url: gaia.words[0].clone(), key: Some(gaia.words[1].clone()) });
    // Warm up connections and caches.
    for t in [&direct, &gateway] {
        closed_loop(&client, t.clone(), false, 16, 1).await;
        closed_loop(&client, t.clone(), true, 16, 1).await;
    }
    if let Ok(only) = std::env::var("GAIA_BENCH_PROFILE") {
        // Load for a profiler attached to the gateway (`perf record -p <pid>`): closed loop only.
        let stream = only == "stream";
        println!("gateway pid {}; closed loop through Gaia, stream={stream}, {secs} s", gaia.pid());
        let g = closed_loop(&client, gateway.clone(), stream, 64, secs).await;
        println!("{g:.0} req/s");
        return;
    }

    println!("gateway_load: open loop at {rate} req/s for {secs} s per case; latency from scheduled send time");
    println!("mock, gateway and load generator are separate processes");
    println!("| case | target | p50 | p99 | p50 from send | p99 from send | achieved req/s | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    for stream in [false, true] {
        let name = if stream { "streaming (8 chunks, include_usage)" } else { "non-streaming" };
        let d = open_loop(&client, direct.clone(), stream, rate, secs).await;
        let g = open_loop(&client, gateway.clone(), stream, rate, secs).await;
        for (label, r) in [("mock direct (baseline)", &d), ("through Gaia", &g)] {
            println!(
                "| {name} | {label} | {} | {} | {} | {} | {:.0} | {}/{} |",
                ms(r.p50),
                ms(r.p99),
                ms(r.sent_p50),
                ms(r.sent_p99),
                r.achieved_rps,
                r.errors,
                r.sent
            );
        }
        let added = |a: Duration, b: Duration| {
            let (a, b) = (a.as_secs_f64() * 1e3, b.as_secs_f64() * 1e3);
            format!("{:+.3} ms", a - b)
        };
        println!(
            "| {name} | **added by Gaia** | {} | {} | {} | {} | | |",
            added(g.p50, d.p50),
            added(g.p99, d.p99),
            added(g.sent_p50, d.sent_p50),
            added(g.sent_p99, d.sent_p99)
        );
    }
    println!();
    println!("| closed loop, 64 clients, {secs} s | mock direct | through Gaia | ratio |");
    println!("|---|---|---|---|");
    for stream in [false, true] {
        let d = closed_loop(&client, direct.clone(), stream, 64, secs).await;
        let g = closed_loop(&client, gateway.clone(), stream, 64, secs).await;
        let name = if stream { "streaming req/s" } else { "non-streaming req/s" };
        println!("| {name} | {d:.0} | {g:.0} | {:.2} |", g / d);
    }
    if soak > 0 {
        println!();
        println!(
            "soak: {soak} s at {rate} req/s through Gaia (streaming and not, alternating each minute); RSS of the gateway process"
        );
        let mut samples = vec![(0u64, rss_kib(gaia.pid()))];
        let step = 60.min(soak);
        let mut t = 0;
        while t < soak {
            let r = open_loop(&client, gateway.clone(), (t / step) % 2 == 1, rate, step).await;
            t += step;
            samples.push((t, rss_kib(gaia.pid())));
            println!(
                "  t={t:>4} s  RSS {:.1} MiB  p50 {}  p99 {}  errors {}",
                samples.last().unwrap().1 as f64 / 1024.0,
                ms(r.p50),
                ms(r.p99),
                r.errors
            );
        }
    }
}
