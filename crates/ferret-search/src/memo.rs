//! Fusion inputs shared between preparations of similar pipelines. `ferret tune` prepares one
//! pipeline per setting, and settings that differ only in a fusion's weights (or in one of its
//! inputs) have the other inputs in common: prepared through one [`Memo`], an input pipeline
//! with the same text is prepared once (its models loaded once) and retrieves each query once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferret_index::Index;

use crate::{Hit, Query, SearchError, Stage, Trace};

/// What a tuning run keeps between settings: the fusion inputs prepared so far, by their text.
#[derive(Default)]
pub struct Memo {
    inputs: Mutex<HashMap<String, Arc<Remembered>>>,
}

impl Memo {
    /// The prepared input pipeline `text` (canonical form), preparing it on first use.
    pub(crate) fn input(
        &self,
        text: String,
        prepare: impl FnOnce() -> Result<Box<dyn Stage>, SearchError>,
    ) -> Result<Box<dyn Stage>, SearchError> {
        let mut inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        let remembered = match inputs.get(&text) {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(Remembered {
                    stage: prepare()?,
                    rankings: Mutex::default(),
                });
                inputs.insert(text, r.clone());
                r
            }
        };
        Ok(Box::new(Shared(remembered)))
    }
}

/// An input stage and the rankings it returned, by query id, text and depth.
struct Remembered {
    stage: Box<dyn Stage>,
    rankings: Mutex<HashMap<(String, String, usize), Vec<Hit>>>,
}

struct Shared(Arc<Remembered>);

impl Stage for Shared {
    fn describe(&self) -> String {
        self.0.stage.describe()
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        // Only plain text queries without an incoming ranking are remembered; with explain on,
        // the input runs so that its stages are recorded.
        let plain = candidates.is_none()
            && query.sparse.is_none()
            && query.image.is_none()
            && query.feedback_contents.is_none()
            && !trace.is_on();
        if !plain {
            return self.0.stage.run(query, candidates, k, trace);
        }
        let key = (query.id.clone(), query.text.clone(), k);
        let rankings = || self.0.rankings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hits) = rankings().get(&key) {
            return Ok(hits.clone());
        }
        let hits = self.0.stage.run(query, None, k, trace)?;
        rankings().insert(key, hits.clone());
        Ok(hits)
    }
}

/// Prepares `text` (as [`crate::prepare`]) with the inputs of its fusion stages taken from, and
/// added to, `memo`.
pub fn prepare(text: &str, index: &Arc<Index>, memo: &Memo) -> Result<Box<dyn Stage>, SearchError> {
    let expr = crate::pipeline::parse_any(text)?;
    crate::registry::prepare_with(&expr, index, Some(memo)).map_err(|e| e.with_source_text(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferret_index::{Document, IndexOptions, IndexWriter};

    fn index(dir: &std::path::Path) -> Arc<Index> {
        let opts = IndexOptions {
            analyzer: "none".parse().unwrap(),
            threads: 1,
            ..IndexOptions::default()
        };
        let mut w = IndexWriter::create(dir, opts, false).unwrap();
        let words = ["cell", "gene", "tumor", "virus", "blood", "dose", "brain"];
        for i in 0..40usize {
            let text: Vec<&str> = (0..3 + i % 5).map(|j| words[(i * 3 + j * j) % 7]).collect();
            w.add(Document {
                id: format!("d{i}"),
                text: text.join(" "),
                ..Default::default()
            })
            .unwrap();
        }
        w.commit().unwrap();
        Arc::new(Index::open(dir).unwrap())
    }

    #[test]
    fn settings_share_their_inputs_and_rank_as_without_the_memo() {
        let dir = tempfile::tempdir().unwrap();
        let index = index(dir.path());
        let queries: Vec<Query> = ["cell gene", "virus blood", "brain dose tumor"]
            .iter()
            .enumerate()
            .map(|(i, t)| Query::new(format!("q{i}"), t.to_string()))
            .collect();
        let memo = Memo::default();
        for weights in ["1, 2", "2, 1", "0.5, 0"] {
            let text = format!("combsum(bm25 % 10, bm25(k1=2) % 10, weights=[{weights}])");
            let remembered = prepare(&text, &index, &memo).unwrap();
            let fresh = crate::prepare(&text, &index).unwrap();
            for q in &queries {
                let run = |s: &dyn Stage| s.run(q, None, 10, &mut Trace::off()).unwrap();
                assert_eq!(
                    run(remembered.as_ref()),
                    run(fresh.as_ref()),
                    "{text}, {}",
                    q.text
                );
            }
        }
        // Two inputs prepared once, each query retrieved once by each, over three settings.
        let inputs = memo.inputs.lock().unwrap();
        assert_eq!(inputs.len(), 2);
        for r in inputs.values() {
            assert_eq!(r.rankings.lock().unwrap().len(), queries.len());
        }
    }
}
