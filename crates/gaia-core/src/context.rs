//! Fitting a conversation into a model's context window.
//!
//! Token counts are estimates (about four bytes per token, at least one per word, plus a few tokens of
//! framing per message): exact counts depend on each vendor's tokenizer, and the estimate errs on the
//! side of sending less.

use crate::types::ChatMessage;

/// Context window assumed for a model whose catalog entry gives none.
pub const DEFAULT_CONTEXT_WINDOW: u32 = 8_192;
/// Tokens kept free for the answer when the request does not set `max_tokens`.
pub const DEFAULT_ANSWER_RESERVE: u32 = 1_024;
/// Framing tokens counted per message (role, separators).
const PER_MESSAGE: usize = 4;

/// An estimate of the number of tokens of `text`.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4).max(text.split_whitespace().count())
}

/// An estimate of the tokens a message takes in a prompt.
pub fn message_tokens(m: &ChatMessage) -> usize {
    PER_MESSAGE
        + estimate_tokens(&m.content)
        + m.tool_calls.iter().map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.arguments)).sum::<usize>()
        + IMAGE_TOKENS * m.images.len()
}

/// What one image is counted as in a prompt: a typical high-detail image (about 1,100 tokens on
/// OpenAI's and Anthropic's vision models; small images cost less, so this errs on the safe side).
pub const IMAGE_TOKENS: usize = 1_100;

/// The messages to send: all of `system`, then the newest messages of `history` that fit, then
/// `latest`, within `context_window − reserve` tokens. Whole messages are dropped from the oldest end
/// (an assistant message is never kept without the user message before it when that would start the
/// history with an answer). Returns the messages and how many history messages were dropped.
pub fn fit_history(
    system: Vec<ChatMessage>,
    history: Vec<ChatMessage>,
    latest: ChatMessage,
    context_window: u32,
    reserve: u32,
) -> (Vec<ChatMessage>, usize) {
    let budget = (context_window as usize).saturating_sub(reserve as usize);
    let fixed: usize = system.iter().map(message_tokens).sum::<usize>() + message_tokens(&latest);
    let mut left = budget.saturating_sub(fixed);
    let mut keep = 0;
    for m in history.iter().rev() {
        let t = message_tokens(m);
        if t > left {
            break;
        }
        left -= t;
        keep += 1;
    }
    let mut start = history.len() - keep;
    // Do not open the kept history with an orphaned answer.
    while start < history.len() && history[start].role != crate::types::Role::User {
        start += 1;
    }
    let dropped = start;
    let mut out = system;
    out.extend(history.into_iter().skip(start));
    out.push(latest);
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Role;

    fn turn(i: usize) -> [ChatMessage; 2] {
        [
            ChatMessage::user(format!("question {i} {}", "word ".repeat(40))),
            ChatMessage::assistant(format!("answer {i} {}", "word ".repeat(40))),
        ]
    }

    #[test]
    fn everything_fits_in_a_large_window() {
        let history: Vec<_> = (0..3).flat_map(turn).collect();
        let (out, dropped) =
            fit_history(vec![ChatMessage::system("be brief")], history, ChatMessage::user("now"), 100_000, 1_000);
        assert_eq!((out.len(), dropped), (8, 0));
        assert_eq!(out[0].role, Role::System);
        assert_eq!(out.last().unwrap().content, "now");
    }

    #[test]
    fn oldest_turns_go_first_and_the_rest_fits() {
        let history: Vec<_> = (0..50).flat_map(turn).collect();
        let per_turn: usize = turn(0).iter().map(message_tokens).sum();
        let window = (per_turn * 5 + 200) as u32;
        let (out, dropped) =
            fit_history(vec![ChatMessage::system("be brief")], history, ChatMessage::user("now"), window, 100);
        assert!(dropped >= 90, "{dropped}");
        assert_eq!(out[0].role, Role::System);
        assert_eq!(out[1].role, Role::User, "kept history starts with a question");
        assert!(out[out.len() - 2].content.starts_with("answer 49"));
        let total: usize = out.iter().map(message_tokens).sum();
        assert!(total <= window as usize - 100);
    }

    #[test]
    fn a_tiny_window_keeps_system_and_latest() {
        let history: Vec<_> = (0..3).flat_map(turn).collect();
        let (out, dropped) = fit_history(vec![ChatMessage::system("s")], history, ChatMessage::user("hi"), 10, 1_000);
        assert_eq!((out.len(), dropped), (2, 6));
    }

    #[test]
    fn estimates_count_words_and_bytes() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("a b c d e"), 5);
        assert_eq!(estimate_tokens(&"x".repeat(400)), 100);
    }
}
