"""Batched generation row of ``python -m cpuformer bench``: W6.

W5's GPT (6 layers, d=512, 8 heads, vocab 8192, as the precision rows'
``GPT2LMHeadModel`` checkpoint) generates 128 greedy tokens for each of 32
prompts whose lengths are drawn from 8-64 (fixed seed). The prompts go in
consecutive groups of the batch size (1, 8, 32), each group left-padded to
its own longest prompt, and every engine generates exactly 128 new tokens per
prompt (no end token). Reported: generated tokens per second over a pass of
all 32 prompts (32 * 128 / the pass's time) for

* cpuformer float32 and int8 (``from_pretrained(dir, dtype=...)``,
  ``generate(ids, 128, temperature=0, attention_mask=mask)``);
* transformers float32 (``GPT2LMHeadModel.generate`` on the same left-padded
  groups and mask, greedy, ``inference_mode``);
* CTranslate2 float32 and int8 when installed (``generate_batch`` with each
  group as one call, its prompts unpadded: CTranslate2 batches them itself).

transformers and CTranslate2 take seconds per prompt at batch 1, so at batch 1
they are timed on every 4th prompt (a quarter of the pass) and their rate is
that subset's; the report says so.

Each engine lives in a process of its own (bench/precision.py says why) and
serves one pass per request; the passes of every (engine, batch size)
alternate round by round after a pause, and the median is reported. Before
timing, each engine's tokens for all 32 prompts (batch 32) are compared with
cpuformer float32's, and its first group at batch 1 and 8 with its own batch
32 rows (a padded row must generate what the prompt generates alone).
"""
from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

from .common import log
from .precision import SHAPES as PRECISION_SHAPES

ROWS = ("W6",)
SHAPES = {
    "full": dict(PRECISION_SHAPES["W5"]["full"], prompts=32, min_len=8, max_len=64, new=128, batches=(1, 8, 32),
                 subset=4),
    "smoke": dict(PRECISION_SHAPES["W5"]["smoke"], prompts=4, min_len=2, max_len=6, new=6, batches=(1, 2, 4),
                  subset=2),
}
# Engines: (kind, precision). transformers runs float32 only.
ENGINES = (("cpuformer", "float32"), ("cpuformer", "int8"), ("transformers", "float32"),
           ("ctranslate2", "float32"), ("ctranslate2", "int8"))
# Kinds timed at batch 1 on every s["subset"]-th prompt only (seconds per prompt).
SUBSET_AT_B1 = ("transformers", "ctranslate2")
TARGETS = {"ct2": 1.5, "hf": 5.0, "scaling": 6.0}


def prompts(s) -> List[np.ndarray]:
    """The row's prompts: s["prompts"] token-id arrays, lengths drawn from [min_len, max_len], seed 0."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(s["min_len"], s["max_len"] + 1, s["prompts"])
    return [rng.integers(1, s["vocab"], n).astype(np.int64) for n in lengths]


def left_pad(group: List[np.ndarray]):
    """A group of prompts -> (ids [b, T], attention_mask [b, T]) left-padded with token 0 to its longest."""
    T = max(len(p) for p in group)
    ids = np.zeros((len(group), T), np.int64)
    mask = np.zeros((len(group), T), np.int64)
    for i, p in enumerate(group):
        ids[i, T - len(p):] = p
        mask[i, T - len(p):] = 1
    return ids, mask


def pass_prompts(kind: str, batch: int, s) -> List[int]:
    """Indices of the prompts one pass of ``kind`` at ``batch`` generates for."""
    every = s["subset"] if batch == 1 and kind in SUBSET_AT_B1 else 1
    return list(range(0, s["prompts"], every))


def engine_name(kind: str, precision: str) -> str:
    return f"{kind} {precision}"


# --------------------------------------------------------------------------
# The engine process


def build_runner(kind: str, precision: str, d: str, new: int, threads: int):
    """In the worker: (prepare, run, detail). prepare(group of prompts) -> the engine's input for one call
    (built before timing); run(input) -> the ``new`` generated tokens, [b, new]."""
    from .precision import ct2_generator, ct2_greedy, ct2_tokens, hf_greedy_kwargs

    if kind == "cpuformer":
        import cpuformer as cf

        cf.set_num_threads(threads)
        model = cf.from_pretrained(d, dtype=precision)

        def run(inp):
            ids, mask = inp
            return model.generate(ids, new, temperature=0, attention_mask=mask, eos_token_id=None)[:, ids.shape[1]:]

        return left_pad, run, (f"cf.from_pretrained(dir, dtype={precision!r}).generate(ids, {new}, temperature=0, "
                               "attention_mask=mask)")
    if kind == "transformers":
        import torch
        import transformers

        torch.set_num_threads(threads)
        hf = transformers.GPT2LMHeadModel.from_pretrained(d).eval()
        kw = hf_greedy_kwargs(new)

        def prepare(group):
            return tuple(torch.from_numpy(a) for a in left_pad(group))

        def run(inp):
            ids, mask = inp
            with torch.inference_mode():
                return hf.generate(ids, attention_mask=mask, **kw)[:, ids.shape[1]:].numpy()

        return prepare, run, (f"transformers {transformers.__version__} GPT2LMHeadModel.generate(greedy, "
                              f"min_new_tokens=max_new_tokens={new}, left-padded, attention_mask), inference_mode")
    if kind == "ctranslate2":
        gen, detail = ct2_generator(d, precision, threads)
        return ((lambda group: [ct2_tokens(p) for p in group]), (lambda inp: np.stack(ct2_greedy(gen, inp, new))),
                detail + ", generate_batch(group unpadded, max_batch_size=group size)")
    raise ValueError(f"unknown engine {kind!r}")


def engine_worker(conn, kind, precision, d, s, threads):
    """Child process: build one engine, prepare every pass's inputs, send the first group's tokens at each batch
    size (warm-up and check), then time one pass per ("run", batch) request."""
    try:
        prepare, run, detail = build_runner(kind, precision, d, s["new"], threads)
        ps = prompts(s)
        passes = {}
        for b in s["batches"]:
            idx = pass_prompts(kind, b, s)
            passes[b] = [prepare([ps[i] for i in idx[k:k + b]]) for k in range(0, len(idx), b)]
        first = {b: np.asarray(run(passes[b][0])) for b in s["batches"]}
    except Exception as e:  # noqa: BLE001 - reported to the parent, which goes on without this engine
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", detail, first))
    while True:
        cmd = conn.recv()
        if not (isinstance(cmd, tuple) and cmd[0] == "run"):
            break
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            for inp in passes[cmd[1]]:
                run(inp)
            dt = time.perf_counter() - t0
        finally:
            gc.enable()
        conn.send(dt)


# --------------------------------------------------------------------------
# Checks


def agreement(out: np.ndarray, ref: np.ndarray):
    """(prompts whose tokens all equal ref's, share of tokens before each prompt's first difference)."""
    same = out == ref
    first_diff = np.where(same.all(1), out.shape[1], np.argmin(same, axis=1))
    return int(same.all(1).sum()), float(first_diff.mean() / out.shape[1])


def check(name: str, first: Dict[int, np.ndarray], ref: np.ndarray, s):
    """(ok, text): the batch-32 tokens against cpuformer float32's, and the first groups at the smaller batch
    sizes against this engine's own batch-32 rows."""
    big = first[s["batches"][-1]]
    if big.shape != ref.shape:
        return False, f"tokens {list(big.shape)}, expected {list(ref.shape)}"
    n, frac = agreement(big, ref)
    text = [f"{n}/{len(ref)} prompts ({100 * frac:.0f}% of tokens)"]
    alone = []
    for b in s["batches"][:-1]:
        rows = np.asarray(first[b])
        alone.append(agreement(rows, big[:len(rows)])[0] == len(rows))
    text.append("padded = alone" if all(alone) else "padded rows differ from smaller batches")
    need = 0.9 if name.endswith("float32") else 0.5
    return n >= need * len(ref) and (all(alone) or not name.startswith("cpuformer")), "; ".join(text)


# --------------------------------------------------------------------------
# Run and report


def run_batched(threads: int, smoke: bool, repeats: Optional[int], have_torch: bool) -> Dict[str, object]:
    from .precision import _try_import

    if not have_torch or _try_import("transformers") is None:
        raise SystemExit("W6 needs PyTorch and transformers (pip install torch==2.13.0 transformers): they make "
                         "the shared checkpoint and the transformers baseline")
    with tempfile.TemporaryDirectory(prefix="cpuformer-batched-") as root:  # the checkpoints: ~200 MB
        return _run(root, threads, SHAPES["smoke" if smoke else "full"], repeats or (1 if smoke else 3))


def _run(root: str, threads: int, s, n_rounds: int) -> Dict[str, object]:
    from .precision import Engine, _gpt_dir, ct2_convert, spawn_worker, time_then_stop

    log("[W6] preparing the GPT-2 checkpoint (W5's shape) and CTranslate2's copies ...")
    d = _gpt_dir(root, s)
    notes, kinds = [], []
    for kind, precision in ENGINES:
        if kind == "ctranslate2":
            path, note = ct2_convert(d, precision)
            if note and note not in notes:
                notes.append(note)
            if path is None or os.path.basename(path) != f"ct2-{precision}":
                continue  # not installed, or no int8 on this CPU: its float32 engine is there already
        kinds.append((kind, precision))
    engines: List[Engine] = []  # one per (engine, batch size); the batch sizes of an engine share its process
    outputs = {}
    for kind, precision in kinds:
        name = engine_name(kind, precision)
        log(f"[W6] starting {name} (builds, warms up at every batch size) ...")
        started = spawn_worker(engine_worker, (kind, precision, d, s, threads), f"[W6] {name}")
        if started is None:
            continue
        conn, proc, msg = started
        outputs[name] = msg[2]
        for b in s["batches"]:
            e = Engine(name, conn, proc, detail=msg[1], request=("run", b))
            e.batch, e.kind = b, kind
            engines.append(e)
    if not engines or engines[0].name != "cpuformer float32":
        for e in engines:
            e.stop()
        raise SystemExit("[W6] cpuformer float32 did not start")
    ref = outputs["cpuformer float32"][s["batches"][-1]]
    checks = {}
    for name, first in outputs.items():
        checks[name] = check(name, first, ref, s)
        log(f"[W6] check {name}: {checks[name][1]}{'' if checks[name][0] else '  <-- DISAGREES'}")
    log(f"[W6] timing {len(engines)} (engine, batch) passes, {n_rounds} round(s) ...")
    time_then_stop(engines, n_rounds, 0)
    res = {"id": "W6", "shape": {k: v for k, v in s.items() if k != "batches"}, "batches": list(s["batches"]),
           "prompt_lengths": [len(p) for p in prompts(s)], "note": "; ".join(notes), "engines": []}
    by_name = {}
    for e in engines:
        idx = pass_prompts(e.kind, e.batch, s)
        med = statistics.median(e.times)
        tok_s = len(idx) * s["new"] / med
        entry = by_name.get(e.name)
        if entry is None:
            ok, text = checks[e.name]
            entry = by_name[e.name] = {"name": e.name, "detail": e.detail, "check": text, "agrees": ok, "batch": []}
            res["engines"].append(entry)
        entry["batch"].append({"batch": e.batch, "prompts": len(idx), "calls": -(-len(idx) // e.batch),
                               "times_s": e.times, "median_s": med, "tok_s": tok_s})
        log(f"[W6] {e.name} batch {e.batch}: {med:.2f} s per pass of {len(idx)} prompts, {tok_s:,.0f} tok/s")
    res["targets"] = targets(res)
    return res


def _tok_s(res, name: str, batch: int) -> Optional[float]:
    for e in res["engines"]:
        if e["name"] == name:
            return next((b["tok_s"] for b in e["batch"] if b["batch"] == batch), None)
    return None


def targets(res) -> List[Dict[str, object]]:
    """The issue's targets at the largest batch: cpuformer >= 1.5x CTranslate2 at the same precision and >= 5x
    transformers; cpuformer's largest batch >= 6x its batch 1."""
    big, one = res["batches"][-1], res["batches"][0]
    out = []
    for prec in ("float32", "int8"):
        ours = _tok_s(res, f"cpuformer {prec}", big)
        peers = [(f"ctranslate2 {prec}", TARGETS["ct2"])]
        if prec == "float32":
            peers.append(("transformers float32", TARGETS["hf"]))
        for peer, goal in peers:
            theirs = _tok_s(res, peer, big)
            if ours and theirs:
                out.append({"what": f"batch {big}: cpuformer {prec} / {peer}", "ratio": ours / theirs, "goal": goal})
        base = _tok_s(res, f"cpuformer {prec}", one)
        if ours and base:
            out.append({"what": f"cpuformer {prec}: batch {big} / batch {one}", "ratio": ours / base,
                        "goal": TARGETS["scaling"]})
    return out


def format_batched(res, threads: int) -> List[str]:
    from .common import render_table

    s = res["shape"]
    lengths = res["prompt_lengths"]
    big, one = res["batches"][-1], res["batches"][0]
    out = ["", f"Batched generation (W6, {threads} thread{'s' if threads > 1 else ''}): W5's GPT, {s['new']} greedy "
           f"tokens for each of {s['prompts']} prompts of {min(lengths)}-{max(lengths)} tokens (mean "
           f"{np.mean(lengths):.1f}), in groups of the batch size, each left-padded to its longest", ""]
    columns = [("", "id", "<"), ("", "engine", "<")]
    columns += [("generated tok/s", f"B={b}", ">") for b in res["batches"]]
    columns += [("", f"B{big}/B{one}", ">"), ("", f"cpuformer/engine B{big}", ">"), ("", "check", "<")]
    rows, subset = [], False
    for e in res["engines"]:
        prec = e["name"].split()[-1]
        cells = ["W6", e["name"]]
        for b in e["batch"]:
            star = "*" if b["prompts"] < s["prompts"] else ""
            subset = subset or bool(star)
            cells.append(f"{b['tok_s']:,.0f}{star}")
        cells.append(f"{e['batch'][-1]['tok_s'] / e['batch'][0]['tok_s']:.2f}x")
        ours = _tok_s(res, f"cpuformer {prec}", big)
        cells.append("-" if e["name"].startswith("cpuformer") or not ours else f"{ours / e['batch'][-1]['tok_s']:.2f}x")
        cells.append(e["check"] + ("" if e["agrees"] else "  DISAGREES"))
        rows.append(cells)
    out.extend(render_table(columns, rows))
    for t in res["targets"]:
        out.append(f"target: {t['what']} = {t['ratio']:.2f}x (goal >= {t['goal']:g}x: "
                   f"{'met' if t['ratio'] >= t['goal'] else 'MISSED'})")
    if subset:
        n = len(range(0, s["prompts"], s["subset"]))
        out.append(f"* timed on {n} of the {s['prompts']} prompts (one in {s['subset']}, one per call): the rate "
                   "of that subset")
    if res["note"]:
        out.append(f"W6: {res['note']}")
    for e in res["engines"]:
        out.append(f"    {e['name']}: {e['detail']}")
    out.append(f"tok/s: {s['new']} x prompts per pass / the median pass time (passes of every engine and batch size "
               "alternate round by round, each after a pause, each engine in a process of its own)")
    out.append(f"check: prompts whose {s['new']} tokens at batch {big} all equal cpuformer float32's (and the share of "
               "tokens before each prompt's first difference); \"padded = alone\": the first group at the smaller "
               f"batch sizes generated what the same engine's batch-{big} rows did")
    return out
