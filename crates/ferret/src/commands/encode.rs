use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ferret_index::corpus::CorpusReader;

#[derive(clap::Args)]
pub struct Args {
    /// Model id, alias, or folder
    #[arg(long)]
    model: String,
    /// Corpus (BEIR JSONL/TSV): documents are embedded as title + " " + text, after the
    /// model's document prefix
    #[arg(long, required_unless_present = "queries", conflicts_with = "queries")]
    corpus: Option<PathBuf>,
    /// Queries (BEIR JSONL/TSV) instead: embedded after the model's query prefix
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Only the first N documents
    #[arg(long)]
    limit: Option<usize>,
    /// Output: JSON lines {"id", "vector"}, or raw little-endian f32 when the name ends in .f32
    #[arg(short, long)]
    output: PathBuf,
    /// Threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Text put before every input instead of the model's own document / query prompt
    #[arg(long)]
    prefix: Option<String>,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let model = ferret_models::source::resolve(&a.model)?;
    let encoder = ferret_models::SentenceEncoder::load(&model.dir)?;
    let (ids, texts, prefix): (Vec<String>, Vec<String>, &str) = match (&a.corpus, &a.queries) {
        (Some(corpus), _) => {
            let mut reader = CorpusReader::open(corpus)?;
            let mut docs = Vec::new();
            while let Some(d) = reader.next_document() {
                docs.push(d?);
                if a.limit.is_some_and(|l| docs.len() >= l) {
                    break;
                }
            }
            let texts = docs
                .iter()
                .map(ferret_index::dense::document_text)
                .collect();
            (
                docs.into_iter().map(|d| d.id).collect(),
                texts,
                &encoder.document_prefix,
            )
        }
        (None, Some(queries)) => {
            let mut qs = ferret_search::queries::read_queries(queries)?;
            qs.truncate(a.limit.unwrap_or(usize::MAX));
            let ids = qs.iter().map(|q| q.id.clone()).collect();
            (
                ids,
                qs.into_iter().map(|q| q.text).collect(),
                &encoder.query_prefix,
            )
        }
        (None, None) => unreachable!("clap requires --corpus or --queries"),
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or_else(super::default_threads))
        .build()?;
    let start = Instant::now();
    let prefix = a.prefix.as_deref().unwrap_or(prefix);
    let vectors = pool.install(|| encoder.encode(&refs, prefix))?;
    let secs = start.elapsed().as_secs_f64();
    let file = std::fs::File::create(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let raw = a.output.extension().is_some_and(|e| e == "f32");
    for (id, v) in ids.iter().zip(&vectors) {
        if raw {
            for x in v {
                out.write_all(&x.to_le_bytes())?;
            }
        } else {
            writeln!(out, "{}", serde_json::json!({"id": id, "vector": v}))?;
        }
    }
    out.flush()?;
    eprintln!(
        "{} texts in {:.2}s ({:.1}/s), dim {}",
        ids.len(),
        secs,
        ids.len() as f64 / secs,
        encoder.dim()
    );
    Ok(())
}
