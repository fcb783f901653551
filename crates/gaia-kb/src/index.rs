//! The full-text index (tantivy): BM25 over title, aliases, tags, headings and body, with phrase and
//! prefix queries, folder and tag filters, highlighted snippets, and incremental updates.

use crate::document::Document;
use crate::error::{KbError, Result};
use crate::query::{parse_query, Clause, ParsedQuery};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tantivy::collector::TopDocs;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RegexQuery,
    TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Name of the analyzer in the schema; changing how text is tokenised needs a new name, so that an
/// index written by an older version is rebuilt (see [`SearchIndex::open`]).
const TOKENIZER: &str = "gaia_words_cjk";
/// Memory the index writer may fill before it writes a segment (shared by its threads, at least
/// 15 MB each): more makes a full build faster (fewer segments to merge), and is held only while
/// documents are indexed.
const WRITER_BUDGET: usize = 64_000_000;
/// Most results one search returns.
pub const MAX_LIMIT: usize = 100;

/// A search request.
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// The query (see [`crate::query`] for its language).
    pub query: String,
    /// Most results (default 10, at most [`MAX_LIMIT`]).
    pub limit: usize,
    /// Results to skip (paging).
    pub offset: usize,
    /// Only documents under this folder (recursively).
    pub folder: Option<String>,
    /// Only documents with all of these tags (a tag matches its nested tags: `npc` matches `npc/medical`).
    pub tags: Vec<String>,
    /// Only these documents (vault paths).
    pub paths: Option<Vec<String>>,
    /// Match any of the query's words, not all (documents matching more, and rarer, words rank
    /// higher): the BM25 side of hybrid search.
    pub any_word: bool,
    /// Leave the snippets out (hits' `snippet` empty): for callers that only rank.
    pub no_snippets: bool,
}

/// The documents a restricted search may return: those carrying one of `terms` (access terms, see
/// [`crate::access`]) or at one of `paths` (vault paths).
pub(crate) struct Readable<'a> {
    pub(crate) terms: &'a [String],
    pub(crate) paths: Vec<String>,
}

/// One search result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SearchHit {
    /// Vault path of the document.
    pub path: String,
    /// Document title.
    pub title: String,
    /// BM25 score (higher is better).
    pub score: f32,
    /// An excerpt of the body around the matches, HTML-escaped, matches wrapped in `<b>…</b>`.
    pub snippet: String,
}

/// Search results.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SearchResults {
    /// Number of matching documents (all pages).
    pub total: usize,
    /// The requested page of results, best first.
    pub hits: Vec<SearchHit>,
}

#[derive(Clone, Copy)]
struct Fields {
    path: Field,
    folder: Field,
    tag: Field,
    title: Field,
    aliases: Field,
    tags_text: Field,
    headings: Field,
    body: Field,
    version: Field,
    /// Access terms (see [`crate::access`]): the document's access path and its subtrees.
    access: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(TOKENIZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = TextOptions::default().set_indexing_options(indexing);
    let fields = Fields {
        path: b.add_text_field("path", STRING | STORED),
        folder: b.add_text_field("folder", STRING),
        tag: b.add_text_field("tag", STRING),
        title: b.add_text_field("title", text.clone().set_stored()),
        aliases: b.add_text_field("aliases", text.clone()),
        tags_text: b.add_text_field("tags_text", text.clone()),
        headings: b.add_text_field("headings", text.clone()),
        // Not stored: snippets are cut from the documents the knowledge base holds in memory.
        body: b.add_text_field("body", text),
        version: b.add_text_field("version", STRING | STORED),
        access: b.add_text_field("access", STRING),
    };
    (b.build(), fields)
}

/// Whether `c` is written without spaces between words (Chinese, Japanese): each such character is
/// a token of its own, and a query word made of several is matched as a phrase of them.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF // Hiragana, Katakana
        | 0x31F0..=0x31FF // Katakana phonetic extensions
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xF900..=0xFAFF // CJK compatibility ideographs
        | 0xFF66..=0xFF9D // Half-width Katakana
        | 0x20000..=0x3134F // CJK extensions B to G
    )
}

/// Whether `c` is a pictograph (emoji and similar symbols): a token of its own, so that `🐉` is
/// searchable.
fn is_pictograph(c: char) -> bool {
    matches!(c as u32, 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x1F000..=0x1FAFF)
}

/// Splits text into words (runs of letters and digits), single CJK characters and single
/// pictographs; everything else separates tokens.
#[derive(Clone, Default)]
struct WordTokenizer {
    token: Token,
}

struct WordTokenStream<'a> {
    text: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    token: &'a mut Token,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordTokenStream<'a>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordTokenStream<'a> {
        self.token.reset();
        WordTokenStream { text, chars: text.char_indices().peekable(), token: &mut self.token }
    }
}

impl TokenStream for WordTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.token.text.clear();
        self.token.position = self.token.position.wrapping_add(1);
        while let Some((from, c)) = self.chars.next() {
            let to = if is_cjk(c) || is_pictograph(c) {
                from + c.len_utf8()
            } else if c.is_alphanumeric() {
                let mut to = from + c.len_utf8();
                while let Some(&(i, n)) = self.chars.peek() {
                    if !n.is_alphanumeric() || is_cjk(n) {
                        break;
                    }
                    to = i + n.len_utf8();
                    self.chars.next();
                }
                to
            } else {
                continue;
            };
            self.token.offset_from = from;
            self.token.offset_to = to;
            self.token.text.push_str(&self.text[from..to]);
            return true;
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The terms the index makes of `text`: lower-cased words with diacritics folded (`Über` → `uber`),
/// single CJK characters and pictographs.
pub fn analyze(text: &str) -> Vec<String> {
    let mut a = analyzer();
    let mut stream = a.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// The full-text index of one vault.
pub struct SearchIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    dir: Option<PathBuf>,
    /// Path → version of what the index holds; read from the index once, then kept up to date by
    /// [`SearchIndex::apply`] and [`SearchIndex::rebuild`].
    versions: Mutex<Option<HashMap<String, String>>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Lower-cased tag and all its ancestors: `a/b/c` → `a`, `a/b`, `a/b/c`.
fn tag_prefixes(tag: &str) -> Vec<String> {
    let tag = tag.to_lowercase();
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in tag.split('/').filter(|p| !p.is_empty()) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        out.push(acc.clone());
    }
    out
}

/// The folder and its ancestors: `a/b` → `a`, `a/b`; the root is `""`.
fn folder_prefixes(folder: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut acc = String::new();
    for part in folder.split('/').filter(|p| !p.is_empty()) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        out.push(acc.clone());
    }
    out
}

/// Escapes text for HTML.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl SearchIndex {
    /// Opens the index kept in `dir` (created if missing, rebuilt empty if unreadable or of an older
    /// schema), or a new in-memory index when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> Result<SearchIndex> {
        let (schema, fields) = schema();
        let index = match dir {
            None => Index::create_in_ram(schema),
            Some(d) => {
                std::fs::create_dir_all(d)?;
                let existing = Index::open_in_dir(d).ok().filter(|i| i.schema() == schema);
                match existing {
                    Some(i) => i,
                    None => {
                        for entry in std::fs::read_dir(d)? {
                            let p = entry?.path();
                            if p.is_file() {
                                std::fs::remove_file(p)?;
                            }
                        }
                        Index::create_in_dir(d, schema)?
                    }
                }
            }
        };
        index.tokenizers().register(TOKENIZER, analyzer());
        let writer = index.writer(WRITER_BUDGET)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(SearchIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
            dir: dir.map(Path::to_path_buf),
            versions: Mutex::new(None),
        })
    }

    fn to_tantivy(&self, d: &Document) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.path, d.path.as_str());
        for t in crate::access::index_terms(d.path.as_str()) {
            doc.add_text(f.access, &t);
        }
        for p in folder_prefixes(&d.folder()) {
            doc.add_text(f.folder, &p);
        }
        for t in &d.note.tags {
            for p in tag_prefixes(t) {
                doc.add_text(f.tag, &p);
            }
        }
        doc.add_text(f.title, &d.note.title);
        // The file name is searchable like an alias (titles may differ from it).
        doc.add_text(f.aliases, d.stem());
        for a in &d.note.aliases {
            doc.add_text(f.aliases, a);
        }
        doc.add_text(f.tags_text, d.note.tags.join(" "));
        for h in &d.note.headings {
            doc.add_text(f.headings, &h.text);
        }
        doc.add_text(f.body, d.body());
        doc.add_text(f.version, &d.version);
        doc
    }

    /// Adds or replaces `upserts` and removes `deletes` (vault paths), then commits and makes the
    /// change visible to searches.
    pub fn apply<'a>(&self, upserts: impl IntoIterator<Item = &'a Document>, deletes: &[String]) -> Result<()> {
        let mut w = self.writer.lock().map_err(|_| KbError::Index("index writer poisoned".into()))?;
        let mut versions = self.versions.lock().map_err(|_| KbError::Index("index versions poisoned".into()))?;
        // Invalidated first: if the commit fails, the next call re-reads what the index holds.
        let mut known = versions.take();
        for p in deletes {
            w.delete_term(Term::from_field_text(self.fields.path, p));
            if let Some(k) = known.as_mut() {
                k.remove(p);
            }
        }
        for d in upserts {
            w.delete_term(Term::from_field_text(self.fields.path, d.path.as_str()));
            w.add_document(self.to_tantivy(d))?;
            if let Some(k) = known.as_mut() {
                k.insert(d.path.as_str().to_string(), d.version.clone());
            }
        }
        w.commit()?;
        drop(w);
        self.reader.reload()?;
        *versions = known;
        Ok(())
    }

    /// Replaces the whole index with `docs`.
    pub fn rebuild<'a>(&self, docs: impl IntoIterator<Item = &'a Document>) -> Result<()> {
        let mut w = self.writer.lock().map_err(|_| KbError::Index("index writer poisoned".into()))?;
        let mut versions = self.versions.lock().map_err(|_| KbError::Index("index versions poisoned".into()))?;
        versions.take();
        w.delete_all_documents()?;
        let mut known = HashMap::new();
        for d in docs {
            w.add_document(self.to_tantivy(d))?;
            known.insert(d.path.as_str().to_string(), d.version.clone());
        }
        w.commit()?;
        drop(w);
        self.reader.reload()?;
        *versions = Some(known);
        Ok(())
    }

    /// Path → version of every indexed document (to find what changed since the index was written).
    pub fn indexed_versions(&self) -> Result<HashMap<String, String>> {
        let mut versions = self.versions.lock().map_err(|_| KbError::Index("index versions poisoned".into()))?;
        if let Some(v) = versions.as_ref() {
            return Ok(v.clone());
        }
        let v = self.read_versions()?;
        *versions = Some(v.clone());
        Ok(v)
    }

    fn read_versions(&self) -> Result<HashMap<String, String>> {
        let searcher = self.reader.searcher();
        let n = searcher.num_docs() as usize;
        let mut out = HashMap::with_capacity(n);
        if n == 0 {
            return Ok(out);
        }
        for (_, addr) in searcher.search(&AllQuery, &TopDocs::with_limit(n).order_by_score())? {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let get = |f: Field| doc.get_first(f).and_then(|v| v.as_str()).map(str::to_string);
            if let (Some(p), Some(v)) = (get(self.fields.path), get(self.fields.version)) {
                out.insert(p, v);
            }
        }
        Ok(out)
    }

    /// Number of indexed documents.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Bytes used by the index.
    pub fn size_bytes(&self) -> u64 {
        self.reader.searcher().space_usage().map(|u| u.total().get_bytes()).unwrap_or(0)
    }

    fn tokens(&self, text: &str) -> Vec<String> {
        analyze(text)
    }

    /// The query for one clause on one field, or `None` when the clause has no terms.
    fn clause_on_field(&self, clause: &Clause, field: Field) -> Result<Option<Box<dyn Query>>> {
        let (text, prefix) = match clause {
            Clause::Word(w) => (w.as_str(), false),
            Clause::Phrase { text, prefix } => (text.as_str(), *prefix),
            Clause::Prefix(p) => (p.as_str(), true),
        };
        let toks = self.tokens(text);
        let terms: Vec<Term> = toks.iter().map(|t| Term::from_field_text(field, t)).collect();
        Ok(match (terms.len(), prefix) {
            (0, _) => None,
            (1, false) => Some(Box::new(TermQuery::new(terms[0].clone(), IndexRecordOption::WithFreqs))),
            (1, true) => {
                let pattern = format!("{}.*", regex::escape(&toks[0]));
                Some(Box::new(RegexQuery::from_pattern(&pattern, field)?))
            }
            (_, false) => Some(Box::new(PhraseQuery::new(terms))),
            (_, true) => Some(Box::new(PhrasePrefixQuery::new(terms))),
        })
    }

    /// A clause matched on any text field, weighted by field.
    fn clause_query(&self, clause: &Clause) -> Result<Option<Box<dyn Query>>> {
        let f = &self.fields;
        let weighted = [(f.title, 4.0), (f.aliases, 3.0), (f.tags_text, 2.0), (f.headings, 2.0), (f.body, 1.0)];
        let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (field, boost) in weighted {
            if let Some(q) = self.clause_on_field(clause, field)? {
                parts.push((Occur::Should, Box::new(BoostQuery::new(q, boost))));
            }
        }
        Ok((!parts.is_empty()).then(|| Box::new(BooleanQuery::new(parts)) as Box<dyn Query>))
    }

    /// The query for a search, or `None` when it cannot match anything (its words have nothing
    /// searchable in them, such as `!!!`).
    fn build_query(
        &self,
        parsed: &ParsedQuery,
        opts: &SearchOptions,
        readable: Option<&Readable<'_>>,
    ) -> Result<Option<Box<dyn Query>>> {
        let f = &self.fields;
        let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut positive = false;
        let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for c in &parsed.must {
            if let Some(q) = self.clause_query(c)? {
                if opts.any_word {
                    any.push((Occur::Should, q));
                } else {
                    parts.push((Occur::Must, q));
                }
                positive = true;
            }
        }
        if !any.is_empty() {
            parts.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if !positive && !parsed.must.is_empty() {
            return Ok(None);
        }
        for c in &parsed.must_not {
            if let Some(q) = self.clause_query(c)? {
                parts.push((Occur::MustNot, q));
            }
        }
        let folders = parsed.folders.iter().chain(opts.folder.iter());
        for folder in folders {
            let folder = folder.trim().trim_matches('/');
            if folder.is_empty() || folder == "." {
                continue;
            }
            let folder = crate::path::VaultPath::parse(folder)?.as_str().to_string();
            let term = Term::from_field_text(f.folder, &folder);
            parts.push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
        }
        for tag in parsed.tags.iter().chain(opts.tags.iter()) {
            let tag = tag.trim().trim_start_matches('#').trim_matches('/').to_lowercase();
            let term = Term::from_field_text(f.tag, &tag);
            parts.push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
        }
        if let Some(paths) = &opts.paths {
            let terms = paths.iter().map(|p| Term::from_field_text(f.path, p));
            parts.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
        }
        if let Some(r) = readable {
            let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            // A few terms (a caller's areas and shares) are seeked through as posting lists; many
            // (a caller with many shares) are gathered into one set first.
            if r.terms.len() <= 16 {
                for t in r.terms {
                    let q = TermQuery::new(Term::from_field_text(f.access, t), IndexRecordOption::Basic);
                    any.push((Occur::Should, Box::new(q)));
                }
            } else {
                let terms = r.terms.iter().map(|t| Term::from_field_text(f.access, t));
                any.push((Occur::Should, Box::new(TermSetQuery::new(terms))));
            }
            if !r.paths.is_empty() {
                let terms = r.paths.iter().map(|p| Term::from_field_text(f.path, p));
                any.push((Occur::Should, Box::new(TermSetQuery::new(terms))));
            }
            if any.is_empty() {
                return Ok(None);
            }
            // A filter: it must not change the ranking.
            parts.push((Occur::Must, Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(any)), 0.0))));
        }
        if !positive {
            parts.push((Occur::Must, Box::new(AllQuery)));
        }
        Ok(Some(Box::new(BooleanQuery::new(parts))))
    }

    /// Runs a search among the documents `readable` names (all when `None`); `body` gives the text of
    /// a document (by vault path) to cut its snippet from.
    pub(crate) fn search<'d>(
        &self,
        opts: &SearchOptions,
        readable: Option<&Readable<'_>>,
        body: &dyn Fn(&str) -> Option<&'d str>,
    ) -> Result<SearchResults> {
        let parsed = parse_query(&opts.query);
        if parsed.must.is_empty() && opts.folder.is_none() && opts.tags.is_empty() && parsed.is_empty() {
            return Err(KbError::InvalidInput("the search query is empty".into()));
        }
        let Some(query) = self.build_query(&parsed, opts, readable)? else {
            return Ok(SearchResults { total: 0, hits: Vec::new() });
        };
        let limit = if opts.limit == 0 { 10 } else { opts.limit.min(MAX_LIMIT) };
        let searcher = self.reader.searcher();
        // Past the last document there is nothing to page through (and a huge offset must not
        // make the collector reserve room for it).
        let offset = opts.offset.min(searcher.num_docs() as usize);
        // Counted apart from the ranking: a count alone needs no scores, and the top documents
        // alone can skip blocks that cannot reach them (block-max WAND), where together every
        // matching document would be scored.
        let top = searcher.search(&*query, &TopDocs::with_limit(limit).and_offset(offset).order_by_score())?;
        let total = query.count(&searcher)?;
        let snippets = if opts.no_snippets {
            None
        } else {
            Some(crate::snippet::Snippets::new(&searcher, &*query, self.fields.body, analyzer())?)
        };
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let text = |f: Field| doc.get_first(f).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let path = text(self.fields.path);
            let snippet = snippets.as_ref().map(|s| s.cut(body(&path).unwrap_or_default())).unwrap_or_default();
            hits.push(SearchHit { path, title: text(self.fields.title), score, snippet });
        }
        Ok(SearchResults { total, hits })
    }
}
