//! Knowledge-base search against `rg` over the same vault, in the same run; full index build and
//! incremental re-index after a one-file change.
//!
//! `cargo bench -p gaia-benches --bench kb_search` (needs `python3` and `../shared/kb-fixtures/gen_vault.py`
//! to build the vault, and `rg` on the PATH for the baseline; `GAIA_KB_FILES` sets the vault size,
//! default 1,000). Prints a Markdown table for BENCHMARKS.md.

use gaia_kb::{GrepOptions, Kb, KbConfig, SearchOptions};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let files: usize = std::env::var("GAIA_KB_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/kb-fixtures/gen_vault.py");
    if !gen.exists() {
        eprintln!("kb_search: {} not found; skipping", gen.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let out =
        Command::new("python3").arg(&gen).arg(&vault).arg("--files").arg(files.to_string()).output().expect("python3");
    assert!(out.status.success(), "gen_vault: {}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("{}")).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    // Full build: open (scan + parse + index) of the vault.
    let t = Instant::now();
    let kb =
        rt.block_on(Kb::open(KbConfig { root: vault.clone(), sync_interval_secs: 0, ..KbConfig::default() })).unwrap();
    let open_time = t.elapsed();
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

    let words =
        ["zombie", "pharmacy", "dragon", "beacon", "caravan", "portal", "mana", "drone", "scavenger", "waypoint"];
    let rounds = 20;
    let mut ranked = Vec::new();
    let mut exact = Vec::new();
    let mut rg = Vec::new();
    let have_rg = Command::new("rg").arg("--version").output().is_ok();
    for _ in 0..rounds {
        for w in words {
            let t = Instant::now();
            let r = kb.search(&SearchOptions { query: w.to_string(), limit: 10, ..Default::default() }).unwrap();
            ranked.push(t.elapsed());
            assert!(r.total > 0, "{w}");
            let t = Instant::now();
            let m = kb.grep(&GrepOptions { pattern: w.to_string(), limit: 1000, ..Default::default() }).unwrap();
            exact.push(t.elapsed());
            assert!(!m.is_empty());
            if have_rg {
                let t = Instant::now();
                let o = Command::new("rg").args(["-i", "-n", "--max-count", "1000", w]).arg(&vault).output().unwrap();
                rg.push(t.elapsed());
                assert!(o.status.success());
            }
        }
    }
    println!(
        "kb_search: vault of {files} files, {} bytes (gen_vault.py --files {files}); {} queries each",
        summary["bytes"],
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
    let (p50, p99) = (percentile(&mut ranked, 0.5), percentile(&mut ranked, 0.99));
    println!("| Gaia ranked search (BM25, top 10, snippets) | {} | {} | {} |", ms(p50), ms(p99), ratio(p50));
    let (p50, p99) = (percentile(&mut exact, 0.5), percentile(&mut exact, 0.99));
    println!("| Gaia exact search (in-memory, all matching lines) | {} | {} | {} |", ms(p50), ms(p99), ratio(p50));
    println!();
    println!("| indexing | time |");
    println!("|---|---|");
    println!("| open: scan, parse and index {files} files | {} |", ms(open_time));
    println!("| full re-index (drop and rebuild) | {} |", ms(rebuild_time));
    println!("| re-index with nothing changed (stat walk only) | {} |", ms(unchanged_time));
    println!(
        "| incremental re-index after a 1-file change (stat walk, read + index 1 document) | {} |",
        ms(incremental_time)
    );
}
