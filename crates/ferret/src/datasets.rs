//! Fetching BEIR SciFact when no local copy exists: the official BEIR zip over HTTPS, each file
//! checked against the published sha256 of the BEIR release, unpacked into a temporary folder
//! that is renamed into place only when everything checked out (never a half-written dataset).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

/// Where the official BEIR zips live; `FERRET_BEIR_URL` overrides it (mirrors, tests).
const BEIR_BASE_URL: &str = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets";

/// SciFact's files inside `scifact.zip`, where ferret puts them, and their published sha256.
const SCIFACT_FILES: &[(&str, &str, &str)] = &[
    (
        "scifact/corpus.jsonl",
        "corpus.jsonl",
        "dec31c8182f3d744c7d2c09423756fd1d17cbef75808db13ba01cc0aab4d1ac6",
    ),
    (
        "scifact/queries.jsonl",
        "queries.jsonl",
        "8ff84a7c903f722981cd8d595c022660140c51867b27608a6d4910db86080313",
    ),
    (
        "scifact/qrels/test.tsv",
        "qrels/test.tsv",
        "0864bb985e0ca2367ba217977e72004d549054b2b06666ed9d4825ac7c21284c",
    ),
    (
        "scifact/qrels/train.tsv",
        "qrels/train.tsv",
        "a53f2114831916c096b6c37d9e54da68cef4efdcdbd5ed46533601af972acf1d",
    ),
];

/// Downloads and verifies SciFact into `data_dir/beir-scifact`, returning `data_dir`.
pub fn fetch_scifact(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let base = std::env::var("FERRET_BEIR_URL").unwrap_or_else(|_| BEIR_BASE_URL.to_string());
    let url = format!("{}/scifact.zip", base.trim_end_matches('/'));
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let zip_path = data_dir.join("scifact.zip.partial");
    eprintln!("downloading {url}");
    if let Err(e) = download(&url, &zip_path) {
        let _ = std::fs::remove_file(&zip_path);
        return Err(e);
    }
    let staging = data_dir.join("beir-scifact.partial");
    let result = unpack_verified(&zip_path, &staging);
    let _ = std::fs::remove_file(&zip_path);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let dest = data_dir.join("beir-scifact");
    std::fs::rename(&staging, &dest).with_context(|| format!("moving into {}", dest.display()))?;
    Ok(data_dir.to_path_buf())
}

fn download(url: &str, to: &Path) -> anyhow::Result<()> {
    let agent = ferret_models::source::http_agent(Duration::from_secs(600));
    let response = agent.get(url).call().with_context(|| {
        format!("downloading {url} (set --data or FERRET_DATA to use a local copy)")
    })?;
    let mut body = response.into_body().into_reader();
    let mut file =
        std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut body, &mut file).with_context(|| format!("downloading {url}"))?;
    file.flush()?;
    Ok(())
}

fn unpack_verified(zip_path: &Path, staging: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(staging);
    let file = std::fs::File::open(zip_path)?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("{}: not a zip archive", zip_path.display()))?;
    for (member, target, sha256) in SCIFACT_FILES {
        let mut entry = archive
            .by_name(member)
            .with_context(|| format!("the downloaded archive has no {member}"))?;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("unpacking {member}"))?;
        let got = hex(&Sha256::digest(&bytes));
        if got != *sha256 {
            bail!("{member}: sha256 {got} does not match the published {sha256}; the download is corrupt or not the official BEIR release");
        }
        let path = staging.join(target);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
