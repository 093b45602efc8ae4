//! Document encoders for index writers: model ids resolved and loaded through ferret-models,
//! handed to `ferret-index` (which never loads a model) as [`EncoderSource`]. One loader per
//! representation kind in [`LOADERS`].

use std::sync::Arc;

use ferret_index::dense::DenseOptions;
use ferret_index::sparse::SparseOptions;
use ferret_index::{
    DenseEncoder, DocumentEncoder, EncoderSource, ImageEncoder, ModelRef, SparseEncoder,
    TokenEncoder, TokenOptions, TokenRows,
};
use ferret_models::clip::ClipModel;
use ferret_models::promptreps::{PromptReps, PromptRepsRun, Side};
use ferret_models::source::ResolvedModel;
use ferret_models::splade::{SpladeEncoder, SpladeRun};
use ferret_models::SentenceEncoder;

type Loader = fn(&ResolvedModel, &serde_json::Value) -> Result<DocumentEncoder, String>;

/// Representation kind → how its document encoder is loaded.
const LOADERS: &[(&str, Loader)] = &[
    ("dense", load_dense),
    ("sparse", load_sparse),
    ("image", load_image),
    ("tokens", load_tokens),
];

/// Models from ferret-models' sources (local folders, caches, the Hub, PyPI wheels).
pub struct ModelEncoders;

impl ModelEncoders {
    pub fn shared() -> Arc<dyn EncoderSource> {
        Arc::new(ModelEncoders)
    }
}

/// The canonical id of a model id, alias or folder (ids and folders as they are).
pub fn canonical_id(model: &str) -> &str {
    ferret_models::source::known(model).map_or(model, |k| k.id)
}

impl EncoderSource for ModelEncoders {
    fn model_ref(&self, _kind: &str, model: &str) -> Result<ModelRef, String> {
        let r = ferret_models::source::resolve(model).map_err(|e| e.to_string())?;
        Ok(ModelRef {
            id: r.info.id,
            weights_sha256: r.info.weights_sha256,
        })
    }

    fn document_encoder(
        &self,
        kind: &str,
        model: &str,
        params: &serde_json::Value,
    ) -> Result<(ModelRef, DocumentEncoder), String> {
        let (_, load) = LOADERS
            .iter()
            .find(|(k, _)| *k == kind)
            .ok_or_else(|| format!("no document encoder for {kind} representations"))?;
        let r = ferret_models::source::resolve(model).map_err(|e| e.to_string())?;
        let encoder = load(&r, params)?;
        Ok((
            ModelRef {
                id: r.info.id,
                weights_sha256: r.info.weights_sha256,
            },
            encoder,
        ))
    }
}

/// A sentence encoder with the document prefix and Matryoshka size its representation uses.
struct Sentences {
    encoder: Arc<SentenceEncoder>,
    prefix: String,
    dims: Option<usize>,
}

impl DenseEncoder for Sentences {
    fn dim(&self) -> usize {
        self.dims.unwrap_or(self.encoder.dim())
    }
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.encoder
            .encode_dims(texts, &self.prefix, self.dims)
            .map_err(|e| e.to_string())
    }
}

/// Refuses Matryoshka truncation and int8 for encoders other than sentence encoders.
fn no_dims(options: &DenseOptions, what: &str) -> Result<(), String> {
    if options.int8 {
        return Err(format!("int8 applies to sentence encoders, not to {what}"));
    }
    match options.dims {
        Some(d) => Err(format!(
            "dims {d}: Matryoshka truncation applies to sentence encoders, not to {what}"
        )),
        None => Ok(()),
    }
}

fn load_dense(r: &ResolvedModel, params: &serde_json::Value) -> Result<DocumentEncoder, String> {
    let options: DenseOptions =
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())?;
    if encoder_kind(options.encoder.as_deref())? == Encoder::Clip {
        no_dims(&options, "CLIP")?;
        return Ok(DocumentEncoder::Dense(Arc::new(ClipTexts(clip(r)?))));
    }
    if is_promptreps(options.encoder.as_deref())? {
        no_dims(&options, "PromptReps")?;
        let run = promptreps_run(Side::Passage, options.document_max_length, None);
        return Ok(DocumentEncoder::Dense(Arc::new(PromptRepsDense {
            model: promptreps(r)?,
            run,
        })));
    }
    let encoder =
        ferret_models::sentence::shared_with(&r.dir, options.int8).map_err(|e| e.to_string())?;
    if let Some(d) = options.dims {
        encoder.check_dims(d).map_err(|e| e.to_string())?;
    }
    let prefix = options
        .document_prefix
        .unwrap_or_else(|| encoder.document_prefix.clone());
    Ok(DocumentEncoder::Dense(Arc::new(Sentences {
        encoder,
        prefix,
        dims: options.dims,
    })))
}

/// CLIP's image tower.
struct ClipImages(Arc<ClipModel>);

impl ImageEncoder for ClipImages {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn encode(&self, images: &[&ferret_image::RgbImage]) -> Result<Vec<Vec<f32>>, String> {
        self.0.encode_images(images).map_err(|e| e.to_string())
    }
}

/// The CLIP model of a resolved folder (an error saying so when it is something else).
pub fn clip(r: &ResolvedModel) -> Result<Arc<ClipModel>, String> {
    if !ferret_models::clip::is_clip(&r.dir) {
        return Err(format!(
            "{} is not a CLIP checkpoint (its config.json names no CLIPModel)",
            r.info.id
        ));
    }
    ferret_models::clip::shared(&r.dir).map_err(|e| e.to_string())
}

/// CLIP's text tower, vectors scaled to unit length (as the image representation's).
pub struct ClipTexts(pub Arc<ClipModel>);

impl DenseEncoder for ClipTexts {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let v = self.0.encode_texts(texts).map_err(|e| e.to_string())?;
        Ok(v.into_iter().map(crate::stages::clip::unit).collect())
    }
}

fn load_image(r: &ResolvedModel, _params: &serde_json::Value) -> Result<DocumentEncoder, String> {
    Ok(DocumentEncoder::Image(Arc::new(ClipImages(clip(r)?))))
}

/// A SPLADE model run with a representation's settings, for documents or queries.
struct Splade {
    encoder: Arc<SpladeEncoder>,
    run: SpladeRun,
}

impl SparseEncoder for Splade {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<(String, f32)>>, String> {
        self.encoder
            .encode(texts, &self.run)
            .map_err(|e| e.to_string())
    }
}

/// The sparse encoder of a sparse representation (SPLADE or PromptReps, by its options), for
/// its documents (`query` false) or queries.
pub fn sparse_encoder(
    r: &ResolvedModel,
    options: &SparseOptions,
    query: bool,
) -> Result<Arc<dyn SparseEncoder>, String> {
    if is_promptreps(options.encoder.as_deref())? {
        let (side, max_length, top) = if query {
            (
                Side::Query,
                options.query_max_length,
                options.query_top_terms,
            )
        } else {
            (
                Side::Passage,
                options.document_max_length,
                options.document_top_terms,
            )
        };
        return Ok(Arc::new(PromptRepsSparse {
            model: promptreps(r)?,
            run: promptreps_run(side, max_length, top),
        }));
    }
    Ok(Arc::new(splade(r, options, query)?))
}

/// The SPLADE model of a sparse representation, for its documents (`query` false) or queries.
fn splade(r: &ResolvedModel, options: &SparseOptions, query: bool) -> Result<Splade, String> {
    let encoder = ferret_models::splade::shared(&r.dir).map_err(|e| e.to_string())?;
    let pooling = options.pooling.as_deref().unwrap_or("max").parse()?;
    let (max_length, top_terms) = if query {
        (options.query_max_length, options.query_top_terms)
    } else {
        (options.document_max_length, options.document_top_terms)
    };
    Ok(Splade {
        run: SpladeRun {
            max_length: max_length.unwrap_or(encoder.max_tokens()),
            top_terms,
            pooling,
        },
        encoder,
    })
}

fn load_sparse(r: &ResolvedModel, params: &serde_json::Value) -> Result<DocumentEncoder, String> {
    let options: SparseOptions =
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())?;
    Ok(DocumentEncoder::Sparse(sparse_encoder(r, &options, false)?))
}

/// Whether a representation's `encoder` option names PromptReps (absent: the kind's usual
/// encoder).
pub fn is_promptreps(encoder: Option<&str>) -> Result<bool, String> {
    Ok(encoder_kind(encoder)? == Encoder::PromptReps)
}

/// The encoder a representation's options name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// The kind's usual one (a sentence encoder for dense, SPLADE for sparse).
    Usual,
    PromptReps,
    /// CLIP's text tower (dense texts searched by CLIP queries).
    Clip,
}

pub fn encoder_kind(encoder: Option<&str>) -> Result<Encoder, String> {
    match encoder {
        None => Ok(Encoder::Usual),
        Some("promptreps") => Ok(Encoder::PromptReps),
        Some("clip") => Ok(Encoder::Clip),
        Some(other) => Err(format!(
            "unknown encoder '{other}' (promptreps, clip, or none for the kind's usual encoder)"
        )),
    }
}

/// PromptReps' defaults where a representation leaves them open: passages cut at 512 tokens
/// and queries at 64, at most 128 terms (the authors' settings).
pub fn promptreps_run(side: Side, max_length: Option<usize>, top: Option<usize>) -> PromptRepsRun {
    PromptRepsRun {
        side,
        max_length: max_length.unwrap_or(match side {
            Side::Passage => 512,
            Side::Query => 64,
        }),
        top_terms: top.unwrap_or(128),
    }
}

/// The PromptReps model of a resolved GGUF model.
pub fn promptreps(r: &ResolvedModel) -> Result<Arc<PromptReps>, String> {
    let dir = r
        .dir
        .to_str()
        .ok_or("the model folder's path is not UTF-8")?;
    ferret_models::promptreps::shared(dir).map_err(|e| e.to_string())
}

/// PromptReps' dense half.
pub struct PromptRepsDense {
    pub model: Arc<PromptReps>,
    pub run: PromptRepsRun,
}

impl DenseEncoder for PromptRepsDense {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.model
            .dense(texts, &self.run)
            .map_err(|e| e.to_string())
    }
}

/// PromptReps' sparse half.
struct PromptRepsSparse {
    model: Arc<PromptReps>,
    run: PromptRepsRun,
}

impl SparseEncoder for PromptRepsSparse {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<(String, f32)>>, String> {
        self.model
            .sparse(texts, &self.run)
            .map_err(|e| e.to_string())
    }
}

/// A late-interaction encoder: a ColBERT checkpoint, or a sentence encoder's token states.
#[derive(Clone)]
pub enum LateModel {
    Colbert(Arc<ferret_models::colbert::ColbertEncoder>),
    Tokens(Arc<ferret_models::colbert::TokenModel>),
}

impl LateModel {
    pub fn get(&self) -> &ferret_models::colbert::ColbertEncoder {
        match self {
            LateModel::Colbert(m) => m,
            LateModel::Tokens(m) => &m.0,
        }
    }
}

/// The late-interaction model of a token representation (`encoder` as its options say).
pub fn late_model(r: &ResolvedModel, encoder: Option<&str>) -> Result<LateModel, String> {
    match encoder {
        None => ferret_models::colbert::shared(&r.dir)
            .map(LateModel::Colbert)
            .map_err(|e| e.to_string()),
        Some("tokens") => ferret_models::colbert::shared_tokens(&r.dir)
            .map(LateModel::Tokens)
            .map_err(|e| e.to_string()),
        Some(other) => Err(format!(
            "unknown token encoder '{other}' (tokens, or none for a ColBERT checkpoint)"
        )),
    }
}

/// Token rows as the index stores them.
pub fn token_rows(v: ferret_models::colbert::TokenVectors) -> TokenRows {
    TokenRows {
        ids: v.ids,
        vectors: v.vectors,
    }
}

impl TokenEncoder for LateModel {
    fn dim(&self) -> usize {
        self.get().dim()
    }
    fn encode(&self, texts: &[&str]) -> Result<Vec<TokenRows>, String> {
        Ok(self
            .get()
            .encode_documents(texts)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(token_rows)
            .collect())
    }
}

fn load_tokens(r: &ResolvedModel, params: &serde_json::Value) -> Result<DocumentEncoder, String> {
    let options: TokenOptions =
        serde_json::from_value(params.clone()).map_err(|e| e.to_string())?;
    Ok(DocumentEncoder::Tokens(Arc::new(late_model(
        r,
        options.encoder.as_deref(),
    )?)))
}
