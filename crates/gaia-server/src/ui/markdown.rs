//! Markdown to safe HTML for chat messages.
//!
//! Raw HTML in a message (from the model or the user) is shown as text, never interpreted: a
//! `<script>` in an answer appears literally. The rendered HTML then goes through ammonia's allow-list
//! sanitiser as a second line of defence (links get `rel="noopener noreferrer nofollow"`; `javascript:`
//! URLs are dropped).

use pulldown_cmark::{html, Event, Options, Parser};

/// Renders `text` (CommonMark with tables, strikethrough and task lists) as sanitised HTML.
pub fn render(text: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS);
    let events = Parser::new_ext(text, opts).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        other => other,
    });
    let mut out = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut out, events);
    ammonia::Builder::default()
        .add_tag_attributes("code", &["class"])
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&out)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn markdown_is_rendered() {
        let h =
            render("# Title\n\n**bold** and `code`\n\n```rust\nfn main() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |");
        assert!(h.contains("<h1>Title</h1>"), "{h}");
        assert!(h.contains("<strong>bold</strong>"));
        assert!(h.contains("<code class=\"language-rust\">"), "{h}");
        assert!(h.contains("<table>"));
    }

    #[test]
    fn html_is_shown_as_text_and_nothing_runs() {
        let h = render("Hi <script>alert('x')</script> <img src=x onerror=alert(1)>\n\n<div onclick=\"x()\">d</div>");
        assert!(!h.contains("<script"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(!h.contains("<img"), "{h}");
        assert!(!h.contains("<div"), "{h}");
        let l = render("[click](javascript:alert(1)) [ok](https://example.com)");
        assert!(!l.contains("javascript:"), "{l}");
        assert!(l.contains("rel=\"noopener noreferrer nofollow\""), "{l}");
    }
}
