//! Adapters: the only code that touches the disk or the network.

pub mod local;

use std::path::PathBuf;

/// Why a source could not be used at all (as opposed to one object failing, which is a finding).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("cannot open evidence directory {path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Evidence {
        path: PathBuf,
        source: crate::core::evidence::EvidenceError,
    },
}

/// Why one object could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    NotFound,
    /// The key would resolve outside the evidence root (`..`, absolute, NUL, or a symlink out).
    Escape(String),
    Io(String),
}
