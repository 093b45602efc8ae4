//! `bm25(k1=0.9, b=0.4, <field>=<weight>...)`: Anserini-identical BM25 over the lexical
//! representation (see [`ferret_index::lexical::bm25`] for the formula).

use std::collections::HashMap;
use std::sync::Arc;

use ferret_index::lexical::bm25::{Bm25Params, Bm25Query};
use ferret_index::Index;
use ferret_text::Analyzer;

use crate::registry::Args;
use crate::stage::{rescore, Hit, Stage};
use crate::{Query, SearchError};

pub struct Bm25 {
    index: Arc<Index>,
    params: Bm25Params,
    /// (field index, weight) for each field of the index.
    fields: Vec<(usize, f32)>,
    field_names: Vec<&'static str>,
}

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let lexical = index.lexical()?;
    let params = Bm25Params {
        k1: args.number("k1", 0.9)? as f32,
        b: args.number("b", 0.4)? as f32,
    };
    if params.k1 < 0.0 || !(0.0..=1.0).contains(&params.b) {
        return Err(SearchError::at(
            args.position(),
            "bm25: k1 must be >= 0 and b between 0 and 1",
        ));
    }
    let field_names = lexical.mode().field_names().to_vec();
    let mut fields = Vec::new();
    for (i, name) in field_names.iter().enumerate() {
        let w = args.number(name, 1.0)? as f32;
        if w > 0.0 {
            fields.push((i, w));
        }
    }
    Ok(Box::new(Bm25 {
        index: index.clone(),
        params,
        fields,
        field_names,
    }))
}

impl Stage for Bm25 {
    fn describe(&self) -> String {
        let mut s = format!("bm25(k1={}, b={}", self.params.k1, self.params.b);
        if self.field_names.len() > 1 {
            for (i, w) in &self.fields {
                s.push_str(&format!(", {}={w}", self.field_names[*i]));
            }
        }
        s.push(')');
        s
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let lexical = self.index.lexical()?;
        let mut analyzer = Analyzer::new(lexical.analyzer());
        let q = Bm25Query::bag_of_words(&mut analyzer, &query.text, &self.fields);
        let depth = if candidates.is_some() { usize::MAX } else { k };
        let scored = lexical.bm25_top_k(&q, self.params, depth, None)?;
        let hits = scored.into_iter().map(|(doc, score)| Hit { doc, score });
        Ok(match candidates {
            None => hits.collect(),
            // Rescoring: only the candidates, by BM25; candidates matching no query term keep
            // their relative order after the matching ones, with score 0.
            Some(cands) => {
                let scores: HashMap<u32, f32> = hits.map(|h| (h.doc, h.score)).collect();
                rescore(cands, k, |d| scores.get(&d).copied().unwrap_or(0.0))
            }
        })
    }
}
