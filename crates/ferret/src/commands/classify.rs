//! `ferret classify`: image classification with a CLIP model over labelled folders (one
//! sub-folder per class, its name the class name): zero-shot from prompt templates, k-NN over
//! the training images, or few-shot GDA ensembled with zero-shot; prints the accuracy.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ferret_search::stages::clip::unit;
use ferret_search::vision::classify;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Method {
    ZeroShot,
    Knn,
    Gda,
}

#[derive(clap::Args)]
pub struct Args {
    /// CLIP model (Hugging Face CLIPModel folder or id)
    #[arg(long)]
    clip: String,
    /// Labelled test images: one sub-folder per class
    #[arg(long)]
    test: PathBuf,
    /// Labelled training images (k-NN and GDA): the same class sub-folders
    #[arg(long, required_if_eq_any = [("method", "knn"), ("method", "gda")])]
    train: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "zero-shot")]
    method: Method,
    /// Use only the first N training images of each class (few-shot)
    #[arg(long)]
    shots: Option<usize>,
    /// Prompt template for class names ("{}" is replaced; folder underscores become spaces)
    #[arg(long, default_value = "a photo of a {}.")]
    template: String,
    /// Neighbours for k-NN
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Weight of the GDA logits added to the zero-shot logits
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
}

/// Image files with their class number.
type Labelled = Vec<(PathBuf, usize)>;

/// (class names, labelled files) of a labelled folder, classes and files in name order.
fn labelled(dir: &Path, shots: Option<usize>) -> anyhow::Result<(Vec<String>, Labelled)> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    classes.retain(|p| p.is_dir());
    classes.sort();
    if classes.is_empty() {
        bail!(
            "{}: no class sub-folders (one folder per class, images inside)",
            dir.display()
        );
    }
    let mut files = Vec::new();
    for (k, class) in classes.iter().enumerate() {
        let mut images: Vec<PathBuf> = std::fs::read_dir(class)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        images.retain(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        });
        images.sort();
        images.truncate(shots.unwrap_or(usize::MAX));
        if images.is_empty() {
            bail!("{}: class folder without images", class.display());
        }
        files.extend(images.into_iter().map(|f| (f, k)));
    }
    let names = classes
        .iter()
        .map(|c| {
            c.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .replace('_', " ")
        })
        .collect();
    Ok((names, files))
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let resolved = ferret_models::source::resolve(&a.clip)?;
    let model = ferret_search::encoders::clip(&resolved).map_err(anyhow::Error::msg)?;
    let embed = |files: &[(PathBuf, usize)]| -> anyhow::Result<Vec<Vec<f32>>> {
        let paths: Vec<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
        Ok(model
            .encode_image_files(&paths, Default::default())?
            .into_iter()
            .map(unit)
            .collect())
    };
    let (names, test) = labelled(&a.test, None)?;
    let test_x = embed(&test)?;
    let prompts: Vec<String> = names.iter().map(|n| a.template.replace("{}", n)).collect();
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let class_texts: Vec<Vec<f32>> = model.encode_texts(&refs)?.into_iter().map(unit).collect();
    let train = match &a.train {
        Some(dir) => {
            let (train_names, files) = labelled(dir, a.shots)?;
            if train_names != names {
                bail!(
                    "the training classes {train_names:?} differ from the test classes {names:?}"
                );
            }
            let labels: Vec<usize> = files.iter().map(|(_, k)| *k).collect();
            Some((embed(&files)?, labels))
        }
        None => None,
    };
    let gda = match (&a.method, &train) {
        (Method::Gda, Some((x, y))) => {
            Some(classify::fit_gda(x, y, names.len()).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    let mut correct = 0;
    for (x, (_, want)) in test_x.iter().zip(&test) {
        let zero_shot = classify::zero_shot_logits(x, &class_texts);
        let got = match a.method {
            Method::ZeroShot => classify::argmax(&zero_shot),
            Method::Knn => {
                let (tx, ty) = train.as_ref().expect("clap requires --train");
                classify::knn(x, tx, ty, names.len(), a.k)
            }
            Method::Gda => {
                let g = gda.as_ref().expect("fitted above").logits(x);
                let combined: Vec<f64> = zero_shot
                    .iter()
                    .zip(&g)
                    .map(|(z, g)| z + a.alpha * g)
                    .collect();
                classify::argmax(&combined)
            }
        };
        correct += (got == *want) as usize;
    }
    println!(
        "{} test images, {} classes: accuracy {:.4}",
        test.len(),
        names.len(),
        correct as f64 / test.len() as f64
    );
    Ok(())
}
