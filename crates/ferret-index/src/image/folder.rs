//! Listing an image folder.

use std::path::{Path, PathBuf};

use crate::IndexError;

/// Every regular file under `root`, recursively, in path order; hidden files and folders (a
/// leading dot: `.DS_Store`, `.git`) are left out. Whether a file is an image is decided by
/// decoding it, not by its name.
pub(crate) fn list_files(root: &Path) -> Result<Vec<PathBuf>, IndexError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(IndexError::io(&dir))? {
            let entry = entry.map_err(IndexError::io(&dir))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type().map_err(IndexError::io(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
