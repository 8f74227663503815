"""``python -m cpuformer bench --scaling``: how attention cost grows with the
sequence length T, for full (flash) causal attention and the long-sequence
variants. One attention op, forward + backward (each variant's functional
``*_backward`` recomputes the forward, then runs the backward), shapes
B=1, H=8, D=64, T = 512, 1024, ... up to --max-len (default 32768):

  full       causal softmax attention, flash kernel            O(T^2 D)
  sliding    causal sliding window, w=256, no global tokens    O(T w D)
  performer  causal FAVOR+, 256 random features                O(T m D)
  linformer  (not causal) keys/values projected to k=256 rows  O(T k D)
  bigbird    causal BigBird, blocks of 64: 3 window, 2 global,
             3 random blocks per query block                  O(T (w+g+r) b D)

Time is the median of a few calls after one warm-up (one call once a call
takes over 5 s); peak memory is the growth of the resident set (Linux VmHWM)
during one call in a fresh process, over the inputs already allocated. Benchmarks are not tests:
numbers from a busy machine are meaningless.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from .common import log, proc_status_kb, reset_peak_rss

B, H, D = 1, 8, 64
WINDOW, FEATURES, LIN_K = 256, 256, 256
BIGBIRD = dict(block_size=64, num_window_blocks=3, num_global_blocks=2, num_random_blocks=3)
VARIANTS = ("full", "sliding", "performer", "linformer", "bigbird")


def lengths(min_len: int, max_len: int) -> List[int]:
    out, t = [], min_len
    while t <= max_len:
        out.append(t)
        t *= 2
    return out


def make_call(variant: str, T: int, rng) -> Callable[[], object]:
    import cpuformer as cf

    F = cf.functional
    q, k, v, g = (rng.standard_normal((B, H, T, D), dtype=np.float32) for _ in range(4))
    if variant == "full":
        return lambda: F.scaled_dot_product_attention_backward(g, q, k, v, is_causal=True)
    if variant == "sliding":
        return lambda: F.sliding_window_attention_backward(g, q, k, v, WINDOW, is_causal=True)
    if variant == "performer":
        return lambda: F.performer_attention_backward(g, q, k, v, num_features=FEATURES, is_causal=True)
    if variant == "linformer":
        e, f = (rng.standard_normal((LIN_K, T), dtype=np.float32) / np.sqrt(T) for _ in range(2))
        return lambda: F.linformer_attention_backward(g, q, k, v, e, f)
    if variant == "bigbird":
        # --smoke's short lengths have too few blocks of 64 for 3 random ones: smaller blocks there
        args = BIGBIRD if T >= 512 else dict(BIGBIRD, block_size=max(1, T // 16))
        return lambda: F.bigbird_attention_backward(g, q, k, v, **args, is_causal=True)
    raise ValueError(f"unknown variant {variant!r}")


def memory_probe(spec: str, threads: int) -> int:
    """Child process: one call of one variant at one T; prints the growth of the peak resident set as JSON."""
    import cpuformer as cf

    variant, _, t = spec.partition(":")
    if variant not in VARIANTS or not t.isdigit():
        raise SystemExit(f"--scaling-probe: expected VARIANT:T, got {spec!r}")
    cf.set_num_threads(threads)
    call = make_call(variant, int(t), np.random.default_rng(0))
    base = proc_status_kb("VmRSS")
    if base is None or not reset_peak_rss():
        print(json.dumps({"peak_mem_mb": None}))
        return 0
    call()
    hwm = proc_status_kb("VmHWM")
    print(json.dumps({"peak_mem_mb": max(0.0, (hwm - base) / 1024) if hwm is not None else None}))
    return 0


def run_probe(variant: str, T: int, threads: int) -> Optional[float]:
    cmd = [sys.executable, "-m", "cpuformer", "bench", "--scaling-probe", f"{variant}:{T}", "--threads", str(threads)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        log(f"[scaling] memory probe {variant} T={T}: timed out")
        return None
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        log(f"[scaling] memory probe {variant} T={T} failed (exit {p.returncode})")
        return None
    return json.loads(lines[-1])["peak_mem_mb"]


def measure(variant: str, T: int, repeats: int) -> Dict[str, object]:
    call = make_call(variant, T, np.random.default_rng(0))
    call()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        if times[-1] > 5.0:
            break
    return {"variant": variant, "T": T, "median_s": statistics.median(times), "times_s": times, "peak_mem_mb": None}


def format_table(rows: List[Dict[str, object]], ts: List[int]) -> str:
    by = {(r["variant"], r["T"]): r for r in rows}
    present = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    head = ["T"] + [f"{v} ms" for v in present] + [f"{v} MB" for v in present]
    ratios = [v for v in ("sliding", "bigbird") if "full" in present and v in present]
    head += [f"full/{v}" for v in ratios]
    lines = [head]
    for t in ts:
        cells = [str(t)]
        for v in present:
            r = by.get((v, t))
            cells.append(f"{r['median_s'] * 1e3:.1f}" if r else "-")
        for v in present:
            r = by.get((v, t))
            cells.append(f"{r['peak_mem_mb']:.0f}" if r and r["peak_mem_mb"] is not None else "-")
        for v in ratios:
            a, b = by.get(("full", t)), by.get((v, t))
            cells.append(f"{a['median_s'] / b['median_s']:.1f}x" if a and b else "-")
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def plot(rows: List[Dict[str, object]], path: str, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log(f"--plot: matplotlib is not installed, so {path} was not written (pip install matplotlib)")
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for v in VARIANTS:
        rs = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["T"])
        if not rs:
            continue
        ax1.plot([r["T"] for r in rs], [r["median_s"] * 1e3 for r in rs], marker="o", label=v)
        mem = [(r["T"], r["peak_mem_mb"]) for r in rs if r["peak_mem_mb"] is not None]
        if mem:
            ax2.plot([m[0] for m in mem], [max(m[1], 0.1) for m in mem], marker="o", label=v)
    for ax, ylabel in ((ax1, "forward + backward time (ms)"), (ax2, "peak memory growth (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def run_scaling(args) -> int:
    import cpuformer as cf

    cf.set_num_threads(args.threads)
    max_len = args.max_len if args.max_len is not None else (1024 if args.smoke else 32768)
    min_len = 128 if args.smoke else 512
    if max_len < min_len:
        raise SystemExit(f"--max-len: expected at least {min_len}, got {max_len}")
    ts = lengths(min_len, max_len)
    variants = VARIANTS if not args.only else tuple(v for v in args.only.split(",") if v)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--only with --scaling: unknown variant(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(VARIANTS)}")
    repeats = args.repeats or (1 if args.smoke else 3)
    memory = args.memory if args.memory is not None else True
    rows = []
    for t in ts:
        for v in variants:
            r = measure(v, t, repeats)
            if memory:
                r["peak_mem_mb"] = run_probe(v, t, args.threads)
            mem = "" if r["peak_mem_mb"] is None else f" {r['peak_mem_mb']:8.1f} MB"
            log(f"[scaling] T={t:6d} {v:9s} {r['median_s'] * 1e3:10.1f} ms{mem}")
            rows.append(r)
    title = (f"attention forward+backward, B={B} H={H} D={D}, causal (linformer: not), w={WINDOW}, "
             f"m={FEATURES}, k={LIN_K}, bigbird blocks of 64 (3 window, 2 global, 3 random); "
             f"cpuformer {cf.__version__}, {args.threads} threads")
    print(title)
    print(format_table(rows, ts))
    report = {"config": {"B": B, "H": H, "D": D, "window": WINDOW, "num_features": FEATURES, "linformer_k": LIN_K,
                         "bigbird": BIGBIRD,
                         "threads": args.threads, "lengths": ts, "cpuformer": cf.__version__,
                         "cpu_count": os.cpu_count()}, "results": rows}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
    if args.plot:
        plot(rows, args.plot, title)
    return 0
