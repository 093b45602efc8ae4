//! `ferret bench-llm`: prompt-processing and generation speed of a local GGUF model on this
//! machine, for comparison with llama.cpp on the same file (`benches/llm_vs_llamacpp.sh` runs
//! both in one go).

use anyhow::Context;
use ferret_models::llm::gguf::GgufModel;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF file or model id (e.g. smollm2)
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// Text whose first --prompt-tokens tokens form the prompt
    #[arg(long)]
    text: std::path::PathBuf,
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens to generate after the prompt
    #[arg(long, default_value_t = 64)]
    generate: usize,
    /// Repetitions (the best is reported)
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let model = GgufModel::open(&a.model)?;
    let text = std::fs::read_to_string(&a.text)
        .with_context(|| format!("reading {}", a.text.display()))?;
    let mut ids = model.tokenize(&text)?;
    anyhow::ensure!(
        ids.len() >= a.prompt_tokens,
        "{} has only {} tokens",
        a.text.display(),
        ids.len()
    );
    ids.truncate(a.prompt_tokens);
    let (mut best_p, mut best_g) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..a.repeat.max(1) {
        let (p, g) = model.throughput(&ids, a.generate)?;
        best_p = best_p.min(p);
        best_g = best_g.min(g);
    }
    let out = serde_json::json!({
        "runtime": "ferret",
        "prompt_tokens": ids.len(),
        "prompt_tokens_per_s": ids.len() as f64 / best_p,
        "generated_tokens": a.generate,
        "generation_tokens_per_s": a.generate as f64 / best_g,
    });
    println!("{out}");
    Ok(())
}
