use std::path::{Path, PathBuf};

use anyhow::Context;
use ferret_eval::{evaluate, EvalOptions, Measure, Qrels, RunScores};
use ferret_index::{IndexOptions, IndexWriter};

#[derive(clap::Args)]
pub struct Args {
    /// Data directory holding beir-scifact/ (default: $FERRET_DATA, else ../shared/data, else
    /// $FERRET_HOME/data, where the official BEIR SciFact is downloaded if missing)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where to build indexes and write runs (default: $FERRET_HOME/quickstart)
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Also run the classic collections (Cranfield, CISI) and the Chinese CMRC 2018 set
    #[arg(long)]
    all: bool,
    /// Skip the recipes that need a neural model (dense retrieval, Vector-PRF, hybrids)
    #[arg(long)]
    lexical_only: bool,
    /// Also evaluate this CLIP model (Hugging Face CLIPModel folder or id) on Flickr8k's 1k test
    /// images, both ways: 5,000 captions → their image, and each image → its 5 captions
    #[arg(long, value_name = "MODEL_DIR")]
    clip: Option<String>,
}

/// One evaluation recipe: a dataset, how to index it, which pipeline to run.
struct Recipe {
    name: &'static str,
    dataset: &'static str,
    qrels: &'static str,
    analyzer: &'static str,
    fields: &'static str,
    pipeline: &'static str,
    /// Sentence encoders the index needs (fetched into the model cache on first use).
    models: &'static [&'static str],
    /// The published numbers this recipe reproduces, if any.
    reference: Option<Reference>,
}

/// Published effectiveness: where from, and (measure, value) pairs.
struct Reference {
    source: &'static str,
    values: &'static [(&'static str, f64)],
}

/// Pyserini's BEIR reproductions (2CR), SciFact with Lucene BM25 (k1 0.9, b 0.4).
const PYSERINI_FLAT: Reference = Reference {
    source: "Pyserini 2CR, BEIR flat",
    values: &[("nDCG@10", 0.6789), ("R@100", 0.9253)],
};
const PYSERINI_MULTIFIELD: Reference = Reference {
    source: "Pyserini 2CR, BEIR multifield",
    values: &[("nDCG@10", 0.6647), ("R@100", 0.9076)],
};
/// MTEB's published SciFact main score of all-MiniLM-L6-v2.
const MTEB_MINILM: Reference = Reference {
    source: "MTEB",
    values: &[("nDCG@10", 0.6451)],
};

const MINILM: &[&str] = &["all-minilm-l6-v2"];

const SCIFACT: &[Recipe] = &[
    Recipe {
        name: "scifact bm25 flat",
        dataset: "beir-scifact",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "flat",
        pipeline: "bm25(k1=0.9, b=0.4) % 1000",
        models: &[],
        reference: Some(PYSERINI_FLAT),
    },
    Recipe {
        name: "scifact bm25 multifield",
        dataset: "beir-scifact",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "multi",
        pipeline: "bm25(k1=0.9, b=0.4, title=1.0, text=1.0) % 1000",
        models: &[],
        reference: Some(PYSERINI_MULTIFIELD),
    },
    Recipe {
        name: "scifact bm25 >> rm3",
        dataset: "beir-scifact",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "flat",
        pipeline: "bm25 % 1000 >> rm3(fb_docs=10, fb_terms=10, original_query_weight=0.5)",
        models: &[],
        reference: None,
    },
    Recipe {
        name: "scifact bm25 >> rocchio",
        dataset: "beir-scifact",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "flat",
        pipeline: "bm25 % 1000 >> rocchio(top_fb_docs=10, top_fb_terms=10, alpha=1, beta=0.75)",
        models: &[],
        reference: None,
    },
    Recipe {
        name: "scifact dense minilm",
        dataset: "beir-scifact",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "flat",
        pipeline: "dense(model=all-minilm-l6-v2, exact=1) % 1000",
        models: MINILM,
        reference: Some(MTEB_MINILM),
    },
    Recipe {
        name: "scifact dense >> vprf",
        dataset: "beir-scifact",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "flat",
        pipeline: "dense(exact=1) % 1000 >> vprf(depth=3, exact=1)",
        models: MINILM,
        reference: None,
    },
    Recipe {
        name: "scifact rrf(bm25, dense)",
        dataset: "beir-scifact",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "flat",
        pipeline: "rrf(bm25 % 1000, dense(exact=1) % 1000, k=60)",
        models: MINILM,
        reference: None,
    },
    // alpha = 0.5 is what `ferret tune` picks on SciFact's train split (see docs/PIPELINES.md).
    Recipe {
        name: "scifact interp(bm25, dense)",
        dataset: "beir-scifact",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "flat",
        pipeline: "interp(bm25 % 1000, dense(exact=1) % 1000, alpha=0.5)",
        models: MINILM,
        reference: None,
    },
];

const MORE: &[Recipe] = &[
    Recipe {
        name: "cranfield bm25 flat",
        dataset: "cranfield",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "flat",
        pipeline: "bm25 % 1000",
        models: &[],
        reference: None,
    },
    Recipe {
        name: "cisi bm25 flat",
        dataset: "cisi",
        qrels: "qrels/test.tsv",
        analyzer: "en",
        fields: "flat",
        pipeline: "bm25 % 1000",
        models: &[],
        reference: None,
    },
    Recipe {
        name: "cmrc2018 bm25 zh (jieba)",
        dataset: "cmrc2018-zh-retrieval",
        qrels: "qrels/dev.tsv",
        analyzer: "zh",
        fields: "flat",
        pipeline: "bm25 % 1000",
        models: &[],
        reference: None,
    },
    Recipe {
        name: "cmrc2018 bm25 zh-char",
        dataset: "cmrc2018-zh-retrieval",
        qrels: "qrels/dev.tsv",
        analyzer: "zh-char",
        fields: "flat",
        pipeline: "bm25 % 1000",
        models: &[],
        reference: None,
    },
];

/// "  (source: measure value Δ difference, …)": the published numbers beside the measured ones.
fn compared(reference: &Reference, measures: &[Measure], mean: &[f64]) -> String {
    let parts: Vec<String> = reference
        .values
        .iter()
        .filter_map(|(name, published)| {
            let i = measures.iter().position(|m| m.to_string() == *name)?;
            // Rounded first, and + 0.0 turns -0.0 into 0.0: no "-0.0000".
            let delta = ((mean[i] - published) * 1e4).round() / 1e4 + 0.0;
            Some(format!("{name} {published:.4} Δ {delta:+.4}"))
        })
        .collect();
    format!("   ({}: {})", reference.source, parts.join(", "))
}

/// `--data`, else `$FERRET_DATA`, else `../shared/data` when it exists, else
/// `$FERRET_HOME/data`, downloading the official BEIR SciFact there when it is not there yet.
pub fn find_data(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = explicit {
        return Ok(d.to_path_buf());
    }
    if let Some(d) = std::env::var_os("FERRET_DATA") {
        return Ok(PathBuf::from(d));
    }
    let shared = PathBuf::from("../shared/data");
    if shared.join("beir-scifact").is_dir() {
        return Ok(shared);
    }
    let cache = super::ferret_home()?.join("data");
    if cache.join("beir-scifact").is_dir() {
        return Ok(cache);
    }
    crate::datasets::fetch_scifact(&cache)
}

fn corpus_file(dir: &Path) -> anyhow::Result<PathBuf> {
    ["corpus.jsonl.gz", "corpus.jsonl"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .with_context(|| format!("{}: no corpus.jsonl[.gz]", dir.display()))
}

/// Builds (or rebuilds) the index a recipe runs on.
fn build_index(r: &Recipe, dir: &Path, index_dir: &Path) -> anyhow::Result<()> {
    let opts = IndexOptions {
        analyzer: r.analyzer.parse()?,
        fields: r.fields.parse().map_err(anyhow::Error::msg)?,
        // Anserini also skips empty documents (Cranfield has two); they are reported.
        skip_invalid: true,
        ..IndexOptions::default()
    };
    let start = std::time::Instant::now();
    let mut w = IndexWriter::create(index_dir, opts, true)?;
    w.set_encoders(ferret_search::encoders::ModelEncoders::shared());
    w.add_corpus(&corpus_file(dir)?, &mut |_, _, _| {})?;
    for model in r.models {
        eprintln!("{}: encoding the documents with {model}", r.dataset);
        w.add_representation(ferret_index::DenseOptions::default().request(model))?;
    }
    let stats = w.commit()?;
    eprintln!(
        "{}: indexed {} documents in {:.2}s{}",
        index_dir.display(),
        stats.added,
        start.elapsed().as_secs_f64(),
        if stats.skipped.is_empty() {
            String::new()
        } else {
            format!(
                " (skipped {}: {})",
                stats.skipped.len(),
                stats.skipped.join("; ")
            )
        }
    );
    Ok(())
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let data = find_data(a.data.as_deref())?;
    let work = match a.workdir {
        Some(w) => w,
        None => super::ferret_home()?.join("quickstart"),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let measures = Measure::parse_all(&["nDCG@10", "R@100", "R@1000", "AP", "RR@10"])?;
    let recipes: Vec<&Recipe> = SCIFACT
        .iter()
        .chain(if a.all { MORE } else { &[] })
        .filter(|r| !a.lexical_only || r.models.is_empty())
        .collect();
    let mut rows = Vec::new();
    let mut built = std::collections::HashSet::new();
    for r in recipes {
        let dir = data.join(r.dataset);
        let mut index_name = format!("{}-{}-{}", r.dataset, r.analyzer, r.fields);
        for m in r.models {
            index_name.push('-');
            index_name.push_str(m);
        }
        let index_dir = work.join(index_name);
        if built.insert(index_dir.clone()) {
            build_index(r, &dir, &index_dir)?;
        }
        let qrels = Qrels::read(&dir.join(r.qrels))?;
        let index = super::open_index(&index_dir)?;
        let stage = ferret_search::prepare(r.pipeline, &index)?;
        let queries = super::load_queries(&dir.join("queries.jsonl"), Some(&qrels))?;
        let start = std::time::Instant::now();
        let run = ferret_search::batch::run_queries(
            stage.as_ref(),
            &index,
            &queries,
            1000,
            super::default_threads(),
            "ferret",
            RunScores::Separated,
        )?;
        let run_secs = start.elapsed().as_secs_f64();
        let file_name: String = r
            .name
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        let run_path = work.join(format!("{file_name}.run"));
        run.write_trec(std::io::BufWriter::new(std::fs::File::create(&run_path)?))?;
        let e = evaluate(&qrels, &run, &measures, EvalOptions::default());
        rows.push((r, stage.describe(), queries.len(), e.mean, run_secs));
    }
    println!(
        "\n{:<28} {:>7}  {}",
        "run",
        "queries",
        measures
            .iter()
            .map(|m| format!("{:>8}", m.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (r, _, n, mean, _) in &rows {
        println!(
            "{:<28} {n:>7}  {}{}",
            r.name,
            mean.iter()
                .map(|v| format!("{v:>8.4}"))
                .collect::<Vec<_>>()
                .join(" "),
            r.reference
                .as_ref()
                .map(|reference| compared(reference, &measures, mean))
                .unwrap_or_default()
        );
    }
    println!("\npipelines:");
    for (r, pipeline, n, _, secs) in &rows {
        println!("  {}: {pipeline}  ({n} queries in {secs:.2}s)", r.name);
    }
    if let Some(model) = &a.clip {
        flickr(model, &data.join("flickr8k-test1k"), &work)?;
    }
    println!("indexes and runs: {}", work.display());
    Ok(())
}

/// Flickr8k 1k test with a CLIP model: text→image (captions as queries, judged against their
/// image) and image→text (the captions indexed with the text tower, images as queries, each
/// judged against its five captions from captions.tsv).
fn flickr(model: &str, dir: &Path, work: &Path) -> anyhow::Result<()> {
    let measures = Measure::parse_all(&["R@1", "R@5", "R@10", "RR"])?;
    let build = |name: &str, corpus: &Path, request: ferret_index::representation::Request| {
        let index_dir = work.join(name);
        let mut w = IndexWriter::create(&index_dir, IndexOptions::default(), true)?;
        w.set_encoders(ferret_search::encoders::ModelEncoders::shared());
        w.add_corpus(corpus, &mut |_, _, _| {})?;
        w.add_representation(request)?;
        let start = std::time::Instant::now();
        let stats = w.commit()?;
        eprintln!(
            "{}: indexed {} documents in {:.2}s",
            index_dir.display(),
            stats.added,
            start.elapsed().as_secs_f64()
        );
        anyhow::Ok(super::open_index(&index_dir)?)
    };
    let images = build(
        "flickr8k-images",
        &dir.join("corpus.jsonl"),
        ferret_index::image::ImageOptions::default().request(model),
    )?;
    let captions = build(
        "flickr8k-captions",
        &dir.join("queries.jsonl"),
        ferret_index::DenseOptions {
            encoder: Some("clip".into()),
            ..Default::default()
        }
        .request(model),
    )?;
    let text_to_image = Qrels::read(&dir.join("qrels/test.tsv"))?;
    let mut image_to_text = Qrels::default();
    let captions_tsv = dir.join("captions.tsv");
    let listing = std::fs::read_to_string(&captions_tsv)
        .with_context(|| format!("reading {}", captions_tsv.display()))?;
    for (n, line) in listing.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(
            cols.len() >= 2,
            "{}:{}: expected image_id, caption_index, caption",
            captions_tsv.display(),
            n + 1
        );
        image_to_text.insert(cols[0], &format!("{}#{}", cols[0], cols[1]), 1);
    }
    println!("\nflickr8k-test1k with {model}:");
    println!(
        "{:<28} {:>7}  {}",
        "direction",
        "queries",
        measures
            .iter()
            .map(|m| format!("{:>8}", m.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (name, index, queries, qrels) in [
        (
            "text → image",
            &images,
            dir.join("queries.jsonl"),
            &text_to_image,
        ),
        (
            "image → text",
            &captions,
            dir.join("corpus.jsonl"),
            &image_to_text,
        ),
    ] {
        let stage = ferret_search::prepare("clip", index)?;
        let queries = super::load_queries(&queries, Some(qrels))?;
        let run = ferret_search::batch::run_queries(
            stage.as_ref(),
            index,
            &queries,
            100,
            super::default_threads(),
            "ferret",
            RunScores::Separated,
        )?;
        let e = evaluate(qrels, &run, &measures, EvalOptions::default());
        println!(
            "{name:<28} {:>7}  {}",
            queries.len(),
            e.mean
                .iter()
                .map(|v| format!("{v:>8.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}
