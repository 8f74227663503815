"""``python -m cpuformer bench --builds PYTHON_A,PYTHON_B``: two builds of
cpuformer (a native and a portable one, say) side by side on W1-W5, in one run.

Each build lives in its own interpreter (two venvs), so each runs in a worker
process of its own (``--build-worker``, started with that interpreter), which
builds a workload's case, warms it up and then times one sample whenever this
process asks. The samples alternate between the builds (who goes first
alternates too), after a pause that lets the other worker's OpenMP threads
fall asleep, as ``bench`` interleaves cpuformer and torch; the call right
after the pause (threads waking, caches cold) is not timed, and short calls
are repeated back to back until a sample lasts at least ``MIN_SAMPLE_S``. Both
workers build the same inputs and weights (the workloads are seeded), so
their first results must agree up to rounding: the table shows the largest
difference.

The protocol is one JSON object per line: commands on the worker's stdin,
answers on its stdout; the worker's progress and errors go to stderr.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np

from .common import fmt_time, log, render_table, timed_sample

# Seconds between samples, so the other process's OpenMP workers stop spinning.
BUILD_SWITCH_PAUSE_S = 0.2
# Shortest timed sample: W3's calls take well under a millisecond.
MIN_SAMPLE_S = 0.1


# --------------------------------------------------------------------------
# Worker (runs inside the interpreter of one build)


def _save_first(first: Any, path: str) -> bool:
    """Save a case's first result (array, float or tuple of arrays) as one flat float64 .npy; False if unknown."""
    parts = first if isinstance(first, (tuple, list)) else (first,)
    try:
        flat = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])
    except (TypeError, ValueError):
        return False
    np.save(path, flat)
    return True


def worker(threads: int) -> int:
    """Answer the parent's commands until stdin closes (see the module docstring)."""
    import cpuformer as cf

    from .workloads import BY_ID

    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # anything the workloads print must not corrupt the protocol
    cf.set_num_threads(threads)
    case = None
    inner = 1

    def answer(obj: Dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")

    for line in sys.stdin:
        msg = json.loads(line)
        try:
            cmd = msg["cmd"]
            if cmd == "info":
                answer({"build_info": cf.build_info(), "python": sys.executable, "cpuformer": cf.__version__})
            elif cmd == "setup":
                case = None
                w = BY_ID[msg["id"]].configure(msg["smoke"])
                inner = w.inner
                case = w.build_cpuformer(w.inputs())
                case.weights = None
                for _ in range(max(1, msg["warmup"])):
                    case.step()
                t0 = time.perf_counter()
                case.step()
                inner = max(inner, math.ceil(MIN_SAMPLE_S / max(time.perf_counter() - t0, 1e-9)))
                saved = _save_first(case.first, msg["first_path"])
                case.first = None
                case.keep_first = False
                answer({"ok": True, "first_saved": saved, "inner": inner})
            elif cmd == "sample":
                time.sleep(BUILD_SWITCH_PAUSE_S)
                case.step()  # untimed: the first call after the pause wakes the threads
                answer({"seconds": timed_sample(case, inner, 0.0)})
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Exception as e:  # reported to the parent, which stops the run
            answer({"error": f"{type(e).__name__}: {e}"})
    return 0


# --------------------------------------------------------------------------
# Parent


class _Worker:
    def __init__(self, python: str, threads: int, label: str):
        self.label = label
        cmd = [python, "-m", "cpuformer", "bench", "--build-worker", "--threads", str(threads)]
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        except OSError as e:
            raise SystemExit(f"--builds: cannot start {python}: {e}") from None

    def ask(self, **msg: Any) -> Dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"--builds: the worker of build {self.label} exited "
                             f"(code {self.proc.wait()}); its stderr is above")
        ans = json.loads(line)
        if "error" in ans:
            raise SystemExit(f"--builds: build {self.label}: {ans['error']}")
        return ans

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


def describe_build(info: Dict[str, Any]) -> str:
    kind = "native" if info.get("native") else "portable"
    return (f"{kind} (simd {info.get('simd')}, gemm {info.get('gemm')}, vector {info.get('vector_kernel', '?')}, "
            f"int8 {info.get('int8_kernel')}, bf16 {info.get('bf16_kernel')})")


def run_builds(args, workloads: List[Any]) -> int:
    """Time every workload under each build, interleaved; print one table (and save JSON with --json)."""
    pythons = [p.strip() for p in args.builds.split(",") if p.strip()]
    if len(pythons) != 2:
        raise SystemExit(f"--builds: expected two interpreters separated by a comma, got {args.builds!r}")
    names = ["A", "B"]
    workers = [_Worker(p, args.threads, n) for p, n in zip(pythons, names)]
    tmp = tempfile.TemporaryDirectory()
    try:
        infos = [w.ask(cmd="info") for w in workers]
        for n, info in zip(names, infos):
            log(f"[builds] {n}: cpuformer {info['cpuformer']} in {info['python']}: {describe_build(info['build_info'])}")
        results = []
        for wl in workloads:
            wl = wl.configure(args.smoke)
            repeats = args.repeats or max(wl.repeats, 5)
            warmup = wl.warmup if args.warmup is None else args.warmup
            log(f"[{wl.id}] {wl.title}: {wl.describe()}")
            firsts, inners = [], []
            for n, w in zip(names, workers):
                path = os.path.join(tmp.name, f"{wl.id}_{n}.npy")
                ans = w.ask(cmd="setup", id=wl.id, smoke=args.smoke, warmup=warmup, first_path=path)
                firsts.append(np.load(path) if ans["first_saved"] else None)
                inners.append(ans["inner"])
            diff: Optional[float] = None
            if all(f is not None and f.shape == firsts[0].shape for f in firsts):
                scale = max(float(np.max(np.abs(firsts[0]))), 1e-30)
                diff = float(np.max(np.abs(firsts[0] - firsts[1]))) / scale
            times: List[List[float]] = [[], []]
            for r in range(repeats):
                order = [0, 1] if r % 2 == 0 else [1, 0]
                for i in order:
                    times[i].append(workers[i].ask(cmd="sample")["seconds"])
                log(f"[{wl.id}] run {r + 1}/{repeats}: A {fmt_time(times[0][-1])}  B {fmt_time(times[1][-1])}")
            med = [statistics.median(t) for t in times]
            results.append({"id": wl.id, "title": wl.title, "description": wl.describe(), "repeats": repeats,
                            "calls_per_sample": inners,
                            "A": {"times_s": times[0], "median_s": med[0]},
                            "B": {"times_s": times[1], "median_s": med[1]},
                            "ratio_B_over_A": med[1] / med[0], "max_rel_diff": diff})
            log(f"[{wl.id}] median: A {fmt_time(med[0])}  B {fmt_time(med[1])}  B/A {med[1] / med[0]:.3f}")
    finally:
        for w in workers:
            w.close()
        tmp.cleanup()
    print(format_builds(infos, results, args.threads), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"builds": infos, "threads": args.threads, "smoke": args.smoke, "workloads": results}, f,
                      indent=2)
            f.write("\n")
        log(f"[builds] results saved to {args.json}")
    return 0


def format_builds(infos: List[Dict[str, Any]], results: List[Dict[str, Any]], threads: int) -> str:
    lines = [f"Two builds, same run, {threads} thread(s), samples interleaved:"]
    for n, info in zip("AB", infos):
        lines.append(f"  {n}: {describe_build(info['build_info'])}")
    rows = []
    for r in results:
        ratio = r["ratio_B_over_A"]
        diff = "n/a" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        rows.append([r["id"], r["title"], fmt_time(r["A"]["median_s"]), fmt_time(r["B"]["median_s"]),
                     f"{ratio:.3f}", f"{(ratio - 1) * 100:+.1f}%", diff])
    cols = [("", "id", "<"), ("", "workload", "<"), ("median time", "A", ">"), ("median time", "B", ">"),
            ("B against A", "time B/A", ">"), ("B against A", "slower by", ">"),
            ("first results", "max rel diff", ">")]
    lines.extend(render_table(cols, rows))
    return "\n".join(lines)
