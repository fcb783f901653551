//! The integration tests of `gaia-core`, built as one test binary (one link, one process start-up),
//! a module per area. Run one area with `cargo test -p gaia-core --test integration <module>::`.

mod auth;
mod cache;
mod erase;
mod jwks;
mod retention;
mod runtime_providers;
mod storage;
