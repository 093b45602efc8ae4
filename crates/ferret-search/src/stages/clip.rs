//! `clip(model=…)`: text→image, image→image and image→text search with a CLIP model.
//!
//! The query is embedded by CLIP's image tower when it carries an image, by its text tower
//! otherwise; the documents searched are the index's image representation made with the model
//! (one embedding per document image), or — on an index of texts, such as captions — its dense
//! representation made with the same model's text tower. Scores are cosines. After `>>` it
//! rescores the incoming documents. `clipscore(w=2.5)` rescores candidate images by
//! CLIPScore = w·max(cos, 0) with the query text (Hessel et al., 2021).

use std::sync::Arc;

use ferret_index::image::ImageReader;
use ferret_index::Index;
use ferret_models::clip::ClipModel;

use crate::args::{Args, StageSpec};
use crate::stage::{rescore, Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

/// What a CLIP stage searches.
enum Target {
    /// The image representation made with this model.
    Images,
    /// The dense representation of the documents' texts made with this model's text tower.
    Texts,
}

/// A CLIP model bound to one of the index's representations.
pub(crate) struct Bound {
    index: Arc<Index>,
    model_id: String,
    model: Arc<ClipModel>,
    target: Target,
}

impl Bound {
    fn new(index: &Arc<Index>, requested: Option<&str>, at: usize) -> Result<Self, SearchError> {
        let requested = requested.map(crate::encoders::canonical_id);
        let (model_ref, target) = match index.representation::<ImageReader>("image", requested) {
            Ok(r) => (r.model().clone(), Target::Images),
            Err(image_err) => match index.dense(requested) {
                Ok(d) if d.params().encoder.as_deref() == Some("clip") => {
                    (d.model().clone(), Target::Texts)
                }
                _ => return Err(SearchError::at(at, image_err.to_string())),
            },
        };
        let resolved = ferret_models::source::resolve(&model_ref.id)
            .map_err(|e| SearchError::at(at, e.to_string()))?;
        if resolved.info.weights_sha256 != model_ref.weights_sha256 {
            return Err(SearchError::at(
                at,
                format!(
                    "{} resolves to weights {} but the index was encoded with {}",
                    model_ref.id, resolved.info.weights_sha256, model_ref.weights_sha256
                ),
            ));
        }
        let model = crate::encoders::clip(&resolved).map_err(|e| SearchError::at(at, e))?;
        Ok(Bound {
            index: index.clone(),
            model_id: model_ref.id,
            model,
            target,
        })
    }

    /// The query's unit-length embedding: its image if it has one, else its text.
    fn embed(&self, query: &Query) -> Result<Vec<f32>, SearchError> {
        let invalid = |e: ferret_models::ModelError| SearchError::Invalid(e.to_string());
        let v = match &query.image {
            Some(image) => {
                let rgb = image.decode(&query.id)?;
                self.model
                    .encode_images(&[&rgb])
                    .map_err(invalid)?
                    .remove(0)
            }
            None if query.text.trim().is_empty() => {
                return Err(SearchError::Invalid(format!(
                    "query '{}' has neither text nor an image",
                    query.id
                )))
            }
            None => self
                .model
                .encode_texts(&[&query.text])
                .map_err(invalid)?
                .remove(0),
        };
        Ok(unit(v))
    }

    /// Document `d`'s stored (unit-length) embedding, `None` without one.
    fn vector(&self, d: ferret_index::DocNo) -> Result<Option<Vec<f32>>, SearchError> {
        Ok(match self.target {
            Target::Images => self
                .index
                .representation::<ImageReader>("image", Some(&self.model_id))?
                .vector(d),
            Target::Texts => self
                .index
                .dense(Some(&self.model_id))?
                .vector(d)
                .map(|v| v.into_owned()),
        })
    }

    /// `candidates` reordered by `score` of each one's embedding (those without one last).
    fn rescore_with(
        &self,
        candidates: &[Hit],
        k: usize,
        score: impl Fn(&[f32]) -> f32,
    ) -> Result<Vec<Hit>, SearchError> {
        let scores = candidates
            .iter()
            .map(|h| {
                Ok((
                    h.doc,
                    self.vector(h.doc)?.map_or(f32::NEG_INFINITY, |v| score(&v)),
                ))
            })
            .collect::<Result<std::collections::HashMap<_, _>, SearchError>>()?;
        Ok(rescore(candidates, k, |d| scores[&d]))
    }

    fn search(&self, q: &[f32], k: usize) -> Result<Vec<Hit>, SearchError> {
        let docstore = self.index.docstore();
        let deleted = |d| docstore.is_deleted(d);
        let found = match self.target {
            Target::Images => self
                .index
                .representation::<ImageReader>("image", Some(&self.model_id))?
                .search(q, k, deleted),
            Target::Texts => self
                .index
                .dense(Some(&self.model_id))?
                .search(q, k, deleted),
        };
        Ok(found
            .into_iter()
            .map(|(doc, score)| Hit { doc, score })
            .collect())
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scaled to unit length (cosines by inner product).
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

pub struct Clip(Bound);

pub const SPEC: StageSpec = StageSpec {
    model_args: &["model"],
    ..StageSpec::plain(
        "clip",
        "CLIP search: a text or image query against the index's image embeddings (or its CLIP text embeddings); model optional when the index has one",
        build,
    )
};

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let requested = args.text("model")?;
    Ok(Box::new(Clip(Bound::new(
        index,
        requested.as_deref(),
        args.position(),
    )?)))
}

impl Stage for Clip {
    fn describe(&self) -> String {
        format!("clip(model={})", self.0.model_id)
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let q = self.0.embed(query)?;
        match candidates {
            None => self.0.search(&q, k),
            Some(c) => self.0.rescore_with(c, k, |v| dot(&q, v)),
        }
    }
}

/// `nullify(prompt="…", model=…)`: candidates rescored by the cosine of query and image after
/// removing the prompt's text direction from both ("Dissecting CLIP": what the prompt explains
/// no longer counts, e.g. the shared "a photo of" of a prompted collection).
pub struct Nullify {
    bound: Bound,
    prompt: String,
    direction: Vec<f32>,
}

pub const NULLIFY: StageSpec = StageSpec {
    needs_candidates: true,
    model_args: &["model"],
    ..StageSpec::plain(
        "nullify",
        "rerank candidate images by cosine with the query after removing a prompt's direction from both: prompt (text), model",
        build_nullify,
    )
};

fn build_nullify(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let at = args.position();
    let prompt = args
        .text("prompt")?
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            SearchError::at(
                at,
                "nullify needs prompt=\"…\" (the text whose direction is removed)",
            )
        })?;
    let requested = args.text("model")?;
    let bound = Bound::new(index, requested.as_deref(), at)?;
    let direction = unit(
        bound
            .model
            .encode_texts(&[&prompt])
            .map_err(|e| SearchError::at(at, e.to_string()))?
            .remove(0),
    );
    Ok(Box::new(Nullify {
        bound,
        prompt,
        direction,
    }))
}

impl Stage for Nullify {
    fn describe(&self) -> String {
        format!(
            "nullify(prompt={:?}, model={})",
            self.prompt, self.bound.model_id
        )
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        use crate::vision::schur::remove_direction;
        let candidates = candidates.unwrap_or(&[]);
        let q = unit(remove_direction(&self.bound.embed(query)?, &self.direction));
        self.bound.rescore_with(candidates, k, |v| {
            dot(&q, &unit(remove_direction(v, &self.direction)))
        })
    }
}

/// `clipscore(model=…, w=2.5)`: candidates rescored by CLIPScore with the query text.
pub struct ClipScore {
    bound: Bound,
    w: f32,
}

pub const CLIPSCORE: StageSpec = StageSpec {
    needs_candidates: true,
    model_args: &["model"],
    ..StageSpec::plain(
        "clipscore",
        "rerank candidate images by CLIPScore = w·max(cos, 0) with the query text (w=2.5)",
        build_clipscore,
    )
};

fn build_clipscore(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let w = args.number("w", 2.5)? as f32;
    let requested = args.text("model")?;
    Ok(Box::new(ClipScore {
        bound: Bound::new(index, requested.as_deref(), args.position())?,
        w,
    }))
}

/// CLIPScore of a cosine.
pub fn clipscore(w: f32, cosine: f32) -> f32 {
    w * cosine.max(0.0)
}

impl Stage for ClipScore {
    fn describe(&self) -> String {
        format!("clipscore(model={}, w={})", self.bound.model_id, self.w)
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let candidates = candidates.unwrap_or(&[]);
        let q = self.bound.embed(query)?;
        self.bound
            .rescore_with(candidates, k, |v| clipscore(self.w, dot(&q, v)))
    }
}
