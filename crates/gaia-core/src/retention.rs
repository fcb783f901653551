//! Data retention: deleting messages, usage records, audit rows and ended sign-ins older than
//! `[retention]` says.
//!
//! [`run_once`] makes one pass; [`spawn`] runs a pass every `interval_secs` in the background (the
//! server starts it when some number of days is not zero); `gaia retention run` runs one pass from the
//! command line. A pass deletes, for each kind with a non-zero number of days:
//!
//! - **messages** older than `messages_days`: first their image attachments, then the messages, then
//!   conversations left without any message and not updated for that long; image uploads never sent
//!   with a message and older than that go too;
//! - **usage records** older than `usage_days`;
//! - **audit rows** older than `audit_days`: `audit_log` and the access-control changes in
//!   `rbac_audit`;
//! - **ended sign-ins** older than `sign_ins_days`: refresh tokens expired before the cutoff or of a
//!   sign-in session revoked before it (and used-up tokens from before sign-in sessions), then sign-in
//!   sessions revoked before the cutoff or left without refresh tokens, then invitations used or
//!   expired before it.
//!
//! Rows are deleted in batches ([`BATCH_SIZE`] rows, [`ATTACHMENT_BATCH_SIZE`] attachments, each one
//! statement committed on its own), so a large backlog never locks a table for long and requests keep
//! being served between batches.
//!
//! Several instances sharing one database may all run the job: every delete is "rows older than a
//! cutoff", so a pass that runs twice, or at the same time on two instances, deletes each row once and
//! the other pass just counts fewer rows. No coordination is needed.

use crate::config::RetentionConfig;
use crate::error::Result;
use crate::storage::Storage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Rows deleted per statement (messages, conversations, usage and audit rows).
pub const BATCH_SIZE: u32 = 1000;

/// Attachments deleted per statement (they hold images, so a batch is kept small).
pub const ATTACHMENT_BATCH_SIZE: u32 = 100;

/// Pause between two full batches, so other writers get the database in between.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// Chat messages.
    pub messages: u64,
    /// Image attachments (of deleted messages, and uploads never sent).
    pub attachments: u64,
    /// Conversations left without messages.
    pub conversations: u64,
    /// Usage records.
    pub usage_records: u64,
    /// Rows of `audit_log`.
    pub audit_records: u64,
    /// Rows of `rbac_audit`.
    pub rbac_audit_records: u64,
    /// Ended sign-in sessions (`auth_sessions`).
    #[serde(default)]
    pub sign_ins: u64,
    /// Refresh tokens of ended sign-ins (`refresh_tokens`).
    #[serde(default)]
    pub refresh_tokens: u64,
    /// Used or expired invitations (`auth_invites`).
    #[serde(default)]
    pub invites: u64,
}

impl RetentionReport {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.messages
            + self.attachments
            + self.conversations
            + self.usage_records
            + self.audit_records
            + self.rbac_audit_records
            + self.sign_ins
            + self.refresh_tokens
            + self.invites
    }
}

impl std::fmt::Display for RetentionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} message(s), {} attachment(s), {} conversation(s), {} usage record(s), {} audit record(s), \
             {} access-control audit record(s), {} sign-in(s), {} refresh token(s), {} invitation(s) deleted",
            self.messages,
            self.attachments,
            self.conversations,
            self.usage_records,
            self.audit_records,
            self.rbac_audit_records,
            self.sign_ins,
            self.refresh_tokens,
            self.invites
        )
    }
}

/// `now` minus `days` days, or `None` when `days` is 0 (keep forever).
fn cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now - chrono::Duration::days(i64::from(days)))
}

/// Calls `batch` until it deletes fewer than `size` rows; returns the total.
async fn drain<F, Fut>(size: u32, mut batch: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?;
        total += n;
        if n < u64::from(size) {
            return Ok(total);
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

/// One retention pass at `now` (see the module documentation). Kinds whose number of days is 0 are
/// left alone. Stops at the first database error; what was deleted until then stays deleted, and the
/// next pass carries on.
pub async fn run_once(storage: &Storage, cfg: &RetentionConfig, now: DateTime<Utc>) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    if let Some(before) = cutoff(now, cfg.messages_days) {
        report.attachments +=
            drain(ATTACHMENT_BATCH_SIZE, || storage.purge_message_attachments_before(before, ATTACHMENT_BATCH_SIZE))
                .await?;
        report.attachments +=
            drain(ATTACHMENT_BATCH_SIZE, || storage.purge_unsent_attachments_before(before, ATTACHMENT_BATCH_SIZE))
                .await?;
        report.messages += drain(BATCH_SIZE, || storage.purge_messages_before(before, BATCH_SIZE)).await?;
        report.conversations +=
            drain(BATCH_SIZE, || storage.purge_empty_conversations_before(before, BATCH_SIZE)).await?;
    }
    if let Some(before) = cutoff(now, cfg.usage_days) {
        report.usage_records += drain(BATCH_SIZE, || storage.purge_usage_before(before, BATCH_SIZE)).await?;
    }
    if let Some(before) = cutoff(now, cfg.audit_days) {
        report.audit_records += drain(BATCH_SIZE, || storage.purge_audit_before(before, BATCH_SIZE)).await?;
        report.rbac_audit_records += drain(BATCH_SIZE, || storage.purge_rbac_audit_before(before, BATCH_SIZE)).await?;
    }
    if let Some(before) = cutoff(now, cfg.sign_ins_days) {
        report.refresh_tokens += drain(BATCH_SIZE, || storage.purge_refresh_tokens_before(before, BATCH_SIZE)).await?;
        report.sign_ins += drain(BATCH_SIZE, || storage.purge_sign_ins_before(before, BATCH_SIZE)).await?;
        report.invites += drain(BATCH_SIZE, || storage.purge_invites_before(before, BATCH_SIZE)).await?;
    }
    Ok(report)
}

/// Starts the background job: a pass shortly after start (within a minute, at a random moment so that
/// instances started together do not all run at once), then one every `cfg.interval_secs`. Returns
/// `None` (and starts nothing) when retention is off (every number of days is 0). Failures are logged
/// and the next pass tries again. Call it inside a tokio runtime; abort the handle to stop the job.
pub fn spawn(storage: Storage, cfg: RetentionConfig) -> Option<tokio::task::JoinHandle<()>> {
    if !cfg.is_enabled() {
        return None;
    }
    let interval = Duration::from_secs(cfg.interval_secs.max(1));
    let first = Duration::from_millis(rand::random_range(0..=interval.min(Duration::from_secs(60)).as_millis() as u64));
    tracing::info!(
        messages_days = cfg.messages_days,
        usage_days = cfg.usage_days,
        audit_days = cfg.audit_days,
        sign_ins_days = cfg.sign_ins_days,
        interval_secs = interval.as_secs(),
        "data retention job started"
    );
    Some(tokio::spawn(async move {
        tokio::time::sleep(first).await;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match run_once(&storage, &cfg, Utc::now()).await {
                Ok(r) if r.total() > 0 => tracing::info!(report = %r, "data retention pass"),
                Ok(_) => tracing::debug!("data retention pass: nothing to delete"),
                Err(e) => tracing::warn!(error = %e, "data retention pass failed; retrying at the next interval"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_forever() {
        let now = Utc::now();
        assert_eq!(cutoff(now, 0), None);
        assert_eq!(cutoff(now, 2), Some(now - chrono::Duration::days(2)));
        assert!(!RetentionConfig::default().is_enabled());
    }

    #[tokio::test]
    async fn disabled_retention_spawns_nothing() {
        let s = Storage::connect("sqlite::memory:").await.unwrap();
        assert!(spawn(s, RetentionConfig::default()).is_none());
    }

    #[test]
    fn report_adds_up() {
        let r = RetentionReport { messages: 2, attachments: 1, usage_records: 3, ..Default::default() };
        assert_eq!(r.total(), 6);
        assert!(r.to_string().contains("2 message(s)"));
    }
}
