//! Why valid input is refused by policy: each reason has the stable code of the API contract.

use crate::limits;

/// A request that is well-formed but refused by the commons' rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("licence {0:?} is not open; use one of {list}", list = crate::license::OPEN_LICENSES.join(", "))]
    LicenseNotOpen(String),
    #[error("kind {0:?} is not one of practice, history, resource")]
    InvalidKind(String),
    #[error("the title is empty")]
    EmptyTitle,
    #[error("the title has {0} characters; at most {max} are allowed", max = limits::MAX_TITLE_CHARS)]
    TitleTooLong(usize),
    #[error("the body has {0} bytes; at most {max} are allowed", max = limits::MAX_BODY_BYTES)]
    BodyTooLarge(usize),
    #[error("{0} tags; at most {max} are allowed", max = limits::MAX_TAGS)]
    TooManyTags(usize),
    #[error("the entry would take {0} bytes; at most {max} are allowed", max = limits::MAX_DOCUMENT_BYTES)]
    DocumentTooLarge(usize),
    #[error("{0} is fixed when the document is created and cannot change")]
    ImmutableField(String),
    #[error("consent: {0}")]
    ConsentMissing(String),
    #[error("{0} was deleted by a tombstone")]
    Tombstoned(String),
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

impl Refusal {
    /// The `error.code` of the API.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::LicenseNotOpen(_) => "license_not_open",
            Refusal::InvalidKind(_) => "invalid_kind",
            Refusal::EmptyTitle => "empty_title",
            Refusal::TitleTooLong(_) => "title_too_long",
            Refusal::BodyTooLarge(_) | Refusal::DocumentTooLarge(_) => "too_large",
            Refusal::TooManyTags(_) => "too_many_tags",
            Refusal::ImmutableField(_) => "immutable_field",
            Refusal::ConsentMissing(_) => "consent_missing",
            Refusal::Tombstoned(_) => "tombstoned",
            Refusal::InvalidField { .. } => "invalid_field",
        }
    }

    /// Whether the refusal is about size (HTTP 413) rather than policy (HTTP 422).
    pub fn is_size(&self) -> bool {
        matches!(
            self,
            Refusal::BodyTooLarge(_) | Refusal::DocumentTooLarge(_)
        )
    }
}
