//! Models loaded once per process and shared by every stage that uses them (a pipeline naming
//! a model twice, the settings `ferret tune` tries, a server's requests, an index writer).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::ModelError;

type Loaded = HashMap<(TypeId, PathBuf, &'static str), Arc<dyn Any + Send + Sync>>;

/// The model of type `T` in folder `dir`, loaded by `load` the first time it is asked for.
pub(crate) fn shared<T: Send + Sync + 'static>(
    dir: &Path,
    load: impl FnOnce(&Path) -> Result<T, ModelError>,
) -> Result<Arc<T>, ModelError> {
    shared_variant(dir, "", load)
}

/// [`shared`] for one variant of the model (`variant` tells how `load` prepares it, e.g.
/// "int8"): each variant is loaded once.
pub(crate) fn shared_variant<T: Send + Sync + 'static>(
    dir: &Path,
    variant: &'static str,
    load: impl FnOnce(&Path) -> Result<T, ModelError>,
) -> Result<Arc<T>, ModelError> {
    static LOADED: OnceLock<Mutex<Loaded>> = OnceLock::new();
    let loaded = LOADED.get_or_init(Default::default);
    let key = (
        TypeId::of::<T>(),
        dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
        variant,
    );
    let get = |m: &Loaded| m.get(&key).and_then(|a| a.clone().downcast::<T>().ok());
    if let Some(model) = get(&loaded.lock().expect("not poisoned")) {
        return Ok(model);
    }
    // Loaded outside the lock; if two threads race, both load and the first one stays.
    let model: Arc<dyn Any + Send + Sync> = Arc::new(load(dir)?);
    let mut m = loaded.lock().expect("not poisoned");
    m.entry(key.clone()).or_insert(model);
    Ok(get(&m).expect("inserted above"))
}
