//! Opening a committed index for reading.

use std::path::{Path, PathBuf};

use crate::docstore::Docstore;
use crate::lexical::LexicalReader;
use crate::manifest::{Manifest, MANIFEST, MANIFEST_NEXT};
use crate::representation::{self, OpenContext, Opened, Reader};
use crate::{DocNo, Document, IndexError};

/// A committed index, opened for reading.
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    docstore: Docstore,
    /// Every representation, in manifest order.
    representations: Vec<Box<dyn Reader>>,
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
    representation::check_known(dir, &manifest.representations)?;
    let lexical_dir = dir.join("lexical");
    if manifest.lexical().is_none() {
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
            representation::check_known(dir, &next.representations)?;
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

/// Finishes a commit that a crash left between its switch (tantivy's commit) and the rename
/// of `manifest.next.json` (step 4 of the protocol in [`crate::writer`]). A writer must do
/// this before it starts a generation of its own: its step 2 overwrites
/// `manifest.next.json`, which until step 4 is the only manifest of the committed generation.
pub(crate) fn complete_pending_commit(dir: &Path) -> Result<(), IndexError> {
    let manifest_path = dir.join(MANIFEST);
    let next_path = dir.join(MANIFEST_NEXT);
    if !manifest_path.exists() || !next_path.exists() {
        return Ok(());
    }
    let committed = committed_manifest(dir)?;
    if Manifest::read(&manifest_path)?.generation != committed.generation {
        std::fs::rename(&next_path, &manifest_path).map_err(IndexError::io(&next_path))?;
        crate::manifest::sync_dir(dir)?;
        tracing::info!(
            "completed the interrupted commit of generation {} in {}",
            committed.generation,
            dir.display()
        );
    }
    Ok(())
}

impl Index {
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let manifest = committed_manifest(dir)?;
        crate::checksum::verify(dir, &manifest)?;
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
        let ctx = OpenContext {
            dir,
            chunks: &manifest.chunks,
            slots: docstore.num_slots(),
        };
        let representations = manifest
            .representations
            .iter()
            .map(|entry| {
                let kind =
                    representation::kind(&entry.kind).expect("checked by committed_manifest");
                (kind.open)(&ctx, entry)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
            docstore,
            representations,
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

    /// The ids of every internal number, for a writer that goes on from this index.
    pub(crate) fn into_ids(self) -> crate::ids::IdTable {
        self.docstore.into_ids()
    }

    /// The lexical representation, or an error naming the index if it has none.
    pub fn lexical(&self) -> Result<&LexicalReader, IndexError> {
        self.representation(crate::lexical::KIND.name, None)
    }

    /// The dense representation made with `model` (its canonical id); with `None`, the only
    /// one.
    pub fn dense(&self, model: Option<&str>) -> Result<&crate::dense::DenseReader, IndexError> {
        self.representation(crate::dense::KIND.name, model)
    }

    /// The sparse representation made with `model` (its canonical id); with `None`, the only
    /// one.
    pub fn sparse(&self, model: Option<&str>) -> Result<&crate::sparse::SparseReader, IndexError> {
        self.representation(crate::sparse::KIND.name, model)
    }

    /// The manifest entries of every representation.
    pub fn entries(&self) -> impl Iterator<Item = &representation::Entry> {
        self.representations.iter().map(|r| r.entry())
    }

    /// The representation of `kind` named `name` (a model's canonical id); with `None`, the
    /// only one of that kind. The error says what the index has and how to add one.
    pub fn representation<T: Send + Sync + 'static>(
        &self,
        kind: &str,
        name: Option<&str>,
    ) -> Result<&T, IndexError> {
        let of_kind: Vec<&dyn Reader> = self
            .representations
            .iter()
            .map(|r| r.as_ref())
            .filter(|r| r.entry().kind == kind)
            .collect();
        let found = match name {
            Some(n) => of_kind.iter().find(|r| r.entry().name == n),
            None if of_kind.len() == 1 => of_kind.first(),
            None => None,
        };
        if let Some(r) = found {
            return r
                .as_any()
                .downcast_ref::<Opened<T>>()
                .map(|o| &o.reader)
                .ok_or_else(|| IndexError::Invalid {
                    path: self.dir.clone(),
                    message: format!(
                        "representation {} is not of the type asked for",
                        r.entry().label()
                    ),
                });
        }
        let how = representation::kind(kind).map_or("", |k| k.how_to_add);
        let names: Vec<&str> = of_kind.iter().map(|r| r.entry().name.as_str()).collect();
        let message = match name {
            _ if names.is_empty() => format!("the index has no {kind} representation; {how}"),
            Some(n) => format!(
                "no {kind} representation for model '{n}'; it has: {}",
                names.join(", ")
            ),
            None => format!(
                "name the {kind} model (model=...); it has: {}",
                names.join(", ")
            ),
        };
        Err(IndexError::Invalid {
            path: self.dir.clone(),
            message,
        })
    }

    pub fn external_id(&self, d: DocNo) -> &str {
        self.docstore.external_id(d)
    }

    pub fn document(&self, d: DocNo) -> Result<Document, IndexError> {
        self.docstore.get(d)
    }
}
