//! Load generator for the game client's WebSocket (`/ws/experience`): many players on one instance.
//!
//! Two processes on loopback: the Gaia server (SQLite file in WAL mode, the sample world
//! `safe-house`, one user and API key per player), a child of this one started from this same
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
//! 4. The server's RSS (`/proc/<pid>/status`) after connecting, after play, and per player.
//!
//! Baseline in the same run: `ping` → `pong` round trips on the same sockets (the cost of the
//! socket and the scheduler alone).
//!
//! `cargo bench -p gaia-benches --bench world_sockets` (players: `GAIA_BENCH_PLAYERS`, default
//! 1,000; the process needs a file limit above twice that: `ulimit -n`).

use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

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

/// The server process: prints `port <n>` and `keys <file>` once ready, then serves until stdin closes.
fn server() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let players = env_u64("GAIA_BENCH_PLAYERS", 1_000) as usize;
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        let sample =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/gaia-world/sample/experiences/safe-house");
        copy(&sample, &vault.join("experiences/safe-house"));
        let mut config = gaia_core::Config::default();
        config.server.max_sockets_per_user = 4;
        let gaia = gaia_server::Gaia::builder()
            .config(config)
            .database(format!("sqlite://{}?mode=rwc", dir.path().join("gaia.db").display()))
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
        let mut keys = String::new();
        for i in 0..players {
            let user = st.storage().create_user(&format!("player{i}@example.com"), None, None).await.unwrap();
            keys.push_str(&st.auth().create_api_key(&user.id, Some("bench")).await.unwrap().1);
            // Players of a running game: they joined the world before (the storm is of returning
            // players; a storm of first-time joins is bounded by the database's writes).
            st.worlds().view("safe-house", &user.id).await.unwrap();
            keys.push('\n');
        }
        let keys_file = dir.path().join("keys.txt");
        std::fs::write(&keys_file, keys).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("port {}", listener.local_addr().unwrap().port());
        println!("keys {}", keys_file.display());
        use std::io::Write as _;
        std::io::stdout().flush().unwrap();
        let stop = async {
            let mut line = String::new();
            let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
        };
        gaia.serve(listener, stop).await.unwrap();
    });
}

fn copy(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
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
    errors: AtomicUsize,
}

async fn players() {
    let n = env_u64("GAIA_BENCH_PLAYERS", 1_000) as usize;
    let secs = env_u64("GAIA_BENCH_SECS", 30);
    let period = Duration::from_millis(env_u64("GAIA_BENCH_PERIOD_MS", 5_000));
    let fanouts = env_u64("GAIA_BENCH_FANOUT", 20) as usize;

    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .env("GAIA_BENCH_ROLE", "server")
        .env("GAIA_BENCH_PLAYERS", n.to_string())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut port, mut keys_file) = (0u16, String::new());
    while port == 0 || keys_file.is_empty() {
        let mut line = String::new();
        use std::io::BufRead as _;
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("the server ended before it was ready");
        }
        if let Some(p) = line.trim().strip_prefix("port ") {
            port = p.parse().unwrap();
        } else if let Some(k) = line.trim().strip_prefix("keys ") {
            keys_file = k.to_string();
        }
    }
    let keys: Vec<String> = std::fs::read_to_string(&keys_file).unwrap().lines().map(str::to_string).collect();
    println!("server pid {pid}, RSS {:.0} MiB before any socket; {n} players", rss_mib(pid));

    // 1. Connection storm.
    let seen = Arc::new(Seen {
        answers: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        updates: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        errors: AtomicUsize::new(0),
    });
    let start = Instant::now();
    let connects = keys.iter().enumerate().map(|(i, key)| {
        let url = format!("ws://127.0.0.1:{port}/ws/experience?token={key}&experience=safe-house");
        let seen = seen.clone();
        tokio::spawn(async move {
            let (ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
            let (sink, mut stream) = ws.split();
            // The first message is `connected`.
            match stream.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"connected\"") => {}
                other => return Err(format!("no connected: {other:?}")),
            }
            tokio::spawn(async move {
                while let Some(Ok(m)) = stream.next().await {
                    let Message::Text(t) = m else { continue };
                    let now = Instant::now();
                    if t.starts_with("{\"type\":\"world_update\"") {
                        seen.updates[i].lock().await.push(now);
                    } else if t.contains("\"type\":\"error\"") {
                        if seen.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("error: {t}");
                        }
                    } else if !t.contains("\"type\":\"presence\"") {
                        seen.answers[i].lock().await.push(now);
                    }
                }
            });
            Ok::<Sink, String>(sink)
        })
    });
    let mut sinks = Vec::with_capacity(n);
    for r in futures::future::join_all(connects).await {
        match r.unwrap() {
            Ok(s) => sinks.push(Arc::new(Mutex::new(s))),
            Err(e) => panic!("a player could not connect: {e}"),
        }
    }
    let took = start.elapsed();
    println!(
        "storm: {n} connected in {:.2} s ({:.0} connections/s); server RSS {:.0} MiB",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        rss_mib(pid)
    );

    // Everyone arrives at the safe house (the answers are the players' first areas of interest).
    let arrive = json!({"type": "update_location", "lat": SAFE_HOUSE.0, "lng": SAFE_HOUSE.1}).to_string();
    send_all(&sinks, |_| arrive.clone()).await;
    wait_answers(&seen, 1).await;

    // 2. Baseline: ping round trips; then steady play.
    let rtts = play(&sinks, &seen, 1, |_, _| json!({"type": "ping"}).to_string(), Duration::from_secs(2)).await;
    println!("baseline ping → pong: {}", percentiles(rtts));
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
    let rss_before = rss_mib(pid);
    let latencies = play(&sinks, &seen, rounds, message, period).await;
    let missing = n * rounds - latencies.len();
    println!(
        "steady play, one message per player every {} ms for {} s: {}; {} unanswered; {} errors; server RSS {:.0} → {:.0} MiB ({:.1} KiB per player)",
        period.as_millis(),
        secs,
        percentiles(latencies),
        missing,
        seen.errors.load(Ordering::Relaxed),
        rss_before,
        rss_mib(pid),
        rss_mib(pid) * 1024.0 / n as f64
    );

    // 3. Fan-out: player 0 drops and takes its bandage; every other player gets each change.
    let mut fan = Vec::new();
    for round in 0..fanouts {
        let before: Vec<usize> =
            futures::future::join_all(seen.updates.iter().map(|u| async { u.lock().await.len() })).await;
        let action = if round % 2 == 0 { "drop bandage" } else { "take bandage" };
        let t0 = Instant::now();
        sinks[0]
            .lock()
            .await
            .send(Message::Text(json!({"type": "action", "action": action}).to_string().into()))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        for (i, u) in seen.updates.iter().enumerate().skip(1) {
            loop {
                let got = u.lock().await.get(before[i]).copied();
                if let Some(at) = got {
                    fan.push(at - t0);
                    break;
                }
                if Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let expected = fanouts * (n - 1);
    println!(
        "fan-out to {} players in one area, {fanouts} changes: {}; {} not delivered",
        n - 1,
        percentiles(fan.clone()),
        expected - fan.len()
    );

    let _ = child.stdin.take().map(|mut s| {
        use std::io::Write as _;
        let _ = s.write_all(b"\n");
    });
    let _ = child.wait();
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
) -> Vec<Duration> {
    let n = sinks.len();
    let base: Vec<usize> = futures::future::join_all(seen.answers.iter().map(|a| async { a.lock().await.len() })).await;
    let start = Instant::now();
    let step = period / n.max(1) as u32;
    let mut sent_at = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
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
