//! A conversation turn: from a caller's input to a stored answer.
//!
//! [`Engine::turn`] checks the input and prepares the turn: the persona (the request's, the
//! conversation's, the user's default, the built-in one), the model and its parameters, the stored
//! history with its images fitted to the model's context window, and the user's message, stored.
//! [`Turn::complete`] or [`Turn::stream`] then calls the model (the one call path: metered, routed)
//! and stores the answer with its usage; a stream dropped early (the client left) stores what had
//! arrived. A new conversation gets a short title from the model in the background.
//!
//! Tools: when the engine has a [`crate::ToolCatalog`], each turn offers the model the tools of the
//! sources its persona may use (by default the knowledge base's, as the caller may read it; a persona
//! with an empty list gets none). The model decides: when it calls tools they run (in parallel when
//! it asks for several), their results go back to it, and the loop ends with its answer, within the
//! limits of `[agents]` (tool calls, round trips, deadline) and what is left of the caller's hard
//! budgets. Each model call of the loop is metered. A stream shows each tool call as it starts and
//! ends ([`TurnEvent::ToolCall`], [`TurnEvent::ToolResult`]) between the text pieces.

use crate::admission::Admitted;
use crate::call::{Answer, CallSpec};
use crate::engine::Engine;
use crate::error::{ChatError, Result};
use crate::guardrails::{Release, RuleSet, Stage, Verdict};
use crate::memory::Remember;
use futures::stream::BoxStream;
use futures::StreamExt;
use gaia_core::config::AgentLimits;
use gaia_core::context;
use gaia_core::events::Event as BusEvent;
use gaia_core::storage::{Conversation, Persona, DEFAULT_PERSONA_ID};
use gaia_core::types::ToolSpec;
use gaia_core::types::{ChatMessage, FinishReason, Role, Usage};
use gaia_mcp::{Agent, AgentEvent, AgentRun, McpError, Toolbox};
use gaia_providers::{merge_usage, Candidate, ChatEvent, ChatRequest, ChatStream};
use serde::Deserialize;
use std::sync::Arc;

/// Most images one message may carry.
pub const MAX_IMAGES_PER_MESSAGE: usize = 8;

/// What a caller asks for in one turn (the body of `/api/v1/chat`, without `stream`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TurnInput {
    /// The user's message (may be empty when `attachments` are given; ignored with `regenerate`).
    #[serde(default)]
    pub message: String,
    /// Images uploaded beforehand (attachment ids), sent with this message to a vision model.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Answer the conversation's last user message again: the answers after it are deleted and a
    /// new one is generated (needs `conversation_id`; no new user message is stored).
    #[serde(default)]
    pub regenerate: bool,
    /// Model (`id` or `provider/id`); else the persona's, the user's, the server's default.
    #[serde(default)]
    pub model: Option<String>,
    /// Conversation to continue; a new one when absent.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Extra system prompt for this turn.
    #[serde(default)]
    pub system: Option<String>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Persona for this turn (and, from now on, for the conversation); else the conversation's, else
    /// the user's default, else the built-in one.
    #[serde(default)]
    pub persona_id: Option<String>,
}

/// A prepared turn: the conversation, the model's candidates and the request to send.
pub struct Turn {
    engine: Engine,
    admitted: Admitted,
    endpoint: &'static str,
    conversation: Conversation,
    candidates: Vec<Candidate>,
    request: ChatRequest,
    /// The conversation was created by this turn (its title is provisional).
    is_new: bool,
    /// The user's message.
    message: String,
    /// This turn answers the last user message again.
    regenerate: bool,
    /// The model as asked for (the candidates were resolved from it).
    model_asked: String,
    /// Who answers (the persona's name), for the tool loop's records.
    speaker: String,
    /// The tools offered, when there are any.
    tools: Option<Arc<Toolbox>>,
    /// The persona (its memory of the user is updated after the answer).
    persona_id: Option<String>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("conversation", &self.conversation.id)
            .field("model", &self.request.model)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// A whole answer, stored.
#[derive(Debug, Clone)]
pub struct TurnAnswer {
    /// The conversation.
    pub conversation_id: String,
    /// The stored answer (`None` if it could not be stored; logged).
    pub message_id: Option<String>,
    /// The text.
    pub content: String,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// Tokens.
    pub usage: Usage,
    /// The provider that answered.
    pub provider: String,
    /// The model id at that provider.
    pub model: String,
    /// Attempts made, across providers (model round trips, when tools were offered).
    pub attempts: u32,
    /// The tools the model used, in order (offered names, `source__tool`).
    pub tools_used: Vec<String>,
}

/// Events of a streamed turn, independent of any wire format.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TurnEvent {
    /// More text of the answer.
    Delta(String),
    /// Why the model stopped.
    Finish(FinishReason),
    /// A tool call starts.
    ToolCall {
        /// The call's id.
        id: String,
        /// The tool (as offered: `source__tool`).
        name: String,
        /// Its arguments (JSON text).
        arguments: String,
    },
    /// A tool call ended.
    ToolResult {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// Whether it succeeded.
        ok: bool,
        /// How long it took.
        duration_ms: u64,
    },
    /// The provider failed mid-stream (what had arrived is stored).
    Error(String),
    /// The end, with the tokens of the turn.
    Done {
        /// Tokens (of every model call of the turn).
        usage: Usage,
        /// The tools the model used, in order.
        tools_used: Vec<String>,
    },
}

/// A streamed answer: who answers, and the events (the answer is stored as they end).
pub struct TurnStream {
    /// The conversation.
    pub conversation_id: String,
    /// The provider that answers.
    pub provider: String,
    /// The model id at that provider.
    pub model: String,
    /// The events, ending with [`TurnEvent::Done`].
    pub events: BoxStream<'static, TurnEvent>,
}

impl std::fmt::Debug for TurnStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnStream")
            .field("conversation_id", &self.conversation_id)
            .field("model", &self.model)
            .finish()
    }
}

/// A conversation's provisional title: the first line of its first message, at most 80 characters.
pub fn title_from(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    let mut t: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        t.push('…');
    }
    t
}

impl Engine {
    /// The persona of a turn: `asked` (404 when `user_id` cannot see it), else the first of `wanted`
    /// that exists, else the built-in one.
    pub async fn persona_for(
        &self,
        user_id: &str,
        asked: Option<&str>,
        wanted: impl IntoIterator<Item = String>,
    ) -> Result<Option<Persona>> {
        let storage = &self.inner.storage;
        if let Some(id) = asked {
            return match storage.get_persona(user_id, id).await? {
                Some(p) => Ok(Some(p)),
                None => Err(ChatError::not_found(format!("Persona {id} not found"))),
            };
        }
        for id in wanted.into_iter().chain(std::iter::once(DEFAULT_PERSONA_ID.to_string())) {
            if let Some(p) = storage.get_persona(user_id, &id).await? {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// Checks `input` and prepares its turn for `admitted` (metered under `endpoint`): nothing is
    /// stored when the input is refused; the user's message is stored once it is accepted.
    pub async fn turn(&self, admitted: &Admitted, endpoint: &'static str, input: TurnInput) -> Result<Turn> {
        let user_id = admitted.principal().user_id.as_str();
        let message = input.message.trim();
        if input.regenerate {
            if input.conversation_id.is_none() {
                return Err(ChatError::invalid("`regenerate` needs a `conversation_id`"));
            }
            if !input.attachments.is_empty() {
                return Err(ChatError::invalid("`regenerate` cannot take new `attachments`"));
            }
        } else if message.is_empty() && input.attachments.is_empty() {
            return Err(ChatError::invalid("`message` must not be empty"));
        }
        if input.attachments.len() > MAX_IMAGES_PER_MESSAGE {
            return Err(ChatError::invalid(format!("at most {MAX_IMAGES_PER_MESSAGE} images per message")));
        }
        let storage = &self.inner.storage;
        let existing = match &input.conversation_id {
            Some(id) => Some(
                storage
                    .get_conversation(user_id, id)
                    .await?
                    .ok_or_else(|| ChatError::not_found(format!("Conversation {id} not found")))?,
            ),
            None => None,
        };
        let settings = storage.user_settings(user_id).await?;
        let asked_persona = input.persona_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let wanted =
            existing.as_ref().and_then(|c| c.persona_id.clone()).into_iter().chain(settings.default_persona_id.clone());
        let persona = self.persona_for(user_id, asked_persona, wanted).await?;
        let model_asked = input
            .model
            .clone()
            .filter(|m| !m.trim().is_empty())
            .or_else(|| persona.as_ref().and_then(|p| p.model.clone()))
            .or(settings.default_model.clone())
            .unwrap_or_default();
        let providers = &self.inner.providers;
        let candidates = providers.candidates(&model_asked).await?;
        let model = candidates[0].1.clone();
        let images = storage.unsent_images(user_id, &input.attachments).await.map_err(|e| match e {
            gaia_core::CoreError::NotFound(what) => ChatError::not_found(format!("{what} not found: upload it first")),
            other => other.into(),
        })?;
        if !images.is_empty() {
            let entry = providers.model_entry(candidates[0].0.name(), &model);
            // Refuse only when the catalog says what the model can do and vision is not among it.
            if entry.is_some_and(|m| !m.capabilities.is_empty() && !m.capabilities.iter().any(|c| c == "vision")) {
                return Err(ChatError::invalid(format!(
                    "model {model} does not accept images; pick a model with the `vision` capability"
                )));
            }
        }
        let persona_id = persona.as_ref().map(|p| p.id.clone());
        let tools = self.tools_for(admitted, persona.as_ref()).await;
        let mut stored_history = match &existing {
            Some(c) => storage.list_messages(&c.id).await?,
            None => Vec::new(),
        };
        // Regenerating: answer the last user message again. The answers after it stay in the prompt's
        // past no more, and are deleted once the provider has accepted the new request.
        let message = if input.regenerate {
            let last = stored_history
                .iter()
                .rposition(|m| m.role == Role::User)
                .ok_or_else(|| ChatError::invalid("the conversation has no message to answer again"))?;
            stored_history.truncate(last + 1);
            stored_history[last].content.clone()
        } else {
            message.to_string()
        };
        // The new message is checked (and redacted) before anything is stored: a refused one leaves
        // no trace in the conversation, and a redacted one is stored redacted (so the history, the
        // title and the persona's memory never hold what was taken out). The turn's model calls
        // then do not check the input again.
        let message = if input.regenerate {
            message
        } else {
            let rules = self.guard_rules(admitted, persona_id.as_deref()).await;
            let mut message = message;
            if self.inner.guardrails.covers(&rules, Stage::Input) {
                self.guard_input(admitted, endpoint, &rules, &mut message).await?;
            }
            message
        };
        let (conversation, is_new) = match existing {
            Some(c) => {
                if asked_persona.is_some() && c.persona_id != persona_id {
                    storage.set_conversation_persona(user_id, &c.id, persona_id.as_deref()).await?;
                }
                (c, false)
            }
            None => {
                let title = if message.is_empty() { "Image".to_string() } else { title_from(&message) };
                let c = storage
                    .create_conversation_with_persona(user_id, Some(&title), Some(&model), persona_id.as_deref())
                    .await?;
                self.inner.events.publish(BusEvent::ConversationUpdated { conversation_id: c.id.clone() });
                (c, true)
            }
        };
        let mut system = Vec::new();
        // The persona's prompt is the stable prefix of every turn: marked for the provider's prompt
        // cache (Anthropic's `cache_control`; OpenAI caches on its own).
        if let Some(p) = &persona {
            system.push(ChatMessage { cache: true, ..ChatMessage::system(p.system_prompt.clone()) });
        }
        if let Some(s) = input.system.as_deref().filter(|s| !s.trim().is_empty()) {
            system.push(ChatMessage::system(s));
        }
        let mut remembered_prompt = false;
        if let Some(pid) = persona_id.as_deref().filter(|_| self.inner.chat.memory) {
            let mut remembered = storage.persona_memory(user_id, pid).await?;
            remembered.facts = crate::memory::recall(self, admitted, &remembered.facts, &message).await;
            let prompt = crate::memory::prompt(&remembered);
            remembered_prompt = prompt.is_some();
            system.extend(prompt);
        }
        let mut history_images = if stored_history.iter().any(|m| !m.attachments.is_empty()) {
            storage.conversation_images(&conversation.id).await?
        } else {
            Vec::new()
        };
        // When regenerating, the last stored message is the one answered again: it is `latest` below.
        let latest_images = if input.regenerate {
            let last = stored_history.pop();
            let id = last.map(|m| m.id).unwrap_or_default();
            let (mine, rest): (Vec<_>, Vec<_>) = history_images.into_iter().partition(|(m, _)| *m == id);
            history_images = rest;
            mine.into_iter().map(|(_, i)| i).collect()
        } else {
            images
        };
        let history: Vec<ChatMessage> = stored_history
            .into_iter()
            .filter(|m| {
                matches!(m.role, Role::User | Role::Assistant | Role::System)
                    && (!m.content.is_empty() || !m.attachments.is_empty())
            })
            .map(|m| {
                let mut msg = ChatMessage::new(m.role, m.content);
                msg.images = history_images.iter().filter(|(id, _)| *id == m.id).map(|(_, i)| i.clone()).collect();
                msg
            })
            .collect();
        // Bound the history by the model's context window (oldest turns dropped first).
        let window = providers
            .model_entry(candidates[0].0.name(), &model)
            .and_then(|m| m.context_window)
            .unwrap_or(context::DEFAULT_CONTEXT_WINDOW);
        let reserve = input.max_tokens.unwrap_or(context::DEFAULT_ANSWER_RESERVE).min(window / 2);
        let latest = ChatMessage::user_with_images(&message, latest_images);
        let (mut messages, dropped) = context::fit_history(system, history, latest, window, reserve);
        // The conversation so far is the next turn's prefix as well: cached up to the message
        // before the new one; not when what the persona remembers (which changes between turns)
        // comes before it, for that prefix would be written to the cache each turn and never read.
        if let [.., before, _] = messages.as_mut_slice() {
            if before.role != Role::System && !remembered_prompt {
                before.cache = true;
            }
        }
        if dropped > 0 {
            tracing::debug!(conversation_id = %conversation.id, dropped, window, "older messages left out of the prompt");
        }
        if !input.regenerate {
            let stored = storage.add_message(&conversation.id, Role::User, &message, None, None).await?;
            if !input.attachments.is_empty() {
                storage.attach_to_message(user_id, &input.attachments, &stored.id).await?;
            }
            self.inner
                .events
                .publish(BusEvent::MessageCreated { conversation_id: conversation.id.clone(), message_id: stored.id });
        }
        let mut request = ChatRequest::new(model, messages);
        request.temperature =
            input.temperature.or_else(|| persona.as_ref().and_then(|p| p.temperature).map(|t| t as f32));
        request.max_tokens = input.max_tokens;
        request.user = Some(user_id.to_string());
        Ok(Turn {
            engine: self.clone(),
            admitted: admitted.clone(),
            endpoint,
            conversation,
            candidates,
            request,
            is_new,
            message,
            regenerate: input.regenerate,
            model_asked,
            speaker: persona.map(|p| p.name).unwrap_or_else(|| "assistant".into()),
            tools,
            persona_id,
        })
    }

    /// The tools a turn of `persona` offers `admitted`'s caller: those of the sources the persona may
    /// use, from the engine's catalog (`None` when there are none).
    async fn tools_for(&self, admitted: &Admitted, persona: Option<&Persona>) -> Option<Arc<Toolbox>> {
        let catalog = self.inner.tools.as_ref()?;
        let sources = match persona {
            Some(p) => p.tool_sources(),
            None => gaia_core::storage::DEFAULT_PERSONA_TOOLS.iter().map(|s| s.to_string()).collect(),
        };
        if sources.is_empty() {
            return None;
        }
        let toolbox = catalog.toolbox(admitted.principal(), &sources).await;
        (!toolbox.is_empty()).then(|| Arc::new(toolbox))
    }

    /// Stores an assistant message and announces it on the event bus; returns its id (`None`, logged,
    /// if it could not be stored).
    pub async fn store_answer(
        &self,
        conversation_id: &str,
        content: &str,
        model: &str,
        usage: Usage,
    ) -> Option<String> {
        let stored =
            self.inner.storage.add_message(conversation_id, Role::Assistant, content, Some(model), Some(usage));
        match stored.await {
            Ok(m) => {
                self.inner.events.publish(BusEvent::MessageCreated {
                    conversation_id: conversation_id.to_string(),
                    message_id: m.id.clone(),
                });
                Some(m.id)
            }
            Err(e) => {
                tracing::error!(error = %e, conversation_id, "cannot store the assistant message");
                None
            }
        }
    }
}

impl Turn {
    /// The conversation of the turn.
    pub fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// The request that will be sent.
    pub fn request(&self) -> &ChatRequest {
        &self.request
    }

    /// The tools offered to the model (none: an empty list).
    pub fn tools(&self) -> &[ToolSpec] {
        self.tools.as_deref().map(Toolbox::specs).unwrap_or_default()
    }

    /// The tool loop of this turn over `tools`: every model call metered under the turn's endpoint,
    /// within `limits` and what is left of the caller's agent ceiling and hard budgets
    /// ([`Engine::run_budget`]).
    async fn agent(&self, tools: Arc<Toolbox>, stream: bool, limits: AgentLimits) -> Result<Agent> {
        let engine = &self.engine;
        let budget = engine.run_budget(&self.admitted, &limits).await?;
        Ok(Agent::new(&self.speaker, engine.inner.providers.clone(), &self.model_asked, tools)
            .with_limits(limits)
            .with_budget(budget)
            .with_sampling(self.request.temperature, self.request.max_tokens)
            .with_recorder(crate::meter::RunMeter::new(engine, &self.admitted, self.endpoint))
            .for_user(&self.admitted.principal().user_id)
            .streaming(stream))
    }

    /// Runs this turn as an agent over the caller's own `tools` (instead of the persona's), within
    /// `limits`: the tool loop's progress goes to `progress` as it happens ([`AgentEvent`]), the answer
    /// is stored like any turn's, and the whole run comes back (its tool calls, tokens, cost). Used by
    /// the agent endpoints, whose toolbox is assembled per request (MCP servers, files).
    pub async fn run(
        self,
        tools: Toolbox,
        limits: AgentLimits,
        progress: Option<tokio::sync::mpsc::Sender<AgentEvent>>,
    ) -> Result<AgentRun> {
        let (rules, messages) = self.guarded_messages().await?;
        let guard_output = self.engine.inner.guardrails.covers(&rules, Stage::Output);
        // With output rules, the run's text is not passed on as it comes, nor its raw whole answer
        // (only the checked answer is returned): progress keeps its tool events.
        let progress = match progress {
            Some(tx) if guard_output => {
                let (ftx, mut frx) = tokio::sync::mpsc::channel::<AgentEvent>(64);
                tokio::spawn(async move {
                    while let Some(ev) = frx.recv().await {
                        if !matches!(ev, AgentEvent::TextDelta { .. } | AgentEvent::Text { .. })
                            && tx.send(ev).await.is_err()
                        {
                            break;
                        }
                    }
                });
                Some(ftx)
            }
            other => other,
        };
        let agent = self.agent(Arc::new(tools), false, limits).await?;
        let run = agent.run(messages, progress).await;
        // The agent's toolbox (and the MCP server processes it owns) ends here, before the answer is
        // stored.
        drop(agent);
        let mut run = run.map_err(run_error)?;
        if guard_output {
            self.engine.guard_answer(&self.admitted, self.endpoint, &rules, &mut run.content).await?;
        }
        self.provider_accepted().await?;
        let model = run.model.split_once('/').map_or(run.model.as_str(), |(_, m)| m);
        self.engine.store_answer(&self.conversation.id, &run.content, model, run.usage).await;
        self.after().spawn(&run.content);
        Ok(run)
    }

    fn spec(&self, stream: bool) -> CallSpec<'_> {
        CallSpec {
            stream,
            candidates: Some(&self.candidates),
            persona: self.persona_id.as_deref(),
            input_checked: true,
            ..CallSpec::new(self.endpoint, &self.request.model)
        }
    }

    /// For a regeneration, deletes the old answers once the provider has taken the new request.
    async fn provider_accepted(&self) -> Result<()> {
        if self.regenerate {
            self.engine.inner.storage.rewind_to_last_user_message(&self.conversation.id).await?;
            let id = self.conversation.id.clone();
            self.engine.inner.events.publish(BusEvent::ConversationUpdated { conversation_id: id });
        }
        Ok(())
    }

    /// The background jobs after the answer: a new conversation's title (when titles are on), and
    /// the persona's memory of the user (when memory is on).
    fn after(&self) -> After {
        let title = (self.is_new && self.engine.inner.chat.auto_title).then(|| AutoTitle {
            engine: self.engine.clone(),
            admitted: self.admitted.clone(),
            conversation: self.conversation.clone(),
            candidates: self.candidates.clone(),
            model: self.request.model.clone(),
            message: self.message.clone(),
        });
        let memory = self.persona_id.clone().filter(|_| self.engine.inner.chat.memory).map(|persona_id| Remember {
            engine: self.engine.clone(),
            admitted: self.admitted.clone(),
            persona_id,
            candidates: self.candidates.clone(),
            model: self.request.model.clone(),
            user: self.message.clone(),
            answer: String::new(),
        });
        After { title, memory }
    }

    /// Calls the model for the whole answer (running the tools it calls, when tools are offered) and
    /// stores it.
    pub async fn complete(self) -> Result<TurnAnswer> {
        if let Some(tools) = self.tools.clone() {
            return self.complete_with_tools(tools).await;
        }
        let (r, called) = self.engine.complete(&self.admitted, self.spec(false), &self.request).await?;
        self.provider_accepted().await?;
        let message_id = self.engine.store_answer(&self.conversation.id, &r.content, &called.model, r.usage).await;
        self.after().spawn(&r.content);
        Ok(TurnAnswer {
            conversation_id: self.conversation.id,
            message_id,
            content: r.content,
            finish_reason: r.finish_reason,
            usage: r.usage,
            provider: called.provider,
            model: called.model,
            attempts: called.attempts,
            tools_used: Vec::new(),
        })
    }

    /// The guardrail rules of this turn, and its messages (whose new one was checked when the turn
    /// was prepared): the tool loop's calls do not go through [`Engine::call`], so the turn guards
    /// their answer itself.
    async fn guarded_messages(&self) -> Result<(RuleSet, Vec<ChatMessage>)> {
        let rules = self.engine.guard_rules(&self.admitted, self.persona_id.as_deref()).await;
        Ok((rules, self.request.messages.clone()))
    }

    async fn complete_with_tools(self, tools: Arc<Toolbox>) -> Result<TurnAnswer> {
        let limits = self.engine.inner.tool_limits.clone();
        let (rules, messages) = self.guarded_messages().await?;
        let mut run = self.agent(tools, false, limits).await?.run(messages, None).await.map_err(run_error)?;
        if self.engine.inner.guardrails.covers(&rules, Stage::Output) {
            self.engine.guard_answer(&self.admitted, self.endpoint, &rules, &mut run.content).await?;
        }
        self.provider_accepted().await?;
        let (provider, model) = run.model.split_once('/').unwrap_or(("-", run.model.as_str()));
        let message_id = self.engine.store_answer(&self.conversation.id, &run.content, model, run.usage).await;
        self.after().spawn(&run.content);
        Ok(TurnAnswer {
            conversation_id: self.conversation.id,
            message_id,
            finish_reason: FinishReason::Stop,
            usage: run.usage,
            provider: provider.to_string(),
            model: model.to_string(),
            attempts: run.iterations,
            tools_used: run.tool_calls.iter().map(|c| c.name.clone()).collect(),
            content: run.content,
        })
    }

    /// Opens the model's stream (failing as a whole when no candidate starts one); the answer is
    /// stored when the stream ends, or what had arrived when it is dropped early.
    pub async fn stream(self) -> Result<TurnStream> {
        if let Some(tools) = self.tools.clone() {
            return self.stream_with_tools(tools).await;
        }
        let (answer, called) = self.engine.call(&self.admitted, self.spec(true), &self.request).await?;
        let upstream = match answer {
            Answer::Stream(s) => s,
            Answer::Full(r) => gaia_providers::response_cache::replay(r),
        };
        self.provider_accepted().await?;
        let after = self.after();
        let events =
            turn_events(self.engine.clone(), self.conversation.id.clone(), called.model.clone(), upstream, after);
        Ok(TurnStream { conversation_id: self.conversation.id, provider: called.provider, model: called.model, events })
    }

    /// The tool loop, streamed: the run is driven by the stream itself, so a client that leaves ends
    /// it (its calls are metered as abandoned, what it had said is stored).
    async fn stream_with_tools(self, tools: Arc<Toolbox>) -> Result<TurnStream> {
        let (rules, messages) = self.guarded_messages().await?;
        let agent = self.agent(tools, true, self.engine.inner.tool_limits.clone()).await?;
        let (provider, model) = match self.candidates.first() {
            Some((p, m)) => (p.name().to_string(), m.clone()),
            None => ("-".to_string(), self.request.model.clone()),
        };
        // The answer's text is let out as the guardrails pass it (none apply: as it comes).
        let guardrails = self.engine.inner.guardrails.clone();
        let guarded = guardrails.covers(&rules, Stage::Output);
        let mut guard = guardrails.output_guard(rules.clone());
        // The raw text of the answer so far (before redaction), to tell what was not streamed.
        let mut raw = String::new();
        let after = self.after();
        let conversation_id = self.conversation.id.clone();
        let turn = self;
        let events = Box::pin(async_stream::stream! {
            let mut partial = Partial {
                engine: turn.engine.clone(),
                conversation_id: turn.conversation.id.clone(),
                model: turn.request.model.clone(),
                content: String::new(),
                usage: Usage::default(),
                saved: false,
            };
            let (tx, mut rx) = tokio::sync::mpsc::channel::<AgentEvent>(64);
            let run = agent.run(messages, Some(tx));
            tokio::pin!(run);
            let mut used = Vec::new();
            let mut finished = None;
            loop {
                let ev = tokio::select! {
                    biased;
                    ev = rx.recv() => match ev {
                        Some(ev) => ev,
                        None => break,
                    },
                    r = &mut run, if finished.is_none() => {
                        finished = Some(r);
                        continue;
                    }
                };
                match ev {
                    AgentEvent::TextDelta { text, .. } if guarded => {
                        raw.push_str(&text);
                        match guard.push(&text) {
                            Release::Text(text, trips) => {
                                turn.engine.report_trips(&turn.admitted, turn.endpoint, &trips);
                                if !text.is_empty() {
                                    partial.content.push_str(&text);
                                    yield TurnEvent::Delta(text);
                                }
                            }
                            Release::Stop(trips, message) => {
                                turn.engine.report_trips(&turn.admitted, turn.endpoint, &trips);
                                partial.save().await;
                                yield TurnEvent::Error(message);
                                yield TurnEvent::Done { usage: partial.usage, tools_used: used };
                                return;
                            }
                        }
                    }
                    AgentEvent::TextDelta { text, .. } => {
                        partial.content.push_str(&text);
                        yield TurnEvent::Delta(text);
                    }
                    AgentEvent::ToolStarted { id, name, arguments, .. } => {
                        used.push(name.clone());
                        if guarded {
                            // What was held back of the text before the call goes out checked.
                            match guard.finish() {
                                Release::Text(text, trips) => {
                                    turn.engine.report_trips(&turn.admitted, turn.endpoint, &trips);
                                    if !text.is_empty() {
                                        yield TurnEvent::Delta(text);
                                    }
                                }
                                Release::Stop(trips, message) => {
                                    turn.engine.report_trips(&turn.admitted, turn.endpoint, &trips);
                                    partial.save().await;
                                    yield TurnEvent::Error(message);
                                    yield TurnEvent::Done { usage: partial.usage, tools_used: used };
                                    return;
                                }
                            }
                            guard = guardrails.output_guard(rules.clone());
                            raw.clear();
                        }
                        // What the model said before calling tools is not part of its answer.
                        partial.content.clear();
                        yield TurnEvent::ToolCall { id, name, arguments };
                    }
                    AgentEvent::ToolFinished { id, name, ok, duration_ms, .. } => {
                        yield TurnEvent::ToolResult { id, name, ok, duration_ms };
                    }
                    _ => {}
                }
            }
            let finished = match finished {
                Some(r) => r,
                None => run.await,
            };
            match finished {
                Ok(mut run) => {
                    partial.usage = run.usage;
                    partial.model = run.model.split_once('/').map_or(run.model.clone(), |(_, m)| m.to_string());
                    if guarded {
                        // What is held back, then what of the answer was not streamed (a limit
                        // stopped the loop), checked whole.
                        let mut release = guard.finish();
                        if let Release::Text(held, trips) = release {
                            turn.engine.report_trips(&turn.admitted, turn.endpoint, &trips);
                            partial.content.push_str(&held);
                            if !held.is_empty() {
                                yield TurnEvent::Delta(held);
                            }
                            let mut rest = if raw.is_empty() {
                                run.content.clone()
                            } else {
                                run.content.strip_prefix(raw.as_str()).unwrap_or_default().to_string()
                            };
                            release = match guardrails.check_text(&rules, Stage::Output, &mut rest) {
                                Verdict::Pass(trips) => Release::Text(rest, trips),
                                Verdict::Refuse(trips, m) => Release::Stop(trips, m),
                            };
                        }
                        match release {
                            Release::Text(rest, trips) => {
                                turn.engine.report_trips(&turn.admitted, turn.endpoint, &trips);
                                if !rest.is_empty() {
                                    partial.content.push_str(&rest);
                                    yield TurnEvent::Delta(rest);
                                }
                                run.content = partial.content.clone();
                                // A moderation model judges the whole answer at its end.
                                let verdict = turn.engine.moderate(&rules, Stage::Output, &run.content).await;
                                if let Some(message) = turn.engine.report_verdict(&turn.admitted, turn.endpoint, verdict) {
                                    partial.save().await;
                                    yield TurnEvent::Error(message);
                                    yield TurnEvent::Done { usage: run.usage, tools_used: used };
                                    return;
                                }
                            }
                            Release::Stop(trips, message) => {
                                turn.engine.report_trips(&turn.admitted, turn.endpoint, &trips);
                                partial.save().await;
                                yield TurnEvent::Error(message);
                                yield TurnEvent::Done { usage: run.usage, tools_used: used };
                                return;
                            }
                        }
                    }
                    if run.content != partial.content && !run.content.is_empty() {
                        // The answer was not streamed (a limit stopped the loop): send what is missing.
                        let rest = run.content.strip_prefix(partial.content.as_str()).unwrap_or(&run.content).to_string();
                        if !rest.is_empty() {
                            yield TurnEvent::Delta(rest);
                        }
                        partial.content = run.content.clone();
                    }
                    if let Err(e) = turn.provider_accepted().await {
                        tracing::warn!(error = %e, "cannot rewind the regenerated conversation");
                    }
                    partial.save().await;
                    after.spawn(&partial.content);
                    yield TurnEvent::Finish(FinishReason::Stop);
                    yield TurnEvent::Done { usage: run.usage, tools_used: used };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the turn's tool loop failed");
                    partial.save().await;
                    yield TurnEvent::Error(run_error(e).to_string());
                    yield TurnEvent::Done { usage: partial.usage, tools_used: used };
                }
            }
        });
        Ok(TurnStream { conversation_id, provider, model, events })
    }
}

/// What runs in the background after an answer.
struct After {
    title: Option<AutoTitle>,
    memory: Option<Remember>,
}

impl After {
    fn spawn(self, answer: &str) {
        if let Some(job) = self.title {
            job.spawn(answer);
        }
        if let Some(mut job) = self.memory {
            job.answer = answer.to_string();
            job.spawn();
        }
    }
}

/// The background job that gives a new conversation a title from its first exchange.
struct AutoTitle {
    engine: Engine,
    admitted: Admitted,
    conversation: Conversation,
    candidates: Vec<Candidate>,
    model: String,
    message: String,
}

impl AutoTitle {
    /// Asks the model for a short title in the background (metered as `chat_title`); the provisional
    /// title (the first line of the message) stays if that fails or if the user renamed the
    /// conversation meanwhile.
    fn spawn(self, answer: &str) {
        if answer.trim().is_empty() {
            return;
        }
        let excerpt = |t: &str| t.chars().take(1_000).collect::<String>();
        let prompt = format!(
            "Write a title of at most six words for a conversation that starts like this. Reply with the \
             title only, no quotes.\n\nUser: {}\n\nAssistant: {}",
            excerpt(&self.message),
            excerpt(answer)
        );
        tokio::spawn(async move {
            let AutoTitle { engine, admitted, conversation: conv, candidates, model, .. } = self;
            let mut req = ChatRequest::new(model.clone(), vec![ChatMessage::user(prompt)]);
            req.temperature = Some(0.2);
            req.max_tokens = Some(24);
            req.user = Some(admitted.principal().user_id.clone());
            let spec =
                CallSpec { candidates: Some(&candidates), guarded: false, ..CallSpec::new("chat_title", &model) };
            let title = match engine.complete(&admitted, spec, &req).await {
                Ok((r, _)) => clean_title(&r.content),
                Err(_) => None,
            };
            let Some(title) = title else { return };
            let user_id = &admitted.principal().user_id;
            // Only replace the provisional title: a rename by the user wins.
            let storage = &engine.inner.storage;
            match storage.replace_conversation_title(user_id, &conv.id, conv.title.as_deref(), &title).await {
                Ok(true) => {
                    engine.inner.events.publish(BusEvent::ConversationUpdated { conversation_id: conv.id.clone() });
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, conversation_id = %conv.id, "cannot store the automatic title"),
            }
        });
    }
}

/// A model's answer as a title: its first non-empty line, without quotes, Markdown marks or a final
/// period, at most 80 characters; `None` when nothing is left.
fn clean_title(raw: &str) -> Option<String> {
    let line = raw.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.trim_start_matches(['#', '*', '-', ' ']).trim();
    let line = line.strip_prefix("Title:").or_else(|| line.strip_prefix("title:")).unwrap_or(line).trim();
    let line = line.trim_matches(['"', '\'', '*', '`', '“', '”']).trim().trim_end_matches('.').trim();
    if line.is_empty() {
        return None;
    }
    Some(title_from(line))
}

/// Keeps what a streamed answer has said and, if the stream is dropped early (client gone), stores
/// the partial answer.
struct Partial {
    engine: Engine,
    conversation_id: String,
    model: String,
    content: String,
    usage: Usage,
    saved: bool,
}

impl Partial {
    async fn save(&mut self) {
        self.saved = true;
        if !self.content.is_empty() {
            self.engine.store_answer(&self.conversation_id, &self.content, &self.model, self.usage).await;
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if self.saved || self.content.is_empty() {
            return;
        }
        let (engine, conv, model, content, usage) = (
            self.engine.clone(),
            std::mem::take(&mut self.conversation_id),
            std::mem::take(&mut self.model),
            std::mem::take(&mut self.content),
            self.usage,
        );
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                tracing::info!(conversation_id = %conv, "client left mid-stream; storing the partial answer");
                engine.store_answer(&conv, &content, &model, usage).await;
            });
        }
    }
}

fn turn_events(
    engine: Engine,
    conversation_id: String,
    model: String,
    mut upstream: ChatStream,
    after: After,
) -> BoxStream<'static, TurnEvent> {
    Box::pin(async_stream::stream! {
        let mut partial = Partial { engine, conversation_id, model, content: String::new(), usage: Usage::default(), saved: false };
        let mut failed = false;
        while let Some(ev) = upstream.next().await {
            match ev {
                Ok(ChatEvent::TextDelta(t)) => {
                    if t.is_empty() { continue; }
                    partial.content.push_str(&t);
                    yield TurnEvent::Delta(t);
                }
                Ok(ChatEvent::Usage(u)) => merge_usage(&mut partial.usage, u),
                Ok(ChatEvent::Finish(f)) => yield TurnEvent::Finish(f),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "upstream stream failed");
                    failed = true;
                    yield TurnEvent::Error(e.to_string());
                    break;
                }
            }
        }
        drop(upstream);
        partial.save().await;
        if !failed {
            after.spawn(&partial.content);
        }
        yield TurnEvent::Done { usage: partial.usage, tools_used: Vec::new() };
    })
}

/// A tool loop's error as the engine's.
fn run_error(e: McpError) -> ChatError {
    match e {
        McpError::Provider(p) => ChatError::Provider(p),
        McpError::Invalid(m) => ChatError::invalid(m),
        other => ChatError::Tools(other),
    }
}

#[cfg(test)]
mod tests {
    use super::{clean_title, title_from};

    #[test]
    fn model_titles_are_cleaned() {
        assert_eq!(clean_title("\"The Dragon's Cave.\"\nmore").as_deref(), Some("The Dragon's Cave"));
        assert_eq!(clean_title("## Title: Safe houses").as_deref(), Some("Safe houses"));
        assert_eq!(clean_title("  \n \"\" "), None);
    }

    #[test]
    fn titles() {
        assert_eq!(title_from("Where is the safe house?\nmore"), "Where is the safe house?");
        let long = "x".repeat(100);
        assert_eq!(title_from(&long).chars().count(), 81);
    }
}
