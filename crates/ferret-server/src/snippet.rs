//! Snippets with the query's terms highlighted: the document text is analysed with the
//! index's own analyzer, so a highlighted word is one that matched a query term after
//! stemming and stop-word removal (what BM25 scored), not a raw substring.

use std::collections::HashSet;

use ferret_text::{Analyzer, AnalyzerKind};
use serde::Serialize;
use utoipa::ToSchema;

/// A piece of a snippet; `hit` pieces matched a query term.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Segment {
    pub text: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hit: bool,
}

/// Highlights one query's terms in documents; the query is analysed once.
pub struct Highlighter {
    analyzer: Analyzer,
    terms: HashSet<String>,
}

impl Highlighter {
    pub fn new(kind: AnalyzerKind, query: &str) -> Self {
        let mut analyzer = Analyzer::new(kind);
        let terms = analyzer.terms(query).into_iter().collect();
        Highlighter { analyzer, terms }
    }

    /// About `max_chars` characters of `text` around the densest run of query-term matches,
    /// cut at word boundaries, with "…" where text was left out.
    pub fn snippet(&mut self, text: &str, max_chars: usize) -> Vec<Segment> {
        snippet_of(&mut self.analyzer, &self.terms, text, max_chars)
    }
}

fn snippet_of(
    analyzer: &mut Analyzer,
    terms: &HashSet<String>,
    text: &str,
    max_chars: usize,
) -> Vec<Segment> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    analyzer.analyze(text, &mut |t| {
        if terms.contains(t.text) {
            spans.push((t.start, t.end));
        }
    });
    let (from, to) = window(text, &spans, max_chars);
    let mut out = Vec::new();
    if from > 0 {
        out.push(plain("…"));
    }
    let mut at = from;
    for &(s, e) in spans.iter().filter(|(s, e)| *s >= from && *e <= to) {
        if s < at {
            continue; // overlapping spans (a term analysed into several): keep the first
        }
        if s > at {
            out.push(plain(&text[at..s]));
        }
        out.push(Segment {
            text: text[s..e].to_string(),
            hit: true,
        });
        at = e;
    }
    if at < to {
        out.push(plain(&text[at..to]));
    }
    if to < text.len() {
        out.push(plain("…"));
    }
    out
}

fn plain(s: &str) -> Segment {
    Segment {
        text: s.to_string(),
        hit: false,
    }
}

/// The byte range to show: starts a little before the span whose following `max_chars` hold
/// the most matches, snapped to character and word boundaries.
fn window(text: &str, spans: &[(usize, usize)], max_chars: usize) -> (usize, usize) {
    let max_bytes = text
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(i, _)| i);
    if text.len() <= max_bytes {
        return (0, text.len());
    }
    let best = (0..spans.len())
        .max_by_key(|&i| {
            let count = spans[i..]
                .iter()
                .take_while(|(_, e)| *e <= spans[i].0 + max_bytes)
                .count();
            (count, std::cmp::Reverse(i))
        })
        .map_or(0, |i| spans[i].0);
    // Some context before the first match, then back to a word start if one is near.
    let context = max_bytes / 5;
    let mut from = floor_char(text, best.saturating_sub(context));
    if from > 0 {
        if let Some(i) = text[..from].rfind(char::is_whitespace) {
            if from - i <= context {
                from = i + 1;
            }
        }
    }
    let mut to = floor_char(text, (from + max_bytes).min(text.len()));
    if to < text.len() {
        if let Some(i) = text[from..to].rfind(char::is_whitespace) {
            if to - (from + i) <= context {
                to = from + i;
            }
        }
    }
    (from, to)
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snippet(kind: AnalyzerKind, query: &str, text: &str, max_chars: usize) -> Vec<Segment> {
        Highlighter::new(kind, query).snippet(text, max_chars)
    }

    fn render(segments: &[Segment]) -> String {
        segments
            .iter()
            .map(|s| {
                if s.hit {
                    format!("[{}]", s.text)
                } else {
                    s.text.clone()
                }
            })
            .collect()
    }

    #[test]
    fn highlights_stemmed_matches_and_skips_stop_words() {
        let s = snippet(
            AnalyzerKind::En,
            "the running cells",
            "Cells ran; the cell runs and keeps running.",
            300,
        );
        assert_eq!(
            render(&s),
            "[Cells] ran; the [cell] [runs] and keeps [running]."
        );
    }

    #[test]
    fn long_text_is_cut_around_the_matches_at_word_boundaries() {
        let filler = "lorem ipsum dolor sit amet ".repeat(40);
        let text = format!("{filler}the protein folding result {filler}");
        let s = snippet(AnalyzerKind::En, "protein folding", &text, 120);
        let r = render(&s);
        assert!(r.starts_with('…') && r.ends_with('…'), "{r}");
        assert!(r.contains("[protein] [folding]"), "{r}");
        let shown: usize = s.iter().map(|x| x.text.chars().count()).sum();
        assert!(shown <= 122, "{shown} characters: {r}");
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let text = "é".repeat(500) + " cell " + &"ü".repeat(500);
        let s = snippet(AnalyzerKind::En, "cell", &text, 50);
        assert!(render(&s).contains("[cell]"));
    }
}
