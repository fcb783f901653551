//! Personas (a system prompt and chat settings applied to every turn) and per-user chat settings.

use super::{clean_text, from_ms, new_id, now_ms, Storage};
use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Id of the built-in persona used when nothing else is chosen.
pub const DEFAULT_PERSONA_ID: &str = "default";
/// Longest persona name, in characters.
pub const MAX_PERSONA_NAME: usize = 100;
/// Longest persona system prompt, in characters.
pub const MAX_SYSTEM_PROMPT: usize = 20_000;
/// Most tool sources a persona may name.
pub const MAX_PERSONA_TOOLS: usize = 32;
/// Longest tool source name.
pub const MAX_TOOL_SOURCE_NAME: usize = 64;
/// The tool sources of a persona that names none: the knowledge base's tools.
pub const DEFAULT_PERSONA_TOOLS: &[&str] = &["kb"];

/// A persona: who the model plays, and with which settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Persona {
    /// Id (`default` for the built-in one).
    pub id: String,
    /// Owner; `None` for built-in personas, which every user sees and nobody edits.
    pub user_id: Option<String>,
    /// Display name.
    pub name: String,
    /// One line about it.
    pub description: Option<String>,
    /// System prompt sent first on every turn.
    pub system_prompt: String,
    /// Model used when the request names none.
    pub model: Option<String>,
    /// Sampling temperature used when the request gives none.
    pub temperature: Option<f64>,
    /// The tool sources it may use in chat turns (`kb`, MCP server names, `world`); `None`: the
    /// default ([`DEFAULT_PERSONA_TOOLS`]); empty: no tools.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Persona {
    /// Whether this is a built-in persona.
    pub fn is_builtin(&self) -> bool {
        self.user_id.is_none()
    }

    /// The tool sources it may use: its own list, or the default.
    pub fn tool_sources(&self) -> Vec<String> {
        match &self.tools {
            Some(t) => t.clone(),
            None => DEFAULT_PERSONA_TOOLS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Fields of a new persona, or the fields to change (`None`: unchanged) in an update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonaInput {
    /// Display name (required to create).
    #[serde(default)]
    pub name: Option<String>,
    /// One line about it (empty clears it).
    #[serde(default)]
    pub description: Option<String>,
    /// System prompt (required to create).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Model (empty clears it).
    #[serde(default)]
    pub model: Option<String>,
    /// Temperature, 0 to 2 (negative clears it).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// The tool sources it may use in chat turns (`[]`: none); unchanged when absent (the default
    /// for a new persona: the knowledge base's tools).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
}

/// A user's chat settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserSettings {
    /// Display name.
    pub display_name: Option<String>,
    /// Model used when neither the request nor the persona names one.
    pub default_model: Option<String>,
    /// Persona of new conversations.
    pub default_persona_id: Option<String>,
    /// UI theme (`dark` or `light`).
    pub theme: Option<String>,
}

const COLS: &str = "id, user_id, name, description, system_prompt, model, temperature, tools, created_at, updated_at";

fn row_to_persona(r: &AnyRow) -> Result<Persona> {
    Ok(Persona {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        system_prompt: r.try_get("system_prompt")?,
        model: r.try_get("model")?,
        temperature: r.try_get("temperature")?,
        tools: r.try_get::<Option<String>, _>("tools")?.and_then(|t| match serde_json::from_str(&t) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "a persona's tool list is not a JSON array of names; using the default");
                None
            }
        }),
        created_at: from_ms(r.try_get("created_at")?),
        updated_at: from_ms(r.try_get("updated_at")?),
    })
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(|s| clean_text(s).into_owned())
}

fn check_input(p: &PersonaInput) -> Result<()> {
    if let Some(n) = &p.name {
        if n.trim().is_empty() || n.chars().count() > MAX_PERSONA_NAME {
            return Err(CoreError::InvalidInput(format!("name must be 1 to {MAX_PERSONA_NAME} characters")));
        }
    }
    if let Some(s) = &p.system_prompt {
        if s.trim().is_empty() || s.chars().count() > MAX_SYSTEM_PROMPT {
            return Err(CoreError::InvalidInput(format!("system_prompt must be 1 to {MAX_SYSTEM_PROMPT} characters")));
        }
    }
    if p.description.as_ref().is_some_and(|d| d.chars().count() > 500) {
        return Err(CoreError::InvalidInput("description must be at most 500 characters".into()));
    }
    if p.model.as_ref().is_some_and(|m| m.chars().count() > 200) {
        return Err(CoreError::InvalidInput("model must be at most 200 characters".into()));
    }
    if let Some(t) = p.temperature {
        if !t.is_finite() || t > 2.0 {
            return Err(CoreError::InvalidInput("temperature must be between 0 and 2".into()));
        }
    }
    if let Some(tools) = &p.tools {
        if tools.len() > MAX_PERSONA_TOOLS {
            return Err(CoreError::InvalidInput(format!("at most {MAX_PERSONA_TOOLS} tool sources")));
        }
        let valid = |t: &String| {
            !t.is_empty()
                && t.len() <= MAX_TOOL_SOURCE_NAME
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if let Some(bad) = tools.iter().find(|t| !valid(t)) {
            return Err(CoreError::InvalidInput(format!(
                "tool source `{}` must be 1 to {MAX_TOOL_SOURCE_NAME} letters, digits, `-` or `_`",
                bad.chars().take(80).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// A tool list as stored (duplicates dropped, order kept).
fn tools_json(tools: &[String]) -> String {
    let mut seen = Vec::with_capacity(tools.len());
    for t in tools {
        if !seen.contains(t) {
            seen.push(t.clone());
        }
    }
    serde_json::to_string(&seen).unwrap_or_else(|_| "[]".into())
}

impl Storage {
    /// The built-in personas and the user's own, built-in first, then by name.
    pub async fn list_personas(&self, user_id: &str) -> Result<Vec<Persona>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM personas WHERE user_id IS NULL OR user_id = $1 \
             ORDER BY CASE WHEN user_id IS NULL THEN 0 ELSE 1 END, LOWER(name), id"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_persona).collect()
    }

    /// A persona the user may use (built-in or their own); `None` otherwise.
    pub async fn get_persona(&self, user_id: &str, id: &str) -> Result<Option<Persona>> {
        let row =
            sqlx::query(&format!("SELECT {COLS} FROM personas WHERE id = $1 AND (user_id IS NULL OR user_id = $2)"))
                .bind(id)
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(row_to_persona).transpose()
    }

    /// Creates a persona owned by `user_id` (`name` and `system_prompt` required).
    pub async fn create_persona(&self, user_id: &str, input: &PersonaInput) -> Result<Persona> {
        check_input(input)?;
        let name =
            non_empty(input.name.as_deref()).ok_or_else(|| CoreError::InvalidInput("name is required".into()))?;
        let prompt = non_empty(input.system_prompt.as_deref())
            .ok_or_else(|| CoreError::InvalidInput("system_prompt is required".into()))?;
        let temperature = input.temperature.filter(|t| *t >= 0.0);
        let (id, now) = (new_id(), now_ms());
        sqlx::query(
            "INSERT INTO personas (id, user_id, name, description, system_prompt, model, temperature, tools, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $8, $8)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(&name)
        .bind(non_empty(input.description.as_deref()))
        .bind(&prompt)
        .bind(non_empty(input.model.as_deref()))
        .bind(temperature)
        .bind(now)
        .bind(input.tools.as_deref().map(tools_json))
        .execute(self.pool())
        .await
        .map_err(super::user_row_error(user_id))?;
        self.get_persona(user_id, &id).await?.ok_or_else(|| CoreError::NotFound(format!("persona {id}")))
    }

    /// Changes the given fields of one of the user's own personas. `NotFound` for a persona the user
    /// cannot see; `Forbidden` for a built-in one.
    pub async fn update_persona(&self, user_id: &str, id: &str, input: &PersonaInput) -> Result<Persona> {
        check_input(input)?;
        let current =
            self.get_persona(user_id, id).await?.ok_or_else(|| CoreError::NotFound(format!("persona {id}")))?;
        if current.is_builtin() {
            return Err(CoreError::Forbidden("built-in personas cannot be changed".into()));
        }
        let pick = |new: &Option<String>, old: &Option<String>| match new {
            Some(v) => non_empty(Some(v)),
            None => old.clone(),
        };
        let name = input.name.as_deref().and_then(|n| non_empty(Some(n))).unwrap_or(current.name);
        let prompt = input.system_prompt.as_deref().and_then(|n| non_empty(Some(n))).unwrap_or(current.system_prompt);
        let temperature = match input.temperature {
            Some(t) if t < 0.0 => None,
            Some(t) => Some(t),
            None => current.temperature,
        };
        sqlx::query(
            "UPDATE personas SET name = $1, description = $2, system_prompt = $3, model = $4, temperature = $5, \
             updated_at = $6, tools = $9 WHERE id = $7 AND user_id = $8",
        )
        .bind(&name)
        .bind(pick(&input.description, &current.description))
        .bind(&prompt)
        .bind(pick(&input.model, &current.model))
        .bind(temperature)
        .bind(now_ms())
        .bind(id)
        .bind(user_id)
        .bind(input.tools.as_deref().map(tools_json).or_else(|| current.tools.as_deref().map(tools_json)))
        .execute(self.pool())
        .await?;
        self.get_persona(user_id, id).await?.ok_or_else(|| CoreError::NotFound(format!("persona {id}")))
    }

    /// Deletes one of the user's own personas; conversations and settings that used it fall back to
    /// the default. `NotFound` for a persona the user cannot see; `Forbidden` for a built-in one.
    pub async fn delete_persona(&self, user_id: &str, id: &str) -> Result<()> {
        let current =
            self.get_persona(user_id, id).await?.ok_or_else(|| CoreError::NotFound(format!("persona {id}")))?;
        if current.is_builtin() {
            return Err(CoreError::Forbidden("built-in personas cannot be deleted".into()));
        }
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM personas WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET default_persona_id = NULL WHERE id = $1 AND default_persona_id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE conversations SET persona_id = NULL WHERE user_id = $1 AND persona_id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user's chat settings (`NotFound` for an unknown user).
    pub async fn user_settings(&self, user_id: &str) -> Result<UserSettings> {
        let row = sqlx::query("SELECT display_name, default_model, default_persona_id, theme FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user {user_id}")))?;
        Ok(UserSettings {
            display_name: row.try_get("display_name")?,
            default_model: row.try_get("default_model")?,
            default_persona_id: row.try_get("default_persona_id")?,
            theme: row.try_get("theme")?,
        })
    }

    /// Changes the given settings (`None`: unchanged; an empty string clears one). The default persona
    /// must be one the user may use; the theme `dark` or `light`.
    pub async fn update_user_settings(&self, user_id: &str, s: &UserSettings) -> Result<UserSettings> {
        let mut cur = self.user_settings(user_id).await?;
        if let Some(d) = &s.display_name {
            if d.chars().count() > super::MAX_DISPLAY_NAME {
                return Err(CoreError::InvalidInput(format!(
                    "display name must be at most {} characters",
                    super::MAX_DISPLAY_NAME
                )));
            }
            cur.display_name = non_empty(Some(d));
        }
        if let Some(m) = &s.default_model {
            if m.chars().count() > 200 {
                return Err(CoreError::InvalidInput("model must be at most 200 characters".into()));
            }
            cur.default_model = non_empty(Some(m));
        }
        if let Some(p) = &s.default_persona_id {
            let p = non_empty(Some(p));
            if let Some(id) = &p {
                if self.get_persona(user_id, id).await?.is_none() {
                    return Err(CoreError::NotFound(format!("persona {id}")));
                }
            }
            cur.default_persona_id = p;
        }
        if let Some(t) = &s.theme {
            let t = non_empty(Some(t));
            if t.as_deref().is_some_and(|t| t != "dark" && t != "light") {
                return Err(CoreError::InvalidInput("theme must be `dark` or `light`".into()));
            }
            cur.theme = t;
        }
        sqlx::query(
            "UPDATE users SET display_name = $1, default_model = $2, default_persona_id = $3, theme = $4 WHERE id = $5",
        )
        .bind(&cur.display_name)
        .bind(&cur.default_model)
        .bind(&cur.default_persona_id)
        .bind(&cur.theme)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(cur)
    }
}
