"""An exact (float64) llama forward pass over a GGUF's dequantized weights, in numpy: the
reference for ferret's GGUF runtime, which computes in f32 on the same dequantized weights.
(llama.cpp quantises activations to 8 bits inside its matrix products, so it differs from
both by up to ~0.25 in log-probability on SmolLM2-135M.)"""
import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


class ExactLlama:
    def __init__(self, path):
        r = GGUFReader(path)
        f = lambda k: r.fields[k].parts[r.fields[k].data[0]][0]
        self.n_layer = int(f("llama.block_count"))
        self.n_head = int(f("llama.attention.head_count"))
        self.n_kv = int(f("llama.attention.head_count_kv"))
        self.eps = float(f("llama.attention.layer_norm_rms_epsilon"))
        self.theta = float(f("llama.rope.freq_base"))
        self.w = {}
        for t in r.tensors:
            shape = [int(x) for x in reversed(t.shape.tolist())]
            self.w[t.name] = dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float64)
        self.dim = self.w["token_embd.weight"].shape[1]
        self.head_dim = self.dim // self.n_head

    def norm(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def rope(self, x):  # x: (T, heads, head_dim); GGUF llama weights use interleaved pairs
        T = x.shape[0]
        inv = 1.0 / self.theta ** (np.arange(0, self.head_dim, 2) / self.head_dim)
        ang = np.arange(T)[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    def last_logits(self, ids):
        w = self.w
        out = w.get("output.weight", w["token_embd.weight"])
        return out @ self.last_hidden(ids)

    def last_hidden(self, ids):
        """The final hidden state (after the output norm) at the last position."""
        w = self.w
        x = w["token_embd.weight"][ids]
        T = len(ids)
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for i in range(self.n_layer):
            p = f"blk.{i}."
            h = self.norm(x, w[p + "attn_norm.weight"])
            q = (h @ w[p + "attn_q.weight"].T).reshape(T, self.n_head, self.head_dim)
            k = (h @ w[p + "attn_k.weight"].T).reshape(T, self.n_kv, self.head_dim)
            v = (h @ w[p + "attn_v.weight"].T).reshape(T, self.n_kv, self.head_dim)
            q, k = self.rope(q), self.rope(k)
            rep = self.n_head // self.n_kv
            k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
            att = np.einsum("thd,shd->hts", q, k) / np.sqrt(self.head_dim) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, v).reshape(T, self.dim)
            x = x + o @ w[p + "attn_output.weight"].T
            h = self.norm(x, w[p + "ffn_norm.weight"])
            g = h @ w[p + "ffn_gate.weight"].T
            u = h @ w[p + "ffn_up.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "ffn_down.weight"].T
        return self.norm(x[-1], w["output_norm.weight"])
