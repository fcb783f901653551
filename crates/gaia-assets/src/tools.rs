//! The asset tools of chat turns and agents (source `assets`): a model may draw an image, speak a
//! line or start a 3D model for the caller, each admitted, priced and metered like any generation
//! (a hard budget refuses the tool call), with the models of `[assets]`.

use crate::service::{AssetRequest, Assets};
use async_trait::async_trait;
use gaia_core::attribution::Attribution;
use gaia_core::auth::Principal;
use gaia_core::storage::AssetKind;
use gaia_core::types::ToolSpec;
use gaia_mcp::{McpError, ToolSource};
use serde_json::{json, Map, Value};

/// The asset tools' source name.
pub const ASSETS_SOURCE: &str = "assets";

/// The asset tools for one caller.
pub struct AssetTools {
    assets: Assets,
    principal: Principal,
}

impl AssetTools {
    /// The tools, acting as `principal`.
    pub fn new(assets: Assets, principal: Principal) -> AssetTools {
        AssetTools { assets, principal }
    }
}

#[async_trait]
impl ToolSource for AssetTools {
    fn name(&self) -> &str {
        ASSETS_SOURCE
    }

    async fn specs(&self) -> gaia_mcp::Result<Vec<ToolSpec>> {
        let spec = |name: &str, description: &str, parameters: Value| ToolSpec {
            name: name.into(),
            description: Some(description.into()),
            parameters: parameters.into(),
        };
        Ok(vec![
            spec(
                "generate_image",
                "Draw an image (an item icon, a texture, a portrait). Returns the asset's id and URL.",
                json!({"type": "object", "properties": {
                    "prompt": {"type": "string", "maxLength": 4000},
                    "size": {"type": "string", "description": "WIDTHxHEIGHT, e.g. 1024x1024"}
                }, "required": ["prompt"]}),
            ),
            spec(
                "speak",
                "Say a line aloud (text to speech). Returns the audio asset's id and URL.",
                json!({"type": "object", "properties": {
                    "text": {"type": "string", "maxLength": 4096},
                    "voice": {"type": "string"}
                }, "required": ["text"]}),
            ),
            spec(
                "generate_model_3d",
                "Start making a 3D model (a prop). It takes minutes: returns the pending asset's id.",
                json!({"type": "object", "properties": {
                    "prompt": {"type": "string", "maxLength": 600}
                }, "required": ["prompt"]}),
            ),
        ])
    }

    async fn call(&self, tool: &str, arguments: &str) -> gaia_mcp::Result<String> {
        let args = gaia_mcp::toolbox::parse_arguments(tool, arguments)?;
        let fail = |message: String| McpError::Tool { tool: tool.into(), message };
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
        let mut options = Map::new();
        let (kind, prompt) = match tool {
            "generate_image" => {
                if let Some(s) = text("size") {
                    options.insert("size".into(), json!(s));
                }
                (AssetKind::Image, text("prompt"))
            }
            "speak" => {
                if let Some(v) = text("voice") {
                    options.insert("voice".into(), json!(v));
                }
                (AssetKind::Speech, text("text"))
            }
            "generate_model_3d" => (AssetKind::Model3d, text("prompt")),
            other => return Err(fail(format!("no tool `{other}` in `{ASSETS_SOURCE}`"))),
        };
        let req = AssetRequest { kind: Some(kind), prompt: prompt.unwrap_or_default(), model: None, options };
        let made = self
            .assets
            .generate(&self.principal, Attribution::default(), &req)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let list: Vec<Value> = made
            .iter()
            .map(|a| {
                json!({"asset_id": a.id, "type": a.kind.as_str(), "status": a.status.as_str(),
                       "url": format!("/api/v1/assets/{}/content", a.id), "cost_usd": a.cost_usd})
            })
            .collect();
        Ok(json!({"assets": list}).to_string())
    }
}
