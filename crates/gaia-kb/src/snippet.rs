//! Highlighted snippets of search hits, cut from the notes held in memory.
//!
//! Tokenizing a whole note to find its best fragment is most of a ranked search's cost on long
//! notes (every token lower-cased, folded and looked up). A note longer than [`WHOLE`] is cut first
//! to a window around the first whole-word occurrence of a query word, found with a case-insensitive
//! multi-pattern search over the raw text, and only that window is tokenized. When no occurrence is
//! found that way (a word the text writes with diacritics or in another script than the query), the
//! whole note is used, as before.

use aho_corasick::AhoCorasick;
use std::collections::{BTreeMap, BTreeSet};
use tantivy::query::Query;
use tantivy::schema::Field;
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Score, Searcher, Term};

/// Longest snippet, in characters.
pub(crate) const SNIPPET_CHARS: usize = 200;
/// Notes up to this many bytes are tokenized whole.
const WHOLE: usize = 2048;
/// Bytes kept before and after the first occurrence.
const BEFORE: usize = 256;
const AFTER: usize = 1024;
/// How far a window's edges move to reach whitespace, so that no word is cut in two.
const EDGE: usize = 64;
/// Occurrences looked at to find one that is a whole word.
const TRIES: usize = 64;

/// The snippets of one search's hits.
pub(crate) struct Snippets {
    generator: SnippetGenerator,
    /// The query's words in `field` (when all are ASCII), to find where a long note mentions them.
    finder: Option<AhoCorasick>,
}

/// The largest char boundary of `s` at or before `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary of `s` at or after `i`.
fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

impl Snippets {
    /// Snippets of `field` for hits of `query`, tokenized with `analyzer` (the field's), each word
    /// weighted as tantivy's snippets do (rarer words count more).
    pub(crate) fn new(
        searcher: &Searcher,
        query: &dyn Query,
        field: Field,
        analyzer: TextAnalyzer,
    ) -> tantivy::Result<Snippets> {
        let mut terms: BTreeSet<Term> = BTreeSet::new();
        query.query_terms(&mut |term, _| {
            if term.field() == field {
                terms.insert(term.clone());
            }
        });
        let mut words: BTreeMap<String, Score> = BTreeMap::new();
        for term in &terms {
            let value = term.value();
            let Some(text) = value.as_str() else { continue };
            let doc_freq = searcher.doc_freq(term)?;
            if doc_freq > 0 {
                words.insert(text.to_string(), 1.0 / (1.0 + doc_freq as Score));
            }
        }
        let finder = (!words.is_empty() && words.keys().all(|w| w.is_ascii()))
            .then(|| AhoCorasick::builder().ascii_case_insensitive(true).build(words.keys()).ok())
            .flatten();
        let generator = SnippetGenerator::new(words, analyzer, field, SNIPPET_CHARS);
        Ok(Snippets { generator, finder })
    }

    /// The HTML snippet of `body`: its best fragment with the query's words in `<b>`, or its
    /// beginning when it has none of them; the text is escaped.
    pub(crate) fn cut(&self, body: &str) -> String {
        let snippet = self.generator.snippet(self.window(body));
        if snippet.fragment().trim().is_empty() {
            let start: String = body.chars().take(SNIPPET_CHARS).collect();
            crate::index::escape_html(start.trim())
        } else {
            snippet.to_html()
        }
    }

    /// The part of `body` around the first whole-word occurrence of a query word, or all of it.
    fn window<'b>(&self, body: &'b str) -> &'b str {
        if body.len() <= WHOLE {
            return body;
        }
        let Some(finder) = &self.finder else { return body };
        let in_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        for m in finder.find_iter(body).take(TRIES) {
            if in_word(body[..m.start()].chars().next_back()) || in_word(body[m.end()..].chars().next()) {
                continue;
            }
            let from = floor_boundary(body, m.start().saturating_sub(BEFORE));
            let to = ceil_boundary(body, m.end().saturating_add(AFTER));
            // Widened to whitespace, so that the window starts and ends between words.
            let reach = floor_boundary(body, from.saturating_sub(EDGE));
            let from =
                if from == 0 { 0 } else { body[reach..from].rfind(char::is_whitespace).map_or(from, |i| reach + i) };
            let reach = ceil_boundary(body, to.saturating_add(EDGE));
            let to = body[to..reach].find(char::is_whitespace).map_or(to, |i| to + i);
            return &body[from..to];
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_never_split_a_character() {
        let s = "aé😀b";
        for i in 0..=s.len() + 2 {
            assert!(s.is_char_boundary(floor_boundary(s, i)));
            assert!(s.is_char_boundary(ceil_boundary(s, i)));
        }
    }
}
