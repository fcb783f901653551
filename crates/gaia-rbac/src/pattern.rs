//! Path patterns with `*` and `**`.

use serde::{Deserialize, Serialize};

/// A `/`-separated path pattern.
///
/// - a literal segment matches itself;
/// - `*` inside a segment matches any run of characters within that segment (`quest-*.md`);
/// - a whole segment `**` matches zero or more segments.
///
/// Leading and trailing `/` are ignored, so `/kb/x` and `kb/x` are the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct Pattern {
    raw: String,
    segments: Vec<String>,
}

impl Pattern {
    /// Parses a pattern (any text is a valid pattern).
    pub fn new(raw: &str) -> Self {
        Pattern { raw: raw.to_string(), segments: split(raw).map(str::to_string).collect() }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// What the pattern covers, when that can be said without matching paths one by one.
    pub fn shape(&self) -> Shape {
        let literal = |segs: &[String]| segs.iter().all(|s| !s.contains('*'));
        let joined = |segs: &[String]| format!("/{}", segs.join("/"));
        match self.segments.split_last() {
            None => Shape::Other,
            Some((last, rest)) if last == "**" && rest.is_empty() => Shape::Everything,
            Some((last, rest)) if last == "**" && literal(rest) => Shape::Subtree(joined(rest)),
            Some(_) if literal(&self.segments) => Shape::Exact(joined(&self.segments)),
            Some(_) => Shape::Other,
        }
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let path: Vec<&str> = split(path).collect();
        let pat: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        match_segments(&pat, &path)
    }
}

/// What a [`Pattern`] covers ([`Pattern::shape`]). Paths are written with a leading `/` and no
/// trailing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Every path (`**`).
    Everything,
    /// One path (a pattern without wildcards).
    Exact(String),
    /// A path and every path under it (literal segments, then `**`).
    Subtree(String),
    /// Anything else (a wildcard before the end): paths have to be matched one by one.
    Other,
}

impl From<String> for Pattern {
    fn from(s: String) -> Self {
        Pattern::new(&s)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> Self {
        p.raw
    }
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split('/').filter(|p| !p.is_empty())
}

/// Segment matcher; `**` is handled with an iterative backtrack so long paths stay linear-ish.
fn match_segments(pat: &[&str], path: &[&str]) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < path.len() {
        if p < pat.len() && pat[p] == "**" {
            star = Some((p, s));
            p += 1;
        } else if p < pat.len() && match_segment(pat[p], path[s]) {
            p += 1;
            s += 1;
        } else if let Some((sp, ss)) = star {
            p = sp + 1;
            s = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|x| *x == "**")
}

/// Glob within one segment: `*` matches any run of characters.
fn match_segment(pat: &str, text: &str) -> bool {
    if !pat.contains('*') {
        return pat == text;
    }
    let pat: Vec<char> = pat.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && pat[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pat.len() && pat[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::{Pattern, Shape};

    #[test]
    fn shapes() {
        let shape = |p: &str| Pattern::new(p).shape();
        assert_eq!(shape("**"), Shape::Everything);
        assert_eq!(shape("/**/"), Shape::Everything);
        assert_eq!(shape("/kb/**"), Shape::Subtree("/kb".into()));
        assert_eq!(shape("/kb/teams/red/**"), Shape::Subtree("/kb/teams/red".into()));
        assert_eq!(shape("kb/common/a.md"), Shape::Exact("/kb/common/a.md".into()));
        for other in ["", "/kb/teams/*/public/**", "/kb/**/users/u1/**", "/kb/quest-*.md", "/kb/**/**"] {
            assert_eq!(shape(other), Shape::Other, "{other}");
        }
        // What a shape says agrees with matching.
        for (p, path) in [("/kb/teams/red/**", "/kb/teams/red"), ("/kb/teams/red/**", "/kb/teams/red/x/y.md")] {
            assert!(matches!(shape(p), Shape::Subtree(s) if path == s || path.starts_with(&format!("{s}/"))));
            assert!(Pattern::new(p).matches(path));
        }
    }

    /// (pattern, path, expected) — tests as data.
    const CASES: &[(&str, &str, bool)] = &[
        ("/kb/teams/red/**", "/kb/teams/red", true),
        ("/kb/teams/red/**", "/kb/teams/red/a/b/c.md", true),
        ("/kb/teams/red/**", "/kb/teams/redx/a.md", false),
        ("/kb/teams/*/public/**", "/kb/teams/blue/public/x.md", true),
        ("/kb/teams/*/public/**", "/kb/teams/blue/private/x.md", false),
        ("/kb/*", "/kb/a.md", true),
        ("/kb/*", "/kb/a/b.md", false),
        ("/kb/quest-*.md", "/kb/quest-first.md", true),
        ("/kb/quest-*.md", "/kb/quests.md", false),
        ("**", "/anything/at/all", true),
        ("**", "/", true),
        ("/**/secret.md", "/a/b/secret.md", true),
        ("/**/secret.md", "/secret.md", true),
        ("/**/secret.md", "/a/b/secret.mdx", false),
        ("/a/**/b/**/c", "/a/x/b/y/z/c", true),
        ("/a/**/b/**/c", "/a/x/y/z/c", false),
        ("kb/x", "/kb/x/", true),
        ("/霧/*", "/霧/カフェ", true),
    ];

    #[test]
    fn table() {
        for (pat, path, want) in CASES {
            assert_eq!(Pattern::new(pat).matches(path), *want, "{pat} vs {path}");
        }
    }
}
