//! Runnable examples of embedding Gaia; see `examples/` and run them with
//! `cargo run -p gaia-examples --example NAME`.
