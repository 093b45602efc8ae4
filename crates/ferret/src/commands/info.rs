use std::path::PathBuf;

/// What an index holds: documents, generation and each representation with its files' size.
#[derive(clap::Args)]
pub struct Args {
    /// Index directory
    #[arg(long)]
    index: PathBuf,
    /// Print the manifest as JSON (with the bytes of each representation) instead
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let index = ferret_index::Index::open(&a.index)?;
    let m = index.manifest();
    let size = |files: &[String]| -> u64 {
        files
            .iter()
            .filter_map(|f| std::fs::metadata(a.index.join(f)).ok())
            .map(|m| m.len())
            .sum()
    };
    let folder_size = |dir: PathBuf| -> u64 {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let bytes: Vec<u64> = m
        .representations
        .iter()
        .map(|e| match e.kind.as_str() {
            "lexical" => folder_size(a.index.join("lexical")),
            _ => size(&e.files),
        })
        .collect();
    if a.json {
        let mut v = serde_json::to_value(m)?;
        for (e, b) in v["representations"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .zip(&bytes)
        {
            e["bytes"] = (*b).into();
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{}: {} documents ({} slots), generation {}, format {}",
        a.index.display(),
        m.doc_count,
        m.slots,
        m.generation,
        m.format_version
    );
    for (e, b) in m.representations.iter().zip(bytes) {
        let model = e
            .model
            .as_ref()
            .map(|m| {
                format!(
                    "  weights sha256 {}…",
                    &m.weights_sha256[..12.min(m.weights_sha256.len())]
                )
            })
            .unwrap_or_default();
        let via = encoder(&e.params)
            .map(|name| format!("  encoder {name}"))
            .unwrap_or_default();
        println!(
            "  {:<40} {:>10.1} MB{model}{via}",
            e.label(),
            b as f64 / 1e6
        );
    }
    Ok(())
}

/// The encoder a representation's options name, when not the kind's usual one (`encoder`
/// among its parameters, or among the encoder options a sparse representation keeps).
fn encoder(params: &serde_json::Value) -> Option<&str> {
    match &params["encoder"] {
        serde_json::Value::String(name) => Some(name),
        options => options["encoder"].as_str(),
    }
}
