use std::fmt;

use ferret_index::IndexError;

/// A parse or preparation error in a pipeline expression, pointing at a position.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineError {
    /// Byte offset into the expression.
    pub position: usize,
    pub message: String,
    /// The expression, when known, to show the position with a caret.
    pub text: Option<String>,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => {
                let col = text[..self.position.min(text.len())].chars().count();
                write!(
                    f,
                    "pipeline error at position {}: {}\n  {}\n  {}^",
                    col + 1,
                    self.message,
                    text,
                    " ".repeat(col)
                )
            }
            None => write!(
                f,
                "pipeline error at position {}: {}",
                self.position + 1,
                self.message
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Pipeline(PipelineError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{path}:{line}: {message}")]
    Queries {
        path: std::path::PathBuf,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Eval(#[from] ferret_eval::EvalError),
    #[error("{path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// The query's [`ferret_models::Cancel`] was set (its time ran out) before it finished.
    #[error("cancelled: the request's time ran out")]
    Cancelled,
}

impl SearchError {
    pub(crate) fn at(position: usize, message: impl Into<String>) -> Self {
        SearchError::Pipeline(PipelineError {
            position,
            message: message.into(),
            text: None,
        })
    }

    /// Attaches the expression text to a pipeline error so it can show a caret.
    pub fn with_source_text(self, text: &str) -> Self {
        match self {
            SearchError::Pipeline(mut e) => {
                e.text = Some(text.to_string());
                SearchError::Pipeline(e)
            }
            other => other,
        }
    }
}
