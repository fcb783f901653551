//! The integration tests of `gaia-providers`, built as one test binary (one link, one process start-up),
//! a module per area. Run one area with `cargo test -p gaia-providers --test integration <module>::`.

mod embeddings;
mod gateway;
mod mock_clients;
mod recorded;
mod redirects;
mod routing;
