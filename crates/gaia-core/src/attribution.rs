//! Who a model call is for and what it is about, beyond the caller: the **end user** (the player a
//! game server calls for, named by OpenAI's `user`, Anthropic's `metadata.user_id`, Gaia's
//! `player_id` or the `x-gaia-end-user` header) and **tags** (`x-gaia-tags: npc=louisa,quest=first-light`).
//!
//! Both come from the caller, so both are bounded and checked here, once, before anything counts or
//! records them. End users live inside the namespace of the Gaia user who calls for them: player
//! `p7` of one studio is not player `p7` of another, and no caller can use up another's players'
//! limits ([`end_user_subject`]).
//!
//! ```
//! use gaia_core::attribution::{Attribution, Tags};
//!
//! let tags = Tags::parse("npc=louisa, quest=first-light").unwrap();
//! assert_eq!(tags.get("npc"), Some("louisa"));
//! assert!(Tags::parse("npc=louisa,npc=felix").is_err(), "a key given twice");
//! let a = Attribution::new(Some("player-7"), tags).unwrap();
//! assert_eq!(a.end_user(), Some("player-7"));
//! assert!(Attribution::new(Some(&"x".repeat(257)), Tags::default()).is_err());
//! ```

use crate::error::{CoreError, Result};

/// Longest end-user id, in characters.
pub const MAX_END_USER_CHARS: usize = 256;
/// Most tags on one request.
pub const MAX_TAGS: usize = 10;
/// Longest tag key, in bytes (`[a-z0-9_.-]`).
pub const MAX_TAG_KEY: usize = 32;
/// Longest tag value, in bytes.
pub const MAX_TAG_VALUE: usize = 64;

/// A checked end-user id: 1 to [`MAX_END_USER_CHARS`] characters (surrounding spaces trimmed), no
/// control characters.
pub fn end_user(raw: &str) -> Result<String> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(CoreError::InvalidInput("the end user id is empty".into()));
    }
    if id.chars().count() > MAX_END_USER_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "the end user id is over {MAX_END_USER_CHARS} characters; send a shorter stable id (e.g. a hash)"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(CoreError::InvalidInput("the end user id contains control characters".into()));
    }
    Ok(id.to_string())
}

/// The subject id of end user `end_user` of Gaia user `user_id`, as limits, budgets and daily
/// totals name it: `<user_id>:<end_user>`, where a `%` or `:` in the user id (an identity
/// provider's subject may have them) is written `%25` / `%3A`, so that the first `:` always ends
/// the user id and no two users' players share a subject.
pub fn end_user_subject(user_id: &str, end_user: &str) -> String {
    let mut s = user_subject_prefix(user_id);
    s.push_str(end_user);
    s
}

/// The beginning every end-user subject of `user_id` has: its escaped id and `:`.
pub fn user_subject_prefix(user_id: &str) -> String {
    let mut s = String::with_capacity(user_id.len() + 1);
    for c in user_id.chars() {
        match c {
            '%' => s.push_str("%25"),
            ':' => s.push_str("%3A"),
            c => s.push(c),
        }
    }
    s.push(':');
    s
}

/// Splits an end user's subject id (`<user_id>:<end_user>`) into the user (as written, escaped) and
/// the end user, both checked; the user id is everything before the first `:`.
pub fn parse_end_user_subject(subject: &str) -> Result<(&str, String)> {
    let (user, end) = subject.split_once(':').ok_or_else(|| {
        CoreError::InvalidInput(
            "an end user is named `<user id>:<end user id>` (the Gaia user who calls for them)".into(),
        )
    })?;
    if user.trim().is_empty() {
        return Err(CoreError::InvalidInput("the user id before `:` is empty".into()));
    }
    Ok((user, end_user(end)?))
}

/// Whether `key` is a valid tag key (`[a-z0-9_.-]`, 1 to [`MAX_TAG_KEY`] bytes).
pub fn valid_tag_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_TAG_KEY
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// A request's tags: `key=value` pairs, keys unique. Keys are `[a-z0-9_.-]`, up to
/// [`MAX_TAG_KEY`] bytes; values are letters, digits and `_ . - : / @ +`, up to
/// [`MAX_TAG_VALUE`] bytes; at most [`MAX_TAGS`] of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    /// Parses `key=value` pairs separated by commas (spaces around each trimmed; an empty header is
    /// no tags).
    pub fn parse(raw: &str) -> Result<Tags> {
        let mut out: Vec<(String, String)> = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if out.len() == MAX_TAGS {
                return Err(CoreError::InvalidInput(format!("more than {MAX_TAGS} tags")));
            }
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| CoreError::InvalidInput(format!("tag `{}` is not `key=value`", clip(part))))?;
            let (k, v) = (k.trim(), v.trim());
            if !valid_tag_key(k) {
                return Err(CoreError::InvalidInput(format!(
                    "tag key `{}` must be 1 to {MAX_TAG_KEY} of a-z, 0-9, `_`, `.`, `-`",
                    clip(k)
                )));
            }
            let value_ok = !v.is_empty()
                && v.len() <= MAX_TAG_VALUE
                && v.chars().all(|c| c.is_alphanumeric() || "_.-:/@+".contains(c))
                && v.chars().next().is_some_and(char::is_alphanumeric);
            if !value_ok {
                return Err(CoreError::InvalidInput(format!(
                    "tag `{k}`'s value must be 1 to {MAX_TAG_VALUE} bytes of letters, digits and `_ . - : / @ +`, \
                     starting with a letter or digit"
                )));
            }
            if out.iter().any(|(have, _)| have == k) {
                return Err(CoreError::InvalidInput(format!("tag `{k}` is given twice")));
            }
            out.push((k.to_string(), v.to_string()));
        }
        Ok(Tags(out))
    }

    /// The value of tag `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The pairs, in the order given.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// No tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl serde::Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let m = <std::collections::BTreeMap<String, String>>::deserialize(d)?;
        let joined = m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        Tags::parse(&joined).map_err(serde::de::Error::custom)
    }
}

/// At most 40 characters of caller input, for an error message.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Who a call is for and what it is about: the end user (checked with [`end_user`]) and the tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    end_user: Option<String>,
    tags: Tags,
}

impl Attribution {
    /// An attribution; the end user is checked.
    pub fn new(end_user: Option<&str>, tags: Tags) -> Result<Attribution> {
        Ok(Attribution { end_user: end_user.map(self::end_user).transpose()?, tags })
    }

    /// The end user, if the request named one.
    pub fn end_user(&self) -> Option<&str> {
        self.end_user.as_deref()
    }

    /// The tags.
    pub fn tags(&self) -> &Tags {
        &self.tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_bounded_and_checked() {
        assert!(Tags::parse("").unwrap().is_empty());
        assert!(Tags::parse(" , ").unwrap().is_empty());
        let t = Tags::parse("npc=louisa,quest=first-light,zone=eu/west").unwrap();
        assert_eq!(t.pairs().len(), 3);
        for bad in [
            "npc",
            "=louisa",
            "NPC=louisa",
            "npc=",
            "npc==x",
            "npc=a b",
            "npc=-x",
            "npc=\"x\"",
            "npc=<script>",
            "npc=a,npc=b",
            "n\u{0}pc=x",
            "npc=\u{7}",
        ] {
            assert!(Tags::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let many = (0..=MAX_TAGS).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
        assert!(Tags::parse(&many).unwrap_err().to_string().contains("more than"));
        assert!(Tags::parse(&format!("k={}", "v".repeat(MAX_TAG_VALUE + 1))).is_err());
        assert!(Tags::parse(&format!("{}=v", "k".repeat(MAX_TAG_KEY + 1))).is_err());
        // Values in other scripts are letters too.
        assert_eq!(Tags::parse("npc=Zoë").unwrap().get("npc"), Some("Zoë"));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"npc":"louisa","quest":"first-light","zone":"eu/west"}"#);
        assert!(serde_json::from_str::<Tags>(r#"{"NPC":"x"}"#).is_err());
    }

    #[test]
    fn end_users_are_bounded_and_namespaced() {
        assert_eq!(end_user("  p-7 ").unwrap(), "p-7");
        assert!(end_user("").is_err());
        assert!(end_user("a\nb").is_err());
        assert!(end_user(&"é".repeat(MAX_END_USER_CHARS)).is_ok());
        assert!(end_user(&"é".repeat(MAX_END_USER_CHARS + 1)).is_err());
        assert_eq!(end_user_subject("u1", "p:7"), "u1:p:7");
        // A user id with `:` cannot make another user's subject.
        assert_ne!(end_user_subject("a", "b:c"), end_user_subject("a:b", "c"));
        assert_eq!(end_user_subject("a:b%", "c"), "a%3Ab%25:c");
        assert_eq!(parse_end_user_subject("u1:p:7").unwrap(), ("u1", "p:7".to_string()));
        assert!(parse_end_user_subject("p7").is_err());
        assert!(parse_end_user_subject(":p7").is_err());
        assert!(parse_end_user_subject("u1:").is_err());
    }
}
