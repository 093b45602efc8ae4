#!/usr/bin/env python3
"""CLIP image encoding: ferret vs transformers (PyTorch), side by side in one run on the same
machine and threads, at ViT-B/32 dimensions (vision tower 768 wide, 12 layers, 12 heads, patch
32 at 224 px; text tower 512 wide, 12 layers; projection 512) with seeded random weights — no
real CLIP weights are reachable here, and speed does not depend on the values. Both sides start
from the JPEG files' bytes: decoding and preprocessing count. Also checks that both give the
same features at these dimensions (largest difference).

usage: python3 benches/clip_vs_transformers.py [--images 300] [--threads 2] [--data DIR]
       [--python PY]   (a Python with torch, transformers and pillow; default: installs them
                        into ~/.cache/ferret/clip-bench-venv)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cpuinfo import cpu

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ferret" / "clip-bench-venv"


TRANSFORMERS_SIDE = r"""
import json, sys, time, torch
from pathlib import Path
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPImageProcessor
out, fixture, images, threads = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
limit = int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
config = CLIPConfig(
    text_config=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12,
                     max_position_embeddings=77, vocab_size=49408, eos_token_id=49407, bos_token_id=49406,
                     pad_token_id=49407),
    vision_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                       image_size=224, patch_size=32),
    projection_dim=512)
model = CLIPModel(config).eval()
model.save_pretrained(out)
processor = CLIPImageProcessor.from_pretrained(fixture)
files = sorted(p for p in images.iterdir() if p.is_file())[:limit]
with torch.no_grad():
    # Warm-up (first-call allocations), not timed.
    model.get_image_features(**processor(images=[Image.open(files[0]).convert("RGB")], return_tensors="pt"))
    start = time.perf_counter()
    feats = []
    for i in range(0, len(files), 32):
        batch = [Image.open(f).convert("RGB") for f in files[i:i + 32]]
        x = model.get_image_features(**processor(images=batch, return_tensors="pt"))
        x = getattr(x, "pooler_output", x)
        feats.extend(x.tolist())
    secs = time.perf_counter() - start
print(json.dumps({"secs": secs, "n": len(files), "features": {f.stem: v for f, v in zip(files[:8], feats[:8])}}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("FERRET_DATA", ROOT.parent / "shared/data"))
    ap.add_argument("--fixtures", default=os.environ.get("FERRET_FIXTURES", ROOT.parent / "shared/fixtures"))
    ap.add_argument("--ferret", default=ROOT / "target/release/ferret")
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python", help="a Python with torch, transformers and pillow")
    a = ap.parse_args()
    py = a.python
    if not py:
        py = str(VENV / "bin/python")
        if subprocess.run([py, "-c", "import torch, transformers, PIL"], capture_output=True).returncode != 0:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(VENV / "bin/pip"), "install", "-q", "torch", "transformers", "pillow"], check=True)
    images = Path(a.data) / "flickr8k-test1k/images"
    fixture = Path(a.fixtures) / "tiny-clip"
    print(f"CPU: {cpu()}; {a.threads} threads; {a.images} Flickr8k JPEGs; ViT-B/32 dimensions, random weights")
    tmp = Path(tempfile.mkdtemp(prefix="ferret-clip-bench-"))
    model = tmp / "clip-b32"
    hf = json.loads(subprocess.run([py, "-c", TRANSFORMERS_SIDE, str(model), str(fixture), str(images),
                                    str(a.threads), str(a.images)],
                                   check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    for f in ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "preprocessor_config.json"]:
        shutil.copy(fixture / f, model / f)
    # A scratch folder holding the same first N files.
    subset = tmp / "images"
    subset.mkdir()
    for f in sorted(images.iterdir())[:a.images]:
        os.symlink(f, subset / f.name)
    out = tmp / "ferret.jsonl"
    r = subprocess.run([str(a.ferret), "encode", "--model", str(model), "--images", str(subset), "-o", str(out),
                        "--threads", str(a.threads)], check=True, capture_output=True, text=True)
    line = [l for l in r.stderr.splitlines() if " images in " in l][-1]
    ferret_secs = float(line.split(" images in ")[1].split("s")[0])
    ours = {json.loads(l)["id"]: json.loads(l)["vector"] for l in open(out)}
    worst = max(abs(x - y) for k, v in hf["features"].items() for x, y in zip(ours[k], v))
    n = hf["n"]
    print(f"transformers: {n / hf['secs']:.1f} images/s ({hf['secs']:.2f}s)")
    print(f"ferret:       {n / ferret_secs:.1f} images/s ({ferret_secs:.2f}s)")
    print(f"ratio ferret/transformers: {hf['secs'] / ferret_secs:.2f}x; largest feature difference on 8 images: {worst:.2e}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
