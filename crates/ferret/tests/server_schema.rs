//! schemathesis (from the test virtualenv) fuzzes `ferret serve` from its own `/openapi.json`
//! on a SciFact index (with its test judgements): every operation, examples + coverage + fuzzing + stateful phases, with a
//! fixed seed so CI is repeatable. Every response must be a non-5xx, documented status with a
//! body matching the declared schema and content type. Not checked here:
//! `positive_data_acceptance` — a pipeline can be schema-valid yet name arguments a stage does
//! not take, which the server rightly answers 400.

mod common;

use std::process::Command;

use common::server::Server;

#[test]
fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let python = std::env::var("FERRET_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import schemathesis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import schemathesis; run the tests through scripts/test.sh (it installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("idx");
    common::index(&index, "beir-scifact", &[]);
    let scifact = common::dataset("beir-scifact");
    let qrels = format!(
        "test={}",
        common::s(&scifact.join("qrels").join("test.tsv"))
    );
    let queries = scifact.join("queries.jsonl");
    let server = Server::start(
        &index,
        &["--qrels", &qrels, "--queries", common::s(&queries)],
    );
    let out = Command::new(&python)
        .args(["-m", "schemathesis.cli", "--no-color", "run"])
        .arg(format!("{}/openapi.json", server.url))
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "40",
            "--seed",
            "20261126",
            "--generation-deterministic",
        ])
        .current_dir(tmp.path())
        .output()
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: String = stdout
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    println!("{summary}");
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("generated"), "no test cases ran:\n{stdout}");
}
