//! The measures, one small function each, with trec_eval's exact definitions.
//!
//! Conventions shared by every measure (as in trec_eval 9.x, `te_form_res_rels`):
//! * a query's retrieved documents are sorted by score descending, ties broken by document id
//!   in *descending* byte order (trec_eval's `comp_sim_docno`); the rank column is ignored;
//! * a document is relevant when its judgement is `>= rel` (the `-l` level, default 1);
//!   unjudged documents are non-relevant;
//! * `R` is the number of relevant documents judged for the query, retrieved or not;
//! * a measure whose denominator is zero is 0.

use std::fmt;

use crate::EvalError;

/// What a measure computes; see [`Measure`] for the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeasureKind {
    /// `P@k` (trec_eval `P_k`): relevant in the top k / k. Fewer than k retrieved still divides by k.
    Precision,
    /// `R@k` (trec_eval `recall_k`): relevant in the top k / R.
    Recall,
    /// `nDCG` / `nDCG@k` (trec_eval `ndcg`, `ndcg_cut_k`): Σ gain_i / log2(i + 1) over ranks
    /// i ≤ k, divided by the same sum over the ideal ordering of *all* judged documents (also cut
    /// at k). The gain is the judgement itself (graded); judgements ≤ 0 give no gain. The
    /// relevance level does not apply.
    Ndcg,
    /// `AP` / `AP@k` (trec_eval `map`, `map_cut_k`): Σ over relevant documents at rank i ≤ k of
    /// precision@i, divided by R.
    AveragePrecision,
    /// `RR` / `RR@k` (trec_eval `recip_rank`; `RR@k` is recip_rank over the top k):
    /// 1 / rank of the first relevant document.
    ReciprocalRank,
    /// `Rprec`: relevant in the top R / R.
    RPrecision,
    /// `Bpref` (trec_eval `bpref`): (1/R) Σ over relevant retrieved documents d of
    /// 1 − min(n_d, R) / min(N, R), where n_d counts the judged non-relevant documents ranked
    /// above d and N all judged non-relevant documents (judgement in 0..rel). Unjudged documents
    /// are skipped. A relevant document with no judged non-relevant above it scores 1.
    Bpref,
    /// `Success@k` (trec_eval `success_k`): 1 when a relevant document is in the top k.
    Success,
    /// `Judged@k` (ir_measures' definition; trec_eval has none): judged documents in the top k /
    /// min(k, retrieved). Following ir_measures, ties are broken by document id *ascending* here.
    Judged,
}

/// One measure with its cut-off and optional relevance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Measure {
    pub kind: MeasureKind,
    pub cutoff: Option<usize>,
    /// Relevance level for binary measures; `None` uses the evaluation's level (`-l`).
    pub rel: Option<i32>,
}

impl Measure {
    fn new(kind: MeasureKind, cutoff: Option<usize>, rel: Option<i32>) -> Self {
        Measure { kind, cutoff, rel }
    }

    /// Parses one measure name, in ir_measures style (`nDCG@10`, `P(rel=2)@5`, `AP`, `RR@10`,
    /// `MRR@10`, `R@100`) or trec_eval style (`ndcg_cut.10`, `ndcg_cut_10`, `P.5,10`, `map`,
    /// `recip_rank`, `Rprec`, `bpref`, `success.1`). A trec_eval name with a list of cut-offs
    /// (`P.5,10`) yields one measure per cut-off.
    pub fn parse_list(name: &str) -> Result<Vec<Measure>, EvalError> {
        let unknown = || EvalError::UnknownMeasure(name.to_string());
        let name = name.trim();
        if name.is_empty() {
            return Err(unknown());
        }
        // ir_measures style: Base[(rel=N)][@k]
        if let Some((base, rest)) = split_at_param_or_cutoff(name) {
            let (rel, cutoff) = parse_ir_measures_suffix(rest).ok_or_else(unknown)?;
            let kind = kind_from_name(base).ok_or_else(unknown)?;
            return Ok(vec![check(Measure::new(kind, cutoff, rel), name)?]);
        }
        // trec_eval style: base, base.k[,k...], base_k
        let (base, cutoffs) = if let Some((b, list)) = name.split_once('.') {
            let cutoffs = list
                .split(',')
                .map(|c| c.trim().parse::<usize>().map(Some).map_err(|_| unknown()))
                .collect::<Result<Vec<_>, _>>()?;
            (b, cutoffs)
        } else if let Some((b, k)) = name
            .rsplit_once('_')
            .filter(|(_, k)| k.chars().all(|c| c.is_ascii_digit()) && !k.is_empty())
        {
            (b, vec![Some(k.parse::<usize>().map_err(|_| unknown())?)])
        } else {
            (name, vec![None])
        };
        let kind = kind_from_name(base).ok_or_else(unknown)?;
        cutoffs
            .into_iter()
            .map(|c| check(Measure::new(kind, c, None), name))
            .collect()
    }

    /// Parses several names (each may expand to several measures), keeping order and
    /// dropping duplicates.
    pub fn parse_all<S: AsRef<str>>(names: &[S]) -> Result<Vec<Measure>, EvalError> {
        let mut out: Vec<Measure> = Vec::new();
        for n in names {
            for m in Measure::parse_list(n.as_ref())? {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// The measure's value for one query.
    pub fn compute(&self, q: &JudgedRanking, default_rel: i32) -> f64 {
        let rel = self.rel.unwrap_or(default_rel);
        let k = self.cutoff;
        match self.kind {
            MeasureKind::Precision => precision(q, rel, k.unwrap_or(usize::MAX)),
            MeasureKind::Recall => recall(q, rel, k.unwrap_or(usize::MAX)),
            MeasureKind::Ndcg => ndcg(q, k.unwrap_or(usize::MAX)),
            MeasureKind::AveragePrecision => average_precision(q, rel, k.unwrap_or(usize::MAX)),
            MeasureKind::ReciprocalRank => reciprocal_rank(q, rel, k.unwrap_or(usize::MAX)),
            MeasureKind::RPrecision => r_precision(q, rel),
            MeasureKind::Bpref => bpref(q, rel),
            MeasureKind::Success => success(q, rel, k.unwrap_or(usize::MAX)),
            MeasureKind::Judged => judged(q, k.unwrap_or(usize::MAX)),
        }
    }
}

fn check(m: Measure, name: &str) -> Result<Measure, EvalError> {
    let needs_cutoff = matches!(
        m.kind,
        MeasureKind::Precision | MeasureKind::Recall | MeasureKind::Success
    );
    let takes_cutoff = !matches!(m.kind, MeasureKind::RPrecision | MeasureKind::Bpref);
    match m.cutoff {
        Some(0) => Err(EvalError::Invalid(format!(
            "measure '{name}': the cut-off must be at least 1"
        ))),
        None if needs_cutoff => Err(EvalError::Invalid(format!(
            "measure '{name}' needs a cut-off, e.g. '{name}@10'"
        ))),
        Some(_) if !takes_cutoff => Err(EvalError::Invalid(format!(
            "measure '{name}' takes no cut-off"
        ))),
        _ => Ok(m),
    }
}

fn split_at_param_or_cutoff(name: &str) -> Option<(&str, &str)> {
    let i = name.find(['@', '('])?;
    Some((&name[..i], &name[i..]))
}

fn parse_ir_measures_suffix(rest: &str) -> Option<(Option<i32>, Option<usize>)> {
    let mut rel = None;
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix('(') {
        let (inside, after) = r.split_once(')')?;
        let (key, value) = inside.split_once('=')?;
        if key.trim() != "rel" {
            return None;
        }
        rel = Some(value.trim().parse().ok()?);
        rest = after;
    }
    let cutoff = match rest.strip_prefix('@') {
        Some(k) => Some(k.parse().ok()?),
        None if rest.is_empty() => None,
        None => return None,
    };
    Some((rel, cutoff))
}

fn kind_from_name(base: &str) -> Option<MeasureKind> {
    use MeasureKind::*;
    Some(match base.to_ascii_lowercase().as_str() {
        "p" | "precision" => Precision,
        "r" | "recall" => Recall,
        "ndcg" | "ndcg_cut" => Ndcg,
        "ap" | "map" | "map_cut" => AveragePrecision,
        "rr" | "mrr" | "recip_rank" => ReciprocalRank,
        "rprec" => RPrecision,
        "bpref" => Bpref,
        "success" => Success,
        "judged" => Judged,
        _ => return None,
    })
}

impl fmt::Display for Measure {
    /// Canonical ir_measures-style name, e.g. `nDCG@10`, `P(rel=2)@5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = match self.kind {
            MeasureKind::Precision => "P",
            MeasureKind::Recall => "R",
            MeasureKind::Ndcg => "nDCG",
            MeasureKind::AveragePrecision => "AP",
            MeasureKind::ReciprocalRank => "RR",
            MeasureKind::RPrecision => "Rprec",
            MeasureKind::Bpref => "Bpref",
            MeasureKind::Success => "Success",
            MeasureKind::Judged => "Judged",
        };
        f.write_str(base)?;
        if let Some(rel) = self.rel {
            write!(f, "(rel={rel})")?;
        }
        if let Some(k) = self.cutoff {
            write!(f, "@{k}")?;
        }
        Ok(())
    }
}

/// One query's ranking joined with its judgements: what every measure reads.
#[derive(Debug, Clone)]
pub struct JudgedRanking {
    /// Judgement of each retrieved document in trec_eval order; `None` = unjudged.
    pub rels: Vec<Option<i32>>,
    /// Same, in ir_measures order (ties by id ascending); only filled when Judged@k is asked for.
    pub rels_id_ascending: Vec<Option<i32>>,
    /// All judgements of the query (retrieved or not).
    pub judgements: Vec<i32>,
}

impl JudgedRanking {
    fn num_rel(&self, rel: i32) -> usize {
        self.judgements.iter().filter(|&&r| r >= rel).count()
    }

    fn relevant_in_top(&self, rel: i32, k: usize) -> usize {
        self.rels
            .iter()
            .take(k)
            .filter(|r| r.is_some_and(|r| r >= rel))
            .count()
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

fn precision(q: &JudgedRanking, rel: i32, k: usize) -> f64 {
    ratio(q.relevant_in_top(rel, k) as f64, k as f64)
}

fn recall(q: &JudgedRanking, rel: i32, k: usize) -> f64 {
    ratio(q.relevant_in_top(rel, k) as f64, q.num_rel(rel) as f64)
}

fn success(q: &JudgedRanking, rel: i32, k: usize) -> f64 {
    if q.relevant_in_top(rel, k) > 0 {
        1.0
    } else {
        0.0
    }
}

fn r_precision(q: &JudgedRanking, rel: i32) -> f64 {
    let r = q.num_rel(rel);
    ratio(q.relevant_in_top(rel, r) as f64, r as f64)
}

fn average_precision(q: &JudgedRanking, rel: i32, k: usize) -> f64 {
    let mut found = 0usize;
    let mut sum = 0.0;
    for (i, r) in q.rels.iter().take(k).enumerate() {
        if r.is_some_and(|r| r >= rel) {
            found += 1;
            sum += found as f64 / (i + 1) as f64;
        }
    }
    ratio(sum, q.num_rel(rel) as f64)
}

fn reciprocal_rank(q: &JudgedRanking, rel: i32, k: usize) -> f64 {
    q.rels
        .iter()
        .take(k)
        .position(|r| r.is_some_and(|r| r >= rel))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

fn ndcg(q: &JudgedRanking, k: usize) -> f64 {
    let gain = |r: i32| if r > 0 { r as f64 } else { 0.0 };
    let dcg: f64 = q
        .rels
        .iter()
        .take(k)
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| gain(r) / ((i + 2) as f64).log2()))
        .sum();
    let mut ideal: Vec<f64> = q
        .judgements
        .iter()
        .map(|&r| gain(r))
        .filter(|&g| g > 0.0)
        .collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| g / ((i + 2) as f64).log2())
        .sum();
    ratio(dcg, idcg)
}

fn bpref(q: &JudgedRanking, rel: i32) -> f64 {
    let num_rel = q.num_rel(rel);
    let num_nonrel = q
        .judgements
        .iter()
        .filter(|&&r| (0..rel).contains(&r))
        .count();
    let bound = num_nonrel.min(num_rel) as f64;
    let mut nonrel_so_far = 0usize;
    let mut sum = 0.0;
    for r in q.rels.iter().flatten() {
        if (0..rel).contains(r) {
            nonrel_so_far += 1;
        } else if *r >= rel {
            sum += if nonrel_so_far > 0 {
                1.0 - nonrel_so_far.min(num_rel) as f64 / bound
            } else {
                1.0
            };
        }
    }
    ratio(sum, num_rel as f64)
}

fn judged(q: &JudgedRanking, k: usize) -> f64 {
    let top = &q.rels_id_ascending[..k.min(q.rels_id_ascending.len())];
    ratio(
        top.iter().filter(|r| r.is_some()).count() as f64,
        top.len() as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        Measure::parse_all(list)
            .unwrap()
            .iter()
            .map(|m| m.to_string())
            .collect()
    }

    #[test]
    fn parses_both_naming_styles() {
        assert_eq!(
            names(&[
                "ndcg_cut.10",
                "nDCG@10",
                "ndcg_cut_10",
                "P.5,10",
                "map",
                "AP@100"
            ]),
            ["nDCG@10", "P@5", "P@10", "AP", "AP@100"]
        );
        assert_eq!(
            names(&[
                "recip_rank",
                "MRR@10",
                "Rprec",
                "bpref",
                "success.1",
                "Judged@10"
            ]),
            ["RR", "RR@10", "Rprec", "Bpref", "Success@1", "Judged@10"]
        );
        assert_eq!(
            names(&["P(rel=2)@5", "recall_100"]),
            ["P(rel=2)@5", "R@100"]
        );
        assert!(Measure::parse_list("ndcg@x").is_err());
        assert!(Measure::parse_list("foo").is_err());
        assert!(Measure::parse_list("P").is_err());
        assert!(Measure::parse_list("P@0").is_err());
        assert!(Measure::parse_list("Rprec@5").is_err());
    }

    fn ranking(rels: &[Option<i32>], judgements: &[i32]) -> JudgedRanking {
        JudgedRanking {
            rels: rels.to_vec(),
            rels_id_ascending: rels.to_vec(),
            judgements: judgements.to_vec(),
        }
    }

    #[test]
    fn hand_computed_values() {
        // Ranking: rel, unjudged, nonrel, rel; 3 relevant judged in total, 2 non-relevant.
        let q = ranking(&[Some(1), None, Some(0), Some(2)], &[1, 2, 1, 0, 0]);
        let m = |s: &str| Measure::parse_list(s).unwrap()[0].compute(&q, 1);
        assert_eq!(m("P@2"), 0.5);
        assert_eq!(m("P@10"), 0.2);
        assert!((m("R@4") - 2.0 / 3.0).abs() < 1e-12);
        assert!((m("AP") - (1.0 + 2.0 / 4.0) / 3.0).abs() < 1e-12);
        assert_eq!(m("RR"), 1.0);
        assert!((m("Rprec") - 1.0 / 3.0).abs() < 1e-12);
        // bpref: first rel has no nonrel above (1), second has 1 nonrel above: 1 - 1/min(2,3).
        assert!((m("Bpref") - (1.0 + 0.5) / 3.0).abs() < 1e-12);
        assert_eq!(m("Judged@2"), 0.5);
        // nDCG@4: dcg = 1/log2(2) + 2/log2(5); ideal = 2, 1, 1.
        let dcg = 1.0 + 2.0 / 5f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((m("nDCG@4") - dcg / idcg).abs() < 1e-12);
        // With rel level 2 only the grade-2 document counts.
        assert_eq!(Measure::parse_list("RR").unwrap()[0].compute(&q, 2), 0.25);
    }
}
