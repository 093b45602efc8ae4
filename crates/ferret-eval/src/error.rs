use std::path::PathBuf;

/// Errors from reading runs and qrels or from naming measures.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("unknown measure '{0}' (known: P@k, R@k, nDCG, nDCG@k, AP, AP@k, RR, RR@k, Rprec, Bpref, Success@k, Judged@k; trec_eval names such as P.10, ndcg_cut.10, map, recip_rank also work)")]
    UnknownMeasure(String),
    #[error("{0}")]
    Invalid(String),
}

impl EvalError {
    pub(crate) fn parse(path: &std::path::Path, line: usize, message: impl Into<String>) -> Self {
        EvalError::Parse {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}
