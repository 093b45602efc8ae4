use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ferret_index::{IndexOptions, IndexWriter};

use crate::progress::bytes_bar;

#[derive(clap::Args)]
pub struct Args {
    /// Corpus file: BEIR JSONL (.jsonl/.jsonl.gz) or TSV (id<TAB>text)
    #[arg(long, required_unless_present_any = ["delete", "dense", "sparse", "promptreps", "images", "clip", "colbert", "tokens"])]
    corpus: Option<PathBuf>,
    /// A folder of images (JPEG, PNG, WebP, GIF; recursive): one document per file, its id the
    /// path below the folder without the extension. Files that are not usable images are
    /// reported and skipped (counted) unless --strict
    #[arg(long, value_name = "FOLDER", conflicts_with = "corpus")]
    images: Option<PathBuf>,
    /// Add an image representation made with this CLIP model (a Hugging Face CLIPModel folder
    /// or id; repeatable): one embedding and one thumbnail per document image, searched by the
    /// clip stage
    #[arg(long, value_name = "MODEL")]
    clip: Vec<String>,
    /// A document whose image cannot be decoded is an error (default: reported and skipped)
    #[arg(long)]
    strict: bool,
    /// Largest image decoded, in pixels (width × height); larger ones are refused from their
    /// header, before any pixel is allocated
    #[arg(long, default_value_t = 100_000_000)]
    max_image_pixels: u64,
    /// Index directory
    #[arg(long)]
    index: PathBuf,
    /// Analyzer: en (Anserini English), none (lower-case only; also zh-char), zh (jieba)
    #[arg(long, default_value = "en")]
    analyzer: String,
    /// flat (title + text in one field) or multi (title and text fields, weighted at query time)
    #[arg(long, default_value = "flat")]
    fields: String,
    /// Add the corpus's documents to an existing index
    #[arg(long, conflicts_with = "overwrite")]
    append: bool,
    /// Replace an existing index (it stays readable until the new one commits)
    #[arg(long)]
    overwrite: bool,
    /// Add a dense representation made with this sentence encoder (id, alias or folder;
    /// repeatable). Without --corpus, adds it to an existing index.
    #[arg(long, value_name = "MODEL")]
    dense: Vec<String>,
    /// How --dense vectors are stored: f32, or f16 (half the size, scores computed in f32)
    #[arg(long, default_value = "f32")]
    dense_dtype: ferret_index::VectorType,
    /// Keep the first N dimensions of each --dense vector (Matryoshka truncation, for models
    /// trained for it such as nomic-embed-text-v1.5: 768, 512, 256, 128 or 64); queries are
    /// cut the same way
    #[arg(long, value_name = "N")]
    dense_dims: Option<usize>,
    /// Run the --dense encoders with int8 linear layers (dynamic quantisation: about twice as
    /// fast on CPUs, vectors within ~0.997 cosine of f32); recorded in the manifest, so queries
    /// are encoded the same way
    #[arg(long, requires = "dense")]
    int8: bool,
    /// Text put before every query for --dense models, instead of the model's own prompt
    /// (e.g. "query: " for E5); recorded in the manifest and used by every search
    #[arg(long)]
    query_prefix: Option<String>,
    /// Text put before every document for --dense models, instead of the model's own prompt
    #[arg(long)]
    document_prefix: Option<String>,
    /// Also build an HNSW graph (usearch) over each --dense model's vectors
    #[arg(long)]
    hnsw: bool,
    /// Add a learned-sparse representation made with this SPLADE model (id, alias or folder of
    /// a BertForMaskedLM checkpoint, e.g. splade-tiny; repeatable). Without --corpus, adds it
    /// to an existing index.
    #[arg(long, value_name = "MODEL")]
    sparse: Vec<String>,
    /// Longest document for --sparse models, in tokens [default: 256; 512 for --promptreps]
    #[arg(long)]
    sparse_doc_length: Option<usize>,
    /// Longest query for --sparse and --promptreps models, in tokens [default: 64]
    #[arg(long)]
    sparse_query_length: Option<usize>,
    /// Keep only each document's N heaviest terms for --sparse models (default: all)
    #[arg(long, value_name = "N")]
    sparse_top_terms: Option<usize>,
    /// Add PromptReps representations made with this instruction-tuned LLM (a llama-family
    /// GGUF: id, alias or path, e.g. smollm2): a dense one (the last token's hidden state) and
    /// a sparse one (its next-token logits), from one forward pass per document; searched by
    /// the promptreps stage. Documents are cut at --sparse-doc-length tokens (default 512 here),
    /// queries at --sparse-query-length, at most --sparse-top-terms terms (default 128).
    #[arg(long, value_name = "MODEL")]
    promptreps: Vec<String>,
    /// Add a token-vector (late-interaction) representation made with this ColBERT checkpoint
    /// (colbert-ai folder with artifact.metadata, or a PyLate folder; repeatable): one vector
    /// per document token, searched by the colbert, maxsim and colbert_prf stages
    #[arg(long, value_name = "MODEL")]
    colbert: Vec<String>,
    /// Add a token-vector representation from a sentence encoder's normalised last-layer
    /// token states (zero-shot multi-vector; e.g. all-minilm-l6-v2, or a GGUF encoder such as
    /// nomic-embed-text-v1.5, whose task prefixes are run but not kept; repeatable)
    #[arg(long, value_name = "MODEL")]
    tokens: Vec<String>,
    /// How --colbert/--tokens vectors are stored: residuals of 1, 2 or 4 bits per dimension
    /// around k-means centroids (ColBERTv2), or 0 for f16 vectors
    #[arg(long, default_value_t = 2)]
    tokens_nbits: u32,
    /// Number of k-means centroids for --colbert/--tokens [default: 2^floor(log2(16·√tokens)),
    /// ColBERTv2's]
    #[arg(long, value_name = "N")]
    tokens_centroids: Option<usize>,
    /// Delete documents by id from an existing index (repeatable)
    #[arg(long, value_name = "ID")]
    delete: Vec<String>,
    /// Skip invalid documents (counted and reported) instead of stopping at the first
    #[arg(long)]
    skip_invalid: bool,
    /// Memory indexing may take (e.g. 512M, 2G, 1.5GiB; at least 188M): a quarter goes to the
    /// lexical indexer's in-memory segments, the rest to what grows with the collection (~25
    /// bytes of ids a document) and to an HNSW graph at commit (~4 × dims + 150 bytes a
    /// vector). Indexing that would need more stops with an error saying what did not fit.
    #[arg(long, default_value = "1G", value_parser = ferret_index::budget::parse_size)]
    memory_budget: usize,
    /// Indexing threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let opts = IndexOptions {
        analyzer: a.analyzer.parse()?,
        fields: a.fields.parse().map_err(anyhow::Error::msg)?,
        threads: a.threads.unwrap_or_else(super::default_threads),
        memory_budget: a.memory_budget,
        skip_invalid: a.skip_invalid,
        images: ferret_index::ImageChecks {
            limits: ferret_image::DecodeLimits {
                max_pixels: a.max_image_pixels,
            },
            strict: a.strict,
        },
    };
    let start = Instant::now();
    let source = a.corpus.is_some() || a.images.is_some();
    let mut writer = if a.append || !source {
        IndexWriter::open(&a.index, opts)?
    } else {
        IndexWriter::create(&a.index, opts, a.overwrite)?
    };
    writer.set_encoders(ferret_search::encoders::ModelEncoders::shared());
    if let Some(corpus) = &a.corpus {
        let bar = bytes_bar("indexing");
        writer
            .add_corpus(corpus, &mut |done, total, docs| {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(format!("{docs} docs"));
            })
            .with_context(|| format!("indexing {}", corpus.display()))?;
        bar.finish_and_clear();
    }
    if let Some(folder) = &a.images {
        let bar = crate::progress::count_bar("images", 0);
        writer
            .add_image_folder(folder, &mut |done, total, docs| {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(format!("{docs} docs"));
            })
            .with_context(|| format!("indexing {}", folder.display()))?;
        bar.finish_and_clear();
    }
    if !a.delete.is_empty() {
        writer.delete(&a.delete)?;
    }
    for model in &a.dense {
        eprintln!("encoding the documents with {model} (dense representation)");
        // A CLIP model embeds texts with its text tower (image queries search them via clip).
        let resolved = ferret_models::source::resolve(model)?;
        let encoder = ferret_models::clip::is_clip(&resolved.dir).then(|| "clip".to_string());
        let options = ferret_index::DenseOptions {
            encoder,
            hnsw: a.hnsw.then(ferret_index::dense::hnsw::HnswParams::default),
            dtype: a.dense_dtype,
            query_prefix: a.query_prefix.clone(),
            document_prefix: a.document_prefix.clone(),
            dims: a.dense_dims,
            int8: a.int8,
            ..Default::default()
        };
        writer.add_representation(options.request(model))?;
    }
    for model in &a.clip {
        eprintln!("embedding the documents' images with {model} (image representation)");
        let options = ferret_index::image::ImageOptions {
            max_pixels: a.max_image_pixels,
            ..Default::default()
        };
        writer.add_representation(options.request(model))?;
    }
    for (model, encoder) in a
        .colbert
        .iter()
        .map(|m| (m, None))
        .chain(a.tokens.iter().map(|m| (m, Some("tokens".to_string()))))
    {
        eprintln!("encoding the documents' tokens with {model} (token representation)");
        let options = ferret_index::TokenOptions {
            encoder,
            nbits: a.tokens_nbits,
            centroids: a.tokens_centroids,
            ..Default::default()
        };
        writer.add_representation(options.request(model))?;
    }
    for model in &a.sparse {
        eprintln!("encoding the documents with {model} (sparse representation)");
        let options = ferret_index::sparse::SparseOptions {
            document_max_length: Some(a.sparse_doc_length.unwrap_or(256)),
            query_max_length: Some(a.sparse_query_length.unwrap_or(64)),
            document_top_terms: a.sparse_top_terms,
            ..Default::default()
        };
        writer.add_representation(options.request(model))?;
    }
    for model in &a.promptreps {
        eprintln!("encoding the documents with {model} (PromptReps: dense and sparse)");
        let document_max_length = Some(a.sparse_doc_length.unwrap_or(512));
        let query_max_length = Some(a.sparse_query_length.unwrap_or(64));
        let encoder = Some("promptreps".to_string());
        let dense = ferret_index::DenseOptions {
            dtype: a.dense_dtype,
            encoder: encoder.clone(),
            document_max_length,
            query_max_length,
            ..Default::default()
        };
        let sparse = ferret_index::sparse::SparseOptions {
            document_max_length,
            query_max_length,
            document_top_terms: Some(a.sparse_top_terms.unwrap_or(128)),
            query_top_terms: Some(a.sparse_top_terms.unwrap_or(128)),
            encoder,
            ..Default::default()
        };
        writer.add_representation(dense.request(model))?;
        writer.add_representation(sparse.request(model))?;
    }
    let stats = writer.commit()?;
    let index = ferret_index::Index::open(&a.index)?;
    println!(
        "{}: added {}, deleted {}, skipped {}; {} documents in the index ({:.2}s)",
        a.index.display(),
        stats.added,
        stats.deleted,
        stats.skipped.len(),
        index.manifest().doc_count,
        start.elapsed().as_secs_f64()
    );
    for s in stats.skipped.iter().take(20) {
        eprintln!("skipped: {s}");
    }
    if stats.skipped.len() > 20 {
        eprintln!("skipped: ... and {} more", stats.skipped.len() - 20);
    }
    Ok(())
}
