//! `ferret score --clip MODEL --pairs pairs.jsonl`: CLIPScore of image–caption pairs.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// CLIP model (Hugging Face CLIPModel folder or id)
    #[arg(long)]
    clip: String,
    /// JSON lines {"id"?, "image": path relative to this file, "text": caption}
    #[arg(long)]
    pairs: PathBuf,
    /// CLIPScore's weight: w·max(cos, 0)
    #[arg(long, default_value_t = 2.5)]
    w: f32,
    /// Also print the set's SCE ("Dissecting CLIP"): the entropy of the image covariance left
    /// unexplained by the captions (Schur complement), and exp(SCE)
    #[arg(long)]
    sce: bool,
}

#[derive(serde::Deserialize)]
struct Pair {
    #[serde(default)]
    id: Option<String>,
    image: String,
    text: String,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let resolved = ferret_models::source::resolve(&a.clip)?;
    let model = ferret_search::encoders::clip(&resolved).map_err(anyhow::Error::msg)?;
    let file =
        std::fs::File::open(&a.pairs).with_context(|| format!("opening {}", a.pairs.display()))?;
    let base = a.pairs.parent().unwrap_or(Path::new(""));
    let mut out = std::io::stdout().lock();
    let (mut sum, mut n) = (0f64, 0usize);
    let (mut images, mut texts) = (Vec::new(), Vec::new());
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let at = format!("{}:{}", a.pairs.display(), i + 1);
        let line = line.with_context(|| at.clone())?;
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair =
            serde_json::from_str(&line).with_context(|| format!("{at}: malformed pair"))?;
        if pair.text.trim().is_empty() {
            bail!("{at}: empty caption");
        }
        let image = ferret_image::decode_file(&base.join(&pair.image), Default::default())
            .with_context(|| at.clone())?;
        let v = model.encode_images(&[&image.rgb])?.remove(0);
        let t = model.encode_texts(&[&pair.text])?.remove(0);
        let cos = cosine(&v, &t);
        let score = ferret_search::stages::clip::clipscore(a.w, cos);
        writeln!(
            out,
            "{}\t{score:.6}",
            pair.id.unwrap_or_else(|| (i + 1).to_string())
        )?;
        sum += score as f64;
        n += 1;
        if a.sce {
            images.push(v);
            texts.push(t);
        }
    }
    if n == 0 {
        bail!("{}: no pairs", a.pairs.display());
    }
    writeln!(out, "mean\t{:.6}", sum / n as f64)?;
    if a.sce {
        use ferret_search::stages::clip::unit;
        let images: Vec<Vec<f32>> = images.into_iter().map(unit).collect();
        let texts: Vec<Vec<f32>> = texts.into_iter().map(unit).collect();
        let h = ferret_search::vision::schur::sce(&images, &texts).map_err(anyhow::Error::msg)?;
        writeln!(out, "sce\t{h:.6}\nexp_sce\t{:.6}", h.exp())?;
    }
    Ok(())
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::MIN_POSITIVE)
}
