"""The five benchmark workloads, each built for cpuformer and for PyTorch.

A workload knows its shapes (full and ``--smoke``), its FLOP count, how many
tokens one call processes, and how to build a *case* for either framework: an
object whose ``step()`` runs one timed call. torch is imported only inside the
torch builders, so a memory probe for cpuformer never loads it.

FLOP counts are matrix-multiply FLOPs only (2 per multiply-add; LayerNorm,
softmax, GELU, embeddings and the optimizer update are left out), the same
formula for both frameworks. With B batch, T tokens, d width, f feed-forward
width, L layers, V vocabulary:

* encoder layer, per token: 8·d² (QKV and output projections) + 4·d·f
  (feed-forward) + 4·T·d (QKᵀ and PV over all T keys);
* causal attention counts the lower triangle only: key j <= i, i.e. T(T+1)/2
  query-key pairs instead of T²;
* a training step is 3x its forward (backward = 2x forward: one product for
  the input gradient, one for the weight gradient);
* attention backward (W4) = 2x its forward, the model FLOPs without the
  forward recomputation a flash-style backward does;
* decoding with a KV cache (W5): every processed token costs L·24·d²
  (projections and MLP) + L·4·d·c (attention over its context c), plus 2·d·V
  for each position whose logits pick a token. Greedy decoding of N tokens
  after a P-token prompt processes P + N - 1 positions.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

# --------------------------------------------------------------------------
# FLOP formulas


def encoder_flops(B: int, T: int, d: int, f: int, layers: int) -> float:
    """Forward FLOPs of ``layers`` post-LN encoder layers on [B, T, d], full attention."""
    return float(layers) * B * T * (8 * d * d + 4 * d * f + 4 * T * d)


def causal_pairs(T: int) -> int:
    """Query-key pairs a causal mask keeps over T positions."""
    return T * (T + 1) // 2


def gpt_forward_flops(B: int, T: int, d: int, layers: int, vocab: int) -> float:
    """Forward FLOPs of a GPT-2 block stack (4x MLP) plus the tied LM head over every position."""
    per_layer = B * (T * 24 * d * d + 4 * d * causal_pairs(T))
    return float(layers) * per_layer + 2.0 * B * T * d * vocab


def attention_flops(B: int, H: int, T: int, D: int, causal: bool = True) -> float:
    """Forward FLOPs of attention: QKᵀ and PV, 2·D each per kept query-key pair."""
    pairs = causal_pairs(T) if causal else T * T
    return 4.0 * B * H * pairs * D


def decode_flops(prompt: int, new_tokens: int, d: int, layers: int, vocab: int) -> float:
    """Greedy KV-cache decoding (batch 1): prefill of the prompt, then one position per new token but the last."""
    positions = prompt + new_tokens - 1
    proj = positions * layers * 24.0 * d * d
    attn = sum(layers * 4.0 * d * (c + 1) for c in range(positions))
    head = new_tokens * 2.0 * d * vocab
    return proj + attn + head


# --------------------------------------------------------------------------
# Cases: one framework's ready-to-run instance of a workload


@dataclass
class Case:
    """``step()`` runs one call; ``first`` keeps the first call's result (NumPy) for the sanity check."""

    step_fn: Callable[[], Any]
    to_numpy: Callable[[Any], Any] = lambda r: r
    # Zero-copy views of the cpuformer model's parameters, read once to build
    # the torch twin (a copy here would count as cpuformer's memory).
    weights: Optional[Dict[str, np.ndarray]] = None
    label: str = ""
    first: Any = None
    keep_first: bool = True

    def step(self):
        out = self.step_fn()
        if self.keep_first and self.first is None:
            self.first = self.to_numpy(out)
        return out


def _torch():
    import torch

    return torch


def _to_torch(weights):
    torch = _torch()
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}


def _gelu_tanh(x):
    return _torch().nn.functional.gelu(x, approximate="tanh")


# --------------------------------------------------------------------------
# Workloads


@dataclass
class Workload:
    id: str
    title: str            # short name for the table
    stresses: str
    full: Dict[str, int]
    smoke: Dict[str, int]
    repeats: int = 5       # timed samples per framework
    warmup: int = 1        # untimed calls per framework before timing
    inner: int = 1         # calls per timed sample (time reported per call)
    unit: str = "tok/s"
    torch_note: str = ""
    shape: Dict[str, int] = field(default_factory=dict)

    def configure(self, smoke: bool) -> "Workload":
        w = dataclasses.replace(self, shape=dict(self.smoke if smoke else self.full))
        if smoke:
            w.repeats, w.warmup, w.inner = 1, 1, 1
        return w

    # Overridden per workload -------------------------------------------
    def describe(self) -> str:
        raise NotImplementedError

    def flops(self) -> float:
        raise NotImplementedError

    def tokens(self) -> int:
        raise NotImplementedError

    def inputs(self, seed: int = 0) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def build_cpuformer(self, inputs) -> Case:
        raise NotImplementedError

    def build_torch(self, inputs, weights=None) -> Case:
        raise NotImplementedError

    def compare(self, cf_first, torch_first) -> str:
        return ""


def _max_abs_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


class EncoderInference(Workload):
    """A stack of TransformerEncoderLayer(post-LN, GELU) in eval mode, batch-first input."""

    def describe(self) -> str:
        s = self.shape
        return (f"{s['layers']} encoder layer{'s' if s['layers'] > 1 else ''}, d={s['d']}, {s['heads']} heads, ff={s['ff']}, GELU, "
                f"batch {s['B']}x{s['T']}, inference")

    def flops(self) -> float:
        s = self.shape
        return encoder_flops(s["B"], s["T"], s["d"], s["ff"], s["layers"])

    def tokens(self) -> int:
        return self.shape["B"] * self.shape["T"]

    def inputs(self, seed=0):
        s = self.shape
        rng = np.random.default_rng(seed)
        return {"x": rng.standard_normal((s["B"], s["T"], s["d"])).astype(np.float32)}

    def build_cpuformer(self, inputs):
        import cpuformer as cf

        s = self.shape
        # One C++ call for the whole stack, under no_grad (nothing kept for a
        # backward), as torch runs under inference_mode.
        proto = cf.nn.TransformerEncoderLayer(s["d"], s["heads"], s["ff"], dropout=0.0, activation="gelu")
        stack = cf.nn.TransformerEncoder(proto, s["layers"]).eval()
        params = stack.parameters()
        rng = np.random.default_rng(1)
        for name, p in params.items():  # distinct weights per layer (the stack starts as copies)
            if name.endswith("weight") and "norm" not in name:
                p[...] = rng.uniform(-1, 1, p.shape) / np.sqrt(p.shape[-1])
        x = inputs["x"]

        def step():
            with cf.no_grad():
                return stack(x)

        weights = {k[len("layers."):]: v for k, v in stack.parameters().items()}
        return Case(step, weights=weights)

    def build_torch(self, inputs, weights=None):
        torch = _torch()
        s = self.shape
        layers = torch.nn.ModuleList([
            torch.nn.TransformerEncoderLayer(s["d"], s["heads"], s["ff"], dropout=0.0, activation="gelu",
                                             batch_first=True)
            for _ in range(s["layers"])]).eval()
        if weights is not None:
            layers.load_state_dict(_to_torch(weights))
        x = torch.from_numpy(inputs["x"])

        def step():
            with torch.inference_mode():
                h = x
                for layer in layers:
                    h = layer(h)
                return h

        return Case(step, to_numpy=lambda t: t.numpy().copy(), label="torch.nn.TransformerEncoderLayer "
                    "(eval, inference_mode: torch's fused encoder fast path)")

    def compare(self, cf_first, torch_first):
        return f"max |cpuformer - torch| over the output = {_max_abs_diff(cf_first, torch_first):.2e}"


class GPTMixin:
    def gpt_config(self):
        import cpuformer as cf

        s = self.shape
        return cf.GPTConfig(vocab_size=s["vocab"], block_size=s["block"], n_layer=s["layers"], n_head=s["heads"],
                            n_embd=s["d"])


def torch_gpt(shape):
    """GPT-2 from torch.nn parts with cpuformer's parameter names: token and
    position embeddings, pre-LN TransformerEncoderLayer blocks (tanh GELU,
    causal), final LayerNorm, LM head tied to the token embedding."""
    torch = _torch()
    nn = torch.nn
    d, V = shape["d"], shape["vocab"]

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(V, d)
            self.wpe = nn.Embedding(shape["block"], d)
            self.h = nn.ModuleList([
                nn.TransformerEncoderLayer(d, shape["heads"], 4 * d, dropout=0.0, activation=_gelu_tanh,
                                           batch_first=True, norm_first=True)
                for _ in range(shape["layers"])])
            self.ln_f = nn.LayerNorm(d)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T))
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
            for blk in self.h:
                # is_causal=True lets torch's attention take its causal kernel
                # (the boolean mask alone would force a masked, materialised softmax).
                x = blk(x, src_mask=mask, is_causal=True)
            return self.ln_f(x) @ self.wte.weight.T

    return TorchGPT()


class GPTTraining(GPTMixin, Workload):
    def describe(self) -> str:
        s = self.shape
        return (f"GPT {s['layers']} layers, d={s['d']}, {s['heads']} heads, vocab {s['vocab']}, batch "
                f"{s['B']}x{s['T']}: zero_grad + forward + loss + backward + AdamW step")

    def flops(self) -> float:
        s = self.shape
        return 3.0 * gpt_forward_flops(s["B"], s["T"], s["d"], s["layers"], s["vocab"])

    def tokens(self) -> int:
        return self.shape["B"] * self.shape["T"]

    def inputs(self, seed=0):
        s = self.shape
        rng = np.random.default_rng(seed)
        return {"idx": rng.integers(0, s["vocab"], (s["B"], s["T"])).astype(np.int64),
                "targets": rng.integers(0, s["vocab"], (s["B"], s["T"])).astype(np.int64)}

    def build_cpuformer(self, inputs):
        import cpuformer as cf

        model = cf.GPT(self.gpt_config()).train()
        opt = cf.optim.AdamW(model, lr=1e-4)
        idx, targets = inputs["idx"], inputs["targets"]

        def step():
            opt.zero_grad()
            loss = model.loss(idx, targets)
            model.backward()
            opt.step()
            return loss

        return Case(step, to_numpy=float, weights=model.parameters())

    def build_torch(self, inputs, weights=None):
        torch = _torch()
        F = torch.nn.functional
        model = torch_gpt(self.shape).train()
        if weights is not None:
            model.load_state_dict(_to_torch(weights))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        idx, targets = torch.from_numpy(inputs["idx"]), torch.from_numpy(inputs["targets"])
        V = self.shape["vocab"]

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(idx).view(-1, V), targets.view(-1))
            loss.backward()
            opt.step()
            return loss

        return Case(step, to_numpy=lambda t: float(t.item()),
                    label="GPT twin from torch.nn layers (causal SDPA) + torch.optim.AdamW (defaults)")

    def compare(self, cf_first, torch_first):
        return (f"first-step loss cpuformer {cf_first:.6f} vs torch {torch_first:.6f} "
                f"(|diff| {abs(cf_first - torch_first):.1e})")


class AttentionTraining(Workload):
    def describe(self) -> str:
        s = self.shape
        return (f"causal scaled_dot_product_attention forward + backward, [{s['B']}, {s['H']}, {s['T']}, "
                f"{s['D']}]")

    def flops(self) -> float:
        s = self.shape
        return 3.0 * attention_flops(s["B"], s["H"], s["T"], s["D"], causal=True)

    def tokens(self) -> int:
        return self.shape["B"] * self.shape["T"]

    def inputs(self, seed=0):
        s = self.shape
        rng = np.random.default_rng(seed)
        shp = (s["B"], s["H"], s["T"], s["D"])
        return {k: rng.standard_normal(shp).astype(np.float32) for k in ("q", "k", "v", "grad")}

    def build_cpuformer(self, inputs):
        import cpuformer as cf

        F = cf.functional
        q, k, v, g = inputs["q"], inputs["k"], inputs["v"], inputs["grad"]

        def step():
            out, lse = F.scaled_dot_product_attention(q, k, v, is_causal=True, return_lse=True)
            return (out, *F.scaled_dot_product_attention_backward(g, q, k, v, is_causal=True, out=out, lse=lse))

        return Case(step, label="functional API: forward with return_lse=True, backward from the saved out and lse "
                                "(as torch's autograd saves them)")

    def build_torch(self, inputs, weights=None):
        torch = _torch()
        q, k, v = (torch.from_numpy(inputs[n]).requires_grad_() for n in ("q", "k", "v"))
        g = torch.from_numpy(inputs["grad"])

        def step():
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return (out.detach(), *torch.autograd.grad(out, (q, k, v), g))

        return Case(step, to_numpy=lambda ts: tuple(t.numpy().copy() for t in ts),
                    label="torch.nn.functional.scaled_dot_product_attention(is_causal=True) + autograd")

    def compare(self, cf_first, torch_first):
        names = ("out", "dq", "dk", "dv")
        return "max |cpuformer - torch|: " + ", ".join(
            f"{n} {_max_abs_diff(a, b):.1e}" for n, a, b in zip(names, cf_first, torch_first))


def _have_transformers() -> bool:
    try:
        import transformers  # noqa: F401
    except Exception:
        return False
    return True


class GPTDecoding(GPTMixin, Workload):
    def describe(self) -> str:
        s = self.shape
        return (f"GPT (W2's shape: {s['layers']} layers, d={s['d']}, vocab {s['vocab']}) greedy decoding of "
                f"{s['new']} tokens after a {s['prompt']}-token prompt, batch 1, KV cache")

    def flops(self) -> float:
        s = self.shape
        return decode_flops(s["prompt"], s["new"], s["d"], s["layers"], s["vocab"])

    def tokens(self) -> int:
        return self.shape["new"]

    def inputs(self, seed=0):
        s = self.shape
        rng = np.random.default_rng(seed)
        return {"prompt": rng.integers(0, s["vocab"], (1, s["prompt"])).astype(np.int64)}

    def build_cpuformer(self, inputs):
        import cpuformer as cf

        model = cf.GPT(self.gpt_config()).eval()
        prompt, new = inputs["prompt"], self.shape["new"]

        def step():
            return model.generate(prompt, new, temperature=0.0)

        return Case(step, weights=model.parameters())

    def build_torch(self, inputs, weights=None):
        if _have_transformers():
            return self._build_hf(inputs, weights)
        return self._build_kv_loop(inputs, weights)

    def _build_hf(self, inputs, weights):
        torch = _torch()
        import transformers

        s = self.shape
        config = transformers.GPT2Config(
            vocab_size=s["vocab"], n_positions=s["block"], n_embd=s["d"], n_layer=s["layers"], n_head=s["heads"],
            activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=0, eos_token_id=None, pad_token_id=0)
        model = transformers.GPT2LMHeadModel(config).eval()
        if weights is not None:
            missing, unexpected = model.load_state_dict(_hf_gpt2_weights(weights, s["layers"]), strict=False)
            params = dict(model.named_parameters())
            missing = [k for k in missing if k in params]  # buffers (causal masks) may be absent
            if missing or unexpected:
                raise RuntimeError(f"W5: GPT-2 weight mapping is incomplete: missing {missing}, "
                                   f"unexpected {unexpected}")
        prompt = torch.from_numpy(inputs["prompt"])
        mask = torch.ones_like(prompt)
        new = s["new"]

        def step():
            with torch.inference_mode():
                return model.generate(prompt, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                      do_sample=False, use_cache=True, pad_token_id=0)

        return Case(step, to_numpy=lambda t: t.numpy().copy(),
                    label=f"transformers {transformers.__version__} GPT2LMHeadModel.generate(do_sample=False, "
                    "use_cache=True)")

    def _build_kv_loop(self, inputs, weights):
        torch = _torch()
        F = torch.nn.functional
        s = self.shape
        model = torch_gpt(s).eval()
        if weights is not None:
            model.load_state_dict(_to_torch(weights))
        d, H = s["d"], s["heads"]
        D = d // H
        prompt = torch.from_numpy(inputs["prompt"])
        new = s["new"]

        def forward(tokens, caches, pos):
            """tokens [1, t] at positions pos..pos+t-1 -> logits of the last position [1, V]."""
            t = tokens.shape[1]
            x = model.wte(tokens) + model.wpe(torch.arange(pos, pos + t))
            for blk, (kc, vc) in zip(model.h, caches):
                attn = blk.self_attn
                qkv = F.linear(blk.norm1(x), attn.in_proj_weight, attn.in_proj_bias)
                q, k, v = (z.view(1, t, H, D).transpose(1, 2) for z in qkv.split(d, dim=-1))
                kc[:, :, pos:pos + t] = k
                vc[:, :, pos:pos + t] = v
                y = F.scaled_dot_product_attention(q, kc[:, :, :pos + t], vc[:, :, :pos + t], is_causal=t > 1)
                x = x + attn.out_proj(y.transpose(1, 2).reshape(1, t, d))
                x = x + blk.linear2(_gelu_tanh(blk.linear1(blk.norm2(x))))
            return model.ln_f(x[:, -1]) @ model.wte.weight.T

        def step():
            with torch.inference_mode():
                P = prompt.shape[1]
                caches = [(torch.empty(1, H, P + new, D), torch.empty(1, H, P + new, D)) for _ in model.h]
                out = torch.empty(1, P + new, dtype=torch.int64)
                out[:, :P] = prompt
                logits = forward(prompt, caches, 0)
                for i in range(new):
                    nxt = logits.argmax(dim=-1)
                    out[:, P + i] = nxt
                    if i + 1 < new:
                        logits = forward(nxt.view(1, 1), caches, P + i)
                return out

        return Case(step, to_numpy=lambda t: t.numpy().copy(),
                    label="hand-written KV-cache greedy loop over the torch.nn GPT twin (transformers not installed)")

    def compare(self, cf_first, torch_first):
        P = self.shape["prompt"]
        a, b = np.asarray(cf_first)[0, P:], np.asarray(torch_first)[0, P:]
        if a.shape != b.shape:
            return f"output shapes differ: cpuformer {a.shape}, torch {b.shape}"
        diverge = np.nonzero(a != b)[0]
        agree = len(a) if len(diverge) == 0 else int(diverge[0])
        return f"greedy tokens identical for the first {agree} of {len(a)} (same weights)"


def _hf_gpt2_weights(w, layers):
    """cpuformer GPT parameter names -> transformers GPT2LMHeadModel (Conv1D weights are [in, out])."""
    torch = _torch()
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    out = {"transformer.wte.weight": t(w["wte.weight"]), "transformer.wpe.weight": t(w["wpe.weight"]),
           "transformer.ln_f.weight": t(w["ln_f.weight"]), "transformer.ln_f.bias": t(w["ln_f.bias"]),
           "lm_head.weight": t(w["wte.weight"])}
    for i in range(layers):
        src, dst = f"h.{i}.", f"transformer.h.{i}."
        pairs = [("norm1", "ln_1"), ("norm2", "ln_2")]
        for a, b in pairs:
            out[dst + b + ".weight"] = t(w[src + a + ".weight"])
            out[dst + b + ".bias"] = t(w[src + a + ".bias"])
        conv = [("self_attn.in_proj", "attn.c_attn"), ("self_attn.out_proj", "attn.c_proj"),
                ("linear1", "mlp.c_fc"), ("linear2", "mlp.c_proj")]
        for a, b in conv:
            wa = w[src + a + ("_weight" if a.endswith("in_proj") else ".weight")]
            ba = w[src + a + ("_bias" if a.endswith("in_proj") else ".bias")]
            out[dst + b + ".weight"] = t(np.asarray(wa).T)
            out[dst + b + ".bias"] = t(ba)
    return out


WORKLOADS: List[Workload] = [
    EncoderInference(
        "W1", "BERT-base encoder inference", "large GEMMs",
        full=dict(layers=12, d=768, heads=12, ff=3072, B=8, T=128),
        smoke=dict(layers=2, d=32, heads=4, ff=64, B=2, T=8),
        repeats=3),
    GPTTraining(
        "W2", "GPT training step", "whole training path",
        full=dict(layers=6, d=512, heads=8, vocab=8192, block=256, B=8, T=256),
        smoke=dict(layers=2, d=32, heads=4, vocab=64, block=16, B=2, T=16),
        repeats=3),
    EncoderInference(
        "W3", "small encoder latency", "per-call overhead",
        full=dict(layers=2, d=128, heads=4, ff=512, B=1, T=64),
        smoke=dict(layers=1, d=32, heads=4, ff=64, B=1, T=8),
        repeats=9, warmup=20, inner=20),
    AttentionTraining(
        "W4", "causal attention fwd+bwd", "flash-style attention",
        full=dict(B=1, H=8, T=4096, D=64),
        smoke=dict(B=1, H=2, T=64, D=16),
        repeats=5),
    GPTDecoding(
        "W5", "GPT greedy decoding", "KV cache",
        full=dict(layers=6, d=512, heads=8, vocab=8192, block=256, prompt=16, new=128),
        smoke=dict(layers=2, d=32, heads=4, vocab=64, block=16, prompt=4, new=8),
        repeats=5, unit="new tok/s"),
]

BY_ID = {w.id: w for w in WORKLOADS}
