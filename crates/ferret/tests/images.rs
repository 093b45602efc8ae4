//! Images end to end on Flickr8k (1,000 test images, 5,000 captions) with the shared tiny
//! CLIP fixture: its weights are random, so the numbers mean nothing — the path is what is
//! proven: indexing, text→image, image→image and image→text search, evaluation both ways,
//! and bad images refused or skipped with clear messages.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn clip_fixture() -> PathBuf {
    let dir = std::env::var_os("FERRET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
        .join("tiny-clip");
    assert!(
        dir.join("model.safetensors").exists(),
        "CLIP fixture not found at {}",
        dir.display()
    );
    dir
}

/// The value of `measure` in `ferret eval`'s table (a header row, then one row per run).
fn measure(eval: &str, name: &str) -> f64 {
    let mut lines = eval.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let at = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("{name} not in:\n{eval}"));
    row[at].parse().unwrap()
}

#[test]
fn flickr8k_text_to_image_image_to_image_and_image_to_text() {
    let flickr = dataset("flickr8k-test1k");
    let model = clip_fixture();
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images-idx");
    let out = ferret_ok(&[
        "index",
        "--corpus",
        s(&flickr.join("corpus.jsonl")),
        "--index",
        s(&images),
        "--clip",
        s(&model),
    ]);
    let _ = out;
    let info = ferret_ok(&["info", "--index", s(&images), "--json"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["doc_count"], 1000, "{info}");
    assert!(
        info["representations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "image"),
        "{info}"
    );

    // text → image: 5,000 captions, evaluated against their image.
    let run = tmp.path().join("t2i.run");
    ferret_ok(&[
        "run",
        "--index",
        s(&images),
        "--queries",
        s(&flickr.join("queries.jsonl")),
        "--qrels",
        s(&flickr.join("qrels/test.tsv")),
        "--pipeline",
        "clip",
        "-k",
        "10",
        "-o",
        s(&run),
    ]);
    let eval = ferret_ok(&[
        "eval",
        "--qrels",
        s(&flickr.join("qrels/test.tsv")),
        s(&run),
        "-m",
        "R@1",
        "R@5",
        "R@10",
        "RR@10",
    ]);
    println!("text→image:\n{eval}");
    let (r1, r10) = (measure(&eval, "R@1"), measure(&eval, "R@10"));
    assert!((0.0..=1.0).contains(&r1) && r1 <= r10);
    let lines = std::fs::read_to_string(&run).unwrap();
    let queries: std::collections::HashSet<&str> = lines
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(queries.len(), 5000);

    // image → image: an image's nearest image is itself, at cosine 1.
    let first = "1056338697_4f7d7ce270";
    let json = ferret_ok(&[
        "search",
        "--index",
        s(&images),
        "--image",
        s(&flickr.join(format!("images/{first}.jpg"))),
        "--pipeline",
        "clip",
        "--json",
        "-k",
        "3",
    ]);
    let hits = search_hits(&json);
    assert_eq!(hits[0].0, first, "{json}");
    assert!((hits[0].1 - 1.0).abs() < 1e-4, "{json}");

    // image → text: the captions indexed with the CLIP text tower, images as queries, each
    // judged against its five captions (captions.tsv).
    let captions = tmp.path().join("captions-idx");
    ferret_ok(&[
        "index",
        "--corpus",
        s(&flickr.join("queries.jsonl")),
        "--index",
        s(&captions),
        "--dense",
        s(&model),
    ]);
    let qrels = tmp.path().join("i2t.qrels");
    let mut q = String::new();
    for line in std::fs::read_to_string(flickr.join("captions.tsv"))
        .unwrap()
        .lines()
        .skip(1)
    {
        let cols: Vec<&str> = line.split('\t').collect();
        q.push_str(&format!("{} 0 {}#{} 1\n", cols[0], cols[0], cols[1]));
    }
    std::fs::write(&qrels, q).unwrap();
    let run = tmp.path().join("i2t.run");
    ferret_ok(&[
        "run",
        "--index",
        s(&captions),
        "--queries",
        s(&flickr.join("corpus.jsonl")),
        "--pipeline",
        "clip",
        "-k",
        "10",
        "-o",
        s(&run),
    ]);
    let eval = ferret_ok(&[
        "eval",
        "--qrels",
        s(&qrels),
        s(&run),
        "-m",
        "R@1",
        "R@5",
        "R@10",
        "RR@10",
    ]);
    println!("image→text:\n{eval}");
    assert!(measure(&eval, "R@10") <= 1.0);
    let lines = std::fs::read_to_string(&run).unwrap();
    assert_eq!(
        lines.lines().filter(|l| l.contains(" 1 ")).count(),
        1000,
        "one top hit per image query"
    );
}

/// A PNG whose header says `width` × `height` (8-bit RGB) with a token data chunk: decoders
/// that allocate from the header would ask for width·height·3 bytes.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend(kind);
        out.extend(data);
        out.extend(crc.sum().to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn bad_images_are_reported_and_skipped_or_refused_with_strict() {
    let flickr = dataset("flickr8k-test1k");
    let model = clip_fixture();
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir_all(folder.join("nested")).unwrap();
    let jpeg = std::fs::read(flickr.join("images/1056338697_4f7d7ce270.jpg")).unwrap();
    std::fs::write(folder.join("good.jpg"), &jpeg).unwrap();
    std::fs::copy(
        flickr.join("images/106490881_5a2dd9b7bd.jpg"),
        folder.join("nested/deeper.jpg"),
    )
    .unwrap();
    std::fs::write(folder.join("zero.jpg"), b"").unwrap();
    std::fs::write(folder.join("notes.jpg"), b"these are my holiday notes\n").unwrap();
    std::fs::write(folder.join("cut.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    std::fs::write(folder.join("old.bmp"), b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0").unwrap();
    std::fs::write(folder.join("huge.png"), png_header_only(30_000, 30_000)).unwrap();
    std::fs::write(folder.join(".DS_Store"), b"\0\0\0\x01Bud1").unwrap();

    // Default: every bad file named with its reason, skipped and counted; the rest indexed.
    let index = tmp.path().join("idx");
    let out = ferret(&[
        "index",
        "--images",
        s(&folder),
        "--index",
        s(&index),
        "--clip",
        s(&model),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("added 2") && stdout.contains("skipped 5"),
        "{stdout}"
    );
    for (file, why) in [
        ("zero.jpg", "empty file"),
        ("notes.jpg", "not an image"),
        ("cut.jpg", "broken jpeg"),
        ("old.bmp", "Bmp images are not supported"),
        ("huge.png", "30000 × 30000 pixels is more than the limit"),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(file) && l.contains(why)),
            "{file}: {why}\n{stderr}"
        );
    }
    let info: serde_json::Value =
        serde_json::from_str(&ferret_ok(&["info", "--index", s(&index), "--json"])).unwrap();
    assert_eq!(info["doc_count"], 2);
    let hits = search_hits(&ferret_ok(&[
        "search",
        "--index",
        s(&index),
        "--image",
        s(&folder.join("nested/deeper.jpg")),
        "--pipeline",
        "clip",
        "--json",
    ]));
    assert_eq!(hits[0].0, "nested/deeper");

    // --strict: the first bad file stops the build and nothing is indexed.
    let strict = tmp.path().join("strict");
    let err = ferret_err(&[
        "index",
        "--images",
        s(&folder),
        "--index",
        s(&strict),
        "--clip",
        s(&model),
        "--strict",
    ]);
    assert!(
        err.contains("cut.jpg") && err.contains("broken jpeg"),
        "{err}"
    );
    assert!(
        !strict.join("manifest.json").exists(),
        "a refused build left an index"
    );

    // A corpus may not point outside its folder.
    let corpus = folder.join("corpus.jsonl");
    std::fs::write(&corpus, "{\"_id\": \"a\", \"image\": \"good.jpg\"}\n{\"_id\": \"b\", \"image\": \"../../../../etc/passwd\"}\n").unwrap();
    let err = ferret_err(&[
        "index",
        "--corpus",
        s(&corpus),
        "--index",
        s(&tmp.path().join("escape")),
        "--clip",
        s(&model),
    ]);
    assert!(
        err.contains("corpus.jsonl:2") && err.contains("outside the corpus folder"),
        "{err}"
    );

    // An image query on a text-only index says how to get an image representation.
    let text_index = tmp.path().join("text");
    let texts = tmp.path().join("texts.jsonl");
    std::fs::write(
        &texts,
        "{\"_id\": \"t1\", \"text\": \"a dog runs in the snow\"}\n",
    )
    .unwrap();
    ferret_ok(&["index", "--corpus", s(&texts), "--index", s(&text_index)]);
    let err = ferret_err(&[
        "search",
        "--index",
        s(&text_index),
        "--image",
        s(&folder.join("good.jpg")),
        "--pipeline",
        "clip",
    ]);
    assert!(
        err.contains("ferret index --index DIR --clip MODEL"),
        "{err}"
    );
}

#[test]
fn the_server_serves_images_thumbnails_and_image_queries() {
    use base64::Engine;
    use common::server::{code, Server};
    let flickr = dataset("flickr8k-test1k");
    let model = clip_fixture();
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    let names = [
        "1056338697_4f7d7ce270",
        "106490881_5a2dd9b7bd",
        "1082379191_ec1e53f996",
    ];
    for n in names {
        std::fs::copy(
            flickr.join(format!("images/{n}.jpg")),
            folder.join(format!("{n}.jpg")),
        )
        .unwrap();
    }
    let index = tmp.path().join("idx");
    ferret_ok(&[
        "index",
        "--images",
        s(&folder),
        "--index",
        s(&index),
        "--clip",
        s(&model),
    ]);
    let server = Server::start(&index, &[]);
    let original = std::fs::read(folder.join(format!("{}.jpg", names[1]))).unwrap();
    let (status, kind, bytes) = server.get_bytes(&format!("/v1/documents/{}/image", names[1]));
    assert_eq!((status, kind.as_str()), (200, "image/jpeg"));
    assert_eq!(bytes, original);
    let (status, kind, thumb) = server.get_bytes(&format!("/v1/documents/{}/thumbnail", names[1]));
    assert_eq!((status, kind.as_str()), (200, "image/jpeg"));
    assert!(
        thumb.starts_with(&[0xff, 0xd8]) && thumb.len() < original.len(),
        "{} bytes",
        thumb.len()
    );
    let (status, v) = server.get("/v1/documents/..%2F..%2Fetc%2Fpasswd/image");
    assert_eq!((status, code(&v)), (404, "unknown_document"));

    // Image query over HTTP: the image itself comes first, at cosine 1.
    let image = base64::engine::general_purpose::STANDARD.encode(&original);
    let (status, v) = server.post(
        "/v1/search",
        &serde_json::json!({"query": "uploaded.jpg", "pipeline": "clip", "k": 3, "image": format!("data:image/jpeg;base64,{image}")}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hits"][0]["id"], names[1]);
    assert_eq!(v["hits"][0]["has_image"], true);
    assert!(
        (v["hits"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4,
        "{v}"
    );
    let (status, v) = server.post(
        "/v1/search",
        &serde_json::json!({"query": "x", "pipeline": "clip", "image": "bm90IGFuIGltYWdl"}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an image"),
        "{v}"
    );
}

/// `ferret score` against transformers' cosines in the fixture (CLIPScore = 2.5·max(cos, 0)),
/// SCE printed; `ferret classify` on labelled folders (train = test, so 1-NN must be exact);
/// the nullify stage after clip.
#[test]
fn clipscore_classification_and_nullify() {
    let flickr = dataset("flickr8k-test1k");
    let model = clip_fixture();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("reference.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let images = flickr.join("images");
    let mut pairs = String::new();
    let mut want = Vec::new();
    for (t, text) in reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .take(4)
    {
        for (i, image) in reference["images"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .take(6)
        {
            let file = image["file"].as_str().unwrap();
            pairs.push_str(&serde_json::json!({"id": format!("t{t}i{i}"), "image": images.join(file), "text": text["text"]}).to_string());
            pairs.push('\n');
            let cos = reference["cosine_text_by_image"][t][i].as_f64().unwrap();
            want.push(2.5 * cos.max(0.0));
        }
    }
    let pairs_file = tmp.path().join("pairs.jsonl");
    std::fs::write(&pairs_file, pairs).unwrap();
    let out = ferret_ok(&[
        "score",
        "--clip",
        s(&model),
        "--pairs",
        s(&pairs_file),
        "--sce",
    ]);
    let values: Vec<(String, f64)> = out
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    for ((_, got), want) in values.iter().zip(&want) {
        assert!((got - want).abs() < 1e-4, "{got} vs {want}\n{out}");
    }
    let mean = want.iter().sum::<f64>() / want.len() as f64;
    assert!(
        values
            .iter()
            .any(|(k, v)| k == "mean" && (v - mean).abs() < 1e-4),
        "{out}"
    );
    assert!(
        values
            .iter()
            .any(|(k, v)| k == "sce" && v.is_finite() && *v >= 0.0),
        "{out}"
    );

    // Classification over labelled folders.
    let labelled = tmp.path().join("labelled");
    let mut names: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for (c, class) in ["dog", "beach", "snowy_mountain"].iter().enumerate() {
        std::fs::create_dir_all(labelled.join(class)).unwrap();
        for n in &names[c * 4..c * 4 + 4] {
            std::fs::copy(images.join(n), labelled.join(class).join(n)).unwrap();
        }
    }
    let accuracy = |args: &[&str]| -> f64 {
        let mut all = vec!["classify", "--clip", s(&model), "--test", s(&labelled)];
        all.extend_from_slice(args);
        let out = ferret_ok(&all);
        out.trim().rsplit(' ').next().unwrap().parse().unwrap()
    };
    let zero_shot = accuracy(&[]);
    assert!((0.0..=1.0).contains(&zero_shot));
    assert_eq!(
        accuracy(&["--method", "knn", "--train", s(&labelled), "--k", "1"]),
        1.0
    );
    // GDA's own accuracy on random features means nothing (its maths is checked on Gaussians
    // in vision::classify); here: it runs, and one shot per class is refused clearly.
    assert!((0.0..=1.0).contains(&accuracy(&["--method", "gda", "--train", s(&labelled)])));
    let err = ferret_err(&[
        "classify",
        "--clip",
        s(&model),
        "--test",
        s(&labelled),
        "--method",
        "gda",
        "--train",
        s(&labelled),
        "--shots",
        "1",
    ]);
    assert!(err.contains("at least 2 training images"), "{err}");
    let err = ferret_err(&["classify", "--clip", s(&model), "--test", s(&images)]);
    assert!(err.contains("no class sub-folders"), "{err}");

    // nullify after clip: the candidates rescored with a prompt's direction removed.
    let index = tmp.path().join("idx");
    ferret_ok(&[
        "index",
        "--images",
        s(&labelled),
        "--index",
        s(&index),
        "--clip",
        s(&model),
    ]);
    let hits = search_hits(&ferret_ok(&[
        "search",
        "--index",
        s(&index),
        "a dog in the snow",
        "--pipeline",
        "clip % 12 >> nullify(prompt=\"a photo of\")",
        "--json",
        "-k",
        "12",
    ]));
    assert_eq!(hits.len(), 12);
    assert!(hits.iter().all(|(_, score)| score.abs() <= 1.0 + 1e-5));
    let err = ferret_err(&[
        "search",
        "--index",
        s(&index),
        "a dog",
        "--pipeline",
        "nullify(prompt=\"x\")",
    ]);
    assert!(err.contains("nullify"), "{err}");
}
