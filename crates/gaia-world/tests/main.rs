//! gaia-world's integration tests, one binary: content loading, and play on the sample experience
//! (SQLite, and PostgreSQL when `GAIA_TEST_DATABASE_URL` is set).

mod content;
mod play;
