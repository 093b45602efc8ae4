//! The `ferret` command line: parses arguments and calls the libraries.

mod commands;
mod datasets;
mod plot;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferret",
    version,
    about = "Multi-stage retrieval and ranking with evaluation built in",
    long_about = "ferret indexes BEIR/TREC collections, runs ranking pipelines over query sets and evaluates them exactly as trec_eval does.\n\nStart with `ferret quickstart`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an index from a corpus, add documents to one, or delete documents from one
    Index(commands::index::Args),
    /// What an index holds: documents, generation, representations and their sizes
    Info(commands::info::Args),
    /// Verify an index: every file's checksum, the structure, every document; names damaged files
    Check(commands::check::Args),
    /// Search an index for one query
    Search(commands::search::Args),
    /// Run a pipeline over a query set and write a TREC run
    Run(commands::run::Args),
    /// Re-order ad-hoc candidates for a query with a cross-encoder (no index needed)
    Rerank(commands::rerank::Args),
    /// Re-run a run card (<run>.card.json) and check its metrics come out the same
    Reproduce(commands::reproduce::Args),
    /// Grid-search pipeline parameters on a training query set
    Tune(commands::tune::Args),
    /// The terms an analyzer makes of a text (positions, dropped stop words; with --index, the
    /// index's analyzer and each term's document frequency)
    Analyze(commands::analyze::Args),
    /// Evaluate TREC runs against qrels (trec_eval-identical), comparing several runs
    Eval(commands::eval::Args),
    /// Compare two runs query by query: a self-contained HTML report with the per-query
    /// difference chart, wins/ties/losses, significance tests and both rankings per query
    Compare(commands::compare::Args),
    /// Measure query throughput of a pipeline (queries/s, in-process)
    Bench(commands::bench::Args),
    /// HNSW against exact search on synthetic vectors: build time, memory, recall, queries/s
    BenchAnn(commands::bench_ann::Args),
    /// Late-interaction search speed and agreement: exhaustive MaxSim, PLAID and XTR over an
    /// index's token vectors with precomputed query vectors (queries/s, TREC runs)
    BenchTokens(commands::bench_tokens::Args),
    /// Prompt and generation speed of a local GGUF LLM (compare with llama.cpp)
    BenchLlm(commands::bench_llm::Args),
    /// Index BEIR SciFact, run BM25 (flat and multi-field) and print the evaluation
    Quickstart(commands::quickstart::Args),
    /// List, fetch and inspect neural models
    Models(commands::models::Args),
    /// Serve an index over HTTP: JSON API, OpenAPI document, metrics and a search page
    Serve(commands::serve::Args),
    /// Embed documents or queries with a sentence encoder (JSON lines or raw f32 out)
    Encode(commands::encode::Args),
    /// CLIPScore of image–caption pairs (per pair and the mean), and the set's SCE
    Score(commands::score::Args),
    /// Classify labelled image folders with CLIP: zero-shot, k-NN or few-shot GDA
    Classify(commands::classify::Args),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Index(a) => commands::index::main(a),
        Command::Info(a) => commands::info::main(a),
        Command::Check(a) => commands::check::main(a),
        Command::Search(a) => commands::search::main(a),
        Command::Run(a) => commands::run::main(a),
        Command::Eval(a) => commands::eval::main(a),
        Command::Compare(a) => commands::compare::main(a),
        Command::Analyze(a) => commands::analyze::main(a),
        Command::Reproduce(a) => commands::reproduce::main(a),
        Command::Rerank(a) => commands::rerank::main(a),
        Command::Tune(a) => commands::tune::main(a),
        Command::Bench(a) => commands::bench::main(a),
        Command::BenchAnn(a) => commands::bench_ann::main(a),
        Command::BenchLlm(a) => commands::bench_llm::main(a),
        Command::BenchTokens(a) => commands::bench_tokens::main(a),
        Command::Quickstart(a) => commands::quickstart::main(a),
        Command::Models(a) => commands::models::main(a),
        Command::Encode(a) => commands::encode::main(a),
        Command::Score(a) => commands::score::main(a),
        Command::Classify(a) => commands::classify::main(a),
        Command::Serve(a) => commands::serve::main(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", message(&e));
        std::process::exit(2);
    }
}

/// The error and its causes, each once: many errors already show their cause in their own
/// message (`{e:#}` would print it twice).
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}
