//! Errors of node operations, each with the HTTP status and stable code of the API contract.

use minga_protocol::{IdError, Refusal};

use crate::bundle::{ExportError, ImportError};
use crate::store::StoreError;

/// Why an operation on the commons failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    MalformedId(#[from] IdError),
    #[error(transparent)]
    MalformedHash(#[from] minga_protocol::BlobHashError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Forbidden(String),
    /// A request whose `Host` is not this node (DNS rebinding).
    #[error("{0}")]
    Misdirected(String),
    /// A bundle path outside the directories the API may use.
    #[error("{0}")]
    PathNotAllowed(String),
    /// Too many wrong codes from one client: try again after this many seconds.
    #[error("too many wrong codes from this address; try again in {0} s")]
    TooManyAttempts(u64),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A peer sent something every node refuses (bad signature, forged change, …).
    #[error("rejected from a peer: {0}")]
    Rejected(String),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("the node is shutting down")]
    ShuttingDown,
    /// Handling the request panicked; the writer caught it and goes on serving.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Import(#[from] crate::bundle::ImportError),
    #[error(transparent)]
    Export(#[from] crate::bundle::ExportError),
    #[error(transparent)]
    Search(#[from] crate::SearchError),
}

impl From<crate::BlobError> for Error {
    fn from(error: crate::BlobError) -> Self {
        use crate::BlobError;
        match error {
            BlobError::TooLarge { .. } => Error::TooLarge(error.to_string()),
            BlobError::NotFound(_) => Error::NotFound(error.to_string()),
            BlobError::Store(e) => Error::Store(e),
            BlobError::Io(e) => Error::Store(StoreError::Io(e)),
            BlobError::Mismatch(_) => {
                Error::Store(StoreError::Io(std::io::Error::other(error.to_string())))
            }
        }
    }
}

impl Error {
    /// The HTTP status of the error.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) | Error::MalformedId(_) | Error::MalformedHash(_) => 400,
            Error::Forbidden(_) => 403,
            Error::Misdirected(_) => 421,
            Error::PathNotAllowed(_) => 422,
            Error::TooManyAttempts(_) => 429,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::Refused(r) if r.is_size() => 413,
            Error::Refused(_) | Error::Rejected(_) => 422,
            Error::Store(_) | Error::Keys(_) | Error::Search(_) | Error::Internal(_) => 500,
            Error::ShuttingDown => 503,
            Error::Import(ImportError::NoSpace { .. }) => 507,
            Error::Import(ImportError::Store(_) | ImportError::Io { .. }) => 500,
            Error::Import(_) => 422,
            Error::Export(ExportError::Select(_) | ExportError::PartSize { .. }) => 400,
            Error::Export(ExportError::Since { .. }) => 422,
            Error::Export(ExportError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                409
            }
            Error::Export(_) => 500,
        }
    }

    /// The `error.code` of the API.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::MalformedId(_) | Error::MalformedHash(_) => "malformed_id",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too_large",
            Error::Forbidden(_) => "forbidden",
            Error::Misdirected(_) => "misdirected",
            Error::PathNotAllowed(_) => "path_not_allowed",
            Error::TooManyAttempts(_) => "too_many_attempts",
            Error::Refused(r) => r.code(),
            Error::Rejected(_) => "rejected",
            Error::Store(_) | Error::Keys(_) | Error::Search(_) | Error::Internal(_) => "internal",
            Error::ShuttingDown => "unavailable",
            Error::Import(ImportError::NoSpace { .. }) => "insufficient_storage",
            Error::Import(ImportError::Store(_) | ImportError::Io { .. }) => "internal",
            Error::Import(_) => "bad_bundle",
            Error::Export(ExportError::Select(_) | ExportError::PartSize { .. }) => "bad_request",
            Error::Export(ExportError::Since { .. }) => "bad_bundle",
            Error::Export(ExportError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                "conflict"
            }
            Error::Export(_) => "internal",
        }
    }
}
