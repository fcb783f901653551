//! Meshy's text-to-3D task API (`POST /openapi/v2/text-to-3d`, `GET` and `DELETE
//! /openapi/v2/text-to-3d/{id}`): a 3D model is a task created at once and polled until it
//! succeeds, then its binary glTF downloaded. Authenticated with `Authorization: Bearer`.
//!
//! ```
//! use gaia_providers::{MeshyConfig, MeshyProvider, Provider};
//! let meshy = MeshyProvider::new(MeshyConfig::new("https://api.meshy.ai", Some("msy-…".into())));
//! assert_eq!(meshy.name(), "meshy");
//! ```

use crate::error::ProviderError;
use crate::http;
use crate::lanes::{ClientSettings, Lanes};
use crate::media::{self, Model3dRequest, Model3dTask, TaskStatus};
use crate::provider::Provider;
use crate::types::{ChatRequest, ChatResponse, ChatStream, ProviderHealth};
use async_trait::async_trait;
use gaia_core::types::ModelInfo;
use serde_json::{json, Value};
use std::time::Duration;

/// The models Meshy's text-to-3D offers when none are configured.
pub const MESHY_MODELS: &[&str] = &["meshy-5", "meshy-6", "latest"];

/// Credits a preview task costs on `model` (Meshy's price list: 20 for Meshy-6 and `latest`, 5
/// otherwise), when the task does not report what it consumed.
pub fn preview_credits(model: &str) -> u32 {
    if model == "meshy-6" || model == "latest" {
        20
    } else {
        5
    }
}

/// Settings of a Meshy provider.
#[derive(Clone)]
pub struct MeshyConfig {
    /// Registry name (`meshy`).
    pub name: String,
    /// Base URL without `/openapi` (`https://api.meshy.ai`).
    pub base_url: String,
    /// API key, sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Models offered; empty means [`MESHY_MODELS`].
    pub models: Vec<String>,
    /// Time one API call may take (a task itself takes minutes and is polled).
    pub timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for MeshyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshyConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl MeshyConfig {
    /// A config named `meshy` for `base_url` with a 60 s timeout per call.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        MeshyConfig {
            name: "meshy".into(),
            base_url: base_url.into(),
            api_key,
            models: Vec::new(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Client of Meshy's text-to-3D API.
#[derive(Debug)]
pub struct MeshyProvider {
    cfg: MeshyConfig,
    lanes: Lanes,
}

impl MeshyProvider {
    /// A client for `cfg`.
    pub fn new(cfg: MeshyConfig) -> Self {
        let lanes = Lanes::new(ClientSettings {
            connect_timeout: cfg.connect_timeout,
            timeout: cfg.timeout,
            http2_prior_knowledge: false,
        });
        MeshyProvider { cfg, lanes }
    }

    fn url(&self, path: &str) -> String {
        http::join(&self.cfg.base_url, path)
    }

    fn auth(&self, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let b = b.timeout(self.cfg.timeout);
        match &self.cfg.api_key {
            Some(k) => b.bearer_auth(k),
            None => b,
        }
    }

    fn no_chat(&self) -> ProviderError {
        ProviderError::InvalidRequest(format!("provider `{}` generates 3D models, not chat answers", self.cfg.name))
    }

    fn malformed(&self, what: &str) -> ProviderError {
        ProviderError::Stream { provider: self.cfg.name.clone(), message: what.to_string() }
    }
}

/// A task id safe to put in a URL path (Meshy's are UUIDs).
fn checked_task_id(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(id)
    } else {
        Err(ProviderError::InvalidRequest(format!("not a task id: {id:?}")))
    }
}

/// A task object of Meshy's API, parsed.
pub(crate) fn parse_task(v: &Value) -> Option<Model3dTask> {
    let status = match v.get("status")?.as_str()? {
        "PENDING" => TaskStatus::Pending,
        "IN_PROGRESS" => TaskStatus::InProgress,
        "SUCCEEDED" => TaskStatus::Succeeded,
        "FAILED" => TaskStatus::Failed,
        // An expired task's files are gone: as good as cancelled.
        "CANCELED" | "EXPIRED" => TaskStatus::Canceled,
        _ => return None,
    };
    let text = |p: &str| v.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    Some(Model3dTask {
        id: v.get("id")?.as_str()?.to_string(),
        status,
        progress: v.get("progress").and_then(Value::as_u64).unwrap_or(0).min(100) as u8,
        model_url: text("/model_urls/glb"),
        thumbnail_url: text("/thumbnail_url"),
        error: text("/task_error/message"),
    })
}

#[async_trait]
impl Provider for MeshyProvider {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let ids: Vec<String> = if self.cfg.models.is_empty() {
            MESHY_MODELS.iter().map(|m| m.to_string()).collect()
        } else {
            self.cfg.models.clone()
        };
        Ok(ids
            .into_iter()
            .map(|id| {
                let mut m = ModelInfo::new(id, self.cfg.name.clone());
                m.capabilities = vec!["model_3d".into()];
                m
            })
            .collect())
    }

    async fn chat(&self, _req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        Err(self.no_chat())
    }

    async fn chat_stream(&self, _req: &ChatRequest) -> Result<ChatStream, ProviderError> {
        Err(self.no_chat())
    }

    async fn start_model_3d(&self, req: &Model3dRequest) -> Result<String, ProviderError> {
        let mut body = json!({"mode": "preview", "prompt": req.prompt, "ai_model": req.model});
        if let Some(s) = &req.art_style {
            body["art_style"] = json!(s);
        }
        if let Some(n) = &req.negative_prompt {
            body["negative_prompt"] = json!(n);
        }
        if let Some(p) = req.target_polycount {
            body["target_polycount"] = json!(p);
            body["should_remesh"] = json!(true);
        }
        if let Some(s) = req.seed {
            body["seed"] = json!(s);
        }
        let b = self.auth(self.lanes.any().post(self.url("openapi/v2/text-to-3d"))).json(&body);
        let v = http::json(&self.cfg.name, http::send(&self.cfg.name, b).await?).await?;
        let id = v.get("result").and_then(Value::as_str).ok_or_else(|| self.malformed("no task id in `result`"))?;
        Ok(checked_task_id(id)?.to_string())
    }

    async fn poll_model_3d(&self, task: &str) -> Result<Model3dTask, ProviderError> {
        let url = self.url(&format!("openapi/v2/text-to-3d/{}", checked_task_id(task)?));
        let v =
            http::json(&self.cfg.name, http::send(&self.cfg.name, self.auth(self.lanes.any().get(url))).await?).await?;
        parse_task(&v).ok_or_else(|| self.malformed("not a text-to-3D task object"))
    }

    async fn cancel_model_3d(&self, task: &str) -> Result<(), ProviderError> {
        // A task this account does not have is a 404 (a balanced provider then asks the next key).
        let url = self.url(&format!("openapi/v2/text-to-3d/{}", checked_task_id(task)?));
        http::send(&self.cfg.name, self.auth(self.lanes.any().delete(url))).await.map(|_| ())
    }

    async fn download(&self, url: &str, max: usize) -> Result<bytes::Bytes, ProviderError> {
        // Model files are on Meshy's asset host, signed in their URL: no key goes with them.
        let url = media::download_url(&self.cfg.name, &self.cfg.base_url, url)?;
        let b = self.lanes.any().get(url).timeout(self.cfg.timeout.max(Duration::from_secs(120)));
        media::download(&self.cfg.name, b, max).await
    }

    async fn health(&self) -> ProviderHealth {
        http::probe(&self.cfg.name, self.auth(self.lanes.any().get(self.url("openapi/v1/balance")))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_parse_in_every_state() {
        let v = json!({"id": "t-1", "status": "IN_PROGRESS", "progress": 40, "model_urls": {"glb": ""}});
        let t = parse_task(&v).unwrap();
        assert_eq!((t.status, t.progress, t.model_url), (TaskStatus::InProgress, 40, None));
        let v = json!({"id": "t-1", "status": "SUCCEEDED", "progress": 100,
                       "model_urls": {"glb": "https://assets.example/m.glb"}, "thumbnail_url": "https://assets.example/t.png"});
        let t = parse_task(&v).unwrap();
        assert_eq!(t.model_url.as_deref(), Some("https://assets.example/m.glb"));
        assert!(t.status.is_final());
        let v = json!({"id": "t-1", "status": "FAILED", "progress": 3, "task_error": {"message": "no"}});
        assert_eq!(parse_task(&v).unwrap().error.as_deref(), Some("no"));
        assert_eq!(parse_task(&json!({"id": "t", "status": "EXPIRED"})).unwrap().status, TaskStatus::Canceled);
        assert_eq!(parse_task(&json!({"id": "t", "status": "DANCING"})), None);
        assert_eq!(parse_task(&json!({"id": "t", "status": "PENDING", "progress": 900})).unwrap().progress, 100);
    }

    #[test]
    fn task_ids_cannot_walk_the_api() {
        assert!(checked_task_id("018a210d-8ba4-705c-b111-1f1776f7f578").is_ok());
        for bad in ["", "../balance", "a/b", "x?y=1", "a b"] {
            assert!(checked_task_id(bad).is_err(), "{bad}");
        }
    }
}
