//! Charts drawn on the server as inline SVG (no script, no CDN, no inline style: the page's CSP
//! holds). Colours come from `app.css` through classes; every label is escaped by maud.

use maud::{html, Markup};

/// One bar: its label and value.
pub struct Bar {
    /// The label under (columns) or beside (rows) the bar.
    pub label: String,
    /// The value (negative values are drawn as zero).
    pub value: f64,
}

/// How a value is written.
#[derive(Clone, Copy)]
pub enum Unit {
    /// US dollars.
    Usd,
    /// A count.
    Count,
}

impl Unit {
    /// `v` written in this unit.
    pub fn format(self, v: f64) -> String {
        match self {
            // Small amounts (a budget of a millionth of a dollar, a cheap call) keep their digits.
            Unit::Usd if v != 0.0 && v.abs() < 0.01 => {
                let s = format!("{v:.6}");
                let s = s.trim_end_matches('0');
                if s.ends_with('.') || s == "-0." || s == "0." {
                    format!("${v:.2e}")
                } else {
                    format!("${s}")
                }
            }
            Unit::Usd => format!("${v:.2}"),
            Unit::Count => format!("{}", v.round() as i64),
        }
    }
}

/// The most bars a chart draws (the rest are summed into "others" by [`top`]).
pub const MAX_BARS: usize = 12;

/// The `MAX_BARS - 1` largest of `bars` (kept in order), the rest summed as "others".
pub fn top(mut bars: Vec<Bar>) -> Vec<Bar> {
    if bars.len() <= MAX_BARS {
        return bars;
    }
    bars.sort_by(|a, b| b.value.total_cmp(&a.value));
    let rest: f64 = bars.drain(MAX_BARS - 1..).map(|b| b.value).sum();
    bars.push(Bar { label: "others".into(), value: rest });
    bars
}

fn scale(bars: &[Bar]) -> f64 {
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    }
}

/// Labels longer than this are cut (the full label is in the bar's tooltip).
const LABEL_CHARS: usize = 28;

fn short(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_string();
    }
    let mut s: String = label.chars().take(LABEL_CHARS - 1).collect();
    s.push('…');
    s
}

/// Horizontal bars, one row per label, largest scale first as given; `title` names the chart for
/// screen readers.
pub fn rows(title: &str, bars: &[Bar], unit: Unit) -> Markup {
    const ROW: f64 = 26.0;
    const LABEL_W: f64 = 210.0;
    const BAR_W: f64 = 380.0;
    const VALUE_W: f64 = 90.0;
    let max = scale(bars);
    let height = (bars.len().max(1) as f64) * ROW + 4.0;
    let width = LABEL_W + BAR_W + VALUE_W;
    html! {
        svg .chart .rows role="img" aria-label=(title) viewBox={ "0 0 " (width) " " (height) }
            width=(width) height=(height) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @if bars.is_empty() {
                text .axis x="0" y="18" { "No usage in this period." }
            }
            @for (i, b) in bars.iter().enumerate() {
                @let y = i as f64 * ROW + 2.0;
                @let w = (b.value.max(0.0) / max * BAR_W).max(if b.value > 0.0 { 1.0 } else { 0.0 });
                g {
                    title { (b.label) ": " (unit.format(b.value)) }
                    text .label x=(LABEL_W - 8.0) y=(y + 17.0) text-anchor="end" { (short(&b.label)) }
                    rect .bar x=(LABEL_W) y=(y + 3.0) width=(format!("{w:.1}")) height=(ROW - 8.0) rx="3" {}
                    text .value x=(LABEL_W + w + 6.0) y=(y + 17.0) { (unit.format(b.value)) }
                }
            }
        }
    }
}

/// Vertical columns in the order given (days, oldest first), labelled below.
pub fn columns(title: &str, bars: &[Bar], unit: Unit) -> Markup {
    const HEIGHT: f64 = 180.0;
    const LABELS: f64 = 34.0;
    const TOP: f64 = 18.0;
    let max = scale(bars);
    let n = bars.len().max(1) as f64;
    let slot = (720.0 / n).clamp(8.0, 60.0);
    let width = slot * n + 20.0;
    // Every label when they fit, else about ten of them.
    let every = ((bars.len() as f64 * 46.0 / width).ceil() as usize).max(1);
    html! {
        svg .chart .columns role="img" aria-label=(title) viewBox={ "0 0 " (width) " " (HEIGHT + LABELS) }
            width=(width) height=(HEIGHT + LABELS) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            text .axis x="2" y="12" { "max " (unit.format(max)) }
            line .baseline x1="0" y1=(HEIGHT) x2=(width) y2=(HEIGHT) {}
            @if bars.is_empty() {
                text .axis x="10" y=(HEIGHT / 2.0) { "No usage in this period." }
            }
            @for (i, b) in bars.iter().enumerate() {
                @let h = b.value.max(0.0) / max * (HEIGHT - TOP);
                @let x = 10.0 + i as f64 * slot;
                g {
                    title { (b.label) ": " (unit.format(b.value)) }
                    rect .bar x=(format!("{:.1}", x + slot * 0.15)) y=(format!("{:.1}", HEIGHT - h))
                        width=(format!("{:.1}", slot * 0.7)) height=(format!("{h:.1}")) rx="2" {}
                    @if i % every == 0 {
                        text .label x=(format!("{:.1}", x + slot / 2.0)) y=(HEIGHT + 14.0) text-anchor="middle" {
                            (b.label.get(5..).unwrap_or(&b.label))
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(n: usize) -> Vec<Bar> {
        (0..n).map(|i| Bar { label: format!("m{i}"), value: i as f64 }).collect()
    }

    #[test]
    fn top_keeps_the_largest_and_sums_the_rest() {
        let t = top(bars(20));
        assert_eq!(t.len(), MAX_BARS);
        assert_eq!(t[0].label, "m19");
        assert_eq!(t.last().unwrap().label, "others");
        let others: f64 = (0..9).map(f64::from).sum();
        assert_eq!(t.last().unwrap().value, others);
        assert_eq!(top(bars(3)).len(), 3);
    }

    #[test]
    fn labels_are_escaped_and_bars_scale_to_the_largest() {
        let svg = rows(
            "t",
            &[Bar { label: "<script>".into(), value: 2.0 }, Bar { label: "b".into(), value: 1.0 }],
            Unit::Count,
        )
        .into_string();
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(svg.contains("width=\"380.0\"") && svg.contains("width=\"190.0\""), "{svg}");
        assert!(!svg.contains("style"), "no inline style (CSP)");
        let svg = columns("t", &[], Unit::Usd).into_string();
        assert!(svg.contains("No usage"));
        assert_eq!(Unit::Usd.format(0.001), "$0.001");
        assert_eq!(Unit::Usd.format(0.000001), "$0.000001");
        assert_eq!(Unit::Usd.format(0.0), "$0.00");
        assert_eq!(Unit::Usd.format(12.5), "$12.50");
    }
}
