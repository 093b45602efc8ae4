//! `ferret rerank`: re-orders ad-hoc candidates for a query with any reranker — a cross-encoder
//! or an LLM strategy — no index needed (the Cohere-style rerank use).

use std::path::PathBuf;

use anyhow::Context;
use ferret_index::corpus::CorpusReader;
use ferret_index::dense::document_text;
use ferret_search::reranker::Passage;

#[derive(clap::Args)]
pub struct Args {
    /// A cross-encoder (a folder, a Hugging Face cache entry or a Hub id), or any reranker
    /// stage, e.g. 'listwise(llm=smollm2, window=10)' or 'pointwise(llm=smollm2)'
    #[arg(long)]
    model: String,
    /// The query
    #[arg(long)]
    query: String,
    /// Candidates: JSONL ({"_id", "title", "text"}) or TSV (id<TAB>text), plain or gzipped
    #[arg(long)]
    candidates: PathBuf,
    /// Pair truncation length for a cross-encoder (tokens)
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
    let expression = ferret_search::registry::reranker_expression(&a.model, Some(a.max_length));
    let expr = ferret_search::pipeline::parse_any(&expression)
        .map_err(|e| e.with_source_text(&expression))?;
    let reranker = ferret_search::registry::prepare_reranker(&expr)
        .map_err(|e| e.with_source_text(&expression))?;
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
    let passages: Vec<Passage> = docs
        .iter()
        .map(|d| Passage {
            text: document_text(d),
            score: 0.0,
        })
        .collect();
    let mut trace = ferret_search::Trace::off();
    let start = std::time::Instant::now();
    let mut order = reranker
        .rerank(&a.query, &passages, &mut trace)
        .context("reranking the candidates")?;
    let seconds = start.elapsed().as_secs_f64();
    order.truncate(a.k.unwrap_or(docs.len()));
    let usage = ferret_search::run_card::llm_usage(1);
    if a.json {
        let rows: Vec<serde_json::Value> = order
            .iter()
            .enumerate()
            .map(|(rank, &(i, score))| {
                serde_json::json!({"rank": rank + 1, "id": docs[i].id, "score": score,
                    "title": docs[i].title, "text": docs[i].text})
            })
            .collect();
        let out = serde_json::json!({"query": a.query, "reranker": reranker.describe(),
            "seconds": seconds, "llm_usage": usage, "results": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (rank, &(i, score)) in order.iter().enumerate() {
            let snippet: String = passages[i].text.chars().take(80).collect();
            println!(
                "{:>3}  {:>10.4}  {:<12}  {snippet}",
                rank + 1,
                score,
                docs[i].id
            );
        }
        for u in usage {
            eprintln!(
                "LLM {}: {} calls (+{} cached), {} prompt ({} reused from earlier prompts) + {} completion tokens, {seconds:.2} s",
                u.model,
                u.calls,
                u.cache_hits,
                u.prompt_tokens,
                u.reused_prompt_tokens,
                u.completion_tokens
            );
        }
    }
    Ok(())
}
