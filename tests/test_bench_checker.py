"""benchmarks/bench_checker.py --quick runs (a smoke test: timings are never asserted), and
its table shows the fast profile within scipy's evaluation budget and with no false alarm."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_checker_quick_runs():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_checker.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [r for r in done.stdout.splitlines() if r.startswith("| rosen") or "| nncore" in r]
    assert rows and "| workers |" in done.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[4]) <= 2.2, row  # evaluations: fast / check_grad
        assert cells[11].startswith("passed / passed"), row
    assert re.search(r"\| 2 \| [\d.]+ s \| [\d.]+x \| True \|", done.stdout)
