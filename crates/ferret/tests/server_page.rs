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

/// The researcher's workbench on SciFact: `ferret serve --qrels --queries`, checked in the
/// browser against `ferret run` + `ferret eval` of the same two pipelines (grades, per-query
/// measures, their difference, the URL, the keys, /compare's bars and wins/ties/losses), and
/// the `ferret compare` report opened from disk with the network off.
#[test]
fn judgements_on_the_page_the_compare_view_and_the_report() {
    browser();
    let scifact = common::dataset("beir-scifact");
    let (queries, qrels) = (
        scifact.join("queries.jsonl"),
        scifact.join("qrels").join("test.tsv"),
    );
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("idx");
    common::index(&index, "beir-scifact", &[]);
    // The page's default pipelines: BM25, and BM25 + RM3 as the second.
    let pipelines = ["bm25", "bm25 % 1000 >> rm3(fb_docs=10, fb_terms=10)"];
    let runs: Vec<PathBuf> = pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let run = tmp.path().join(format!("{i}.run"));
            common::ferret_ok(&[
                "run",
                "--index",
                s(&index),
                "--queries",
                s(&queries),
                "--qrels",
                s(&qrels),
                "--pipeline",
                p,
                "-o",
                s(&run),
            ]);
            run
        })
        .collect();

    // ferret eval's numbers: query 641's measures (a query the two pipelines rank differently,
    // neither perfectly) and the wins/ties/losses over all queries.
    let per_query = common::ferret_ok(&[
        "eval",
        "--qrels",
        s(&qrels),
        s(&runs[0]),
        s(&runs[1]),
        "-q",
        "-m",
        "nDCG@10",
        "R@100",
        "AP",
    ]);
    let texts: Vec<serde_json::Value> = runs
        .iter()
        .map(|run| {
            let values: serde_json::Map<String, serde_json::Value> = per_query
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    (f.len() == 4 && f[0] == s(run) && f[2] == "641")
                        .then(|| (f[1].to_string(), f[3].into()))
                })
                .collect();
            assert_eq!(values.len(), 3, "{per_query}");
            values.into()
        })
        .collect();
    assert_ne!(texts[0]["nDCG@10"], texts[1]["nDCG@10"], "{per_query}");
    let json: serde_json::Value = serde_json::from_str(&common::ferret_ok(&[
        "eval",
        "--qrels",
        s(&qrels),
        s(&runs[0]),
        s(&runs[1]),
        "-m",
        "nDCG@10",
        "--json",
    ]))
    .unwrap();
    let versus = &json["runs"][1]["vs_first"]["nDCG@10"];
    // The same as a chart: one bar per query, coloured by the sign of its difference.
    let chart = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-deltas.svg");
    common::ferret_ok(&[
        "eval",
        "--qrels",
        s(&qrels),
        s(&runs[0]),
        s(&runs[1]),
        "-m",
        "nDCG@10",
        "--plot",
        s(&chart),
    ]);
    let svg = std::fs::read_to_string(&chart).unwrap();
    let bars = |fill: &str| {
        svg.lines()
            .filter(|l| l.starts_with("<rect") && l.contains(&format!("fill=\"#{fill}\"")))
            .count() as u64
    };
    assert_eq!(
        [bars("137333"), bars("999999"), bars("B00020")],
        [&versus["wins"], &versus["ties"], &versus["losses"]].map(|v| v.as_u64().unwrap()),
        "{}",
        chart.display()
    );
    let (wins, ties, losses) = (
        versus["wins"].clone(),
        versus["ties"].clone(),
        versus["losses"].clone(),
    );
    let total = [&wins, &ties, &losses]
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(total, 300, "{json}");
    let want = serde_json::json!({
        "set": "test", "query": "641", "texts": {"first": texts[0], "second": texts[1]},
        "queries": 300, "wins": wins, "ties": ties, "losses": losses,
    });

    let set = format!("test={}", s(&qrels));
    let server = Server::start(&index, &["--qrels", &set, "--queries", s(&queries)]);
    run_page_script(
        "judged_page.cjs",
        &server,
        "judged-page.png",
        &[&want.to_string()],
    );

    // The same comparison as a file, opened offline.
    let report = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare-report.html");
    let out = common::ferret_ok(&[
        "compare",
        "--qrels",
        s(&qrels),
        s(&runs[0]),
        s(&runs[1]),
        "-o",
        s(&report),
        "--queries",
        s(&queries),
        "--index",
        s(&index),
        "--title",
        "BEIR SciFact",
    ]);
    assert!(
        out.contains(&format!("{wins} wins, {ties} ties, {losses} losses")),
        "{out}"
    );
    let (modules, chromium) = browser();
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare-report.png");
    let counts = [
        300,
        wins.as_u64().unwrap(),
        ties.as_u64().unwrap(),
        losses.as_u64().unwrap(),
    ]
    .map(|n| n.to_string());
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/compare_report.cjs"))
        .args([s(&report), s(&screenshot)])
        .args(&counts)
        .env("NODE_PATH", &modules)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("\"ok\":true"),
        "the report test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("report: {} ({})", report.display(), screenshot.display());

    // ferret eval's habits on the same run: trec_eval's default measures without -m, and an
    // error naming both files for the qrels of another collection (CMRC's query ids; Cranfield's
    // and CISI's are numbers that SciFact's share).
    let defaults = common::ferret_ok(&["eval", "--qrels", s(&qrels), s(&runs[0])]);
    assert!(
        defaults.lines().next().unwrap().contains("AP") && defaults.contains("nDCG@10"),
        "{defaults}"
    );
    let cmrc = common::dataset("cmrc2018-zh-retrieval")
        .join("qrels")
        .join("dev.tsv");
    let err = common::ferret_err(&["eval", "--qrels", s(&cmrc), s(&runs[0])]);
    assert!(err.contains("share no query id"), "{err}");
}
