//! The sans-IO core of Minga: what an entry and a collection are, how ids and signatures bind
//! them to their authors, and which changes every node accepts.
//!
//! Nothing here touches a socket, a disk, a clock or a global random number generator: time and
//! randomness come in as arguments, so the node, the tests and the simulator run the same code.

pub mod blob;
pub mod bounded;
pub mod bundle;
pub mod collection;
pub mod doc;
pub mod entry;
#[doc(hidden)]
pub mod fixtures;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod id;
pub mod inflate;
pub mod lang;
pub mod license;
pub mod limits;
pub mod model;
pub mod reconcile;
pub mod refusal;
pub mod session;
pub mod signing;
pub mod sync;
pub mod tombstone;
pub mod verify;
pub mod wire;

pub use automerge;
pub use blob::{BlobHash, BlobHashError};
pub use collection::{Collection, NewCollection};
pub use entry::{Entry, EntryPatch, Kind, NewEntry};
pub use id::{DocumentId, IdError};
pub use refusal::Refusal;
pub use signing::{AuthorId, AuthorKey, Signature};
pub use tombstone::Tombstone;
pub use verify::{DocKind, SignedChange, VerifyError};
