//! The web search page in a real browser: headless Chromium (Debian's /usr/bin/chromium),
//! driven by playwright-core from npm (scripts/test.sh installs it and sets
//! FERRET_NODE_MODULES), against `ferret serve` on a SciFact index. The script
//! (`tests/browser/search_page.cjs`) loads the page, searches, opens explain from the keyboard,
//! sees a pipeline error inline, switches preset and compares two pipelines; the screenshot is
//! kept as a test artifact in the target directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::s;
use common::server::Server;

/// playwright-core's folder and the Chromium binary, checked.
fn browser() -> (PathBuf, String) {
    let modules = std::env::var_os("FERRET_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
            "FERRET_NODE_MODULES is not set: run the tests through scripts/test.sh, which installs \
             playwright-core and Chromium"
        )
        });
    assert!(
        modules.join("playwright-core").is_dir(),
        "playwright-core not found in {}",
        modules.display()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: install Debian's chromium package (scripts/test.sh does)"
    );
    (modules, chromium)
}

/// Runs `tests/browser/<script>` against the server (base URL, screenshot path, then `extra`):
/// it must exit cleanly, report `"ok":true` and leave a real screenshot, kept in the target
/// directory.
fn run_page_script(script: &str, server: &Server, screenshot_name: &str, extra: &[&str]) {
    let (modules, chromium) = browser();
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(screenshot_name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let out = Command::new("node")
        .arg(&script)
        .args([server.url.as_str(), s(&screenshot)])
        .args(extra)
        .env("NODE_PATH", &modules)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("running node (install Node.js)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot too small"
    );
    println!("screenshot: {}", screenshot.display());
}

#[test]
fn search_page_in_headless_chromium() {
    browser();
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("idx");
    common::index(&index, "beir-scifact", &[]);
    let server = Server::start(&index, &[]);
    run_page_script("search_page.cjs", &server, "search-page.png", &[]);
}

/// Image search on the page: an image dropped on it finds itself first, a caption finds
/// images, and every hit shows its thumbnail (the CLIP fixture's weights are random, so only
/// the image→image order is meaningful).
#[test]
fn image_search_on_the_page_shows_thumbnails() {
    browser();
    let flickr = common::dataset("flickr8k-test1k");
    let fixture = std::env::var_os("FERRET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
        .join("tiny-clip");
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(flickr.join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names.iter().take(24) {
        std::fs::copy(flickr.join("images").join(n), folder.join(n)).unwrap();
    }
    let index = tmp.path().join("idx");
    common::ferret_ok(&[
        "index",
        "--images",
        s(&folder),
        "--index",
        s(&index),
        "--clip",
        s(&fixture),
    ]);
    let server = Server::start(&index, &[]);
    let query = folder.join(&names[5]);
    let expected = names[5].trim_end_matches(".jpg");
    run_page_script(
        "image_page.cjs",
        &server,
        "image-search-page.png",
        &[s(&query), expected],
    );
}
