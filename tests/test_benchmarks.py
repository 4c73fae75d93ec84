"""The benchmark scripts still run (smoke test: timings are never asserted here)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_loss_grad_quick_runs():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_loss_grad.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "784-256-128-10" in done.stdout and "nncore" in done.stdout


def test_run_all_xor_parts_run():
    """The XOR parts of run_all (the others need scikit-learn, which the test extra lacks)."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run_all.py"),
            "--quick",
            "--only",
            "xor_per_call",
            "scipy_share",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "numpy floor" in done.stdout and "nncore_share" in done.stdout


def test_cache_traffic_runs(tmp_path):
    out = tmp_path / "steps.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "cache_traffic.py"),
            "--repeats",
            "1",
            "--passes",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sum: whole pass" in done.stdout and out.read_text().count("D1 *= mask") == 1
