//! Crash safety, measured. `ferret index` — a rebuild (`--overwrite`), an append, a delete — and
//! `ferret serve` taking POST / DELETE /v1/documents are SIGKILLed at random moments, on an index
//! holding BM25, a dense representation with an HNSW graph and a learned sparse one. After every
//! kill:
//! * the index opens and holds exactly the documents of the last commit: ids, their order and
//!   their texts — the state before the killed command, or after it when its commit landed
//!   (always after it when the command had exited before the kill);
//! * every representation answers as a clean build of those documents does (same documents,
//!   same scores to 1e-4, for BM25, exact dense, HNSW and SPLADE);
//! * the killed writer's leftovers stay bounded (the folder is compared with a clean build's)
//!   and the next commit removes them: then only the files the manifests list remain.
//!
//! `FERRET_KILLS` sets the kills per mode: 10 by default, 100 in `scripts/test.sh --long`.

mod common;
use common::*;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferret_index::{DocNo, Index};
use ferret_search::Query;

/// Every representation kind with a writer-side build step, with the files a commit replaces.
const REPRESENTATIONS: &[&str] = &[
    "--dense",
    "all-minilm-l6-v2",
    "--hnsw",
    "--sparse",
    "splade-tiny",
];
const PIPELINES: &[&str] = &["bm25", "dense(exact=1)", "dense", "splade"];

fn kills() -> usize {
    std::env::var("FERRET_KILLS").map_or(10, |v| v.parse().expect("FERRET_KILLS: a number"))
}

/// Document number `n`: SciFact document `n mod 5183` under id `d<n>`, its abstract cut to 300
/// characters so that encoding stays quick and a campaign fits the default suite.
struct Docs {
    lines: Vec<(String, String)>,
}

impl Docs {
    fn new() -> Docs {
        let lines = scifact_lines()
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let text: String = v["text"].as_str().unwrap().chars().take(300).collect();
                (v["title"].as_str().unwrap().to_string(), text)
            })
            .collect();
        Docs { lines }
    }

    fn get(&self, n: usize) -> (&str, &str) {
        let (title, text) = &self.lines[n % self.lines.len()];
        (title, text)
    }

    fn json(&self, n: usize) -> serde_json::Value {
        let (title, text) = self.get(n);
        serde_json::json!({"_id": format!("d{n}"), "title": title, "text": text})
    }

    fn write(&self, path: &Path, ns: &[usize]) {
        let lines: Vec<String> = ns.iter().map(|&n| self.json(n).to_string()).collect();
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }
}

/// A seeded xorshift: the kill moments of a campaign are reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The documents the committed index holds, in internal order, each checked against its
/// source text.
fn committed(dir: &Path, docs: &Docs) -> Result<Vec<usize>, String> {
    let index = Index::open(dir).map_err(|e| e.to_string())?;
    let store = index.docstore();
    let mut out = Vec::new();
    for d in 0..store.num_slots() as DocNo {
        if store.is_deleted(d) {
            continue;
        }
        let id = store.external_id(d);
        let n: usize = id[1..].parse().map_err(|_| format!("unknown id {id:?}"))?;
        let doc = index.document(d).map_err(|e| e.to_string())?;
        if (doc.title.as_str(), doc.text.as_str()) != docs.get(n) {
            return Err(format!("document {id} holds another text"));
        }
        out.push(n);
    }
    if out.len() as u64 != index.manifest().doc_count {
        return Err(format!(
            "{} live documents, the manifest says {}",
            out.len(),
            index.manifest().doc_count
        ));
    }
    Ok(out)
}

type Answers = Vec<Vec<Vec<(String, f32)>>>;

/// Every pipeline's top 10 for the first SciFact queries.
fn answers(dir: &Path) -> Answers {
    let queries: Vec<Query> =
        std::fs::read_to_string(dataset("beir-scifact").join("queries.jsonl"))
            .unwrap()
            .lines()
            .take(12)
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                Query::new(v["_id"].as_str().unwrap(), v["text"].as_str().unwrap())
            })
            .collect();
    let index = Arc::new(Index::open(dir).unwrap());
    PIPELINES
        .iter()
        .map(|p| {
            let stage = ferret_search::prepare(p, &index).unwrap();
            ferret_search::batch::search_queries(stage.as_ref(), &queries, 10, 1, &|_| {})
                .unwrap()
                .into_iter()
                .map(|hits| {
                    hits.into_iter()
                        .map(|h| (index.external_id(h.doc).to_string(), h.score))
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Equal rankings: the same scores rank by rank (to 1e-4) and the same documents above the
/// last score (ties at the cut may differ).
fn assert_same_answers(got: &Answers, want: &Answers, what: &str) {
    for (p, (g, w)) in PIPELINES.iter().zip(got.iter().zip(want)) {
        for (q, (gh, wh)) in g.iter().zip(w).enumerate() {
            let scores = |h: &[(String, f32)]| h.iter().map(|x| x.1).collect::<Vec<_>>();
            assert!(
                gh.len() == wh.len() && gh.iter().zip(wh).all(|(a, b)| (a.1 - b.1).abs() < 1e-4),
                "{what}: {p}, query {q}: scores {:?}, a clean build's {:?}",
                scores(gh),
                scores(wh)
            );
            let last = wh.last().map_or(f32::MIN, |h| h.1);
            let firm = |h: &[(String, f32)]| -> BTreeSet<String> {
                h.iter()
                    .filter(|x| x.1 > last + 1e-4)
                    .map(|x| x.0.clone())
                    .collect()
            };
            assert_eq!(firm(gh), firm(wh), "{what}: {p}, query {q}: documents");
        }
    }
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => folder_bytes(&e.path()),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}

/// After a commit: every file is one the manifest lists (docstore chunks, representations'
/// files) or belongs to a segment of tantivy's meta.json.
fn assert_only_committed_files(dir: &Path) {
    let index = Index::open(dir).unwrap();
    let m = index.manifest();
    let mut keep: BTreeSet<PathBuf> = ferret_index::checksum::committed_files(m)
        .iter()
        .map(|f| dir.join(f))
        .collect();
    keep.insert(dir.join("manifest.json"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lexical/meta.json")).unwrap())
            .unwrap();
    let segments: BTreeSet<String> = meta["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["segment_id"].as_str().unwrap().replace('-', ""))
        .collect();
    let mut stray = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for e in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let ok = if folder == dir.join("lexical") {
                name.starts_with('.')
                    || name == "meta.json"
                    || segments.contains(name.split('.').next().unwrap())
            } else {
                keep.contains(&path)
            };
            if !ok {
                stray.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    assert!(stray.is_empty(), "files no commit refers to: {stray:?}");
}

/// Clean builds of the states a campaign passes through, built once each.
struct CleanBuilds {
    home: PathBuf,
    dir: PathBuf,
    built: HashMap<Vec<usize>, (Answers, u64)>,
}

impl CleanBuilds {
    /// A clean build's answers and folder size.
    fn of(&mut self, docs: &Docs, state: &[usize]) -> &(Answers, u64) {
        if !self.built.contains_key(state) {
            let corpus = self.dir.join("clean.jsonl");
            let idx = self.dir.join("clean");
            docs.write(&corpus, state);
            let mut args = vec!["index", "--corpus", s(&corpus), "--index", s(&idx)];
            args.extend_from_slice(REPRESENTATIONS);
            args.extend_from_slice(&["--threads", "1", "--overwrite"]);
            ok_in(&self.home, &args);
            let built = (answers(&idx), folder_bytes(&idx));
            self.built.insert(state.to_vec(), built);
        }
        &self.built[state]
    }
}

/// One kill campaign's shared parts: the index under test, the documents, clean builds.
struct Campaign {
    name: &'static str,
    home: PathBuf,
    idx: PathBuf,
    work: PathBuf,
    docs: Docs,
    clean: CleanBuilds,
    rng: Rng,
    /// Largest folder seen after a kill, relative to a clean build of the documents it holds
    /// records of (`held`).
    worst_growth: f64,
    /// Whether the campaign deletes: a deleted document's records (docstore, vectors) stay
    /// until a rebuild, so the folder is compared with a clean build of every document added
    /// since — what is left over by killed writers is what must stay bounded.
    keeps_deleted: bool,
    held: Vec<usize>,
    _tmp: tempfile::TempDir,
}

impl Campaign {
    fn new(name: &'static str, first: &[usize]) -> Campaign {
        let home = ferret_home();
        // In-process searches find the models where the ferret processes put them.
        std::env::set_var("FERRET_HOME", &home);
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().to_path_buf();
        let docs = Docs::new();
        let idx = work.join("idx");
        let c = Campaign {
            name,
            home: home.clone(),
            idx,
            work: work.clone(),
            docs,
            clean: CleanBuilds {
                home,
                dir: work.clone(),
                built: HashMap::new(),
            },
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64),
            worst_growth: 0.0,
            keeps_deleted: false,
            held: first.to_vec(),
            _tmp: tmp,
        };
        if !first.is_empty() {
            c.write_all(first, &["--overwrite"]);
        }
        c
    }

    fn corpus(&self, ns: &[usize]) -> PathBuf {
        let path = self.work.join("batch.jsonl");
        self.docs.write(&path, ns);
        path
    }

    /// `ferret index` run to the end on `ns` with the representations (`extra`: mode flags).
    fn write_all(&self, ns: &[usize], extra: &[&str]) {
        let corpus = self.corpus(ns);
        let mut args = vec!["index", "--corpus", s(&corpus), "--index", s(&self.idx)];
        args.extend_from_slice(REPRESENTATIONS);
        args.extend_from_slice(&["--threads", "1"]);
        args.extend_from_slice(extra);
        ok_in(&self.home, &args);
    }

    /// After a kill: the index holds `before` or `after` (`after` only, when `done`); returns
    /// the state found, having checked its answers and folder against a clean build.
    fn check(&mut self, k: usize, before: &[usize], after: &[usize], done: bool) -> Vec<usize> {
        let now = committed(&self.idx, &self.docs)
            .unwrap_or_else(|e| panic!("{} kill {k}: the index does not open: {e}", self.name));
        assert!(
            now == after || (now == before && !done),
            "{} kill {k}: {} documents, neither the {} before nor the {} after{}",
            self.name,
            now.len(),
            before.len(),
            after.len(),
            if done {
                " (the command had finished)"
            } else {
                ""
            }
        );
        let got = answers(&self.idx);
        let want = &self.clean.of(&self.docs, &now).0;
        assert_same_answers(&got, want, &format!("{} kill {k}", self.name));
        self.held = if self.keeps_deleted {
            let all: BTreeSet<usize> = self.held.iter().chain(&now).copied().collect();
            all.into_iter().collect()
        } else {
            now.clone()
        };
        let clean_bytes = self.clean.of(&self.docs, &self.held).1;
        let growth = folder_bytes(&self.idx) as f64 / clean_bytes as f64;
        self.worst_growth = self.worst_growth.max(growth);
        now
    }

    /// Asserts the leftovers stayed bounded during the campaign and are gone after a commit.
    fn finish(&mut self, kills: usize, interrupted: usize, landed: usize, whole: Duration) {
        assert_only_committed_files(&self.idx);
        eprintln!(
            "{}: {kills} kills (one write takes {} ms): {interrupted} interrupted, {landed} had committed; folder at most {:.2}x a clean build's",
            self.name,
            whole.as_millis(),
            self.worst_growth
        );
        // A killed writer leaves at most one generation's files behind (the commit it was
        // writing): bounded, whatever the number of kills.
        assert!(
            self.worst_growth < 3.0,
            "{}: leftovers grew to {:.2}x a clean build",
            self.name,
            self.worst_growth
        );
        assert!(
            interrupted >= kills / 3,
            "{}: too few kills landed mid-write: {interrupted} of {kills}",
            self.name
        );
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Rebuild,
    Append,
    Delete,
}

/// The next command of a campaign and the state it commits.
fn plan(
    c: &mut Campaign,
    mode: Mode,
    state: &[usize],
    next: &mut usize,
) -> (Vec<String>, Vec<usize>) {
    let idx = s(&c.idx).to_string();
    let mut args: Vec<String> = ["index", "--index", &idx, "--threads", "1"]
        .map(String::from)
        .to_vec();
    let with_corpus = |args: &mut Vec<String>, ns: &[usize], c: &Campaign| {
        args.extend(["--corpus".to_string(), s(&c.corpus(ns)).to_string()]);
        args.extend(REPRESENTATIONS.iter().map(|a| a.to_string()));
    };
    match mode {
        // Two corpora that share half their documents, in turn.
        Mode::Rebuild => {
            let after: Vec<usize> = if state.first() == Some(&0) {
                (60..180).collect()
            } else {
                (0..120).collect()
            };
            with_corpus(&mut args, &after, c);
            args.push("--overwrite".into());
            (args, after)
        }
        Mode::Append => {
            let batch: Vec<usize> = (*next..*next + 20).collect();
            *next += 20;
            with_corpus(&mut args, &batch, c);
            args.push("--append".into());
            (args, [state, &batch].concat())
        }
        Mode::Delete => {
            let mut gone = BTreeSet::new();
            while gone.len() < 5 {
                gone.insert(state[c.rng.below(state.len() as u64) as usize]);
            }
            for n in &gone {
                args.extend(["--delete".to_string(), format!("d{n}")]);
            }
            let after = state
                .iter()
                .copied()
                .filter(|n| !gone.contains(n))
                .collect();
            (args, after)
        }
    }
}

fn index_campaign(name: &'static str, mode: Mode) {
    let mut c = Campaign::new(name, &(0..120).collect::<Vec<_>>());
    c.keeps_deleted = matches!(mode, Mode::Delete);
    let mut state: Vec<usize> = (0..120).collect();
    let mut next = 1000;
    let spawn = |args: &[String], home: &Path| {
        Command::new(env!("CARGO_BIN_EXE_ferret"))
            .args(args)
            .env("FERRET_HOME", home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // One write run to the end: how long a whole one takes.
    let (args, after) = plan(&mut c, mode, &state, &mut next);
    let start = Instant::now();
    ok_in(
        &c.home,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let whole = start.elapsed();
    state = c.check(0, &state, &after, true);
    let kills = kills();
    let (mut interrupted, mut landed) = (0, 0);
    for k in 1..=kills {
        if matches!(mode, Mode::Delete) && state.len() < 60 {
            let batch: Vec<usize> = (next..next + 60).collect();
            next += 60;
            c.write_all(&batch, &["--append"]);
            state.extend(batch);
        }
        let (args, after) = plan(&mut c, mode, &state, &mut next);
        let ms = whole.as_millis() as u64;
        let delay = c.rng.below(ms + ms / 5 + 1);
        let mut child = spawn(&args, &c.home);
        std::thread::sleep(Duration::from_millis(delay));
        let done = child.try_wait().unwrap().is_some();
        child.kill().ok();
        child.wait().unwrap();
        let now = c.check(k, &state, &after, done);
        if now == after {
            landed += 1;
        } else {
            interrupted += 1;
        }
        state = now;
    }
    // The index takes a whole write again, and the commit clears what the kills left.
    let (args, after) = plan(&mut c, mode, &state, &mut next);
    ok_in(
        &c.home,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    c.check(kills + 1, &state, &after, true);
    c.finish(kills, interrupted, landed, whole);
}

#[test]
fn killed_rebuilds_keep_exactly_the_committed_documents() {
    index_campaign("rebuild", Mode::Rebuild);
}

#[test]
fn killed_appends_keep_exactly_the_committed_documents() {
    index_campaign("append", Mode::Append);
}

#[test]
fn killed_deletes_keep_exactly_the_committed_documents() {
    index_campaign("delete", Mode::Delete);
}

/// A write over HTTP: documents added in one request, or one deleted.
enum Write {
    Add(Vec<usize>),
    Delete(usize),
}

/// Sends a write; `None` when the server went away before answering.
fn send(url: &str, w: &Write, docs: &Docs) -> Option<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let r = match w {
        Write::Add(ns) => {
            let documents: Vec<serde_json::Value> = ns
                .iter()
                .map(|&n| {
                    let (title, text) = docs.get(n);
                    serde_json::json!({"id": format!("d{n}"), "title": title, "text": text})
                })
                .collect();
            agent
                .post(format!("{url}/v1/documents"))
                .header("Content-Type", "application/json")
                .send(serde_json::json!({ "documents": documents }).to_string())
        }
        Write::Delete(n) => agent.delete(format!("{url}/v1/documents/d{n}")).call(),
    };
    r.ok().map(|r| r.status().as_u16())
}

/// `ferret serve` SIGKILLed while clients' writes commit: the index holds every acknowledged
/// write, and the one in flight either wholly or not at all.
#[test]
fn killed_servers_keep_exactly_the_acknowledged_writes() {
    let mut c = Campaign::new("serve", &(0..120).collect::<Vec<_>>());
    c.keeps_deleted = true;
    let mut state: Vec<usize> = (0..120).collect();
    let mut next = 1000;
    let kills = kills();
    let (mut interrupted, mut landed) = (0, 0);
    let mut whole = Duration::ZERO;
    for k in 0..=kills {
        let server = common::server::Server::start(&c.idx, &["--threads", "1"]);
        let url = server.url.clone();
        // Kill 0 measures how long a write takes and is not killed.
        let killer = (k > 0).then(|| {
            let ms = 2 * whole.as_millis() as u64;
            let delay = c.rng.below(ms + 1);
            let pid = server.pid().to_string();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay));
                Command::new("kill").args(["-KILL", &pid]).status().unwrap();
            })
        });
        let mut ops = 0;
        let started = Instant::now();
        loop {
            let w = if ops % 3 == 2 {
                Write::Delete(state[c.rng.below(state.len() as u64) as usize])
            } else {
                next += 15;
                Write::Add((next - 15..next).collect())
            };
            let after: Vec<usize> = match &w {
                Write::Add(ns) => [&state[..], ns].concat(),
                Write::Delete(n) => state.iter().copied().filter(|m| m != n).collect(),
            };
            match send(&url, &w, &c.docs) {
                Some(200) => state = after,
                Some(code) => panic!("serve kill {k}: a write answered {code}"),
                None => {
                    killer
                        .expect("only a killed server drops a write")
                        .join()
                        .unwrap();
                    drop(server);
                    let now = c.check(k, &state, &after, false);
                    if now == after {
                        landed += 1;
                    } else {
                        interrupted += 1;
                    }
                    state = now;
                    break;
                }
            }
            ops += 1;
            if k == 0 && ops == 3 {
                whole = started.elapsed() / 3;
                server.terminate();
                c.check(0, &state, &state, true);
                break;
            }
        }
    }
    let server = common::server::Server::start(&c.idx, &["--threads", "1"]);
    next += 15;
    let batch: Vec<usize> = (next - 15..next).collect();
    assert_eq!(
        send(&server.url, &Write::Add(batch.clone()), &c.docs),
        Some(200)
    );
    server.terminate();
    let after = [&state[..], &batch].concat();
    c.check(kills + 1, &after, &after, true);
    c.finish(kills, interrupted, landed, whole);
}

/// Disk full: the index lives on a tmpfs of a few MB (mounted in a private mount namespace, so
/// no root is needed: `unshare -rm` runs this test binary again with the ignored test below).
#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_last_commit() {
    let out = Command::new("unshare")
        .args(["--map-root-user", "--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "disk_full_inside_a_small_filesystem",
        ])
        .args(["--nocapture", "--test-threads", "1"])
        .env("FERRET_HOME", ferret_home())
        .output()
        .expect("running unshare (util-linux)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(out.status.success(), "disk-full test failed:\n{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
#[ignore = "run by a_full_disk_fails_cleanly_and_keeps_the_last_commit in its own mount namespace"]
fn disk_full_inside_a_small_filesystem() {
    let mut c = Campaign::new("disk-full", &[]);
    let mnt = c.work.join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs", s(&mnt)])
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a tmpfs at {}", mnt.display());
    c.idx = mnt.join("idx");
    let mut state: Vec<usize> = (0..120).collect();
    c.write_all(&state, &[]);
    let available = || -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1", s(&mnt)])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().nth(1).unwrap().trim().parse().unwrap()
    };
    let filler = mnt.join("filler");
    let mut next = 1000;
    let (mut failed, mut fitted) = (0, 0);
    // Free space from none to more than an append of 60 documents takes: each write point of
    // the commit (docstore, vectors, graph, sparse files, lexical segment, manifest) runs out
    // in turn.
    for free in [0u64, 16, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048] {
        let fill = available().saturating_sub(free * 1024);
        std::fs::write(&filler, vec![0u8; fill as usize]).ok();
        let batch: Vec<usize> = (next..next + 60).collect();
        next += 60;
        let corpus = c.work.join("batch.jsonl");
        c.docs.write(&corpus, &batch);
        let mut args = vec!["index", "--corpus", s(&corpus), "--index", s(&c.idx)];
        args.extend_from_slice(REPRESENTATIONS);
        args.extend_from_slice(&["--threads", "1", "--append"]);
        let out = ferret_in(&c.home, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let after = [&state[..], &batch].concat();
        if out.status.success() {
            fitted += 1;
            state = c.check(free as usize, &state, &after, true);
        } else {
            failed += 1;
            assert_eq!(out.status.code(), Some(2), "{free} KB free: {stderr}");
            assert!(!stderr.contains("panicked"), "{free} KB free: {stderr}");
            assert!(
                stderr.contains("No space left on device"),
                "{free} KB free: the error does not say the disk is full: {stderr}"
            );
            // The previous commit, unchanged, answering as before.
            state = c.check(free as usize, &state, &state, false);
        }
        eprintln!(
            "{free:>5} KB free: {}",
            if out.status.success() {
                "the append fitted".to_string()
            } else {
                stderr.lines().last().unwrap_or("").to_string()
            }
        );
        std::fs::remove_file(&filler).ok();
    }
    assert!(failed >= 3, "only {failed} appends ran out of space");
    assert!(fitted >= 1, "no append fitted, even with the most space");
    // With the space back, writes succeed and clear what the failed ones left.
    let batch: Vec<usize> = (next..next + 30).collect();
    c.write_all(&batch, &["--append"]);
    let after = [&state[..], &batch].concat();
    c.check(99, &after, &after, true);
    assert_only_committed_files(&c.idx);
    Command::new("umount").arg(&mnt).status().unwrap();
}
