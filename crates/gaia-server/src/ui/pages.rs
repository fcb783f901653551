//! The HTML of the web UI (maud templates: every interpolated value is escaped).

use super::markdown;
use gaia_core::storage::{Conversation, Persona, StoredMessage, UserSettings, DEFAULT_PERSONA_ID};
use gaia_core::types::Role;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// What every page needs to know.
pub struct PageCtx<'a> {
    /// Page title.
    pub title: &'a str,
    /// `dark` or `light`.
    pub theme: &'a str,
    /// The session's CSRF token (signed-in pages).
    pub csrf: Option<&'a str>,
}

/// htmx's configuration: no inline indicator styles (`app.css` has them), no `eval`, no scripts from
/// swapped content, requests to this origin only. The page then runs under [`crate::security::CSP`].
const HTMX_CONFIG: &str =
    r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true}"#;

/// The document around `body`.
pub fn layout(ctx: &PageCtx<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" data-theme=(ctx.theme) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(t) = ctx.csrf { meta name="csrf-token" content=(t); }
                // htmx would otherwise inject an inline <style> (refused by the CSP: a console error on
                // every page) and could evaluate code from attributes or scripts in swapped content.
                meta name="htmx-config" content=(HTMX_CONFIG);
                // No icon to fetch (a 404 for /favicon.ico is a console error on every page).
                link rel="icon" href="data:,";
                title { (ctx.title) " · Gaia" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/htmx.min.js" defer {}
                script src="/assets/app.js" defer {}
            }
            body {
                (body)
                div #toasts aria-live="polite" {}
            }
        }
    }
}

/// Login or register form; `invite` adds the invitation field (registration by invitation) with
/// this value.
pub fn auth_form(register: bool, csrf: &str, email: &str, error: Option<&str>, invite: Option<&str>) -> Markup {
    let (title, action, other, other_label) = if register {
        ("Create an account", "/register", "/login", "Already have an account? Sign in")
    } else {
        ("Sign in", "/login", "/register", "No account yet? Create one")
    };
    layout(
        &PageCtx { title, theme: "dark", csrf: None },
        html! {
            main .auth {
                h1 { "Gaia" }
                h2 { (title) }
                @if let Some(e) = error { p .error role="alert" { (e) } }
                form method="post" action=(action) {
                    input type="hidden" name="csrf_token" value=(csrf);
                    label { "Email" input type="email" name="email" value=(email) required autocomplete="username"; }
                    @if register {
                        label { "Display name" input type="text" name="display_name" maxlength="200"; }
                        @if let Some(code) = invite {
                            label {
                                "Invitation code"
                                input type="text" name="invite_token" value=(code) required maxlength="128"
                                    autocomplete="off";
                            }
                        }
                    }
                    label {
                        "Password"
                        input type="password" name="password" required minlength="8"
                            autocomplete=(if register { "new-password" } else { "current-password" });
                    }
                    button type="submit" { (title) }
                }
                p { a href=(other) { (other_label) } }
            }
        },
    )
}

/// The conversation list of the sidebar.
pub fn conversation_list(items: &[Conversation], current: Option<&str>) -> Markup {
    html! {
        @if items.is_empty() { li .empty { "No conversations" } }
        @for c in items {
            li .conv .current[current == Some(c.id.as_str())] data-id=(c.id) {
                a href={ "/chat/" (c.id) } { (c.title.as_deref().unwrap_or("Untitled")) }
                span .actions {
                    button type="button" .rename title="Rename" data-id=(c.id) { "✎" }
                    button type="button" .delete title="Delete" data-id=(c.id) { "✕" }
                }
            }
        }
    }
}

/// One message bubble; the user's messages are signed `author` ("You", or the owner's name in a
/// conversation shared with the reader).
pub fn message(m: &StoredMessage, author: &str) -> Markup {
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
        _ => "system",
    };
    html! {
        article .msg .(role) data-id=(m.id) {
            div .who { @if role == "user" { (author) } @else { "Assistant" } @if let Some(model) = &m.model { span .model { " · " (model) } } }
            @if !m.attachments.is_empty() {
                div .images {
                    @for a in &m.attachments {
                        a href={ "/api/v1/attachments/" (a.id) } target="_blank" rel="noopener" {
                            img src={ "/api/v1/attachments/" (a.id) } alt=(a.file_name.as_deref().unwrap_or("image")) loading="lazy";
                        }
                    }
                }
            }
            @if !m.content.is_empty() { div .body { (PreEscaped(markdown::render(&m.content))) } }
        }
    }
}

/// The messages of a conversation, the user's signed `author`.
pub fn messages(msgs: &[StoredMessage], author: &str) -> Markup {
    html! {
        @if msgs.is_empty() { div .welcome { h2 { "What shall we talk about?" } } }
        @for m in msgs { (message(m, author)) }
    }
}

/// Everything the chat page shows.
pub struct ChatPage<'a> {
    /// The user's name or email.
    pub user: &'a str,
    /// The sidebar's conversations.
    pub conversations: &'a [Conversation],
    /// The open conversation.
    pub current: Option<&'a Conversation>,
    /// Its messages.
    pub messages: &'a [StoredMessage],
    /// Models to pick from.
    pub models: &'a [String],
    /// The model selected.
    pub model: Option<&'a str>,
    /// Personas to pick from.
    pub personas: &'a [Persona],
    /// The persona selected.
    pub persona: &'a str,
    /// The signed-in user's id (to tell the others apart in presence lists).
    pub user_id: &'a str,
    /// The open conversation is someone else's, shared with the user: shown, not written to.
    pub read_only: bool,
    /// Who the conversation's user messages are from: "You", or the owner's name when shared.
    pub author: &'a str,
    /// The user may open the admin console (a link is shown).
    pub admin: bool,
}

/// The chat page.
pub fn chat(ctx: &PageCtx<'_>, p: &ChatPage<'_>) -> Markup {
    let current_id = p.current.map(|c| c.id.as_str());
    layout(
        ctx,
        html! {
            div .app {
                aside .sidebar {
                    div .brand { "Gaia" }
                    a .new href="/chat" { "+ New chat" }
                    input #search type="search" name="q" placeholder="Search conversations"
                        hx-get="/ui/conversations" hx-trigger="input changed delay:250ms, search"
                        hx-target="#conv-list" hx-include="#current-id";
                    input #current-id type="hidden" name="current" value=(current_id.unwrap_or(""));
                    ul #conv-list { (conversation_list(p.conversations, current_id)) }
                    div .me {
                        a #settings-link href="/settings" title="Profile and settings" { (p.user) }
                        @if p.admin { a #admin-link href="/admin" title="Admin console" { "Admin" } }
                        button #theme type="button" title="Toggle theme" { "◐" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf_token" value=(ctx.csrf.unwrap_or(""));
                            button #logout type="submit" { "Log out" }
                        }
                    }
                }
                main .chat data-conversation=(current_id.unwrap_or("")) data-user=(p.user_id) {
                    header {
                        h1 #conv-title { (p.current.and_then(|c| c.title.as_deref()).unwrap_or("New chat")) }
                        span #presence .presence hidden {}
                        label hidden[p.read_only] { "Model "
                            select #model {
                                option value="" { "default" }
                                @for m in p.models { option value=(m) selected[p.model == Some(m.as_str())] { (m) } }
                            }
                        }
                        label hidden[p.read_only] { "Persona "
                            select #persona {
                                @for x in p.personas { option value=(x.id) selected[x.id == p.persona] { (x.name) } }
                            }
                        }
                    }
                    section #messages aria-live="polite" { (messages(p.messages, p.author)) }
                    p #typing .typing-note aria-live="polite" hidden {}
                    @if p.read_only { p .read-only { "Shared with you: you can read this conversation, not write in it." } }
                    form #composer hidden[p.read_only] {
                        div #pending .pending hidden {}
                        textarea #input name="message" rows="3" placeholder="Send a message (Enter to send, Shift+Enter for a new line; paste or drop images)" {}
                        div .buttons {
                            label .attach title="Attach images" {
                                "Attach"
                                input #image-input type="file" accept="image/png,image/jpeg,image/gif,image/webp" multiple hidden;
                            }
                            button #send type="submit" { "Send" }
                            button #stop type="button" hidden { "Stop" }
                            button #regen type="button" title="Answer the last message again" hidden[p.messages.is_empty()] { "↻ Regenerate" }
                        }
                    }
                }
            }
        },
    )
}

/// Everything the settings page shows.
pub struct SettingsPage<'a> {
    /// The user's email.
    pub email: &'a str,
    /// Current settings.
    pub settings: &'a UserSettings,
    /// Models to pick from.
    pub models: &'a [String],
    /// Personas to pick from.
    pub personas: &'a [Persona],
    /// A message after saving (`Ok`) or a validation error (`Err`).
    pub notice: Option<Result<&'a str, &'a str>>,
}

/// The profile and settings page.
pub fn settings(ctx: &PageCtx<'_>, p: &SettingsPage<'_>) -> Markup {
    let s = p.settings;
    let theme = s.theme.as_deref().unwrap_or("dark");
    let persona = s.default_persona_id.as_deref().unwrap_or(DEFAULT_PERSONA_ID);
    layout(
        ctx,
        html! {
            main .auth .settings {
                p { a href="/chat" { "← Back to chat" } }
                h1 { "Profile and settings" }
                @match p.notice {
                    Some(Ok(m)) => p .notice role="status" { (m) },
                    Some(Err(m)) => p .error role="alert" { (m) },
                    None => {},
                }
                form #settings-form method="post" action="/settings" {
                    input type="hidden" name="csrf_token" value=(ctx.csrf.unwrap_or(""));
                    label { "Email" input type="email" value=(p.email) disabled; }
                    label { "Display name"
                        input #display-name type="text" name="display_name" maxlength="200"
                            value=(s.display_name.as_deref().unwrap_or(""));
                    }
                    label { "Default model"
                        select #default-model name="default_model" {
                            option value="" { "server default" }
                            @for m in p.models { option value=(m) selected[s.default_model.as_deref() == Some(m.as_str())] { (m) } }
                        }
                    }
                    label { "Default persona"
                        select #default-persona name="default_persona_id" {
                            @for x in p.personas { option value=(x.id) selected[x.id == persona] { (x.name) } }
                        }
                    }
                    label { "Theme"
                        select #theme-select name="theme" {
                            option value="dark" selected[theme == "dark"] { "Dark" }
                            option value="light" selected[theme == "light"] { "Light" }
                        }
                    }
                    button #save-settings type="submit" { "Save" }
                }
            }
        },
    )
}
