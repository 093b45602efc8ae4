//! Opening a committed index for reading.

use std::path::{Path, PathBuf};

use crate::dense::DenseReader;
use crate::docstore::Docstore;
use crate::lexical::LexicalReader;
use crate::manifest::{Manifest, MANIFEST, MANIFEST_NEXT};
use crate::{DocNo, Document, IndexError};

/// A committed index, opened for reading.
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    docstore: Docstore,
    lexical: Option<LexicalReader>,
    dense: Vec<DenseReader>,
}

/// The manifest of the last committed generation (see the commit protocol in
/// [`crate::writer`]).
pub(crate) fn committed_manifest(dir: &Path) -> Result<Manifest, IndexError> {
    let not_an_index = |reason: &str| IndexError::NotAnIndex {
        path: dir.to_path_buf(),
        reason: reason.to_string(),
    };
    if !dir.is_dir() {
        return Err(not_an_index("the directory does not exist"));
    }
    let manifest_path = dir.join(MANIFEST);
    if !manifest_path.exists() {
        return Err(not_an_index(
            "it has no manifest.json (nothing was ever committed there, e.g. a first `ferret index` was interrupted)",
        ));
    }
    let manifest = Manifest::read(&manifest_path)?;
    let lexical_dir = dir.join("lexical");
    if manifest.representations.lexical.is_none() {
        return Ok(manifest);
    }
    let index = tantivy::Index::open_in_dir(&lexical_dir)?;
    let payload = index.load_metas()?.payload;
    let committed: Option<u64> = payload.as_deref().and_then(|p| p.parse().ok());
    if committed == Some(manifest.generation) {
        return Ok(manifest);
    }
    let next_path = dir.join(MANIFEST_NEXT);
    if next_path.exists() {
        let next = Manifest::read(&next_path)?;
        if Some(next.generation) == committed {
            return Ok(next);
        }
    }
    Err(IndexError::Invalid {
        path: dir.to_path_buf(),
        message: format!(
            "manifest generation {} does not match the lexical index's commit {:?}",
            manifest.generation, payload
        ),
    })
}

impl Index {
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let manifest = committed_manifest(dir)?;
        let docstore = Docstore::open(
            &dir.join("docs"),
            &manifest.chunks,
            manifest.deleted_generation,
        )?;
        if docstore.num_slots() as u64 != manifest.slots
            || docstore.num_live() as u64 != manifest.doc_count
        {
            return Err(IndexError::Invalid {
                path: dir.to_path_buf(),
                message: format!(
                    "docstore holds {} documents ({} live), the manifest says {} ({} live)",
                    docstore.num_slots(),
                    docstore.num_live(),
                    manifest.slots,
                    manifest.doc_count
                ),
            });
        }
        let lexical = match &manifest.representations.lexical {
            Some(info) => {
                let index = tantivy::Index::open_in_dir(dir.join("lexical"))?;
                Some(LexicalReader::open(
                    &index,
                    &dir.join("lexical"),
                    info.fields,
                    info.analyzer,
                    docstore.num_slots(),
                )?)
            }
            None => None,
        };
        let dense = manifest
            .representations
            .dense
            .iter()
            .map(|info| DenseReader::open(dir, info, &manifest.chunks))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
            docstore,
            lexical,
            dense,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn docstore(&self) -> &Docstore {
        &self.docstore
    }

    /// The lexical representation, or an error naming the index if it has none.
    pub fn lexical(&self) -> Result<&LexicalReader, IndexError> {
        self.lexical.as_ref().ok_or_else(|| IndexError::Invalid {
            path: self.dir.clone(),
            message: "index has no lexical representation".into(),
        })
    }

    /// The dense representation made with `model` (id or alias); with `None`, the only one.
    pub fn dense(&self, model: Option<&str>) -> Result<&DenseReader, IndexError> {
        let available = || {
            let names: Vec<&str> = self.dense.iter().map(|d| d.info().model.as_str()).collect();
            if names.is_empty() {
                "it has none; add one with `ferret index --index DIR --dense MODEL`".to_string()
            } else {
                format!("it has: {}", names.join(", "))
            }
        };
        let found = match model {
            Some(m) => {
                let id = ferret_models::source::known(m).map_or(m, |k| k.id);
                self.dense.iter().find(|d| d.info().model == id)
            }
            None if self.dense.len() == 1 => self.dense.first(),
            None => None,
        };
        found.ok_or_else(|| IndexError::Invalid {
            path: self.dir.clone(),
            message: match model {
                Some(m) => format!("no dense representation for model '{m}'; {}", available()),
                None if self.dense.is_empty() => format!(
                    "no dense representation: {}",
                    available().trim_start_matches("it has none; ")
                ),
                None => format!("name the dense model (model=...); {}", available()),
            },
        })
    }

    pub fn external_id(&self, d: DocNo) -> &str {
        self.docstore.external_id(d)
    }

    pub fn document(&self, d: DocNo) -> Result<Document, IndexError> {
        self.docstore.get(d)
    }
}
