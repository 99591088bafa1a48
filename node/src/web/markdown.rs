//! User Markdown as safe HTML: raw HTML in the source is shown as text, never parsed, and the
//! rendered HTML is then cleaned by ammonia (no scripts, no event attributes, links only to
//! http, https and mailto, so no `javascript:`).

use pulldown_cmark::{Event, Options, Parser, html};

/// The body of an entry as HTML that is safe to put in a page.
pub fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut unsafe_html = String::new();
    html::push_html(&mut unsafe_html, events);
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_is_text() {
        let html = render("hola <script>alert(1)</script> <img src=x onerror=alert(1)>");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn javascript_links_lose_their_target() {
        let html = render("[clic](javascript:alert(1)) [ok](https://example.org)");
        assert!(!html.to_lowercase().contains("javascript:"), "{html}");
        assert!(html.contains(r#"href="https://example.org""#), "{html}");
    }

    #[test]
    fn markdown_still_renders() {
        let html = render("# Título\n\n1. uno\n2. **dos**");
        assert!(html.contains("<h1>Título</h1>") && html.contains("<strong>dos</strong>"));
    }
}
