//! Conversations (soft-deleted) and their messages.

use super::{from_ms, new_id, now_ms, Storage};
use crate::error::{CoreError, Result};
use crate::types::{Role, Usage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A conversation owned by one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Title.
    pub title: Option<String>,
    /// Model last used.
    pub model: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change (new message, rename).
    pub updated_at: DateTime<Utc>,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Id.
    pub id: String,
    /// Conversation it belongs to.
    pub conversation_id: String,
    /// Author.
    pub role: Role,
    /// Text.
    pub content: String,
    /// Model that produced it (assistant messages).
    pub model: Option<String>,
    /// Prompt tokens of the call that produced it.
    pub input_tokens: Option<i64>,
    /// Tokens generated.
    pub output_tokens: Option<i64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

const CONV_COLS: &str = "id, user_id, title, model, created_at, updated_at";
const MSG_COLS: &str = "id, conversation_id, role, content, model, input_tokens, output_tokens, created_at";

fn row_to_conv(r: &AnyRow) -> Result<Conversation> {
    Ok(Conversation {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        title: r.try_get("title")?,
        model: r.try_get("model")?,
        created_at: from_ms(r.try_get("created_at")?),
        updated_at: from_ms(r.try_get("updated_at")?),
    })
}

fn row_to_msg(r: &AnyRow) -> Result<StoredMessage> {
    let role: String = r.try_get("role")?;
    Ok(StoredMessage {
        id: r.try_get("id")?,
        conversation_id: r.try_get("conversation_id")?,
        role: Role::parse(&role).ok_or_else(|| CoreError::Database(format!("unknown role `{role}` in messages")))?,
        content: r.try_get("content")?,
        model: r.try_get("model")?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

impl Storage {
    /// Creates a conversation for `user_id`.
    pub async fn create_conversation(
        &self,
        user_id: &str,
        title: Option<&str>,
        model: Option<&str>,
    ) -> Result<Conversation> {
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO conversations (id, user_id, title, model, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(title)
        .bind(model)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(Conversation {
            id,
            user_id: user_id.to_string(),
            title: title.map(str::to_string),
            model: model.map(str::to_string),
            created_at: from_ms(now),
            updated_at: from_ms(now),
        })
    }

    /// The conversation, if it exists, is not deleted and belongs to `user_id`.
    pub async fn get_conversation(&self, user_id: &str, id: &str) -> Result<Option<Conversation>> {
        let row = sqlx::query(&format!(
            "SELECT {CONV_COLS} FROM conversations WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(row_to_conv).transpose()
    }

    /// A page of the user's conversations, most recently updated first.
    pub async fn list_conversations(&self, user_id: &str, limit: i64, offset: i64) -> Result<Vec<Conversation>> {
        let rows = sqlx::query(&format!(
            "SELECT {CONV_COLS} FROM conversations WHERE user_id = $1 AND deleted_at IS NULL \
             ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(user_id)
        .bind(limit.clamp(0, 1000))
        .bind(offset.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_conv).collect()
    }

    /// Soft-deletes a conversation; `false` if it was not found (or not the user's).
    pub async fn delete_conversation(&self, user_id: &str, id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE conversations SET deleted_at = $1 WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Marks the conversation as updated now.
    pub async fn touch_conversation(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE conversations SET updated_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Appends a message (and bumps the conversation's `updated_at`, and its model when given).
    pub async fn add_message(
        &self,
        conversation_id: &str,
        role: Role,
        content: &str,
        model: Option<&str>,
        usage: Option<Usage>,
    ) -> Result<StoredMessage> {
        let id = new_id();
        let now = now_ms();
        let (input, output) = match usage {
            Some(u) => (Some(u.input_tokens as i64), Some(u.output_tokens as i64)),
            None => (None, None),
        };
        // `seq` orders messages within a conversation; a concurrent insert can race for the same
        // number, in which case the unique index refuses one and it simply tries again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = sqlx::query(
                "INSERT INTO messages (id, conversation_id, seq, role, content, model, input_tokens, output_tokens, created_at) \
                 VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = $2), $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(conversation_id)
            .bind(role.as_str())
            .bind(content)
            .bind(model)
            .bind(input)
            .bind(output)
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(CoreError::from);
            match r {
                Ok(_) => break,
                Err(CoreError::Conflict(_)) if attempt < 5 => continue,
                Err(e) => return Err(e),
            }
        }
        sqlx::query("UPDATE conversations SET updated_at = $1, model = COALESCE($2, model) WHERE id = $3")
            .bind(now)
            .bind(model)
            .bind(conversation_id)
            .execute(self.pool())
            .await?;
        Ok(StoredMessage {
            id,
            conversation_id: conversation_id.to_string(),
            role,
            content: content.to_string(),
            model: model.map(str::to_string),
            input_tokens: input,
            output_tokens: output,
            created_at: from_ms(now),
        })
    }

    /// Messages of a conversation, oldest first.
    pub async fn list_messages(&self, conversation_id: &str) -> Result<Vec<StoredMessage>> {
        let rows = sqlx::query(&format!("SELECT {MSG_COLS} FROM messages WHERE conversation_id = $1 ORDER BY seq"))
            .bind(conversation_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(row_to_msg).collect()
    }
}
