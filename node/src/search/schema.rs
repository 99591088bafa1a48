//! The index's fields and analyzers: one set of text fields per language, each with the
//! analyzer that language needs, and the exact-match fields the filters use.
//!
//! Spanish and English are stemmed; Kichwa is agglutinative and no stemmer exists for it, so
//! its words are only folded; text in any other language goes to a folded field too. Every
//! analyzer lower-cases and folds accents, so `fermentacion` finds `fermentación`.

use minga_protocol::Entry;
use minga_protocol::lang::macrolanguage;
use tantivy::TantivyDocument;
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, SchemaBuilder, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer, TokenizerManager,
};
use unicode_normalization::UnicodeNormalization;

/// Bumped whenever fields or analyzers change: an index of another version is rebuilt.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The languages with fields of their own, and the catch-all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Spanish,
    English,
    Kichwa,
    Other,
}

impl Lang {
    pub(crate) const ALL: [Lang; 4] = [Lang::Spanish, Lang::English, Lang::Kichwa, Lang::Other];

    /// The field set for an entry's BCP 47 tag (`qug`, `qu-EC` → Kichwa).
    pub(crate) fn of(tag: &str) -> Lang {
        match macrolanguage(tag).as_str() {
            "es" => Lang::Spanish,
            "en" => Lang::English,
            "qu" => Lang::Kichwa,
            _ => Lang::Other,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Lang::Spanish => "es",
            Lang::English => "en",
            Lang::Kichwa => "qu",
            Lang::Other => "xx",
        }
    }

    fn analyzer(self) -> TextAnalyzer {
        let folded = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter);
        match self {
            Lang::Spanish => folded.filter(Stemmer::new(Language::Spanish)).build(),
            Lang::English => folded.filter(Stemmer::new(Language::English)).build(),
            Lang::Kichwa | Lang::Other => folded.build(),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where in an entry a word was found, heaviest first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    Title,
    /// Tags, place and authors' names.
    Labels,
    Body,
}

impl Part {
    pub(crate) const ALL: [Part; 3] = [Part::Title, Part::Labels, Part::Body];

    /// How much a match here weighs against one in the body.
    pub(crate) fn boost(self) -> f32 {
        match self {
            Part::Title => 3.0,
            Part::Labels => 2.0,
            Part::Body => 1.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Part::Title => "title",
            Part::Labels => "labels",
            Part::Body => "body",
        }
    }
}

/// The fields of the index.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub schema: Schema,
    /// The entry id (bs58), stored: hits are read back from the store by it.
    pub id: Field,
    pub kind: Field,
    /// Exact tags, lower-cased.
    pub tag: Field,
    /// The language tag, its primary subtag and its macrolanguage (`qug-ec`, `qug`, `qu`).
    pub lang: Field,
    /// The place's name, folded.
    pub place: Field,
    pub collection: Field,
    /// `text[lang][part]`.
    text: [[Field; 3]; 4],
}

impl Fields {
    pub(crate) fn new() -> Fields {
        let mut builder = SchemaBuilder::new();
        let id = builder.add_text_field("id", STRING | STORED);
        let kind = builder.add_text_field("kind", STRING);
        let tag = builder.add_text_field("tag", STRING);
        let lang = builder.add_text_field("lang", STRING);
        let place = builder.add_text_field("place", STRING);
        let collection = builder.add_text_field("collection", STRING);
        let text = Lang::ALL.map(|lang| {
            Part::ALL.map(|part| {
                let indexing = TextFieldIndexing::default()
                    .set_tokenizer(&tokenizer_name(lang))
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions);
                let options = TextOptions::default().set_indexing_options(indexing);
                builder.add_text_field(&format!("{}_{}", part.name(), lang.suffix()), options)
            })
        });
        Fields {
            schema: builder.build(),
            id,
            kind,
            tag,
            lang,
            place,
            collection,
            text,
        }
    }

    pub(crate) fn text(&self, lang: Lang, part: Part) -> Field {
        self.text[lang.index()][part as usize]
    }

    /// The index document of an entry.
    pub(crate) fn document(&self, entry: &Entry) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_text(self.id, entry.id.to_string());
        doc.add_text(self.kind, &entry.kind);
        doc.add_text(self.collection, &entry.collection);
        for tag in &entry.tags {
            doc.add_text(self.tag, tag.to_lowercase());
        }
        for value in lang_values(&entry.lang) {
            doc.add_text(self.lang, value);
        }
        if let Some(place) = &entry.place {
            doc.add_text(self.place, fold(&place.name));
        }
        let lang = Lang::of(&entry.lang);
        doc.add_text(self.text(lang, Part::Title), &entry.title);
        doc.add_text(self.text(lang, Part::Body), &entry.body);
        let labels = self.text(lang, Part::Labels);
        entry.tags.iter().for_each(|t| doc.add_text(labels, t));
        entry
            .authors
            .iter()
            .for_each(|a| doc.add_text(labels, &a.name));
        if let Some(place) = &entry.place {
            doc.add_text(labels, &place.name);
        }
        doc
    }
}

/// Registers every language's analyzer under the name its fields use.
pub(crate) fn tokenizers() -> TokenizerManager {
    let manager = TokenizerManager::default();
    for lang in Lang::ALL {
        manager.register(&tokenizer_name(lang), lang.analyzer());
    }
    manager
}

/// The analyzer of a language, for tokenising queries the way its fields were indexed.
pub(crate) fn analyzer(lang: Lang) -> TextAnalyzer {
    lang.analyzer()
}

fn tokenizer_name(lang: Lang) -> String {
    format!("minga_{}", lang.suffix())
}

/// The `lang` filter values of a tag: itself, its primary subtag and its macrolanguage, so a
/// filter for `qu` finds `qug` and one for `es` finds `es-EC` (as `lang::matches` does).
pub(crate) fn lang_values(tag: &str) -> Vec<String> {
    let tag = tag.to_ascii_lowercase().replace('_', "-");
    let mut values = Vec::new();
    let mut prefix = String::new();
    for (i, sub) in tag.split('-').enumerate() {
        if i > 0 {
            prefix.push('-');
        }
        prefix.push_str(sub);
        values.push(prefix.clone());
    }
    values.push(macrolanguage(&tag));
    values.sort();
    values.dedup();
    values
}

/// Lower-cased, accents removed: how place names are compared.
pub fn fold(text: &str) -> String {
    text.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The filter value of a language given by a user.
pub(crate) fn lang_filter(wanted: &str) -> String {
    wanted.trim().to_ascii_lowercase().replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(lang: Lang, text: &str) -> Vec<String> {
        let mut analyzer = analyzer(lang);
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.text.clone());
        }
        out
    }

    #[test]
    fn spanish_is_folded_then_stemmed() {
        assert_eq!(
            tokens(Lang::Spanish, "Fermentación"),
            tokens(Lang::Spanish, "fermentacion")
        );
        assert_eq!(tokens(Lang::Spanish, "cuyes"), tokens(Lang::Spanish, "cuy"));
    }

    #[test]
    fn kichwa_is_folded_not_stemmed() {
        assert_eq!(tokens(Lang::Kichwa, "Ñukanchik"), vec!["nukanchik"]);
        assert_eq!(tokens(Lang::Kichwa, "muyukunata"), vec!["muyukunata"]);
    }

    #[test]
    fn lang_values_cover_filters() {
        assert_eq!(lang_values("qug-EC"), vec!["qu", "qug", "qug-ec"]);
        assert_eq!(lang_values("es"), vec!["es"]);
    }

    #[test]
    fn places_fold() {
        assert_eq!(fold("Los  Ríos"), "los rios");
    }
}
