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
    #[arg(long, required_unless_present_any = ["queries", "images"], conflicts_with_all = ["queries", "images"])]
    corpus: Option<PathBuf>,
    /// A folder of images (its files, in name order) for a CLIP model: writes the projected
    /// image features (as `get_image_features`, not normalised)
    #[arg(long, value_name = "FOLDER", conflicts_with = "queries")]
    images: Option<PathBuf>,
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
    /// The model is a SPLADE (BertForMaskedLM) checkpoint: write sparse vectors, JSON lines
    /// {"id", "vector": {term: weight}} (what `ferret run --sparse-queries` reads)
    #[arg(long)]
    sparse: bool,
    /// The model is a ColBERT checkpoint (colbert-ai or PyLate): write token vectors, JSON lines
    /// {"id", "ids": [vocabulary ids], "vectors": [[…], …]} (what `ferret bench-tokens` reads)
    #[arg(long, conflicts_with_all = ["sparse", "images"])]
    colbert: bool,
    /// As --colbert, with a sentence encoder's zero-shot token vectors
    #[arg(long, conflicts_with_all = ["sparse", "images", "colbert"])]
    tokens: bool,
    /// Keep the first N dimensions (Matryoshka truncation), scaled to unit length
    #[arg(long, value_name = "N", conflicts_with_all = ["sparse", "images", "colbert", "tokens"])]
    dims: Option<usize>,
    /// Encode with int8 linear layers (dynamic quantisation, as `ferret index --int8`)
    #[arg(long, conflicts_with_all = ["sparse", "images", "colbert", "tokens"])]
    int8: bool,
    /// With --sparse: longest input in tokens (default 256 for documents, 64 for queries)
    #[arg(long)]
    max_length: Option<usize>,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let model = ferret_models::source::resolve(&a.model)?;
    if a.sparse {
        return sparse(&a, &model.dir);
    }
    if a.colbert || a.tokens {
        return tokens(&a, &model);
    }
    if let Some(folder) = &a.images {
        return images(&a, &model, folder);
    }
    let mut encoder = ferret_models::SentenceEncoder::load(&model.dir)?;
    if a.int8 {
        encoder.quantize_int8()?;
    }
    let (ids, texts, prefix): (Vec<String>, Vec<String>, &str) = match read_inputs(&a)? {
        (ids, texts, false) => (ids, texts, &encoder.document_prefix),
        (ids, texts, true) => (ids, texts, &encoder.query_prefix),
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or_else(super::default_threads))
        .build()?;
    let start = Instant::now();
    let prefix = a.prefix.as_deref().unwrap_or(prefix);
    let vectors = pool.install(|| encoder.encode_dims(&refs, prefix, a.dims))?;
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
        a.dims.unwrap_or(encoder.dim())
    );
    Ok(())
}

/// `--images`: CLIP image features of a folder's files, as JSON lines.
fn images(
    a: &Args,
    model: &ferret_models::source::ResolvedModel,
    folder: &std::path::Path,
) -> anyhow::Result<()> {
    let clip = ferret_search::encoders::clip(model).map_err(anyhow::Error::msg)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.is_file());
    files.sort();
    files.truncate(a.limit.unwrap_or(usize::MAX));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or_else(super::default_threads))
        .build()?;
    let refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    // Timed from the files' bytes: decoding and preprocessing are part of encoding an image.
    let start = Instant::now();
    let vectors = pool.install(|| clip.encode_image_files(&refs, Default::default()))?;
    let secs = start.elapsed().as_secs_f64();
    let file = std::fs::File::create(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (path, v) in files.iter().zip(&vectors) {
        let id = path.file_stem().unwrap_or_default().to_string_lossy();
        writeln!(out, "{}", serde_json::json!({"id": id, "vector": v}))?;
    }
    out.flush()?;
    eprintln!(
        "{} images in {:.2}s ({:.1}/s), dim {}",
        files.len(),
        secs,
        files.len() as f64 / secs,
        clip.dim()
    );
    Ok(())
}

/// The inputs' ids and texts (documents as title + " " + text), and whether they are queries.
fn read_inputs(a: &Args) -> anyhow::Result<(Vec<String>, Vec<String>, bool)> {
    match (&a.corpus, &a.queries) {
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
            Ok((docs.into_iter().map(|d| d.id).collect(), texts, false))
        }
        (None, Some(queries)) => {
            let mut qs = ferret_search::queries::read_queries(queries)?;
            qs.truncate(a.limit.unwrap_or(usize::MAX));
            let ids = qs.iter().map(|q| q.id.clone()).collect();
            Ok((ids, qs.into_iter().map(|q| q.text).collect(), true))
        }
        (None, None) => unreachable!("clap requires --corpus, --queries or --images"),
    }
}

/// `--colbert` / `--tokens`: token vectors as JSON lines.
fn tokens(a: &Args, model: &ferret_models::source::ResolvedModel) -> anyhow::Result<()> {
    let late = ferret_search::encoders::late_model(model, a.tokens.then_some("tokens"))
        .map_err(anyhow::Error::msg)?;
    let (ids, texts, queries) = read_inputs(a)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or_else(super::default_threads))
        .build()?;
    let start = Instant::now();
    let encoder = late.get();
    let vectors = pool.install(|| {
        if queries {
            encoder.encode_queries(&refs)
        } else {
            encoder.encode_documents(&refs)
        }
    })?;
    let secs = start.elapsed().as_secs_f64();
    let file = std::fs::File::create(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let dim = encoder.dim();
    for (id, v) in ids.iter().zip(&vectors) {
        let rows: Vec<&[f32]> = v.vectors.chunks_exact(dim).collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"id": id, "ids": v.ids, "vectors": rows})
        )?;
    }
    out.flush()?;
    eprintln!(
        "{} texts in {:.2}s ({:.1}/s), {:.1} tokens of {dim} dims each on average",
        ids.len(),
        secs,
        ids.len() as f64 / secs,
        vectors.iter().map(|v| v.len()).sum::<usize>() as f64 / ids.len().max(1) as f64
    );
    Ok(())
}

/// `--sparse`: SPLADE vectors as JSON lines.
fn sparse(a: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    use ferret_models::splade::{SpladePooling, SpladeRun};
    let encoder = ferret_models::SpladeEncoder::load(dir)?;
    let (ids, texts, queries) = read_inputs(a)?;
    let run = SpladeRun {
        max_length: a.max_length.unwrap_or(if queries { 64 } else { 256 }),
        top_terms: None,
        pooling: SpladePooling::Max,
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or_else(super::default_threads))
        .build()?;
    let start = Instant::now();
    let vectors = pool.install(|| encoder.encode(&refs, &run))?;
    let secs = start.elapsed().as_secs_f64();
    let file = std::fs::File::create(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (id, v) in ids.iter().zip(&vectors) {
        let terms: serde_json::Map<String, serde_json::Value> =
            v.iter().map(|(t, w)| (t.clone(), (*w).into())).collect();
        writeln!(out, "{}", serde_json::json!({"id": id, "vector": terms}))?;
    }
    out.flush()?;
    eprintln!(
        "{} texts in {:.2}s ({:.1}/s), {:.1} terms each on average",
        ids.len(),
        secs,
        ids.len() as f64 / secs,
        vectors.iter().map(Vec::len).sum::<usize>() as f64 / ids.len().max(1) as f64
    );
    Ok(())
}
