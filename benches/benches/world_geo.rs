//! The nearest-location lookup of game worlds (`gaia_world::geo::GeoIndex`) over 100,000 waypoints
//! spread over a city (about 20 × 20 km), against a baseline in the same run: the same lookup as a
//! scan of every waypoint.
//!
//! `cargo bench -p gaia-benches --bench world_geo` (waypoints: `GAIA_BENCH_WAYPOINTS`, default
//! 100,000). Prints p50/p99 of 100,000 lookups at random points, then criterion's medians.

use criterion::{black_box, criterion_group, Criterion};
use gaia_world::content::{Experience, Gps, Location, Media, Waypoint};
use gaia_world::geo::{GeoIndex, ZONE_RADIUS_M};
use std::time::{Duration, Instant};

/// A deterministic pseudo-random sequence (xorshift), so every run measures the same points.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn point(&mut self) -> Gps {
        // Around Paris, ±0.09° of latitude and ±0.135° of longitude: about 20 × 20 km.
        Gps { lat: 48.8566 + (self.unit() - 0.5) * 0.18, lng: 2.3522 + (self.unit() - 0.5) * 0.27 }
    }
}

fn world(n: usize) -> Experience {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut e = Experience::default();
    for i in 0..n {
        let at = rng.point();
        // One location in ten has its own waypoint anchoring it.
        let location_id = (i % 10 == 0).then(|| {
            let id = format!("l{i}");
            e.world.locations.insert(id.clone(), Location { id: id.clone(), ..Location::default() });
            id
        });
        let id = format!("w{i}");
        e.waypoints.insert(
            id.clone(),
            Waypoint {
                id,
                name: format!("Waypoint {i}"),
                waypoint_type: if i % 7 == 0 { "pathway".into() } else { "landmark".into() },
                location: at,
                media: Media::default(),
                vps_anchor_id: None,
                location_id,
                extra: Default::default(),
            },
        );
    }
    e
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    format!("p50 {:.2} µs, p99 {:.2} µs", at(0.5), at(0.99))
}

fn lookups(c: &mut Criterion) {
    let n = std::env::var("GAIA_BENCH_WAYPOINTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let exp = world(n);
    let t = Instant::now();
    let index = GeoIndex::build(&exp);
    println!(
        "{n} waypoints ({} locations) indexed in {:.0} ms",
        exp.world.locations.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let scan = |at: Gps| {
        exp.waypoints
            .values()
            .filter_map(|w| w.location_id.as_ref().map(|l| (l, gaia_world::distance_m(at, w.location))))
            .filter(|(_, d)| *d <= ZONE_RADIUS_M)
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    let mut rng = Rng(42);
    let points: Vec<Gps> = (0..100_000).map(|_| rng.point()).collect();
    let mut zone = Vec::with_capacity(points.len());
    let mut near = Vec::with_capacity(points.len());
    for p in &points {
        let t = Instant::now();
        black_box(index.nearest_location(*p, ZONE_RADIUS_M));
        zone.push(t.elapsed());
        let t = Instant::now();
        black_box(index.waypoints_near(*p, 1_000.0));
        near.push(t.elapsed());
    }
    let mut base = Vec::new();
    for p in points.iter().take(1_000) {
        let t = Instant::now();
        black_box(scan(*p));
        base.push(t.elapsed());
    }
    println!("baseline, a scan of every waypoint: {}", percentiles(base));
    println!("nearest location within 1 km (the zone): {}", percentiles(zone));
    println!("waypoints within 1 km, nearest first (locations/nearby): {}", percentiles(near));

    let mut g = c.benchmark_group("world_geo");
    let mut i = 0;
    g.bench_function("baseline: scan", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            scan(points[i])
        })
    });
    g.bench_function("nearest location (H3 cells)", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            index.nearest_location(points[i], ZONE_RADIUS_M)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = lookups
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
