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
