//! Runnable examples of embedding Gaia; see `examples/` and run them with
//! `cargo run -p gaia-examples --example NAME`.
//!
//! The library part only holds what several examples share: where to find the sample game world.

use std::path::{Path, PathBuf};

/// The sample game world (an Obsidian vault of Markdown notes) that the examples read.
#[derive(Debug)]
pub struct SampleVault {
    /// The vault's folder.
    pub path: PathBuf,
    /// The temporary folder holding the built-in copy, deleted when this value is dropped.
    _temp: Option<tempfile::TempDir>,
}

/// The sample world: the developers' vault in `../shared/kb-fixtures/world` beside the workspace when it
/// is there, otherwise a smaller version of it written to a temporary folder (so the examples also run
/// from a clean clone). The examples only read it.
pub fn sample_vault() -> std::io::Result<SampleVault> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/kb-fixtures/world");
    if shared.join("README.md").is_file() {
        return Ok(SampleVault { path: shared.canonicalize()?, _temp: None });
    }
    let temp = tempfile::tempdir()?;
    for (path, text) in BUILT_IN_WORLD {
        let file = temp.path().join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(file, text)?;
    }
    Ok(SampleVault { path: temp.path().to_path_buf(), _temp: Some(temp) })
}

/// A small version of the sample world: the same notes, names, aliases and links, shorter texts.
const BUILT_IN_WORLD: &[(&str, &str)] = &[
    (
        "README.md",
        "---\ntitle: Zombie Survival World\ntags: [world, index]\n---\n# Zombie Survival World\n\n\
         Start here: [[Places/Safe House|safe houses]], [[Characters/Dr. Mara Quill|people]], \
         [[Quests/First Light|quests]] and [[Rules/Weather Effects|rules]].\n",
    ),
    (
        "Characters/Dr. Mara Quill.md",
        "---\ntitle: Dr. Mara Quill\ntags: [npc, companion]\n---\n# Dr. Mara Quill\n\n\
         An epidemiologist who stayed behind. She guides new players.\n\n## Broadcasts\n\
         Every evening at 19:00 she reads the infection map. Quote: \"Stay inside when the fog rolls in.\"\n\n\
         ## Relationships\n- trusts players who completed [[Quests/First Light]]\n\
         - distrusts anyone who looted the [[Places/Safe House|Bunker]]\n",
    ),
    (
        "Places/Safe House.md",
        "---\ntitle: Safe House\ntags: [location, shelter]\naliases: [Bunker, The Old Pharmacy]\n---\n\
         # Safe House\n\nThe old pharmacy on Fifth Street. Players within 50 metres are protected from the \
         horde at night.\n\n## Dangers\nWhen the [[Rules/Weather Effects]] say fog, the protection radius \
         shrinks to 20 metres.\n",
    ),
    (
        "Quests/First Light.md",
        "---\ntitle: First Light\ntags: [quest, tutorial]\nreward: 50 xp\n---\n# First Light\n\n\
         Walk 500 real metres before sunrise and check in at the [[Places/Safe House]], then talk to \
         [[Characters/Dr. Mara Quill]].\n",
    ),
    (
        "Rules/Weather Effects.md",
        "---\ntitle: Weather Effects\ntags: [rules, weather]\n---\n# Weather Effects\n\n## Fog\n\
         Fog makes zombies faster and hides them. Safe houses shrink their protection radius.\n",
    ),
];

/// A game server's app on a free loopback port, until [`LocalServer::stop`].
pub struct LocalServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalServer {
    /// Serves `app` on a free loopback port in a background task.
    pub async fn start(app: axum::Router) -> std::io::Result<LocalServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(LocalServer { url, stop, task })
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// The conversation engine over `storage`, the `models` and `quotas`, with in-process events,
/// access control and usage metering, and no background model calls (automatic titles, persona
/// memory) nor tool catalog: the examples check every request the model gets.
pub fn engine(
    storage: &gaia_core::storage::Storage,
    models: gaia_providers::ProviderRegistry,
    quotas: gaia_core::quota::Quotas,
) -> gaia_chat::Engine {
    gaia_chat::Engine::new(gaia_chat::EngineParts {
        storage: storage.clone(),
        providers: models,
        events: gaia_core::events::EventBus::default(),
        quotas,
        rbac: gaia_rbac::Rbac::unloaded(storage.clone()),
        usage: gaia_core::usage::UsageRecorder::spawn(storage.clone()),
        responses: None,
        observer: None,
        chat: gaia_core::config::ChatConfig { auto_title: false, memory: false, ..Default::default() },
        tools: None,
        tool_limits: Default::default(),
        guardrails: Default::default(),
        embeddings: Default::default(),
        cache: None,
    })
}
