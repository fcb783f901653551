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

use crate::storage::PriceEntry;
use crate::types::{ModelPrice, Usage};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Recorded prices by provider and model, each sorted by the time it takes effect.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    by_model: HashMap<(String, String), Vec<PriceEntry>>,
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
}

impl PriceSource for PriceBook {
    fn recorded_price(&self, provider: &str, model: &str, at: DateTime<Utc>) -> Option<EffectivePrice> {
        self.price_at(provider, model, at)
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
        PriceBook { by_model }
    }

    /// Whether no price is recorded.
    pub fn is_empty(&self) -> bool {
        self.by_model.is_empty()
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
}
