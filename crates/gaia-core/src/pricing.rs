//! Prices in effect at a point in time: recorded prices ([`PriceEntry`], with the time each takes
//! effect) over the prices of the configuration or provider catalog.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use gaia_core::pricing::PriceBook;
//! use gaia_core::storage::PriceEntry;
//! use gaia_core::types::ModelPrice;
//!
//! let jan = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
//! let entry = PriceEntry {
//!     id: "p1".into(), provider: "openai".into(), model: "gpt-4o-mini".into(),
//!     price: ModelPrice::new(0.1, 0.4), effective_from: jan,
//!     created_by: None, created_at: jan,
//! };
//! let book = PriceBook::new(vec![entry]);
//! let before = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap();
//! assert_eq!(book.price_at("openai", "gpt-4o-mini", before), None); // the catalog's price applies
//! assert_eq!(book.price_at("openai", "gpt-4o-mini", jan).unwrap().price.input, 0.1);
//! ```

use crate::storage::{PriceEntry, UnitPriceEntry, UnitPriceKind};
use crate::types::{ModelPrice, Usage};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Recorded prices by provider and model, each sorted by the time it takes effect; and the recorded
/// unit prices of media models and sell prices of asset kinds, likewise.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    by_model: HashMap<(String, String), Vec<PriceEntry>>,
    /// Unit prices by (`cost`/`sell`, provider, model, unit).
    units: HashMap<(UnitPriceKind, String, String, String), Vec<UnitPriceEntry>>,
}

/// A unit price in effect and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitPrice {
    /// US dollars per unit (per asset for a sell price).
    pub usd_per_unit: f64,
    /// The unit it was found under (`image:1024x1024:hd`, then `image:1024x1024`, then `image`).
    pub unit: String,
    /// When it took effect (`None`: the configured price).
    pub effective_from: Option<DateTime<Utc>>,
    /// The recorded price's id, if it is one.
    pub id: Option<String>,
}

impl UnitPrice {
    /// A configured price.
    pub fn configured(unit: &str, usd_per_unit: f64) -> Self {
        UnitPrice { usd_per_unit, unit: unit.to_string(), effective_from: None, id: None }
    }
}

/// The unit names to look a price up under, most specific first: `image:1024x1024:hd` is looked up
/// as itself, then `image:1024x1024`, then `image`.
pub fn unit_fallbacks(unit: &str) -> Vec<&str> {
    let mut out = vec![unit];
    let mut rest = unit;
    while let Some((head, _)) = rest.rsplit_once(':') {
        out.push(head);
        rest = head;
    }
    out
}

/// A price and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectivePrice {
    /// Dollars per million input and output tokens.
    #[serde(flatten)]
    pub price: ModelPrice,
    /// When it took effect (`None`: the configured or catalog price, in effect until a recorded one).
    pub effective_from: Option<DateTime<Utc>>,
    /// The recorded price's id, if it is one.
    pub id: Option<String>,
}

impl EffectivePrice {
    /// The configured or catalog price.
    pub fn configured(price: ModelPrice) -> Self {
        EffectivePrice { price, effective_from: None, id: None }
    }

    /// The cost of `usage` in US dollars.
    pub fn cost(&self, usage: Usage) -> f64 {
        self.price.cost(usage)
    }
}

/// Where recorded prices come from, for whoever costs calls (the provider registry consults one so
/// every caller — the gateway's metering, agent budgets, estimates — costs a call alike).
/// [`crate::quota::Quotas`] is one (its price book, reloaded from the database); a [`PriceBook`] is one.
pub trait PriceSource: Send + Sync {
    /// The recorded price of `model` at `provider` in effect at `at`, if any (the configured or
    /// catalog price applies otherwise).
    fn recorded_price(&self, provider: &str, model: &str, at: DateTime<Utc>) -> Option<EffectivePrice>;

    /// The recorded price of one `unit` of a media model in effect at `at` (looked up as
    /// [`unit_fallbacks`] says), if any.
    fn recorded_unit_price(&self, provider: &str, model: &str, unit: &str, at: DateTime<Utc>) -> Option<UnitPrice> {
        let _ = (provider, model, unit, at);
        None
    }

    /// The recorded sell price of one asset of `kind` in effect at `at`, if any.
    fn recorded_sell_price(&self, kind: &str, at: DateTime<Utc>) -> Option<UnitPrice> {
        let _ = (kind, at);
        None
    }
}

impl PriceSource for PriceBook {
    fn recorded_price(&self, provider: &str, model: &str, at: DateTime<Utc>) -> Option<EffectivePrice> {
        self.price_at(provider, model, at)
    }

    fn recorded_unit_price(&self, provider: &str, model: &str, unit: &str, at: DateTime<Utc>) -> Option<UnitPrice> {
        self.unit_price_at(provider, model, unit, at)
    }

    fn recorded_sell_price(&self, kind: &str, at: DateTime<Utc>) -> Option<UnitPrice> {
        self.sell_price_at(kind, at)
    }
}

impl PriceBook {
    /// A book of `entries`.
    pub fn new(entries: Vec<PriceEntry>) -> Self {
        let mut by_model: HashMap<(String, String), Vec<PriceEntry>> = HashMap::new();
        for e in entries {
            by_model.entry((e.provider.clone(), e.model.clone())).or_default().push(e);
        }
        for v in by_model.values_mut() {
            v.sort_by(|a, b| a.effective_from.cmp(&b.effective_from).then(a.created_at.cmp(&b.created_at)));
        }
        PriceBook { by_model, units: HashMap::new() }
    }

    /// This book with the recorded unit and sell prices `entries`.
    pub fn with_unit_prices(mut self, entries: Vec<UnitPriceEntry>) -> Self {
        for e in entries {
            let key = (e.price_kind, e.provider.clone(), e.model.clone(), e.unit.clone());
            self.units.entry(key).or_default().push(e);
        }
        for v in self.units.values_mut() {
            v.sort_by(|a, b| a.effective_from.cmp(&b.effective_from).then(a.created_at.cmp(&b.created_at)));
        }
        self
    }

    fn unit_entry_at(
        &self,
        kind: UnitPriceKind,
        provider: &str,
        model: &str,
        unit: &str,
        at: DateTime<Utc>,
    ) -> Option<UnitPrice> {
        let v = self.units.get(&(kind, provider.to_string(), model.to_string(), unit.to_string()))?;
        let e = v.iter().rev().find(|e| e.effective_from <= at)?;
        Some(UnitPrice {
            usd_per_unit: e.usd_per_unit,
            unit: e.unit.clone(),
            effective_from: Some(e.effective_from),
            id: Some(e.id.clone()),
        })
    }

    /// The recorded price of one `unit` of `model` at `provider` in effect at `at`, the most
    /// specific unit first ([`unit_fallbacks`]).
    pub fn unit_price_at(&self, provider: &str, model: &str, unit: &str, at: DateTime<Utc>) -> Option<UnitPrice> {
        unit_fallbacks(unit).into_iter().find_map(|u| self.unit_entry_at(UnitPriceKind::Cost, provider, model, u, at))
    }

    /// The recorded sell price of one asset of `kind` in effect at `at`.
    pub fn sell_price_at(&self, kind: &str, at: DateTime<Utc>) -> Option<UnitPrice> {
        self.unit_entry_at(UnitPriceKind::Sell, "", "", kind, at)
    }

    /// Every recorded unit and sell price, oldest first within each key.
    pub fn unit_prices(&self) -> Vec<&UnitPriceEntry> {
        let mut all: Vec<&UnitPriceEntry> = self.units.values().flatten().collect();
        all.sort_by(|a, b| {
            (a.price_kind as u8, &a.provider, &a.model, &a.unit, a.effective_from).cmp(&(
                b.price_kind as u8,
                &b.provider,
                &b.model,
                &b.unit,
                b.effective_from,
            ))
        });
        all
    }

    /// Whether no price is recorded.
    pub fn is_empty(&self) -> bool {
        self.by_model.is_empty() && self.units.is_empty()
    }

    /// The recorded price of `model` at `provider` in effect at `at`: the latest one that took effect
    /// by then (the most recently recorded one when several take effect at the same time).
    pub fn price_at(&self, provider: &str, model: &str, at: DateTime<Utc>) -> Option<EffectivePrice> {
        let v = self.by_model.get(&(provider.to_string(), model.to_string()))?;
        let e = v.iter().rev().find(|e| e.effective_from <= at)?;
        Some(EffectivePrice { price: e.price, effective_from: Some(e.effective_from), id: Some(e.id.clone()) })
    }

    /// Every recorded price of `model` at `provider`, oldest first.
    pub fn history(&self, provider: &str, model: &str) -> &[PriceEntry] {
        self.by_model.get(&(provider.to_string(), model.to_string())).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(id: &str, input: f64, from: DateTime<Utc>, created: DateTime<Utc>) -> PriceEntry {
        PriceEntry {
            id: id.into(),
            provider: "p".into(),
            model: "m".into(),
            price: ModelPrice::new(input, input * 4.0),
            effective_from: from,
            created_by: None,
            created_at: created,
        }
    }

    #[test]
    fn the_latest_price_in_effect_applies() {
        let d = |day| Utc.with_ymd_and_hms(2027, 1, day, 0, 0, 0).unwrap();
        let book = PriceBook::new(vec![
            entry("b", 2.0, d(10), d(1)),
            entry("a", 1.0, d(5), d(1)),
            entry("c", 3.0, d(10), d(2)),
        ]);
        assert!(book.price_at("p", "m", d(4)).is_none());
        assert_eq!(book.price_at("p", "m", d(5)).unwrap().id.as_deref(), Some("a"));
        assert_eq!(book.price_at("p", "m", d(9)).unwrap().price.input, 1.0);
        // Two prices from the same time: the one recorded last wins.
        assert_eq!(book.price_at("p", "m", d(10)).unwrap().id.as_deref(), Some("c"));
        assert!(book.price_at("p", "other", d(20)).is_none());
        assert_eq!(book.history("p", "m").len(), 3);
        let cost = book.price_at("p", "m", d(6)).unwrap().cost(Usage::new(1_000_000, 500_000));
        assert!((cost - 3.0).abs() < 1e-9);
        assert!(!book.is_empty());
    }

    #[test]
    fn unit_prices_fall_back_to_less_specific_units() {
        let d = |day| Utc.with_ymd_and_hms(2027, 1, day, 0, 0, 0).unwrap();
        let unit = |id: &str, kind, unit: &str, usd, from| UnitPriceEntry {
            id: id.into(),
            price_kind: kind,
            provider: if kind == UnitPriceKind::Cost { "oa".into() } else { String::new() },
            model: if kind == UnitPriceKind::Cost { "img".into() } else { String::new() },
            unit: unit.into(),
            usd_per_unit: usd,
            effective_from: from,
            created_by: None,
            created_at: from,
        };
        let book = PriceBook::new(vec![]).with_unit_prices(vec![
            unit("a", UnitPriceKind::Cost, "image", 0.04, d(1)),
            unit("b", UnitPriceKind::Cost, "image:1024x1792", 0.08, d(1)),
            unit("c", UnitPriceKind::Cost, "image:1024x1792:hd", 0.12, d(5)),
            unit("s", UnitPriceKind::Sell, "image", 0.5, d(3)),
        ]);
        assert_eq!(unit_fallbacks("image:1024x1792:hd"), vec!["image:1024x1792:hd", "image:1024x1792", "image"]);
        let at = |u: &str, day| book.unit_price_at("oa", "img", u, d(day)).map(|p| (p.unit, p.usd_per_unit));
        assert_eq!(at("image:1024x1792:hd", 2), Some(("image:1024x1792".into(), 0.08)), "hd not in effect yet");
        assert_eq!(at("image:1024x1792:hd", 6), Some(("image:1024x1792:hd".into(), 0.12)));
        assert_eq!(at("image:512x512:standard", 6), Some(("image".into(), 0.04)));
        assert_eq!(at("character", 6), None);
        assert_eq!(book.sell_price_at("image", d(2)), None);
        assert_eq!(book.sell_price_at("image", d(4)).unwrap().usd_per_unit, 0.5);
        assert_eq!(book.unit_prices().len(), 4);
    }
}
