"""Benchmark one loss + gradient evaluation (float64) of nncore against its competitors.

What is measured
----------------
The wall time of one evaluation of ``(J(theta), dJ/dtheta)`` -- the call a scipy optimiser
such as L-BFGS-B makes once per iteration -- on three networks:

1. XOR 2-2-1, tanh hidden, sigmoid output, mse, N=4;
2. 64-64-10, relu hidden, softmax output, cross_entropy, N=1797 (scikit-learn's
   ``load_digits()`` with X scaled by 1/16; synthetic data of that shape without sklearn);
3. 784-256-128-10, relu/relu/softmax, cross_entropy, N=10000 synthetic (seeded numpy
   Generator: X standard normal, integer labels 0..9).

Competitors (one table column each):

* ``nncore loss_and_grad``: the public ``net.loss_and_grad(theta, X, y)``, which validates
  its inputs on every call;
* ``nncore objective``: ``obj = net.objective(X, y)``, ``obj.fun_and_jac(theta_k)`` with
  ``theta_k`` alternating between two different vectors, so the objective's one-point
  cache never hits and every call is a full forward + backward pass;
* ``finite diff``: forward differences as ``scipy.optimize.approx_fprime`` computes them,
  ``n_params + 1`` loss evaluations.  Timed directly for XOR only; for the larger cases it is
  the estimate ``(n_params + 1) x median(net.loss)``, marked "est.";
* ``JAX jit``: ``jax.jit(jax.value_and_grad(nncore.jax_reference.loss_fn(net)))`` called on
  jax arrays prepared once, blocked with ``jax.block_until_ready``, after a compiling warm-up
  call.  The numpy -> jax transfer of theta is *not* included in that column; the variant a
  scipy user would pay (numpy theta in, ``float`` and numpy gradient out) is measured too
  and shown in the extra table;
* ``sklearn``: ``MLPClassifier``/``MLPRegressor._loss_grad_lbfgs``, the private function that
  sklearn's own L-BFGS fit passes to ``scipy.optimize.minimize``, set up as ``_fit`` does.
* ``products alone`` (extra table): the matrix products of one loss + gradient and nothing
  else, on buffers laid out as nncore's workspace: the time below which no implementation
  that uses this BLAS for its products can go.

How it is timed
---------------
For each case every competitor is warmed up and calibrated: it gets an inner loop count so
that one timing sample (``time.perf_counter`` around the inner loop, divided by the count)
lasts about ``--sample-ms`` milliseconds (one call when a single call is longer).  Then, for
each repeat, every competitor takes one sample in turn -- the order rotated by one each repeat
-- so that noise from the (shared, noisy) machine hits all competitors alike.  The reported
figure is the median over the repeats; the JSON output also has the quartiles.  A dagger
marks an unsteady timing (see :meth:`Result.spread`), the sign of a busy machine.  The garbage
collector is disabled while a sample is taken, as ``timeit`` does, and the minor page faults
per call are counted too (fresh memory for large temporaries is part of the cost).  All
competitors share one process, hence one heap: a library that runs alone may fault more.

Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_loss_grad.py

``--quick`` shrinks the repeats and sample length (a smoke test, under 30 s); ``--json PATH``
writes the raw medians; ``--blas-threads N`` limits the BLAS/OpenMP thread pools (not JAX's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import approx_fprime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # when imported from elsewhere
import harness as h  # noqa: E402
from harness import fmt_ratio, fmt_time  # noqa: E402

FD_EPS = float(np.sqrt(np.finfo(np.float64).eps))
"""Forward-difference step, scipy's default for ``approx_fprime``."""

# Column keys of the main table, in order.
LG, OBJ, FD = "nncore loss_and_grad", "nncore objective", "finite diff"
JAX, SKL = "JAX jit", "sklearn"
# Extra timings: one ``net.loss`` call (the finite-difference estimate is built from it) and
# JAX with the numpy round trip a scipy user pays.
LOSS, JAX_NP = "nncore loss", "JAX jit (numpy in/out)"
MM = "products alone"


@dataclass
class Result:
    """Timings of one case: per competitor the per-call samples, in seconds."""

    case: h.Case
    n_params: int
    samples: dict[str, list[float]] = field(default_factory=dict)
    faults: dict[str, list[float]] = field(default_factory=dict)  # minor page faults per call
    inner: dict[str, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)  # J at theta, per implementation
    grad_diffs: dict[str, float] = field(default_factory=dict)  # max |g - g_nncore|

    def spread(self, key: str) -> float:
        """How unsteady the samples are: the larger of upper/lower quartile and median/min.

        1.0 for a steady timing; large when some samples were slowed down (a busy machine).
        """
        s = self.samples.get(key) or [1.0]
        if len(s) < 4:
            return 1.0
        q1, q2, q3 = statistics.quantiles(s, n=4)
        return max(q3 / q1, q2 / min(s))

    def median(self, key: str) -> float | None:
        s = self.samples.get(key)
        return statistics.median(s) if s else None

    def median_faults(self, key: str) -> float | None:
        s = self.faults.get(key)
        return statistics.median(s) if s else None


def bench_case(case: h.Case, args: argparse.Namespace) -> Result:
    """Build every competitor for ``case``, check their values agree, and time them."""
    net = case.net()
    theta, X, y = net.init(0), case.X, case.y
    result = Result(case, net.n_params)
    J_ref, g_ref = net.loss_and_grad(theta, X, y)
    result.values["nncore"] = J_ref

    competitors: dict[str, Callable[[], Any]] = {
        LG: lambda: net.loss_and_grad(theta, X, y),  # validates theta, X and y every call
        OBJ: h.alternating(net.objective(X, y), (theta, net.init(1))),
        LOSS: lambda: net.loss(theta, X, y),  # the unit of cost of finite differences
        MM: h.products_alone(net, theta, X),
    }
    if case.fd_direct:  # forward differences: n_params + 1 loss evaluations
        competitors[FD] = lambda: approx_fprime(theta, net.loss, FD_EPS, X, y)
        result.grad_diffs["finite diff"] = float(np.max(np.abs(competitors[FD]() - g_ref)))
    if h.HAVE_JAX:
        competitors[JAX], competitors[JAX_NP] = h.jax_value_and_grad(net, theta, X, y)
        J_jax, g_jax = competitors[JAX_NP]()
        result.values["JAX"] = J_jax
        result.grad_diffs["JAX"] = float(np.max(np.abs(g_jax - g_ref)))
    if h.HAVE_SKLEARN:
        competitors[SKL] = h.sklearn_loss_grad(net, theta, X, y)
        J_skl, g_skl = competitors[SKL]()
        result.values["sklearn"] = float(J_skl)
        if case.loss == "cross_entropy":  # same model and loss: the gradients must agree
            g_skl = h.from_sklearn_packing(net, g_skl)
            result.grad_diffs["sklearn"] = float(np.max(np.abs(g_skl - g_ref)))

    result.inner, result.samples, result.faults = h.interleave(
        competitors, args.sample_ms / 1e3, args.repeats, args.min_repeats, args.budget
    )
    return result


# -- report ------------------------------------------------------------------------------------


UNSTABLE = 1.5
"""A timing whose :meth:`Result.spread` exceeds this is marked with a dagger."""


def fmt_median(res: Result, key: str) -> str:
    """The median time of ``key``, with a dagger when its samples spread widely."""
    text = fmt_time(res.median(key))
    return text + " †" if res.spread(key) > UNSTABLE else text


def fd_time(result: Result) -> tuple[float | None, bool]:
    """Finite-difference time and whether it is an estimate."""
    if FD in result.samples:
        return result.median(FD), False
    loss = result.median(LOSS)
    return (None if loss is None else (result.n_params + 1) * loss), True


def main_table(results: list[Result]) -> list[str]:
    head = ["case", "n_params", LG, OBJ, FD, JAX, SKL, "nncore/JAX", "nncore/sklearn"]
    rows = []
    for res in results:
        fd, estimated = fd_time(res)
        lg = res.median(LG)
        rows.append(
            [
                res.case.name,
                str(res.n_params),
                *(fmt_median(res, key) for key in (LG, OBJ)),
                f"{fmt_time(fd)} (est.)" if estimated else fmt_median(res, FD),
                *(fmt_median(res, key) for key in (JAX, SKL)),
                fmt_ratio(lg, res.median(JAX)),
                fmt_ratio(lg, res.median(SKL)),
            ]
        )
    return h.md_table(head, rows)


NOTES = f"""\
Median wall time of one call over interleaved repeats; ratios are nncore loss_and_grad over
the other column (below 1: nncore faster).  † marks an unsteady timing (upper/lower quartile
or median/fastest sample above {UNSTABLE}): the machine was busy while it was taken.
- nncore objective: `fun_and_jac` alternating between two thetas, so its cache never hits.
- finite diff: `approx_fprime`, n_params + 1 loss evaluations; "(est.)" is
  (n_params + 1) x the median time of one `net.loss` call, not a measurement.
- JAX jit: jax arrays in, `block_until_ready`; the numpy -> jax transfer of theta is not
  included (the extra table has the numpy round trip).
- sklearn: `_loss_grad_lbfgs`; for XOR it is `MLPRegressor`, whose output is the identity
  (not sigmoid) and whose loss is 0.5 x mean squared error: the nearest sklearn has.
- products alone (extra table): the pass's matrix products and nothing else, in nncore's
  buffer layouts, timed in the same interleaving: the least any implementation calling this
  BLAS spends; sklearn / products is the best ratio to sklearn such an implementation could
  reach."""


def extra_table(results: list[Result]) -> list[str]:
    head = ["case", "data", "repeats", LOSS, JAX_NP, MM, "objective / products"]
    head += ["sklearn / products", "page faults/call (nncore l&g, obj, sklearn)"]
    head += ["loss values (J)", "max abs grad diff vs nncore"]
    rows = []
    for res in results:
        faults = [res.median_faults(k) for k in (LG, OBJ, SKL)]
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in res.grad_diffs.items())
        rows.append(
            [
                res.case.name,
                res.case.data,
                str(len(res.samples[LG])),
                *(fmt_time(res.median(key)) for key in (LOSS, JAX_NP, MM)),
                fmt_ratio(res.median(OBJ), res.median(MM)),
                fmt_ratio(res.median(SKL), res.median(MM)),
                ", ".join("n/a" if f is None else f"{f:.0f}" for f in faults),
                ", ".join(f"{k} {v:.6g}" for k, v in res.values.items()),
                diffs or "-",
            ]
        )
    return h.md_table(head, rows)


def to_json(results: list[Result], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"unit": "seconds per call", "args": vars(args), "cases": {}}
    for res in results:
        entry: dict[str, Any] = {
            "n_params": res.n_params,
            "loss_values": res.values,
            "grad_max_abs_diff_vs_nncore": res.grad_diffs,
            "timings": {},
        }
        for key, s in res.samples.items():
            q1, _, q3 = statistics.quantiles(s, n=4) if len(s) > 1 else (s[0], s[0], s[0])
            entry["timings"][key] = {
                "median": statistics.median(s),
                "q1": q1,
                "q3": q3,
                "min": min(s),
                "minor_page_faults_per_call": res.median_faults(key),
                "n_samples": len(s),
                "inner": res.inner[key],
            }
        fd, estimated = fd_time(res)
        entry["finite_diff"] = {"median": fd, "estimated": estimated}
        out["cases"][res.case.name] = entry
    return out


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few short repeats (smoke test, < 30 s)")
    p.add_argument("--json", metavar="PATH", help="also write the raw medians to PATH")
    p.add_argument("--repeats", type=int, help="samples per competitor (default 25; quick 3)")
    p.add_argument("--sample-ms", type=float, help="length of one sample (default 30; quick 5)")
    p.add_argument(
        "--blas-threads",
        type=int,
        metavar="N",
        help="limit BLAS/OpenMP threads with threadpoolctl (default: the libraries' own)",
    )
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 25
    if args.sample_ms is None:
        args.sample_ms = 5.0 if args.quick else 30.0
    # Past min_repeats, a case stops sampling once it has spent `budget` seconds on it.
    args.min_repeats = min(args.repeats, 2 if args.quick else 11)
    args.budget = 2.0 if args.quick else 40.0
    return args


def run_cases(args: argparse.Namespace) -> list[Result]:
    results = []
    for case in h.make_cases():
        print(f"[bench] {case.name} ...", file=sys.stderr, flush=True)
        results.append(bench_case(case, args))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    print("## loss_and_grad: one loss + gradient evaluation, float64\n")
    print("\n".join(h.machine_lines()))
    if args.blas_threads is not None:
        print(f"- BLAS/OpenMP threads limited to {args.blas_threads} (threadpoolctl)")
    load_before = h.load_average()
    with h.blas_threads(args.blas_threads):
        results = run_cases(args)
    elapsed = time.perf_counter() - t0
    print(f"- load average (1/5/15 min) before: {load_before}, after: {h.load_average()}")
    print(f"- wall time of this run: {elapsed:.0f} s\n")
    print("\n".join(main_table(results)) + "\n")
    print(NOTES + "\n")
    print("Extra timings and value checks (same runs):\n")
    print("\n".join(extra_table(results)))
    if args.json:
        h.write_json(args.json, to_json(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
