//! `ferret serve`: the HTTP API and web page over one index (see ferret-server).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use ferret_server::judgements::JudgementSet;
use ferret_server::{Limits, ServerOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Index directory
    #[arg(long)]
    index: PathBuf,
    /// Address to listen on (loopback by default; port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// API key that write endpoints (POST/DELETE /v1/documents) require as a bearer token
    #[arg(long, env = "FERRET_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// A model requests may name besides the index's own and ferret's known ids and aliases
    /// (a folder, GGUF file or Hub id; repeatable)
    #[arg(long, value_name = "MODEL")]
    allow_model: Vec<String>,
    /// An OpenAI-compatible base URL that LLM stages in requests may call (repeatable)
    #[arg(long, value_name = "URL")]
    allow_api: Vec<String>,
    /// Largest request body, in bytes
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Longest query, in characters
    #[arg(long, default_value_t = 1000)]
    max_query_chars: usize,
    /// Largest k a search may ask for
    #[arg(long, default_value_t = 1000)]
    max_k: usize,
    /// Most stages in one pipeline
    #[arg(long, default_value_t = 16)]
    max_pipeline_stages: usize,
    /// Seconds a search, rerank or write may take before it is answered `timeout`; a search
    /// or rerank is then cancelled (its stages stop at their next check)
    #[arg(long, default_value_t = 30.0)]
    timeout_s: f64,
    /// Pipelines and rerankers taking longer than this on average (milliseconds) are slow:
    /// they may use all workers but one, which stays free for fast pipelines
    #[arg(long, default_value_t = 250.0)]
    slow_ms: f64,
    /// Threads for indexing added documents (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Searches and reranks that run at once; more wait their turn (default: twice the
    /// cores)
    #[arg(long)]
    workers: Option<usize>,
    /// Relevance judgements (TREC or BEIR TSV qrels) for the page and the API: hits of a
    /// judged query show their grades, rankings their nDCG@10, R@100 and AP; repeatable,
    /// named NAME= or after the file
    #[arg(long, value_name = "[NAME=]FILE")]
    qrels: Vec<String>,
    /// The texts of judged queries (BEIR JSONL or TSV), so the page can offer them and
    /// /compare run them; NAME= picks the qrels they belong to (needed with several)
    #[arg(long, value_name = "[NAME=]FILE")]
    queries: Vec<String>,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.timeout_s > 0.0 && a.timeout_s.is_finite(),
        "--timeout-s must be a positive number of seconds"
    );
    anyhow::ensure!(a.max_k >= 1, "--max-k must be at least 1");
    anyhow::ensure!(
        a.slow_ms >= 0.0 && a.slow_ms.is_finite(),
        "--slow-ms must be a non-negative number of milliseconds"
    );
    let limits = Limits {
        max_body_bytes: a.max_body_bytes,
        max_query_chars: a.max_query_chars,
        max_k: a.max_k,
        max_pipeline_stages: a.max_pipeline_stages,
        timeout: Duration::from_secs_f64(a.timeout_s),
        slow_work: Duration::from_secs_f64(a.slow_ms / 1000.0),
        ..Limits::default()
    };
    let options = ServerOptions {
        index: a.index.clone(),
        limits,
        api_key: a.api_key.filter(|k| !k.is_empty()),
        allowed_models: a.allow_model,
        allowed_apis: a.allow_api,
        threads: a.threads.unwrap_or_else(super::default_threads),
        workers: a
            .workers
            .unwrap_or_else(|| 2 * super::default_threads())
            .max(1),
        judgements: judgement_sets(&a.qrels, &a.queries)?,
    };
    let index = a.index.display().to_string();
    ferret_server::run(options, a.addr, |local| {
        // Tests and scripts read this line for the port.
        println!("ferret: serving {index} on http://{local}");
        let _ = std::io::stdout().flush();
    })?;
    println!("ferret: shut down");
    Ok(())
}

/// `NAME=FILE`, or `FILE` named after its file stem.
fn named(arg: &str) -> (Option<String>, PathBuf) {
    match arg.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => {
            (Some(name.to_string()), PathBuf::from(path))
        }
        _ => (None, PathBuf::from(arg)),
    }
}

/// Reads the judgement sets of `--qrels` and attaches the texts of `--queries` to them.
fn judgement_sets(qrels: &[String], queries: &[String]) -> anyhow::Result<Vec<Arc<JudgementSet>>> {
    let mut sets: Vec<JudgementSet> = Vec::new();
    for arg in qrels {
        let (name, path) = named(arg);
        let name = name.unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(|| "qrels".into(), |s| s.to_string_lossy().into_owned())
        });
        anyhow::ensure!(
            !sets.iter().any(|s| s.name == name),
            "two --qrels named '{name}': name them, e.g. --qrels dev={}",
            path.display()
        );
        sets.push(JudgementSet {
            qrels: ferret_eval::Qrels::read(&path)?,
            source: path.display().to_string(),
            name,
            queries: Vec::new(),
        });
    }
    for arg in queries {
        let (name, path) = named(arg);
        let set = match &name {
            Some(n) => sets
                .iter_mut()
                .find(|s| &s.name == n)
                .ok_or_else(|| anyhow::anyhow!("--queries {arg}: no --qrels named '{n}'"))?,
            None if sets.len() == 1 => &mut sets[0],
            None => anyhow::bail!(
                "--queries {arg}: with {} judgement sets, say which it belongs to (NAME=FILE)",
                sets.len()
            ),
        };
        anyhow::ensure!(
            set.queries.is_empty(),
            "--queries {arg}: the judgements '{}' have their queries already",
            set.name
        );
        let qs = super::load_queries(&path, Some(&set.qrels))?;
        set.queries = qs.into_iter().map(|q| (q.id, q.text)).collect();
    }
    Ok(sets.into_iter().map(Arc::new).collect())
}
