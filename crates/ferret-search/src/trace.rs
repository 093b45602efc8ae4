//! What `--explain` shows: every stage a query went through, in the order they ran, with its
//! ranking and time.

use std::time::Instant;

use ferret_models::Cancel;
use serde::Serialize;

use crate::{Hit, Query, SearchError, Stage};

/// One stage's run for one query.
#[derive(Debug, Clone, Serialize)]
pub struct TraceEntry {
    /// The stage's text form.
    pub stage: String,
    /// Nesting depth in the pipeline tree (0 = the whole pipeline).
    pub depth: usize,
    /// How the stage combined its inputs, for fusion stages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    pub millis: f64,
    /// What the stage derived for this query (e.g. an expanded query).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip)]
    pub hits: Vec<Hit>,
    /// What the stage says about single hits (e.g. the terms that matched), for explain.
    #[serde(skip)]
    pub details: std::collections::HashMap<ferret_index::DocNo, serde_json::Value>,
}

/// How many of a stage's top hits it explains one by one.
pub const DETAILED_HITS: usize = 20;

/// Collects [`TraceEntry`]s while a query runs; does nothing when off. It also carries the
/// query's [`Cancel`]: every stage run through it is checked before and after, and stages with
/// long inner loops check [`Trace::cancel`] themselves.
#[derive(Debug, Default)]
pub struct Trace {
    enabled: bool,
    cancel: Cancel,
    /// Entries of the stages now running, innermost last.
    open: Vec<usize>,
    pub entries: Vec<TraceEntry>,
}

impl Trace {
    /// A trace that records nothing (batch runs without `--explain`).
    pub fn off() -> Self {
        Trace::default()
    }

    pub fn on() -> Self {
        Trace {
            enabled: true,
            ..Trace::default()
        }
    }

    /// This trace, stopping its query once `cancel` is set.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// [`SearchError::Cancelled`] once the query has been given up.
    pub fn check(&self) -> Result<(), SearchError> {
        if self.cancel.is_cancelled() {
            Err(SearchError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Runs `stage`, recording it (entries are in pre-order: a stage before its inputs). A
    /// cancelled query stops before the stage, and a stage that ended early because of it
    /// (rerankers keep the incoming order for what they did not reach) gives no ranking.
    /// Whether this trace records (explain is on).
    pub fn is_on(&self) -> bool {
        self.enabled
    }

    pub fn run(
        &mut self,
        stage: &dyn Stage,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        self.check()?;
        let result = self.run_recorded(stage, query, candidates, k);
        self.check()?;
        result
    }

    fn run_recorded(
        &mut self,
        stage: &dyn Stage,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        if !self.enabled {
            return stage.run(query, candidates, k, self);
        }
        let slot = self.entries.len();
        self.entries.push(TraceEntry {
            stage: stage.describe(),
            depth: self.open.len(),
            formula: stage.formula(),
            millis: 0.0,
            note: None,
            hits: Vec::new(),
            details: Default::default(),
        });
        self.open.push(slot);
        let start = Instant::now();
        let result = stage.run(query, candidates, k, self);
        self.open.pop();
        let entry = &mut self.entries[slot];
        entry.millis = start.elapsed().as_secs_f64() * 1e3;
        if let Ok(hits) = &result {
            entry.hits = hits.clone();
        }
        result
    }

    /// Attaches `note` to the innermost running stage (when tracing).
    pub fn note(&mut self, note: impl FnOnce() -> String) {
        if let Some(&slot) = self.open.last() {
            self.entries[slot].note = Some(note());
        }
    }

    /// Attaches per-hit details to the innermost running stage (when tracing).
    pub fn hit_details(
        &mut self,
        details: impl FnOnce() -> Vec<(ferret_index::DocNo, serde_json::Value)>,
    ) {
        if let Some(&slot) = self.open.last() {
            self.entries[slot].details = details().into_iter().collect();
        }
    }

    /// For `doc`: its (1-based rank, score, details) in each recorded stage's ranking, or
    /// `None` where that stage did not return it.
    pub fn positions(
        &self,
        doc: ferret_index::DocNo,
    ) -> Vec<Option<(usize, f32, Option<&serde_json::Value>)>> {
        self.entries
            .iter()
            .map(|e| {
                e.hits
                    .iter()
                    .position(|h| h.doc == doc)
                    .map(|i| (i + 1, e.hits[i].score, e.details.get(&doc)))
            })
            .collect()
    }
}

/// The explain record of one query: its stages (with timings and notes) and, for each of the
/// top `depth` hits, the rank and score every stage gave it.
pub fn explain_json(
    index: &ferret_index::Index,
    query: &Query,
    hits: &[Hit],
    trace: &Trace,
    depth: usize,
) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = hits
        .iter()
        .take(depth)
        .enumerate()
        .map(|(i, h)| {
            let stages: Vec<serde_json::Value> = trace
                .positions(h.doc)
                .into_iter()
                .map(|p| match p {
                    Some((rank, score, None)) => serde_json::json!({"rank": rank, "score": score}),
                    Some((rank, score, Some(detail))) => {
                        serde_json::json!({"rank": rank, "score": score, "detail": detail})
                    }
                    None => serde_json::Value::Null,
                })
                .collect();
            serde_json::json!({
                "rank": i + 1,
                "id": index.external_id(h.doc),
                "score": h.score,
                "stages": stages,
            })
        })
        .collect();
    serde_json::json!({
        "query_id": query.id,
        "query": query.text,
        "stages": trace.entries,
        "hits": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Then;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A stage that counts its runs and, when told to, cancels the query while it runs.
    struct Probe {
        runs: Arc<AtomicUsize>,
        cancels: Option<Cancel>,
    }

    impl Stage for Probe {
        fn describe(&self) -> String {
            "probe".into()
        }
        fn run(
            &self,
            _: &Query,
            _: Option<&[Hit]>,
            _: usize,
            _: &mut Trace,
        ) -> Result<Vec<Hit>, SearchError> {
            self.runs.fetch_add(1, Ordering::Relaxed);
            if let Some(c) = &self.cancels {
                c.cancel();
            }
            Ok(vec![Hit { doc: 0, score: 1.0 }])
        }
    }

    fn probe(runs: &Arc<AtomicUsize>, cancels: Option<&Cancel>) -> Box<dyn Stage> {
        Box::new(Probe {
            runs: runs.clone(),
            cancels: cancels.cloned(),
        })
    }

    #[test]
    fn a_cancelled_query_stops_at_the_next_stage() {
        let query = Query::new("q", "text");
        for enabled in [false, true] {
            let cancel = Cancel::until(None);
            let runs = Arc::new(AtomicUsize::new(0));
            // The first stage cancels the query: the second never runs, and the pipeline
            // gives no ranking.
            let pipeline = Then {
                first: probe(&runs, Some(&cancel)),
                then: probe(&runs, None),
            };
            let trace = if enabled { Trace::on() } else { Trace::off() };
            let mut trace = trace.with_cancel(cancel.clone());
            let result = trace.run(&pipeline, &query, None, 10);
            assert!(matches!(result, Err(SearchError::Cancelled)));
            assert_eq!(runs.load(Ordering::Relaxed), 1);
            // Once cancelled, nothing more runs.
            assert!(matches!(
                trace.run(&pipeline, &query, None, 10),
                Err(SearchError::Cancelled)
            ));
            assert_eq!(runs.load(Ordering::Relaxed), 1);
        }
        // Without a cancellation the same pipeline runs both stages.
        let runs = Arc::new(AtomicUsize::new(0));
        let pipeline = Then {
            first: probe(&runs, None),
            then: probe(&runs, None),
        };
        assert_eq!(
            Trace::off().run(&pipeline, &query, None, 10).unwrap().len(),
            1
        );
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    }
}
