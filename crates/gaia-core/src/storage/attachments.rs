//! Images uploaded in chat. They are kept in the database (base64, the form vision APIs take), so
//! every instance behind a load balancer serves them; an attachment belongs to its uploader and, once
//! sent, to the user message it came with.

use super::{from_ms, new_id, now_ms, Storage};
use crate::error::{CoreError, Result};
use crate::types::ImagePart;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Longest kept file name, in characters (longer names are cut).
pub const MAX_FILE_NAME: usize = 255;

/// Image types accepted for upload (what OpenAI's and Anthropic's vision models take).
pub const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// An uploaded image (without its bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Id.
    pub id: String,
    /// Uploader.
    pub user_id: String,
    /// The user message it was sent with (`None` until sent).
    pub message_id: Option<String>,
    /// MIME type, from the bytes themselves (not from what the client claimed).
    pub media_type: String,
    /// The uploaded file's name, if given.
    pub file_name: Option<String>,
    /// Size in bytes.
    pub size: i64,
    /// Upload time.
    pub created_at: DateTime<Utc>,
}

/// The image type of `bytes` from their signature: PNG, JPEG, GIF or WebP; `None` for anything else.
pub fn sniff_image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

const COLS: &str = "id, user_id, message_id, media_type, file_name, size, created_at";

pub(super) fn row_to_attachment(r: &AnyRow) -> Result<Attachment> {
    Ok(Attachment {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        message_id: r.try_get("message_id")?,
        media_type: r.try_get("media_type")?,
        file_name: r.try_get("file_name")?,
        size: r.try_get("size")?,
        created_at: from_ms(r.try_get("created_at")?),
    })
}

/// A file name as kept: the last path component, without control characters, at most
/// [`MAX_FILE_NAME`] characters; `None` when nothing is left.
fn clean_file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(MAX_FILE_NAME).collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_string())
}

impl Storage {
    /// Stores an image uploaded by `user_id`. `InvalidInput` unless the bytes are a PNG, JPEG, GIF or
    /// WebP image (checked from their signature).
    pub async fn create_attachment(&self, user_id: &str, file_name: Option<&str>, bytes: &[u8]) -> Result<Attachment> {
        let media_type = sniff_image_type(bytes)
            .ok_or_else(|| CoreError::InvalidInput("the file is not a PNG, JPEG, GIF or WebP image".to_string()))?;
        let a = Attachment {
            id: new_id(),
            user_id: user_id.to_string(),
            message_id: None,
            media_type: media_type.to_string(),
            file_name: file_name.and_then(clean_file_name),
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            created_at: from_ms(now_ms()),
        };
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        sqlx::query(
            "INSERT INTO attachments (id, user_id, message_id, media_type, file_name, size, data_base64, created_at) \
             VALUES ($1, $2, NULL, $3, $4, $5, $6, $7)",
        )
        .bind(&a.id)
        .bind(user_id)
        .bind(&a.media_type)
        .bind(a.file_name.as_deref())
        .bind(a.size)
        .bind(data)
        .bind(a.created_at.timestamp_millis())
        .execute(self.pool())
        .await
        .map_err(super::user_row_error(user_id))?;
        Ok(a)
    }

    /// An attachment of `user_id` (`None` if it does not exist or is someone else's).
    pub async fn get_attachment(&self, user_id: &str, id: &str) -> Result<Option<Attachment>> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM attachments WHERE id = $1 AND user_id = $2"))
            .bind(id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(row_to_attachment).transpose()
    }

    /// An attachment of `user_id` with its bytes.
    pub async fn attachment_bytes(&self, user_id: &str, id: &str) -> Result<Option<(Attachment, Vec<u8>)>> {
        let row = sqlx::query(&format!("SELECT {COLS}, data_base64 FROM attachments WHERE id = $1 AND user_id = $2"))
            .bind(id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let data: String = row.try_get("data_base64")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| CoreError::Database(format!("attachment {id}: corrupt data: {e}")))?;
        Ok(Some((row_to_attachment(&row)?, bytes)))
    }

    /// Attaches `ids` (unsent uploads of `user_id`) to the message `message_id`. All or nothing:
    /// `NotFound` naming the first id that is not an unsent upload of this user.
    pub async fn attach_to_message(&self, user_id: &str, ids: &[String], message_id: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for id in ids {
            let r = sqlx::query(
                "UPDATE attachments SET message_id = $1 WHERE id = $2 AND user_id = $3 AND message_id IS NULL",
            )
            .bind(message_id)
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 0 {
                tx.rollback().await?;
                return Err(CoreError::NotFound(format!("attachment {id}")));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The attachments of one message, in upload order.
    pub async fn message_attachments(&self, message_id: &str) -> Result<Vec<Attachment>> {
        sqlx::query(&format!("SELECT {COLS} FROM attachments WHERE message_id = $1 ORDER BY created_at, id"))
            .bind(message_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(row_to_attachment)
            .collect()
    }

    /// The attachments of a conversation's messages, in upload order.
    pub async fn conversation_attachments(&self, conversation_id: &str) -> Result<Vec<Attachment>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM attachments a JOIN messages m ON m.id = a.message_id \
             WHERE m.conversation_id = $1 ORDER BY a.created_at, a.id",
            COLS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(conversation_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_attachment).collect()
    }

    /// The images of a conversation's messages as `(message id, image)`, in upload order: what the
    /// history sent to a vision model carries.
    pub async fn conversation_images(&self, conversation_id: &str) -> Result<Vec<(String, ImagePart)>> {
        let rows = sqlx::query(
            "SELECT a.message_id, a.media_type, a.data_base64 FROM attachments a \
             JOIN messages m ON m.id = a.message_id WHERE m.conversation_id = $1 ORDER BY a.created_at, a.id",
        )
        .bind(conversation_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("message_id")?,
                    ImagePart::Base64 { media_type: r.try_get("media_type")?, data: r.try_get("data_base64")? },
                ))
            })
            .collect()
    }

    /// The images (with their bytes, base64) of attachments `ids` of `user_id`, in the given order.
    /// `NotFound` for an id that is not this user's; `InvalidInput` for one already sent.
    pub async fn unsent_images(&self, user_id: &str, ids: &[String]) -> Result<Vec<ImagePart>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "SELECT message_id, media_type, data_base64 FROM attachments WHERE id = $1 AND user_id = $2",
            )
            .bind(id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("attachment {id}")))?;
            if row.try_get::<Option<String>, _>("message_id")?.is_some() {
                return Err(CoreError::InvalidInput(format!("attachment {id} was already sent; upload it again")));
            }
            out.push(ImagePart::Base64 { media_type: row.try_get("media_type")?, data: row.try_get("data_base64")? });
        }
        Ok(out)
    }
}

/// Data retention (`crate::retention`): batched deletes of old attachments.
impl Storage {
    /// Deletes up to `limit` attachments of messages created before `before`. Returns how many.
    pub async fn purge_message_attachments_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.delete_batch(
            "DELETE FROM attachments WHERE id IN (SELECT a.id FROM attachments a \
               JOIN messages m ON m.id = a.message_id WHERE m.created_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    /// Deletes up to `limit` uploads never sent with a message and uploaded before `before`. Returns
    /// how many.
    pub async fn purge_unsent_attachments_before(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.delete_batch(
            "DELETE FROM attachments WHERE id IN (SELECT id FROM attachments \
               WHERE message_id IS NULL AND created_at < $1 LIMIT $2)",
            before,
            limit,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_image_types() {
        assert_eq!(sniff_image_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff_image_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff_image_type(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff_image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_image_type(b"<svg onload=alert(1)>"), None);
        assert_eq!(sniff_image_type(b""), None);
    }

    #[test]
    fn file_names_are_cleaned() {
        assert_eq!(clean_file_name("../../etc/pa\u{0}sswd").as_deref(), Some("passwd"));
        assert_eq!(clean_file_name("C:\\Users\\me\\cat.png").as_deref(), Some("cat.png"));
        assert_eq!(clean_file_name("  "), None);
        assert_eq!(clean_file_name(&"a".repeat(400)).map(|s| s.len()), Some(MAX_FILE_NAME));
    }
}
