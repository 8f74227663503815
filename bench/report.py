"""The text table and the bar chart of a ``python -m cpuformer bench`` run, made from its report dict (the one
``--json`` saves; bench/harness.py builds it)."""
from __future__ import annotations

import numpy as np

from .common import fmt_time, log, render_table


def _fmt_int(x) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def format_machine(report) -> str:
    """The header lines alone (a run with precision rows only)."""
    info = report["machine"]
    b = info["cpuformer_build"]
    return "\n".join([
        f"cpuformer benchmark - {info['date']}",
        f"machine : {info['cpu']}, {info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable), {info['os']}",
        f"threads : {info['threads']} for every engine",
        f"versions: cpuformer {info['cpuformer']} ({b['compiler']}, {b['simd']}, GEMM {b['gemm']}, int8 "
        f"{b['int8_kernel']}, bf16 {b['bf16_kernel']}) | torch {info['torch']} | numpy {info['numpy']}"])


def format_report(report) -> str:
    info, probes, results = report["machine"], report["probes"], report["workloads"]
    peak = probes["fma_peak_gflops"]
    b = info["cpuformer_build"]
    out = []
    out.append(f"cpuformer benchmark - {info['date']}")
    out.append(f"machine : {info['cpu']}, {info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable), "
               f"{info['os']}")
    out.append(f"threads : {info['threads']} for both frameworks")
    torch_v = f"torch {info['torch']}" if info["torch"] else "torch not installed (cpuformer only)"
    gemm = f", GEMM {b['gemm']}" if "gemm" in b else ""  # reports saved before the field existed lack it
    out.append(f"versions: cpuformer {info['cpuformer']} ({b['compiler']}, {b['simd']}{gemm}, Eigen {b['eigen']}, "
               f"OpenMP {'on' if b['openmp'] else 'OFF'}) | {torch_v} | numpy {info['numpy']} | "
               f"Python {info['python']}")
    nt = info["threads"]
    out.append(f"FMA peak: {peak:.1f} GFLOP/s FP32 (measured on {nt} thread{'s' if nt > 1 else ''})")
    g = "; ".join(
        f"{r['M']}x{r['N']}x{r['K']} {_fmt_int(r['cpuformer'])}"
        + (f" / {_fmt_int(r['torch'])}" if r["torch"] is not None else "")
        for r in probes["gemm"])
    who = "cpuformer / torch" if info["torch"] else "cpuformer"
    out.append(f"GEMM    : GFLOP/s {who} (MxNxK): {g}")
    if report["settings"]["smoke"]:
        out.append("SMOKE RUN: tiny shapes, one timed run; the numbers below measure nothing")
    out.append("")

    def pct(fw):
        return f"{fw['gflops']:.1f} ({100 * fw['gflops'] / peak:.0f}%)" if fw else "-"

    def mem(fw):
        return _fmt_int(fw["peak_mem_mb"]) if fw and fw["peak_mem_mb"] is not None else "-"

    columns = [("", "id", "<"), ("", "workload", "<"),
               ("median time", "cpuformer", ">"), ("median time", "torch", ">"),
               ("throughput (tok/s)", "cpuformer", ">"), ("throughput (tok/s)", "torch", ">"),
               ("GFLOP/s (% of FMA peak)", "cpuformer", ">"), ("GFLOP/s (% of FMA peak)", "torch", ">"),
               ("peak memory (MB)", "cpuformer", ">"), ("peak memory (MB)", "torch", ">"),
               ("", "torch/cpuformer", ">")]
    rows = []
    for r in results:
        c, t = r["cpuformer"], r["torch"]
        rows.append([r["id"], r["title"], fmt_time(c["median_s"]), fmt_time(t["median_s"]) if t else "-",
                     _fmt_int(c["throughput"]), _fmt_int(t["throughput"]) if t else "-", pct(c), pct(t),
                     mem(c), mem(t), f"{r['ratio']:.2f}x" if r["ratio"] else "-"])
    if not any(r["torch"] for r in results):  # cpuformer only: drop the torch columns
        keep = [i for i, (_, name, _) in enumerate(columns) if name not in ("torch", "torch/cpuformer")]
        columns = [columns[i] for i in keep]
        rows = [[row[i] for i in keep] for row in rows]
    out.extend(render_table(columns, rows))
    out.append("")
    for r in results:
        out.append(f"{r['id']}  {r['description']} ({r['stresses']}); "
                   f"{r['flops_per_call'] / 1e9:.3g} GFLOP per call")
        if r["torch"]:
            out.append(f"    torch: {r['torch']['baseline']}")
        if r["cpuformer"]["baseline"] != "cpuformer":
            out.append(f"    cpuformer: {r['cpuformer']['baseline']}")
        if r["check"]:
            out.append(f"    check: {r['check']}")
    s = report["settings"]
    out.append("")
    runs = ", ".join(f"{r['id']} {r['repeats']}" + (f" of {r['calls_per_sample']} calls"
                                                     if r["calls_per_sample"] > 1 else "") for r in results)
    out.append(f"time      : median of the timed runs per framework ({runs}) after warm-up, the frameworks "
               "alternating run by run")
    out.append("throughput: tokens processed per second (W5: generated tokens per second)")
    out.append("GFLOP/s   : matrix-multiply FLOPs per call (formulas in bench/workloads.py) / median time")
    if s["memory"]:
        out.append(f"memory    : peak resident memory while building and running {s['memory_probe_calls']} calls, over the "
                   "resident size after imports and input creation (weights, gradients, optimizer state, "
                   "activations and workspaces included), each framework alone in a fresh process")
    else:
        out.append("memory    : not measured (--no-memory or --smoke)")
    out.append("torch/cpuformer: torch's median time / cpuformer's; above 1 means cpuformer is faster")
    return "\n".join(out)


def plot_report(report, path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log(f"--plot: matplotlib is not installed, so {path} was not written (pip install matplotlib)")
        return False
    results = report["workloads"]
    ids = [r["id"] for r in results]
    x = np.arange(len(ids))
    peak = report["probes"]["fma_peak_gflops"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    cf_g = [r["cpuformer"]["gflops"] for r in results]
    t_g = [r["torch"]["gflops"] if r["torch"] else 0.0 for r in results]
    has_torch = any(r["torch"] for r in results)
    width = 0.38 if has_torch else 0.6
    ax1.bar(x - (width / 2 if has_torch else 0), cf_g, width, label="cpuformer", color="#1f77b4")
    if has_torch:
        ax1.bar(x + width / 2, t_g, width, label="torch", color="#ff7f0e")
    ax1.axhline(peak, color="gray", ls="--", lw=1)
    ax1.text(len(ids) - 0.5, peak, f"FMA peak {peak:.0f}", ha="right", va="bottom", fontsize=8, color="gray")
    ax1.set_xticks(x, ids)
    ax1.set_ylabel("achieved GFLOP/s")
    ax1.set_title("Throughput")
    ax1.legend(fontsize=8)
    if has_torch:
        ratios = [r["ratio"] or 0.0 for r in results]
        colors = ["#2ca02c" if v >= 1 else "#d62728" for v in ratios]
        ax2.bar(x, ratios, 0.6, color=colors)
        ax2.axhline(1.0, color="black", lw=1)
        for xi, v in zip(x, ratios):
            ax2.text(xi, v, f"{v:.2f}x", ha="center", va="bottom", fontsize=8)
        ax2.set_title("torch time / cpuformer time (higher is better)")
    else:
        ax2.set_title("torch not installed: no ratios")
    ax2.set_xticks(x, ids)
    info = report["machine"]
    versus = f" vs torch {info['torch']}" if has_torch else ""
    fig.suptitle(f"cpuformer {info['cpuformer']}{versus}: {info['cpu']}, "
                 f"{info['threads']} threads, {info['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------
# The run
