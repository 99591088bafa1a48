//! MIME types from a blob's first bytes (never from a name a user chose), and which types a
//! browser may show inline: only images, audio and video, never SVG, whose script would run.

/// Bytes looked at to detect a type.
pub const SNIFF_BYTES: usize = 8192;

/// The MIME type of content starting with `head`.
pub fn detect(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    let text = head.trim_ascii_start();
    if starts_with_ignore_case(text, b"<svg") || contains_ignore_case(text, b"<svg") {
        return "image/svg+xml".to_owned();
    }
    // A cut UTF-8 sequence at the end of the sniffed bytes is still text.
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    if valid && !head.contains(&0) {
        "text/plain; charset=utf-8".to_owned()
    } else {
        "application/octet-stream".to_owned()
    }
}

/// Whether a browser may show the type inline: images (not SVG), audio and video.
pub fn is_inline(mime: &str) -> bool {
    let mime = mime.trim().to_ascii_lowercase();
    (mime.starts_with("image/") && !mime.starts_with("image/svg"))
        || mime.starts_with("audio/")
        || mime.starts_with("video/")
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn contains_ignore_case(text: &[u8], needle: &[u8]) -> bool {
    text.windows(needle.len())
        .take(1024)
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_content() {
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(detect(b"<!DOCTYPE html><html><script>"), "text/html");
        assert_eq!(
            detect(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\">"),
            "text/xml"
        );
        assert_eq!(detect(b"  <svg onload=alert(1)>"), "image/svg+xml");
        assert_eq!(
            detect("Ñuka llakta".as_bytes()),
            "text/plain; charset=utf-8"
        );
        assert_eq!(detect(&[0, 1, 2, 255]), "application/octet-stream");
    }

    #[test]
    fn only_media_is_inline() {
        assert!(is_inline("image/jpeg") && is_inline("audio/ogg") && is_inline("video/mp4"));
        for download in [
            "image/svg+xml",
            "text/html",
            "application/pdf",
            "text/plain",
        ] {
            assert!(!is_inline(download), "{download}");
        }
    }
}
