//! The poster's QR code: the node's URL drawn as inline SVG, so a phone's camera opens the
//! pages without anyone typing an address, and the poster still loads nothing but its
//! stylesheet (no image route, nothing for the Content-Security-Policy to allow).

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// `text` as an `<svg>` element, black on white with the quiet zone scanners need; `None` if
/// it does not fit in a QR code. The markup holds only numbers and fixed attributes, never
/// `text` itself, so it can go into a page unescaped.
pub fn svg(text: &str) -> Option<String> {
    // Quartile error correction: a printed poster gets creased, faded and stained.
    let code = QrCode::with_error_correction_level(text, EcLevel::Q).ok()?;
    let image = code
        .render::<svg::Color>()
        .module_dimensions(8, 8)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // Inside HTML the XML prolog would be a bogus comment: keep the element alone.
    image.find("<svg").map(|at| image[at..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_becomes_one_svg_element() {
        let svg = svg("http://192.0.2.7:7878/").expect("a short URL fits");
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("192.0.2.7"), "the URL is drawn, not written");
        assert!(svg.contains(r#"viewBox="#), "{svg}");
    }

    #[test]
    fn what_does_not_fit_is_none() {
        assert!(svg(&"x".repeat(8000)).is_none());
    }
}
