"""Mixed-precision training rows of ``python -m cpuformer bench``: W2-bf16
(W2's GPT training step) and W4-bf16 (W4's causal attention forward +
backward) under bf16 autocast, each beside cpuformer float32 and PyTorch in
float32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)``, in the
same run, from the same weights and inputs.

Each engine lives in a process of its own (as in the precision rows: two
OpenMP runtimes in one process slow each other) and measures its own peak
memory: the resident-set high-water mark over its first two steps, above the
resident size once its inputs (and, for torch, the shared weights) exist.
Engines alternate call by call after a pause; the reported time is the
median. The first step's result is checked against cpuformer float32 (W2:
the loss; W4: the attention output) before anything is timed.
"""
from __future__ import annotations

import gc
import statistics
import time
from typing import Dict, List, Optional

import numpy as np

from .common import log

ROWS = ("W2-bf16", "W4-bf16")
ENGINES = ("cpuformer bf16", "cpuformer fp32", "torch bf16", "torch fp32")


def _step(wid: str, engine: str, smoke: bool, threads: int):
    """Builds one engine's step; returns (step, to_numpy, detail)."""
    import contextlib

    import cpuformer as cf

    from .workloads import BY_ID

    fw, prec = engine.split()
    wl = BY_ID[wid].configure(smoke)
    inputs = wl.inputs()
    cf.set_num_threads(threads)
    cf.manual_seed(0)
    if fw == "cpuformer":
        case = wl.build_cpuformer(inputs)
        cast = (lambda: cf.autocast("bfloat16")) if prec == "bf16" else contextlib.nullcontext
        detail = f"{case.label or 'cpuformer'}; cf.autocast(dtype='bfloat16')" if prec == "bf16" else case.label
    elif wid == "W4":  # torch's autograd wants the gradient in the output's dtype (bf16 under autocast)
        import torch

        torch.set_num_threads(threads)
        q, k, v = (torch.from_numpy(inputs[n]).requires_grad_() for n in ("q", "k", "v"))
        g = torch.from_numpy(inputs["grad"])
        cast = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if prec == "bf16"
                else contextlib.nullcontext)

        def step():
            with cast():
                out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return (out.detach(), *torch.autograd.grad(out, (q, k, v), g.to(out.dtype)))

        detail = "torch.nn.functional.scaled_dot_product_attention(is_causal=True) + autograd" + (
            " under torch.autocast('cpu', dtype=torch.bfloat16)" if prec == "bf16" else "")
        return step, lambda ts: tuple(t.float().numpy().copy() for t in ts), detail
    else:
        import torch

        torch.set_num_threads(threads)
        weights = None
        if wid == "W2":  # the torch twin starts from cpuformer's weights (same seed)
            weights = {k: np.array(v, copy=True) for k, v in wl.build_cpuformer(inputs).weights.items()}
            gc.collect()
        case = wl.build_torch(inputs, weights)
        del weights
        cast = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if prec == "bf16"
                else contextlib.nullcontext)
        detail = case.label + ("; torch.autocast('cpu', dtype=torch.bfloat16)" if prec == "bf16" else "")

    def step():
        with cast():
            return case.step_fn()

    return step, case.to_numpy, detail


def engine_worker(conn, wid, engine, smoke, threads):
    """Child process: build one engine, measure its peak memory over two steps,
    send the first result, then time one step per request."""
    from .common import _ru_maxrss_mb, proc_status_kb, reset_peak_rss

    try:
        import cpuformer  # noqa: F401  (the libraries themselves are not the engine's memory)

        if engine.startswith("torch"):
            import torch  # noqa: F401
        gc.collect()
        rss = proc_status_kb("VmRSS")
        exact = rss is not None and reset_peak_rss()
        base = rss / 1024 if exact else _ru_maxrss_mb()
        step, to_numpy, detail = _step(wid, engine, smoke, threads)
        out = to_numpy(step())
        step()
        peak = (proc_status_kb("VmHWM") / 1024) if exact else _ru_maxrss_mb()
    except Exception as e:  # noqa: BLE001 - reported to the parent, which goes on without this engine
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", detail, out, max(0.0, peak - base)))
    while True:
        if conn.recv() != "run":
            break
        t0 = time.perf_counter()
        step()
        conn.send(time.perf_counter() - t0)


def _check(wid: str, out, ref) -> str:
    if wid == "W2":
        d = abs(float(out) - float(ref)) / abs(float(ref))
        return f"first loss {float(out):.5f} (vs cpuformer fp32: {100 * d:.2f}%)"
    o, r = np.asarray(out[0], np.float64), np.asarray(ref[0], np.float64)
    return f"output max rel. diff vs cpuformer fp32 {np.max(np.abs(o - r)) / np.max(np.abs(r)):.1e}"


def run_mixed(rows: List[str], threads: int, smoke: bool, repeats: Optional[int], have_torch: bool) -> Dict:
    import cpuformer as cf

    from .precision import Engine, spawn_worker, time_then_stop
    from .workloads import BY_ID

    info = cf.build_info()
    native = info["bf16_kernel"] in ("amx-bf16", "avx512-bf16")
    if not native:
        log(f"[mixed] the bf16 kernel here is {info['bf16_kernel']}: bf16 products are emulated (rounded "
            "operands, float32 arithmetic), so bf16 rows measure no speed-up on this CPU")
    results = []
    for row in rows:
        wid = row.split("-")[0]
        wl = BY_ID[wid].configure(smoke)
        engines: List[Engine] = []
        for name in ENGINES:
            if name.startswith("torch") and not have_torch:
                continue
            started = spawn_worker(engine_worker, (wid, name, smoke, threads), f"[{row}] {name}")
            if started is None:
                continue
            parent, proc, msg = started
            e = Engine(name, parent, proc, detail=msg[1], output=msg[2])
            e.peak_mb = msg[3]
            engines.append(e)
        if not engines or engines[0].name != "cpuformer bf16":
            raise SystemExit(f"[{row}] cpuformer bf16 did not start")
        ref = next((e.output for e in engines if e.name == "cpuformer fp32"), engines[0].output)
        for e in engines:
            e.check = _check(wid, e.output, ref)
            log(f"[{row}] {e.name}: {e.check}; peak {e.peak_mb:.0f} MB")
        time_then_stop(engines, repeats or (1 if smoke else 5), 0 if smoke else 1)
        ours = statistics.median(engines[0].times)
        res = {"id": row, "describe": wl.describe(), "flops": wl.flops(), "tokens": wl.tokens(),
               "bf16_kernel": info["bf16_kernel"], "engines": []}
        for e in engines:
            med = statistics.median(e.times)
            res["engines"].append({"name": e.name, "detail": e.detail, "median_s": med, "times_s": e.times,
                                   "ratio": med / ours, "peak_mem_mb": e.peak_mb, "check": e.check,
                                   "tflops": wl.flops() / med / 1e12})
            log(f"[{row}] {e.name}: {med * 1e3:.1f} ms ({med / ours:.2f}x cpuformer bf16)")
        results.append(res)
    return {"rows": results, "bf16_kernel": info["bf16_kernel"], "native": native}


def format_mixed(report: Dict, threads: int) -> List[str]:
    from .common import fmt_time, render_table

    out = ["", f"Mixed-precision training rows ({threads} thread{'s' if threads > 1 else ''}; bf16 kernel "
           f"{report['bf16_kernel']}{'' if report['native'] else ', emulated: no bf16 hardware'}; ratio = engine "
           "time / cpuformer bf16 time, above 1 means cpuformer bf16 is faster)", ""]
    columns = [("", "id", "<"), ("", "engine", "<"), ("", "median", ">"), ("", "TFLOP/s", ">"),
               ("", "engine/cpuformer bf16", ">"), ("", "peak MB", ">"), ("", "check", "<")]
    rows = []
    for r in report["rows"]:
        for e in r["engines"]:
            rows.append([r["id"], e["name"], fmt_time(e["median_s"]), f"{e['tflops']:.2f}",
                         "-" if e["name"] == "cpuformer bf16" else f"{e['ratio']:.2f}x", f"{e['peak_mem_mb']:.0f}",
                         e["check"]])
    out.extend(render_table(columns, rows))
    for r in report["rows"]:
        out.append(f"{r['id']}: {r['describe']}")
    out.append("bf16: cpuformer under cf.autocast(dtype='bfloat16'), torch under torch.autocast('cpu', "
               "dtype=torch.bfloat16); float32 master weights, gradients and AdamW state in both. Peak MB: each "
               "engine's own process, high-water mark over its first two steps above its resident size with the "
               "inputs built")
    return out
