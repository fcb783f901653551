//! The integration tests of `gaia-server`, built as one test binary (one link, one process start-up),
//! a module per area. Run one area with `cargo test -p gaia-server --test integration <module>::`.

mod agents;
mod audit;
mod auth;
mod browser;
mod chat;
mod chat_tools;
mod common;
mod compat;
mod compat_edge;
mod compat_structured;
mod conversations;
mod end_users;
mod experiences;
mod hardening_auth;
mod hardening_kb;
mod hardening_live;
mod hardening_models;
mod hardening_providers;
mod images;
mod kb;
mod live;
mod me;
mod memory;
mod metrics;
mod personas;
mod play;
mod providers;
mod quotas;
mod rbac;
mod scale;
mod sdk;
mod security;
mod tls;
mod ui;
mod usage;
