//! The integration tests of `gaia-cli`, built as one test binary (one link, one process start-up),
//! a module per area. Run one area with `cargo test -p gaia-cli --test integration <module>::`.

mod cli;
mod mcp;
