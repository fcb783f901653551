//! The search query language: words (all must match), `"phrases"`, `prefix*`, `"phrase prefix"*`,
//! `-excluded` words, and the filters `tag:NAME` and `folder:PATH`.

/// One searchable part of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Clause {
    /// A word (may tokenise into several terms, then matched as a phrase).
    Word(String),
    /// Words that must appear in this order; `prefix` when the last one may be a prefix (`"big ba"*`).
    Phrase {
        /// The phrase text.
        text: String,
        /// Whether the last word is a prefix.
        prefix: bool,
    },
    /// A word prefix (`drag*`).
    Prefix(String),
}

/// A query split into clauses and filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    /// Clauses every result must match.
    pub must: Vec<Clause>,
    /// Clauses no result may match.
    pub must_not: Vec<Clause>,
    /// `tag:` filters (without `#`).
    pub tags: Vec<String>,
    /// `folder:` filters.
    pub folders: Vec<String>,
}

impl ParsedQuery {
    /// Whether the query has nothing to match or filter on.
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.must_not.is_empty() && self.tags.is_empty() && self.folders.is_empty()
    }
}

/// Parses a query string. Never fails: unbalanced quotes end at the end of the text.
pub fn parse_query(q: &str) -> ParsedQuery {
    let mut out = ParsedQuery::default();
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let negate = chars[i] == '-' && i + 1 < chars.len() && !chars[i + 1].is_whitespace();
        if negate {
            i += 1;
        }
        let clause = if chars[i] == '"' {
            let start = i + 1;
            let mut end = start;
            while end < chars.len() && chars[end] != '"' {
                end += 1;
            }
            let text: String = chars[start..end].iter().collect();
            i = (end + 1).min(chars.len());
            let prefix = i < chars.len() && chars[i] == '*';
            if prefix {
                i += 1;
            }
            if text.trim().is_empty() {
                continue;
            }
            Clause::Phrase { text, prefix }
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if !negate {
                if let Some(tag) = word.strip_prefix("tag:") {
                    let tag = tag.trim_start_matches('#');
                    if !tag.is_empty() {
                        out.tags.push(tag.to_string());
                    }
                    continue;
                }
                if let Some(folder) = word.strip_prefix("folder:") {
                    if !folder.is_empty() {
                        out.folders.push(folder.to_string());
                    }
                    continue;
                }
            }
            match word.strip_suffix('*') {
                Some(p) if !p.is_empty() && !p.ends_with('*') => Clause::Prefix(p.to_string()),
                Some(_) => continue,
                None => Clause::Word(word),
            }
        };
        if negate {
            out.must_not.push(clause);
        } else {
            out.must.push(clause);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let q = parse_query(r#"fog "safe house" drag* "big ba"* -rain tag:#npc folder:Places"#);
        assert_eq!(
            q.must,
            [
                Clause::Word("fog".into()),
                Clause::Phrase { text: "safe house".into(), prefix: false },
                Clause::Prefix("drag".into()),
                Clause::Phrase { text: "big ba".into(), prefix: true },
            ]
        );
        assert_eq!(q.must_not, [Clause::Word("rain".into())]);
        assert_eq!(q.tags, ["npc"]);
        assert_eq!(q.folders, ["Places"]);
    }

    #[test]
    fn odd_input_does_not_fail() {
        assert!(parse_query("").is_empty());
        assert!(parse_query("   \"\"  * ** - ").must.iter().all(|c| matches!(c, Clause::Word(w) if w == "-")));
        assert_eq!(parse_query("\"open").must, [Clause::Phrase { text: "open".into(), prefix: false }]);
    }
}
