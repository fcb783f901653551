//! Which guardrail rules apply to an API key's or a persona's calls (`guardrail_bindings`); the rules
//! themselves are in the configuration (`[guardrails]`), by name.

use super::{from_ms, now_ms, Storage};
use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// Most rules one binding names.
pub const MAX_BOUND_RULES: usize = 64;

/// The rules bound to a key or persona.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardrailBinding {
    /// `key` (its calls use these rules instead of `[guardrails].apply`) or `persona` (these rules
    /// are added to its turns').
    pub scope: String,
    /// The key or persona id.
    pub subject_id: String,
    /// The rule names.
    pub rules: Vec<String>,
    /// Who set it.
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: DateTime<Utc>,
}

fn check_scope(scope: &str) -> Result<()> {
    match scope {
        "key" | "persona" => Ok(()),
        other => Err(CoreError::InvalidInput(format!("unknown guardrail scope `{other}` (key or persona)"))),
    }
}

impl Storage {
    /// Binds `rules` (names of configured rules, checked by the caller) to a key or persona.
    pub async fn set_guardrail_binding(
        &self,
        scope: &str,
        subject_id: &str,
        rules: &[String],
        updated_by: Option<&str>,
    ) -> Result<GuardrailBinding> {
        check_scope(scope)?;
        if subject_id.trim().is_empty() || subject_id.len() > 256 {
            return Err(CoreError::InvalidInput("the key or persona id must be 1 to 256 bytes".into()));
        }
        if rules.len() > MAX_BOUND_RULES {
            return Err(CoreError::InvalidInput(format!("at most {MAX_BOUND_RULES} rules")));
        }
        let json = serde_json::to_string(rules).map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM guardrail_bindings WHERE scope = $1 AND subject_id = $2")
            .bind(scope)
            .bind(subject_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO guardrail_bindings (scope, subject_id, rules, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(scope)
        .bind(subject_id)
        .bind(&json)
        .bind(updated_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(GuardrailBinding {
            scope: scope.to_string(),
            subject_id: subject_id.to_string(),
            rules: rules.to_vec(),
            updated_by: updated_by.map(str::to_string),
            updated_at: from_ms(now),
        })
    }

    /// Every binding.
    pub async fn list_guardrail_bindings(&self) -> Result<Vec<GuardrailBinding>> {
        let rows = sqlx::query(
            "SELECT scope, subject_id, rules, updated_by, updated_at FROM guardrail_bindings ORDER BY scope, subject_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let rules: String = r.try_get("rules")?;
                Ok(GuardrailBinding {
                    scope: r.try_get("scope")?,
                    subject_id: r.try_get("subject_id")?,
                    rules: serde_json::from_str(&rules).unwrap_or_default(),
                    updated_by: r.try_get("updated_by")?,
                    updated_at: from_ms(r.try_get("updated_at")?),
                })
            })
            .collect()
    }

    /// Removes a binding; whether it existed.
    pub async fn delete_guardrail_binding(&self, scope: &str, subject_id: &str) -> Result<bool> {
        check_scope(scope)?;
        let r = sqlx::query("DELETE FROM guardrail_bindings WHERE scope = $1 AND subject_id = $2")
            .bind(scope)
            .bind(subject_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
