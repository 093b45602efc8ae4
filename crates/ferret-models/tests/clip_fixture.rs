//! CLIP against `transformers`' CLIPModel on the shared fixture (tiny random weights, the real
//! CLIP BPE tokenizer, real Flickr8k images and captions): token ids exactly; pixel tensors,
//! image and text features and the cosine matrix to 1e-4.

use std::path::PathBuf;

use ferret_image::{decode_file, resample::resize_bicubic, DecodeLimits};
use ferret_models::clip::ClipModel;

fn shared(sub: &str, var: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared")
            .join(sub)
    })
}

fn fixture() -> PathBuf {
    let dir = shared("fixtures", "FERRET_FIXTURES").join("tiny-clip");
    assert!(
        dir.join("reference.json").exists(),
        "fixture not found at {} — set FERRET_FIXTURES to the shared fixtures folder",
        dir.display()
    );
    dir
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn matches_transformers_on_the_fixture() {
    let dir = fixture();
    let images_dir = shared("data", "FERRET_DATA").join("flickr8k-test1k/images");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let model = ClipModel::load(&dir).unwrap();
    assert_eq!(model.dim(), 16);
    assert_eq!(model.max_text_tokens(), 77);

    let mut text_features = Vec::new();
    let mut worst_text = 0f32;
    for t in reference["texts"].as_array().unwrap() {
        let text = t["text"].as_str().unwrap();
        let want: Vec<u32> = t["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            model.token_ids(text).unwrap(),
            want,
            "token ids of {text:?}"
        );
        let got = model.encode_texts(&[text]).unwrap().remove(0);
        worst_text = worst_text.max(max_diff(&got, &floats(&t["text_features"])));
        text_features.push(got);
    }

    let mut image_features = Vec::new();
    let (mut worst_pixel, mut worst_sum, mut worst_image) = (0f32, 0f64, 0f32);
    for im in reference["images"].as_array().unwrap() {
        let name = im["file"].as_str().unwrap();
        let file = name.split(' ').next().unwrap();
        let mut rgb = decode_file(&images_dir.join(file), DecodeLimits::default())
            .unwrap()
            .rgb;
        if name.contains("resized to 300x200") {
            rgb = resize_bicubic(&rgb, 300, 200);
        }
        let pixels = model.pixels(&rgb);
        assert_eq!(pixels.len(), 3 * 224 * 224);
        let sum: f64 = pixels.iter().map(|&x| x as f64).sum();
        worst_sum = worst_sum.max((sum - im["pixel_values_sum"].as_f64().unwrap()).abs());
        for (c, row) in im["pixel_values_first_row"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let want = floats(row);
            worst_pixel = worst_pixel.max(max_diff(&pixels[c * 224 * 224..][..want.len()], &want));
        }
        let got = model.image_features(&pixels).unwrap();
        let want = floats(&im["image_features"]);
        println!(
            "{name}: image features differ by {:.2e} (largest |feature| {:.2})",
            max_diff(&got, &want),
            want.iter().fold(0f32, |m, x| m.max(x.abs()))
        );
        worst_image = worst_image.max(max_diff(&got, &want));
        image_features.push(got);
    }

    let mut worst_cos = 0f32;
    for (t, row) in reference["cosine_text_by_image"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (i, want) in floats(row).iter().enumerate() {
            worst_cos = worst_cos.max((cosine(&text_features[t], &image_features[i]) - want).abs());
        }
    }
    println!(
        "largest differences: text features {worst_text:.2e}, pixels {worst_pixel:.2e} (sum {worst_sum:.2e}), image features {worst_image:.2e}, cosines {worst_cos:.2e}"
    );
    assert!(worst_pixel < 1e-6, "pixels differ by {worst_pixel}");
    assert!(worst_text < 1e-4 && worst_image < 1e-4 && worst_cos < 1e-4);
}

/// A checkpoint with more text positions (Long-CLIP's 248) loads from its config: texts up to
/// 248 tokens are kept whole, and a short text's features are unchanged when the first 77
/// position rows are the original ones (the causal tower never sees the rows past its tokens).
#[test]
fn longer_text_position_tables_load_from_the_config() {
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    let dir = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let long = tmp.path();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in st.tensors() {
        let (mut shape, mut data) = (t.shape().to_vec(), t.data().to_vec());
        if name == "text_model.embeddings.position_embedding.weight" {
            // Rows 77..248: the last row repeated, slightly changed.
            let row = data[(shape[0] - 1) * shape[1] * 4..].to_vec();
            for r in shape[0]..248 {
                for (i, b) in row.chunks_exact(4).enumerate() {
                    let v = f32::from_le_bytes(b.try_into().unwrap()) + 0.01 * ((r + i) % 7) as f32;
                    data.extend(v.to_le_bytes());
                }
            }
            shape[0] = 248;
        }
        tensors.push((name, shape, data));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        long.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    config["text_config"]["max_position_embeddings"] = 248.into();
    std::fs::write(long.join("config.json"), config.to_string()).unwrap();
    for f in ["tokenizer.json", "preprocessor_config.json"] {
        std::fs::copy(dir.join(f), long.join(f)).unwrap();
    }
    let short = ClipModel::load(&dir).unwrap();
    let model = ClipModel::load(long).unwrap();
    assert_eq!(model.max_text_tokens(), 248);
    let text = "a dog runs ".repeat(100);
    assert_eq!(short.token_ids(&text).unwrap().len(), 77);
    let ids = model.token_ids(&text).unwrap();
    assert_eq!(ids.len(), 248);
    assert_eq!(ids[247], 49407, "the end-of-text token survives the cut");
    let caption = "A black dog is running through the snow .";
    let (a, b) = (
        short.encode_texts(&[caption]).unwrap().remove(0),
        model.encode_texts(&[caption]).unwrap().remove(0),
    );
    assert!(max_diff(&a, &b) < 1e-6);
    let long_features = model.encode_texts(&[&text]).unwrap().remove(0);
    assert!(long_features.iter().all(|x| x.is_finite()));
}
