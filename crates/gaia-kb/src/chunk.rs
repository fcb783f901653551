//! Notes cut into the pieces semantic search embeds: one chunk per section (the text under a heading,
//! down to the next heading of any level), long sections cut at paragraph ends. Each chunk's text
//! starts with the note's title, its path and the headings above the section, so a chunk says what it
//! is about even when its own words do not. A chunk is known by the SHA-256 of that text: a note
//! edited in one section gets new vectors for that section only.

use crate::document::Document;

/// Longest section text in a chunk, in characters, before it is cut at a paragraph end (or, with no
/// paragraph end, at this length).
pub(crate) const MAX_CHUNK_CHARS: usize = 2000;

/// Most chunks of one note (the rest of a very long note is not embedded).
pub(crate) const MAX_CHUNKS_PER_NOTE: usize = 256;

/// One piece of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The headings above the section, outermost first, joined with ` > ` (empty before the first).
    pub heading: String,
    /// The section's own text.
    pub section: String,
    /// What is embedded: title, path, headings, then the section.
    pub text: String,
    /// [`gaia_core::vectors::content_hash`] of `text`.
    pub hash: String,
}

fn heading_of(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim()))
}

/// Cuts `text` into pieces of at most [`MAX_CHUNK_CHARS`] characters, at paragraph ends when it can.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_chars = 0;
    for para in text.split("\n\n") {
        let para = para.trim_matches('\n');
        if para.trim().is_empty() {
            continue;
        }
        let n = para.chars().count();
        if cur_chars > 0 && cur_chars + 2 + n > MAX_CHUNK_CHARS {
            out.push(std::mem::take(&mut cur));
            cur_chars = 0;
        }
        if n > MAX_CHUNK_CHARS {
            // A paragraph longer than a chunk: cut by characters.
            let chars: Vec<char> = para.chars().collect();
            for part in chars.chunks(MAX_CHUNK_CHARS) {
                out.push(part.iter().collect());
            }
            continue;
        }
        if cur_chars > 0 {
            cur.push_str("\n\n");
            cur_chars += 2;
        }
        cur.push_str(para);
        cur_chars += n;
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// The chunks of a note, in order (at most [`MAX_CHUNKS_PER_NOTE`]). A note with no text under any
/// heading gives one chunk of its title and headings, so that it can still be found by them.
pub(crate) fn chunks(doc: &Document) -> Vec<Chunk> {
    let title = doc.note.title.as_str();
    let path = doc.path.as_str();
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut current = String::new();
    let mut fence: Option<&str> = None;
    let joined = |stack: &[(usize, String)]| stack.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>().join(" > ");
    for line in doc.body().lines() {
        let trimmed = line.trim_start();
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
            }
        } else if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
        } else if let Some((level, text)) = heading_of(line) {
            sections.push((joined(&stack), std::mem::take(&mut current)));
            while stack.last().is_some_and(|(l, _)| *l >= level) {
                stack.pop();
            }
            stack.push((level, text.to_string()));
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    sections.push((joined(&stack), current));
    let mut out = Vec::new();
    for (heading, section) in sections {
        for piece in pieces(&section) {
            if out.len() == MAX_CHUNKS_PER_NOTE {
                return out;
            }
            out.push(make(title, path, heading.clone(), piece));
        }
    }
    if out.is_empty() {
        let headings: Vec<&str> = doc.note.headings.iter().map(|h| h.text.as_str()).collect();
        out.push(make(title, path, String::new(), headings.join("\n")));
    }
    out
}

fn make(title: &str, path: &str, heading: String, section: String) -> Chunk {
    let mut text = format!("{title}\n{path}");
    if !heading.is_empty() {
        text.push('\n');
        text.push_str(&heading);
    }
    text.push_str("\n\n");
    text.push_str(&section);
    let hash = gaia_core::vectors::content_hash(&text);
    Chunk { heading, section, text, hash }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::VaultPath;

    fn doc(path: &str, content: &str) -> Document {
        Document::new(VaultPath::parse(path).unwrap(), content.to_string(), None)
    }

    #[test]
    fn notes_are_cut_along_headings_with_their_context() {
        let d = doc(
            "Lore/Fog.md",
            "---\ntags: [weather]\n---\nIntro line.\n\n# Causes\nSea air.\n## At night\nColder.\n```\n# not a heading\n```\n# Effects\nSlow zombies.\n",
        );
        let c = chunks(&d);
        let heads: Vec<&str> = c.iter().map(|c| c.heading.as_str()).collect();
        assert_eq!(heads, ["", "Causes", "Causes > At night", "Effects"]);
        assert!(c[2].section.contains("# not a heading"), "a fenced # is text: {:?}", c[2].section);
        assert_eq!(c[3].text, format!("{}\nLore/Fog.md\nEffects\n\nSlow zombies.", d.note.title));
        // Editing one section changes that chunk's hash only.
        let e = doc("Lore/Fog.md", &d.content.replace("Slow zombies.", "Fast zombies."));
        let (a, b): (Vec<_>, Vec<_>) =
            (c.iter().map(|c| &c.hash).collect(), chunks(&e).iter().map(|c| c.hash.clone()).collect());
        assert_eq!(
            a[..3].iter().map(|h| h.as_str()).collect::<Vec<_>>(),
            b[..3].iter().map(|h| h.as_str()).collect::<Vec<_>>()
        );
        assert_ne!(a[3], &b[3]);
    }

    #[test]
    fn long_sections_are_cut_and_empty_notes_still_have_a_chunk() {
        let para = "word ".repeat(300); // 1,500 characters
        let d = doc("Long.md", &format!("# A\n{para}\n\n{para}\n\n{}\n", "x".repeat(4500)));
        let c = chunks(&d);
        assert!(c.len() >= 4, "{}", c.len());
        assert!(c.iter().all(|c| c.section.chars().count() <= MAX_CHUNK_CHARS));
        let e = chunks(&doc("Empty.md", "# Only\n## Headings\n"));
        assert_eq!(e.len(), 1);
        assert!(e[0].text.contains("Only\nHeadings"));
        let many = (0..400).map(|i| format!("# H{i}\ntext {i}\n")).collect::<String>();
        assert_eq!(chunks(&doc("Many.md", &many)).len(), MAX_CHUNKS_PER_NOTE);
    }
}
