//! Search and read a game's knowledge base (an Obsidian vault) with `gaia_kb::Kb`: ranked search with
//! snippets, reading a note by its alias, backlinks, a topic's context for a prompt within a token
//! budget, and exact / regex search line by line.
//!
//! It reads the sample game world (`../shared/kb-fixtures/world`, or a built-in copy), needs no
//! configuration and no network:
//!
//! ```sh
//! cargo run -p gaia-examples --example kb_search
//! ```

use anyhow::ensure;
use gaia_kb::{GrepOptions, Kb, KbConfig, SearchOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let vault = gaia_examples::sample_vault()?;

    // A plain folder of Markdown files: no git remote, no periodic sync. Opening it parses every note
    // and builds the search index in memory; everything below works on that snapshot.
    let kb = Kb::open(KbConfig { root: vault.path.clone(), sync_interval_secs: 0, ..KbConfig::default() }).await?;
    println!("opened {} ({} documents)\n", vault.path.display(), kb.documents().len());

    // 1. Ranked search (BM25 over titles, aliases, tags, headings and text), best first, with snippets
    //    where the matches are wrapped in <b>…</b>.
    let results = kb.search(&SearchOptions { query: "horde protection".into(), limit: 3, ..Default::default() })?;
    println!("search \"horde protection\": {} documents", results.total);
    for hit in &results.hits {
        println!("  {:5.2}  {}  …{}…", hit.score, hit.path, hit.snippet.replace('\n', " "));
    }
    ensure!(results.hits.first().is_some_and(|h| h.path == "Places/Safe House.md"), "the safe house should rank first");

    // The same with a filter: only notes tagged `npc` (nested tags such as `npc/medical` match too).
    let npcs = kb.search(&SearchOptions { query: "players".into(), tags: vec!["npc".into()], ..Default::default() })?;
    println!("search \"players\" tagged npc: {:?}", npcs.hits.iter().map(|h| &h.path).collect::<Vec<_>>());
    ensure!(npcs.hits.iter().all(|h| h.path.starts_with("Characters/")), "only characters are tagged npc");

    // 2. Read a note by path, note name, title or alias: "Bunker" is an alias of the safe house.
    let doc = kb.read("Bunker").await?;
    println!("\nread \"Bunker\" -> {} (title {:?})", doc.path, doc.note.title);
    println!("  tags: {:?}, aliases: {:?}", doc.note.tags, doc.note.aliases);
    println!("  headings: {:?}", doc.note.headings.iter().map(|h| &h.text).collect::<Vec<_>>());
    ensure!(doc.path.as_str() == "Places/Safe House.md", "the alias should resolve to the safe house");

    // 3. Backlinks: the notes that link to the safe house, with the link as written.
    let backlinks = kb.backlinks(doc.path.as_str())?;
    println!("\nbacklinks of {}:", doc.path);
    for b in &backlinks {
        let from = b.path.as_deref().unwrap_or("?");
        println!("  {from} (line {}, shown as {:?})", b.link.line, b.link.alias.as_deref().unwrap_or(&b.link.target));
    }
    ensure!(
        backlinks.iter().any(|b| b.path.as_deref() == Some("Characters/Dr. Mara Quill.md")),
        "Dr. Mara Quill's note links to the safe house"
    );

    // 4. A topic's context for a prompt: the topic's note, then the notes it links to and that link to
    //    it, as many as fit in the token budget (the rest are listed as omitted).
    let budget = 250;
    let context = kb.context("Dr. Mara Quill", budget)?;
    println!("\ncontext for \"Dr. Mara Quill\" within {budget} tokens: {} tokens used", context.total_tokens);
    for d in &context.documents {
        let cut = if d.truncated { ", truncated" } else { "" };
        println!("  {:?}: {} ({} tokens{cut})", d.reason, d.path, d.tokens);
    }
    println!("  omitted: {:?}", context.omitted);
    ensure!(context.total_tokens <= budget, "the context must fit the budget");
    ensure!(context.documents.first().is_some_and(|d| d.path == "Characters/Dr. Mara Quill.md"), "topic first");
    // `to_prompt()` is the Markdown text to put in a system prompt.
    let prompt = context.to_prompt();
    println!("  prompt: {} characters, starting {:?}", prompt.len(), prompt.lines().next().unwrap_or_default());

    // 5. Exact (case-insensitive by default) and regex search over the raw text, line by line.
    let fog = kb.grep(&GrepOptions { pattern: "fog".into(), ..Default::default() })?;
    println!("\ngrep \"fog\": {} lines", fog.len());
    for m in fog.iter().take(3) {
        println!("  {}:{}: {}", m.path, m.line, m.text);
    }
    let distances =
        kb.grep(&GrepOptions { pattern: r"\d+ (real )?metres".into(), regex: true, ..Default::default() })?;
    println!("grep /\\d+ (real )?metres/: {} lines", distances.len());
    for m in &distances {
        println!("  {}:{}: {}", m.path, m.line, m.text);
    }
    ensure!(!fog.is_empty() && !distances.is_empty(), "both searches should find lines");

    println!("\nkb_search: all checks passed");
    Ok(())
}
