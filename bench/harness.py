"""``python -m cpuformer bench``: cpuformer against PyTorch eager, same run,
same threads, interleaved, medians after warm-up; one table at the end.

Progress goes to stderr while the benchmark runs; the report (machine header
and table) goes to stdout. Peak memory is measured per (framework, workload)
in a fresh subprocess of this same command (``--memory-probe``) so the two
frameworks never share an address space while being measured.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from .common import _ru_maxrss_mb, fmt_time, log, proc_status_kb, reset_peak_rss, timed_sample
from .report import format_machine, format_report, plot_report
from .workloads import BY_ID, WORKLOADS, Workload

PROG = "python -m cpuformer bench"
FRAMEWORKS = ("cpuformer", "torch")
# Extra calls the memory probe makes: the first allocates lazily created
# buffers (torch's gradients and AdamW state), the second shows steady state.
MEMORY_PROBE_CALLS = 2


# --------------------------------------------------------------------------
# Command line


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    ids = ", ".join(f"{w.id} {w.title}" for w in WORKLOADS)
    p = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark cpuformer against PyTorch eager (when installed) on five transformer workloads: "
                    f"{ids}. Prints one table: median time, throughput, achieved GFLOP/s against the measured FP32 "
                    "FMA peak, peak memory and the ratio torch/cpuformer (higher is better for cpuformer).")
    p.add_argument("--only", metavar="IDS", default=None,
                   help="comma-separated workload ids to run, e.g. W2 or W1,W4 (default: all)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both frameworks (default: every core this process may use)")
    p.add_argument("--json", metavar="PATH", default=None, help="also save all results (and raw times) as JSON")
    p.add_argument("--plot", metavar="PATH", default=None, help="draw a PNG bar chart (needs matplotlib)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes, one timed run, no memory probes: checks the harness works, measures nothing")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per framework (default: per workload, 3-9)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs per framework first (default: per workload)")
    mem = p.add_mutually_exclusive_group()
    mem.add_argument("--no-memory", dest="memory", action="store_false", default=None,
                     help="skip the peak-memory subprocesses")
    mem.add_argument("--memory", dest="memory", action="store_true",
                     help="measure peak memory even with --smoke")
    p.add_argument("--no-torch", action="store_true", help="run cpuformer only, even when torch is installed")
    p.add_argument("--scaling", action="store_true",
                   help="instead of the workloads: time and peak memory of attention forward+backward against the "
                        "sequence length T (full flash, sliding window, Performer, Linformer); --only then picks "
                        "variants (full,sliding,performer,linformer,bigbird)")
    p.add_argument("--max-len", type=int, default=None, help="--scaling: longest T (default 32768; smoke: 1024)")
    p.add_argument("--scaling-probe", metavar="VARIANT:T", default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-precision", action="store_true",
                   help="skip the precision rows (W1/W5 in bfloat16 and int8 against ONNX Runtime, CTranslate2 and "
                        "torch when installed); --only picks them by id, e.g. --only W1-int8,W5-int8")
    p.add_argument("--precision-probe", metavar="ROW:DTYPE", default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-latency", action="store_true",
                   help="skip the latency rows (L1 W3, L2 HF BERT 2L-128, L3 MiniLM-L6-shaped, L4 ViT-Tiny-shaped: "
                        "one request per call against torch and ONNX Runtime float32 when installed, with "
                        "1- and 4-thread throughput); --only picks them by id, e.g. --only L2,L3")
    p.add_argument("--no-mixed", action="store_true",
                   help="skip the mixed-precision training rows (W2-bf16, W4-bf16: cpuformer under bf16 autocast "
                        "against cpuformer float32 and torch float32 / bf16 autocast); --only picks them by id")
    p.add_argument("--no-batched", action="store_true",
                   help="skip the batched generation row (W6: W5's GPT generating 128 tokens for 32 left-padded "
                        "prompts at batch 1, 8 and 32 against transformers and CTranslate2 float32 / int8 when "
                        "installed); --only W6 picks it")
    # Internal: one (workload, framework) memory measurement in this fresh process.
    p.add_argument("--memory-probe", metavar="ID:FRAMEWORK", default=None, help=argparse.SUPPRESS)
    p.add_argument("--builds", metavar="PYTHON_A,PYTHON_B", default=None,
                   help="instead of cpuformer against torch: the cpuformer of two interpreters (a native and a "
                        "portable build in two venvs, say) on the workloads (--only: of W1-W5), samples "
                        "interleaved in one run; prints both times, their ratio and how far the first results differ")
    p.add_argument("--build-worker", action="store_true", help=argparse.SUPPRESS)
    return p


def select_workloads(only: Optional[str], parser: argparse.ArgumentParser):
    """(workloads, precision rows, latency rows, mixed-precision rows, batched generation rows) named by --only
    (default: all)."""
    from .batched import ROWS as BATCHED
    from .latency import ROWS as LATENCY
    from .mixed import ROWS as MIXED
    from .precision import ROWS

    if not only:
        return list(WORKLOADS), list(ROWS), list(LATENCY), list(MIXED), list(BATCHED)
    wanted = [s.strip().upper().replace("BF16", "bf16").replace("INT8", "int8") for s in only.split(",") if s.strip()]
    known = [*BY_ID, *ROWS, *LATENCY, *MIXED, *BATCHED]
    unknown = [s for s in wanted if s not in known]
    if unknown or not wanted:
        parser.error(f"--only: unknown workload id(s) {', '.join(unknown) or repr(only)}; "
                     f"expected a comma-separated subset of {', '.join(known)}")
    return ([w for w in WORKLOADS if w.id in wanted], [r for r in ROWS if r in wanted],
            [r for r in LATENCY if r in wanted], [r for r in MIXED if r in wanted],
            [r for r in BATCHED if r in wanted])


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def main(argv=None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    for name in ("threads", "repeats"):
        v = getattr(args, name)
        if v is not None and v < 1:
            parser.error(f"--{name}: expected an integer >= 1, got {v}")
    if args.warmup is not None and args.warmup < 0:
        parser.error(f"--warmup: expected an integer >= 0, got {args.warmup}")
    if args.threads is None:
        args.threads = default_threads()
    if args.memory is None:
        args.memory = not args.smoke
    if args.memory_probe:
        return memory_probe(args, parser)
    if args.build_worker:
        from .builds import worker

        return worker(args.threads)
    if args.scaling_probe:
        from .scaling import memory_probe as scaling_memory_probe

        return scaling_memory_probe(args.scaling_probe, args.threads)
    if args.precision_probe:
        from .precision import memory_probe as precision_memory_probe

        return precision_memory_probe(args.precision_probe, args.threads, args.smoke)
    if args.scaling:
        from .scaling import run_scaling

        return run_scaling(args)
    workloads, rows, latency_rows, mixed_rows, batched_rows = select_workloads(args.only, parser)
    if args.builds:
        from .builds import run_builds

        if not workloads:
            parser.error("--builds: --only names none of the workloads W1-W5")
        return run_builds(args, workloads)
    if args.no_precision:
        rows = []
    if args.no_latency:
        latency_rows = []
    if args.no_mixed:
        mixed_rows = []
    if args.no_batched:
        batched_rows = []
    return run(args, workloads, rows, latency_rows, mixed_rows, batched_rows)


# --------------------------------------------------------------------------
# Machine description and throughput probes


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(threads: int, torch) -> Dict[str, object]:
    import cpuformer as cf

    b = cf.build_info()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": default_threads(),
        "threads": threads,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpuformer": cf.__version__,
        "cpuformer_build": {k: b[k] for k in ("compiler", "build_type", "openmp", "native", "simd", "eigen", "gemm",
                                              "gemm_dispatch", "int8_kernel", "bf16_kernel")},
        "torch": None,
    }
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def gemm_shapes(smoke: bool):
    if smoke:
        return [(64, 64, 64, "square")]
    return [(1024, 1024, 1024, "square"), (1024, 2304, 768, "W1 QKV proj"), (1024, 3072, 768, "W1 FF up"),
            (1024, 768, 3072, "W1 FF down"), (2048, 8192, 512, "W2 LM head")]


def torch_gemm_gflops(torch, M, N, K, repeats):
    a, b = torch.randn(M, K), torch.randn(K, N)
    c = torch.empty(M, N)
    torch.matmul(a, b, out=c)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    return 2.0 * M * N * K / statistics.median(times) / 1e9


def measure_probes(smoke: bool, torch) -> Dict[str, object]:
    from cpuformer import _core

    seconds = 0.05 if smoke else 1.0
    log(f"[peak] measuring the FP32 FMA peak on all threads ({seconds:g} s) ...")
    fma = float(_core.fma_peak_gflops(seconds))
    log(f"[peak] FP32 FMA peak: {fma:.1f} GFLOP/s")
    repeats = 1 if smoke else 5
    gemms = []
    for M, N, K, what in gemm_shapes(smoke):
        row = {"M": M, "N": N, "K": K, "what": what, "cpuformer": float(_core.gemm_gflops(M, N, K, repeats))}
        row["torch"] = torch_gemm_gflops(torch, M, N, K, repeats) if torch is not None else None
        gemms.append(row)
        t = f", torch {row['torch']:.1f}" if row["torch"] is not None else ""
        log(f"[peak] GEMM {M}x{N}x{K} ({what}): cpuformer {row['cpuformer']:.1f}{t} GFLOP/s")
    return {"fma_peak_gflops": fma, "fma_seconds": seconds, "gemm": gemms, "gemm_repeats": repeats}


# --------------------------------------------------------------------------
# Timing


def run_workload(w: Workload, torch, args) -> Dict[str, object]:
    repeats = args.repeats or w.repeats
    warmup = w.warmup if args.warmup is None else args.warmup
    tag = f"[{w.id}]"
    log(f"{tag} {w.title}: {w.describe()}")
    inputs = w.inputs()
    t0 = time.perf_counter()
    cases = {"cpuformer": w.build_cpuformer(inputs)}
    if torch is not None:
        cases["torch"] = w.build_torch(inputs, cases["cpuformer"].weights)
    log(f"{tag} built in {time.perf_counter() - t0:.1f} s; warm-up: {warmup} call(s) per framework")
    for case in cases.values():
        case.weights = None  # only needed to build the torch twin
        for _ in range(max(1, warmup)):  # at least one call: its result feeds the check
            case.step()
    check = ""
    if "torch" in cases:
        check = w.compare(cases["cpuformer"].first, cases["torch"].first)
        log(f"{tag} check: {check}")
    for case in cases.values():
        case.first = None
        case.keep_first = False
    times: Dict[str, List[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]  # alternate who goes first
        for name in order:
            times[name].append(timed_sample(cases[name], w.inner))
        per = "  ".join(f"{n} {fmt_time(times[n][-1])}" for n in names)
        log(f"{tag} run {r + 1}/{repeats}: {per}")
    result = {
        "id": w.id, "title": w.title, "stresses": w.stresses, "description": w.describe(), "shape": w.shape,
        "flops_per_call": w.flops(), "tokens_per_call": w.tokens(), "unit": w.unit,
        "repeats": repeats, "warmup": warmup, "calls_per_sample": w.inner, "check": check,
    }
    for name in FRAMEWORKS:
        if name not in cases:
            result[name] = None
            continue
        med = statistics.median(times[name])
        result[name] = {
            "times_s": times[name], "median_s": med, "throughput": w.tokens() / med,
            "gflops": w.flops() / med / 1e9, "baseline": cases[name].label or name, "peak_mem_mb": None,
        }
    cf_med = result["cpuformer"]["median_s"]
    result["ratio"] = result["torch"]["median_s"] / cf_med if result["torch"] else None
    ratio = f"  torch/cpuformer {result['ratio']:.2f}x" if result["ratio"] else ""
    per = "  ".join(f"{n} {fmt_time(result[n]['median_s'])}" for n in names)
    log(f"{tag} median: {per}{ratio}")
    del cases
    gc.collect()
    return result


# --------------------------------------------------------------------------
# Memory


def memory_probe(args, parser) -> int:
    """Child process: build one framework's case of one workload, run it, print peak memory as JSON."""
    wid, _, framework = args.memory_probe.partition(":")
    if wid not in BY_ID or framework not in FRAMEWORKS:
        parser.error(f"--memory-probe: expected ID:FRAMEWORK, got {args.memory_probe!r}")
    import cpuformer as cf

    cf.set_num_threads(args.threads)
    if framework == "torch":
        import torch

        torch.set_num_threads(args.threads)
    w = BY_ID[wid].configure(args.smoke)
    inputs = w.inputs()
    gc.collect()
    # Baseline: after imports and input creation, before any model or weight
    # exists, so weights, gradients, optimizer state, activations and
    # workspaces all count, however lazily each framework allocates them.
    rss = proc_status_kb("VmRSS")
    exact = rss is not None and reset_peak_rss()
    base_mb = rss / 1024 if exact else _ru_maxrss_mb()
    case = w.build_cpuformer(inputs) if framework == "cpuformer" else w.build_torch(inputs)
    case.weights = None
    case.keep_first = False
    for _ in range(MEMORY_PROBE_CALLS):
        case.step()
    if exact:
        hwm = proc_status_kb("VmHWM")
        peak_mb = hwm / 1024 if hwm is not None else _ru_maxrss_mb()
    else:
        peak_mb = _ru_maxrss_mb()
    print(json.dumps({"workload": wid, "framework": framework, "baseline_mb": base_mb, "peak_rss_mb": peak_mb,
                      "peak_mem_mb": max(0.0, peak_mb - base_mb),
                      "method": "VmHWM reset" if exact else "ru_maxrss delta (lower bound)"}))
    return 0


def run_memory_probe(wid: str, framework: str, args) -> Optional[Dict[str, object]]:
    cmd = [sys.executable, "-m", "cpuformer", "bench", "--memory-probe", f"{wid}:{framework}",
           "--threads", str(args.threads)]
    if args.smoke:
        cmd.append("--smoke")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        log(f"[mem] {wid} {framework}: timed out")
        return None
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"[mem] {wid} {framework}: probe failed (exit {p.returncode}): {tail}")
        return None
    return json.loads(lines[-1])


def run(args, workloads: List[Workload], precision_rows=(), latency_rows=(), mixed_rows=(), batched_rows=()) -> int:
    import cpuformer as cf

    cf.set_num_threads(args.threads)
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            log("[bench] torch is not installed: measuring cpuformer only "
                "(pip install torch==2.13.0 for the comparison)")
        else:
            torch.set_num_threads(args.threads)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            log(f"[bench] --plot: matplotlib is not installed; the run goes on but {args.plot} will not be drawn "
                "(pip install matplotlib)")
    info = machine_info(args.threads, torch)
    log(f"[bench] {info['cpu']}, threads: {args.threads}, cpuformer {info['cpuformer']}"
        + (f", torch {info['torch']}" if torch is not None else "") + (" (smoke run)" if args.smoke else ""))
    probes = measure_probes(args.smoke, torch) if workloads else None
    results = [run_workload(w.configure(args.smoke), torch, args) for w in workloads]
    if args.memory:
        for r in results:
            for fw in FRAMEWORKS:
                if r[fw] is None:
                    continue
                log(f"[mem] {r['id']} {fw}: measuring in a fresh process ...")
                m = run_memory_probe(r["id"], fw, args)
                if m is not None:
                    r[fw]["peak_mem_mb"] = m["peak_mem_mb"]
                    r[fw]["memory"] = m
                    log(f"[mem] {r['id']} {fw}: {m['peak_mem_mb']:.0f} MB over baseline "
                        f"(process peak {m['peak_rss_mb']:.0f} MB)")
    precision = None
    have_hf = torch is not None and importlib.util.find_spec("transformers") is not None
    if precision_rows and not args.only and not have_hf:
        log("[bench] skipping the precision rows: they need torch and transformers to make the shared "
            "checkpoints (pip install torch==2.13.0 transformers; the peers: pip install \".[peers]\")")
        precision_rows = ()
    if batched_rows and not args.only and not have_hf:
        log("[bench] skipping W6 (batched generation): it needs torch and transformers for its shared "
            "checkpoint and baseline (pip install torch==2.13.0 transformers)")
        batched_rows = ()
    if precision_rows:
        from .precision import run_precision

        precision = run_precision(list(precision_rows), args.threads, args.smoke, args.repeats, args.memory, torch)
    latency = None
    if latency_rows:
        from .latency import run_latency

        latency = run_latency(list(latency_rows), args.threads, args.smoke, torch is not None)
    mixed = None
    if mixed_rows:
        from .mixed import run_mixed

        mixed = run_mixed(list(mixed_rows), args.threads, args.smoke, args.repeats, torch is not None)
    batched = None
    if batched_rows:
        from .batched import run_batched

        batched = run_batched(args.threads, args.smoke, args.repeats, torch is not None)
    report = {
        "machine": info,
        "settings": {"threads": args.threads, "smoke": args.smoke, "memory": args.memory,
                     "only": [w.id for w in workloads] + list(precision_rows) + list(latency_rows) + list(mixed_rows)
                     + list(batched_rows),
                     "memory_probe_calls": MEMORY_PROBE_CALLS},
        "probes": probes,
        "workloads": results,
        "precision": precision,
        "latency": latency,
        "mixed": mixed,
        "batched": batched,
    }
    lines = [format_report(report)] if results else [format_machine(report)]
    if precision:
        from .precision import format_precision

        lines.extend(format_precision(precision, args.threads))
    if latency:
        from .latency import format_latency

        lines.extend(format_latency(latency))
    if mixed:
        from .mixed import format_mixed

        lines.extend(format_mixed(mixed, args.threads))
    if batched:
        from .batched import format_batched

        lines.extend(format_batched(batched, args.threads))
    print("\n".join(lines), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        log(f"[bench] results saved to {args.json}")
    if args.plot and results and plot_report(report, args.plot):
        log(f"[bench] chart saved to {args.plot}")
    return 0
