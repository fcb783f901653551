//! Support code for the benchmarks.

/// The generated vault of the knowledge-base benchmarks: `../shared/kb-fixtures/gen_vault.py` with
/// `GAIA_KB_FILES` notes (default 1,000) of `GAIA_KB_WORDS` mean words (default 400), written into
/// `GAIA_KB_VAULT` (kept there for later runs: generating 10,000 notes takes a while) or else into
/// `scratch`; `None` (the benchmark skips) without the generator.
pub fn generated_vault(scratch: &std::path::Path) -> Option<std::path::PathBuf> {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (files, words) = (env("GAIA_KB_FILES", 1000), env("GAIA_KB_WORDS", 400));
    let gen = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/kb-fixtures/gen_vault.py");
    if !gen.exists() {
        eprintln!("{} not found; skipping", gen.display());
        return None;
    }
    let vault = std::env::var("GAIA_KB_VAULT").map(std::path::PathBuf::from).unwrap_or_else(|_| scratch.join("vault"));
    if !vault.join(".generated").exists() {
        let out = std::process::Command::new("python3")
            .arg(&gen)
            .arg(&vault)
            .args(["--files", &files.to_string(), "--words", &words.to_string()])
            .output()
            .expect("python3");
        assert!(out.status.success(), "gen_vault: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(vault.join(".generated"), "").expect("the vault folder is writable");
    }
    Some(vault)
}
