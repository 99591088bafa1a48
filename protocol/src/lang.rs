//! Language tags: a filter for `qu` also finds Kichwa (`qug`, `qvi`, …) and `es` finds `es-EC`.

/// ISO 639-3 individual languages of the Quechua macrolanguage `qu`, Kichwa varieties included.
const QUECHUA: &[&str] = &[
    "qub", "qud", "quf", "qug", "quh", "quk", "qul", "qup", "qur", "qus", "quw", "qux", "quy",
    "quz", "qva", "qvc", "qve", "qvh", "qvi", "qvj", "qvl", "qvm", "qvn", "qvo", "qvp", "qvs",
    "qvw", "qvz", "qwa", "qwc", "qwh", "qws", "qxa", "qxc", "qxh", "qxl", "qxn", "qxo", "qxp",
    "qxr", "qxt", "qxu", "qxw",
];

/// The primary language subtag, lower-cased and folded into its macrolanguage (`qug` → `qu`).
pub fn macrolanguage(tag: &str) -> String {
    let primary = tag
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if QUECHUA.contains(&primary.as_str()) {
        "qu".to_owned()
    } else {
        primary
    }
}

/// Whether an entry in language `tag` matches a filter for `wanted`.
///
/// `wanted` matches its own subtags and everything under them (`es` matches `es-EC`), and a
/// macrolanguage matches its individual languages (`qu` matches `qug-EC`).
pub fn matches(wanted: &str, tag: &str) -> bool {
    let wanted = wanted.to_ascii_lowercase().replace('_', "-");
    let tag = tag.to_ascii_lowercase().replace('_', "-");
    if tag == wanted || tag.starts_with(&format!("{wanted}-")) {
        return true;
    }
    !wanted.contains('-') && macrolanguage(&wanted) == wanted && macrolanguage(&tag) == wanted
}

/// Whether a string looks like a BCP 47 tag: 1–8 letter/digit subtags separated by `-`.
pub fn is_well_formed(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 35
        && tag.split('-').all(|sub| {
            (1..=8).contains(&sub.len()) && sub.chars().all(|c| c.is_ascii_alphanumeric())
        })
        && tag
            .split('-')
            .next()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kichwa_is_found_under_quechua() {
        assert!(matches("qu", "qug"));
        assert!(matches("qu", "qvi-EC"));
        assert!(matches("qug", "qug"));
        assert!(!matches("qug", "qvi"));
        assert!(matches("es", "es-EC"));
        assert!(!matches("es-EC", "es"));
        assert!(!matches("en", "es"));
    }

    #[test]
    fn well_formed_tags() {
        assert!(is_well_formed("es-EC"));
        assert!(is_well_formed("qug"));
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("es EC"));
        assert!(!is_well_formed("-es"));
    }
}
