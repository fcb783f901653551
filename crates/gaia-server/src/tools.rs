//! The server's tool sources, for chat turns (the conversation engine's [`gaia_chat::ToolCatalog`])
//! and agents: `kb`, the knowledge base as the caller may read it, `world`, the game worlds the caller
//! may play (`gaia_world::tools`), `assets`, images, speech and 3D models made for the caller
//! (`gaia_assets::tools`), and the configured MCP servers by name, kept connected once first
//! used (the warm toolbox).

use gaia_core::auth::Principal;
use gaia_core::config::McpServerConfig;
use gaia_kb::Kb;
use gaia_mcp::{KbToolSource, McpClientSource, Toolbox};
use std::sync::{Arc, OnceLock};
use tokio::sync::OnceCell;

/// The name of the knowledge base's tool source.
pub const KB_SOURCE: &str = "kb";

/// The tool sources of one server.
pub struct ServerTools {
    kb: OnceLock<Kb>,
    /// Weak: the worlds hold the engine, which holds these tools.
    worlds: OnceLock<gaia_world::WeakWorlds>,
    /// The asset service (made after the engine, which holds these tools).
    assets: OnceLock<gaia_assets::WeakAssets>,
    rbac: gaia_rbac::Rbac,
    warm: OnceCell<Toolbox>,
    mcp_servers: Vec<McpServerConfig>,
    kb_tools: bool,
}

impl ServerTools {
    /// The sources over `rbac`'s access control, the MCP servers `mcp_servers`; `kb_tools`: whether
    /// the knowledge base is offered as tools (`agents.kb_tools`).
    pub(crate) fn new(rbac: gaia_rbac::Rbac, mcp_servers: Vec<McpServerConfig>, kb_tools: bool) -> Self {
        ServerTools {
            kb: OnceLock::new(),
            worlds: OnceLock::new(),
            assets: OnceLock::new(),
            rbac,
            warm: OnceCell::new(),
            mcp_servers,
            kb_tools,
        }
    }

    /// Attaches the game worlds (made after the engine, which holds these tools).
    pub(crate) fn set_worlds(&self, worlds: &gaia_world::Worlds) {
        let _ = self.worlds.set(worlds.downgrade());
    }

    /// Attaches the asset service.
    pub(crate) fn set_assets(&self, assets: &gaia_assets::Assets) {
        let _ = self.assets.set(assets.downgrade());
    }

    /// The game-world tools of `p`: the experiences they may play.
    async fn world_tools(&self, p: &Principal) -> Option<gaia_world::tools::WorldTools> {
        let worlds = self.worlds.get()?.upgrade()?;
        let rbac = self.rbac.loaded().await;
        let who = gaia_rbac::Subject::from(p);
        let playable: Vec<String> = worlds
            .catalog()
            .experiences
            .keys()
            .filter(|id| {
                let r = gaia_rbac::Resource::new(gaia_rbac::ResourceType::Experience, format!("/experiences/{id}"));
                rbac.check(&who, gaia_rbac::Action::Write, &r).allowed
            })
            .cloned()
            .collect();
        (!playable.is_empty()).then(|| gaia_world::tools::WorldTools::new(worlds, p.user_id.clone(), playable))
    }

    /// The knowledge base, once attached.
    pub(crate) fn kb(&self) -> Option<&Kb> {
        self.kb.get()
    }

    /// Attaches the knowledge base (once: `false` when one already was).
    pub(crate) fn set_kb(&self, kb: Kb) -> bool {
        self.kb.set(kb).is_ok()
    }

    /// The knowledge base as `p` may see it: documents they may not read are left out everywhere.
    /// Searches filter in the index on where `p` may read (areas, folders, shared documents), so
    /// that they cost the same however many documents `p` may read.
    pub(crate) async fn kb_for(&self, p: &Principal) -> Option<Kb> {
        let kb = self.kb()?;
        let rbac = self.rbac.loaded().await.clone();
        let who = gaia_rbac::Subject::from(p);
        let reach = rbac.reach(&who, gaia_rbac::Action::Read, gaia_rbac::ResourceType::Kb);
        let filter: gaia_kb::ReadFilter = Arc::new(move |path: &str| {
            rbac.check(&who, gaia_rbac::Action::Read, &gaia_rbac::Resource::kb_document(path)).allowed
        });
        Some(kb.restricted(kb_read_access(filter, &reach)))
    }

    /// The MCP servers' tools, connected and listed now, each server afresh (a server that fails is
    /// left out, and logged as left out of `whose` tools).
    pub(crate) async fn connect(&self, whose: &str) -> Toolbox {
        let mut tb = Toolbox::new();
        for c in &self.mcp_servers {
            tb.add(Arc::new(McpClientSource::new(c.clone())));
        }
        for (source, err) in tb.refresh().await {
            tracing::warn!(%source, %err, whose, "MCP server left out");
        }
        tb
    }

    /// The MCP servers' tools, connected and listed on first use and then kept.
    pub(crate) async fn warm(&self) -> &Toolbox {
        self.warm.get_or_init(|| self.connect("the warm tools")).await
    }
}

/// What a caller may read in the knowledge base: `filter` (their permission check on one vault path)
/// as the reference, and their `reach` (from the same permissions) as the terms the search index
/// filters on; permissions the index cannot express leave the filter to test documents one by one.
pub fn kb_read_access(filter: gaia_kb::ReadFilter, reach: &gaia_rbac::Reach) -> gaia_kb::ReadAccess {
    let mut access = gaia_kb::ReadAccess::new(filter);
    if reach.everything {
        access = access.everything();
    }
    for path in &reach.exact {
        access = access.exact(path);
    }
    for path in &reach.subtrees {
        access = access.subtree(path);
    }
    if reach.other.is_empty() {
        access = access.exhaustive();
    }
    access
}

#[async_trait::async_trait]
impl gaia_chat::ToolCatalog for ServerTools {
    async fn toolbox(&self, principal: &Principal, sources: &[String]) -> Toolbox {
        let mcp: Vec<String> =
            sources.iter().filter(|s| self.mcp_servers.iter().any(|c| &c.name == *s)).cloned().collect();
        // The MCP servers are only reached when the persona names one of them.
        let mut tb = if mcp.is_empty() { Toolbox::new() } else { self.warm().await.only(&mcp) };
        if self.kb_tools && sources.iter().any(|s| s == KB_SOURCE) {
            if let Some(view) = self.kb_for(principal).await {
                if let Err(e) = tb.add_listed(Arc::new(KbToolSource::new(view))).await {
                    tracing::warn!(error = %e, "knowledge-base tools unavailable for this turn");
                }
            }
        }
        if sources.iter().any(|s| s == gaia_assets::tools::ASSETS_SOURCE) {
            if let Some(assets) = self.assets.get().and_then(|a| a.upgrade()) {
                let tools = gaia_assets::tools::AssetTools::new(assets, principal.clone());
                if let Err(e) = tb.add_listed(Arc::new(tools)).await {
                    tracing::warn!(error = %e, "asset tools unavailable for this turn");
                }
            }
        }
        if sources.iter().any(|s| s == gaia_world::tools::WORLD_SOURCE) {
            if let Some(world) = self.world_tools(principal).await {
                if let Err(e) = tb.add_listed(Arc::new(world)).await {
                    tracing::warn!(error = %e, "game-world tools unavailable for this turn");
                }
            }
        }
        tb
    }
}
