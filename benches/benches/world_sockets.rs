//! Load generator for the game client's WebSocket (`/ws/experience`): many players on one instance.
//!
//! Two processes on loopback: the Gaia server (listening and allocating as the `gaia` binary does:
//! `gaia_core::net::listen`, mimalloc; SQLite file in WAL mode, the sample world `safe-house`, one
//! user and API key per player), a child of this one started from this same
//! executable with `GAIA_BENCH_ROLE=server`, and this process, which plays the players on tokio
//! tasks. Measured, in one run:
//!
//! 1. **Connection storm**: all players (returning ones: they joined the world before) connect at once
//!    (`connected` received): connections per second.
//! 2. **Steady play**: every player sends a position (`update_location`) or a fast action (`look`,
//!    `inventory`, `examine`, alternately) every `GAIA_BENCH_PERIOD_MS` (default 5,000) for
//!    `GAIA_BENCH_SECS` (default 30), spread evenly: the time from send to the answer
//!    (`area_of_interest` or `action_response`), p50/p99/max, and answers missing.
//! 3. **Fan-out**: every player stands in the same area (the safe house's main room); one of them drops
//!    and picks up an item, `GAIA_BENCH_FANOUT` times (default 20): the time from the actor's send to
//!    each other player's `world_update`, p50/p99 (each change reaches every player).
//! 4. **Reconnect storm**: every player but the actor drops its connection (no close frame, as a
//!    phone losing the network), the actor makes two changes, and all of them reconnect at once with
//!    `resume_version` (the last `snapshot_version` each had): the time until each has its
//!    `connected` and what it missed (the deltas, `world_update`, or a fresh `area_of_interest`),
//!    and how many got which.
//! 5. The server's RSS (`/proc/<pid>/status`) after connecting, while idle (`GAIA_BENCH_IDLE_SECS`,
//!    default 0: sampled every 10 s), during play (every minute: a soak with `GAIA_BENCH_SECS=600`),
//!    and per player.
//!
//! With `GAIA_BENCH_REDIS_URL` (a Redis on loopback) and `GAIA_BENCH_INSTANCES=2`, two server
//! processes share the SQLite file and Redis (cache and events), every other player connects to
//! the second one, and the fan-out is reported for the players on each instance.
//!
//! Baseline in the same run: `ping` → `pong` round trips on the same sockets (the cost of the
//! socket and the scheduler alone).
//!
//! `cargo bench -p gaia-benches --bench world_sockets` (players: `GAIA_BENCH_PLAYERS`, default
//! 1,000; the process needs a file limit above twice that: `ulimit -n`).

use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

/// The allocator the `gaia` binary ships with, so that the server's memory is measured as it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const SAFE_HOUSE: (f64, f64) = (48.8567, 2.3523);

fn main() {
    if std::env::var("GAIA_BENCH_ROLE").as_deref() == Ok("server") {
        return server();
    }
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(players());
}

/// The server process: prints `port <n>`, `keys <file>` and `dir <folder>` once ready, then serves
/// until stdin closes. With `GAIA_BENCH_DIR`, a second instance over the first one's database and
/// vault (the players are made by the first).
fn server() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let players = env_u64("GAIA_BENCH_PLAYERS", 1_000) as usize;
        let tmp = tempfile::tempdir().unwrap();
        let shared = std::env::var("GAIA_BENCH_DIR").ok().map(std::path::PathBuf::from);
        let first = shared.is_none();
        let dir = shared.unwrap_or_else(|| tmp.path().to_path_buf());
        let vault = dir.join("vault");
        if first {
            let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../crates/gaia-world/sample/experiences/safe-house");
            gaia_core::testing::copy_dir(&sample, &vault.join("experiences/safe-house"));
        }
        let mut config = gaia_core::Config::default();
        config.server.max_sockets_per_user = 4;
        config.redis_url = std::env::var("GAIA_BENCH_REDIS_URL").ok();
        // The fan-out's server side is read from the server's histogram.
        config.server.metrics_public = true;
        let gaia = gaia_server::Gaia::builder()
            .config(config)
            .database(format!("sqlite://{}?mode=rwc", dir.join("gaia.db").display()))
            .jwt_secret("world-sockets-bench-secret-0123456789")
            .kb_config(gaia_kb::KbConfig { root: vault, sync_interval_secs: 0, ..Default::default() })
            .ui(false)
            .background_jobs(false)
            .build()
            .await
            .unwrap();
        let st = gaia.state().clone();
        st.reload_worlds().await;
        assert!(st.worlds().experience("safe-house").is_ok());
        let keys_file = dir.join("keys.txt");
        if first {
            let mut keys = String::new();
            for i in 0..players {
                let user = st.storage().create_user(&format!("player{i}@example.com"), None, None).await.unwrap();
                keys.push_str(&st.auth().create_api_key(&user.id, Some("bench")).await.unwrap().1);
                // Players of a running game: they joined the world before (the storm is of returning
                // players; a storm of first-time joins is bounded by the database's writes).
                st.worlds().view("safe-house", &user.id).await.unwrap();
                keys.push('\n');
            }
            std::fs::write(&keys_file, keys).unwrap();
        }
        let listener = gaia_core::net::listen("127.0.0.1:0").await.unwrap();
        println!("port {}", listener.local_addr().unwrap().port());
        println!("keys {}", keys_file.display());
        println!("dir {}", dir.display());
        use std::io::Write as _;
        std::io::stdout().flush().unwrap();
        let stop = async {
            let mut line = String::new();
            let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
        };
        gaia.serve(listener, stop).await.unwrap();
    });
}

/// A server process ([`server`]) and what it printed.
struct Server {
    child: std::process::Child,
    port: u16,
    keys_file: String,
    dir: String,
}

impl Server {
    fn start(players: usize, dir: Option<&str>) -> Server {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = std::process::Command::new(exe);
        cmd.env("GAIA_BENCH_ROLE", "server")
            .env("GAIA_BENCH_PLAYERS", players.to_string())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if let Some(d) = dir {
            cmd.env("GAIA_BENCH_DIR", d);
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (mut port, mut keys_file, mut dir) = (0u16, String::new(), String::new());
        while port == 0 || keys_file.is_empty() || dir.is_empty() {
            let mut line = String::new();
            use std::io::BufRead as _;
            if out.read_line(&mut line).unwrap() == 0 {
                panic!("the server ended before it was ready");
            }
            if let Some(p) = line.trim().strip_prefix("port ") {
                port = p.parse().unwrap();
            } else if let Some(k) = line.trim().strip_prefix("keys ") {
                keys_file = k.to_string();
            } else if let Some(d) = line.trim().strip_prefix("dir ") {
                dir = d.to_string();
            }
        }
        Server { child, port, keys_file, dir }
    }

    fn rss(&self) -> f64 {
        rss_mib(self.child.id())
    }

    fn stop(mut self) {
        let _ = self.child.stdin.take().map(|mut s| {
            use std::io::Write as _;
            let _ = s.write_all(b"\n");
        });
        let _ = self.child.wait();
    }
}

/// The servers' RSS, `a + b` MiB.
fn rss_all(servers: &[Server]) -> String {
    servers.iter().map(|s| format!("{:.0}", s.rss())).collect::<Vec<_>>().join(" + ") + " MiB"
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn percentiles(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    format!(
        "n {} p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        v.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    )
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures::stream::SplitSink<Ws, Message>;

/// What the readers of all sockets record.
#[derive(Default)]
struct Seen {
    /// Answers (`pong`, `area_of_interest`, `action_response`) by player: when they arrived.
    answers: Vec<Mutex<Vec<Instant>>>,
    /// `world_update`s by player.
    updates: Vec<Mutex<Vec<Instant>>>,
    /// The last `snapshot_version` each player had.
    versions: Vec<AtomicI64>,
    /// After a reconnect: when the first message after `connected` came and whether it was a delta.
    caught_up: Vec<std::sync::Mutex<Option<(Instant, bool)>>>,
    errors: AtomicUsize,
}

/// The number after `"snapshot_version":` in a frame, if any (without parsing the whole frame).
fn snapshot_version(t: &str) -> Option<i64> {
    let at = t.find("\"snapshot_version\":")? + "\"snapshot_version\":".len();
    let digits: String = t[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Connects player `i` to `url` and starts its reader; the sink and the reader's handle.
async fn connect_player(i: usize, url: String, seen: Arc<Seen>) -> Result<(Sink, tokio::task::JoinHandle<()>), String> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
    let (sink, mut stream) = ws.split();
    // The first message is `connected`.
    match stream.next().await {
        Some(Ok(Message::Text(t))) if t.contains("\"connected\"") => {}
        other => return Err(format!("no connected: {other:?}")),
    }
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            let Message::Text(t) = m else { continue };
            let now = Instant::now();
            let presence = t.contains("\"type\":\"presence\"");
            if !presence {
                let mut first = seen.caught_up[i].lock().unwrap();
                if first.is_none() {
                    *first = Some((now, t.starts_with("{\"type\":\"world_update\"")));
                }
            }
            if let Some(v) = snapshot_version(&t) {
                seen.versions[i].fetch_max(v, Ordering::Relaxed);
            }
            if t.starts_with("{\"type\":\"world_update\"") {
                seen.updates[i].lock().await.push(now);
            } else if t.contains("\"type\":\"error\"") {
                if seen.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("error: {t}");
                }
            } else if !presence {
                seen.answers[i].lock().await.push(now);
            }
        }
    });
    Ok((sink, reader))
}

async fn players() {
    let n = env_u64("GAIA_BENCH_PLAYERS", 1_000) as usize;
    let secs = env_u64("GAIA_BENCH_SECS", 30);
    let idle_secs = env_u64("GAIA_BENCH_IDLE_SECS", 0);
    let period = Duration::from_millis(env_u64("GAIA_BENCH_PERIOD_MS", 5_000));
    let fanouts = env_u64("GAIA_BENCH_FANOUT", 20) as usize;
    let instances = env_u64("GAIA_BENCH_INSTANCES", 1).clamp(1, 2) as usize;
    if instances == 2 && std::env::var("GAIA_BENCH_REDIS_URL").is_err() {
        panic!("two instances share events through Redis: set GAIA_BENCH_REDIS_URL");
    }

    let mut servers = vec![Server::start(n, None)];
    if instances == 2 {
        let dir = servers[0].dir.clone();
        servers.push(Server::start(n, Some(&dir)));
    }
    let keys: Vec<String> =
        std::fs::read_to_string(&servers[0].keys_file).unwrap().lines().map(str::to_string).collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let url = |i: usize, resume: Option<i64>| {
        let mut u =
            format!("ws://127.0.0.1:{}/ws/experience?token={}&experience=safe-house", ports[i % ports.len()], keys[i]);
        if let Some(v) = resume {
            u.push_str(&format!("&resume_version={v}"));
        }
        u
    };
    println!("{instances} server(s), RSS {} before any socket; {n} players", rss_all(&servers));

    // 1. Connection storm.
    let seen = Arc::new(Seen {
        answers: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        updates: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        versions: (0..n).map(|_| AtomicI64::new(0)).collect(),
        caught_up: (0..n).map(|_| std::sync::Mutex::new(None)).collect(),
        errors: AtomicUsize::new(0),
    });
    let start = Instant::now();
    let connects = (0..n).map(|i| tokio::spawn(connect_player(i, url(i, None), seen.clone())));
    let mut sinks = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    for r in futures::future::join_all(connects).await {
        match r.unwrap() {
            Ok((s, r)) => {
                sinks.push(Arc::new(Mutex::new(s)));
                readers.push(r);
            }
            Err(e) => panic!("a player could not connect: {e}"),
        }
    }
    let took = start.elapsed();
    println!(
        "storm: {n} connected in {:.2} s ({:.0} connections/s); server RSS {}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        rss_all(&servers)
    );
    if idle_secs > 0 {
        let until = Instant::now() + Duration::from_secs(idle_secs);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(10).min(until - Instant::now())).await;
            println!("idle: {n} sockets, server RSS {}", rss_all(&servers));
        }
    }

    // Everyone arrives at the safe house (the answers are the players' first areas of interest).
    let arrive = json!({"type": "update_location", "lat": SAFE_HOUSE.0, "lng": SAFE_HOUSE.1}).to_string();
    send_all(&sinks, |_| arrive.clone()).await;
    wait_answers(&seen, 1).await;

    // 2. Baseline: ping round trips; then steady play.
    let rtts =
        play(&sinks, &seen, 1, |_, _| json!({"type": "ping"}).to_string(), Duration::from_secs(2), &servers).await;
    println!("baseline ping → pong: {}", percentiles(rtts));
    if secs > 0 {
        let actions = ["look", "inventory", "examine bandage"];
        let message = |i: usize, round: usize| {
            if (i + round).is_multiple_of(2) {
                json!({"type": "update_location", "lat": SAFE_HOUSE.0, "lng": SAFE_HOUSE.1 + (i % 7) as f64 * 1e-5})
                    .to_string()
            } else {
                json!({"type": "action", "action": actions[(i + round) % 3]}).to_string()
            }
        };
        let rounds = (secs * 1_000 / period.as_millis().max(1) as u64).max(1) as usize;
        let rss_before = rss_all(&servers);
        let latencies = play(&sinks, &seen, rounds, message, period, &servers).await;
        let missing = n * rounds - latencies.len();
        println!(
            "steady play, one message per player every {} ms for {} s: {}; {} unanswered; {} errors; server RSS {} → {} ({:.1} KiB per player)",
            period.as_millis(),
            secs,
            percentiles(latencies),
            missing,
            seen.errors.load(Ordering::Relaxed),
            rss_before,
            rss_all(&servers),
            servers.iter().map(Server::rss).sum::<f64>() * 1024.0 / n as f64
        );
    }

    // 3. Fan-out: player 0 drops and takes its bandage; every other player gets each change.
    let mut fan = vec![Vec::new(); instances];
    for round in 0..fanouts {
        let before: Vec<usize> =
            futures::future::join_all(seen.updates.iter().map(|u| async { u.lock().await.len() })).await;
        let action = if round % 2 == 0 { "drop bandage" } else { "take bandage" };
        let t0 = Instant::now();
        act(&sinks[0], action).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        for (i, u) in seen.updates.iter().enumerate().skip(1) {
            loop {
                let got = u.lock().await.get(before[i]).copied();
                if let Some(at) = got {
                    fan[i % instances].push(at - t0);
                    break;
                }
                if Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    if fanouts > 0 {
        for (k, port) in ports.iter().enumerate() {
            println!("fan-out, server side on instance {} (hub → socket): {}", k + 1, server_delay(*port).await);
        }
        for (k, f) in fan.iter().enumerate() {
            let receivers = (1..n).filter(|i| i % instances == k).count();
            println!(
                "fan-out from instance 1 to {receivers} players on instance {}, {fanouts} changes: {}; {} not delivered",
                k + 1,
                percentiles(f.clone()),
                fanouts * receivers - f.len()
            );
        }
    }

    // 4. Reconnect storm: all but the actor drop; the actor makes two changes; all come back at once.
    for r in readers.drain(1..) {
        r.abort();
    }
    sinks.truncate(1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for action in ["drop bandage", "take bandage"] {
        act(&sinks[0], action).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for c in &seen.caught_up {
        *c.lock().unwrap() = None;
    }
    let start = Instant::now();
    let reconnects = (1..n).map(|i| {
        let resume = seen.versions[i].load(Ordering::Relaxed);
        tokio::spawn(connect_player(i, url(i, Some(resume)), seen.clone()))
    });
    let mut failed = 0;
    for r in futures::future::join_all(reconnects).await {
        match r.unwrap() {
            Ok((s, r)) => {
                sinks.push(Arc::new(Mutex::new(s)));
                readers.push(r);
            }
            Err(_) => failed += 1,
        }
    }
    let connected_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut served, mut deltas, mut fresh) = (Vec::new(), 0, 0);
    for c in seen.caught_up.iter().skip(1) {
        loop {
            let got = *c.lock().unwrap();
            if let Some((at, delta)) = got {
                served.push(at - start);
                if delta {
                    deltas += 1;
                } else {
                    fresh += 1;
                }
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    println!(
        "reconnect storm: {} players back at once, all connected in {:.2} s ({failed} failed); caught up: {} \
         (from the start of the storm); {deltas} with the deltas they missed, {fresh} with a fresh view, {} nothing; server RSS {}",
        n - 1,
        connected_in.as_secs_f64(),
        percentiles(served),
        n - 1 - deltas - fresh,
        rss_all(&servers)
    );

    for s in servers {
        s.stop();
    }
}

/// `gaia_world_update_delay_seconds` of the server on `port`: how many, and the p50 and p99 as the
/// upper bounds of the histogram's buckets that hold them.
async fn server_delay(port: u16) -> String {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("gaia_world_update_delay_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            Some((le.parse().unwrap_or(f64::INFINITY), n.trim().parse().ok()?))
        })
        .collect();
    let Some(&(_, count)) = buckets.last() else { return "no histogram".into() };
    let at = |q: f64| buckets.iter().find(|(_, n)| *n >= q * count).map_or(f64::INFINITY, |(le, _)| *le);
    format!("n {count} p50 ≤ {} ms p99 ≤ {} ms", at(0.5) * 1e3, at(0.99) * 1e3)
}

/// Sends the action `action` on `sink`.
async fn act(sink: &Mutex<Sink>, action: &str) {
    let m = json!({"type": "action", "action": action}).to_string();
    sink.lock().await.send(Message::Text(m.into())).await.unwrap();
}

/// Sends `message(i)` to every player.
async fn send_all(sinks: &[Arc<Mutex<Sink>>], message: impl Fn(usize) -> String) {
    for (i, s) in sinks.iter().enumerate() {
        s.lock().await.send(Message::Text(message(i).into())).await.unwrap();
    }
}

/// Waits until every player has `count` answers (or 30 s).
async fn wait_answers(seen: &Seen, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for a in &seen.answers {
        while a.lock().await.len() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// `rounds` rounds: in each, every player sends `message(i, round)`, spread evenly over `period`; the
/// latency of each answer.
async fn play(
    sinks: &[Arc<Mutex<Sink>>],
    seen: &Arc<Seen>,
    rounds: usize,
    message: impl Fn(usize, usize) -> String,
    period: Duration,
    servers: &[Server],
) -> Vec<Duration> {
    let n = sinks.len();
    let base: Vec<usize> = futures::future::join_all(seen.answers.iter().map(|a| async { a.lock().await.len() })).await;
    let start = Instant::now();
    let step = period / n.max(1) as u32;
    let mut sent_at = vec![Vec::with_capacity(rounds); n];
    let mut sampled = Instant::now();
    for round in 0..rounds {
        // A soak: the servers' memory every minute.
        if sampled.elapsed() >= Duration::from_secs(60) {
            sampled = Instant::now();
            println!("  after {:.0} s of play: server RSS {}", start.elapsed().as_secs_f64(), rss_all(servers));
        }
        for (i, s) in sinks.iter().enumerate() {
            let due = start + period * round as u32 + step * i as u32;
            tokio::time::sleep_until(due.into()).await;
            sent_at[i].push(Instant::now());
            s.lock().await.send(Message::Text(message(i, round).into())).await.unwrap();
        }
    }
    // Answers arrive in order per socket: the k-th answer after `base` answers the k-th message.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::with_capacity(n * rounds);
    for i in 0..n {
        loop {
            let have = seen.answers[i].lock().await.len() - base[i];
            if have >= rounds || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let got = seen.answers[i].lock().await;
        for (k, t) in sent_at[i].iter().enumerate() {
            if let Some(at) = got.get(base[i] + k) {
                out.push(*at - *t);
            }
        }
    }
    out
}
