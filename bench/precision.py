"""Precision rows of ``python -m cpuformer bench``: W1 and W5 in bfloat16 and
int8 (W1-bf16, W1-int8, W5-bf16, W5-int8), each beside cpuformer float32 and,
when installed, the engines people deploy at that precision, in the same run
on the same weights:

* W1 (BERT-base encoder inference, B8 x T128) runs as a Hugging Face
  ``BertModel`` (12 layers, 768 wide, random weights) so every engine reads
  the same checkpoint: cpuformer (``from_pretrained(dir, dtype=...)``),
  PyTorch (``torch.autocast("cpu", dtype=torch.bfloat16)`` /
  ``torch.ao.quantization.quantize_dynamic``), ONNX Runtime (the model
  exported with ``torch.onnx.export``, the transformer optimizer's fused BERT
  graph in float32, and that graph through ``quantize_dynamic`` for int8;
  ONNX Runtime has no bfloat16 CPU kernels, so the bf16 row shows its float32).
* W5 (GPT 6L-512, vocab 8192, greedy decoding of 128 tokens after 16, batch
  1) runs as a ``GPT2LMHeadModel``: cpuformer, PyTorch (``generate`` under
  autocast / ``quantize_dynamic``) and CTranslate2 (the model converted with
  its Transformers converter, ``compute_type`` int8, or bfloat16 where the
  CPU build supports it).

Each engine lives in a process of its own (see engine_worker). Every
engine's first output is checked against the float32 reference before
anything is timed (W1: relative difference of the hidden states; W5: how many
greedy tokens agree with cpuformer float32). Engines alternate call by call,
each call after a pause that lets the previous engine's threads go idle; the
reported time is the median. Peers are optional (``pip install
".[peers]"``); a missing one is reported, not fatal.
"""
from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .common import log

ROWS = ("W1-bf16", "W1-int8", "W5-bf16", "W5-int8")
PRECISION = {"bf16": "bfloat16", "int8": "int8"}

SHAPES = {
    "W1": {"full": dict(layers=12, d=768, heads=12, ff=3072, vocab=30522, B=8, T=128),
           "smoke": dict(layers=2, d=32, heads=4, ff=64, vocab=100, B=2, T=8)},
    "W5": {"full": dict(layers=6, d=512, heads=8, vocab=8192, block=256, prompt=16, new=128),
           "smoke": dict(layers=2, d=32, heads=4, vocab=64, block=32, prompt=4, new=8)},
}


@dataclass
class Engine:
    name: str            # "cpuformer int8", "onnxruntime int8", ...
    conn: object         # pipe to its worker process
    proc: object
    detail: str = ""     # how it was built
    output: object = None
    check: str = ""
    ok: bool = True
    times: List[float] = field(default_factory=list)
    request: object = "run"  # what timed_call sends (one worker may serve several requests)

    def timed_call(self) -> float:
        self.conn.send(self.request)
        return float(self.conn.recv())

    def stop(self):
        """Stops the worker (also when it has stopped already: several Engines may share one)."""
        try:
            self.conn.send("stop")
        except (OSError, EOFError):
            pass
        self.proc.join(timeout=60)
        if self.proc.is_alive():
            self.proc.kill()


def _try_import(name):
    try:
        return __import__(name)
    except Exception:  # noqa: BLE001 - an optional peer that fails to import is simply absent
        return None


# --------------------------------------------------------------------------
# Checkpoints shared by every engine


def _bert_dir(root: str, s: Dict[str, int]) -> str:
    import torch
    import transformers

    d = os.path.join(root, "bert")
    if os.path.exists(os.path.join(d, "config.json")):
        return d
    cfg = transformers.BertConfig(vocab_size=s["vocab"], hidden_size=s["d"], num_hidden_layers=s["layers"],
                                  num_attention_heads=s["heads"], intermediate_size=s["ff"],
                                  max_position_embeddings=max(512, s["T"]))
    cfg._attn_implementation = "eager"  # the graph ONNX Runtime's optimizer fuses
    torch.manual_seed(0)
    transformers.BertModel(cfg, add_pooling_layer=False).eval().save_pretrained(d)
    return d


def _gpt_dir(root: str, s: Dict[str, int]) -> str:
    import torch
    import transformers

    d = os.path.join(root, "gpt2")
    if os.path.exists(os.path.join(d, "config.json")):
        return d
    cfg = transformers.GPT2Config(vocab_size=s["vocab"], n_positions=s["block"], n_embd=s["d"], n_layer=s["layers"],
                                  n_head=s["heads"], activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                                  attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # a larger (tied) embedding: peaked logits, as in a trained model, so greedy
        model.transformer.wte.weight.mul_(8.0)  # decoding does not hinge on near-ties of random weights
    model.save_pretrained(d)
    # A word-level vocabulary "t0".."t{V-1}": CTranslate2's converter reads the
    # tokenizer for the token strings its generator speaks.
    tk = _try_import("tokenizers")
    if tk is not None:
        from tokenizers import Tokenizer, models, pre_tokenizers

        tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(s["vocab"])}, unk_token="t0"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.save(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "t0", "eos_token": "t0",
                       "unk_token": "t0", "model_max_length": s["block"]}, f)
    return d


# --------------------------------------------------------------------------
# W1: BERT-base encoder


def _bert_inputs(s):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, s["vocab"], (s["B"], s["T"])).astype(np.int64)
    return ids, np.ones_like(ids)


def _ort_session(path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _onnx_models(d: str, s, threads) -> Dict[str, str]:
    """The exported BERT, its fused float32 graph and the int8 quantization of that graph."""
    import torch
    import transformers

    raw, fused, q8 = (os.path.join(d, n) for n in ("bert.onnx", "bert_fused.onnx", "bert_int8.onnx"))
    if not os.path.exists(raw):
        hf = transformers.BertModel.from_pretrained(d, attn_implementation="eager").eval()

        ids, mask = _bert_inputs(s)
        log("[precision] exporting the BERT to ONNX (torch.onnx.export) ...")
        torch.onnx.export(export_wrapper(hf, "bert"), (torch.from_numpy(ids), torch.from_numpy(mask)), raw,
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}},
                          opset_version=17, dynamo=False)
    if not os.path.exists(fused):
        from onnxruntime.transformers import optimizer

        log("[precision] ONNX Runtime transformer optimizer (model_type bert) ...")
        m = optimizer.optimize_model(raw, model_type="bert", num_heads=s["heads"], hidden_size=s["d"])
        stats = {k: v for k, v in m.get_fused_operator_statistics().items() if v}
        log(f"[precision] fused operators: {stats}")
        m.save_model_to_file(fused)
    if not os.path.exists(q8):
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        log("[precision] ONNX Runtime quantize_dynamic (QInt8 weights) ...")
        quantize_dynamic(fused, q8, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return {"float32": fused, "int8": q8}


def export_wrapper(hf, kind: str):
    """A torch module around a transformers model that takes the tensors positionally and returns one
    tensor, for torch.onnx.export: "bert" (input_ids, attention_mask) -> last_hidden_state, "vit"
    (pixel_values) -> logits."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = hf

        def forward(self, *args):
            if kind == "vit":
                return self.m(pixel_values=args[0]).logits
            return self.m(input_ids=args[0], attention_mask=args[1]).last_hidden_state

    return Wrapped()


# Each engine is built and timed in a process of its own (engine_worker):
# OpenMP runtimes loaded side by side in one process were measured to slow
# each other's short parallel regions (cpuformer's decoding ran 3x slower
# after torch and CTranslate2 had run in the same process), and a deployed
# engine has its process to itself.

def build_engine(kind: str, wid: str, precision: str, root: str, s, threads: int):
    """In the worker: (step, detail) for one engine of one row."""
    if kind.startswith("cpuformer"):
        import cpuformer as cf

        cf.set_num_threads(threads)
        d = os.path.join(root, "bert" if wid == "W1" else "gpt2")
        dtype = precision if kind == "cpuformer" else "float32"
        model = cf.from_pretrained(d, dtype=dtype)
        detail = f"cf.from_pretrained(dir, dtype={dtype!r})"
        if wid == "W1":
            ids, mask = _bert_inputs(s)

            def step():
                with cf.no_grad():
                    return model(ids, attention_mask=mask)

            return step, detail
        prompt = _gpt_prompt(s)
        return (lambda: model.generate(prompt, s["new"], temperature=0)[0, s["prompt"]:]), detail + ".generate(greedy)"
    if kind == "torch":
        import torch
        import transformers

        torch.set_num_threads(threads)
        d = os.path.join(root, "bert" if wid == "W1" else "gpt2")
        if wid == "W1":
            hf = transformers.BertModel.from_pretrained(d, attn_implementation="eager").eval()
            ids, mask = (torch.from_numpy(a) for a in _bert_inputs(s))
            run = lambda m: m(input_ids=ids, attention_mask=mask).last_hidden_state.float().numpy()  # noqa: E731
            what = "transformers BertModel"
        else:
            hf = transformers.GPT2LMHeadModel.from_pretrained(d).eval()
            tp = torch.from_numpy(_gpt_prompt(s))
            kw = dict(attention_mask=torch.ones_like(tp), **hf_greedy_kwargs(s["new"]))
            run = lambda m: m.generate(tp, **kw)[0, s["prompt"]:].numpy()  # noqa: E731
            what = "GPT2LMHeadModel.generate(greedy)"
        if precision == "bfloat16":
            def step():
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return run(hf)

            return step, f"{what} under torch.autocast('cpu', dtype=torch.bfloat16), inference_mode"
        qhf = torch.ao.quantization.quantize_dynamic(hf, {torch.nn.Linear}, dtype=torch.qint8)

        def step():
            with torch.inference_mode():
                return run(qhf)

        note = "" if wid == "W1" else " (GPT-2's Conv1D layers are not nn.Linear: only lm_head is quantized)"
        return step, f"torch.ao.quantization.quantize_dynamic({what}, {{nn.Linear}}, qint8){note}"
    if kind == "onnxruntime":
        import onnxruntime as ort

        which = "int8" if precision == "int8" else "float32"
        path = os.path.join(root, "bert", "bert_int8.onnx" if which == "int8" else "bert_fused.onnx")
        sess = _ort_session(path, threads)
        ids, mask = _bert_inputs(s)
        feed = {"input_ids": ids, "attention_mask": mask}
        return (lambda: sess.run(None, feed)[0]), (
            f"onnxruntime {ort.__version__}: the transformer optimizer's fused BERT graph"
            + (" + quantize_dynamic(QInt8)" if which == "int8" else " (float32: no bfloat16 CPU kernels)"))
    if kind == "ctranslate2":
        gen, detail = ct2_generator(os.path.join(root, "gpt2"), precision, threads)
        tokens = ct2_tokens(_gpt_prompt(s)[0])
        return (lambda: ct2_greedy(gen, [tokens], s["new"])[0]), detail
    raise ValueError(f"unknown engine {kind!r}")


def engine_worker(conn, kind, wid, precision, root, s, threads):
    """Child process: build one engine, send its first output, then time one call per request."""
    try:
        step, detail = build_engine(kind, wid, precision, root, s, threads)
        out = np.asarray(step())
    except Exception as e:  # noqa: BLE001 - reported to the parent, which goes on without this engine
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", detail, out))
    while True:
        cmd = conn.recv()
        if cmd != "run":
            break
        t0 = time.perf_counter()
        step()
        conn.send(time.perf_counter() - t0)


def _gpt_prompt(s):
    return np.random.default_rng(0).integers(1, s["vocab"], (1, s["prompt"])).astype(np.int64)


def _ct2_compute(precision):
    import ctranslate2 as ct2

    return precision if precision in ct2.get_supported_compute_types("cpu") else "float32"


def hf_greedy_kwargs(new: int) -> Dict[str, object]:
    """transformers ``generate`` arguments for exactly ``new`` greedy tokens per row (token 0 pads)."""
    return dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True, pad_token_id=0)


def ct2_convert(d: str, precision: str):
    """CTranslate2's copy of the GPT-2 checkpoint ``d`` at ``precision``, converted once: (path or None, note).
    The path is None when CTranslate2 cannot run it (the note says why); the note also says when the CPU
    lacks ``precision`` and float32 stands in."""
    ct2 = _try_import("ctranslate2")
    if ct2 is None:
        return None, "CTranslate2 not installed (pip install ctranslate2)"
    if not os.path.exists(os.path.join(d, "tokenizer.json")):
        return None, "CTranslate2 needs the tokenizers package to convert the model"
    compute = _ct2_compute(precision)
    note = ""
    if compute != precision:
        note = (f"CTranslate2 has no {precision} on this CPU (supported: "
                f"{', '.join(sorted(ct2.get_supported_compute_types('cpu')))}): showing float32")
    out_dir = os.path.join(d, f"ct2-{compute}")
    try:
        if not os.path.exists(os.path.join(out_dir, "model.bin")):
            quant = {"int8": "int8", "bfloat16": "bfloat16"}.get(compute)
            ct2.converters.TransformersConverter(d).convert(out_dir, quantization=quant, force=True)
    except Exception as e:  # noqa: BLE001
        return None, "; ".join(filter(None, [note, f"CTranslate2 failed: {type(e).__name__}: {e}"]))
    return out_dir, note


def ct2_generator(d: str, precision: str, threads: int):
    """In a worker: a CTranslate2 Generator on ``d``'s converted copy (ct2_convert made it), and its description."""
    import ctranslate2 as ct2

    compute = _ct2_compute(precision)
    gen = ct2.Generator(os.path.join(d, f"ct2-{compute}"), device="cpu", compute_type=compute,
                        intra_threads=threads, inter_threads=1)
    return gen, f"ctranslate2 {ct2.__version__} Generator(compute_type={compute!r}), greedy"


def ct2_tokens(ids) -> List[str]:
    """Token ids -> the word-level token strings of _gpt_dir's tokenizer, which CTranslate2's generator reads."""
    return [f"t{int(i)}" for i in ids]


def ct2_greedy(gen, prompts: List[List[str]], new: int) -> List[np.ndarray]:
    """Exactly ``new`` greedy tokens after each prompt (no end token), the prompts in one generate_batch call."""
    r = gen.generate_batch(prompts, max_batch_size=len(prompts), max_length=new, min_length=new, sampling_topk=1,
                           include_prompt_in_result=False, end_token=[])
    return [np.asarray(x.sequences_ids[0]) for x in r]


def row_engines(wid: str, precision: str, root: str, s, threads: int):
    """The engine kinds of a row whose packages are installed (their files prepared), and a note on the rest."""
    kinds = ["cpuformer", "cpuformer-fp32", "torch"]
    notes = []
    if wid == "W1":
        _bert_dir(root, s)
        if _try_import("onnxruntime") is None or _try_import("onnx") is None:
            notes.append("ONNX Runtime not installed (pip install onnxruntime onnx)")
        else:
            try:
                _onnx_models(os.path.join(root, "bert"), s, threads)
                kinds.append("onnxruntime")
            except Exception as e:  # noqa: BLE001
                notes.append(f"ONNX Runtime failed: {type(e).__name__}: {e}")
    else:
        path, note = ct2_convert(_gpt_dir(root, s), precision)
        if path is not None:
            kinds.append("ctranslate2")
        if note:
            notes.append(note)
    return kinds, "; ".join(notes)


def engine_name(kind: str, wid: str, precision: str) -> str:
    if kind == "cpuformer":
        return f"cpuformer {precision}"
    if kind == "cpuformer-fp32":
        return "cpuformer float32"
    if kind == "onnxruntime":
        return f"onnxruntime {'int8' if precision == 'int8' else 'float32'}"
    if kind == "ctranslate2":
        return f"ctranslate2 {_ct2_compute(precision)}"
    return f"torch {precision}"


def w1_reference(root: str, s) -> np.ndarray:
    """transformers BertModel in float32: the reference every W1 engine is checked against."""
    import torch
    import transformers

    hf = transformers.BertModel.from_pretrained(os.path.join(root, "bert"), attn_implementation="eager").eval()
    ids, mask = (torch.from_numpy(a) for a in _bert_inputs(s))
    with torch.inference_mode():
        return hf(input_ids=ids, attention_mask=mask).last_hidden_state.numpy().copy()


def w1_check(engine: Engine, reference: np.ndarray, precision: str) -> None:
    out = np.asarray(engine.output, dtype=np.float64)
    rel = float(np.max(np.abs(out - reference)) / max(np.max(np.abs(reference)), 1e-12))
    cos = float(np.min(np.sum(out * reference, -1) / np.maximum(
        np.linalg.norm(out, axis=-1) * np.linalg.norm(reference, axis=-1), 1e-30)))
    limit = 1e-4 if engine.name.endswith("float32") else 0.1
    engine.ok = rel <= limit and cos >= 0.99
    engine.check = f"max rel diff vs transformers fp32 {rel:.1e}, min token cosine {cos:.4f}"


# --------------------------------------------------------------------------
# W5: GPT greedy decoding


def w5_check(engine: Engine, reference: np.ndarray, precision: str) -> None:
    a, b = np.asarray(engine.output), np.asarray(reference)
    if a.shape != b.shape:
        engine.ok = False
        engine.check = f"{a.shape[0]} tokens, expected {b.shape[0]}"
        return
    diverge = np.nonzero(a != b)[0]
    agree = len(a) if len(diverge) == 0 else int(diverge[0])
    same = float(np.mean(a == b))
    # Random weights give flat distributions: low-precision rounding may flip
    # a near-tie, after which the sequences differ; the first steps must agree.
    engine.ok = agree >= min(8, len(a)) or engine.name.endswith("float32") and agree == len(a)
    engine.check = f"greedy tokens = cpuformer fp32 for the first {agree} of {len(a)} ({100 * same:.0f}% overall)"


# --------------------------------------------------------------------------
# Timing and report


# Pause before each timed call: the engine that ran last may keep its worker
# threads spinning for a while (Intel OpenMP's default block time is 200 ms,
# ONNX Runtime's pool spins too), which on a small machine steals the cores
# the next engine is measured on.
SWITCH_PAUSE_S = 0.3


def _time(engines: List[Engine], repeats: int, warmup: int) -> None:
    for e in engines:
        for _ in range(warmup):
            e.timed_call()
    for r in range(repeats):
        order = engines if r % 2 == 0 else engines[::-1]
        for e in order:
            time.sleep(SWITCH_PAUSE_S)
            e.times.append(e.timed_call())


def time_then_stop(engines: List[Engine], repeats: int, warmup: int) -> None:
    """Times the engines (see _time), then stops their processes, also when timing fails."""
    try:
        _time(engines, repeats, warmup)
    finally:
        for e in engines:
            e.stop()


def spawn_worker(target, args, what: str):
    """Runs ``target(conn, *args)`` in a spawned process and waits for its
    first message: (conn, process, message) when it is ready, None (logged as
    "<what> failed to build: ...") when it reports an error instead."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    child.close()
    msg = parent.recv()
    if msg[0] == "error":
        log(f"{what} failed to build: {msg[1]}")
        proc.join(timeout=60)
        return None
    return parent, proc, msg


def _start_engines(kinds, wid, precision, root, s, threads) -> List[Engine]:
    engines = []
    for kind in kinds:
        name = engine_name(kind, wid, precision)
        started = spawn_worker(engine_worker, (kind, wid, precision, root, s, threads), f"[{wid}-{precision}] {name}")
        if started is not None:
            parent, proc, msg = started
            engines.append(Engine(name, parent, proc, detail=msg[1], output=msg[2]))
    return engines


def memory_probe(spec: str, threads: int, smoke: bool) -> int:
    """Child process: peak memory of cpuformer float32 or low precision on one row's model and inputs."""
    from .common import _ru_maxrss_mb, proc_status_kb, reset_peak_rss

    row, _, dtype = spec.partition(":")
    import cpuformer as cf

    cf.set_num_threads(threads)
    wid = row.split("-")[0]
    s = SHAPES[wid]["smoke" if smoke else "full"]
    root = os.environ["CPUFORMER_PRECISION_DIR"]
    if wid == "W1":
        ids, mask = _bert_inputs(s)
    else:
        prompt = _gpt_prompt(s)
    gc.collect()
    rss = proc_status_kb("VmRSS")
    exact = rss is not None and reset_peak_rss()
    base = rss / 1024 if exact else _ru_maxrss_mb()
    # The low-precision model is what a user loads: a quantized checkpoint.
    ckpt = os.path.join(root, f"{wid}-{dtype}.safetensors")
    m = cf.load(ckpt).eval()
    for _ in range(2):
        if wid == "W1":
            with cf.no_grad():
                m(ids, attention_mask=mask)
        else:
            m.generate(prompt, s["new"], temperature=0)
    peak = (proc_status_kb("VmHWM") / 1024) if exact else _ru_maxrss_mb()
    print(json.dumps({"row": row, "dtype": dtype, "peak_mem_mb": max(0.0, peak - base)}))
    return 0


def _probe_memory(row: str, dtype: str, threads: int, smoke: bool, root: str) -> Optional[float]:
    env = dict(os.environ, CPUFORMER_PRECISION_DIR=root)
    cmd = [sys.executable, "-m", "cpuformer", "bench", "--precision-probe", f"{row}:{dtype}", "--threads",
           str(threads)] + (["--smoke"] if smoke else [])
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        log(f"[precision] memory probe {row} {dtype} failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
        return None
    return float(json.loads(lines[-1])["peak_mem_mb"])


def measure_peaks(seconds: float) -> Dict[str, object]:
    import cpuformer as cf
    from cpuformer import _core

    info = cf.build_info()
    out = {"fp32_fma": float(_core.fma_peak_gflops(seconds)), "int8_kernel": info["int8_kernel"],
           "bf16_kernel": info["bf16_kernel"]}
    for dt in ("int8", "bfloat16"):
        out[dt] = float(_core.lowp_peak_gops(dt, seconds))
    return out


def run_precision(rows: List[str], threads: int, smoke: bool, repeats: Optional[int], memory: bool,
                  torch) -> Dict[str, object]:
    import cpuformer as cf
    from cpuformer import _core

    if torch is None:
        raise SystemExit("the precision rows need PyTorch and transformers (pip install torch==2.13.0 "
                         "transformers): they make the shared checkpoints")
    if _try_import("transformers") is None:
        raise SystemExit("the precision rows need transformers (pip install transformers)")
    seconds = 0.05 if smoke else 1.0
    log("[precision] measuring the FP32 FMA, int8 and bf16 dot-product peaks ...")
    peaks = measure_peaks(seconds)
    log(f"[precision] peaks: fp32 FMA {peaks['fp32_fma']:.0f} GFLOP/s, int8 {peaks['int8']:.0f} GOP/s "
        f"({peaks['int8_kernel']}), bf16 {peaks['bfloat16']:.0f} GFLOP/s ({peaks['bf16_kernel']})")
    gemm = []
    shapes = [(64, 64, 64)] if smoke else [(1024, 2304, 768), (1024, 768, 768), (1024, 3072, 768), (1024, 768, 3072)]
    for M, N, K in shapes:
        row = {"M": M, "N": N, "K": K, "float32": float(_core.gemm_gflops(M, N, K, 1 if smoke else 5))}
        for dt in ("int8", "bfloat16"):
            row[dt] = float(_core.lowp_gemm_gops(dt, M, N, K, 1 if smoke else 5))
        gemm.append(row)
        log(f"[precision] GEMM {M}x{N}x{K}: fp32 {row['float32']:.0f}, int8 {row['int8']:.0f}, "
            f"bf16 {row['bfloat16']:.0f} G(FL)OP/s")
    root = tempfile.mkdtemp(prefix="cpuformer-precision-")
    results = []
    for row in rows:
        wid, p = row.split("-")
        precision = PRECISION[p]
        s = SHAPES[wid]["smoke" if smoke else "full"]
        log(f"[{row}] preparing the shared checkpoint and the peers' models ...")
        kinds, note = row_engines(wid, precision, root, s, threads)
        log(f"[{row}] starting {len(kinds)} engines, one process each ...")
        engines = _start_engines(kinds, wid, precision, root, s, threads)
        if not engines or not engines[0].name.startswith("cpuformer"):
            raise SystemExit(f"[{row}] cpuformer's engine did not start")
        if wid == "W1":
            reference = w1_reference(root, s)
        else:  # cpuformer float32's tokens
            reference = next((e.output for e in engines if e.name == "cpuformer float32"), engines[0].output)
        for e in engines:
            (w1_check if wid == "W1" else w5_check)(e, reference, precision)
            log(f"[{row}] check {e.name}: {e.check}{'' if e.ok else '  <-- DISAGREES'}")
        time_then_stop(engines, repeats or (1 if smoke else (5 if wid == "W1" else 3)), 0 if smoke else 1)
        ours = statistics.median(engines[0].times)
        tokens = s["B"] * s["T"] if wid == "W1" else s["new"]
        res = {"id": row, "precision": precision, "shape": s, "tokens_per_call": tokens, "note": note,
               "engines": []}
        for e in engines:
            med = statistics.median(e.times)
            res["engines"].append({"name": e.name, "detail": e.detail, "median_s": med, "times_s": e.times,
                                   "throughput": tokens / med, "ratio": med / ours, "check": e.check,
                                   "agrees": e.ok})
            log(f"[{row}] {e.name}: {med * 1e3:.1f} ms  (vs cpuformer {precision}: {med / ours:.2f}x)")
        if memory and not smoke:
            d = os.path.join(root, "bert" if wid == "W1" else "gpt2")
            fp32 = cf.from_pretrained(d)
            cf.quantize(fp32, precision).save(os.path.join(root, f"{wid}-{precision}.safetensors"))
            fp32.save(os.path.join(root, f"{wid}-float32.safetensors"))
            del fp32
            res["memory_mb"] = {dt: _probe_memory(row, dt, threads, smoke, root) for dt in (precision, "float32")}
            log(f"[{row}] peak memory: {res['memory_mb']}")
        results.append(res)
        gc.collect()
    return {"peaks": peaks, "gemm": gemm, "rows": results}


def format_precision(report: Dict[str, object], threads: int) -> List[str]:
    from .common import fmt_time, render_table

    pk = report["peaks"]
    out = ["", f"Precision rows ({threads} thread{'s' if threads > 1 else ''}; ratio = engine time / cpuformer time "
           "at the row's precision, above 1 means cpuformer is faster)",
           f"peaks   : FP32 FMA {pk['fp32_fma']:.0f} GFLOP/s | int8 dot product {pk['int8']:.0f} GOP/s "
           f"({pk['int8_kernel']}) | bf16 dot product {pk['bfloat16']:.0f} GFLOP/s ({pk['bf16_kernel']})"]
    g = "; ".join(f"{r['M']}x{r['N']}x{r['K']} {r['float32']:.0f} / {r['int8']:.0f} ({100 * r['int8'] / pk['int8']:.0f}%)"
                  f" / {r['bfloat16']:.0f} ({100 * r['bfloat16'] / pk['bfloat16']:.0f}%)" for r in report["gemm"])
    out.append(f"GEMM    : fp32 / int8 (% of int8 peak) / bf16 (% of bf16 peak), G(FL)OP/s: {g}")
    out.append("")
    columns = [("", "id", "<"), ("", "engine", "<"), ("", "median", ">"), ("", "tok/s", ">"),
               ("", "engine/cpuformer", ">"), ("", "peak MB", ">"), ("", "check", "<")]
    rows = []
    for r in report["rows"]:
        mem = r.get("memory_mb") or {}
        for e in r["engines"]:
            dt = e["name"].split()[-1]
            m = mem.get(dt) if e["name"].startswith("cpuformer") else None
            rows.append([r["id"], e["name"], fmt_time(e["median_s"]), f"{e['throughput']:,.0f}",
                         "-" if e["ratio"] == 1.0 and e["name"].startswith("cpuformer " + r["precision"])
                         else f"{e['ratio']:.2f}x", f"{m:.0f}" if m else "-",
                         e["check"] + ("" if e["agrees"] else "  DISAGREES")])
    out.extend(render_table(columns, rows))
    for r in report["rows"]:
        if r["note"]:
            out.append(f"{r['id']}: {r['note']}")
    out.append("W1 rows: transformers BertModel (BERT-base shape, random weights) B8xT128; W5 rows: GPT2LMHeadModel "
               "6L-512 V8192, 128 greedy tokens after 16. Engines alternate call by call; peak MB: the cpuformer "
               "model loaded from its checkpoint and run twice, alone in a fresh process, over the resident size "
               "before loading")
    return out
