"""Where the time of one 64-64-10 loss + gradient goes, step by step, with 1 and 2 BLAS threads.

Why this exists
---------------
On one 2-vCPU host this project ran on (AMD EPYC family 26, 2026-11-25), ``bench_loss_grad.py``
found nncore's 64-64-10 evaluation (relu/softmax, cross_entropy, N=1797) in one of two steady
states from run to run, ~0.65x JAX's compiled gradient or ~1.0x.  This script tests where such
a difference lies.  It replays the steps of nncore's pass (the same numpy calls and nncore's
own activation and loss functions, on an nncore workspace, as ``kernels.forward``/``backprop``
run them, written out flat so each can be timed; a test checks the replay gives nncore's
gradient bit for bit) in two ways:

* **piped**: the whole pass, step after step, as nncore runs it, a ``perf_counter`` read
  between steps; each step's median over ``--repeats`` passes;
* **tight**: each step alone in a loop on the same buffers; median seconds per call.

each under the BLAS library's own thread count (2 here) and under one BLAS thread
(threadpoolctl), all four interleaved so that they see the same machine state.

How to read it: piped is slower than tight everywhere, with 1 thread as with 2, because a step
inside the pass finds its data farther down the cache hierarchy than a step repeated on the
same buffers; that is ordinary.  The diagnostic is the last column, piped with 2 BLAS threads
over piped with 1.  On the products it is the gain of the second thread (below 1).  On the
element-wise steps, which numpy runs on one thread either way, it should be 1; well above 1, a
step pays for data that the other core (the BLAS worker, which wrote half of the product
before it) holds in its cache: cross-core cache-line traffic, whose price depends on how
far apart the host placed the two vCPUs.

Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/studies/cache_traffic.py

``--json PATH`` also writes the medians; the markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
from harness import fmt_time, load_average, machine_lines  # noqa: E402

import nncore  # noqa: E402
from nncore.workspace import Workspace  # noqa: E402

N, SIZES = 1797, (64, 64, 10)


class Replay:
    """What a replayed pass computes: ``J`` and the gradient ``g`` (a workspace buffer), for
    ``net`` at ``theta`` on ``batch``."""

    def __init__(self, net: nncore.MLP, theta: np.ndarray, batch, g: np.ndarray) -> None:
        self.net, self.theta, self.batch, self.g = net, theta, batch, g
        self.J = float("nan")
        self.log_A2: np.ndarray | None = None


def make_steps(seed: int = 0) -> tuple[list[tuple[str, bool, Callable[[], object]]], Replay]:
    """The steps of one loss + gradient as ``(name, is_matrix_product, call)``, in order, and
    the replay's state (:class:`Replay`), whose ``J`` and ``g`` the last pass wrote.

    The calls are ``kernels.forward``/``backward``/``backprop`` written out flat: the same
    numpy calls and the same activation and loss functions of nncore, on the buffers of an
    nncore :class:`~nncore.workspace.Workspace` and a validated :class:`~nncore.kernels.Batch`
    (``Y`` F-ordered), so their layouts are nncore's.  ``tests/test_benchmarks.py`` checks
    that one pass gives nncore's loss and gradient bit for bit.
    """
    rng = np.random.default_rng(seed)
    net = nncore.MLP(list(SIZES), activation="relu", output="softmax", loss="cross_entropy")
    theta = net.init(seed=seed)
    batch = net.batch(rng.random((N, SIZES[0])), rng.integers(0, SIZES[-1], N))
    ws = Workspace(net.arch, N)
    (W1, b1), (W2, b2) = net.unpack(theta)
    relu = net.arch.acts[0]
    loss = net.arch.loss
    X, Y = batch.X, batch.Y
    zt1, zt2 = ws.ZT
    a1, a2 = ws.A
    d1, d2 = ws.D
    mask = ws.S[0]
    (gW1, gb1), (gW2, gb2) = ws.g_blocks
    state = Replay(net, theta, batch, ws.g)

    def log_output() -> None:
        state.log_A2 = loss.log_output(zt2.T)

    def value() -> None:
        per_sample = loss.per_sample(zt2.T, a2, Y, state.log_A2)
        state.J = float(per_sample.sum() / per_sample.shape[0])

    def out_grad() -> None:
        loss.output_grad(zt2.T, a2, Y, d2)
        np.multiply(d2, 1.0 / N, out=d2)  # kernels.weigh without sample weights

    steps = [
        ("Z1^T = W1 X^T", True, lambda: np.matmul(W1, X.T, out=zt1)),
        ("+= b1", False, lambda: np.add(zt1, b1[:, None], out=zt1)),
        ("A1 = relu(Z1)", False, lambda: relu.f(zt1.T, a1)),
        ("Z2^T = W2 A1^T", True, lambda: np.matmul(W2, a1.T, out=zt2)),
        ("+= b2", False, lambda: np.add(zt2, b2[:, None], out=zt2)),
        ("log A2 = log_softmax(Z2)", False, log_output),
        ("A2 = exp(log A2)", False, lambda: np.exp(state.log_A2, out=a2)),
        ("loss from log A2", False, value),
        ("D2 = (A2 - Y) / N", False, out_grad),
        ("gW2^T = A1^T D2", True, lambda: np.matmul(a1.T, d2, out=gW2.T)),
        ("gb2 = 1^T D2", False, lambda: np.add.reduce(d2, axis=0, out=gb2)),
        ("D1 = D2 W2", True, lambda: np.matmul(d2, W2, out=d1)),
        ("relu mask Z1 > 0", False, lambda: relu.df(zt1.T, a1, mask)),
        ("D1 *= mask", False, lambda: np.multiply(d1, mask.view(np.uint8), out=d1)),
        ("gW1^T = X^T D1", True, lambda: np.matmul(X.T, d1, out=gW1.T)),
        ("gb1 = 1^T D1", False, lambda: np.add.reduce(d1, axis=0, out=gb1)),
    ]
    return steps, state


def piped(steps: list[tuple[str, bool, Callable[[], object]]], passes: int) -> np.ndarray:
    """Seconds per step, shape ``(passes, n_steps)``, the steps run as one pass each time."""
    calls = [call for _, _, call in steps]
    times = np.empty((passes, len(calls)))
    clock = time.perf_counter
    for p in range(passes):
        t = clock()
        for j, call in enumerate(calls):
            call()
            t_next = clock()
            times[p, j] = t_next - t
            t = t_next
    return times


def tight(steps: list[tuple[str, bool, Callable[[], object]]], loops: int) -> np.ndarray:
    """Seconds per call of each step run alone ``loops`` times, shape ``(n_steps,)``."""
    out = np.empty(len(steps))
    for j, (_, _, call) in enumerate(steps):
        call()
        t0 = time.perf_counter()
        for _ in range(loops):
            call()
        out[j] = (time.perf_counter() - t0) / loops
    return out


def measure(repeats: int, passes: int) -> dict[str, np.ndarray]:
    """Medians per step for the four modes; one block of each mode per repeat, interleaved."""
    steps, _ = make_steps()
    piped(steps, 20)  # warm up: the BLAS threads start, the buffers are touched
    blocks: dict[str, list[np.ndarray]] = {
        "piped 2t": [],
        "piped 1t": [],
        "tight 2t": [],
        "tight 1t": [],
    }
    for _ in range(repeats):
        blocks["piped 2t"].append(np.median(piped(steps, passes), axis=0))
        blocks["tight 2t"].append(tight(steps, passes))
        with threadpool_limits(limits=1):
            blocks["piped 1t"].append(np.median(piped(steps, passes), axis=0))
            blocks["tight 1t"].append(tight(steps, passes))
    return {mode: np.median(np.array(b), axis=0) for mode, b in blocks.items()}


def table(steps: list[tuple[str, bool, Callable[[], object]]], med: dict[str, np.ndarray]) -> str:
    modes = list(med)
    lines = [
        "| step | kind | " + " | ".join(modes) + " | piped 2t/1t |",
        "| --- | --- | " + " | ".join("---:" for _ in modes) + " | ---: |",
    ]
    for j, (name, is_product, _) in enumerate(steps):
        cells = [fmt_time(med[m][j]) for m in modes]
        ratio = med["piped 2t"][j] / med["piped 1t"][j]
        kind = "product" if is_product else "element-wise"
        lines.append(f"| {name} | {kind} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    for label, select in (
        ("products", [p for _, p, _ in steps]),
        ("element-wise", [not p for _, p, _ in steps]),
        ("whole pass", [True] * len(steps)),
    ):
        sums = {m: float(med[m][np.array(select)].sum()) for m in modes}
        cells = [f"**{fmt_time(sums[m])}**" for m in modes]
        ratio = sums["piped 2t"] / sums["piped 1t"]
        lines.append(f"| sum: {label} | | " + " | ".join(cells) + f" | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=15, help="interleaved blocks (default 15)")
    p.add_argument("--passes", type=int, default=200, help="passes per block (default 200)")
    p.add_argument("--json", metavar="PATH", help="also write the medians to PATH")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    load_before, stamp = load_average(), machine_lines()  # the stamp dates the start
    med = measure(args.repeats, args.passes)
    steps, _ = make_steps()
    print("## Cache traffic: the 64-64-10 loss + gradient step by step, 1 and 2 BLAS threads\n")
    print("\n".join(stamp))
    print(f"- load average (1/5/15 min) before: {load_before}, after: {load_average()}")
    print(f"- {args.repeats} interleaved blocks of {args.passes} passes (or calls) per mode")
    print(f"- wall time of this run: {time.perf_counter() - t0:.0f} s\n")
    print(table(steps, med) + "\n")
    print(
        "Medians per call.  2t: the BLAS library's own thread count; 1t: one BLAS thread "
        "(threadpoolctl).  piped: the step inside the pass; tight: the step alone in a loop.  "
        "piped 2t/1t well above 1 on the element-wise steps (single-threaded either way) is "
        "the cost of moving data the other core wrote; see the module docstring."
    )
    if args.json:
        steps_json = [name for name, _, _ in steps]
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {"steps": steps_json, **{m: v.tolist() for m, v in med.items()}}, fh, indent=2
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
