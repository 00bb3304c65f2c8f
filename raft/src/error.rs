//! Infrastructure failures of the durable store, and their mapping to openraft's `StorageError`.

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};

use crate::MemberId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error in {what}")]
    Db {
        what: &'static str,
        #[source]
        source: redb::Error,
    },
    #[error("cannot decode the stored {what}")]
    Decode {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
    #[error("stored event at seq {seq} is unreadable")]
    Record {
        seq: u64,
        #[source]
        source: sendan_core::record::RecordError,
    },
    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the snapshot is inconsistent: {0}")]
    Snapshot(String),
    #[error("event {seq} is missing from the log")]
    MissingEvent { seq: u64 },
    #[error("{0}")]
    Layout(String),
    /// The store cannot serve right now (it is catching up, or its writer failed).
    #[error("{0}")]
    Unavailable(String),
    #[error("seq {seq} has not been applied on this member yet (it has applied up to {applied})")]
    NotYetApplied { seq: u64, applied: u64 },
    #[error("a blocking storage task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl StoreError {
    pub(crate) fn decode(what: &'static str) -> impl FnOnce(postcard::Error) -> StoreError {
        move |source| StoreError::Decode { what, source }
    }

    pub(crate) fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.display().to_string();
        move |source| StoreError::Io { what, path, source }
    }

    pub(crate) fn into_raft(self, subject: ErrorSubject<MemberId>, verb: ErrorVerb) -> StorageError<MemberId> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}

/// Shorthand: any redb error type into a [`StoreError`] naming what was being done.
pub(crate) trait DbResult<T> {
    fn db(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbResult<T> for Result<T, E> {
    fn db(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Db { what, source: e.into() })
    }
}
