//! Minga's node: everything with IO around the protocol core.
//!
//! ```text
//!   HTTP clients ──► http ─► api / web ──reads──► store::Reader (sled, shared read access)
//!                                  │
//!                                  └─writes─► Handle ──bounded channel──► EventLoop (one thread)
//!                                                                  owns Commons: keys, clock,
//!                                                                  the Store (its only writer);
//!                                                                  group-commits, then replies
//! ```
//!
//! The CLI, when no node runs, opens [`Commons`] itself and calls the same operations. The
//! one other writer is the blob store, which records the files it writes through
//! [`store::BlobRecords`]. `tests/layers.rs` keeps the modules in layers: each uses only the
//! ones below it.

pub mod api;
pub mod blobs;
pub mod bundle;
pub mod clock;
pub mod commons;
pub mod config;
pub mod datadir;
pub mod error;
pub mod event_loop;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod network;
pub mod node;
pub mod queries;
pub mod search;
pub mod serve;
pub mod store;
pub mod views;
pub mod web;

pub use blobs::{BlobError, BlobLimits, BlobStore};
pub use commons::Commons;
pub use config::NodeConfig;
pub use datadir::DataDir;
pub use error::Error;
pub use event_loop::Handle;
pub use search::{SearchError, SearchIndex};
pub use store::{ListQuery, Staged, Store, StoreError};
