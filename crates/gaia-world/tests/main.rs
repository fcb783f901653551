//! gaia-world's integration tests, one binary: content loading, play on the sample experience, quests
//! and administrators' edits (SQLite, and PostgreSQL when `GAIA_TEST_DATABASE_URL` is set).

mod content;
mod edits;
mod npcs;
mod play;
mod scenes;
mod support;
