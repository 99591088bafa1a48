//! Size limits every node applies identically, so every entry fits in one wire frame.

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 300;
/// Largest body, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most tags on one entry.
pub const MAX_TAGS: usize = 32;
/// Largest saved document, and so also the largest single change.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Longest short text field (a name, a language tag, a reason).
pub const MAX_SHORT_TEXT: usize = 1000;
/// Most items in a list field other than tags (authors, subjects, attachments, consent).
pub const MAX_LIST_ITEMS: usize = 256;
/// Most bytes the compressed parts of one payload (a batch of changes, a whole document) may
/// inflate to; past it the payload is refused before automerge inflates anything.
pub const MAX_INFLATED_BYTES: usize = 16 * 1024 * 1024;
/// Most automerge chunks in one payload.
pub const MAX_PAYLOAD_CHUNKS: usize = 65_536;
