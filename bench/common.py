"""What the benchmark modules share: the peak-memory probes of /proc (Linux) and the text formatting of times
and tables, and the timing of one sample. The harness and the precision, latency, mixed, batched, scaling and
builds runs import these from here."""
from __future__ import annotations

import gc
import sys
import time
from typing import List, Optional


def proc_status_kb(field: str) -> Optional[int]:
    """Linux: a field of /proc/self/status in kB (VmRSS, VmHWM, ...); None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> bool:
    """Linux: reset VmHWM (the peak resident size) to the current size."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_mb() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1.0:
        ms = s * 1e3
        return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"
    return f"{s:.2f} s"


def render_table(columns, rows) -> List[str]:
    """columns: [(group, name, align)], align '<' or '>'; rows: lists of strings."""
    widths = [max(len(name), *(len(r[i]) for r in rows)) if rows else len(name)
              for i, (_, name, _) in enumerate(columns)]
    sep = "  "
    spans = []  # (group, first, last)
    for i, (group, _, _) in enumerate(columns):
        if spans and spans[-1][0] == group:
            spans[-1][2] = i
        else:
            spans.append([group, i, i])
    for group, a, b in spans:  # widen the last column when the group label is longer
        span = sum(widths[a:b + 1]) + len(sep) * (b - a)
        if len(group) > span:
            widths[b] += len(group) - span
    group_cells = []
    for group, a, b in spans:
        span = sum(widths[a:b + 1]) + len(sep) * (b - a)
        group_cells.append(group.center(span) if group else " " * span)

    def line(cells):
        out = []
        for (_, _, align), cell, wd in zip(columns, cells, widths):
            out.append(f"{cell:{align}{wd}}")
        return sep.join(out).rstrip()

    lines = [sep.join(group_cells).rstrip(), line([name for _, name, _ in columns])]
    lines.append(sep.join("-" * wd for wd in widths))
    lines.extend(line(r) for r in rows)
    return lines


def log(msg: str) -> None:
    """Progress and warnings of a benchmark run: stderr, flushed (the report goes to stdout)."""
    print(msg, file=sys.stderr, flush=True)


# Pause before each sample so the other framework's OpenMP workers stop spinning.
SWITCH_PAUSE_S = 0.01


def timed_sample(case, inner: int, pause_s: float = SWITCH_PAUSE_S) -> float:
    """Seconds per call over `inner` back-to-back calls of ``case.step()``, after a pause of ``pause_s``, GC paused."""
    gc.collect()
    time.sleep(pause_s)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(inner):
            case.step()
        return (time.perf_counter() - t0) / inner
    finally:
        if was_enabled:
            gc.enable()
