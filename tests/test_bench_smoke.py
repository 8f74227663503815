"""The benchmark harness runs end to end at tiny sizes (``--smoke``).

Benchmarks are not tests: nothing here asserts on a time, only that the
harness produces a complete, well-formed report. The subprocess timeouts only
guard against hangs.
"""
import importlib.util
import json
import math
import subprocess
import sys

import pytest

import cpuformer as cf
from cpuformer import _core

WORKLOADS = ["W1", "W2", "W3", "W4", "W5"]
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def run_bench(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "cpuformer", "bench", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_smoke_run_reports_every_workload(tmp_path):
    out = tmp_path / "bench.json"
    r = run_bench("--smoke", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [w["id"] for w in report["workloads"]] == WORKLOADS
    assert report["probes"]["fma_peak_gflops"] > 0
    assert all(g["cpuformer"] > 0 for g in report["probes"]["gemm"])
    assert report["machine"]["threads"] == 1
    frameworks = ["cpuformer", "torch"] if HAVE_TORCH else ["cpuformer"]
    for w in report["workloads"]:
        assert w["flops_per_call"] > 0 and w["tokens_per_call"] > 0, w["id"]
        for fw in frameworks:
            res = w[fw]
            assert res is not None, (w["id"], fw)
            assert len(res["times_s"]) == 1 and all(t > 0 and math.isfinite(t) for t in res["times_s"]), (w["id"], fw)
            assert res["median_s"] > 0 and res["gflops"] > 0 and res["throughput"] > 0, (w["id"], fw)
        if HAVE_TORCH:
            assert w["ratio"] > 0 and w["check"], w["id"]
        else:
            assert w["torch"] is None and w["ratio"] is None
    # The table reaches stdout with one row per workload.
    for w in report["workloads"]:
        assert sum(line.startswith(f"{w['id']}  {w['title']}") for line in r.stdout.splitlines()) == 1, r.stdout


def test_only_and_memory_probe(tmp_path):
    out = tmp_path / "bench.json"
    r = run_bench("--smoke", "--only", "w3", "--memory", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [w["id"] for w in report["workloads"]] == ["W3"]
    w = report["workloads"][0]
    for fw in (["cpuformer", "torch"] if HAVE_TORCH else ["cpuformer"]):
        assert w[fw]["peak_mem_mb"] is not None and w[fw]["peak_mem_mb"] >= 0, fw
        assert w[fw]["memory"]["peak_rss_mb"] > 0, fw


def test_bad_arguments_fail_clearly():
    r = run_bench("--smoke", "--only", "W9", timeout=120)
    assert r.returncode != 0 and "W9" in r.stderr and "W1" in r.stderr
    r = run_bench("--smoke", "--threads", "0", timeout=120)
    assert r.returncode != 0 and "--threads" in r.stderr


def test_builds_smoke_same_build_twice(tmp_path):
    """--builds with this interpreter as both builds: a complete report, and identical first results (the same
    build on the same seeded inputs must compute the same numbers)."""
    out = tmp_path / "builds.json"
    r = run_bench("--smoke", "--builds", f"{sys.executable},{sys.executable}", "--only", "W3,W4", "--repeats", "2",
                  "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert [w["id"] for w in report["workloads"]] == ["W3", "W4"]
    ours = {k: v for k, v in cf.build_info().items() if k != "num_threads"}
    for b in report["builds"]:
        assert b["build_info"]["num_threads"] == 1
        assert {k: v for k, v in b["build_info"].items() if k != "num_threads"} == ours
    for w in report["workloads"]:
        assert len(w["A"]["times_s"]) == len(w["B"]["times_s"]) == 2
        assert all(t > 0 and math.isfinite(t) for t in w["A"]["times_s"] + w["B"]["times_s"])
        assert w["max_rel_diff"] == 0.0, w["id"]
        assert w["ratio_B_over_A"] == pytest.approx(w["B"]["median_s"] / w["A"]["median_s"])
    assert "W3" in r.stdout and "B/A" in r.stdout


def test_builds_bad_arguments_fail_clearly():
    r = run_bench("--smoke", "--builds", sys.executable, timeout=120)
    assert r.returncode != 0 and "two interpreters" in r.stderr
    r = run_bench("--smoke", "--builds", f"{sys.executable},/nonexistent/python", "--only", "W3", timeout=120)
    assert r.returncode != 0 and "/nonexistent/python" in r.stderr
    r = run_bench("--smoke", "--builds", f"{sys.executable},{sys.executable}", "--only", "L2", timeout=120)
    assert r.returncode != 0 and "W1-W5" in r.stderr


def test_probe_bindings_validate_arguments():
    assert _core.fma_peak_gflops(0.01) > 0
    assert _core.gemm_gflops(8, 16, 4, 1) > 0
    for bad in (0.0, -1.0, float("nan"), 1e9):
        with pytest.raises(ValueError, match="seconds"):
            _core.fma_peak_gflops(bad)
    with pytest.raises(ValueError, match="M, N, K"):
        _core.gemm_gflops(0, 4, 4, 1)
    with pytest.raises(ValueError, match="repeats"):
        _core.gemm_gflops(4, 4, 4, 0)
    assert cf.get_num_threads() >= 1


def test_scaling_smoke_reports_every_variant_and_length(tmp_path):
    out = tmp_path / "scaling.json"
    r = run_bench("--scaling", "--smoke", "--max-len", "256", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["config"]["lengths"] == [128, 256]
    got = {(row["variant"], row["T"]) for row in report["results"]}
    assert got == {(v, t) for v in ("full", "sliding", "performer", "linformer", "bigbird")
                   for t in (128, 256)}
    assert all(row["median_s"] > 0 and math.isfinite(row["median_s"]) for row in report["results"])
    table = [line for line in r.stdout.splitlines() if line.split()[:1] in (["128"], ["256"])]
    assert len(table) == 2, r.stdout
    bad = run_bench("--scaling", "--smoke", "--only", "full,nope")
    assert bad.returncode != 0 and "nope" in bad.stderr


@pytest.mark.skipif(not HAVE_TORCH or importlib.util.find_spec("transformers") is None,
                    reason="the precision rows need torch and transformers for their shared checkpoints")
def test_precision_rows_smoke(tmp_path):
    """The precision rows run every installed engine in a process of its own and check its output first."""
    out = tmp_path / "bench.json"
    r = run_bench("--smoke", "--only", "W1-int8,W5-bf16", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["workloads"] == []
    prec = report["precision"]
    assert prec["peaks"]["int8"] > 0 and prec["peaks"]["bfloat16"] > 0
    assert [row["id"] for row in prec["rows"]] == ["W1-int8", "W5-bf16"]
    for row in prec["rows"]:
        names = [e["name"] for e in row["engines"]]
        assert names[:3] == [f"cpuformer {row['precision']}", "cpuformer float32", f"torch {row['precision']}"]
        for e in row["engines"]:
            assert e["median_s"] > 0 and e["check"], (row["id"], e["name"])
            if e["name"].startswith("cpuformer"):
                assert e["agrees"], (row["id"], e)
    assert "W1-int8  cpuformer int8" in r.stdout


@pytest.mark.skipif(not HAVE_TORCH or importlib.util.find_spec("transformers") is None,
                    reason="the latency rows L2-L4 need torch and transformers for their shared checkpoints")
def test_latency_rows_smoke(tmp_path):
    """The latency rows run each engine in a process of its own, check its output, time calls and streams."""
    out = tmp_path / "bench.json"
    r = run_bench("--smoke", "--only", "L1,L2,L4", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["workloads"] == [] and report["precision"] is None
    lat = report["latency"]
    assert lat["peak_gflops"] > 0 and all(v > 0 for v in lat["crossing_us"].values())
    assert [row["id"] for row in lat["rows"]] == ["L1", "L2", "L4"]
    for row in lat["rows"]:
        names = [e["name"] for e in row["engines"]]
        assert names[:2] == ["cpuformer", "torch"], names
        for e in row["engines"]:
            assert e["median_s"] > 0 and e["pct_peak"] > 0 and e["calls_per_s_1"] > 0 and e["calls_per_s_4"] > 0
            assert e["agrees"], (row["id"], e)
        assert f"{row['id']}  {row['title']}" in r.stdout


def test_mixed_precision_rows_smoke(tmp_path):
    """W2-bf16 / W4-bf16 run cpuformer (and torch, when installed) in bf16 and float32, each engine in a
    process of its own that measures its own peak memory; the first result is checked against float32."""
    out = tmp_path / "bench.json"
    r = run_bench("--smoke", "--only", "W2-bf16,W4-bf16", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["workloads"] == [] and report["precision"] is None and report["latency"] is None
    mixed = report["mixed"]
    assert [row["id"] for row in mixed["rows"]] == ["W2-bf16", "W4-bf16"]
    want = ["cpuformer bf16", "cpuformer fp32"] + (["torch bf16", "torch fp32"] if HAVE_TORCH else [])
    for row in mixed["rows"]:
        assert [e["name"] for e in row["engines"]] == want
        for e in row["engines"]:
            assert e["median_s"] > 0 and e["peak_mem_mb"] >= 0 and e["check"], (row["id"], e)
        assert row["engines"][0]["ratio"] == 1.0
        assert f"{row['id']}  cpuformer bf16" in r.stdout


@pytest.mark.skipif(not HAVE_TORCH or importlib.util.find_spec("transformers") is None,
                    reason="W6 needs torch and transformers for its shared checkpoint and baseline")
def test_batched_generation_row_smoke(tmp_path):
    """W6 runs every installed engine in a process of its own over left-padded groups at each batch size,
    checks the tokens against cpuformer float32 first, and reports tokens/s with the targets' ratios."""
    out = tmp_path / "bench.json"
    r = run_bench("--smoke", "--only", "w6", "--threads", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["workloads"] == [] and report["precision"] is None and report["mixed"] is None
    row = report["batched"]
    assert row["id"] == "W6" and len(row["prompt_lengths"]) == row["shape"]["prompts"]
    names = [e["name"] for e in row["engines"]]
    assert names[:3] == ["cpuformer float32", "cpuformer int8", "transformers float32"], names
    if importlib.util.find_spec("ctranslate2") is not None and importlib.util.find_spec("tokenizers") is not None:
        assert "ctranslate2 float32" in names, (names, row["note"])
    for e in row["engines"]:
        assert [b["batch"] for b in e["batch"]] == row["batches"], e["name"]
        for b in e["batch"]:
            assert b["median_s"] > 0 and b["tok_s"] > 0 and 0 < b["prompts"] <= row["shape"]["prompts"], (e["name"], b)
        assert e["check"], e["name"]
        if e["name"].startswith("cpuformer"):
            assert e["agrees"], e
    goals = {t["what"]: t for t in row["targets"]}
    big, one = row["batches"][-1], row["batches"][0]
    assert f"cpuformer float32: batch {big} / batch {one}" in goals
    assert f"batch {big}: cpuformer float32 / transformers float32" in goals
    assert all(t["ratio"] > 0 for t in row["targets"])
    assert "W6  cpuformer float32" in r.stdout and "target: " in r.stdout
    skipped = run_bench("--smoke", "--only", "W6", "--no-batched", "--json", str(out), timeout=120)
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert json.loads(out.read_text())["batched"] is None
