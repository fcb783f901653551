//! Providers added, replaced or removed at runtime (`runtime_providers`), so that changes made through
//! the admin API survive a restart and reach every instance.
//!
//! Keys given directly (`api_key`, of the entry or of a deployment) are stored sealed with
//! [`Secrets`] (`enc:v1:…`), never in clear; keys named by `api_key_env` are not stored at all, only
//! the variable's name. Rows written in clear by earlier versions still load
//! ([`RuntimeProvider::open_entry`]) and are sealed on their next write, or by
//! [`Storage::reseal_runtime_provider`].

use super::{from_ms, now_ms, Storage};
use crate::config::ProviderEntry;
use crate::error::{CoreError, Result};
use crate::secrets::{Secrets, SecretsError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A runtime change to the provider list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeProvider {
    /// Provider name.
    pub name: String,
    /// The entry as stored: keys given directly are sealed (`enc:v1:…`, see
    /// [`RuntimeProvider::open_entry`] for the entry to set up), keys named by `api_key_env` are not
    /// stored, only the variable's name; `None` when the provider was removed.
    #[serde(skip)]
    pub entry: Option<ProviderEntry>,
    /// Who made the change.
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: DateTime<Utc>,
}

/// Why a literal key cannot be stored when no secrets key is configured.
pub const NO_SECRETS_KEY: &str = "a literal `api_key` cannot be stored: no secrets key is configured to encrypt it. \
Set GAIA_SECRETS_KEY (32 bytes in base64, e.g. from `openssl rand -base64 32`) on the server, or put the key in \
an environment variable of the server and name it with `api_key_env`";

/// A stored entry with its keys in clear, from [`RuntimeProvider::open_entry`].
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedEntry {
    /// The entry, its keys in clear (never show or log them).
    pub entry: ProviderEntry,
    /// Whether the row should be sealed again with [`Storage::reseal_runtime_provider`]: a key was
    /// stored in clear (before keys were encrypted) or under a previous key. Only ever true when
    /// secrets were given to seal it with.
    pub reseal: bool,
}

/// The keys given directly in an entry: its own and its deployments'.
fn literal_keys(entry: &mut ProviderEntry) -> impl Iterator<Item = &mut String> {
    entry.api_key.iter_mut().chain(entry.deployments.iter_mut().filter_map(|d| d.api_key.as_mut()))
}

/// `entry` with every key given directly sealed with `secrets`; [`NO_SECRETS_KEY`] without them.
fn seal_entry(entry: &ProviderEntry, secrets: Option<&Secrets>) -> Result<ProviderEntry> {
    let mut sealed = entry.clone();
    for key in literal_keys(&mut sealed) {
        let s = secrets.ok_or_else(|| CoreError::InvalidInput(NO_SECRETS_KEY.into()))?;
        *key = s.seal(key).map_err(|e| CoreError::InvalidInput(format!("cannot encrypt the API key: {e}")))?;
    }
    Ok(sealed)
}

impl RuntimeProvider {
    /// Whether the change removed the provider.
    pub fn removed(&self) -> bool {
        self.entry.is_none()
    }

    /// Whether a key given directly in the stored entry is kept in clear (stored by earlier versions,
    /// before keys were encrypted).
    pub fn has_clear_keys(&self) -> bool {
        self.entry.clone().is_some_and(|mut e| literal_keys(&mut e).any(|k| !Secrets::is_sealed(k)))
    }

    /// The stored entry with its keys opened with `secrets`, ready to set up; `Ok(None)` for a
    /// removal. Keys stored in clear by earlier versions pass as they are (flagged for sealing again
    /// when `secrets` are given). Fails, without naming any key, when a sealed key cannot be opened:
    /// no secrets given, another key than the one it was sealed with, or an altered value.
    pub fn open_entry(&self, secrets: Option<&Secrets>) -> std::result::Result<Option<OpenedEntry>, SecretsError> {
        let Some(stored) = &self.entry else { return Ok(None) };
        let mut entry = stored.clone();
        let mut reseal = false;
        for key in literal_keys(&mut entry) {
            if Secrets::is_sealed(key) {
                let opened = secrets.ok_or(SecretsError::NoKey)?.open(key)?;
                reseal |= opened.stale;
                *key = opened.value;
            } else {
                // Stored in clear before keys were encrypted.
                reseal |= secrets.is_some();
            }
        }
        Ok(Some(OpenedEntry { entry, reseal }))
    }
}

fn row_to_runtime(r: &AnyRow) -> Result<RuntimeProvider> {
    let name: String = r.try_get("name")?;
    let removed: i32 = r.try_get("removed")?;
    let entry = if removed != 0 {
        None
    } else {
        let text: Option<String> = r.try_get("entry")?;
        let text = text.ok_or_else(|| CoreError::Internal(format!("runtime provider {name} has no entry")))?;
        Some(
            serde_json::from_str(&text)
                .map_err(|e| CoreError::Internal(format!("runtime provider {name} is unreadable: {e}")))?,
        )
    };
    Ok(RuntimeProvider {
        name,
        entry,
        updated_by: r.try_get("updated_by")?,
        updated_at: from_ms(r.try_get("updated_at")?),
    })
}

impl Storage {
    /// Records `entry` as added (or replacing the provider of the same name), by `by`. Its keys given
    /// directly (in clear) are sealed with `secrets`; an entry with such keys and no `secrets` is
    /// refused ([`CoreError::InvalidInput`], [`NO_SECRETS_KEY`]) and nothing is stored. Returns the
    /// change's time (its [`RuntimeProvider::updated_at`] when listed).
    pub async fn save_runtime_provider(
        &self,
        entry: &ProviderEntry,
        secrets: Option<&Secrets>,
        by: Option<&str>,
    ) -> Result<DateTime<Utc>> {
        if entry.name.trim().is_empty() {
            return Err(CoreError::InvalidInput("a provider needs a name".into()));
        }
        let sealed = seal_entry(entry, secrets)?;
        let json = serde_json::to_string(&sealed).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.upsert_runtime_provider(&entry.name, Some(&json), by).await
    }

    /// Seals again the keys of a stored change (`opened`: its entry opened by
    /// [`RuntimeProvider::open_entry`]) under the current key of `secrets`, without making it a new
    /// change (its time and author stay). Only when the row is still that change; whether it was.
    pub async fn reseal_runtime_provider(
        &self,
        change: &RuntimeProvider,
        opened: &ProviderEntry,
        secrets: &Secrets,
    ) -> Result<bool> {
        let sealed = seal_entry(opened, Some(secrets))?;
        let json = serde_json::to_string(&sealed).map_err(|e| CoreError::Internal(e.to_string()))?;
        let r =
            sqlx::query("UPDATE runtime_providers SET entry = $1 WHERE name = $2 AND removed = 0 AND updated_at = $3")
                .bind(json)
                .bind(&change.name)
                .bind(change.updated_at.timestamp_millis())
                .execute(self.pool())
                .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records that the provider `name` was removed, by `by` (it stays removed after a restart even
    /// when `[[providers]]` lists it, until it is added again). Returns the change's time.
    pub async fn remove_runtime_provider(&self, name: &str, by: Option<&str>) -> Result<DateTime<Utc>> {
        self.upsert_runtime_provider(name, None, by).await
    }

    async fn upsert_runtime_provider(
        &self,
        name: &str,
        entry: Option<&str>,
        by: Option<&str>,
    ) -> Result<DateTime<Utc>> {
        let removed: i32 = if entry.is_some() { 0 } else { 1 };
        // Strictly increasing per row, so readers comparing times see every change.
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO runtime_providers (name, entry, removed, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET entry = excluded.entry, removed = excluded.removed, \
             updated_by = excluded.updated_by, \
             updated_at = CASE WHEN excluded.updated_at > runtime_providers.updated_at \
             THEN excluded.updated_at ELSE runtime_providers.updated_at + 1 END \
             RETURNING updated_at",
        )
        .bind(name)
        .bind(entry)
        .bind(removed)
        .bind(by)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(from_ms(row.try_get("updated_at")?))
    }

    /// Every runtime change, one per provider name (the latest), by name.
    pub async fn list_runtime_providers(&self) -> Result<Vec<RuntimeProvider>> {
        let rows =
            sqlx::query("SELECT name, entry, removed, updated_by, updated_at FROM runtime_providers ORDER BY name")
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(row_to_runtime).collect()
    }

    /// Forgets the runtime change of `name` (the configuration's entry, if any, applies again after a
    /// restart); whether there was one.
    pub async fn forget_runtime_provider(&self, name: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM runtime_providers WHERE name = $1").bind(name).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }
}
