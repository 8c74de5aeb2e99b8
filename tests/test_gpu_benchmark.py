"""benchmarks/gpu.py and the child-process runner it shares with evaluation_speed.py.

The GPU benchmark itself needs CUDA; here its ``--device cpu --smoke`` mode runs the same code
path tiny, and the runner is driven by a worker that succeeds, raises, hangs and crashes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO

BENCHMARKS = REPO / "benchmarks"
GPU = BENCHMARKS / "gpu.py"


def _env() -> dict[str, str]:
    """The test's environment with src/ and benchmarks/ importable in a child."""
    paths = [str(REPO / "src"), str(BENCHMARKS), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _isolated():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import isolated
    finally:
        sys.path.remove(str(BENCHMARKS))
    return isolated


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA this would run the benchmark")
def test_without_cuda_it_says_so_in_one_line_and_exits_0() -> None:
    done = subprocess.run([sys.executable, str(GPU)], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0] and "exiting 0" in lines[0]


def test_smoke_run_writes_json_and_markdown_and_records_failed_settings(tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    done = subprocess.run(
        [sys.executable, str(GPU), "--device", "cpu", "--smoke", "--models", "linrec",
         "--precisions", "fp32,tf32", "--steps", "1", "--out", str(out)],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    rows = {(r["benchmark"], r["precision"], r["compile"]): r for r in report["settings"]}
    assert len(report["settings"]) == len(rows) == 8  # {train, eval} x {fp32, tf32} x compile
    for (bench, precision, _), row in rows.items():
        if precision == "tf32":  # a CPU has no TF32: the setting fails, the run goes on
            assert row["status"] == "failed" and "TF32 is a CUDA matmul mode" in row["error"]
            continue
        assert row["status"] == "ok", row
        assert row["throughput"] > 0 and row["matmul_gflops"] > 0
        assert row["unit"] == ("seq/s" if bench == "train" else "users/s")
        assert 0 < row["fraction_of_bound"]  # LinRec's FLOPs are counted
    assert report["machine"]["device"] == "cpu"
    table = out.with_suffix(".md").read_text().splitlines()
    body = [line for line in table if line.startswith("| train") or line.startswith("| eval")]
    assert len(body) == 8
    assert sum("| failed |" in line and "TF32 is a CUDA matmul mode" in line
               for line in body) == 4


WORKER = textwrap.dedent("""
    import os, sys, time
    from isolated import serve

    def run_one(setting):
        action = setting["action"]
        if action == "raise":
            raise ValueError("no such kernel")
        if action == "hang":
            time.sleep(60)
        if action == "crash":
            print("CUDA error: an illegal memory access", file=sys.stderr, flush=True)
            os._exit(3)
        return {"value": setting["n"] * 2}

    serve(run_one)
""")


def test_runner_records_exceptions_timeouts_and_crashes_and_goes_on(tmp_path: Path) -> None:
    isolated = _isolated()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    actions = ["ok", "raise", "hang", "ok", "crash", "ok"]
    settings = [{"action": a, "n": n} for n, a in enumerate(actions)]
    seen: list[str] = []
    results = isolated.run_settings([sys.executable, str(script)], settings, cap_s=8.0,
                                    env=_env(), on_result=lambda r: seen.append(r["status"]))
    assert [r["n"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == seen == [
        "ok", "failed", "failed", "ok", "failed", "ok"]
    assert [r.get("value") for r in results] == [0, None, None, 6, None, 10]
    assert results[1]["error"].startswith("ValueError: no such kernel")
    assert "timed out after the 8 s cap" in results[2]["error"]
    assert "status 3" in results[4]["error"] and "illegal memory access" in results[4]["error"]


def test_runner_skips_what_the_total_budget_leaves_no_time_for(tmp_path: Path) -> None:
    isolated = _isolated()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    settings = [{"action": a, "n": n} for n, a in enumerate(["ok", "hang", "ok"])]
    results = isolated.run_settings([sys.executable, str(script)], settings, cap_s=30.0,
                                    deadline=time.monotonic() + 8.0, env=_env())
    assert [r["status"] for r in results] == ["ok", "failed", "skipped"]
    assert "total time budget" in results[1]["error"]
    assert results[2]["error"] == "total time budget spent"
