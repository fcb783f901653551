//! A user's data, all at once (GDPR / CCPA): everything stored about them exported as one document
//! ([`Storage::export_user`]: the rights of access and portability), or erased in one transaction
//! ([`Storage::erase_user`]: the right to erasure).
//!
//! Erasure deletes the rows that are the user's own data, and anonymizes the rows that other people's
//! figures or the security record depend on (usage and spend, audit trails, who made an admin change):
//! there the user's id, email and API key ids are replaced by [`ERASED_USER`].

use super::{
    from_ms, now_ms, Attachment, AuditRecord, Budget, Conversation, Invite, LimitScope, Persona, RateLimitOverride,
    Storage, StoredMemory, StoredMessage, UsageFilter, UsageRecord, UsageSummary, UserSettings,
};
use crate::error::{CoreError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// What replaces the id, the email and the API key ids of an erased user in the rows that are kept:
/// usage records and daily totals, audit trails (`audit_log`, `rbac_audit`), pending knowledge-base
/// commits, and the "made by" columns of what the user did as an administrator (budgets, rate limits,
/// prices, providers, invitations, teams, grants, shares, documents). Those rows are not the user's
/// data alone: billing totals and spend per day must still add up, and audit trails must still tell
/// that something was done, and when, without telling by whom.
pub const ERASED_USER: &str = "erased-user";

/// Most conversations an export holds (the most recently updated first).
pub const MAX_EXPORT_CONVERSATIONS: usize = 10_000;
/// Most messages an export holds, across all its conversations.
pub const MAX_EXPORT_MESSAGES: usize = 100_000;
/// Most rows of each other list of an export (attachments, usage records, documents, audit records,
/// sign-ins, …).
pub const MAX_EXPORT_ROWS: usize = 100_000;

/// Everything stored about one user ([`Storage::export_user`]), as one serializable document.
///
/// Secrets are never part of it: no password hash, no API key or refresh token hash, no session token
/// or CSRF token, no attachment bytes (each attachment is downloadable at
/// `GET /api/v1/attachments/{id}`).
///
/// Bounded: at most [`MAX_EXPORT_CONVERSATIONS`] conversations (each one whole, with every message),
/// [`MAX_EXPORT_MESSAGES`] messages in all, and [`MAX_EXPORT_ROWS`] rows of each other list. When a
/// bound cut something, [`UserExport::truncated`] is `true`; the usage summary always covers every
/// record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserExport {
    /// When the export was made.
    pub exported_at: DateTime<Utc>,
    /// The account.
    pub user: ExportedUser,
    /// Chat settings.
    pub settings: UserSettings,
    /// Conversations (soft-deleted ones too, with their deletion time), most recently updated first,
    /// each with all its messages, oldest first.
    pub conversations: Vec<ExportedConversation>,
    /// The user's own personas (not the built-in ones).
    pub personas: Vec<Persona>,
    /// What personas remember about the user.
    pub persona_memories: Vec<StoredMemory>,
    /// Uploaded images, without their bytes: each one is downloadable at
    /// `GET /api/v1/attachments/{id}`.
    pub attachments: Vec<Attachment>,
    /// API keys, without their hashes.
    pub api_keys: Vec<ExportedApiKey>,
    /// Sign-in sessions (without their tokens).
    pub sign_ins: Vec<ExportedSignIn>,
    /// Web UI sessions (without their tokens).
    pub web_sessions: Vec<ExportedWebSession>,
    /// Model calls: totals, per day, model and provider, and the records themselves.
    pub usage: UsageExport,
    /// Spending limits set on the user or on one of their API keys.
    pub budgets: Vec<Budget>,
    /// Rate limits set on the user or on one of their API keys.
    pub rate_limits: Vec<RateLimitOverride>,
    /// Teams and workspaces the user belongs to.
    pub teams: Vec<ExportedMembership>,
    /// Roles granted to the user.
    pub grants: Vec<ExportedGrant>,
    /// Resources shared with the user.
    pub shares: Vec<ExportedShare>,
    /// Invitations addressed to the user's email or used to register the account.
    pub invites: Vec<Invite>,
    /// Documents of the user's private knowledge-base area (`users/<id>/…`) kept in the database
    /// (knowledge bases in `database` or `hybrid` storage mode).
    pub kb_documents: Vec<ExportedDocument>,
    /// Audit records of what the user did, or what was done to the account, newest first.
    pub audit: Vec<AuditRecord>,
    /// The user in game worlds: each world's view (place, stats, status effects, quests), the items
    /// they carry, and their relationships with NPCs.
    #[serde(default)]
    pub worlds: Vec<serde_json::Value>,
    /// Whether a bound cut something (see [`UserExport`]).
    pub truncated: bool,
}

/// The account of an exported user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedUser {
    /// Id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Name shown in the UI.
    pub display_name: Option<String>,
    /// Administrator flag.
    pub is_admin: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// An exported conversation with its messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedConversation {
    /// The conversation.
    #[serde(flatten)]
    pub conversation: Conversation,
    /// When the user deleted it (it is kept until data retention removes it).
    pub deleted_at: Option<DateTime<Utc>>,
    /// Its messages, oldest first (their attachments are in [`UserExport::attachments`]).
    pub messages: Vec<StoredMessage>,
}

/// An exported API key: what the user sees of it, never its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedApiKey {
    /// Id.
    pub id: String,
    /// Label.
    pub name: Option<String>,
    /// The first characters of the key, for display.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The key that replaced it in a rotation.
    pub rotated_to: Option<String>,
}

/// An exported sign-in session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedSignIn {
    /// Id.
    pub id: String,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// When it ended, if it did.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it ended.
    pub revoked_reason: Option<String>,
}

/// An exported web UI session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedWebSession {
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
}

/// The user's model calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageExport {
    /// Totals overall and per day, model and provider, over every record.
    pub summary: UsageSummary,
    /// The records, oldest first (at most [`MAX_EXPORT_ROWS`]).
    pub records: Vec<UsageRecord>,
}

/// A team or workspace the user belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedMembership {
    /// Team or workspace id.
    pub team_id: String,
    /// `team` or `workspace`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The user's role in it.
    pub role: String,
    /// When the user joined.
    pub created_at: DateTime<Utc>,
}

/// A role granted to the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedGrant {
    /// Id.
    pub id: String,
    /// The role.
    pub role: String,
    /// The team or workspace it applies in (`None`: everywhere).
    pub team_id: Option<String>,
    /// End of validity.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was granted.
    pub created_at: DateTime<Utc>,
}

/// A resource shared with the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedShare {
    /// Id.
    pub id: String,
    /// Resource type (`kb`, `conversation`, `persona`, …).
    pub resource_type: String,
    /// Resource path.
    pub path: String,
    /// `read` or `write`.
    pub access: String,
    /// When it was shared.
    pub created_at: DateTime<Utc>,
}

/// A document of the user's private knowledge-base area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedDocument {
    /// Knowledge base.
    pub kb: String,
    /// Path in the vault.
    pub path: String,
    /// Text.
    pub content: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A bound parameter of a query built at run time.
enum Arg {
    Text(String),
    Int(i64),
}

fn bind_args<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
        };
    }
    q
}

/// `LIMIT` for a list bounded to `max` rows: one more, to tell whether the bound cut it.
fn over(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1)
}

/// Cuts `v` to `max` rows; whether it was longer.
fn cut<T>(v: &mut Vec<T>, max: usize) -> bool {
    let longer = v.len() > max;
    v.truncate(max);
    longer
}

fn opt_time(r: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(r.try_get::<Option<i64>, _>(col)?.map(from_ms))
}

/// `text` as a `LIKE` pattern matching it anywhere, with `\` as the escape character.
fn like_anywhere(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The folder of the user's private knowledge-base area, as vault paths (relative, normalised) go.
fn vault_area(user_id: &str) -> [String; 1] {
    [format!("users/{user_id}/")]
}

/// The user's own resources as access control names them: conversations and personas
/// (`/users/<id>/…`) and their private knowledge-base area (`/kb/users/<id>/…`).
fn resource_areas(user_id: &str) -> [String; 2] {
    [format!("/users/{user_id}/"), format!("/kb/users/{user_id}/")]
}

/// An SQL condition that `col` is one of `prefixes` (without its trailing `/`) or under one, its
/// values pushed to `args`. Portable: `substr` counts characters on both backends.
fn under_condition(col: &str, prefixes: &[String], args: &mut Vec<Arg>) -> String {
    let mut conds = Vec::with_capacity(prefixes.len() * 2);
    for p in prefixes {
        args.push(Arg::Text(p.trim_end_matches('/').to_string()));
        conds.push(format!("{col} = ${}", args.len()));
        args.push(Arg::Int(i64::try_from(p.chars().count()).unwrap_or(i64::MAX)));
        args.push(Arg::Text(p.clone()));
        conds.push(format!("substr({col}, 1, CAST(${} AS INTEGER)) = ${}", args.len() - 1, args.len()));
    }
    format!("({})", conds.join(" OR "))
}

/// The user being erased: what mentions of them look like.
struct Who {
    id: String,
    /// The id, and its JSON-escaped form when that differs (mentions inside JSON detail columns).
    id_needles: Vec<String>,
    /// The email (lowercase), and its JSON-escaped form when that differs.
    email_needles: Vec<String>,
}

impl Who {
    fn new(id: &str, email: &str) -> Who {
        let variants = |s: &str| {
            let mut v = vec![s.to_string()];
            let json = serde_json::to_string(s).unwrap_or_default();
            let json = json.trim_matches('"');
            if !json.is_empty() && json != s {
                v.push(json.to_string());
            }
            v.retain(|n| !n.is_empty());
            v
        };
        Who { id: id.to_string(), id_needles: variants(id), email_needles: variants(&email.trim().to_lowercase()) }
    }

    /// `text` with every mention of the user replaced by [`ERASED_USER`]; `None` when there is none.
    ///
    /// A mention is the id (exactly) or the email (ignoring ASCII case) not glued to a letter or digit
    /// on either side, so that a short external id does not match inside other words.
    fn scrub(&self, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for n in &self.id_needles {
            if let Some(s) = replace_mentions(out.as_deref().unwrap_or(text), n, false) {
                out = Some(s);
            }
        }
        for n in &self.email_needles {
            if let Some(s) = replace_mentions(out.as_deref().unwrap_or(text), n, true) {
                out = Some(s);
            }
        }
        out
    }
}

/// `text` with every occurrence of `needle` that is not glued to a letter or digit replaced by
/// [`ERASED_USER`]; `None` when there is none.
fn replace_mentions(text: &str, needle: &str, ignore_ascii_case: bool) -> Option<String> {
    let (t, n) = (text.as_bytes(), needle.as_bytes());
    if n.is_empty() || t.len() < n.len() {
        return None;
    }
    let glued = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::new();
    let (mut last, mut i, mut found) = (0, 0, false);
    while i + n.len() <= t.len() {
        let window = &t[i..i + n.len()];
        let equal = if ignore_ascii_case { window.eq_ignore_ascii_case(n) } else { window == n };
        // A match starts and ends on character boundaries: its first byte equals the needle's (a
        // character's first byte), up to ASCII case, and its bytes after that are the needle's.
        if equal
            && text.is_char_boundary(i)
            && text.is_char_boundary(i + n.len())
            && !glued(text[..i].chars().next_back())
            && !glued(text[i + n.len()..].chars().next())
        {
            out.push_str(&text[last..i]);
            out.push_str(ERASED_USER);
            i += n.len();
            last = i;
            found = true;
        } else {
            i += 1;
        }
    }
    found.then(|| {
        out.push_str(&text[last..]);
        out
    })
}

/// A table whose rows are kept when a user is erased, with the text columns where the user may be
/// mentioned (anonymized in place) and the columns that identify a row.
struct Kept {
    table: &'static str,
    keys: &'static [&'static str],
    cols: &'static [&'static str],
}

/// The kept tables and their columns that may name a user, besides `usage_records` and `usage_daily`
/// (merged, see [`Storage::erase_user`]).
const KEPT: &[Kept] = &[
    Kept { table: "audit_log", keys: &["id"], cols: &["actor_id", "target", "details"] },
    Kept { table: "rbac_audit", keys: &["id"], cols: &["actor_id", "target", "details"] },
    Kept { table: "kb_unmirrored", keys: &["kb", "path"], cols: &["author_name", "author_email", "message"] },
    Kept { table: "kb_documents", keys: &["kb", "path"], cols: &["updated_by"] },
    Kept { table: "auth_invites", keys: &["id"], cols: &["created_by", "used_by"] },
    Kept { table: "budgets", keys: &["id"], cols: &["created_by"] },
    Kept { table: "rate_limits", keys: &["scope", "subject_id"], cols: &["updated_by"] },
    Kept { table: "guardrail_bindings", keys: &["scope", "subject_id"], cols: &["updated_by"] },
    Kept { table: "model_prices", keys: &["id"], cols: &["created_by"] },
    Kept { table: "runtime_providers", keys: &["name"], cols: &["updated_by"] },
    Kept { table: "rbac_teams", keys: &["id"], cols: &["created_by"] },
    Kept { table: "rbac_grants", keys: &["id"], cols: &["created_by"] },
    Kept { table: "rbac_shares", keys: &["id"], cols: &["created_by"] },
    Kept { table: "rbac_roles", keys: &["name"], cols: &["description", "permissions"] },
];

/// Replaces every mention of `who` in the columns of `kept` by [`ERASED_USER`], in the rows that may
/// hold one (found with `LIKE`, checked exactly here); `only` further restricts the rows (an SQL
/// condition where `$user` stands for the user id). Returns how many rows changed.
async fn anonymize(conn: &mut AnyConnection, who: &Who, kept: &Kept, only: Option<&str>) -> Result<u64> {
    let mut args = Vec::new();
    let mut conds = Vec::new();
    for col in kept.cols {
        for n in &who.id_needles {
            args.push(Arg::Text(like_anywhere(n)));
            conds.push(format!("{col} LIKE ${} ESCAPE '\\'", args.len()));
        }
        for n in &who.email_needles {
            args.push(Arg::Text(like_anywhere(n)));
            conds.push(format!("LOWER({col}) LIKE ${} ESCAPE '\\'", args.len()));
        }
    }
    let mut sql = format!(
        "SELECT {}, {} FROM {} WHERE ({})",
        kept.keys.join(", "),
        kept.cols.join(", "),
        kept.table,
        conds.join(" OR ")
    );
    if let Some(only) = only {
        args.push(Arg::Text(who.id.clone()));
        sql.push_str(&format!(" AND ({})", only.replace("$user", &format!("${}", args.len()))));
    }
    let rows = bind_args(sqlx::query(&sql), &args).fetch_all(&mut *conn).await?;
    let set: Vec<String> = kept.cols.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 1)).collect();
    let by: Vec<String> =
        kept.keys.iter().enumerate().map(|(i, k)| format!("{k} = ${}", kept.cols.len() + i + 1)).collect();
    let update = format!("UPDATE {} SET {} WHERE {}", kept.table, set.join(", "), by.join(" AND "));
    let mut changed = 0;
    for row in rows {
        let keys = (0..kept.keys.len()).map(|i| row.try_get::<String, _>(i)).collect::<sqlx::Result<Vec<_>>>()?;
        let mut values = (0..kept.cols.len())
            .map(|i| row.try_get::<Option<String>, _>(kept.keys.len() + i))
            .collect::<sqlx::Result<Vec<_>>>()?;
        let mut any = false;
        for v in values.iter_mut().flatten() {
            if let Some(s) = who.scrub(v) {
                *v = s;
                any = true;
            }
        }
        if !any {
            continue;
        }
        let mut q = sqlx::query(&update);
        for v in &values {
            q = q.bind(v.as_deref());
        }
        for k in &keys {
            q = q.bind(k.as_str());
        }
        q.execute(&mut *conn).await?;
        changed += 1;
    }
    Ok(changed)
}

/// Runs `sql` with text parameters `$1`, `$2`, … on `conn`; returns the rows affected.
async fn run(conn: &mut AnyConnection, sql: &str, params: &[&str]) -> Result<u64> {
    let mut q = sqlx::query(sql);
    for p in params {
        q = q.bind(*p);
    }
    Ok(q.execute(&mut *conn).await?.rows_affected())
}

/// The user's API keys, as a subquery on `$1` (the user id).
const KEYS_OF_USER: &str = "(SELECT id FROM api_keys WHERE user_id = $1)";

/// The subjects of the user's end users, as a condition on `subject_id` and `$1` (their subjects'
/// prefix, [`crate::attribution::user_subject_prefix`]): compared as text, so no character is a pattern.
const END_USERS_OF_USER: &str = "IS NOT NULL AND substr(subject_id, 1, length($1)) = $1";

/// Moves the daily totals (`usage_daily`) of scope `scope` whose subject matches `subject` (an SQL
/// condition on `$1`, the user id) to subject [`ERASED_USER`], added to what it already has that day.
async fn merge_daily(conn: &mut AnyConnection, user_id: &str, scope: &str, subject: &str) -> Result<()> {
    run(
        conn,
        &format!(
            "INSERT INTO usage_daily (scope, subject_id, day, requests, cost_usd) \
             SELECT scope, $2, day, CAST(SUM(requests) AS BIGINT), CAST(SUM(cost_usd) AS DOUBLE PRECISION) \
             FROM usage_daily WHERE scope = $3 AND subject_id {subject} GROUP BY scope, day \
             ON CONFLICT (scope, subject_id, day) DO UPDATE SET requests = usage_daily.requests + excluded.requests, \
             cost_usd = usage_daily.cost_usd + excluded.cost_usd"
        ),
        &[user_id, ERASED_USER, scope],
    )
    .await?;
    run(conn, &format!("DELETE FROM usage_daily WHERE scope = $2 AND subject_id {subject}"), &[user_id, scope]).await?;
    Ok(())
}

/// The statements of [`Storage::erase_user`] for user `who` (whose row exists), inside its transaction.
async fn erase_in(conn: &mut AnyConnection, who: &Who, email: &str) -> Result<()> {
    let id = who.id.as_str();

    // 1. Spend and usage stay, under ERASED_USER: totals per day, model and provider still add up.
    //    (First, while the user's API keys still exist to be found.)
    merge_daily(conn, id, "user", "= $1").await?;
    merge_daily(conn, id, "key", &format!("IN {KEYS_OF_USER}")).await?;
    // Their players' daily totals (`<user id>:<end user>`) go under ERASED_USER's, and the records
    // forget which player each call was for.
    let players = crate::attribution::user_subject_prefix(id);
    merge_daily(conn, &players, "end_user", END_USERS_OF_USER).await?;
    run(conn, "UPDATE usage_records SET end_user = NULL WHERE user_id = $1", &[id]).await?;
    // Tags are the caller's own text (a value may be an address): they go.
    run(conn, "DELETE FROM usage_tags WHERE usage_id IN (SELECT id FROM usage_records WHERE user_id = $1)", &[id])
        .await?;
    let usage_errors = Kept { table: "usage_records", keys: &["id"], cols: &["error"] };
    anonymize(conn, who, &usage_errors, Some("user_id = $user")).await?;
    run(
        conn,
        &format!("UPDATE usage_records SET api_key_id = $2 WHERE api_key_id IN {KEYS_OF_USER}"),
        &[id, ERASED_USER],
    )
    .await?;
    run(conn, "UPDATE usage_records SET user_id = $2 WHERE user_id = $1", &[id, ERASED_USER]).await?;

    // 2. Limits set on the user or their keys go with them.
    for table in ["budgets", "rate_limits"] {
        run(
            conn,
            &format!(
                "DELETE FROM {table} WHERE (scope = 'user' AND subject_id = $1) \
                 OR (scope IN ('key', 'key_end_users') AND subject_id IN {KEYS_OF_USER})"
            ),
            &[id],
        )
        .await?;
        run(
            conn,
            &format!("DELETE FROM {table} WHERE scope = 'end_user' AND subject_id {END_USERS_OF_USER}"),
            &[&players],
        )
        .await?;
    }

    // Guardrails bound to the user's keys and personas go with them.
    run(
        conn,
        &format!(
            "DELETE FROM guardrail_bindings WHERE (scope = 'key' AND subject_id IN {KEYS_OF_USER}) \
             OR (scope = 'persona' AND subject_id IN (SELECT id FROM personas WHERE user_id = $1))"
        ),
        &[id],
    )
    .await?;

    // 3. The user's own data, children before parents (foreign keys are enforced).
    let mut args = Vec::new();
    let under = under_condition("path", &vault_area(id), &mut args);
    for table in ["kb_documents", "kb_unmirrored"] {
        bind_args(sqlx::query(&format!("DELETE FROM {table} WHERE {under}")), &args).execute(&mut *conn).await?;
    }
    let mut args = vec![Arg::Text(id.to_string())];
    let under = under_condition("path", &resource_areas(id), &mut args);
    bind_args(sqlx::query(&format!("DELETE FROM rbac_shares WHERE user_id = $1 OR {under}")), &args)
        .execute(&mut *conn)
        .await?;
    let deletes = [
        "DELETE FROM rbac_members WHERE user_id = $1",
        "DELETE FROM rbac_grants WHERE user_id = $1",
        "DELETE FROM auth_invites WHERE used_by = $1 OR LOWER(email) = $2",
        "DELETE FROM attachments WHERE user_id = $1 OR message_id IN (SELECT m.id FROM messages m \
         JOIN conversations c ON c.id = m.conversation_id WHERE c.user_id = $1)",
        "DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE user_id = $1)",
        "DELETE FROM conversations WHERE user_id = $1",
        "DELETE FROM persona_memories WHERE user_id = $1",
        // The vectors of their persona memory's facts (scope `memory:<user id>`), and of what NPCs
        // remember of them (`npcmem:<user id>:<world>:<npc>`).
        "DELETE FROM embeddings WHERE scope = 'memory:' || $1",
        // (an exact prefix, not LIKE: an external user id may hold `%` or `_`)
        "DELETE FROM embeddings WHERE substr(scope, 1, length('npcmem:' || $1 || ':')) = 'npcmem:' || $1 || ':'",
        "DELETE FROM world_npc_memories WHERE user_id = $1",
        "DELETE FROM world_npc_memories WHERE world_id IN (SELECT id FROM world_instances WHERE owner_id = $1)",
        // Game worlds: the player's views and NPC relationships go; what they carried leaves the
        // world with them (`gone`); their own worlds (isolated experiences) go whole.
        "DELETE FROM world_npc_relations WHERE user_id = $1",
        // What they said in scenes, and the NPCs' answers to them.
        "DELETE FROM world_scene_lines WHERE user_id = $1",
        "DELETE FROM world_scene_lines WHERE world_id IN (SELECT id FROM world_instances WHERE owner_id = $1)",
        "DELETE FROM world_scenes WHERE world_id IN (SELECT id FROM world_instances WHERE owner_id = $1)",
        // An `@reset` backup that holds the user (theirs, or a whole world's) goes: undo is lost for it.
        "DELETE FROM world_backups WHERE user_id = $1 OR snapshot LIKE '%' || $1 || '%'",
        "DELETE FROM world_players WHERE user_id = $1",
        "UPDATE world_items SET holder = 'gone' WHERE holder = 'player:' || $1",
        "DELETE FROM world_items WHERE world_id IN (SELECT id FROM world_instances WHERE owner_id = $1)",
        "DELETE FROM world_backups WHERE world_id IN (SELECT id FROM world_instances WHERE owner_id = $1)",
        "DELETE FROM world_players WHERE world_id IN (SELECT id FROM world_instances WHERE owner_id = $1)",
        "DELETE FROM world_npc_relations WHERE world_id IN (SELECT id FROM world_instances WHERE owner_id = $1)",
        "DELETE FROM world_places WHERE world_id IN (SELECT id FROM world_instances WHERE owner_id = $1)",
        "DELETE FROM world_instances WHERE owner_id = $1",
        "DELETE FROM personas WHERE user_id = $1",
        "DELETE FROM refresh_tokens WHERE user_id = $1",
        "DELETE FROM auth_sessions WHERE user_id = $1",
        "DELETE FROM web_sessions WHERE user_id = $1",
        "DELETE FROM api_keys WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ];
    for sql in deletes {
        let params: &[&str] = if sql.contains("$2") { &[id, email] } else { &[id] };
        run(conn, sql, params).await?;
    }

    // 4. Kept rows that mention the user: the audit trails, pending commits of knowledge-base edits
    //    (the commit author's name is the email's local part), and who made admin changes.
    let mut args = Vec::new();
    let mut conds = Vec::new();
    for n in &who.email_needles {
        args.push(Arg::Text(like_anywhere(n)));
        conds.push(format!("LOWER(author_email) LIKE ${} ESCAPE '\\'", args.len()));
    }
    for n in &who.id_needles {
        args.push(Arg::Text(like_anywhere(n)));
        conds.push(format!("author_email LIKE ${} ESCAPE '\\'", args.len()));
    }
    args.push(Arg::Text(ERASED_USER.to_string()));
    let sql = format!("UPDATE kb_unmirrored SET author_name = ${} WHERE {}", args.len(), conds.join(" OR "));
    bind_args(sqlx::query(&sql), &args).execute(&mut *conn).await?;
    for kept in KEPT {
        anonymize(conn, who, kept, None).await?;
    }

    // 5. Access control changed (memberships, grants, shares): every instance reloads its snapshot.
    run(conn, "UPDATE rbac_state SET version = version + 1 WHERE id = 1", &[]).await?;
    Ok(())
}

fn row_to_conversation(r: &AnyRow) -> Result<(Conversation, Option<DateTime<Utc>>)> {
    Ok((
        Conversation {
            id: r.try_get("id")?,
            user_id: r.try_get("user_id")?,
            title: r.try_get("title")?,
            model: r.try_get("model")?,
            persona_id: r.try_get("persona_id")?,
            created_at: from_ms(r.try_get("created_at")?),
            updated_at: from_ms(r.try_get("updated_at")?),
        },
        opt_time(r, "deleted_at")?,
    ))
}

impl Storage {
    /// Everything stored about `user_id`, for the user to take away (see [`UserExport`]: what it holds,
    /// its bounds, and its `truncated` flag). `NotFound` for an unknown user.
    ///
    /// Read with several queries, not one snapshot: a change made meanwhile may show in part.
    pub async fn export_user(&self, user_id: &str) -> Result<UserExport> {
        let pool = self.pool();
        let u = self.get_user(user_id).await?.ok_or_else(|| CoreError::NotFound(format!("user {user_id}")))?;
        let user = ExportedUser {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            is_admin: u.is_admin,
            created_at: u.created_at,
        };
        let settings = self.user_settings(user_id).await?;
        let mut truncated = false;

        // Conversations, newest first, each whole: when the messages' bound cuts one, it and every
        // later one are left out.
        let mut conversations = sqlx::query(
            "SELECT id, user_id, title, model, persona_id, created_at, updated_at, deleted_at FROM conversations \
             WHERE user_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(over(MAX_EXPORT_CONVERSATIONS))
        .fetch_all(pool)
        .await?
        .iter()
        .map(row_to_conversation)
        .collect::<Result<Vec<_>>>()?;
        truncated |= cut(&mut conversations, MAX_EXPORT_CONVERSATIONS);
        let mut messages = sqlx::query(
            "SELECT m.id, m.conversation_id, m.role, m.content, m.model, m.input_tokens, m.output_tokens, \
             m.created_at FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.user_id = $1 \
             ORDER BY c.updated_at DESC, c.id DESC, m.seq LIMIT $2",
        )
        .bind(user_id)
        .bind(over(MAX_EXPORT_MESSAGES))
        .fetch_all(pool)
        .await?
        .iter()
        .map(super::conversations::row_to_msg)
        .collect::<Result<Vec<_>>>()?;
        let cut_in = if cut(&mut messages, MAX_EXPORT_MESSAGES) {
            truncated = true;
            messages.last().map(|m| m.conversation_id.clone())
        } else {
            None
        };
        let mut by_conversation: HashMap<String, Vec<StoredMessage>> = HashMap::new();
        for m in messages {
            by_conversation.entry(m.conversation_id.clone()).or_default().push(m);
        }
        let mut exported = Vec::with_capacity(conversations.len());
        for (conversation, deleted_at) in conversations {
            if cut_in.as_deref() == Some(conversation.id.as_str()) {
                break;
            }
            let messages = by_conversation.remove(&conversation.id).unwrap_or_default();
            exported.push(ExportedConversation { conversation, deleted_at, messages });
        }

        let personas = self.list_personas(user_id).await?.into_iter().filter(|p| !p.is_builtin()).collect();
        let persona_memories = self.persona_memories_of(user_id).await?;

        let mut attachments = sqlx::query(
            "SELECT id, user_id, message_id, media_type, file_name, size, created_at FROM attachments \
             WHERE user_id = $1 ORDER BY created_at, id LIMIT $2",
        )
        .bind(user_id)
        .bind(over(MAX_EXPORT_ROWS))
        .fetch_all(pool)
        .await?
        .iter()
        .map(super::attachments::row_to_attachment)
        .collect::<Result<Vec<_>>>()?;
        truncated |= cut(&mut attachments, MAX_EXPORT_ROWS);

        let keys = self.list_api_keys(Some(user_id)).await?;
        let mut budgets = self.list_budgets(Some((LimitScope::User, user_id))).await?;
        let mut rate_limits: Vec<RateLimitOverride> =
            self.rate_limit(LimitScope::User, user_id).await?.into_iter().collect();
        for k in &keys {
            budgets.extend(self.list_budgets(Some((LimitScope::Key, &k.id))).await?);
            rate_limits.extend(self.rate_limit(LimitScope::Key, &k.id).await?);
        }
        let api_keys = keys
            .into_iter()
            .map(|k| ExportedApiKey {
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                created_at: k.created_at,
                expires_at: k.expires_at,
                revoked_at: k.revoked_at,
                last_used_at: k.last_used_at,
                rotated_to: k.rotated_to,
            })
            .collect();

        let mut sign_ins = sqlx::query(
            "SELECT id, created_at, revoked_at, revoked_reason FROM auth_sessions WHERE user_id = $1 \
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(user_id)
        .bind(over(MAX_EXPORT_ROWS))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ExportedSignIn {
                id: r.try_get("id")?,
                created_at: from_ms(r.try_get("created_at")?),
                revoked_at: opt_time(r, "revoked_at")?,
                revoked_reason: r.try_get("revoked_reason")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        truncated |= cut(&mut sign_ins, MAX_EXPORT_ROWS);
        let mut web_sessions = sqlx::query(
            "SELECT created_at, expires_at FROM web_sessions WHERE user_id = $1 ORDER BY created_at LIMIT $2",
        )
        .bind(user_id)
        .bind(over(MAX_EXPORT_ROWS))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ExportedWebSession {
                created_at: from_ms(r.try_get("created_at")?),
                expires_at: from_ms(r.try_get("expires_at")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        truncated |= cut(&mut web_sessions, MAX_EXPORT_ROWS);

        let filter = UsageFilter { user_id: Some(user_id.to_string()), ..Default::default() };
        let summary = self.usage_summary(&filter).await?;
        let mut records = self.list_usage(&filter, over(MAX_EXPORT_ROWS)).await?;
        truncated |= cut(&mut records, MAX_EXPORT_ROWS);

        let teams = sqlx::query(
            "SELECT m.group_id, t.kind, t.name, m.role, m.created_at FROM rbac_members m \
             JOIN rbac_teams t ON t.id = m.group_id WHERE m.user_id = $1 ORDER BY t.kind, t.name, m.group_id",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ExportedMembership {
                team_id: r.try_get("group_id")?,
                kind: r.try_get("kind")?,
                name: r.try_get("name")?,
                role: r.try_get("role")?,
                created_at: from_ms(r.try_get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let grants = sqlx::query(
            "SELECT id, role, group_id, expires_at, created_at FROM rbac_grants WHERE user_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ExportedGrant {
                id: r.try_get("id")?,
                role: r.try_get("role")?,
                team_id: r.try_get("group_id")?,
                expires_at: opt_time(r, "expires_at")?,
                created_at: from_ms(r.try_get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let mut shares = sqlx::query(
            "SELECT id, resource_type, path, access, created_at FROM rbac_shares WHERE user_id = $1 \
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(user_id)
        .bind(over(MAX_EXPORT_ROWS))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ExportedShare {
                id: r.try_get("id")?,
                resource_type: r.try_get("resource_type")?,
                path: r.try_get("path")?,
                access: r.try_get("access")?,
                created_at: from_ms(r.try_get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        truncated |= cut(&mut shares, MAX_EXPORT_ROWS);

        let invites = sqlx::query(
            "SELECT id, email, created_by, created_at, expires_at, used_at FROM auth_invites \
             WHERE used_by = $1 OR email = $2 ORDER BY created_at, id",
        )
        .bind(user_id)
        .bind(&user.email)
        .fetch_all(pool)
        .await?
        .iter()
        .map(super::users::row_to_invite)
        .collect::<Result<Vec<_>>>()?;

        let mut args = Vec::new();
        let under = under_condition("path", &vault_area(user_id), &mut args);
        args.push(Arg::Int(over(MAX_EXPORT_ROWS)));
        let sql = format!(
            "SELECT kb, path, content, updated_at FROM kb_documents WHERE {under} ORDER BY kb, path LIMIT ${}",
            args.len()
        );
        let mut kb_documents = bind_args(sqlx::query(&sql), &args)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok(ExportedDocument {
                    kb: r.try_get("kb")?,
                    path: r.try_get("path")?,
                    content: r.try_get("content")?,
                    updated_at: from_ms(r.try_get("updated_at")?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        truncated |= cut(&mut kb_documents, MAX_EXPORT_ROWS);

        let mut audit = sqlx::query(
            "SELECT id, actor_id, action, target, details, created_at FROM ( \
               SELECT id, actor_id, action, target, details, created_at FROM audit_log \
               UNION ALL SELECT id, actor_id, action, target, details, created_at FROM rbac_audit) a \
             WHERE actor_id = $1 OR target = $1 ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(user_id)
        .bind(over(MAX_EXPORT_ROWS))
        .fetch_all(pool)
        .await?
        .iter()
        .map(super::audit::row_to_audit)
        .collect::<Result<Vec<_>>>()?;
        truncated |= cut(&mut audit, MAX_EXPORT_ROWS);

        let mut worlds = Vec::new();
        let players = sqlx::query(
            "SELECT w.experience_id, p.world_id, p.location_id, p.area_id, p.stats, p.status_effects, p.quests \
             FROM world_players p JOIN world_instances w ON w.id = p.world_id WHERE p.user_id = $1 \
             ORDER BY p.world_id LIMIT $2",
        )
        .bind(user_id)
        .bind(over(MAX_EXPORT_ROWS))
        .fetch_all(pool)
        .await?;
        let holder = format!("player:{user_id}");
        for r in &players {
            let world_id: String = r.try_get("world_id")?;
            let json = |c: &str| -> Result<serde_json::Value> {
                Ok(serde_json::from_str(&r.try_get::<String, _>(c)?).unwrap_or(serde_json::Value::Null))
            };
            let mut items: Vec<serde_json::Value> = sqlx::query(
                "SELECT data FROM world_items WHERE world_id = $1 AND holder = $2 ORDER BY item_id LIMIT $3",
            )
            .bind(&world_id)
            .bind(&holder)
            .bind(over(MAX_EXPORT_ROWS))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|i| Ok(serde_json::from_str(&i.try_get::<String, _>("data")?).unwrap_or(serde_json::Value::Null)))
            .collect::<Result<_>>()?;
            let mut memories: Vec<serde_json::Value> = sqlx::query(
                "SELECT npc_id, text, importance, created_at FROM world_npc_memories WHERE world_id = $1 AND user_id = $2 \
                 ORDER BY npc_id, created_at LIMIT $3",
            )
            .bind(&world_id)
            .bind(user_id)
            .bind(over(MAX_EXPORT_ROWS))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|m| {
                Ok(serde_json::json!({"npc_id": m.try_get::<String, _>("npc_id")?, "text": m.try_get::<String, _>("text")?,
                                      "importance": m.try_get::<i64, _>("importance")?,
                                      "learned_at": from_ms(m.try_get::<i64, _>("created_at")?)}))
            })
            .collect::<Result<_>>()?;
            let mut relations: Vec<serde_json::Value> = sqlx::query(
                "SELECT npc_id, trust, respect, familiarity, emotion, exchanges, facts, mind FROM world_npc_relations \
                 WHERE world_id = $1 AND user_id = $2 ORDER BY npc_id LIMIT $3",
            )
            .bind(&world_id)
            .bind(user_id)
            .bind(over(MAX_EXPORT_ROWS))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|n| {
                let parse = |c: &str| -> Result<serde_json::Value> {
                    Ok(serde_json::from_str(&n.try_get::<String, _>(c)?).unwrap_or(serde_json::Value::Null))
                };
                let axis = |c: &str| n.try_get::<i64, _>(c);
                Ok(serde_json::json!({"npc_id": n.try_get::<String, _>("npc_id")?, "trust": axis("trust")?,
                                      "respect": axis("respect")?, "familiarity": axis("familiarity")?,
                                      "emotion": parse("emotion")?, "exchanges": parse("exchanges")?,
                                      "facts": parse("facts")?, "mind": parse("mind")?}))
            })
            .collect::<Result<_>>()?;
            let mut scene_lines: Vec<serde_json::Value> = sqlx::query(
                "SELECT scene_id, seq, speaker, text, created_at FROM world_scene_lines WHERE world_id = $1 \
                 AND user_id = $2 ORDER BY scene_id, seq LIMIT $3",
            )
            .bind(&world_id)
            .bind(user_id)
            .bind(over(MAX_EXPORT_ROWS))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|l| {
                Ok(serde_json::json!({"scene_id": l.try_get::<String, _>("scene_id")?, "seq": l.try_get::<i64, _>("seq")?,
                                      "speaker": l.try_get::<String, _>("speaker")?, "text": l.try_get::<String, _>("text")?,
                                      "said_at": from_ms(l.try_get::<i64, _>("created_at")?)}))
            })
            .collect::<Result<_>>()?;
            truncated |= cut(&mut items, MAX_EXPORT_ROWS);
            truncated |= cut(&mut scene_lines, MAX_EXPORT_ROWS);
            truncated |= cut(&mut memories, MAX_EXPORT_ROWS);
            truncated |= cut(&mut relations, MAX_EXPORT_ROWS);
            worlds.push(serde_json::json!({
                "experience": r.try_get::<String, _>("experience_id")?,
                "current_location": r.try_get::<String, _>("location_id")?,
                "current_area": r.try_get::<String, _>("area_id")?,
                "stats": json("stats")?, "status_effects": json("status_effects")?, "quests": json("quests")?,
                "inventory": items, "relationships": relations, "npc_memories": memories,
                "scene_lines": scene_lines,
            }));
        }
        truncated |= cut(&mut worlds, MAX_EXPORT_ROWS);

        Ok(UserExport {
            exported_at: from_ms(now_ms()),
            user,
            settings,
            conversations: exported,
            personas,
            persona_memories,
            attachments,
            api_keys,
            sign_ins,
            web_sessions,
            usage: UsageExport { summary, records },
            budgets,
            rate_limits,
            teams,
            grants,
            shares,
            invites,
            kb_documents,
            audit,
            worlds,
            truncated,
        })
    }

    /// Erases `user_id` in one transaction, so that afterwards no table holds the user's id or email.
    /// `NotFound` for an unknown user; `InvalidInput` for [`ERASED_USER`] itself.
    ///
    /// Deleted, as the user's own data: the account; conversations, messages and attachments;
    /// personas and what personas remember about the user; API keys, refresh tokens, sign-in and web
    /// sessions; invitations addressed to the user's email or used to register the account; team
    /// memberships, role grants, and shares with the user or of the user's resources
    /// (`/users/<id>/…`, `/kb/users/<id>/…`); budgets and rate limits set on the user or on one of
    /// their keys; the documents of their private knowledge-base area (`users/<id>/…`, kept in the
    /// database in `database` and `hybrid` modes) and their edits waiting for a git commit.
    ///
    /// Anonymized, with [`ERASED_USER`] in place of the user's id, email and API key ids, because
    /// other people's figures or the security record depend on them: usage records and daily totals
    /// (merged into those of [`ERASED_USER`], so billing totals and spend per day still add up), the
    /// audit trails `audit_log` and `rbac_audit` (ids and emails inside their text and JSON details
    /// too), the author of pending knowledge-base commits, and the "made by" columns of what the user
    /// did as an administrator (budgets, rate limits, prices, runtime providers, invitations, teams,
    /// grants, shares, custom roles, knowledge-base documents) — an invitation the user sent to
    /// someone else still works.
    ///
    /// Both credentials versions and the access-control version are bumped in the same transaction,
    /// so every instance drops the validations of the user's keys and sessions it cached.
    ///
    /// Not covered: other people's own text that mentions the user (their messages, shared
    /// documents outside the user's area), and a knowledge base's git working copy and history
    /// (`git` and `hybrid` modes), which the knowledge-base layer handles.
    pub async fn erase_user(&self, user_id: &str) -> Result<()> {
        if user_id == ERASED_USER {
            return Err(CoreError::InvalidInput(format!("`{ERASED_USER}` stands for users already erased")));
        }
        let mut tx = self.pool().begin().await?;
        // A write first: it takes SQLite's write lock at once, so the transaction cannot fail half way
        // for a lock another writer took after its first read.
        super::credentials::bump_in(&mut tx).await?;
        let row = sqlx::query("SELECT email FROM users WHERE id = $1").bind(user_id).fetch_optional(&mut *tx).await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(CoreError::NotFound(format!("user {user_id}")));
        };
        let email: String = row.try_get("email")?;
        let who = Who::new(user_id, &email);
        erase_in(&mut tx, &who, &email.trim().to_lowercase()).await?;
        super::credentials::bump_sessions_in(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_replaced_where_not_glued_to_letters_or_digits() {
        let who = Who::new("u1", "Ann@Example.com");
        assert_eq!(
            who.scrub(r#"{"user":"u1","email":"ANN@example.com","path":"/users/u1/x"}"#).as_deref(),
            Some(r#"{"user":"erased-user","email":"erased-user","path":"/users/erased-user/x"}"#)
        );
        assert_eq!(who.scrub("u12 and xu1 and joann@example.com"), None);
        assert_eq!(who.scrub("é u1 é").as_deref(), Some("é erased-user é"));
        assert_eq!(who.scrub(""), None);
        let quoted = Who::new("a\"b", "x@y.z");
        assert_eq!(quoted.scrub(r#"{"id":"a\"b"}"#).as_deref(), Some(r#"{"id":"erased-user"}"#));
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_anywhere("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
