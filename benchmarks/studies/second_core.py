"""Two ways of giving nncore's element-wise work the second core, on 784-256-128-10, N=10000.

numpy runs element-wise steps on one thread, so while nncore applies relu, its mask or a
bias to 10000 x 256 arrays, the second core waits.  This script measures two ways of using it,
interleaved (medians over repeats, ratios to the first row of each table):

1. **chunks on a thread pool**: ``net.objective(X, y, chunk_size=N/2 or N/4, n_jobs=2)``,
   each worker with one BLAS thread, against the plain objective (2 BLAS threads) and the same
   chunks on one thread.  One ``fun_and_jac`` per call, theta alternating between two
   vectors so that the objective's cache never hits.
2. **the steps of a relu layer split across two threads**: relu, its mask and
   ``mask * delta`` on (256, 10000) arrays, whole or split in halves between the calling
   thread and a pool thread; interleaved on their own, then timed right after the 2-thread
   product ``Z^T = W X^T`` that precedes them in the pass (the two variants alternating).

Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/studies/second_core.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
from harness import fmt_time, load_average, machine_lines, medians  # noqa: E402

import nncore  # noqa: E402

N, SIZES = 10_000, (784, 256, 128, 10)


def table(med: dict[str, float]) -> str:
    """``med`` as a markdown table, with each time's ratio to the first."""
    first = med[next(iter(med))]
    lines = ["| variant | median | ratio |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {fmt_time(m)} | {m / first:.2f}x |" for k, m in med.items()]
    return "\n".join(lines)


def chunked_objectives(X: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], Any]]:
    net = nncore.MLP(SIZES, activation="relu", output="softmax", loss="cross_entropy")
    thetas = (net.init(0), net.init(1))
    objectives = {"plain objective": net.objective(X, y)}
    for cs in (N // 2, N // 4):
        objectives[f"chunk_size={cs}"] = net.objective(X, y, chunk_size=cs)
        objectives[f"chunk_size={cs}, n_jobs=2"] = net.objective(X, y, chunk_size=cs, n_jobs=2)

    def call(obj: Any) -> Callable[[], Any]:
        cycle = itertools.cycle(thetas)
        return lambda: obj.fun_and_jac(next(cycle))

    return {name: call(obj) for name, obj in objectives.items()}


def split_steps(
    X: np.ndarray, pool: ThreadPoolExecutor
) -> tuple[Callable[[], Any], dict[str, Callable[[], Any]]]:
    """The product ``Z^T = W X^T`` that precedes a relu layer's element-wise steps, and those
    steps on one thread and split over two (the pool's thread and the caller)."""
    rng = np.random.default_rng(1)
    n, h = SIZES[1], SIZES[1] // 2
    W = rng.standard_normal((n, SIZES[0])) * 0.05
    zt, a = rng.standard_normal((n, N)), np.empty((n, N))
    d, mask = rng.standard_normal((n, N)), np.empty((n, N), dtype=bool)

    def steps(rows: slice) -> None:  # the element-wise steps of a relu layer, on some rows
        np.maximum(zt[rows], 0.0, out=a[rows])
        np.greater(zt[rows], 0.0, out=mask[rows])
        np.multiply(d[rows], mask[rows], out=d[rows])

    def one_thread() -> None:
        steps(slice(None))

    def two_threads() -> None:
        other = pool.submit(steps, slice(0, h))
        steps(slice(h, n))
        other.result()

    product = lambda: np.matmul(W, X.T, out=zt)  # noqa: E731
    return product, {"steps, one thread": one_thread, "steps, split over two threads": two_threads}


def after_product(
    product: Callable[[], Any], variants: dict[str, Callable[[], Any]], passes: int
) -> dict[str, float]:
    """Median seconds of each step variant run right after ``product``, timed on its own
    (``perf_counter`` around the steps only), the variants alternating pass after pass."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(passes):
        for name, steps in variants.items():
            product()
            t0 = time.perf_counter()
            steps()
            times[name].append(time.perf_counter() - t0)
    return {f"{name}, right after the product": statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=9, help="samples per variant (default 9)")
    p.add_argument("--sample-s", type=float, default=0.3, help="length of one sample (s)")
    p.add_argument("--passes", type=int, default=60, help="passes after the product (60)")
    args = p.parse_args(argv)
    t0, load_before = time.perf_counter(), load_average()
    stamp = machine_lines()  # dates the start of the run
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((N, SIZES[0])), rng.integers(0, SIZES[-1], N)
    chunks = medians(chunked_objectives(X, y), args.sample_s, args.repeats)
    with ThreadPoolExecutor(1) as pool:
        product, variants = split_steps(X, pool)
        after = after_product(product, variants, args.passes)
        split = medians(variants, args.sample_s, args.repeats)
    print("## The second core for element-wise work: 784-256-128-10, N = 10,000\n")
    print("\n".join(stamp))
    print(f"- load average (1/5/15 min) before: {load_before}, after: {load_average()}")
    print(f"- wall time of this run: {time.perf_counter() - t0:.0f} s\n")
    print("One loss + gradient (`fun_and_jac`):\n\n" + table(chunks) + "\n")
    print("The element-wise steps of a relu layer (relu, mask, mask * delta) on 256 x 10000:\n")
    print(table(split) + "\n")
    print("The same steps right after the product `Z^T = W X^T` (2 BLAS threads), as in the")
    print(f"pass, timed on their own; the two alternate, {args.passes} passes each:\n")
    print(table(after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
