use std::path::PathBuf;

/// An image that cannot be used, naming where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not an image at all, a format ferret does not read, or a broken file.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Larger than the configured pixel limit.
    #[error("{path}: {width} × {height} pixels is more than the limit of {limit} pixels (raise it with --max-image-pixels)")]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: u64,
    },
}
