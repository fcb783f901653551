//! Parsing of Obsidian-flavoured Markdown: frontmatter, headings, `#tags`, `[[wikilinks]]` and embeds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A heading of a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heading {
    /// 1 for `#`, up to 6.
    pub level: u8,
    /// The heading's text.
    pub text: String,
    /// 1-based line number.
    pub line: usize,
}

/// A `[[wikilink]]` or an `![[embed]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The note linked to, as written (empty for a link inside the same note, `[[#Heading]]`).
    pub target: String,
    /// `#heading` part, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
    /// `#^block` part, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    /// `|alias` part, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Whether this is an embed (`![[...]]`).
    pub embed: bool,
    /// 1-based line number.
    pub line: usize,
}

/// What a note says about itself, parsed from its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParsedNote {
    /// Title: frontmatter `title`, else the first level-1 heading, else the file name without `.md`.
    pub title: String,
    /// Aliases from the frontmatter (`aliases` or `alias`: a list, a scalar, or a comma-separated string).
    pub aliases: Vec<String>,
    /// Tags from the frontmatter and the body, without `#`, in order of first appearance (nested tags
    /// keep their `/`).
    pub tags: Vec<String>,
    /// Headings in order.
    pub headings: Vec<Heading>,
    /// Links and embeds in order.
    pub links: Vec<Link>,
    /// Frontmatter as JSON (an empty object when there is none or it is not a YAML mapping).
    pub frontmatter: Map<String, Value>,
    /// Byte offset where the body starts (after the frontmatter).
    pub body_offset: usize,
}

/// Hex SHA-256 of a document's text: its version, for detecting concurrent edits.
pub fn version_of(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Splits the YAML frontmatter from the text (between a first `---` line and the next `---` or `...`
/// line): `(yaml, body_offset)`; `(None, 0)` when there is none, or when it is never closed.
pub fn split_frontmatter(text: &str) -> (Option<&str>, usize) {
    let start = if text.starts_with("---\n") {
        4
    } else if text.starts_with("---\r\n") {
        5
    } else {
        return (None, 0);
    };
    let mut pos = start;
    for line in text[start..].split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        if trimmed == "---" || trimmed == "..." {
            return (Some(&text[start..pos]), pos + line.len());
        }
        pos += line.len();
    }
    (None, 0)
}

/// Most bytes of a note's YAML frontmatter (between the `---` lines). Larger frontmatter is refused
/// on write and ignored (the note read as plain text) when found in the vault.
pub const MAX_FRONTMATTER_BYTES: usize = 32 * 1024;
/// Most nodes (scalars, lists, mappings) of a frontmatter, every alias counted as a copy of what it
/// refers to: a few nested aliases (a "billion laughs") cannot expand beyond this.
pub const MAX_FRONTMATTER_NODES: usize = 10_000;
/// Most bytes of scalar text of a frontmatter, aliases expanded.
pub const MAX_FRONTMATTER_EXPANDED_BYTES: usize = 256 * 1024;
/// Deepest nesting of lists and mappings in a frontmatter.
pub const MAX_FRONTMATTER_DEPTH: usize = 32;

/// Why a frontmatter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrontmatterError {
    /// Larger than [`MAX_FRONTMATTER_BYTES`].
    #[error("the frontmatter is {0} bytes; the limit is {MAX_FRONTMATTER_BYTES}")]
    TooLarge(usize),
    /// More than [`MAX_FRONTMATTER_NODES`] nodes or [`MAX_FRONTMATTER_EXPANDED_BYTES`] bytes of text
    /// once aliases are expanded.
    #[error(
        "the frontmatter expands to more than {MAX_FRONTMATTER_NODES} values or {MAX_FRONTMATTER_EXPANDED_BYTES} \
         bytes (aliases counted as copies)"
    )]
    TooManyNodes,
    /// Nested deeper than [`MAX_FRONTMATTER_DEPTH`].
    #[error("the frontmatter is nested deeper than {MAX_FRONTMATTER_DEPTH} levels")]
    TooDeep,
    /// Not valid YAML (ignored when reading notes; see [`parse_note`]).
    #[error("the frontmatter is not valid YAML: {0}")]
    Syntax(String),
}

impl FrontmatterError {
    /// Whether the frontmatter exceeds a bound (as opposed to being invalid YAML, which is tolerated).
    pub fn is_over_budget(&self) -> bool {
        !matches!(self, FrontmatterError::Syntax(_))
    }
}

/// A value being built, with what it cost.
struct Built {
    value: Value,
    /// The key it makes when used as a mapping key (scalars only).
    key: Option<String>,
    nodes: usize,
    bytes: usize,
}

/// A list or mapping being built.
enum Frame {
    Seq { items: Vec<Value>, anchor: usize, nodes: usize, bytes: usize },
    Map { map: Map<String, Value>, key: Option<Option<String>>, anchor: usize, nodes: usize, bytes: usize },
}

/// A plain or tagged YAML scalar as JSON, and the key it makes (as `YamlLoader` and JSON would read it).
fn scalar(v: String, style: yaml_rust2::scanner::TScalarStyle, tag: Option<yaml_rust2::parser::Tag>) -> Built {
    use yaml_rust2::scanner::TScalarStyle;
    use yaml_rust2::Yaml;
    let bytes = v.len();
    let y = if style != TScalarStyle::Plain {
        Yaml::String(v)
    } else if let Some(t) = tag.filter(|t| t.handle == "tag:yaml.org,2002:") {
        match t.suffix.as_str() {
            "bool" => match v.as_str() {
                "true" | "True" | "TRUE" => Yaml::Boolean(true),
                "false" | "False" | "FALSE" => Yaml::Boolean(false),
                _ => Yaml::BadValue,
            },
            "int" => v.parse::<i64>().map_or(Yaml::BadValue, Yaml::Integer),
            "float" => Yaml::Real(v),
            "null" => Yaml::Null,
            _ => Yaml::String(v),
        }
    } else {
        Yaml::from_str(&v)
    };
    let key = match &y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    let value = match y {
        Yaml::Real(s) => {
            s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
        }
        Yaml::Integer(i) => Value::from(i),
        Yaml::String(s) => Value::from(s),
        Yaml::Boolean(b) => Value::from(b),
        _ => Value::Null,
    };
    Built { value, key, nodes: 1, bytes }
}

/// Parses a frontmatter (the YAML between the `---` lines) into JSON within the bounds above, reading
/// YAML events one by one: aliases are expanded as copies, each counted against the node and byte
/// budgets, so no input expands beyond them; parsing stops at the first bound exceeded. A document
/// that is not a mapping gives an empty object.
pub fn parse_frontmatter(yaml: &str) -> Result<Map<String, Value>, FrontmatterError> {
    use yaml_rust2::parser::{Event, Parser};
    if yaml.len() > MAX_FRONTMATTER_BYTES {
        return Err(FrontmatterError::TooLarge(yaml.len()));
    }
    let mut parser = Parser::new_from_str(yaml);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Value, Option<String>, usize, usize)> = HashMap::new();
    let (mut total_nodes, mut total_bytes) = (0usize, 0usize);
    let mut root: Option<Value> = None;
    loop {
        let (event, _) = parser.next_token().map_err(|e| FrontmatterError::Syntax(e.to_string()))?;
        let done = match event {
            Event::StreamEnd | Event::DocumentEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart => continue,
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                total_nodes += 1;
                if stack.len() >= MAX_FRONTMATTER_DEPTH {
                    return Err(FrontmatterError::TooDeep);
                }
                if total_nodes > MAX_FRONTMATTER_NODES {
                    return Err(FrontmatterError::TooManyNodes);
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq { items: Vec::new(), anchor, nodes: 1, bytes: 0 }
                } else {
                    Frame::Map { map: Map::new(), key: None, anchor, nodes: 1, bytes: 0 }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor, nodes, bytes) = match stack.pop() {
                    Some(Frame::Seq { items, anchor, nodes, bytes }) => (Value::Array(items), anchor, nodes, bytes),
                    Some(Frame::Map { map, anchor, nodes, bytes, .. }) => (Value::Object(map), anchor, nodes, bytes),
                    None => return Err(FrontmatterError::Syntax("unbalanced collection".into())),
                };
                let built = Built { value, key: None, nodes, bytes };
                if anchor > 0 {
                    anchors.insert(anchor, (built.value.clone(), None, nodes, bytes));
                }
                built
            }
            Event::Scalar(v, style, anchor, tag) => {
                let built = scalar(v, style, tag);
                total_nodes += 1;
                total_bytes += built.bytes;
                if anchor > 0 {
                    anchors.insert(anchor, (built.value.clone(), built.key.clone(), 1, built.bytes));
                }
                built
            }
            Event::Alias(id) => {
                let (value, key, nodes, bytes) = anchors.get(&id).cloned().unwrap_or((Value::Null, None, 1, 0));
                // Counted before the copy is kept: the budget bounds what is built.
                total_nodes += nodes;
                total_bytes += bytes;
                if total_nodes > MAX_FRONTMATTER_NODES || total_bytes > MAX_FRONTMATTER_EXPANDED_BYTES {
                    return Err(FrontmatterError::TooManyNodes);
                }
                Built { value, key, nodes, bytes }
            }
        };
        if total_nodes > MAX_FRONTMATTER_NODES || total_bytes > MAX_FRONTMATTER_EXPANDED_BYTES {
            return Err(FrontmatterError::TooManyNodes);
        }
        let Built { value, key: as_key, nodes: n, bytes: b } = done;
        match stack.last_mut() {
            None => root = Some(value),
            Some(Frame::Seq { items, nodes, bytes, .. }) => {
                items.push(value);
                *nodes += n;
                *bytes += b;
            }
            Some(Frame::Map { map, key, nodes, bytes, .. }) => {
                *nodes += n;
                *bytes += b;
                match key.take() {
                    // This node is a key: a scalar makes a JSON key; others leave their entry out.
                    None => *key = Some(as_key),
                    Some(Some(k)) => {
                        if map.insert(k.clone(), value).is_some() {
                            return Err(FrontmatterError::Syntax(format!("duplicated key {k:?}")));
                        }
                    }
                    Some(None) => {}
                }
            }
        }
    }
    Ok(match root {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    })
}

/// A frontmatter list field in any of Obsidian's forms: a list, a scalar, or a comma-separated string.
fn string_list(v: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |s: &str| {
        for part in s.split(',') {
            let p = part.trim();
            if !p.is_empty() {
                out.push(p.to_string());
            }
        }
    };
    match v {
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => push(s),
                    Value::Number(n) => push(&n.to_string()),
                    _ => {}
                }
            }
        }
        Some(Value::String(s)) => push(s),
        Some(Value::Number(n)) => push(&n.to_string()),
        _ => {}
    }
    out
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '/')
}

/// Adds `tag` unless an equal one (ignoring case) is already there.
fn add_tag(tags: &mut Vec<String>, tag: &str) {
    let tag = tag.trim().trim_start_matches('#').trim_matches('/');
    if tag.is_empty() || tag.chars().all(|c| c.is_ascii_digit() || c == '/') {
        return;
    }
    if !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
        tags.push(tag.to_string());
    }
}

/// Removes inline code spans (`` `x` ``) from a line, keeping its length in spaces so offsets hold.
fn blank_inline_code(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
            out.push(' ');
        } else if in_code {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_link(inner: &str, embed: bool, line: usize) -> Option<Link> {
    // In a table the alias pipe is escaped: `[[Note\|alias]]`.
    let inner = inner.replace("\\|", "|");
    let (target_part, alias) = match inner.split_once('|') {
        Some((t, a)) => (t, Some(a.trim().to_string()).filter(|a| !a.is_empty())),
        None => (inner.as_str(), None),
    };
    let (target, heading, block) = match target_part.split_once('#') {
        Some((t, rest)) => match rest.strip_prefix('^') {
            Some(b) => (t, None, Some(b.trim().to_string())),
            None => (t, Some(rest.trim().to_string()), None),
        },
        // `^` cannot be part of a note name: `[[Note^block]]` is read as `[[Note#^block]]`.
        None => match target_part.split_once('^') {
            Some((t, b)) => (t, None, Some(b.trim().to_string())),
            None => (target_part, None, None),
        },
    };
    let target = target.trim().to_string();
    if target.is_empty() && heading.is_none() && block.is_none() {
        return None;
    }
    Some(Link { target, heading, block, alias, embed, line })
}

/// Adds the `[[wikilinks]]` and `![[embeds]]` of one line (code spans already blanked).
fn scan_wikilinks(line: &str, line_no: usize, links: &mut Vec<Link>) {
    let mut rest = line;
    while let Some(open) = rest.find("[[") {
        let Some(close) = rest[open + 2..].find("]]") else { break };
        let inner = &rest[open + 2..open + 2 + close];
        let embed = open > 0 && rest.as_bytes()[open - 1] == b'!';
        if let Some(link) = parse_link(inner, embed, line_no) {
            links.push(link);
        }
        rest = &rest[open + 2 + close + 2..];
    }
}

/// Adds the Markdown links to notes of one line: `[text](Other%20Note.md#Heading)`, and embeds
/// `![alt](image.png)`. Links with a scheme (`https:`, `mailto:`) are not notes and are skipped.
fn scan_markdown_links(line: &str, line_no: usize, links: &mut Vec<Link>) {
    let mut rest = line;
    while let Some(mid) = rest.find("](") {
        let before = &rest[..mid];
        let after = &rest[mid + 2..];
        let Some(close) = after.find(')') else { break };
        let next = &after[close + 1..];
        let Some(open) = before.rfind('[') else {
            rest = next;
            continue;
        };
        let text = &before[open + 1..];
        let embed = open > 0 && before.as_bytes()[open - 1] == b'!';
        let raw = after[..close].trim();
        // `[text](<Note with spaces.md>)` and an optional `"title"`.
        let raw = raw
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .map_or_else(|| raw.split_once(char::is_whitespace).map_or(raw, |(t, _)| t), |(t, _)| t);
        let has_scheme = raw.split_once(':').is_some_and(|(scheme, _)| {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        });
        if !raw.is_empty() && !has_scheme && !text.contains('[') {
            let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
            if let Some(mut link) = parse_link(&decoded, embed, line_no) {
                link.target = link.target.trim_start_matches("./").to_string();
                link.alias = Some(text.trim().to_string()).filter(|t| !t.is_empty());
                links.push(link);
            }
        }
        rest = next;
    }
}

/// A fence that opens a code block: its character and length (```` ``` ```` or `~~~`, three or more).
fn fence_of(trimmed: &str) -> Option<(char, usize)> {
    let c = trimmed.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let n = trimmed.chars().take_while(|&x| x == c).count();
    (n >= 3).then_some((c, n))
}

/// Checks a note's frontmatter against the bounds ([`MAX_FRONTMATTER_BYTES`],
/// [`MAX_FRONTMATTER_NODES`], [`MAX_FRONTMATTER_EXPANDED_BYTES`], [`MAX_FRONTMATTER_DEPTH`]) before it is
/// saved. Invalid YAML is tolerated (the note's frontmatter is then ignored), as when reading.
pub fn check_frontmatter(text: &str) -> Result<(), FrontmatterError> {
    match split_frontmatter(text).0.map(parse_frontmatter) {
        Some(Err(e)) if e.is_over_budget() => Err(e),
        _ => Ok(()),
    }
}

/// Parses a note. `file_stem` is the fallback title. Never fails: invalid YAML frontmatter is ignored,
/// and a frontmatter over the bounds (see [`check_frontmatter`]) makes the whole note plain text.
pub fn parse_note(text: &str, file_stem: &str) -> ParsedNote {
    parse_note_checked(text, file_stem).0
}

/// [`parse_note`], with why the frontmatter was refused for being over the bounds, if it was.
pub(crate) fn parse_note_checked(text: &str, file_stem: &str) -> (ParsedNote, Option<FrontmatterError>) {
    let (mut yaml, mut body_offset) = split_frontmatter(text);
    let (frontmatter, refused) = match yaml.map(parse_frontmatter) {
        Some(Ok(m)) => (m, None),
        Some(Err(e)) if e.is_over_budget() => {
            // Read as plain text: the frontmatter's lines are part of the body.
            (yaml, body_offset) = (None, 0);
            (Map::new(), Some(e))
        }
        _ => (Map::new(), None),
    };
    let mut tags = Vec::new();
    for t in string_list(frontmatter.get("tags").or_else(|| frontmatter.get("tag"))) {
        // A scalar may also separate tags with spaces.
        for part in t.split_whitespace() {
            add_tag(&mut tags, part);
        }
    }
    let aliases = string_list(frontmatter.get("aliases").or_else(|| frontmatter.get("alias")));

    let body = &text[body_offset..];
    let first_line = text[..body_offset].lines().count();
    let mut headings = Vec::new();
    let mut links = Vec::new();
    // Links in frontmatter properties (`related: "[[Other Note]]"`) are links too, as in Obsidian.
    if let Some(yaml) = yaml {
        for (i, line) in yaml.lines().enumerate() {
            scan_wikilinks(line, i + 2, &mut links);
        }
    }
    let mut fence: Option<(char, usize)> = None;
    for (i, raw_line) in body.lines().enumerate() {
        let line_no = first_line + i + 1;
        let trimmed = raw_line.trim_start();
        if let Some((c, n)) = fence {
            // A fence closes with at least as many of its characters and nothing else.
            if fence_of(trimmed).is_some_and(|(c2, n2)| c2 == c && n2 >= n)
                && trimmed.trim_start_matches(c).trim().is_empty()
            {
                fence = None;
            }
            continue;
        }
        if let Some(f) = fence_of(trimmed) {
            fence = Some(f);
            continue;
        }
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with([' ', '\t']) {
            let text = trimmed[hashes..].trim().trim_end_matches('#').trim().to_string();
            headings.push(Heading { level: hashes as u8, text, line: line_no });
        }
        let line = blank_inline_code(raw_line);
        scan_wikilinks(&line, line_no, &mut links);
        scan_markdown_links(&line, line_no, &mut links);
        // Tags: `#` at the start of the line or after whitespace, followed by a tag character (so a
        // heading's `#` marker is not one, but a `#tag` in a heading's text is).
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        for (k, &(idx, c)) in chars.iter().enumerate() {
            if c != '#' || (k > 0 && !chars[k - 1].1.is_whitespace()) {
                continue;
            }
            let tail = &line[idx + 1..];
            let end = tail.find(|ch: char| !is_tag_char(ch)).unwrap_or(tail.len());
            if end > 0 {
                add_tag(&mut tags, &tail[..end]);
            }
        }
    }
    let title = frontmatter
        .get("title")
        .and_then(|v| match v {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .or_else(|| headings.iter().find(|h| h.level == 1).map(|h| h.text.clone()))
        .unwrap_or_else(|| file_stem.to_string());
    (ParsedNote { title, aliases, tags, headings, links, frontmatter, body_offset }, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontmatter_forms() {
        let n = parse_note("---\ntitle: A\ntags: x, y/z\naliases: One\n---\nbody #y/z #w\n", "a");
        assert_eq!(n.title, "A");
        assert_eq!(n.tags, ["x", "y/z", "w"]);
        assert_eq!(n.aliases, ["One"]);
        let n = parse_note("---\ntags: [a, '#b']\naliases:\n  - P\n  - \"Q R\"\n---\n", "s");
        assert_eq!(n.tags, ["a", "b"]);
        assert_eq!(n.aliases, ["P", "Q R"]);
        assert_eq!(n.title, "s");
        let n = parse_note("---\naliases: \"P, Q\"\ntags: solo\n---\n# Head\n", "s");
        assert_eq!(n.aliases, ["P", "Q"]);
        assert_eq!(n.tags, ["solo"]);
        assert_eq!(n.title, "Head");
    }

    #[test]
    fn bad_frontmatter_is_ignored_not_fatal() {
        let n = parse_note("---\n: : [\n---\n# T\n", "s");
        assert_eq!(n.title, "T");
        assert!(n.frontmatter.is_empty());
        let n = parse_note("---\nno end\n# T\n", "s");
        assert_eq!(n.body_offset, 0);
    }

    #[test]
    fn links_and_embeds() {
        let n = parse_note("[[A/B|alias]] [[C#Head]] [[D#^blk]] ![[E#Fog]] [[#Local]] `[[code]]`\n", "x");
        let l = &n.links;
        assert_eq!(l.len(), 5);
        assert_eq!((l[0].target.as_str(), l[0].alias.as_deref()), ("A/B", Some("alias")));
        assert_eq!(l[1].heading.as_deref(), Some("Head"));
        assert_eq!(l[2].block.as_deref(), Some("blk"));
        assert!(l[3].embed && !l[0].embed);
        assert_eq!((l[4].target.as_str(), l[4].heading.as_deref()), ("", Some("Local")));
    }

    #[test]
    fn tags_skip_code_headings_and_urls() {
        let text = "# Title\n#real http://x.org/#frag `#code` a#b\n```\n#fenced\n```\n#2024 #a/b-c\n";
        let n = parse_note(text, "x");
        assert_eq!(n.tags, ["real", "a/b-c"]);
        assert_eq!(n.headings.len(), 1);
    }

    #[test]
    fn markdown_links_fences_and_odd_forms() {
        let text = "[a](<My Note.md> \"t\") ![i](pic%201.png \"title\") [w](https://x.y/#f) [m](mailto:a@b) \
                    [h](#Local) [[T\\|al]] [[N^b]] [](Empty.md)\n~~~~\n[[In]] #in\n~~~\n#still\n~~~~\n#out\n```\nnever closed [[X]]\n";
        let n = parse_note(text, "x");
        let targets: Vec<_> = n.links.iter().map(|l| (l.target.as_str(), l.embed)).collect();
        assert_eq!(
            targets,
            [("T", false), ("N", false), ("My Note.md", false), ("pic 1.png", true), ("", false), ("Empty.md", false)]
        );
        assert_eq!(n.links[0].alias.as_deref(), Some("al"));
        assert_eq!(n.links[1].block.as_deref(), Some("b"));
        assert_eq!(n.links[2].alias.as_deref(), Some("a"));
        assert_eq!(n.links[4].heading.as_deref(), Some("Local"));
        assert_eq!(n.links[5].alias, None);
        assert_eq!(n.tags, ["out"]);
    }

    /// `levels` nested lists of nine aliases to the level below (9^levels values once expanded).
    fn laughs(levels: usize) -> String {
        let mut s = String::from("a0: &a0 [x,x,x,x,x,x,x,x,x]\n");
        for i in 1..levels {
            s += &format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(","));
        }
        s
    }

    #[test]
    fn alias_expansion_is_bounded() {
        for levels in [6, 9, 12] {
            let yaml = laughs(levels);
            assert_eq!(parse_frontmatter(&yaml), Err(FrontmatterError::TooManyNodes), "{levels}");
            let note = format!("---\n{yaml}---\n# Laughs\nbody #t [[L]]\n");
            assert!(check_frontmatter(&note).is_err());
            let (n, refused) = parse_note_checked(&note, "s");
            assert_eq!(refused, Some(FrontmatterError::TooManyNodes));
            // Plain text: no frontmatter, the body from the start.
            assert!(n.frontmatter.is_empty());
            assert_eq!((n.title.as_str(), n.body_offset, n.tags.as_slice()), ("Laughs", 0, &["t".to_string()][..]));
            assert_eq!(n.links.len(), 1);
        }
        // Three levels (729 values) are fine, and expand as copies.
        let m = parse_frontmatter(&laughs(3)).unwrap();
        assert_eq!(m["a2"].as_array().unwrap().len(), 9);
        assert_eq!(m["a2"][8][8][8], "x");
        // Long text copied by aliases counts by its bytes.
        let big = format!("a: &a \"{}\"\nb: [{}]\n", "y".repeat(20_000), vec!["*a"; 20].join(","));
        assert_eq!(parse_frontmatter(&big), Err(FrontmatterError::TooManyNodes));
    }

    #[test]
    fn frontmatter_size_and_depth_are_bounded() {
        let deep = format!("k: {}x{}\n", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse_frontmatter(&deep), Err(FrontmatterError::TooDeep));
        let ok = format!("k: {}x{}\n", "[".repeat(20), "]".repeat(20));
        assert!(parse_frontmatter(&ok).is_ok());
        let long = format!("k: \"{}\"\n", "z".repeat(MAX_FRONTMATTER_BYTES));
        assert_eq!(parse_frontmatter(&long), Err(FrontmatterError::TooLarge(long.len())));
        assert!(check_frontmatter(&format!("---\n{long}---\n")).is_err());
        // Invalid YAML is tolerated, as before (the frontmatter is ignored).
        assert!(check_frontmatter("---\n: : [\n---\n").is_ok());
        assert!(check_frontmatter("---\na: 1\na: 2\n---\n").is_ok());
        assert!(parse_note("---\na: 1\na: 2\n---\n", "s").frontmatter.is_empty());
    }

    #[test]
    fn frontmatter_values_read_as_before() {
        let m = parse_frontmatter(
            "title: T\nn: 3\nf: 1.5\nb: true\nnull: ~\n1: one\nq: '7'\n[x]: skipped\nt: !!str 12\nl: {a: [1, b]}\nr: &r z\ns: *r\n",
        )
        .unwrap();
        let want = serde_json::json!({"title": "T", "n": 3, "f": 1.5, "b": true, "1": "one", "q": "7",
            "t": "12", "l": {"a": [1, "b"]}, "r": "z", "s": "z"});
        assert_eq!(Value::Object(m), want);
        assert!(parse_frontmatter("- a\n- b\n").unwrap().is_empty());
        assert!(parse_frontmatter("").unwrap().is_empty());
    }
}
