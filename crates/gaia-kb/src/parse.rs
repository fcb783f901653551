//! Parsing of Obsidian-flavoured Markdown: frontmatter, headings, `#tags`, `[[wikilinks]]` and embeds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

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

/// Splits the YAML frontmatter from the text: `(yaml, body_offset)`.
fn split_frontmatter(text: &str) -> (Option<&str>, usize) {
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

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => {
            s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
        }
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::from(s.clone()),
        Yaml::Boolean(b) => Value::from(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Real(s) => s.clone(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                m.insert(key, yaml_to_json(v));
            }
            Value::Object(m)
        }
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
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

/// Parses a note. `file_stem` is the fallback title.
pub fn parse_note(text: &str, file_stem: &str) -> ParsedNote {
    let (yaml, body_offset) = split_frontmatter(text);
    let frontmatter = yaml
        .and_then(|y| yaml_rust2::YamlLoader::load_from_str(y).ok())
        .and_then(|docs| docs.into_iter().next())
        .map(|d| yaml_to_json(&d))
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
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
    ParsedNote { title, aliases, tags, headings, links, frontmatter, body_offset }
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
}
