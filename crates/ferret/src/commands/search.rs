use std::path::PathBuf;

use ferret_search::Query;

#[derive(clap::Args)]
pub struct Args {
    /// Index directory (or give it as the first positional argument)
    #[arg(long)]
    index: Option<PathBuf>,
    /// [INDEX] QUERY (the query text may be left out with --image)
    #[arg(num_args = 0..=2)]
    positional: Vec<String>,
    /// Search with this image (image stages such as clip; text stages use the query text)
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Number of results
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// Ranking pipeline
    #[arg(long, default_value = "bm25")]
    pipeline: String,
    /// JSON output
    #[arg(long)]
    json: bool,
    /// Show, per hit, each stage's rank and score, how fusion combined them, and stage timings
    #[arg(long)]
    explain: bool,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let (index_dir, text) = match (a.index, a.positional.as_slice()) {
        (Some(i), [q]) => (i, q.clone()),
        (None, [i, q]) => (PathBuf::from(i), q.clone()),
        (None, [i]) if a.image.is_some() => (PathBuf::from(i), String::new()),
        (Some(i), []) if a.image.is_some() => (i, String::new()),
        (Some(_), _) => anyhow::bail!("give the query once (the index is already set by --index)"),
        (None, _) => anyhow::bail!("give the index: `ferret search INDEX \"query\"` or --index"),
    };
    anyhow::ensure!(
        !text.trim().is_empty() || a.image.is_some(),
        "the query is empty"
    );
    let index = super::open_index(&index_dir)?;
    let stage = ferret_search::prepare(&a.pipeline, &index)?;
    let mut query = Query::new("q", text.clone());
    if let Some(image) = &a.image {
        anyhow::ensure!(image.is_file(), "{}: no such image file", image.display());
        query.image = Some(ferret_search::QueryImage::Path(
            image.to_string_lossy().into_owned(),
        ));
    }
    let mut trace = if a.explain {
        ferret_search::Trace::on()
    } else {
        ferret_search::Trace::off()
    };
    let hits = trace.run(stage.as_ref(), &query, None, a.k)?;
    if a.json && a.explain {
        let record = ferret_search::trace::explain_json(&index, &query, &hits, &trace, a.k);
        println!("{}", serde_json::to_string_pretty(&record)?);
        return Ok(());
    }
    let mut rows = Vec::new();
    for (rank, h) in hits.iter().enumerate() {
        let doc = index.document(h.doc)?;
        rows.push(serde_json::json!({
            "rank": rank + 1, "id": doc.id, "score": h.score, "title": doc.title,
            "text": if a.json { doc.text.clone() } else { String::new() },
        }));
        if !a.json {
            let title = if doc.title.is_empty() {
                snippet(&doc.text)
            } else {
                doc.title.clone()
            };
            println!(
                "{:>3}  {:>10.4}  {:<12}  {}",
                rank + 1,
                h.score,
                doc.id,
                title
            );
        }
    }
    if a.explain {
        print_explain(&index, &hits, &trace);
    }
    if a.json {
        let out = serde_json::json!({"query": text, "pipeline": stage.describe(), "hits": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if hits.is_empty() {
        println!("no results");
    }
    Ok(())
}

fn snippet(text: &str) -> String {
    let s: String = text.chars().take(80).collect();
    if s.len() < text.len() {
        format!("{s}…")
    } else {
        s
    }
}

/// The explain panel in text: the stage tree with timings, then per hit its rank and score in
/// every stage.
fn print_explain(
    index: &ferret_index::Index,
    hits: &[ferret_search::Hit],
    trace: &ferret_search::Trace,
) {
    println!();
    println!("stages (S#: rank/score of each hit below):");
    for (i, e) in trace.entries.iter().enumerate() {
        println!(
            "  S{i:<2} {:>9.2} ms  {}{}",
            e.millis,
            "  ".repeat(e.depth),
            e.stage
        );
        if let Some(f) = &e.formula {
            println!("  {:>16}{}  fusion: {f}", "", "  ".repeat(e.depth));
        }
        if let Some(n) = &e.note {
            println!("  {:>16}{}  note: {n}", "", "  ".repeat(e.depth));
        }
    }
    for (rank, h) in hits.iter().enumerate() {
        let parts: Vec<String> = trace
            .positions(h.doc)
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Some((r, s, _)) => format!("S{i} #{r} {s:.4}"),
                None => format!("S{i} —"),
            })
            .collect();
        println!(
            "{:>3}  {:<12}  {}",
            rank + 1,
            index.external_id(h.doc),
            parts.join(" | ")
        );
        for (i, p) in trace.positions(h.doc).iter().enumerate() {
            if let Some((_, _, Some(detail))) = p {
                println!("{:>19}S{i} {detail}", "");
            }
        }
    }
}
