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
/// Most rows (operations, or changes of a document) the columns of one payload may describe.
/// Run-length encoding lets a few bytes declare billions of them, which automerge would walk
/// one by one; a saved document within [`MAX_DOCUMENT_BYTES`] holds about a million at most.
pub const MAX_PAYLOAD_ROWS: u64 = 2 * 1024 * 1024;

// Peer-to-peer messages. The frame limit (`wire::MAX_MESSAGE_BYTES`) bounds the bytes; these
// bound the items, checked while a message is decoded, so a frame of tiny items cannot inflate
// into many times its size in memory.

/// Most items in one reconciliation range: honest nodes send a range's items only when it has
/// at most `reconcile::ITEMS_THRESHOLD` (12) and split it otherwise.
pub const MAX_RANGE_ITEMS: usize = 64;
/// Longest range bound: a prefix of a 16-byte document id.
pub const MAX_RANGE_BOUND_BYTES: usize = 16;
/// Most offers in one sync request or response; senders batch at this many.
pub const MAX_SYNC_OFFERS: usize = 128;
/// Most heads of one document in an offer or an announcement.
pub const MAX_HEADS: usize = 1024;
/// Most changes or change signatures in one offer: a document of at most
/// [`MAX_DOCUMENT_BYTES`] holds far fewer changes than this.
pub const MAX_OFFER_CHANGES: usize = 65_536;
/// Longest signature on the wire (an ed25519 signature is 64 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 256;
/// Longest reason given for a refusal, in bytes.
pub const MAX_REASON_BYTES: usize = 4 * MAX_SHORT_TEXT;
/// Most collections in one catalogue message; a node announces at most this many.
pub const MAX_CATALOGUE_ITEMS: usize = 500;
/// Longest name or title of a catalogue item, in bytes (a title is at most
/// [`MAX_TITLE_CHARS`] characters of up to 4 bytes).
pub const MAX_CATALOGUE_TEXT_BYTES: usize = 4 * MAX_TITLE_CHARS;
