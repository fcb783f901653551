//! Tools that let a model use the knowledge base: JSON-schema specs and a dispatcher that the chat
//! tool loop (or any caller) runs. A failing tool returns an error, never a success with an error text.

use crate::error::{KbError, Result};
use crate::index::SearchOptions;
use crate::kb::{GrepOptions, Kb};
use crate::semantic::MeaningMode;
use gaia_core::types::ToolSpec;
use serde::Deserialize;
use serde_json::{json, Value};

/// Names of the knowledge-base tools.
pub const TOOL_NAMES: [&str; 6] = [
    "search_knowledge_base",
    "read_kb_file",
    "list_kb_directory",
    "load_kos_context",
    "search_within_context",
    "synthesize_kb_information",
];

/// The knowledge-base tools over one [`Kb`].
#[derive(Debug, Clone)]
pub struct KbTools {
    kb: Kb,
}

fn spec(name: &str, description: &str, parameters: Value) -> ToolSpec {
    ToolSpec { name: name.to_string(), description: Some(description.to_string()), parameters: parameters.into() }
}

fn args<T: for<'de> Deserialize<'de>>(tool: &str, raw: &str) -> Result<T> {
    let raw = if raw.trim().is_empty() { "{}" } else { raw };
    let invalid = |e: serde_json::Error| KbError::InvalidInput(format!("{tool}: invalid arguments: {e}"));
    let value: Value = serde_json::from_str(raw).map_err(invalid)?;
    if !value.is_object() {
        return Err(KbError::InvalidInput(format!("{tool}: the arguments must be a JSON object")));
    }
    serde_json::from_value(value).map_err(invalid)
}

/// Checks an optional integer argument against the bounds its schema declares.
fn bounded(tool: &str, name: &str, v: Option<usize>, min: usize, max: usize) -> Result<Option<usize>> {
    match v {
        Some(n) if n < min || n > max => {
            Err(KbError::InvalidInput(format!("{tool}: `{name}` must be between {min} and {max}, not {n}")))
        }
        v => Ok(v),
    }
}

/// Checks that a required text argument is not blank.
fn required(tool: &str, name: &str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        return Err(KbError::InvalidInput(format!("{tool}: `{name}` must not be empty")));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    folder: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    case_sensitive: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: String,
    #[serde(default)]
    start_line: Option<usize>,
    #[serde(default)]
    end_line: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    recursive: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextArgs {
    name: String,
    #[serde(default)]
    max_tokens: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithinArgs {
    name: String,
    query: String,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SynthArgs {
    query: String,
    #[serde(default)]
    max_documents: Option<usize>,
    #[serde(default)]
    max_tokens: Option<usize>,
}

impl KbTools {
    /// Tools over `kb`.
    pub fn new(kb: Kb) -> KbTools {
        KbTools { kb }
    }

    /// The tool specifications, to offer to a model (built once; their schemas are shared).
    pub fn specs() -> Vec<ToolSpec> {
        static SPECS: std::sync::OnceLock<Vec<ToolSpec>> = std::sync::OnceLock::new();
        SPECS.get_or_init(Self::build_specs).clone()
    }

    fn build_specs() -> Vec<ToolSpec> {
        vec![
            spec(
                "search_knowledge_base",
                "Search the game's knowledge base (Markdown notes). Ranked full-text search by default: all words \
                 must match; supports \"exact phrases\", prefix*, -excluded, tag:NAME and folder:PATH. mode \
                 'exact' or 'regex' searches the raw text line by line instead; 'semantic' finds the sections \
                 nearest in meaning, 'hybrid' combines both (when the server has an embedding model).",
                json!({"type": "object", "properties": {
                    "query": {"type": "string", "description": "What to look for"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Most results (default 10)"},
                    "folder": {"type": "string", "description": "Only notes under this folder"},
                    "tags": {"type": "array", "items": {"type": "string"}, "description": "Only notes with all these tags"},
                    "mode": {"type": "string", "enum": ["ranked", "exact", "regex", "semantic", "hybrid"], "description": "ranked (default): BM25 with snippets; exact or regex: matching lines of the raw text; semantic: by meaning (the sections nearest the query); hybrid: ranked and semantic together, best for questions in natural language"},
                    "case_sensitive": {"type": "boolean", "description": "exact and regex modes: match case (default false)"}
                }, "required": ["query"], "additionalProperties": false}),
            ),
            spec(
                "read_kb_file",
                "Read a note of the knowledge base by path (e.g. 'Places/Safe House.md') or by name, optionally only \
                 some lines.",
                json!({"type": "object", "properties": {
                    "path": {"type": "string"},
                    "start_line": {"type": "integer", "minimum": 1},
                    "end_line": {"type": "integer", "minimum": 1}
                }, "required": ["path"], "additionalProperties": false}),
            ),
            spec(
                "list_kb_directory",
                "List the folders and notes of a knowledge-base folder (the root when no path is given).",
                json!({"type": "object", "properties": {
                    "path": {"type": "string"},
                    "recursive": {"type": "boolean"}
                }, "additionalProperties": false}),
            ),
            spec(
                "load_kos_context",
                "Load everything the knowledge base knows about a topic (a note and its linked notes, a folder, or a \
                 tag) within a token budget.",
                json!({"type": "object", "properties": {
                    "name": {"type": "string", "description": "A note name, folder or #tag"},
                    "max_tokens": {"type": "integer", "minimum": 100, "maximum": 200000}
                }, "required": ["name"], "additionalProperties": false}),
            ),
            spec(
                "search_within_context",
                "Search only among the notes of a topic's context (see load_kos_context).",
                json!({"type": "object", "properties": {
                    "name": {"type": "string"},
                    "query": {"type": "string"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100}
                }, "required": ["name", "query"], "additionalProperties": false}),
            ),
            spec(
                "synthesize_kb_information",
                "Gather what the knowledge base says about a question: the most relevant sections of the best \
                 matching notes, with their sources, to answer from.",
                json!({"type": "object", "properties": {
                    "query": {"type": "string"},
                    "max_documents": {"type": "integer", "minimum": 1, "maximum": 20},
                    "max_tokens": {"type": "integer", "minimum": 100, "maximum": 50000}
                }, "required": ["query"], "additionalProperties": false}),
            ),
        ]
    }

    /// Runs a tool with its JSON arguments (as the model produced them).
    pub async fn call(&self, name: &str, arguments: &str) -> Result<Value> {
        match name {
            "search_knowledge_base" => {
                let a: SearchArgs = args(name, arguments)?;
                required(name, "query", &a.query)?;
                bounded(name, "limit", a.limit, 1, 100)?;
                match a.mode.as_deref().unwrap_or("ranked") {
                    "ranked" => {
                        let r = self.kb.search(&SearchOptions {
                            query: a.query,
                            limit: a.limit.unwrap_or(10),
                            folder: a.folder,
                            tags: a.tags,
                            ..Default::default()
                        })?;
                        Ok(serde_json::to_value(r).unwrap_or_default())
                    }
                    mode @ ("exact" | "regex") => {
                        let m = self
                            .kb
                            .grep_async(GrepOptions {
                                pattern: a.query,
                                regex: mode == "regex",
                                case_sensitive: a.case_sensitive,
                                folder: a.folder,
                                limit: a.limit.unwrap_or(50),
                            })
                            .await?;
                        Ok(json!({"total": m.len(), "matches": m}))
                    }
                    mode @ ("semantic" | "hybrid") => {
                        let m = if mode == "semantic" { MeaningMode::Semantic } else { MeaningMode::Hybrid };
                        let hits = self.kb.search_by_meaning(m, &a.query, a.limit.unwrap_or(10)).await?;
                        Ok(json!({"total": hits.len(), "mode": mode, "hits": hits}))
                    }
                    other => Err(KbError::InvalidInput(format!(
                        "unknown search mode {other:?} (ranked, exact, regex, semantic, hybrid)"
                    ))),
                }
            }
            "read_kb_file" => {
                let a: ReadArgs = args(name, arguments)?;
                required(name, "path", &a.path)?;
                bounded(name, "start_line", a.start_line, 1, usize::MAX)?;
                bounded(name, "end_line", a.end_line, 1, usize::MAX)?;
                let d = self.kb.read(&a.path).await?;
                let total = d.content.lines().count();
                let (start, end) = (a.start_line.unwrap_or(1).max(1), a.end_line.unwrap_or(total).min(total));
                if start > end.max(1) {
                    return Err(KbError::InvalidInput(format!("lines {start}..{end} are outside 1..{total}")));
                }
                let content = if a.start_line.is_none() && a.end_line.is_none() {
                    d.content.clone()
                } else {
                    d.content.lines().skip(start - 1).take(end + 1 - start).collect::<Vec<_>>().join("\n")
                };
                Ok(json!({"path": d.path, "title": d.note.title, "version": d.version, "tags": d.note.tags,
                          "total_lines": total, "content": content}))
            }
            "list_kb_directory" => {
                let a: ListArgs = args(name, arguments)?;
                let entries = self.kb.list(a.path.as_deref(), a.recursive)?;
                Ok(json!({"path": a.path.unwrap_or_default(), "entries": entries}))
            }
            "load_kos_context" => {
                let a: ContextArgs = args(name, arguments)?;
                required(name, "name", &a.name)?;
                bounded(name, "max_tokens", a.max_tokens, 100, 200_000)?;
                let c = self.kb.context(&a.name, a.max_tokens.unwrap_or(4000))?;
                if c.documents.is_empty() && !c.omitted.is_empty() {
                    return Err(KbError::InvalidInput(format!(
                        "{name}: `max_tokens` {} is too small for any document about {:?}",
                        c.max_tokens, a.name
                    )));
                }
                if c.documents.is_empty() {
                    return Err(KbError::NotFound(format!("nothing in the knowledge base about {:?}", a.name)));
                }
                Ok(serde_json::to_value(c).unwrap_or_default())
            }
            "search_within_context" => {
                let a: WithinArgs = args(name, arguments)?;
                required(name, "name", &a.name)?;
                required(name, "query", &a.query)?;
                bounded(name, "limit", a.limit, 1, 100)?;
                let r = self.kb.search_within_context(&a.name, &a.query, a.limit.unwrap_or(10))?;
                Ok(serde_json::to_value(r).unwrap_or_default())
            }
            "synthesize_kb_information" => {
                let a: SynthArgs = args(name, arguments)?;
                required(name, "query", &a.query)?;
                bounded(name, "max_documents", a.max_documents, 1, 20)?;
                bounded(name, "max_tokens", a.max_tokens, 100, 50_000)?;
                synthesize(&self.kb, &a.query, a.max_documents.unwrap_or(5), a.max_tokens.unwrap_or(3000)).await
            }
            other => Err(KbError::NotFound(format!("no knowledge-base tool named {other:?}"))),
        }
    }
}

/// What the knowledge base says about `query`, to answer from: the best documents for it (ranked
/// search), and in each the sections (split at headings) that contain a word of the query — or, for a
/// document found by its title, alias or tags, its opening section — within `max_tokens` (estimated).
/// Each excerpt keeps its source (document and heading); `digest` puts them together as a Markdown
/// list citing `[[Note]] § Heading`, and `omitted` names the documents left out for lack of budget.
pub async fn synthesize(kb: &Kb, query: &str, max_documents: usize, max_tokens: usize) -> Result<Value> {
    use crate::document::{cut_to_tokens, estimate_tokens};
    use crate::query::Clause;
    let hits = kb.search(&SearchOptions {
        query: query.to_string(),
        limit: max_documents.clamp(1, 20),
        ..Default::default()
    })?;
    // The query's terms as the index sees them (lower-cased, diacritics folded); prefixes apart.
    let (mut words, mut prefixes) = (Vec::new(), Vec::new());
    for c in &crate::query::parse_query(query).must {
        match c {
            Clause::Word(w) => words.extend(crate::index::analyze(w)),
            Clause::Prefix(p) => prefixes.extend(crate::index::analyze(p)),
            Clause::Phrase { text, prefix } => {
                let mut t = crate::index::analyze(text);
                if *prefix {
                    prefixes.extend(t.pop());
                }
                words.extend(t);
            }
        }
    }
    let mentions = |text: &str| {
        crate::index::analyze(text)
            .iter()
            .any(|t| words.contains(t) || prefixes.iter().any(|p| t.starts_with(p.as_str())))
    };
    let mut budget = max_tokens.max(100);
    let mut sources = Vec::new();
    let mut omitted = Vec::new();
    let mut digest = String::new();
    for hit in hits.hits {
        let doc = kb.read(&hit.path).await?;
        // The body split into sections at headings (outside code blocks: the parsed headings).
        let body_start_line = doc.content[..doc.note.body_offset].lines().count() + 1;
        let mut sections: Vec<(String, String)> = vec![(doc.note.title.clone(), String::new())];
        let mut heading_lines = doc.note.headings.iter().map(|h| (h.line, h.text.clone())).peekable();
        for (i, line) in doc.body().lines().enumerate() {
            let line_no = body_start_line + i;
            if let Some((_, text)) = heading_lines.next_if(|(l, _)| *l == line_no) {
                sections.push((text, String::new()));
            } else if let Some(last) = sections.last_mut() {
                last.1.push_str(line);
                last.1.push('\n');
            }
        }
        sections.retain(|(_, text)| !text.trim().is_empty());
        let mut chosen: Vec<&(String, String)> =
            sections.iter().filter(|(heading, text)| mentions(text) || mentions(heading)).collect();
        if chosen.is_empty() {
            // Found by its title, aliases or tags: its opening says what it is.
            chosen.extend(sections.first());
        }
        let mut excerpts = Vec::new();
        for (heading, text) in chosen {
            if budget == 0 {
                break;
            }
            let text = text.trim();
            let cut = cut_to_tokens(text, budget);
            if cut.trim().is_empty() {
                break;
            }
            budget -= estimate_tokens(cut).min(budget);
            let truncated = cut.len() < text.len();
            digest.push_str(&format!(
                "- From [[{}]] § {}: {}{}\n",
                doc.stem(),
                heading,
                cut.trim().replace('\n', " "),
                if truncated { " …" } else { "" }
            ));
            excerpts.push(json!({"heading": heading, "text": cut.trim(), "truncated": truncated}));
        }
        if excerpts.is_empty() {
            omitted.push(hit.path.clone());
            continue;
        }
        sources.push(json!({"path": doc.path, "title": doc.note.title, "score": hit.score, "excerpts": excerpts}));
    }
    if sources.is_empty() {
        return Err(KbError::NotFound(format!("the knowledge base has nothing about {query:?}")));
    }
    Ok(json!({
        "query": query,
        "sources": sources,
        "digest": digest,
        "tokens": max_tokens.max(100) - budget,
        "max_tokens": max_tokens.max(100),
        "omitted": omitted,
    }))
}
