//! Fast game-world commands in the engine (`gaia-world`, no HTTP), on SQLite, with 1,000 players in
//! one shared world (the sample `safe-house`): `look`, `inventory`, `examine` (reads), and `go` back and
//! forth and `collect` + `drop` of one item (each a versioned change). Baseline in the same run: the
//! player's `view` (three indexed reads). Latency percentiles are printed at the end (p50, p99 over
//! 2,000 commands each, measured after the criterion runs), as the issue asks for them.
//!
//! `cargo bench -p gaia-benches --bench world_commands`

use criterion::{criterion_group, criterion_main, Criterion};
use gaia_core::events::EventBus;
use gaia_core::storage::Storage;
use gaia_world::{Action, Worlds};
use std::path::Path;
use std::time::{Duration, Instant};

const EXP: &str = "safe-house";

struct Setup {
    worlds: Worlds,
    players: Vec<String>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::connect(&format!("sqlite://{}", dir.path().join("world.db").display())).await.unwrap();
    storage.migrate().await.unwrap();
    let worlds = Worlds::new(storage.clone(), EventBus::default());
    let catalog =
        gaia_world::content::load_catalog(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/gaia-world/sample"));
    assert!(catalog.errors.is_empty(), "{:?}", catalog.errors);
    worlds.set_catalog(catalog);
    let mut players = Vec::with_capacity(1_000);
    for i in 0..1_000 {
        let u = storage.create_user(&format!("player{i}@example.com"), None, None).await.unwrap();
        worlds.view(EXP, &u.id).await.unwrap();
        players.push(u.id);
    }
    Setup { worlds, players, _dir: dir }
}

async fn run(s: &Setup, player: usize, text: &str) {
    let r = s.worlds.command(EXP, &s.players[player % s.players.len()], &Action::new(text)).await.unwrap();
    assert!(r.success, "{text}: {}", r.message);
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup());
    let mut g = c.benchmark_group("world_commands");
    let mut n = 0usize;
    g.bench_function("baseline_view", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let p = s.players[n % s.players.len()].clone();
            let w = s.worlds.clone();
            async move { w.view(EXP, &p).await.unwrap() }
        })
    });
    for (name, text) in [("look", "look"), ("inventory", "inventory"), ("examine", "examine radio")] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                n += 1;
                run(&s, n, text)
            })
        });
    }
    // One player walks back and forth; another picks up and drops a can.
    let mut flip = false;
    g.bench_function("go", |b| {
        b.to_async(&rt).iter(|| {
            flip = !flip;
            run(&s, 0, if flip { "go roof" } else { "go main_room" })
        })
    });
    g.bench_function("collect_and_drop", |b| {
        b.to_async(&rt).iter(|| async {
            run(&s, 1, "collect_item canned_food_2").await;
            run(&s, 1, "drop canned_food_2").await;
        })
    });
    g.finish();

    // Percentiles over 2,000 commands each, players in turn.
    rt.block_on(async {
        for text in ["look", "inventory", "go roof", "go main_room"] {
            let mut times = Vec::with_capacity(2_000);
            for i in 0..2_000 {
                let t = Instant::now();
                let r = s.worlds.command(EXP, &s.players[i % 1_000], &Action::new(text)).await.unwrap();
                times.push(t.elapsed());
                let _ = r;
            }
            let (p50, p99) = percentiles(times);
            println!(
                "world_commands/{text}: p50 {:.3} ms, p99 {:.3} ms",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
