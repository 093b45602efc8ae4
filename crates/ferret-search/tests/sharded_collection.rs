//! A collection split into three shards scores exactly as one index over all its documents
//! once every shard uses the collection's summed lexical statistics: BM25 merged from the
//! shards, RM3 whose feedback documents come from other shards, and fusion over merged
//! rankings (the pieces `ferret.ray`'s router puts together).

use std::collections::HashMap;
use std::sync::Arc;

use ferret_index::{Document, Index, IndexOptions, IndexWriter, LexicalStatistics};
use ferret_search::{registry, Hit, Query, Trace};

const WORDS: &[&str] = &[
    "cell", "protein", "gene", "tumor", "immune", "virus", "insulin", "brain", "heart", "blood",
    "receptor", "kinase", "mouse", "human", "therapy", "dose",
];

/// Document i: a deterministic mix of words, lengths 3..=14.
fn text(i: usize) -> String {
    let n = 3 + (i * 7) % 12;
    (0..n)
        .map(|j| WORDS[(i * 5 + j * j * 3 + j) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn build(dir: &std::path::Path, docs: &[usize], shard: Option<(u32, u32)>) -> Arc<Index> {
    let opts = IndexOptions {
        analyzer: "none".parse().unwrap(),
        threads: 1,
        ..IndexOptions::default()
    };
    let mut w = IndexWriter::create(dir, opts, false).unwrap();
    if let Some((id, count)) = shard {
        w.set_shard(id, count).unwrap();
    }
    for &i in docs {
        w.add(Document {
            id: format!("d{i}"),
            text: text(i),
            ..Default::default()
        })
        .unwrap();
    }
    w.commit().unwrap();
    Arc::new(Index::open(dir).unwrap())
}

fn stats(index: &Index) -> LexicalStatistics {
    LexicalStatistics::of(index.lexical().unwrap(), index.docstore().num_live() as u64).unwrap()
}

/// (external id, score), best first; equal scores ordered by id (shards break ties apart).
fn by_id(index_of: impl Fn(&Hit) -> String, hits: &[Hit]) -> Vec<(String, f32)> {
    let mut v: Vec<(String, f32)> = hits.iter().map(|h| (index_of(h), h.score)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn assert_same(a: &[(String, f32)], b: &[(String, f32)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (x, y) in a.iter().zip(b) {
        assert!(
            x.0 == y.0 && (x.1 - y.1).abs() < 1e-5,
            "{what}: {x:?} vs {y:?}"
        );
    }
}

#[test]
fn shards_with_collection_statistics_score_as_one_index() {
    let tmp = tempfile::tempdir().unwrap();
    let all: Vec<usize> = (0..60).collect();
    let whole = build(&tmp.path().join("whole"), &all, None);
    let shards: Vec<Arc<Index>> = (0..3u32)
        .map(|s| {
            let docs: Vec<usize> = all
                .iter()
                .copied()
                .filter(|i| i % 3 == s as usize)
                .collect();
            build(&tmp.path().join(format!("s{s}")), &docs, Some((s, 3)))
        })
        .collect();
    assert_eq!(shards[1].manifest().shard.id, 1);
    assert_eq!(shards[1].manifest().shard.count, 3);

    let summed =
        LexicalStatistics::sum(&shards.iter().map(|s| stats(s)).collect::<Vec<_>>()).unwrap();
    assert_eq!(summed, stats(&whole));
    let summed = Arc::new(summed);
    for s in &shards {
        s.lexical()
            .unwrap()
            .use_collection_statistics(summed.clone())
            .unwrap();
    }
    let err = shards[0]
        .lexical()
        .unwrap()
        .use_collection_statistics(summed.clone())
        .unwrap_err();
    assert!(err.contains("already set"), "{err}");

    let query = Query::new("q", "protein kinase tumor");
    let run = |index: &Arc<Index>, pipeline: &str, q: &Query, cands: Option<&[Hit]>, k| {
        ferret_search::prepare(pipeline, index)
            .unwrap()
            .run(q, cands, k, &mut Trace::off())
            .unwrap()
    };
    // The shards' BM25 rankings merged: (shard, hit).
    let merged = |pipeline: &str, k: usize| {
        let mut m: Vec<(usize, Hit)> = shards
            .iter()
            .enumerate()
            .flat_map(|(s, idx)| {
                run(idx, pipeline, &query, None, k)
                    .into_iter()
                    .map(move |h| (s, h))
            })
            .collect();
        m.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
        m.truncate(k);
        m
    };
    let id_of = |(s, h): &(usize, Hit)| shards[*s].external_id(h.doc).to_string();
    let whole_bm25 = run(&whole, "bm25", &query, None, 60);
    let sharded = merged("bm25", 60);
    let keyed: Vec<Hit> = sharded
        .iter()
        .enumerate()
        .map(|(i, (_, h))| Hit {
            doc: i as u32,
            score: h.score,
        })
        .collect();
    let ids: Vec<String> = sharded.iter().map(id_of).collect();
    assert_same(
        &by_id(|h| whole.external_id(h.doc).to_string(), &whole_bm25),
        &by_id(|h| ids[h.doc as usize].clone(), &keyed),
        "bm25",
    );

    // RM3: the feedback documents' contents travel with the query; every shard expands the
    // same way and searches its own documents.
    let rm3 = "rm3(fb_docs=4, fb_terms=5, filter=0)";
    let whole_rm3 = run(&whole, &format!("bm25 >> {rm3}"), &query, None, 60);
    assert!(
        ferret_search::prepare(rm3, &shards[0]).is_err(),
        "rm3 alone needs an incoming ranking"
    );
    let mut fed = query.clone();
    fed.feedback_contents = Some(Arc::new(
        (0..4)
            .map(|i| {
                let (s, h) = &sharded[i];
                (i as u32, shards[*s].document(h.doc).unwrap().contents())
            })
            .collect::<HashMap<_, _>>(),
    ));
    let mut sharded_rm3: Vec<(String, f32)> = Vec::new();
    for s in &shards {
        let stage = prepare_fed(rm3, s);
        assert_eq!(stage.feedback_positions(60), Some(vec![0, 1, 2, 3]));
        for h in stage
            .run(&fed, Some(&keyed), 60, &mut Trace::off())
            .unwrap()
        {
            sharded_rm3.push((s.external_id(h.doc).to_string(), h.score));
        }
    }
    sharded_rm3.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sharded_rm3.truncate(60);
    assert_same(
        &by_id(|h| whole.external_id(h.doc).to_string(), &whole_rm3),
        &sharded_rm3,
        "rm3",
    );

    // A feedback document without its contents is an error, not this shard's document.
    let mut missing = query.clone();
    missing.feedback_contents = Some(Arc::new(HashMap::new()));
    let err = prepare_fed(rm3, &shards[0])
        .run(&missing, Some(&keyed), 10, &mut Trace::off())
        .unwrap_err();
    assert!(err.to_string().contains("without its contents"), "{err}");

    // Fusion over the merged rankings equals fusion on the whole index.
    let fusion = "rrf(bm25 % 20, bm25(k1=1.5, b=0.9) % 20, k=60)";
    let whole_rrf = run(&whole, fusion, &query, None, 20);
    let second = merged("bm25(k1=1.5, b=0.9)", 20);
    let mut table: Vec<String> = ids[..20].to_vec();
    let mut key = |id: String| match table.iter().position(|t| *t == id) {
        Some(i) => i as u32,
        None => {
            table.push(id);
            (table.len() - 1) as u32
        }
    };
    let first_ranking: Vec<Hit> = keyed[..20].to_vec();
    let second_ranking: Vec<Hit> = second
        .iter()
        .map(|p| Hit {
            doc: key(id_of(p)),
            score: p.1.score,
        })
        .collect();
    let expr = ferret_search::pipeline::parse(fusion).unwrap();
    let err = registry::prepare_combination(&expr, &shards[0], vec![vec![]])
        .err()
        .unwrap();
    assert!(err.to_string().contains("2 inputs but 1"), "{err}");
    let fused =
        registry::prepare_combination(&expr, &shards[0], vec![first_ranking, second_ranking])
            .unwrap()
            .run(&query, None, 20, &mut Trace::off())
            .unwrap();
    assert_same(
        &by_id(|h| whole.external_id(h.doc).to_string(), &whole_rrf),
        &by_id(|h| table[h.doc as usize].clone(), &fused),
        "rrf",
    );
}

/// Prepares `text` as the right side of `>>` (what a shard does for the router).
fn prepare_fed(text: &str, index: &Arc<Index>) -> Box<dyn ferret_search::Stage> {
    registry::prepare_fed(&ferret_search::pipeline::parse(text).unwrap(), index).unwrap()
}
