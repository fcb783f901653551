//! Conversations (soft-deleted) and their messages.

use super::{clean_text, from_ms, new_id, now_ms, Attachment, Storage};
use crate::error::{CoreError, Result};
use crate::types::{Role, Usage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
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
    /// Persona of the conversation (`None`: the user's default).
    #[serde(default)]
    pub persona_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change (new message, rename).
    pub updated_at: DateTime<Utc>,
}

/// A conversation found by [`Storage::search_conversations`], with the first matching message text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationHit {
    /// The conversation.
    #[serde(flatten)]
    pub conversation: Conversation,
    /// Whether the title matched.
    pub title_match: bool,
    /// A matching message's text around the match, when a message matched.
    pub snippet: Option<String>,
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
    /// Images sent with it (user messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

const CONV_COLS: &str = "id, user_id, title, model, persona_id, created_at, updated_at";
const MSG_COLS: &str = "id, conversation_id, role, content, model, input_tokens, output_tokens, created_at";

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn row_to_conv(r: &AnyRow) -> Result<Conversation> {
    Ok(Conversation {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        title: r.try_get("title")?,
        model: r.try_get("model")?,
        persona_id: r.try_get("persona_id")?,
        created_at: from_ms(r.try_get("created_at")?),
        updated_at: from_ms(r.try_get("updated_at")?),
    })
}

/// `text` as a `LIKE` pattern matching it anywhere (with `\` as the escape character).
pub(super) fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Up to `width` characters of `text` around the first case-insensitive occurrence of `needle`.
fn snippet_around(text: &str, needle: &str, width: usize) -> String {
    let lower = text.to_lowercase();
    let chars: Vec<char> = text.chars().collect();
    // Position in characters (lower-casing can change byte lengths, rarely character counts).
    let at = lower.find(&needle.to_lowercase()).map(|b| lower[..b].chars().count()).unwrap_or(0).min(chars.len());
    let start = at.saturating_sub(width / 3);
    let end = (start + width).min(chars.len());
    let mut s: String = chars[start..end].iter().collect();
    if start > 0 {
        s.insert(0, '…');
    }
    if end < chars.len() {
        s.push('…');
    }
    s
}

pub(super) fn row_to_msg(r: &AnyRow) -> Result<StoredMessage> {
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
        attachments: Vec::new(),
    })
}

impl Storage {
    /// Creates a conversation for `user_id` (`NotFound` if there is no such user).
    pub async fn create_conversation(
        &self,
        user_id: &str,
        title: Option<&str>,
        model: Option<&str>,
    ) -> Result<Conversation> {
        self.create_conversation_with_persona(user_id, title, model, None).await
    }

    /// Creates a conversation for `user_id` with a persona (checked by the caller).
    pub async fn create_conversation_with_persona(
        &self,
        user_id: &str,
        title: Option<&str>,
        model: Option<&str>,
        persona_id: Option<&str>,
    ) -> Result<Conversation> {
        let (title, model) = (title.map(clean_text), model.map(clean_text));
        let (title, model) = (title.as_deref(), model.as_deref());
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO conversations (id, user_id, title, model, persona_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(title)
        .bind(model)
        .bind(persona_id)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(super::user_row_error(user_id))?;
        Ok(Conversation {
            id,
            user_id: user_id.to_string(),
            title: title.map(str::to_string),
            model: model.map(str::to_string),
            persona_id: persona_id.map(str::to_string),
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

    /// A live conversation by id, whoever owns it (for access checks made elsewhere, such as shares).
    pub async fn find_conversation(&self, id: &str) -> Result<Option<Conversation>> {
        let row = sqlx::query(&format!("SELECT {CONV_COLS} FROM conversations WHERE id = $1 AND deleted_at IS NULL"))
            .bind(id)
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

    /// Sets (or clears) the title of a live conversation of `user_id`; `false` if not found.
    pub async fn rename_conversation(&self, user_id: &str, id: &str, title: Option<&str>) -> Result<bool> {
        let title = title.map(clean_text);
        let title = title.as_deref();
        let r = sqlx::query(
            "UPDATE conversations SET title = $1, updated_at = $2 \
             WHERE id = $3 AND user_id = $4 AND deleted_at IS NULL",
        )
        .bind(title)
        .bind(now_ms())
        .bind(id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Sets the title of a live conversation of `user_id` only if it is still `expected` (so that an
    /// automatic title never overwrites a rename made meanwhile); `false` if nothing changed.
    pub async fn replace_conversation_title(
        &self,
        user_id: &str,
        id: &str,
        expected: Option<&str>,
        title: &str,
    ) -> Result<bool> {
        let title = clean_text(title);
        let r = sqlx::query(
            "UPDATE conversations SET title = $1, updated_at = $2 WHERE id = $3 AND user_id = $4 \
             AND deleted_at IS NULL AND COALESCE(title, '') = $5",
        )
        .bind(title.as_ref())
        .bind(now_ms())
        .bind(id)
        .bind(user_id)
        .bind(expected.unwrap_or(""))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Sets (or clears) the persona of a live conversation of `user_id`; `false` if not found.
    pub async fn set_conversation_persona(&self, user_id: &str, id: &str, persona_id: Option<&str>) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE conversations SET persona_id = $1, updated_at = $2 \
             WHERE id = $3 AND user_id = $4 AND deleted_at IS NULL",
        )
        .bind(persona_id)
        .bind(now_ms())
        .bind(id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The user's live conversations whose title or any message contains `query` (case-insensitive),
    /// most recently updated first.
    pub async fn search_conversations(&self, user_id: &str, query: &str, limit: i64) -> Result<Vec<ConversationHit>> {
        let query = query.trim();
        if query.is_empty() {
            return Err(CoreError::InvalidInput("the search text is empty".into()));
        }
        let pattern = like_pattern(query);
        let rows = sqlx::query(&format!(
            "SELECT {CONV_COLS} FROM conversations c WHERE c.user_id = $1 AND c.deleted_at IS NULL AND \
             (LOWER(COALESCE(c.title, '')) LIKE $2 ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m \
              WHERE m.conversation_id = c.id AND LOWER(m.content) LIKE $2 ESCAPE '\\')) \
             ORDER BY c.updated_at DESC, c.id DESC LIMIT $3"
        ))
        .bind(user_id)
        .bind(&pattern)
        .bind(limit.clamp(1, 200))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let conversation = row_to_conv(r)?;
            let title_match =
                conversation.title.as_deref().is_some_and(|t| t.to_lowercase().contains(&query.to_lowercase()));
            let m = sqlx::query(
                "SELECT content FROM messages WHERE conversation_id = $1 AND LOWER(content) LIKE $2 ESCAPE '\\' \
                 ORDER BY seq LIMIT 1",
            )
            .bind(&conversation.id)
            .bind(&pattern)
            .fetch_optional(self.pool())
            .await?;
            let snippet = match m {
                Some(row) => Some(snippet_around(&row.try_get::<String, _>("content")?, query, 160)),
                None => None,
            };
            out.push(ConversationHit { conversation, title_match, snippet });
        }
        Ok(out)
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

    /// Appends a message to a live conversation; also bumps the conversation's `updated_at` (and its
    /// `model`, when given). `NotFound` if the conversation does not exist or was deleted.
    ///
    /// The conversation row is updated first, in the same transaction as the insert: that update locks
    /// the row (PostgreSQL) or the database (SQLite), so concurrent appends to one conversation are
    /// serialised, each gets the next position (`seq`), and `created_at` never decreases along it.
    pub async fn add_message(
        &self,
        conversation_id: &str,
        role: Role,
        content: &str,
        model: Option<&str>,
        usage: Option<Usage>,
    ) -> Result<StoredMessage> {
        let (content, model) = (clean_text(content), model.map(clean_text));
        let (content, model) = (content.as_ref(), model.as_deref());
        let id = new_id();
        let (input, output) = match usage {
            Some(u) => (Some(saturating_i64(u.input_tokens)), Some(saturating_i64(u.output_tokens))),
            None => (None, None),
        };
        let mut attempt = 0;
        let now = loop {
            attempt += 1;
            match self.try_add_message(&id, conversation_id, role, content, model, input, output).await {
                Ok(now) => break now,
                // Only possible under an isolation level stricter than the default: try again.
                Err(CoreError::Conflict(_)) if attempt < 3 => continue,
                Err(e) => return Err(e),
            }
        };
        Ok(StoredMessage {
            id,
            conversation_id: conversation_id.to_string(),
            role,
            content: content.to_string(),
            model: model.map(str::to_string),
            input_tokens: input,
            output_tokens: output,
            created_at: from_ms(now),
            attachments: Vec::new(),
        })
    }

    /// One attempt of [`Storage::add_message`] in a transaction of its own; returns the creation time.
    #[allow(clippy::too_many_arguments)]
    async fn try_add_message(
        &self,
        id: &str,
        conversation_id: &str,
        role: Role,
        content: &str,
        model: Option<&str>,
        input: Option<i64>,
        output: Option<i64>,
    ) -> Result<i64> {
        let mut tx = self.pool().begin().await?;
        match append_message(&mut tx, id, conversation_id, role, content, model, input, output).await {
            Ok(now) => {
                tx.commit().await?;
                Ok(now)
            }
            Err(e) => {
                // Roll back now rather than when the connection is next used, so nothing stays locked.
                if let Err(rollback) = tx.rollback().await {
                    tracing::debug!(error = %rollback, "rollback after a failed append failed");
                }
                Err(e)
            }
        }
    }

    /// Messages of a conversation, oldest first.
    ///
    /// Ordered by insertion position, which agrees with `created_at` and stays stable for messages
    /// written in the same millisecond (and even if the clock steps back).
    pub async fn list_messages(&self, conversation_id: &str) -> Result<Vec<StoredMessage>> {
        let rows = sqlx::query(&format!("SELECT {MSG_COLS} FROM messages WHERE conversation_id = $1 ORDER BY seq"))
            .bind(conversation_id)
            .fetch_all(self.pool())
            .await?;
        let mut msgs = rows.iter().map(row_to_msg).collect::<Result<Vec<_>>>()?;
        let attachments = self.conversation_attachments(conversation_id).await?;
        if !attachments.is_empty() {
            for a in attachments {
                if let Some(m) = msgs.iter_mut().find(|m| a.message_id.as_deref() == Some(m.id.as_str())) {
                    m.attachments.push(a);
                }
            }
        }
        Ok(msgs)
    }

    /// One message of a conversation, with its attachments (`None` if there is no such message there).
    pub async fn get_message(&self, conversation_id: &str, id: &str) -> Result<Option<StoredMessage>> {
        let row = sqlx::query(&format!("SELECT {MSG_COLS} FROM messages WHERE conversation_id = $1 AND id = $2"))
            .bind(conversation_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(mut msg) = row.as_ref().map(row_to_msg).transpose()? else { return Ok(None) };
        msg.attachments = self.message_attachments(id).await?;
        Ok(Some(msg))
    }

    /// Prepares a conversation for regenerating its last answer: deletes every message after the last
    /// user message and returns that message (with its attachments). `None` when the conversation has
    /// no user message (or does not exist).
    pub async fn rewind_to_last_user_message(&self, conversation_id: &str) -> Result<Option<StoredMessage>> {
        let mut tx = self.pool().begin().await?;
        // Lock the conversation row first, as appends do, so a racing append cannot interleave.
        let live = sqlx::query("UPDATE conversations SET updated_at = updated_at WHERE id = $1 AND deleted_at IS NULL")
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?;
        if live.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {MSG_COLS}, seq FROM messages WHERE conversation_id = $1 AND role = 'user' ORDER BY seq DESC LIMIT 1"
        ))
        .bind(conversation_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let seq: i64 = row.try_get("seq")?;
        let mut msg = row_to_msg(&row)?;
        sqlx::query("DELETE FROM messages WHERE conversation_id = $1 AND seq > $2")
            .bind(conversation_id)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        msg.attachments = self.message_attachments(&msg.id).await?;
        Ok(Some(msg))
    }
}

/// The statements of [`Storage::add_message`], run inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn append_message(
    conn: &mut AnyConnection,
    id: &str,
    conversation_id: &str,
    role: Role,
    content: &str,
    model: Option<&str>,
    input: Option<i64>,
    output: Option<i64>,
) -> Result<i64> {
    // `updated_at` never goes back, and the message's time is the new `updated_at`: as the update runs
    // under the row lock, times are non-decreasing along `seq` even when appends race.
    let row = sqlx::query(
        "UPDATE conversations SET updated_at = CASE WHEN updated_at > $1 THEN updated_at ELSE $1 END, \
         model = COALESCE($2, model) WHERE id = $3 AND deleted_at IS NULL RETURNING updated_at",
    )
    .bind(now_ms())
    .bind(model)
    .bind(conversation_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| CoreError::NotFound(format!("conversation {conversation_id}")))?;
    let now: i64 = row.try_get("updated_at")?;
    sqlx::query(
        "INSERT INTO messages \
         (id, conversation_id, seq, role, content, model, input_tokens, output_tokens, created_at) \
         VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = $2), \
         $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(conversation_id)
    .bind(role.as_str())
    .bind(content)
    .bind(model)
    .bind(input)
    .bind(output)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(now)
}

/// Data retention (`crate::retention`): batched deletes of old rows. Each call deletes at most `limit`
/// rows in one statement, so a large backlog never holds locks for long; deleting rows another instance
/// already deleted simply counts zero.
impl Storage {
    /// Deletes up to `limit` messages created before `before` (their attachments go with them, by the
    /// foreign key; [`Storage::purge_message_attachments_before`] deletes them first in smaller
    /// batches). Returns how many were deleted.
    pub async fn purge_messages_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.delete_batch(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE created_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Deletes up to `limit` conversations (live or soft-deleted) that have no message left and were
    /// last updated before `before`. Returns how many were deleted.
    ///
    /// The conditions are repeated on the deleted row itself, so a conversation that gets a message
    /// at the same moment (which bumps its `updated_at` in the same transaction) is kept.
    pub async fn purge_empty_conversations_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.delete_batch(
            "DELETE FROM conversations WHERE updated_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id) \
               AND id IN (SELECT c.id FROM conversations c WHERE c.updated_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM messages m2 WHERE m2.conversation_id = c.id) LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}
