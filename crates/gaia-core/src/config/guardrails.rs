//! `[guardrails]`: checks on what goes to a model (input) and what comes back (output, streamed
//! output included), each rule with what it does when it trips.

use serde::{Deserialize, Serialize};

/// Most rules.
pub const MAX_RULES: usize = 64;
/// Most words of a `words` rule (and injection markers of an `injection` rule).
pub const MAX_WORDS: usize = 10_000;
/// Most patterns of a `patterns` rule.
pub const MAX_PATTERNS: usize = 256;
/// Longest pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// The most memory one rule's compiled patterns may take.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// `[guardrails]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GuardrailsConfig {
    /// The rules, by name.
    pub rules: Vec<GuardrailRule>,
    /// The rules every model call is checked with, unless its API key has rules of its own
    /// (`PUT /api/v1/guardrails/key/{id}`); a persona's rules are added to them.
    pub apply: Vec<String>,
    /// Streamed output is checked once this many characters have come (and at the end); up to 64
    /// characters more are held back so that a match across two windows is still caught.
    pub stream_window_chars: usize,
}

impl Default for GuardrailsConfig {
    fn default() -> Self {
        GuardrailsConfig { rules: Vec::new(), apply: Vec::new(), stream_window_chars: 128 }
    }
}

/// What a rule checks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailCheck {
    /// Whole words or phrases of `words`, case-insensitive.
    Words,
    /// Regular expressions of `patterns`.
    Patterns,
    /// Personal data: `pii` (emails, phone numbers, payment card numbers).
    Pii,
    /// Prompt-injection markers ("ignore previous instructions", chat-template tokens, and `words`).
    Injection,
    /// More than `max_chars` characters (of the user's messages, or of the answer).
    MaxLength,
    /// A moderation model (OpenAI's `/v1/moderations` shape) through the provider registry: `model`.
    Moderation,
}

/// Where a rule applies.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailStage {
    /// What the caller sends (their messages), before any model sees it.
    Input,
    /// What the model answers.
    Output,
    /// Both.
    #[default]
    Both,
}

impl GuardrailStage {
    /// Whether it covers the input.
    pub fn input(self) -> bool {
        self != GuardrailStage::Output
    }
    /// Whether it covers the output.
    pub fn output(self) -> bool {
        self != GuardrailStage::Input
    }
}

/// What a rule does when it trips. Every trip is audited (`guardrail.trip`, without the text) and
/// counted in `/metrics`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailAction {
    /// Refuse: the request with a 400 in the caller's API shape; a streamed answer stops with an error.
    Refuse,
    /// Replace what matched with `[redacted]` (or cut to `max_chars`), and go on.
    Redact,
    /// Only record the trip.
    Flag,
}

/// Kinds of personal data.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// Email addresses.
    Email,
    /// Phone numbers (international or with separators, 9 to 15 digits).
    Phone,
    /// Payment card numbers (13 to 19 digits passing the Luhn check).
    Card,
}

/// One rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GuardrailRule {
    /// Its name (1–64 of `a-z 0-9 _ -`), as `apply`, bindings, the audit log and metrics name it.
    pub name: String,
    /// What it checks.
    pub check: GuardrailCheck,
    /// Where.
    #[serde(default)]
    pub stage: GuardrailStage,
    /// What it does.
    pub action: GuardrailAction,
    /// `words` / `injection`: the words or phrases.
    #[serde(default)]
    pub words: Vec<String>,
    /// `patterns`: regular expressions (Rust `regex` syntax: no look-around, linear time).
    #[serde(default)]
    pub patterns: Vec<String>,
    /// `pii`: which kinds (default all).
    #[serde(default)]
    pub pii: Vec<PiiKind>,
    /// `max_length`: the most characters.
    #[serde(default)]
    pub max_chars: Option<usize>,
    /// `moderation`: the moderation model, as `provider/model` (the text goes to that provider only).
    #[serde(default)]
    pub model: Option<String>,
    /// The refusal's message (default: names the rule).
    #[serde(default)]
    pub message: Option<String>,
}

impl GuardrailsConfig {
    /// Checks names, bounds, and that every pattern compiles within its size limit.
    pub fn validate(&self) -> Result<(), String> {
        if self.rules.len() > MAX_RULES {
            return Err(format!("guardrails.rules: at most {MAX_RULES} rules"));
        }
        if !(16..=65_536).contains(&self.stream_window_chars) {
            return Err("guardrails.stream_window_chars: 16 to 65536".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("guardrails.rules[{i}]");
            if !valid_name(&r.name) {
                return Err(format!("{at}.name: 1 to 64 of a-z, 0-9, `_`, `-`"));
            }
            if !names.insert(r.name.as_str()) {
                return Err(format!("{at}.name: `{}` is used twice", r.name));
            }
            if r.words.len() > MAX_WORDS || r.words.iter().any(|w| w.trim().is_empty() || w.len() > 256) {
                return Err(format!("{at}.words: at most {MAX_WORDS} of 1 to 256 bytes"));
            }
            match r.check {
                GuardrailCheck::Words if r.words.is_empty() => return Err(format!("{at}.words: none given")),
                GuardrailCheck::Patterns => {
                    if r.patterns.is_empty() || r.patterns.len() > MAX_PATTERNS {
                        return Err(format!("{at}.patterns: 1 to {MAX_PATTERNS} patterns"));
                    }
                    for p in &r.patterns {
                        if p.len() > MAX_PATTERN_BYTES {
                            return Err(format!("{at}.patterns: a pattern is over {MAX_PATTERN_BYTES} bytes"));
                        }
                        regex::RegexBuilder::new(p)
                            .size_limit(PATTERN_SIZE_LIMIT)
                            .build()
                            .map_err(|e| format!("{at}.patterns: {e}"))?;
                    }
                }
                GuardrailCheck::MaxLength if r.max_chars.is_none_or(|n| n == 0) => {
                    return Err(format!("{at}.max_chars: a positive number is needed"))
                }
                GuardrailCheck::Moderation => {
                    // Named with its provider, so the text goes to that provider only.
                    let named = r.model.as_deref().and_then(|m| m.split_once('/'));
                    if named.is_none_or(|(p, m)| p.trim().is_empty() || m.trim().is_empty()) {
                        return Err(format!("{at}.model: the moderation model, as `provider/model`"));
                    }
                    if r.action == GuardrailAction::Redact {
                        return Err(format!("{at}.action: a moderation rule refuses or flags; it cannot redact"));
                    }
                }
                _ => {}
            }
            if r.message.as_ref().is_some_and(|m| m.len() > 1024) {
                return Err(format!("{at}.message: at most 1024 bytes"));
            }
        }
        for (i, n) in self.apply.iter().enumerate() {
            if !names.contains(n.as_str()) {
                return Err(format!("guardrails.apply[{i}]: no rule is named `{n}`"));
            }
        }
        Ok(())
    }
}

/// Whether `name` is a valid rule name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
