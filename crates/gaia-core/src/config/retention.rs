//! `[retention]`: how long messages, usage records, audit rows and ended sign-ins are kept.

use serde::{Deserialize, Serialize};

/// Data retention: rows older than these many days are deleted by a background job on every instance
/// (`gaia_core::retention`), or once by `gaia retention run`. `0` keeps forever (the default).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days chat messages are kept (with their image attachments; conversations left empty and idle
    /// that long go too, as do image uploads never sent). `0`: forever.
    pub messages_days: u32,
    /// Days usage records (`usage_records`) are kept. `0`: forever.
    pub usage_days: u32,
    /// Days audit rows (`audit_log`, and the access-control changes in `rbac_audit`) are kept.
    /// `0`: forever.
    pub audit_days: u32,
    /// Days ended sign-ins are kept: sign-in sessions revoked that long ago or whose refresh tokens all
    /// expired that long ago (`auth_sessions`), refresh tokens expired that long ago or of such a
    /// session (`refresh_tokens`), and invitations used or expired that long ago (`auth_invites`).
    /// `0`: forever.
    pub sign_ins_days: u32,
    /// Seconds between two passes of the background job (default 3600).
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { messages_days: 0, usage_days: 0, audit_days: 0, sign_ins_days: 0, interval_secs: 3600 }
    }
}

impl RetentionConfig {
    /// Whether anything is ever deleted (some number of days is not zero).
    pub fn is_enabled(&self) -> bool {
        self.messages_days > 0 || self.usage_days > 0 || self.audit_days > 0 || self.sign_ins_days > 0
    }
}
