//! The vendors' HTTP APIs as seen from the *server* side: parsing their requests into a
//! [`ChatRequest`](crate::ChatRequest) and rendering answers (whole or streamed) in their formats, so a
//! gateway can accept OpenAI- or Anthropic-format requests and send them to any provider.

pub mod anthropic;
pub mod openai;

use crate::error::ProviderError;

fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidRequest(msg.into())
}

/// Checks a tool's JSON schema: it must be an object schema (`{"type": "object", ...}`).
fn check_schema(name: &str, schema: &serde_json::Value) -> Result<(), ProviderError> {
    let obj = schema.as_object().ok_or_else(|| invalid(format!("tool `{name}`: parameters must be a JSON object")))?;
    match obj.get("type") {
        None => Ok(()),
        Some(t) if t == "object" => Ok(()),
        Some(t) => Err(invalid(format!("tool `{name}`: parameters must have \"type\": \"object\", not {t}"))),
    }
}

fn check_tool_name(name: &str) -> Result<(), ProviderError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("tool name `{name}` must be 1-64 characters of a-z, A-Z, 0-9, _ or -")))
    }
}
