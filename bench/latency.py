"""Latency rows of ``python -m cpuformer bench``: small models, one request at
a time, where the cost is per call rather than per FLOP.

* L1  W3's shape: 2 encoder layers, d=128, 4 heads, ff=512, GELU, one
  sequence of 64 (cf.nn.TransformerEncoder against torch's
  TransformerEncoderLayer fast path; no Hugging Face twin, so no ONNX Runtime).
* L2  the same shape as a Hugging Face BERT (embeddings included), B1 x T64.
* L3  a MiniLM-L6-shaped BERT (6 layers, 384 wide, 12 heads, ff 1536) on one
  16-token sentence.
* L4  a ViT-Tiny-shaped ViTForImageClassification (12 layers, 192 wide, 3
  heads, ff 768, patch 16, 1000 classes) on one 224 x 224 image.

L2-L4 are random-weight Hugging Face checkpoints that every engine reads:
cpuformer (``from_pretrained``), PyTorch (transformers, eager attention,
``inference_mode``) and, when installed, ONNX Runtime float32 (the model
exported with ``torch.onnx.export`` and the transformer optimizer's fused
graph). Each engine lives in a process of its own (bench/precision.py says
why) with the same number of threads; outputs are checked against
cpuformer's before timing. Reported per engine: the median latency of one
call (rounds alternate between engines, each round after a pause and a
warm-up), the percentage of the FP32 FMA peak the matrix products reach at
that latency, and the throughput of a stream of such requests from 1 and
from 4 concurrent Python threads sharing one model.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from typing import Dict, List

import numpy as np

from .common import log
from .precision import export_wrapper

ROWS = ("L1", "L2", "L3", "L4")
TITLES = {
    "L1": "W3 encoder 2L-128, B1xT64",
    "L2": "HF BERT 2L-128 + embeddings, B1xT64",
    "L3": "MiniLM-L6-shaped BERT 6L-384, one 16-token sentence",
    "L4": "ViT-Tiny-shaped 12L-192, one 224x224 image",
}
SHAPES = {
    "L1": {"full": dict(layers=2, d=128, heads=4, ff=512, T=64), "smoke": dict(layers=1, d=32, heads=4, ff=64, T=8)},
    "L2": {"full": dict(layers=2, d=128, heads=4, ff=512, vocab=30522, T=64),
           "smoke": dict(layers=1, d=32, heads=4, ff=64, vocab=100, T=8)},
    "L3": {"full": dict(layers=6, d=384, heads=12, ff=1536, vocab=30522, T=16),
           "smoke": dict(layers=1, d=48, heads=4, ff=96, vocab=100, T=8)},
    "L4": {"full": dict(layers=12, d=192, heads=3, ff=768, image=224, patch=16, classes=1000),
           "smoke": dict(layers=1, d=32, heads=2, ff=64, image=32, patch=16, classes=10)},
}
CONCURRENT = 4  # Python threads in the concurrent-throughput measurement
PAUSE_S = 0.2   # between engines, so the previous one's threads go idle


def tokens(row: str, s) -> int:
    return (s["image"] // s["patch"]) ** 2 + 1 if row == "L4" else s["T"]


def flops(row: str, s) -> float:
    """Matrix-multiply FLOPs of one call (projections, attention products, feed-forward, patch embedding)."""
    n, d, ff = tokens(row, s), s["d"], s["ff"]
    per_layer = 2 * n * (4 * d * d + 2 * d * ff) + 2 * 2 * n * n * d
    extra = 2 * (n - 1) * 3 * s["patch"] ** 2 * d + 2 * d * s["classes"] if row == "L4" else 0
    return float(s["layers"] * per_layer + extra)


# --------------------------------------------------------------------------
# Checkpoints and inputs


def make_checkpoint(row: str, root: str, s) -> str:
    import torch
    import transformers

    d = os.path.join(root, row)
    if os.path.exists(os.path.join(d, "config.json")):
        return d
    torch.manual_seed(0)
    if row == "L4":
        cfg = transformers.ViTConfig(hidden_size=s["d"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                                     intermediate_size=s["ff"], image_size=s["image"], patch_size=s["patch"],
                                     num_labels=s["classes"])
        model = transformers.ViTForImageClassification(cfg)
    else:
        cfg = transformers.BertConfig(vocab_size=s["vocab"], hidden_size=s["d"], num_hidden_layers=s["layers"],
                                      num_attention_heads=s["heads"], intermediate_size=s["ff"],
                                      max_position_embeddings=512)
        model = transformers.BertModel(cfg, add_pooling_layer=False)
    model.eval().save_pretrained(d)
    return d


def inputs(row: str, s):
    rng = np.random.default_rng(0)
    if row == "L4":
        return {"pixel_values": rng.standard_normal((1, 3, s["image"], s["image"])).astype(np.float32)}
    if row == "L1":
        return {"x": rng.standard_normal((1, s["T"], s["d"])).astype(np.float32)}
    ids = rng.integers(0, s["vocab"], (1, s["T"])).astype(np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def onnx_model(row: str, d: str, s) -> str:
    """The exported model and the transformer optimizer's fused graph (float32)."""
    import torch
    import transformers

    raw, fused = os.path.join(d, "model.onnx"), os.path.join(d, "model_fused.onnx")
    if os.path.exists(fused):
        return fused
    x = inputs(row, s)
    if row == "L4":
        hf = transformers.ViTForImageClassification.from_pretrained(d, attn_implementation="eager").eval()
        args, names, model_type = (torch.from_numpy(x["pixel_values"]),), ["pixel_values"], "vit"
        axes = {"pixel_values": {0: "b"}}
    else:
        hf = transformers.BertModel.from_pretrained(d, attn_implementation="eager").eval()
        args = (torch.from_numpy(x["input_ids"]), torch.from_numpy(x["attention_mask"]))
        names, model_type = ["input_ids", "attention_mask"], "bert"
        axes = {"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}}
    log(f"[latency] {row}: exporting to ONNX (torch.onnx.export) ...")
    torch.onnx.export(export_wrapper(hf, model_type), args, raw, input_names=names, output_names=["out"],
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    from onnxruntime.transformers import optimizer

    m = optimizer.optimize_model(raw, model_type=model_type, num_heads=s["heads"], hidden_size=s["d"])
    stats = {k: v for k, v in m.get_fused_operator_statistics().items() if v}
    log(f"[latency] {row}: ONNX Runtime transformer optimizer ({model_type}): fused {stats}")
    m.save_model_to_file(fused)
    return fused


# --------------------------------------------------------------------------
# Engines, one process each


def build_engine(kind: str, row: str, root: str, s, threads: int):
    """In the worker: (step, detail) for one engine."""
    x = inputs(row, s)
    if kind == "cpuformer":
        import cpuformer as cf

        cf.set_num_threads(threads)
        if row == "L1":
            layer = cf.nn.TransformerEncoderLayer(s["d"], s["heads"], s["ff"], dropout=0.0, activation="gelu")
            model = cf.nn.TransformerEncoder(layer, s["layers"]).eval()
            src = x["x"]

            def step():
                with cf.no_grad():
                    return model(src)

            return step, "cf.nn.TransformerEncoder (eval, no_grad)"
        model = cf.from_pretrained(os.path.join(root, row))
        if row == "L4":
            px = x["pixel_values"]

            def step():
                with cf.no_grad():
                    return model(px)
        else:
            ids, mask = x["input_ids"], x["attention_mask"]

            def step():
                with cf.no_grad():
                    return model(ids, attention_mask=mask)

        return step, "cf.from_pretrained(dir) (eval, no_grad)"
    if kind == "torch":
        import torch

        torch.set_num_threads(threads)
        if row == "L1":
            layers = torch.nn.ModuleList([
                torch.nn.TransformerEncoderLayer(s["d"], s["heads"], s["ff"], dropout=0.0, activation="gelu",
                                                 batch_first=True) for _ in range(s["layers"])]).eval()
            src = torch.from_numpy(x["x"])

            def step():
                with torch.inference_mode():
                    h = src
                    for layer in layers:
                        h = layer(h)
                    return h.numpy()

            return step, "torch.nn.TransformerEncoderLayer (eval, inference_mode: the fused fast path)"
        import transformers

        d = os.path.join(root, row)
        if row == "L4":
            hf = transformers.ViTForImageClassification.from_pretrained(d, attn_implementation="eager").eval()
            px = torch.from_numpy(x["pixel_values"])
            run = lambda: hf(pixel_values=px).logits  # noqa: E731
        else:
            hf = transformers.BertModel.from_pretrained(d, attn_implementation="eager").eval()
            ids, mask = torch.from_numpy(x["input_ids"]), torch.from_numpy(x["attention_mask"])
            run = lambda: hf(input_ids=ids, attention_mask=mask).last_hidden_state  # noqa: E731

        def step():
            with torch.inference_mode():
                return run().numpy()

        return step, f"transformers {transformers.__version__} (eager attention, inference_mode)"
    if kind == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(os.path.join(root, row, "model_fused.onnx"), so,
                                    providers=["CPUExecutionProvider"])
        return (lambda: sess.run(None, x)[0]), f"onnxruntime {ort.__version__} float32, transformer-optimized graph"
    raise ValueError(f"unknown engine {kind!r}")


def _latencies(step, n: int) -> List[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        out.append(time.perf_counter() - t0)
    return out


def _throughput(step, threads: int, seconds: float) -> float:
    """Calls per second of `threads` Python threads calling step() in a loop for about `seconds`
    (threads = 1: this, the process's main thread)."""
    if threads == 1:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            step()
            n += 1
        return n / (time.perf_counter() - t0)
    counts = [0] * threads
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(threads + 1)

    def work(k):
        barrier.wait()
        while time.perf_counter() < stop:
            step()
            counts[k] += 1

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    t0 = time.perf_counter()
    barrier.wait()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def engine_worker(conn, kind, row, root, s, threads):
    try:
        step, detail = build_engine(kind, row, root, s, threads)
        out = np.asarray(step())
    except Exception as e:  # noqa: BLE001 - reported to the parent, which goes on without this engine
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", detail, out))
    while True:
        cmd = conn.recv()
        if cmd[0] == "latency":
            _latencies(step, cmd[2])  # warm-up after the pause
            conn.send(_latencies(step, cmd[1]))
        elif cmd[0] == "throughput":
            _latencies(step, 3)
            conn.send(_throughput(step, cmd[1], cmd[2]))
        else:
            break


def _start(kind, row, root, s, threads):
    from .precision import spawn_worker

    started = spawn_worker(engine_worker, (kind, row, root, s, threads), f"[latency] {row}: {kind}")
    if started is None:
        return None
    parent, proc, msg = started
    return {"kind": kind, "conn": parent, "proc": proc, "detail": msg[1], "output": msg[2], "times": []}


def _stop(e):
    try:
        e["conn"].send(("stop",))
    except (OSError, EOFError):
        pass
    e["proc"].join(timeout=60)
    if e["proc"].is_alive():
        e["proc"].kill()


def _check(e, reference) -> str:
    out = e["output"]
    if out.shape != reference.shape:
        e["ok"] = False
        return f"shape {out.shape} != {reference.shape}"
    err = float(np.max(np.abs(out - reference)) / max(float(np.max(np.abs(reference))), 1e-30))
    e["ok"] = err < 1e-3
    return f"max |diff| / max |ref| = {err:.1e}"


def run_latency(rows: List[str], threads: int, smoke: bool, torch_available: bool) -> Dict[str, object]:
    from cpuformer import _core

    have_ort = _has("onnxruntime") and _has("onnx")
    have_hf = torch_available and _has("transformers")
    seconds = 0.05 if smoke else 1.0
    peak = float(_core.fma_peak_gflops(seconds))
    log(f"[latency] FP32 FMA peak on {threads} threads: {peak:.1f} GFLOP/s")
    root = tempfile.mkdtemp(prefix="cpuformer-latency-")
    results = []
    for row in rows:
        s = SHAPES[row]["smoke" if smoke else "full"]
        kinds = ["cpuformer"]
        if row == "L1":
            kinds += ["torch"] if torch_available else []
        elif not have_hf:
            log(f"[latency] {row}: skipped (needs torch and transformers to make the checkpoint)")
            continue
        else:
            make_checkpoint(row, root, s)
            kinds.append("torch")
            if have_ort:
                try:
                    onnx_model(row, os.path.join(root, row), s)
                    kinds.append("onnxruntime")
                except Exception as e:  # noqa: BLE001 - the peer is optional
                    log(f"[latency] {row}: ONNX export/optimization failed, no ONNX Runtime row: "
                        f"{type(e).__name__}: {e}")
        engines = [e for e in (_start(k, row, root, s, threads) for k in kinds) if e is not None]
        if not engines or engines[0]["kind"] != "cpuformer":
            raise SystemExit(f"[latency] {row}: cpuformer's engine did not start")
        ref = engines[0]["output"]
        for e in engines:
            if row == "L1":  # each engine has its own random weights: nothing common to compare
                e["check"], e["ok"] = "own random weights", True
            else:
                e["check"] = _check(e, ref)
            log(f"[latency] {row} check {e['kind']}: {e['check']}")
        per_round = 3 if smoke else max(20, int(0.25 / max(1e-6, statistics.median(_probe(engines[0])))))
        rounds = 1 if smoke else 6
        try:
            for r in range(rounds):
                for e in (engines if r % 2 == 0 else engines[::-1]):
                    time.sleep(PAUSE_S)
                    e["conn"].send(("latency", per_round, 5))
                    e["times"].extend(e["conn"].recv())
            # Throughput in alternating rounds too (the 1- and 4-thread runs of
            # every engine interleaved), so drifting machine load hits all alike.
            for e in engines:
                e["calls_per_s_1"] = e[f"calls_per_s_{CONCURRENT}"] = 0.0
            for r in range(rounds):
                for e in (engines if r % 2 == 0 else engines[::-1]):
                    for nt in ((1, CONCURRENT) if r % 2 == 0 else (CONCURRENT, 1)):
                        time.sleep(PAUSE_S)
                        e["conn"].send(("throughput", nt, 0.05 if smoke else 0.4))
                        e[f"calls_per_s_{nt}"] += float(e["conn"].recv()) / rounds
        finally:
            for e in engines:
                _stop(e)
        ours = statistics.median(engines[0]["times"])
        res = {"id": row, "title": TITLES[row], "shape": s, "gflop": flops(row, s) / 1e9, "engines": []}
        for e in engines:
            med = statistics.median(e["times"])
            res["engines"].append({
                "name": e["kind"], "detail": e["detail"], "median_s": med, "check": e["check"], "agrees": e["ok"],
                "pct_peak": 100.0 * flops(row, s) / med / (peak * 1e9), "ratio": med / ours,
                "calls_per_s_1": e["calls_per_s_1"], f"calls_per_s_{CONCURRENT}": e[f"calls_per_s_{CONCURRENT}"],
            })
            log(f"[latency] {row} {e['kind']}: {med * 1e6:.0f} us, 1 thread {e['calls_per_s_1']:.0f}/s, "
                f"{CONCURRENT} threads {e[f'calls_per_s_{CONCURRENT}']:.0f}/s")
        results.append(res)
    return {"peak_gflops": peak, "threads": threads, "crossing_us": crossing_cost(), "rows": results}


def _probe(e) -> List[float]:
    e["conn"].send(("latency", 5, 2))
    return e["conn"].recv()


def _has(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def crossing_cost() -> Dict[str, float]:
    """Microseconds per call of the smallest calls: what validation, array conversion and the GIL cost."""
    import cpuformer as cf

    lin = cf.nn.Linear(4, 4).eval()
    x = np.ones((1, 4), np.float32)
    out = {}
    with cf.no_grad():
        for name, fn in (("Linear(4, 4) forward", lambda: lin(x)), ("functional.linear 1x4x4",
                                                                    lambda: cf.functional.linear(x, x))):
            for _ in range(2000):
                fn()
            t0 = time.perf_counter()
            for _ in range(20000):
                fn()
            out[name] = (time.perf_counter() - t0) / 20000 * 1e6
    return out


def _us(s: float) -> str:
    return f"{s * 1e6:,.0f} us" if s < 0.1 else f"{s * 1e3:,.1f} ms"


def format_latency(report: Dict[str, object]) -> List[str]:
    lines = ["", f"Latency: one request per call, {report['threads']} threads per call; FP32 FMA peak "
                 f"{report['peak_gflops']:.0f} GFLOP/s"]
    header = (f"    {'engine':<12} {'median':>10} {'% peak':>7} {'calls/s 1 thr':>14} "
              f"{f'calls/s {CONCURRENT} thr':>14} {f'{CONCURRENT}/1':>6} {'time vs cpuformer':>18}")
    for r in report["rows"]:
        lines.append(f"{r['id']}  {r['title']} ({r['gflop']:.4f} GFLOP per call)")
        lines.append(header)
        for e in r["engines"]:
            c1, c4 = e["calls_per_s_1"], e[f"calls_per_s_{CONCURRENT}"]
            lines.append(f"    {e['name']:<12} {_us(e['median_s']):>10} {e['pct_peak']:>6.0f}% {c1:>14,.0f} "
                         f"{c4:>14,.0f} {c4 / c1:>5.2f}x {e['ratio']:>17.2f}x"
                         + ("" if e["agrees"] else "  <-- output disagrees"))
        for e in r["engines"]:
            lines.append(f"      {e['name']}: {e['detail']}; check: {e['check']}")
    lines.append("  calls/s: a stream of such requests from 1 or 4 Python threads sharing one model; "
                 "time vs cpuformer: engine's median / cpuformer's (above 1: cpuformer is faster)")
    crossing = ", ".join(f"{k} {v:.1f} us" for k, v in report["crossing_us"].items())
    lines.append(f"  Python-to-C++ crossing (the smallest calls, all checks included): {crossing}")
    return lines
