"""What Dask's worker allocator setting costs nncore's passes, in one process.

Dask's nanny starts each process worker with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``): glibc then gives freed memory back to the system
at once and stops raising its mmap threshold, so every array above 128 KiB is fresh memory
with its page faults.  ``bench_distributed.py`` saw 64-64-10 compute 10-30% slower per row
on a worker than in the client.  This script times ``Objective.fun_and_jac`` of 64-64-10
(relu, softmax, cross_entropy) at a new theta each call, one BLAS thread, on 20,000 and
250,000 rows, in child processes started alternately without the variable and with it
(glibc reads it when the process starts), and prints the medians, the ratio and the minor
page faults per evaluation.

Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/studies/worker_allocator.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRIM = "65536"
"""Dask's value (``distributed.yaml``, ``nanny: pre-spawn-environ``)."""


def child(rows: int, calls: int) -> None:
    """In the child: median seconds and minor faults per ``fun_and_jac``, as JSON."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from threadpoolctl import threadpool_limits

    import nncore

    net = nncore.MLP([64, 64, 10], activation="relu", output="softmax", loss="cross_entropy")
    rng = np.random.default_rng(1)
    obj = net.objective(rng.normal(size=(rows, 64)), rng.integers(0, 10, rows))
    theta = net.init(0)
    times, faults = [], []
    with threadpool_limits(1):
        for k in range(calls + 2):  # two warm-up calls (workspace, first pages)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            obj.fun_and_jac(theta + 1e-9 * k)  # a new point: a full pass
            if k >= 2:
                times.append(time.perf_counter() - t0)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    print(json.dumps({"s": statistics.median(times), "faults": statistics.median(faults)}))


def run(rows: int, calls: int, trim: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    if trim:
        env["MALLOC_TRIM_THRESHOLD_"] = TRIM
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(rows), "--calls", str(calls)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=12, help="evaluations per process")
    parser.add_argument("--rounds", type=int, default=3, help="process pairs per size")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.calls)
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from harness import load_average, run_stamp

    print(run_stamp())
    print(f"- load average at start: {load_average()}")
    print(
        f"\n64-64-10 fun_and_jac, 1 BLAS thread, median of {args.calls} calls per process, "
        f"{args.rounds} processes of each kind alternated; us per row and minor faults per "
        "evaluation (medians over the processes)\n"
    )
    print(
        "| rows | without | with MALLOC_TRIM_THRESHOLD_=65536 | ratio | faults without | faults with |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for rows in (20_000, 250_000):
        got: dict[bool, list[dict]] = {False: [], True: []}
        for r in range(args.rounds):
            for trim in (False, True) if r % 2 == 0 else (True, False):
                got[trim].append(run(rows, args.calls, trim))
        s = {t: statistics.median(x["s"] for x in v) for t, v in got.items()}
        f = {t: statistics.median(x["faults"] for x in v) for t, v in got.items()}
        print(
            f"| {rows} | {1e6 * s[False] / rows:.2f} us | {1e6 * s[True] / rows:.2f} us "
            f"| {s[True] / s[False]:.2f} | {f[False]:.0f} | {f[True]:.0f} |"
        )


if __name__ == "__main__":
    main()
