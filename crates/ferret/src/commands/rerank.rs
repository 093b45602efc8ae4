//! `ferret rerank`: re-orders ad-hoc candidates for a query with a cross-encoder, no index
//! needed (the Cohere-style rerank use).

use std::path::PathBuf;

use anyhow::Context;
use ferret_index::corpus::CorpusReader;
use ferret_index::dense::document_text;

#[derive(clap::Args)]
pub struct Args {
    /// Cross-encoder: a folder, a Hugging Face cache entry or a Hub id
    #[arg(long)]
    model: String,
    /// The query
    #[arg(long)]
    query: String,
    /// Candidates: JSONL ({"_id", "title", "text"}) or TSV (id<TAB>text), plain or gzipped
    #[arg(long)]
    candidates: PathBuf,
    /// Pair truncation length (tokens)
    #[arg(long, default_value_t = 512)]
    max_length: usize,
    /// Keep the best k (default: all)
    #[arg(short)]
    k: Option<usize>,
    /// JSON output
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(!a.query.trim().is_empty(), "the query is empty");
    let model = ferret_models::source::resolve(&a.model)?;
    let encoder = ferret_models::CrossEncoder::load(&model.dir, a.max_length)?;
    let mut reader = CorpusReader::open(&a.candidates)?;
    let mut docs = Vec::new();
    while let Some(d) = reader.next_document() {
        docs.push(d?);
    }
    anyhow::ensure!(
        !docs.is_empty(),
        "{}: no candidates",
        a.candidates.display()
    );
    let texts: Vec<String> = docs.iter().map(document_text).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let scores = encoder
        .score(&a.query, &refs)
        .context("scoring the candidates")?;
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by(|&x, &y| scores[y].total_cmp(&scores[x]).then(x.cmp(&y)));
    order.truncate(a.k.unwrap_or(docs.len()));
    if a.json {
        let rows: Vec<serde_json::Value> = order
            .iter()
            .enumerate()
            .map(|(rank, &i)| {
                serde_json::json!({"rank": rank + 1, "id": docs[i].id, "score": scores[i],
                    "title": docs[i].title, "text": docs[i].text})
            })
            .collect();
        let out = serde_json::json!({"query": a.query, "model": model.info.id, "results": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (rank, &i) in order.iter().enumerate() {
            let snippet: String = texts[i].chars().take(80).collect();
            println!(
                "{:>3}  {:>10.4}  {:<12}  {snippet}",
                rank + 1,
                scores[i],
                docs[i].id
            );
        }
    }
    Ok(())
}
