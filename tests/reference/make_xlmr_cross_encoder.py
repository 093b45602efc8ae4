"""Makes tests/reference/tiny-xlmr-cross-encoder: an XLMRobertaForSequenceClassification with
tiny pseudo-random weights (the bge-reranker layout: `roberta.` encoder, RoBERTa position ids offset
past the padding id, one token type, `classifier.dense` + tanh + `classifier.out_proj` on <s>)
and a SentencePiece-Unigram tokenizer trained on SciFact (XLM-R's tokenizer type, with its
`<s> A </s></s> B </s>` pair template), plus reference.json: token ids and logits from
transformers for SciFact (query, passage) pairs at max_length 128 and 64 (only_second).

No XLM-R weights are reachable here; this checks the architecture and loading code against
transformers' own implementation. The weights are not stored: every parameter (in name order,
row-major) is filled from one 64-bit LCG stream (`weight_stream` below), which the Rust test
(`crates/ferret-models/tests/xlmr_cross_encoder.rs`) replays to write the same safetensors file;
reference.json lists the tensors' names and shapes. Run with torch, transformers and tokenizers installed:

    python tests/reference/make_xlmr_cross_encoder.py ../shared/data/beir-scifact
"""
import gzip
import json
import os
import sys

import torch
from tokenizers import SentencePieceUnigramTokenizer
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForSequenceClassification

scifact = sys.argv[1]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny-xlmr-cross-encoder")
os.makedirs(out, exist_ok=True)

docs = [json.loads(l) for l in gzip.open(os.path.join(scifact, "corpus.jsonl.gz"), "rt")]
queries = [json.loads(l) for l in open(os.path.join(scifact, "queries.jsonl"))]
texts = [d["title"] + " " + d["text"] for d in docs[:3000]]

special = ["<s>", "<pad>", "</s>", "<unk>"]
tok = SentencePieceUnigramTokenizer()
tok.train_from_iterator(texts, vocab_size=800, special_tokens=special, unk_token="<unk>", show_progress=False)
tok.post_processor = TemplateProcessing(
    single="<s> $A </s>",
    pair="<s> $A </s> </s> $B </s>",
    special_tokens=[("<s>", 0), ("</s>", 2)],
)
assert [tok.token_to_id(t) for t in special] == [0, 1, 2, 3]
tok.save(os.path.join(out, "tokenizer.json"))
fast = PreTrainedTokenizerFast(
    tokenizer_file=os.path.join(out, "tokenizer.json"),
    bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
    pad_token="<pad>", unk_token="<unk>",
)

torch.manual_seed(20261126)
config = XLMRobertaConfig(
    vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64, max_position_embeddings=130, type_vocab_size=1, pad_token_id=1,
    bos_token_id=0, eos_token_id=2, num_labels=1, layer_norm_eps=1e-5,
)
model = XLMRobertaForSequenceClassification(config).eval()


def weight_stream():
    """Uniform values in [-1, 1) from a 64-bit LCG (Knuth's MMIX constants), seed 20261126."""
    x = 20261126
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield (x >> 11) / float(1 << 53) * 2.0 - 1.0


def scale(name):
    # Larger than the default init, so that logits differ clearly between pairs.
    if "LayerNorm.weight" in name:
        return lambda u: 1.0 + 0.2 * u
    if name.startswith("classifier"):
        return lambda u: 1.0 * u
    return lambda u: 0.2 * u


stream = weight_stream()
tensors = []
with torch.no_grad():
    for name, p in sorted(model.named_parameters()):
        f = scale(name)
        values = [f(next(stream)) for _ in range(p.numel())]
        p.copy_(torch.tensor(values, dtype=torch.float64).reshape(p.shape).to(torch.float32))
        tensors.append([name, list(p.shape)])
config.architectures = ["XLMRobertaForSequenceClassification"]
config.save_pretrained(out)

cases = []
for q, d in zip(queries[:6], docs[100:106]):
    passages = [d["title"] + " " + d["text"]] + [x["title"] + " " + x["text"] for x in docs[200 + len(cases):203 + len(cases)]]
    for max_length in (128, 64):
        for passage in passages:
            enc = fast(q["text"], passage, truncation="only_second", max_length=max_length, return_tensors="pt")
            with torch.no_grad():
                logit = model(**enc).logits[0, 0].item()
            cases.append({"query": q["text"], "passage": passage, "max_length": max_length,
                          "input_ids": enc["input_ids"][0].tolist(), "logit": logit})
json.dump({"generator": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}",
           "note": "pseudo-random weights from an LCG, not stored; see make_xlmr_cross_encoder.py",
           "tensors": tensors, "cases": cases},
          open(os.path.join(out, "reference.json"), "w"), indent=1)
print(f"{len(cases)} cases in {out}")
