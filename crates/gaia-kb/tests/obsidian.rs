//! Obsidian conventions, search and tools on a vault written by the test, the way a game writer
//! would: every frontmatter form, tags and links in their odd places, tables, code, accents, CJK and
//! emoji.

use gaia_kb::document::estimate_tokens;
use gaia_kb::{GrepOptions, Kb, KbConfig, KbError, KbTools, SearchOptions};
use serde_json::{json, Value};

const DRAGONS: &str = r##"---
title: Dragons
aliases: Wyrm, Great Serpent
tags: "#creature #lore/ancient"
---
# Dragons

The red dragon sleeps under the mountain. ^lair

## Breath
Fire <script>alert(1)</script> & smoke, "hot" enough to melt 'steel'.
"##;

const JOURNAL: &str = r##"---
aliases: [Session Log]
tags: [journal, "#npc/guard"]
related: "[[Great Serpent]]"
---
# Journal #session/one

Dragon sightings: a dragon, another dragon, dragon dragon dragon near the dragon gate.
The red wyrm hunts at night; a dragon-slayer is hired. #todo and #2024 and #lore/ancient/deep
See [[dragons#Breath|the breath]], [[WYRM]], [[Dragons^lair]] and [[Lore/Dragons#^lair]].
Map: ![[map.png]] and the lair ![[Dragons]].
A [markdown link](../Lore/Dragons.md#Breath) and the [web](https://example.com/page#frag).
Visit http://x.org/page#frag or mail a#b.

| creature | note |
|---|---|
| wyrm | [[Dragons\|the wyrm]] |

```python
# not a heading #notatag
print("[[NotALink]]")
```

````markdown
```
#stillcode [[StillNot]]
````
After the fence, #realtag. The beacon, beacon, beacon! Beacon beacon beacon; beacon beacon beacon beacon.
Inline `#codetag [[CodeLink]]` is code.
"##;

const CAFE: &str = "---\ntitle: Café Lumière\nalias: Lumiere\ntags: place\n---\n# Café Lumière\n\nLe café est \
                    ouvert à l'aube. Crème brûlée for 3 coins.\n";

const TOKYO: &str =
    "---\ntitle: 東京\ntags: [place, 日本]\n---\n# 東京\n\n東京の霧は危険です。霧の日は外に出ないでください。\n\
                     Tokyo fog is deadly.\n";

const EMOJI: &str = "---\ntitle: 🐉 Lair of the Emoji Drake\n---\nA drake 🔥 burns the 🏰 castle.\n";

async fn vault() -> (tempfile::TempDir, Kb) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault");
    for (path, text) in [
        ("Lore/Dragons.md", DRAGONS),
        ("Notes/Journal.md", JOURNAL),
        ("Places/Café Lumière.md", CAFE),
        ("Places/東京.md", TOKYO),
        ("Misc/🐉 Drake.md", EMOJI),
        ("Items/Beacon.md", "# Beacon\nA signal tower on the hill.\n"),
        // Files that are not Markdown, whose names end inside a multi-byte character: skipped by the
        // scan (they once made opening the vault panic).
        ("Images/Lumière", "not a note"),
        ("Misc/naïve", "not a note"),
        ("Misc/東京", "not a note"),
        (
            "Lore/Guards.md",
            "---\ntags: [npc/guard, lore]\n---\n# Guards\nThey fear the red dragon. They drink at [[Café Lumière]] \
             and read [[naïve]] poems.\n",
        ),
    ] {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    let kb = Kb::open(KbConfig { root, sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();
    (dir, kb)
}

fn search(kb: &Kb, q: &str) -> Vec<String> {
    kb.search(&SearchOptions { query: q.into(), limit: 100, ..Default::default() })
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.path)
        .collect()
}

#[tokio::test]
async fn frontmatter_tags_and_aliases_in_every_form() {
    let (_d, kb) = vault().await;
    let dragons = kb.read("Lore/Dragons.md").await.unwrap();
    // A comma string of aliases; a string of `#tags` separated by spaces.
    assert_eq!(dragons.note.aliases, ["Wyrm", "Great Serpent"]);
    assert_eq!(dragons.note.tags, ["creature", "lore/ancient"]);
    let journal = kb.read("Notes/Journal.md").await.unwrap();
    assert_eq!(journal.note.aliases, ["Session Log"]);
    // Frontmatter list (with and without `#`), then inline tags in order: a tag in a heading's text
    // counts, the heading marker, numbers, URLs fragments, `a#b`, code blocks and code spans do not.
    assert_eq!(
        journal.note.tags,
        ["journal", "npc/guard", "session/one", "todo", "lore/ancient/deep", "realtag"],
        "{:?}",
        journal.note.tags
    );
    assert_eq!(journal.note.title, "Journal #session/one", "the first heading, as written");
    // Headings inside code blocks are not headings.
    assert_eq!(journal.note.headings.len(), 1);
    // A scalar `alias`.
    assert_eq!(kb.read("Places/Café Lumière.md").await.unwrap().note.aliases, ["Lumiere"]);
    assert_eq!(kb.read("Lumiere").await.unwrap().note.title, "Café Lumière");
    // Names ending in a multi-byte character, as paths, names and links.
    assert_eq!(kb.read("Places/Café Lumière").await.unwrap().path.as_str(), "Places/Café Lumière.md");
    assert_eq!(kb.read("café lumière").await.unwrap().path.as_str(), "Places/Café Lumière.md");
    assert!(matches!(kb.read("naïve").await, Err(KbError::NotFound(_))));
    let back = kb.backlinks("Places/Café Lumière").unwrap();
    assert_eq!(back.iter().filter_map(|b| b.path.as_deref()).collect::<Vec<_>>(), ["Lore/Guards.md"]);
}

#[tokio::test]
async fn every_link_form_and_backlinks_by_name_or_alias() {
    let (_d, kb) = vault().await;
    let journal = kb.read("Notes/Journal.md").await.unwrap();
    let links: Vec<Value> = journal.note.links.iter().map(|l| serde_json::to_value(l).unwrap()).collect();
    let find = |target: &str| links.iter().filter(|l| l["target"] == target).cloned().collect::<Vec<_>>();
    // A link in a frontmatter property.
    assert_eq!(find("Great Serpent")[0]["line"], 4);
    // `[[Note#Heading|alias]]` (lower case), `[[ALIAS]]`, `[[Note^block]]`, `[[folder/Note#^block]]`.
    let d = find("dragons");
    assert_eq!((d[0]["heading"].as_str(), d[0]["alias"].as_str()), (Some("Breath"), Some("the breath")));
    assert_eq!(find("WYRM").len(), 1);
    let blocks: Vec<_> = links.iter().filter(|l| l["block"] == "lair").map(|l| l["target"].clone()).collect();
    assert_eq!(blocks, [json!("Dragons"), json!("Lore/Dragons")]);
    // Embeds of an image and of a note.
    let embeds: Vec<_> = links.iter().filter(|l| l["embed"] == true).map(|l| l["target"].clone()).collect();
    assert_eq!(embeds, [json!("map.png"), json!("Dragons")]);
    // A Markdown link to a note (URL-encoded, relative), not to the web.
    let md = find("../Lore/Dragons.md");
    assert_eq!((md[0]["heading"].as_str(), md[0]["alias"].as_str()), (Some("Breath"), Some("markdown link")));
    assert!(links.iter().all(|l| !l["target"].as_str().unwrap().contains("example.com")));
    // The escaped pipe of a link in a table.
    assert!(links.iter().any(|l| l["target"] == "Dragons" && l["alias"] == "the wyrm"), "{links:?}");
    // Nothing from code blocks or code spans.
    for t in ["NotALink", "StillNot", "CodeLink"] {
        assert!(find(t).is_empty(), "{t}");
    }

    // Every link but the image resolves to the dragons note (case-insensitive names, aliases).
    let resolved = kb.links("Notes/Journal.md").unwrap();
    for l in &resolved {
        let expected = if l.link.target == "map.png" { None } else { Some("Lore/Dragons.md") };
        assert_eq!(l.path.as_deref(), expected, "{l:?}");
    }
    // Backlinks: each link from the journal, found by path, by name in any case or by alias.
    for name in ["Lore/Dragons.md", "dragons", "GREAT SERPENT", "wyrm"] {
        let back = kb.backlinks(name).unwrap();
        let from: Vec<_> = back.iter().filter_map(|b| b.path.as_deref()).collect();
        assert!(from.iter().all(|p| *p == "Notes/Journal.md"), "{name}: {from:?}");
        assert_eq!(back.len(), resolved.len() - 1, "{name}");
    }
    assert!(kb.backlinks("Notes/Journal.md").unwrap().is_empty());
}

#[tokio::test]
async fn ranked_search_as_a_writer_uses_it() {
    let (_d, kb) = vault().await;
    // A note titled "Beacon" outranks one that mentions beacons a dozen times; same for "Dragons".
    assert_eq!(search(&kb, "beacon"), ["Items/Beacon.md", "Notes/Journal.md"]);
    assert_eq!(search(&kb, "dragons")[0], "Lore/Dragons.md");
    // Phrases and prefixes.
    let mut red = search(&kb, "\"red dragon\"");
    red.sort();
    assert_eq!(red, ["Lore/Dragons.md", "Lore/Guards.md"]);
    assert_eq!(search(&kb, "\"red wyrm\""), ["Notes/Journal.md"]);
    assert_eq!(search(&kb, "\"dragon red\""), Vec::<String>::new());
    assert_eq!(search(&kb, "drag*").tap_sort(), ["Lore/Dragons.md", "Lore/Guards.md", "Notes/Journal.md"]);
    assert_eq!(search(&kb, "drak*"), ["Misc/🐉 Drake.md"]);
    assert_eq!(search(&kb, "\"red drag\"*").tap_sort(), ["Lore/Dragons.md", "Lore/Guards.md"]);
    // Folder and tag filters, together and with nested tags (`lore` matches `lore/ancient`).
    let r = kb
        .search(&SearchOptions {
            query: "dragon".into(),
            folder: Some("Lore".into()),
            tags: vec!["lore".into()],
            ..Default::default()
        })
        .unwrap();
    let mut paths: Vec<_> = r.hits.iter().map(|h| h.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["Lore/Dragons.md", "Lore/Guards.md"]);
    assert_eq!(search(&kb, "dragon tag:lore/ancient folder:Lore"), ["Lore/Dragons.md"]);
    assert_eq!(search(&kb, "tag:npc").tap_sort(), ["Lore/Guards.md", "Notes/Journal.md"]);
    assert_eq!(search(&kb, "tag:#NPC/Guard").len(), 2, "tags ignore case and a leading #");
    assert_eq!(search(&kb, "tag:session"), ["Notes/Journal.md"], "a tag in a heading");
    assert!(search(&kb, "tag:notatag").is_empty() && search(&kb, "tag:codetag").is_empty());
    assert!(search(&kb, "folder:/").len() == 7, "the root folder is every document");
    assert!(matches!(
        kb.search(&SearchOptions { query: "x".into(), folder: Some("../etc".into()), ..Default::default() }),
        Err(KbError::Path(_))
    ));
    // Snippets: matched terms highlighted, the rest HTML-escaped.
    let r = kb.search(&SearchOptions { query: "smoke".into(), ..Default::default() }).unwrap();
    let snippet = &r.hits[0].snippet;
    assert!(snippet.contains("<b>smoke</b>"), "{snippet}");
    assert!(snippet.contains("&lt;script&gt;") && !snippet.contains("<script>"), "{snippet}");
    assert!(snippet.contains("&amp;") && snippet.contains("&quot;hot&quot;"), "{snippet}");
    // Paging past the end, however far, is an empty page with the right total.
    for offset in [7, 1000, usize::MAX] {
        let r = kb.search(&SearchOptions { query: "dragon".into(), offset, ..Default::default() }).unwrap();
        assert_eq!((r.total, r.hits.len()), (3, 0), "{offset}");
    }
    // Aliases and file names are searchable.
    assert_eq!(search(&kb, "serpent"), ["Lore/Dragons.md"]);
}

#[tokio::test]
async fn unicode_accents_cjk_and_emoji() {
    let (_d, kb) = vault().await;
    // Accents: either spelling finds the other; titles keep theirs.
    for q in ["café", "cafe", "CAFÉ", "lumière", "LUMIERE"] {
        // The guards' note links to the café: it comes second.
        assert_eq!(search(&kb, q), ["Places/Café Lumière.md", "Lore/Guards.md"], "{q}");
    }
    for q in ["creme brulee", "\"crème brûlée\"", "Crème*"] {
        assert_eq!(search(&kb, q), ["Places/Café Lumière.md"], "{q}");
    }
    let r = kb.search(&SearchOptions { query: "brulee".into(), ..Default::default() }).unwrap();
    assert_eq!(r.hits[0].title, "Café Lumière");
    assert!(r.hits[0].snippet.contains("<b>brûlée</b>"), "{}", r.hits[0].snippet);
    // CJK: written without spaces, searchable by any word in it.
    for q in ["霧", "東京", "霧の日", "危険"] {
        assert_eq!(search(&kb, q), ["Places/東京.md"], "{q}");
    }
    assert!(search(&kb, "日霧").is_empty(), "characters in another order are not the word");
    assert_eq!(search(&kb, "tag:日本"), ["Places/東京.md"]);
    let r = kb.search(&SearchOptions { query: "霧".into(), ..Default::default() }).unwrap();
    assert!(r.hits[0].snippet.contains("<b>霧</b>"), "{}", r.hits[0].snippet);
    // Emoji: in titles and bodies, searchable, never a panic.
    assert_eq!(search(&kb, "🐉"), ["Misc/🐉 Drake.md"]);
    assert_eq!(search(&kb, "🏰 castle"), ["Misc/🐉 Drake.md"]);
    assert_eq!(kb.read("Misc/🐉 Drake").await.unwrap().note.title, "🐉 Lair of the Emoji Drake");
    // A query with nothing searchable in it matches nothing (not everything).
    for q in ["!!!", "—", "\u{200d}", "\"...\""] {
        assert!(search(&kb, q).is_empty(), "{q}");
    }
    // Exact and regex search over the raw text.
    let m = kb.grep(&GrepOptions { pattern: "CAFÉ".into(), ..Default::default() }).unwrap();
    let lines: Vec<_> = m.iter().map(|g| (g.path.as_str(), g.line)).collect();
    assert_eq!(
        lines,
        [
            ("Lore/Guards.md", 5),
            ("Places/Café Lumière.md", 2),
            ("Places/Café Lumière.md", 6),
            ("Places/Café Lumière.md", 8)
        ]
    );
    let m = kb.grep(&GrepOptions { pattern: "霧の日".into(), ..Default::default() }).unwrap();
    assert_eq!((m[0].path.as_str(), m[0].line), ("Places/東京.md", 7));
    let m = kb.grep(&GrepOptions { pattern: r"\p{Han}+の".into(), regex: true, ..Default::default() }).unwrap();
    assert_eq!(m.len(), 1);
    let m = kb.grep(&GrepOptions { pattern: "🔥".into(), ..Default::default() }).unwrap();
    assert_eq!(m[0].path, "Misc/🐉 Drake.md");
    // Regex: invalid is bad input; a pathological pattern runs in linear time and finishes.
    assert!(matches!(
        kb.grep(&GrepOptions { pattern: "[".into(), regex: true, ..Default::default() }),
        Err(KbError::InvalidInput(_))
    ));
    let m = kb.grep(&GrepOptions { pattern: r"(\w+\s?)+$".into(), regex: true, ..Default::default() }).unwrap();
    assert!(!m.is_empty());
    // `^` and `$` anchor at each line: every second-level heading of the vault.
    let m = kb.grep(&GrepOptions { pattern: r"^## \w+$".into(), regex: true, ..Default::default() }).unwrap();
    assert_eq!(m.iter().map(|g| (g.path.as_str(), g.line)).collect::<Vec<_>>(), [("Lore/Dragons.md", 10)]);
    assert!(matches!(
        kb.grep(&GrepOptions { pattern: "a{1000}{1000}".into(), regex: true, ..Default::default() }),
        Err(KbError::InvalidInput(_))
    ));
    // Context and its token estimate count CJK characters one by one.
    let c = kb.context("東京", 0).unwrap();
    assert_eq!(c.documents[0].path, "Places/東京.md");
    assert!(c.documents[0].tokens >= estimate_tokens(TOKYO) && estimate_tokens(TOKYO) > TOKYO.len() / 4);
}

#[tokio::test]
async fn tools_check_their_arguments_and_synthesize_with_sources() {
    let (_d, kb) = vault().await;
    let tools = KbTools::new(kb);
    // The schemas: objects whose properties each have a JSON type, requiring only declared ones.
    for spec in KbTools::specs() {
        let p = &spec.parameters;
        assert_eq!(p["type"], "object", "{}", spec.name);
        assert_eq!(p["additionalProperties"], false, "{}", spec.name);
        let props = p["properties"].as_object().unwrap();
        for (name, prop) in props {
            let t = prop["type"].as_str().unwrap_or_default();
            assert!(["string", "integer", "boolean", "array"].contains(&t), "{}.{name}", spec.name);
            if t == "array" {
                assert!(prop["items"]["type"].is_string());
            }
        }
        for r in p["required"].as_array().into_iter().flatten() {
            assert!(props.contains_key(r.as_str().unwrap()), "{}: {r}", spec.name);
        }
        assert!(spec.description.as_deref().is_some_and(|d| d.len() > 20));
    }
    // Bad arguments are errors, never results.
    for (tool, args) in [
        ("search_knowledge_base", r#"{"query": "dragon", "limit": 0}"#),
        ("search_knowledge_base", r#"{"query": "dragon", "limit": 1000}"#),
        ("search_knowledge_base", r#"{"query": "dragon", "limit": -1}"#),
        ("search_knowledge_base", r#"{"query": "dragon", "limit": "ten"}"#),
        ("search_knowledge_base", r#"{"query": "dragon", "mode": "psychic"}"#),
        ("search_knowledge_base", r#"{"query": "  "}"#),
        ("search_knowledge_base", r#"{"limit": 3}"#),
        ("search_knowledge_base", r#"{"query": "(", "mode": "regex"}"#),
        ("search_knowledge_base", r#"["dragon"]"#),
        ("read_kb_file", r#"{"path": ""}"#),
        ("read_kb_file", r#"{"path": "Lore/Dragons.md", "start_line": 0}"#),
        ("read_kb_file", r#"{"path": "Lore/Dragons.md", "start_line": 50}"#),
        ("read_kb_file", r#"{"path": "Lore/Dragons.md", "start_line": 5, "end_line": 2}"#),
        ("list_kb_directory", r#"{"path": "Nowhere"}"#),
        ("list_kb_directory", r#"{"recursive": "yes"}"#),
        ("load_kos_context", r#"{"name": "Dragons", "max_tokens": 5}"#),
        ("load_kos_context", r#"{"name": ""}"#),
        ("search_within_context", r#"{"name": "Dragons"}"#),
        ("search_within_context", r#"{"name": "Dragons", "query": "x", "limit": 101}"#),
        ("synthesize_kb_information", r#"{"query": "dragon", "max_documents": 0}"#),
        ("synthesize_kb_information", r#"{"query": "dragon", "max_tokens": 10}"#),
        ("synthesize_kb_information", r#"{"query": "zzzqqq"}"#),
    ] {
        let r = tools.call(tool, args).await;
        assert!(r.is_err(), "{tool} {args}: {r:?}");
    }
    // Exact search through the tool, case-sensitive on request.
    let r = tools.call("search_knowledge_base", r#"{"query": "RED", "mode": "exact"}"#).await.unwrap();
    assert!(r["total"].as_u64().unwrap() >= 3);
    let r = tools
        .call("search_knowledge_base", r#"{"query": "RED", "mode": "exact", "case_sensitive": true}"#)
        .await
        .unwrap();
    assert_eq!(r["total"], 0);
    // Synthesis: the sections that mention the question, with their sources, within the budget.
    let r = tools.call("synthesize_kb_information", r#"{"query": "fire smoke"}"#).await.unwrap();
    assert_eq!(r["sources"][0]["path"], "Lore/Dragons.md");
    assert_eq!(r["sources"][0]["excerpts"][0]["heading"], "Breath");
    assert!(r["digest"].as_str().unwrap().starts_with("- From [[Dragons]] § Breath: Fire"), "{r}");
    // Folded words and CJK match sections too; a note found by its alias gives its opening.
    let r = tools.call("synthesize_kb_information", r#"{"query": "brulee"}"#).await.unwrap();
    assert!(r["digest"].as_str().unwrap().contains("Crème brûlée"), "{r}");
    let r = tools.call("synthesize_kb_information", r#"{"query": "霧"}"#).await.unwrap();
    assert!(r["digest"].as_str().unwrap().contains("東京の霧"), "{r}");
    let r = tools.call("synthesize_kb_information", r#"{"query": "serpent"}"#).await.unwrap();
    assert!(r["digest"].as_str().unwrap().contains("The red dragon sleeps"), "{r}");
    // A small budget: the excerpts fit it, cut when needed.
    let r = tools.call("synthesize_kb_information", r#"{"query": "dragon", "max_tokens": 100}"#).await.unwrap();
    assert!(r["tokens"].as_u64().unwrap() <= 100, "{r}");
    let total: usize = r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["excerpts"].as_array().unwrap().iter())
        .map(|e| estimate_tokens(e["text"].as_str().unwrap()))
        .sum();
    assert!(total <= 100, "{total}");
    // Context through the tool says what it left out.
    let r = tools.call("load_kos_context", r#"{"name": "Dragons", "max_tokens": 150}"#).await.unwrap();
    assert_eq!(r["documents"][0]["path"], "Lore/Dragons.md");
    assert_eq!(r["omitted"], json!(["Notes/Journal.md"]), "{r}");
    assert!(r["total_tokens"].as_u64().unwrap() <= 150);
}

/// Sorting in an expression.
trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<String> {
    fn tap_sort(mut self) -> Self {
        self.sort();
        self
    }
}

#[tokio::test]
async fn snippets_of_long_notes_come_from_where_the_words_are() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault");
    std::fs::create_dir_all(&root).unwrap();
    let filler = "The road winds past fields and quiet farms. ".repeat(200); // ~8.8 KB
                                                                             // The word only near the end, once inside a longer word first (not a match), then whole.
    let long = format!("# Long\n{filler}Beaconsfield is far. {filler}Lanterns glow. The Beacon burns bright.\n");
    std::fs::write(root.join("Long.md"), long).unwrap();
    // Written with diacritics only: the raw text has no `cafe`, the whole note is tokenized.
    std::fs::write(root.join("Accents.md"), format!("# Accents\n{filler}Meet me at the café tonight.\n")).unwrap();
    // A multi-byte text around the word: the window never cuts a character.
    let wide = "ÄÖÜ äöü ß ".repeat(400);
    std::fs::write(root.join("Wide.md"), format!("# Wide\n{wide}the beacon {wide}")).unwrap();
    let kb = Kb::open(KbConfig { root, sync_interval_secs: 0, ..KbConfig::default() }).await.unwrap();

    let r = kb.search(&SearchOptions { query: "beacon".into(), limit: 10, ..Default::default() }).unwrap();
    let snippet = |path: &str| r.hits.iter().find(|h| h.path == path).map(|h| h.snippet.clone()).unwrap();
    assert!(snippet("Long.md").contains("<b>Beacon</b> burns bright"), "{}", snippet("Long.md"));
    assert!(snippet("Wide.md").contains("<b>beacon</b>"), "{}", snippet("Wide.md"));
    assert!(!snippet("Long.md").contains("Beaconsfield"), "{}", snippet("Long.md"));
    let r = kb.search(&SearchOptions { query: "cafe".into(), ..Default::default() }).unwrap();
    assert!(r.hits[0].snippet.contains("<b>café</b>"), "{}", r.hits[0].snippet);
}
