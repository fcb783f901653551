//! Where things are on the Earth: an experience's locations and waypoints indexed by H3 cell (`h3o`),
//! so that the nearest one to a player is found by looking at a few cells around them and measuring
//! only what is there, however many the experience has.
//!
//! A location is found by its `gps`, and by the waypoints that anchor it (`location_id`). Zones have
//! hysteresis: a player in a zone stays in it while they are within its radius (plus
//! [`HYSTERESIS_M`]) and no other zone is nearer by more than [`HYSTERESIS_M`], so walking along the
//! border between two zones does not flap between them.

use crate::content::{Experience, Gps, Waypoint};
use crate::engine::distance_m;
use h3o::{CellIndex, LatLng, Resolution};
use std::collections::HashMap;

/// The radius of a zone: a player's zone is the nearest location within it.
pub const ZONE_RADIUS_M: f64 = 1_000.0;
/// How much nearer another zone must be before a player leaves theirs (and how far beyond the radius
/// they may stray).
pub const HYSTERESIS_M: f64 = 50.0;
/// Cells of about 0.1 km² (edges of 175 m on average): a few candidates each even in a dense city.
const RESOLUTION: Resolution = Resolution::Nine;
/// Less than the smallest distance from a cell's centre to its edge at [`RESOLUTION`] (cells vary in
/// size over the globe), in metres. Everything outside the cells within `k` rings of a point's cell
/// is at least `(2k - 1)` times this far from the point.
const MIN_INRADIUS_M: f64 = 95.0;

/// Rings around a point's cell that hold everything within `radius_m` of it.
fn rings_for(radius_m: f64) -> u32 {
    ((radius_m / MIN_INRADIUS_M + 1.0) / 2.0).ceil() as u32 + 1
}
/// Largest search radius, in metres.
pub const MAX_SEARCH_M: f64 = 10_000.0;

/// What sits at a point.
#[derive(Debug, Clone, PartialEq)]
enum Anchor {
    /// A location (its own `gps`, or a waypoint anchoring it).
    Location(String),
    /// A waypoint (by index in [`GeoIndex::waypoints`]).
    Waypoint(usize),
}

/// The locations and waypoints of one experience, by cell.
#[derive(Debug, Default)]
pub struct GeoIndex {
    cells: HashMap<CellIndex, Vec<(Gps, Anchor)>>,
    waypoints: Vec<Waypoint>,
    /// Where each location is (its `gps`, else its first anchoring waypoint).
    locations: HashMap<String, Gps>,
}

fn cell(at: Gps) -> Option<CellIndex> {
    LatLng::new(at.lat, at.lng).ok().map(|p| p.to_cell(RESOLUTION))
}

/// A coarse place on the Earth: the id of the H3 cell of about 0.1 km² holding `at` (`None` for a
/// point off the globe). It tells who is near whom (presence lists) without passing coordinates
/// around.
pub fn area_cell(at: Gps) -> Option<u64> {
    cell(at).map(u64::from)
}

/// The distance between the centres of two cells from [`area_cell`], in metres (`None` when either
/// is not a cell id).
pub fn cell_distance_m(a: u64, b: u64) -> Option<f64> {
    let centre = |c: u64| -> Option<Gps> {
        let p = LatLng::from(CellIndex::try_from(c).ok()?);
        Some(Gps { lat: p.lat(), lng: p.lng() })
    };
    Some(distance_m(centre(a)?, centre(b)?))
}

impl GeoIndex {
    /// Indexes `exp`'s locations and waypoints.
    pub fn build(exp: &Experience) -> GeoIndex {
        let mut index = GeoIndex::default();
        for (id, l) in &exp.world.locations {
            if let Some(gps) = l.gps {
                index.insert(gps, Anchor::Location(id.clone()));
                index.locations.insert(id.clone(), gps);
            }
        }
        for w in exp.waypoints.values() {
            if let Some(l) = w.location_id.as_ref().filter(|l| exp.world.locations.contains_key(*l)) {
                index.insert(w.location, Anchor::Location(l.clone()));
                index.locations.entry(l.clone()).or_insert(w.location);
            }
            index.insert(w.location, Anchor::Waypoint(index.waypoints.len()));
            index.waypoints.push(w.clone());
        }
        index
    }

    fn insert(&mut self, at: Gps, anchor: Anchor) {
        if let Some(c) = cell(at) {
            self.cells.entry(c).or_default().push((at, anchor));
        }
    }

    /// Where location `id` is (its `gps`, else its first anchoring waypoint).
    pub fn location(&self, id: &str) -> Option<Gps> {
        self.locations.get(id).copied()
    }

    /// Everything within `radius_m` of `at` (at most [`MAX_SEARCH_M`]), with its distance.
    fn within(&self, at: Gps, radius_m: f64) -> impl Iterator<Item = (f64, &Anchor)> {
        let radius_m = radius_m.clamp(0.0, MAX_SEARCH_M);
        let cells: Vec<CellIndex> = cell(at).map(|c| c.grid_disk::<Vec<_>>(rings_for(radius_m))).unwrap_or_default();
        cells
            .into_iter()
            .filter_map(|c| self.cells.get(&c))
            .flatten()
            .map(move |(p, a)| (distance_m(at, *p), a))
            .filter(move |(d, _)| *d <= radius_m)
    }

    /// The nearest location within `radius_m` of `at` (at most [`MAX_SEARCH_M`]), with its distance:
    /// the rings of cells around `at` are searched outwards, and the search stops once nothing
    /// further out can be nearer.
    pub fn nearest_location(&self, at: Gps, radius_m: f64) -> Option<(&str, f64)> {
        let radius_m = radius_m.clamp(0.0, MAX_SEARCH_M);
        let centre = cell(at)?;
        let mut best: Option<(&str, f64)> = None;
        for k in 0..=rings_for(radius_m) {
            for c in centre.grid_ring::<Vec<_>>(k) {
                for (p, a) in self.cells.get(&c).into_iter().flatten() {
                    let Anchor::Location(id) = a else { continue };
                    let d = distance_m(at, *p);
                    let nearer = best.is_none_or(|(bid, bd)| d < bd || (d == bd && id.as_str() < bid));
                    if d <= radius_m && nearer {
                        best = Some((id.as_str(), d));
                    }
                }
            }
            if best.is_some_and(|(_, d)| d < (2.0 * k as f64 - 1.0) * MIN_INRADIUS_M) {
                break;
            }
        }
        best
    }

    /// The waypoints within `radius_m` of `at`, nearest first, `pathway` ones left out.
    pub fn waypoints_near(&self, at: Gps, radius_m: f64) -> Vec<(f64, &Waypoint)> {
        let mut out: Vec<(f64, &Waypoint)> = self
            .within(at, radius_m)
            .filter_map(|(d, a)| match a {
                Anchor::Waypoint(i) => Some((d, &self.waypoints[*i])),
                Anchor::Location(_) => None,
            })
            .filter(|(_, w)| w.waypoint_type != "pathway")
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        out
    }

    /// The zone of a player at `at` who was in zone `current`: the nearest location within
    /// [`ZONE_RADIUS_M`], unless `current` is still near enough ([`HYSTERESIS_M`]).
    pub fn zone(&self, at: Gps, current: Option<&str>) -> Option<String> {
        let best = self.nearest_location(at, ZONE_RADIUS_M + HYSTERESIS_M);
        let current = current.and_then(|c| Some((c, distance_m(at, *self.locations.get(c)?))));
        match (current, best) {
            (Some((c, dc)), Some((_, db))) if dc <= ZONE_RADIUS_M + HYSTERESIS_M && dc <= db + HYSTERESIS_M => {
                Some(c.to_string())
            }
            (Some((c, dc)), None) if dc <= ZONE_RADIUS_M + HYSTERESIS_M => Some(c.to_string()),
            (_, Some((b, db))) if db <= ZONE_RADIUS_M => Some(b.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{Location, Media};

    #[test]
    fn area_cells_are_coarse_and_their_distances_close_to_the_points_distance() {
        let a = Gps { lat: 48.8567, lng: 2.3523 };
        let near = Gps { lat: 48.85671, lng: 2.35231 };
        let far = Gps { lat: 48.8667, lng: 2.3523 };
        assert_eq!(area_cell(a), area_cell(near), "a metre apart: the same cell");
        let (ca, cf) = (area_cell(a).unwrap(), area_cell(far).unwrap());
        assert_eq!(cell_distance_m(ca, ca), Some(0.0));
        let d = cell_distance_m(ca, cf).unwrap();
        assert!((d - distance_m(a, far)).abs() < 400.0, "{d}");
        assert_eq!(area_cell(Gps { lat: f64::NAN, lng: 0.0 }), None);
        assert_eq!(cell_distance_m(ca, 0), None, "not a cell id");
    }

    /// The nearest location within `radius_m` of `at`, found by measuring every one (ties: the
    /// smaller id).
    fn scan(e: &Experience, at: Gps, radius_m: f64) -> Option<(&str, f64)> {
        e.world
            .locations
            .values()
            .map(|l| (l.id.as_str(), distance_m(at, l.gps.unwrap())))
            .filter(|(_, d)| *d <= radius_m)
            .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)))
    }

    fn exp(points: &[(&str, f64, f64)]) -> Experience {
        let mut e = Experience::default();
        for (id, lat, lng) in points {
            let l = Location { id: id.to_string(), gps: Some(Gps { lat: *lat, lng: *lng }), ..Location::default() };
            e.world.locations.insert(id.to_string(), l);
        }
        e
    }

    /// `metres` north of `at`.
    fn north(at: Gps, metres: f64) -> Gps {
        Gps { lat: at.lat + metres / 111_195.0, lng: at.lng }
    }

    #[test]
    fn the_nearest_location_is_found_through_cells_as_a_scan_would() {
        // A grid of 400 locations about 300 m apart, and points all over it: the index finds what a
        // full scan finds.
        let mut points = Vec::new();
        for i in 0..20 {
            for j in 0..20 {
                points.push((format!("l{i}_{j}"), 48.80 + i as f64 * 0.0027, 2.30 + j as f64 * 0.004));
            }
        }
        let refs: Vec<(&str, f64, f64)> = points.iter().map(|(id, a, b)| (id.as_str(), *a, *b)).collect();
        let e = exp(&refs);
        let index = GeoIndex::build(&e);
        for k in 0..200 {
            let at = Gps { lat: 48.79 + (k % 23) as f64 * 0.0029, lng: 2.29 + (k % 17) as f64 * 0.0051 };
            assert_eq!(index.nearest_location(at, ZONE_RADIUS_M), scan(&e, at, ZONE_RADIUS_M), "at {at:?}");
        }
    }

    #[test]
    fn the_nearest_location_in_a_dense_city_is_the_scans() {
        // 3,000 locations at pseudo-random points of 4 × 4 km.
        let mut seed = 7u64;
        let mut unit = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let points: Vec<(String, f64, f64)> =
            (0..3_000).map(|i| (format!("l{i}"), 48.84 + unit() * 0.036, 2.33 + unit() * 0.054)).collect();
        let refs: Vec<(&str, f64, f64)> = points.iter().map(|(id, a, b)| (id.as_str(), *a, *b)).collect();
        let e = exp(&refs);
        let index = GeoIndex::build(&e);
        for _ in 0..500 {
            let at = Gps { lat: 48.83 + unit() * 0.056, lng: 2.32 + unit() * 0.074 };
            for radius in [30.0, 200.0, 1_000.0] {
                assert_eq!(index.nearest_location(at, radius), scan(&e, at, radius), "at {at:?}, {radius} m");
            }
        }
    }

    #[test]
    fn a_player_on_the_border_does_not_flap_between_zones() {
        let a = Gps { lat: 48.8566, lng: 2.3522 };
        let b = north(a, 600.0);
        let e = exp(&[("a", a.lat, a.lng), ("b", b.lat, b.lng)]);
        let index = GeoIndex::build(&e);
        // Walking back and forth across the midpoint (300 m) by ±20 m: the zone stays.
        let mut zone = index.zone(north(a, 10.0), None);
        assert_eq!(zone.as_deref(), Some("a"));
        for step in [280.0, 320.0, 290.0, 310.0, 300.0] {
            zone = index.zone(north(a, step), zone.as_deref());
            assert_eq!(zone.as_deref(), Some("a"), "at {step} m");
        }
        // Clearly nearer b: the zone changes, and stays on the way back to the border.
        zone = index.zone(north(a, 400.0), zone.as_deref());
        assert_eq!(zone.as_deref(), Some("b"));
        zone = index.zone(north(a, 290.0), zone.as_deref());
        assert_eq!(zone.as_deref(), Some("b"));
        // Far from both: no zone.
        assert_eq!(index.zone(north(a, 5_000.0), zone.as_deref()), None);
    }

    #[test]
    fn waypoints_anchor_locations_and_are_listed_nearest_first() {
        let mut e = exp(&[]);
        e.world.locations.insert("shop".into(), Location { id: "shop".into(), ..Location::default() });
        let at = Gps { lat: 48.0, lng: 2.0 };
        for (id, m, kind, anchor) in
            [("w1", 100.0, "zone", Some("shop")), ("w2", 50.0, "landmark", None), ("w3", 10.0, "pathway", None)]
        {
            e.waypoints.insert(
                id.into(),
                Waypoint {
                    id: id.into(),
                    name: id.into(),
                    waypoint_type: kind.into(),
                    location: north(at, m),
                    media: Media::default(),
                    vps_anchor_id: None,
                    location_id: anchor.map(str::to_string),
                    extra: Default::default(),
                },
            );
        }
        let index = GeoIndex::build(&e);
        assert_eq!(index.nearest_location(at, 1_000.0).map(|x| x.0), Some("shop"));
        let ids: Vec<&str> = index.waypoints_near(at, 1_000.0).iter().map(|(_, w)| w.id.as_str()).collect();
        assert_eq!(ids, ["w2", "w1"]);
        assert!(index.waypoints_near(Gps { lat: f64::NAN, lng: 0.0 }, 1_000.0).is_empty());
    }
}
