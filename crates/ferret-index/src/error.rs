use std::path::PathBuf;

/// Everything that can go wrong reading a corpus or reading/writing an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad input in a corpus file, with the 1-based line (and column where known).
    #[error("{path}:{line}: {message}")]
    Corpus {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A document's image that cannot be used (broken, unsupported, too large).
    #[error("{path}:{line}: {message}")]
    Image {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: not a ferret index: {reason}")]
    NotAnIndex { path: PathBuf, reason: String },
    #[error("{path}: index format version {found} is not supported by this ferret (which reads {supported}); rebuild the index (`ferret index --overwrite` replaces it)")]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Indexing would take more memory than its budget allows (`IndexOptions::memory_budget`).
    #[error("indexing needs about {needed_mb} MB, more than the memory budget of {budget_mb} MB ({detail}); raise it with --memory-budget")]
    OverBudget {
        needed_mb: usize,
        budget_mb: usize,
        detail: String,
    },
    #[error("unknown document id '{0}'")]
    UnknownDocument(String),
    #[error("lexical index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("lexical index: reading postings: {0}")]
    Postings(#[from] std::io::Error),
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> IndexError {
        let path = path.into();
        move |source| IndexError::Io { path, source }
    }
}
