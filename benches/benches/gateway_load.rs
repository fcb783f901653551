//! Gateway load harness: the latency Gaia adds on top of the upstream, and its throughput.
//!
//! Everything runs on loopback in this process: the mock upstream, the Gaia server (SQLite in memory,
//! in-process cache, usage metering on) and an open-loop load generator that sends requests at a fixed
//! rate and measures each latency from its *scheduled* send time (no coordinated omission). Each case
//! is run against the mock directly (baseline) and through Gaia's `/v1/chat/completions`, in the same
//! run; the report gives p50/p99 of both and the difference.
//!
//! `cargo bench -p gaia-benches --bench gateway_load`
//! Settings: `GAIA_BENCH_RATE` (requests/s, default 1000), `GAIA_BENCH_SECS` (default 10),
//! `GAIA_SOAK_SECS` (default 0: no soak; 600 for the 10-minute memory soak).

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
    p50: Duration,
    p99: Duration,
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
            let r = one(&c, &t, stream).await;
            (due.elapsed(), r.is_ok())
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok((d, true)) => lat.push(d),
            _ => errors += 1,
        }
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let pick =
        |q: f64| lat.get(((q * lat.len() as f64).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default();
    Report { sent: n, errors, p50: pick(0.50), p99: pick(0.99), achieved_rps: lat.len() as f64 / elapsed.as_secs_f64() }
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

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing to run here.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rate = env_u64("GAIA_BENCH_RATE", 1000);
    let secs = env_u64("GAIA_BENCH_SECS", 10);
    let soak = env_u64("GAIA_SOAK_SECS", 0);

    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig { chunks: 8, ..Default::default() })
        .await
        .unwrap();
    let storage = Storage::connect("sqlite::memory:").await.unwrap();
    storage.migrate().await.unwrap();
    let registry = ProviderRegistry::new();
    let mut oc = OpenAiConfig::new(mock.openai_base_url(), None);
    oc.models = vec!["mock-gpt".into()];
    registry.register(Arc::new(OpenAiProvider::new(oc)));
    let config = Config { jwt_secret: Some("bench-secret-bench-secret-bench".into()), ..Config::default() };
    let state = AppState::new(config, storage.clone(), Arc::new(MemoryCache::new(100_000)), registry);
    let user = storage.create_user("bench@example.com", None, None).await.unwrap();
    let (_, key) = state.auth().create_api_key(&user.id, None).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gaia_url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
    let st = state.clone();
    tokio::spawn(async move { gaia_server::serve(listener, st, std::future::pending()).await });

    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build().unwrap();
    let direct = Arc::new(Target { url: format!("{}/chat/completions", mock.openai_base_url()), key: None });
    let gateway = Arc::new(Target { url: gaia_url, key: Some(key) });
    // Warm up connections and caches.
    for t in [&direct, &gateway] {
        closed_loop(&client, t.clone(), false, 16, 1).await;
    }

    println!("gateway_load: open loop at {rate} req/s for {secs} s per case; latency from scheduled send time");
    println!("| case | target | p50 | p99 | achieved req/s | errors |");
    println!("|---|---|---|---|---|---|");
    for stream in [false, true] {
        let name = if stream { "streaming (8 chunks, include_usage)" } else { "non-streaming" };
        let d = open_loop(&client, direct.clone(), stream, rate, secs).await;
        let g = open_loop(&client, gateway.clone(), stream, rate, secs).await;
        for (label, r) in [("mock direct (baseline)", &d), ("through Gaia", &g)] {
            println!(
                "| {name} | {label} | {} | {} | {:.0} | {}/{} |",
                ms(r.p50),
                ms(r.p99),
                r.achieved_rps,
                r.errors,
                r.sent
            );
        }
        println!(
            "| {name} | added by Gaia | {} | {} | | |",
            ms(g.p50.saturating_sub(d.p50)),
            ms(g.p99.saturating_sub(d.p99))
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
            "soak: {soak} s at {} req/s through Gaia (streaming and not, alternating); RSS of the whole process",
            rate / 2
        );
        let start_rss = rss_kib();
        let mut samples = vec![(0u64, start_rss)];
        let step = 60.min(soak);
        let mut t = 0;
        while t < soak {
            open_loop(&client, gateway.clone(), (t / step) % 2 == 1, rate / 2, step).await;
            t += step;
            samples.push((t, rss_kib()));
        }
        for (t, kib) in &samples {
            println!("  t={t:>4} s  RSS {:.1} MiB", *kib as f64 / 1024.0);
        }
    }
    state.usage().flush().await;
}
