//! `ferret analyze`: the terms an analyzer makes of a text, as Lucene's and Elasticsearch's
//! analyze APIs show them — each term with its position and the words it came from, the words
//! `en` drops as stop words, and with `--index` each term's document frequency there, so that
//! one sees why a word did or did not match.

use std::path::PathBuf;

use anyhow::Context;
use ferret_text::{Analyzer, AnalyzerKind};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// The text to analyze
    text: String,
    /// Analyzer: en (Anserini English), none (lower-case only; also zh-char), zh (jieba).
    /// Default: the index's with --index, else en
    #[arg(long)]
    analyzer: Option<String>,
    /// Analyze as this index does and show each term's document frequency in its fields
    #[arg(long)]
    index: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Term {
    term: String,
    position: usize,
    /// The text the term came from and its byte offsets.
    text: String,
    start: usize,
    end: usize,
    /// Documents holding the term, per text field (with --index).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    doc_freq: Vec<u64>,
}

/// A word the analyzer dropped.
#[derive(Serialize)]
struct Dropped {
    word: String,
    position: usize,
    start: usize,
    end: usize,
    reason: &'static str,
}

#[derive(Serialize)]
struct Report {
    analyzer: AnalyzerKind,
    terms: Vec<Term>,
    dropped: Vec<Dropped>,
    /// The index's documents and text fields (with --index).
    #[serde(skip_serializing_if = "Option::is_none")]
    documents: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<&'static str>,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let given: Option<AnalyzerKind> = a.analyzer.as_deref().map(str::parse).transpose()?;
    let index = a.index.as_deref().map(super::open_index).transpose()?;
    let lexical = index
        .as_ref()
        .map(|i| i.lexical())
        .transpose()
        .context("--index: the index has no lexical representation to look terms up in")?;
    let kind = match (given, lexical) {
        (Some(g), Some(l)) if g != l.analyzer() => anyhow::bail!(
            "--analyzer {g} differs from the index's analyzer {}: its terms are not the index's; \
             leave --analyzer out to analyze as the index does",
            l.analyzer()
        ),
        (_, Some(l)) => l.analyzer(),
        (Some(g), None) => g,
        (None, None) => AnalyzerKind::En,
    };
    let mut terms = Vec::new();
    Analyzer::new(kind).analyze(&a.text, &mut |t| {
        terms.push(Term {
            term: t.text.to_string(),
            position: t.position,
            text: a.text[t.start..t.end].to_string(),
            start: t.start,
            end: t.end,
            doc_freq: Vec::new(),
        })
    });
    // `en` drops stop words but counts their positions; `none` tokenizes the same way and
    // keeps every word, so the positions `en` skips are its stop words.
    let mut dropped = Vec::new();
    if kind == AnalyzerKind::En {
        Analyzer::new(AnalyzerKind::None).analyze(&a.text, &mut |t| {
            if terms.iter().all(|k| k.position != t.position) {
                dropped.push(Dropped {
                    word: a.text[t.start..t.end].to_string(),
                    position: t.position,
                    start: t.start,
                    end: t.end,
                    reason: "stop word",
                });
            }
        });
    }
    let mut fields = Vec::new();
    if let Some(l) = lexical {
        fields = l.mode().field_names().to_vec();
        for t in &mut terms {
            t.doc_freq = (0..fields.len())
                .map(|f| l.doc_freq(f, &t.term))
                .collect::<Result<_, _>>()?;
        }
    }
    let report = Report {
        analyzer: kind,
        terms,
        dropped,
        documents: index.as_ref().map(|i| i.manifest().doc_count),
        fields,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    match r.documents {
        Some(n) => println!("analyzer {} (the index's; {n} documents)", r.analyzer),
        None => println!("analyzer {}", r.analyzer),
    }
    if r.terms.is_empty() {
        println!("no terms");
        if r.dropped.is_empty() {
            return;
        }
    }
    let df_heads: String = r
        .fields
        .iter()
        .map(|f| format!(" {:>10}", format!("df {f}")))
        .collect();
    println!(
        "{:>8}  {:<20} {:<20} {:>9}{df_heads}",
        "position", "term", "from", "bytes"
    );
    let mut rows: Vec<(usize, String)> = r
        .terms
        .iter()
        .map(|t| {
            let df: String = t.doc_freq.iter().map(|d| format!(" {d:>10}")).collect();
            let bytes = format!("{}-{}", t.start, t.end);
            (
                t.position,
                format!(
                    "{:>8}  {:<20} {:<20} {bytes:>9}{df}",
                    t.position, t.term, t.text
                ),
            )
        })
        .chain(r.dropped.iter().map(|d| {
            let bytes = format!("{}-{}", d.start, d.end);
            (
                d.position,
                format!(
                    "{:>8}  {:<20} {:<20} {bytes:>9}",
                    d.position,
                    format!("({})", d.reason),
                    d.word
                ),
            )
        }))
        .collect();
    rows.sort_by_key(|(position, _)| *position);
    for (_, row) in rows {
        println!("{row}");
    }
}
