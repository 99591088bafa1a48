//! The interface's words in Spanish (the default), Kichwa and English: one TOML file per
//! language, compiled in, and the choice of language for a request (a `?ui=` switch, then the
//! cookie it sets, then `Accept-Language`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// A language the interface speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ui {
    Es,
    Qu,
    En,
}

impl Ui {
    pub const ALL: [Ui; 3] = [Ui::Es, Ui::Qu, Ui::En];

    pub fn code(self) -> &'static str {
        match self {
            Ui::Es => "es",
            Ui::Qu => "qu",
            Ui::En => "en",
        }
    }

    /// The language's own name, for the switch.
    pub fn name(self) -> &'static str {
        match self {
            Ui::Es => "Español",
            Ui::Qu => "Kichwa",
            Ui::En => "English",
        }
    }

    /// A language code (`qug`, `es-EC`, `EN`) the interface speaks, if any.
    pub fn parse(code: &str) -> Option<Ui> {
        match minga_protocol::lang::macrolanguage(code.trim()).as_str() {
            "es" => Some(Ui::Es),
            "qu" => Some(Ui::Qu),
            "en" => Some(Ui::En),
            _ => None,
        }
    }

    /// The best language of an `Accept-Language` header, Spanish when none fits.
    pub fn from_accept_language(header: &str) -> Ui {
        let mut wanted: Vec<(f32, Ui)> = header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let ui = Ui::parse(pieces.next()?)?;
                let q = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(1.0);
                Some((q, ui))
            })
            .collect();
        // Stable: among equal weights the header's order wins.
        wanted.sort_by(|a, b| b.0.total_cmp(&a.0));
        wanted.first().map_or(Ui::Es, |(_, ui)| *ui)
    }

    /// The interface text for `key` (the key itself if a file lacks it, which a test forbids).
    pub fn t(self, key: &str) -> &'static str {
        let texts = match self {
            Ui::Es => &*ES,
            Ui::Qu => &*QU,
            Ui::En => &*EN,
        };
        texts.get(key).map_or("?", String::as_str)
    }
}

type Texts = BTreeMap<String, String>;

fn load(name: &str, text: &str) -> Texts {
    toml::from_str(text).unwrap_or_else(|e| panic!("web/i18n/{name}.toml: {e}"))
}

static ES: LazyLock<Texts> = LazyLock::new(|| load("es", include_str!("i18n/es.toml")));
static QU: LazyLock<Texts> = LazyLock::new(|| load("qu", include_str!("i18n/qu.toml")));
static EN: LazyLock<Texts> = LazyLock::new(|| load("en", include_str!("i18n/en.toml")));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_key() {
        let keys = |t: &Texts| t.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&ES), keys(&QU));
        assert_eq!(keys(&ES), keys(&EN));
    }

    #[test]
    fn accept_language_picks_the_best_spoken() {
        assert_eq!(Ui::from_accept_language("qu-EC,es;q=0.8"), Ui::Qu);
        assert_eq!(Ui::from_accept_language("fr, en;q=0.5, es;q=0.9"), Ui::Es);
        assert_eq!(Ui::from_accept_language("en-GB"), Ui::En);
        assert_eq!(Ui::from_accept_language("de"), Ui::Es);
        assert_eq!(Ui::from_accept_language(""), Ui::Es);
    }
}
