//! Mouth shapes (visemes) for lip-sync, timed over a line of speech: the text is read letter group
//! by letter group (`th`, `ch`, `sh`, `ph`, `ng`, `qu`, doubled letters as one) into the 15 visemes
//! game engines' lip-sync rigs share (Meta's Oculus set: `sil`, `PP`, `FF`, `TH`, `DD`, `kk`, `CH`,
//! `SS`, `nn`, `RR`, `aa`, `E`, `I`, `O`, `U`), and the audio's length is shared among them (vowels
//! held longer than consonants, a pause at each word's end and more at punctuation). Without the
//! audio's length (a format whose header does not say it), a speaking rate of about 14 letters a
//! second is assumed.
//!
//! It follows spelling, not pronunciation: good enough for a mouth that moves with the words, which
//! is what a game client's rig needs, and the same on every run.

use serde::Serialize;

/// The visemes, in the Oculus set's order.
pub const VISEMES: [&str; 15] = ["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U"];

/// Longest text timed, in characters (the rest is left silent).
pub const MAX_VISEME_TEXT: usize = 4_096;

/// One mouth shape from `start_ms` until the next one's start (or `end_ms` of the last).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Viseme {
    /// When it starts, in milliseconds from the audio's start.
    pub start_ms: u32,
    /// One of [`VISEMES`].
    pub viseme: &'static str,
}

/// Milliseconds per unit of weight when the audio's length is unknown.
const MS_PER_WEIGHT: f64 = 70.0;

/// The viseme of a letter group at the start of `s` (lower-case), and how many characters it takes.
fn shape(s: &[char]) -> Option<(&'static str, usize)> {
    let two = |a: char, b: char| s.len() >= 2 && s[0] == a && s[1] == b;
    if two('t', 'h') {
        return Some(("TH", 2));
    }
    if two('c', 'h') || two('s', 'h') {
        return Some(("CH", 2));
    }
    if two('p', 'h') {
        return Some(("FF", 2));
    }
    if two('n', 'g') || two('c', 'k') {
        return Some(("kk", 2));
    }
    if two('q', 'u') {
        return Some(("kk", 2));
    }
    let c = *s.first()?;
    let v = match c {
        'p' | 'b' | 'm' => "PP",
        'f' | 'v' => "FF",
        't' | 'd' => "DD",
        'k' | 'g' | 'c' | 'q' | 'x' => "kk",
        'j' => "CH",
        's' | 'z' => "SS",
        'n' | 'l' => "nn",
        'r' => "RR",
        'a' | 'à' | 'á' | 'â' | 'ä' => "aa",
        'e' | 'è' | 'é' | 'ê' | 'ë' => "E",
        'i' | 'y' | 'ì' | 'í' | 'î' | 'ï' => "I",
        'o' | 'ò' | 'ó' | 'ô' | 'ö' => "O",
        'u' | 'w' | 'ù' | 'ú' | 'û' | 'ü' => "U",
        // `h` and other letters shape no mouth of their own: the previous one carries on.
        _ => return Some(("", 1)),
    };
    Some((v, 1))
}

fn weight(v: &str) -> f64 {
    match v {
        "aa" | "E" | "I" | "O" | "U" => 1.3,
        "sil" => 1.0,
        _ => 0.8,
    }
}

/// The visemes of `text` spoken over `duration_secs` (`None`: the length is estimated): the first
/// sound's shape from 0 (silent when there is none), silent after the last; consecutive equal
/// shapes are merged. At most one per character of the first [`MAX_VISEME_TEXT`], plus two.
pub fn visemes(text: &str, duration_secs: Option<f64>) -> Vec<Viseme> {
    let chars: Vec<char> = text.chars().take(MAX_VISEME_TEXT).flat_map(char::to_lowercase).collect();
    // (viseme, weight) units.
    let mut units: Vec<(&'static str, f64)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() {
            let (v, n) = shape(&chars[i..]).unwrap_or(("", 1));
            // A doubled letter is one sound.
            let n = if n == 1 && chars.get(i + 1) == Some(&c) { 2 } else { n };
            if !v.is_empty() && units.last().map(|u| u.0) != Some(v) {
                units.push((v, weight(v)));
            } else if let Some(last) = units.last_mut() {
                last.1 += 0.3;
            }
            i += n;
            continue;
        }
        let pause = match c {
            '.' | '!' | '?' | ';' | ':' => 3.0,
            ',' | '—' | '-' => 1.5,
            _ if c.is_whitespace() => 0.4,
            _ => 0.0,
        };
        if pause > 0.0 {
            match units.last_mut() {
                Some(last) if last.0 == "sil" => last.1 += pause,
                _ => units.push(("sil", pause)),
            }
        }
        i += 1;
    }
    while units.last().is_some_and(|u| u.0 == "sil") {
        units.pop();
    }
    let total: f64 = units.iter().map(|u| u.1).sum();
    let ms_per_weight = match duration_secs {
        Some(d) if d.is_finite() && d > 0.0 && total > 0.0 => d * 1000.0 / total,
        _ => MS_PER_WEIGHT,
    };
    let mut out = vec![Viseme { start_ms: 0, viseme: "sil" }];
    let mut at = 0.0f64;
    for (v, w) in units {
        let start = at.round() as u32;
        match out.last_mut() {
            Some(last) if last.viseme == v => {}
            Some(last) if last.start_ms == start => last.viseme = v,
            _ => out.push(Viseme { start_ms: start, viseme: v }),
        }
        at += w * ms_per_weight;
    }
    let end = at.round() as u32;
    if out.last().is_some_and(|l| l.viseme != "sil") {
        out.push(Viseme { start_ms: end, viseme: "sil" });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_become_mouth_shapes_over_the_audio_s_length() {
        let v = visemes("Copy that, over.", Some(1.2));
        let shapes: Vec<&str> = v.iter().map(|x| x.viseme).collect();
        assert_eq!((v[0].start_ms, v[0].viseme), (0, "kk"), "the first sound from the start");
        assert_eq!(shapes.last(), Some(&"sil"));
        for want in ["kk", "O", "PP", "I", "TH", "aa", "DD", "FF", "E", "RR"] {
            assert!(shapes.contains(&want), "{want} in {shapes:?}");
        }
        // In order, within the audio, no two equal shapes in a row.
        assert!(v.windows(2).all(|w| w[0].start_ms <= w[1].start_ms && w[0].viseme != w[1].viseme), "{v:?}");
        assert!(v.last().unwrap().start_ms <= 1200 && v.last().unwrap().start_ms >= 1100, "{v:?}");
        assert!(shapes.iter().all(|s| VISEMES.contains(s)));
    }

    #[test]
    fn without_a_length_the_rate_is_estimated_and_odd_text_is_silent() {
        let v = visemes("Hello there", None);
        assert!(v.last().unwrap().start_ms > 300 && v.last().unwrap().start_ms < 2000, "{v:?}");
        assert_eq!(visemes("", Some(1.0)), [Viseme { start_ms: 0, viseme: "sil" }]);
        assert_eq!(visemes("?!… 123", None), [Viseme { start_ms: 0, viseme: "sil" }]);
        let long = "ab ".repeat(10_000);
        assert!(visemes(&long, None).len() <= MAX_VISEME_TEXT + 2, "bounded");
    }
}
