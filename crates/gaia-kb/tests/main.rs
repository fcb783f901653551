//! The integration tests of `gaia-kb`, built as one test binary (one link, one process start-up),
//! a module per area. Run one area with `cargo test -p gaia-kb --test integration <module>::`.

mod common;
mod database;
mod git_sync;
mod hardening;
mod obsidian;
mod semantic;
mod world;
