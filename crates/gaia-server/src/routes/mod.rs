//! Route handlers, one module per resource.

pub mod agents;
pub mod assets;
pub mod attachments;
pub mod auth;
pub mod chat;
pub mod compat;
pub mod compat_media;
pub mod conversations;
pub mod experiences;
pub mod guardrails;
pub mod health;
pub mod kb;
pub mod keys;
pub mod me;
pub mod models;
pub mod personas;
pub mod pricing;
pub mod providers;
pub mod quotas;
pub mod rbac;
pub mod usage;
