//! Knowledge-base search against `rg` over the same vault, in the same run, as an administrator and as
//! a user (whose searches are filtered on what they may read, as the server does, and, for comparison,
//! the same filter tested document by document); open time, memory, full index build and incremental
//! re-index after a one-file change.
//!
//! `cargo bench -p gaia-benches --bench kb_search` (needs `python3` and `../shared/kb-fixtures/gen_vault.py`
//! to build the vault, and `rg` on the PATH for the baseline; `GAIA_KB_FILES` sets the vault size,
//! default 1,000, `GAIA_KB_WORDS` the mean words per note, default 400, and `GAIA_KB_VAULT` a folder to
//! keep the generated vault in for later runs). Prints Markdown tables for BENCHMARKS.md.
//! `GAIA_KB_PROFILE=1` runs only ranked searches as a user for 30 s, for a profiler.

use gaia_kb::{GrepOptions, Kb, KbConfig, ReadAccess, SearchOptions};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The allocator the `gaia` binary ships with, so that memory is measured as a deployment sees it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Resident memory of this process, in MiB (Linux).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// Bytes of the Markdown files under `dir`.
fn markdown_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => total += markdown_bytes(&p),
            Ok(_) if p.extension().is_some_and(|x| x == "md") => total += e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => {}
        }
    }
    total
}

/// The knowledge base as an ordinary user (`u1`, default role) sees it, as the server builds it: the
/// reach of their permissions filters searches in the index, and the policy's check is the reference.
fn as_user(kb: &Kb, policy: &Arc<gaia_rbac::Policy>, in_index: bool) -> Kb {
    use gaia_rbac::{Action, Resource, ResourceType, Subject};
    let who = Subject::user("u1");
    let (p, w) = (policy.clone(), who.clone());
    let filter: gaia_kb::ReadFilter =
        Arc::new(move |path: &str| p.check(&w, Action::Read, &Resource::kb_document(path), 0).allowed);
    if !in_index {
        return kb.restricted(ReadAccess::new(filter));
    }
    let reach = policy.reach(&who, Action::Read, ResourceType::Kb, 0);
    assert!(reach.other.is_empty() && !reach.everything);
    kb.restricted(gaia_server::tools::kb_read_access(filter, &reach))
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let files: usize = std::env::var("GAIA_KB_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let words_per_note: usize = std::env::var("GAIA_KB_WORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let dir = tempfile::tempdir().unwrap();
    let Some(vault) = gaia_benches::generated_vault(dir.path()) else { return };
    let vault_bytes = markdown_bytes(&vault);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    // Full build: open (scan + parse + index) of the vault.
    let rss_before = rss_mib();
    let t = Instant::now();
    let kb =
        rt.block_on(Kb::open(KbConfig { root: vault.clone(), sync_interval_secs: 0, ..KbConfig::default() })).unwrap();
    let open_time = t.elapsed();
    let rss_open = rss_mib();
    let t = Instant::now();
    rt.block_on(kb.rebuild_index()).unwrap();
    let rebuild_time = t.elapsed();

    // Incremental: change one file, re-index (re-scans the folder, re-indexes the one changed file).
    let one = kb.documents().into_iter().nth(files / 2).unwrap();
    std::fs::write(vault.join(one.path.as_str()), format!("{}\nzeppelin\n", one.content)).unwrap();
    let t = Instant::now();
    let r = rt.block_on(kb.reindex()).unwrap();
    let incremental_time = t.elapsed();
    assert_eq!(r.changed.len(), 1);
    let t = Instant::now();
    let r = rt.block_on(kb.reindex()).unwrap();
    let unchanged_time = t.elapsed();
    assert!(r.changed.is_empty());

    // An edit through Gaia: the file written, the one document re-indexed, the snapshot updated.
    let two = kb.documents().into_iter().nth(files / 3).unwrap();
    let t = Instant::now();
    rt.block_on(kb.write(gaia_kb::WriteRequest {
        path: two.path.as_str().to_string(),
        content: format!("{}\nairship\n", two.content),
        version: Some(two.version.clone()),
        ..Default::default()
    }))
    .unwrap();
    let edit_time = t.elapsed();

    let words =
        ["zombie", "pharmacy", "dragon", "beacon", "caravan", "portal", "mana", "drone", "scavenger", "waypoint"];
    let rounds = 20;
    let policy = Arc::new(gaia_rbac::Policy::new());
    let user = as_user(&kb, &policy, true);
    let user_by_document = as_user(&kb, &policy, false);
    if std::env::var("GAIA_KB_PROFILE").is_ok() {
        // Only ranked searches as a user, for a profiler (`perf record -p <pid>`).
        println!("kb_search: pid {}; ranked searches as a user for 30 s", std::process::id());
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            for w in words {
                user.search(&SearchOptions { query: w.to_string(), limit: 10, ..Default::default() }).unwrap();
            }
        }
        return;
    }
    let mut ranked = Vec::new();
    let mut ranked_user = Vec::new();
    let mut ranked_user_old = Vec::new();
    let mut exact = Vec::new();
    let mut exact_user = Vec::new();
    let mut rg = Vec::new();
    let have_rg = Command::new("rg").arg("--version").output().is_ok();
    for _ in 0..rounds {
        for w in words {
            let q = SearchOptions { query: w.to_string(), limit: 10, ..Default::default() };
            let t = Instant::now();
            let r = kb.search(&q).unwrap();
            ranked.push(t.elapsed());
            assert!(r.total > 0, "{w}");
            let t = Instant::now();
            let ru = user.search(&q).unwrap();
            ranked_user.push(t.elapsed());
            let t = Instant::now();
            let ro = user_by_document.search(&q).unwrap();
            ranked_user_old.push(t.elapsed());
            assert_eq!(ru, ro, "{w}: the index filter finds what the document-by-document one does");
            assert_eq!(ru.total, r.total, "{w}: the generated vault is all in the common area");
            let g = GrepOptions { pattern: w.to_string(), limit: 1000, ..Default::default() };
            let t = Instant::now();
            let m = kb.grep(&g).unwrap();
            exact.push(t.elapsed());
            assert!(!m.is_empty());
            let t = Instant::now();
            let mu = user.grep(&g).unwrap();
            exact_user.push(t.elapsed());
            assert_eq!(mu.len(), m.len());
            if have_rg {
                let t = Instant::now();
                let o = Command::new("rg").args(["-i", "-n", "--max-count", "1000", w]).arg(&vault).output().unwrap();
                rg.push(t.elapsed());
                assert!(o.status.success());
            }
        }
    }
    println!(
        "kb_search: vault of {files} files, {vault_bytes} bytes of Markdown (gen_vault.py --files {files} --words {words_per_note}); {} queries each",
        ranked.len()
    );
    println!("| operation | p50 | p99 | p50 vs rg |");
    println!("|---|---|---|---|");
    let rg_p50 = if have_rg { Some(percentile(&mut rg, 0.5)) } else { None };
    let ratio = |d: Duration| {
        rg_p50
            .map(|r| format!("{:.1}x faster", r.as_secs_f64() / d.as_secs_f64()))
            .unwrap_or_else(|| "rg not found".into())
    };
    if let Some(p) = rg_p50 {
        println!(
            "| `rg -i -n WORD vault` (baseline, a process per query) | {} | {} | 1.0x |",
            ms(p),
            ms(percentile(&mut rg, 0.99))
        );
    }
    let rows: [(&str, &mut Vec<Duration>); 5] = [
        ("Gaia ranked search (BM25, top 10, snippets), administrator", &mut ranked),
        ("Gaia ranked search, user (readable areas filtered in the index)", &mut ranked_user),
        ("Gaia ranked search, user, each document tested (before issue 21)", &mut ranked_user_old),
        ("Gaia exact search (in-memory, all matching lines), administrator", &mut exact),
        ("Gaia exact search, user", &mut exact_user),
    ];
    for (name, v) in rows {
        let (p50, p99) = (percentile(v, 0.5), percentile(v, 0.99));
        println!("| {name} | {} | {} | {} |", ms(p50), ms(p99), ratio(p50));
    }
    println!();
    println!("| indexing | time |");
    println!("|---|---|");
    println!("| open: scan, parse and index {files} files | {} |", ms(open_time));
    // Once the searches have run, the index's background merges are over: what the knowledge base
    // holds from then on.
    let rss_held = rss_mib();
    let bytes = vault_bytes as f64 / (1024.0 * 1024.0);
    println!(
        "| memory (RSS growth of this process) just after open, and held after the searches | {:.1} MiB, {:.1} MiB ({:.2}x the vault's {bytes:.1} MiB of Markdown; index {:.1} MiB) |",
        rss_open - rss_before,
        rss_held - rss_before,
        (rss_held - rss_before) / bytes.max(f64::MIN_POSITIVE),
        rt.block_on(kb.status()).index_size_bytes as f64 / (1024.0 * 1024.0)
    );
    println!("| full re-index (drop and rebuild) | {} |", ms(rebuild_time));
    println!("| re-index with nothing changed (stat walk only) | {} |", ms(unchanged_time));
    println!(
        "| incremental re-index after a 1-file change on disk (stat walk, read + index 1 document) | {} |",
        ms(incremental_time)
    );
    println!("| an edit through Gaia (`Kb::write`: file written, 1 document re-indexed) | {} |", ms(edit_time));
}
