"""The benchmark scripts still run (smoke tests: timings are never asserted here), and a
replay of nncore's pass computes what nncore computes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def run_script(name, *args):
    """Run ``benchmarks/<name>`` with ``args``; its stdout, after checking it exited with 0.
    (The scripts import this checkout's nncore: ``benchmarks/harness.py`` sees to it.)"""
    done = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_bench_loss_grad_quick_runs():
    out = run_script("bench_loss_grad.py", "--quick")
    assert "784-256-128-10" in out and "nncore" in out and "products alone" in out


def test_run_all_xor_parts_run():
    """The XOR parts of run_all (the others need scikit-learn, which the test extra lacks)."""
    out = run_script("run_all.py", "--quick", "--only", "xor_per_call", "scipy_share")
    assert "numpy floor" in out and "nncore_share" in out


def test_bench_methods_quick_runs(tmp_path):
    """The XOR and regression tables, with the counts read through train's callback (lm's
    through its search over max_nfev), and the curvature cost table."""
    runs = tmp_path / "runs.json"
    out = run_script("bench_methods.py", "--quick", "--starts", "1", "--json", str(runs))
    head = "| method | reached | median time | time per success | median iters | median fwd |"
    assert out.count(head) == 2 and "| lm (x_scale=1) |" in out and "| dogleg (GN) |" in out
    assert "| hessp / fj | gnvp / fj |" in out and "| 8-16-1 regression, N=500 |" in out
    problems = json.loads(runs.read_text())["problems"]
    reached = [r for c in problems["xor"]["cells"] for r in c["runs"] if r["outcome"] == "reached"]
    assert reached and all(r["nfev"] >= 1 and r["njev"] >= 1 for r in reached)
    (lm,) = [c for c in problems["regression"]["cells"] if c["method"] == "lm"]
    assert [r["outcome"] for r in lm["runs"]] in (["reached"], ["time limit"])


def test_xor_starts_runs():
    out = run_script("xor_starts.py", "--starts", "2")
    assert "| run | solves XOR | median loss evaluations |" in out


def test_cache_traffic_runs(tmp_path):
    steps = tmp_path / "steps.json"
    out = run_script(
        "studies/cache_traffic.py", "--repeats", "1", "--passes", "2", "--json", str(steps)
    )
    assert "sum: whole pass" in out and steps.read_text().count("D1 *= mask") == 1


def test_second_core_runs():
    out = run_script(
        "studies/second_core.py", "--repeats", "1", "--sample-s", "0.01", "--passes", "2"
    )
    assert "n_jobs=2" in out and "split over two" in out


def test_worker_allocator_runs():
    out = run_script("studies/worker_allocator.py", "--calls", "1", "--rounds", "1")
    assert out.count("| 20000 |") == 1 and out.count("| 250000 |") == 1


def test_cache_traffic_replays_nncore_bit_for_bit():
    # the replay's steps are timed as nncore's pass: one pass of them must compute exactly
    # what the objective computes, or the table describes some other code
    sys.path.insert(0, str(BENCH / "studies"))
    try:
        import cache_traffic
    finally:
        sys.path.remove(str(BENCH / "studies"))
    steps, replay = cache_traffic.make_steps(seed=3)
    for _, _, call in steps:
        call()
    J, g = replay.net.objective(replay.batch.X, replay.batch.Y).fun_and_jac(replay.theta)
    assert replay.J == J
    assert np.array_equal(replay.g, g)


def test_bench_sklearn_quick_runs():
    pytest.importorskip("sklearn")
    out = run_script("bench_sklearn.py", "--quick")
    for name in ("digits", "breast_cancer", "diabetes", "scikit-learn lbfgs", "nncore L-BFGS-B"):
        assert name in out
