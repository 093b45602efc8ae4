//! `bm25(k1=0.9, b=0.4, <field>=<weight>...)`: Anserini-identical BM25 over the lexical
//! representation (see [`ferret_index::lexical::bm25`] for the formula).

use std::collections::HashMap;
use std::sync::Arc;

use ferret_index::lexical::bm25::{Bm25Params, Bm25Query};
use ferret_index::Index;
use ferret_text::Analyzer;

use crate::args::{Args, StageSpec};
use crate::stage::{rescore, Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

/// BM25's parameters and field weights, shared by `bm25` and the feedback stages that search
/// again with an expanded query.
pub struct Bm25Settings {
    pub params: Bm25Params,
    /// (field index, weight) for each field of the index with a weight above 0.
    pub fields: Vec<(usize, f32)>,
    field_names: Vec<&'static str>,
}

impl Bm25Settings {
    pub fn from_args(args: &mut Args<'_>, index: &Index) -> Result<Self, SearchError> {
        let lexical = index.lexical()?;
        let params = Bm25Params {
            k1: args.number("k1", 0.9)? as f32,
            b: args.number("b", 0.4)? as f32,
        };
        if params.k1 < 0.0 || !(0.0..=1.0).contains(&params.b) {
            return Err(SearchError::at(
                args.position(),
                format!("{}: k1 must be >= 0 and b between 0 and 1", args.stage()),
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
        Ok(Bm25Settings {
            params,
            fields,
            field_names,
        })
    }

    /// `k1=…, b=…[, field=weight…]`, for `describe`.
    pub fn describe_args(&self) -> String {
        let mut s = format!("k1={}, b={}", self.params.k1, self.params.b);
        if self.field_names.len() > 1 {
            for (i, w) in &self.fields {
                s.push_str(&format!(", {}={w}", self.field_names[*i]));
            }
        }
        s
    }

    /// The same weighted terms in every field, scaled by the field's weight.
    pub fn query(&self, terms: &[(String, f32)]) -> Bm25Query {
        Bm25Query {
            clauses: self
                .fields
                .iter()
                .map(
                    |&(field, weight)| ferret_index::lexical::bm25::FieldClause {
                        field,
                        terms: terms.iter().map(|(t, w)| (t.clone(), weight * w)).collect(),
                    },
                )
                .collect(),
        }
    }

    /// Searches with `q`, or rescores `candidates` when given: candidates matching no query
    /// term keep their relative order after the matching ones, with score 0.
    pub fn search(
        &self,
        index: &Index,
        q: &Bm25Query,
        candidates: Option<&[Hit]>,
        k: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let lexical = index.lexical()?;
        let depth = if candidates.is_some() { usize::MAX } else { k };
        let scored = lexical.bm25_top_k(q, self.params, depth, None)?;
        let hits = scored.into_iter().map(|(doc, score)| Hit { doc, score });
        Ok(match candidates {
            None => hits.collect(),
            Some(cands) => {
                let scores: HashMap<u32, f32> = hits.map(|h| (h.doc, h.score)).collect();
                rescore(cands, k, |d| scores.get(&d).copied().unwrap_or(0.0))
            }
        })
    }
}

pub struct Bm25 {
    index: Arc<Index>,
    settings: Bm25Settings,
}

pub const SPEC: StageSpec = StageSpec::plain(
    "bm25",
    "BM25 over the lexical representation: k1, b (Anserini defaults 0.9, 0.4); per-field weights by field name (title=, text=) on multi-field indexes",
    build,
);

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    Ok(Box::new(Bm25 {
        index: index.clone(),
        settings: Bm25Settings::from_args(args, index)?,
    }))
}

impl Stage for Bm25 {
    fn describe(&self) -> String {
        format!("bm25({})", self.settings.describe_args())
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let lexical = self.index.lexical()?;
        let mut analyzer = Analyzer::new(lexical.analyzer());
        let q = Bm25Query::bag_of_words(&mut analyzer, &query.text, &self.settings.fields);
        self.settings.search(&self.index, &q, candidates, k)
    }
}
