use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("unknown model '{id}'{hub}. Known ids: {known}. A model can also be a local folder (config.json, tokenizer.json, model.safetensors), a model in the Hugging Face cache, or an owner/name id on the Hugging Face Hub")]
    UnknownModel {
        id: String,
        /// Why the Hub could not supply it, when it was asked.
        hub: String,
        known: String,
    },
    #[error("fetching {what}: {message}")]
    Fetch { what: String, message: String },
    #[error("{path}: weights sha256 {actual} does not match the expected {expected}")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The work was given up (see [`crate::Cancel`]) before it finished.
    #[error("cancelled: the request's time ran out")]
    Cancelled,
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ModelError {
        let path = path.into();
        move |source| ModelError::Io { path, source }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> ModelError {
        ModelError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
