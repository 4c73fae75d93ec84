"""nncore.check_gradient against scipy.optimize.check_grad (and jax.test_util.check_grads).

For each function and size, in one run: function evaluations and median wall time of
``check_grad`` (forward differences, ``n + 1`` evaluations), of ``check_gradient`` in its
default fast profile and in the thorough profile (the scheme of earlier releases, with its
own default mode: directions above 2,000 parameters), their ratios; the verdict on the
correct gradient (a false alarm shows as ``FAILED``); and the smallest relative error
``delta`` in one coordinate (``g_i (1 + delta)``, ``i = n // 3``) that each profile reports
and names (levels 1e-8 .. 1, a tenfold apart; ``-`` when none is).  First, the speedup of
``workers=2`` on a function of a few milliseconds, with the reports compared bit for bit,
and the load average (the machine may be shared: the speedup is bounded by the idle cores).

Functions: ``scipy.optimize.rosen``; an l2-regularised logistic regression on scikit-learn's
``load_breast_cancer`` (standardised, with an intercept: n = 31); scikit-learn's multinomial
``LinearModelLoss`` on ``load_digits`` (n = 650); an nncore tanh network (function form).

Run from the repository root (``--quick``: small sizes, one repeat, for the tests)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_checker.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import check_grad, rosen, rosen_der

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's nncore
import nncore  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import run_stamp  # noqa: E402

LEVELS = [10.0**k for k in range(-8, 1)]
"""Relative errors planted in one coordinate, smallest first."""


class Counted:
    """``fun`` counting its calls (for scipy's ``check_grad``, which does not report them)."""

    def __init__(self, fun: Callable) -> None:
        self.fun, self.calls = fun, 0

    def __call__(self, *args: Any) -> float:
        self.calls += 1
        return self.fun(*args)


def _logistic(w: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float) -> float:
    z = X @ w
    return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * (w @ w))


def _logistic_grad(w: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    z = X @ w
    return X.T @ (0.5 * (1.0 + np.tanh(0.5 * z)) - y) / y.size + l2 * w


def breast_cancer() -> tuple:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    X = np.hstack([X, np.ones((X.shape[0], 1))])
    w0 = np.random.default_rng(0).normal(0.0, 0.1, X.shape[1])
    return _logistic, _logistic_grad, w0, (X, y.astype(float), 1e-2)


class DigitsLoss:
    """scikit-learn's multinomial ``LinearModelLoss`` on ``load_digits`` (picklable)."""

    def __init__(self) -> None:
        from sklearn._loss.loss import HalfMultinomialLoss
        from sklearn.datasets import load_digits
        from sklearn.linear_model._linear_loss import LinearModelLoss

        X, y = load_digits(return_X_y=True)
        self.X, self.y = X / 16.0, y.astype(float)
        self.lml = LinearModelLoss(HalfMultinomialLoss(n_classes=10), fit_intercept=True)
        self.sw = np.ones(X.shape[0])

    def loss(self, w: np.ndarray) -> float:
        return float(self.lml.loss(w, self.X, self.y, self.sw, l2_reg_strength=1e-3))

    def grad(self, w: np.ndarray) -> np.ndarray:
        return self.lml.gradient(w, self.X, self.y, self.sw, l2_reg_strength=1e-3)


def digits() -> tuple:
    d = DigitsLoss()
    w0 = np.random.default_rng(0).normal(0.0, 0.1, 10 * 65)
    return d.loss, d.grad, w0, ()


NET_SIZES = {10: [2, 2, 2], 1000: [20, 40, 4], 10_000: [50, 175, 5]}


def network(n: int, samples: int = 64) -> tuple:
    net = nncore.MLP(NET_SIZES[n], activation="tanh", loss="mse")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((samples, net.sizes[0])), rng.standard_normal((samples, 1))
    y = rng.standard_normal((samples, net.sizes[-1]))
    return net.loss, net.grad, net.init(rng), (X, y)


def rosen_case(n: int) -> tuple:
    return rosen, rosen_der, np.linspace(-1.5, 2.0, n), ()


def cases(quick: bool) -> list[tuple[str, Callable[[], tuple]]]:
    sizes = (10, 1000) if quick else (10, 1000, 10_000)
    out = [(f"rosen n={n}", lambda n=n: rosen_case(n)) for n in sizes]
    out.append(("logistic l2, breast cancer", breast_cancer))
    if not quick:
        out.append(("LinearModelLoss, digits", digits))
    out += [(f"nncore tanh net {NET_SIZES[n]}", lambda n=n: network(n)) for n in sizes]
    return out


def interleaved(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple]:
    """``{name: (median time of one call, last result)}``, the calls interleaved (A B C A B
    C ...) so that a shared machine's load falls on each alike; each measurement loops over as
    many calls as take 20 ms (short calls are noisy)."""
    number, out, times = {}, {}, {name: [] for name in calls}
    for name, call in calls.items():
        t0 = time.perf_counter()
        out[name] = call()
        number[name] = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-6)))
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            for _ in range(number[name]):
                out[name] = call()
            times[name].append((time.perf_counter() - t0) / number[name])
    return {name: (statistics.median(times[name]), out[name]) for name in calls}


def smallest_caught(fun, grad, x0, args, profile: str) -> float | None:
    """The smallest planted relative error in coordinate ``n // 3`` reported and named."""
    i = x0.size // 3
    for delta in LEVELS:

        def wrong(x, *a, delta=delta):
            g = np.array(grad(x, *a), dtype=float)
            g[i] *= 1.0 + delta
            return g

        r = nncore.check_gradient(fun, wrong, x0, args, profile=profile)
        if not r.passed and r.worst_param == f"x[{i}]":
            return delta
    return None


def jax_check_grads_time(name: str, x0: np.ndarray, args: tuple) -> float | None:
    """Wall time of ``jax.test_util.check_grads(f, (x0,), order=1)`` (tracing and
    compilation included: a first call), for the functions written in JAX here."""
    try:
        import jax.numpy as jnp
        from jax.test_util import check_grads

        from nncore import jax_reference  # float64
    except ImportError:
        return None
    if name.startswith("rosen"):

        def f(x):
            return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    elif name.startswith("nncore"):
        X, y = args
        sizes = [int(s) for s in name.split("[")[1].rstrip("]").split(",")]
        net = nncore.MLP(sizes, activation="tanh", loss="mse")
        loss = jax_reference.loss_fn(net)
        Xj, Yj = jnp.asarray(X), jnp.asarray(jax_reference.canonical_targets(net, y))
        wj = jnp.ones(X.shape[0])

        def f(x):
            return loss(x, Xj, Yj, wj)

    else:
        return None
    t0 = time.perf_counter()
    check_grads(f, (jnp.asarray(x0),), order=1, modes=("rev",))
    return time.perf_counter() - t0


def fmt(x: float | None, spec: str = ".0e") -> str:
    return "-" if x is None else format(x, spec)


def compare(quick: bool, repeats: int) -> list[str]:
    rows = [
        "| function | n | evals: check_grad | fast | ratio | thorough | time: check_grad | "
        "fast | ratio | thorough | jax check_grads | verdict fast / thorough | "
        "smallest caught: fast | thorough |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | "
        "---: | ---: |",
    ]
    for name, make in cases(quick):
        fun, grad, x0, args = make()
        n = x0.size
        counted = Counted(fun)
        check_grad(counted, grad, x0, *args)
        cg_evals = counted.calls
        timed = interleaved(
            {
                "check_grad": lambda: check_grad(fun, grad, x0, *args),
                "fast": lambda: nncore.check_gradient(fun, grad, x0, args),
                "thorough": lambda: nncore.check_gradient(fun, grad, x0, args, profile="thorough"),
            },
            repeats,
        )
        (t_cg, _), (t_fast, fast), (t_thor, thor) = timed.values()
        t_jax = jax_check_grads_time(name, x0, args)
        caught = [smallest_caught(fun, grad, x0, args, p) for p in ("fast", "thorough")]
        rows.append(
            f"| {name} | {n} | {cg_evals} | {fast.nfev} | {fast.nfev / cg_evals:.2f} | "
            f"{thor.nfev} ({thor.mode[:5]}.) | {t_cg:.3g} s | {t_fast:.3g} s | "
            f"{t_fast / t_cg:.2f} | {t_thor:.3g} s | {fmt(t_jax, '.3g')}"
            f"{'' if t_jax is None else ' s'} | {fast.verdict} / {thor.verdict} | "
            f"{fmt(caught[0])} | {fmt(caught[1])} |"
        )
    return rows


class SlowLoss:
    """An nncore network's loss on many samples: a few milliseconds per evaluation."""

    def __init__(self, samples: int) -> None:
        self.net = nncore.MLP([30, 16, 3], activation="tanh", loss="mse")
        rng = np.random.default_rng(1)
        self.X = rng.standard_normal((samples, 30))
        self.y = rng.standard_normal((samples, 3))
        self.theta = self.net.init(rng)

    def loss(self, t: np.ndarray) -> float:
        return self.net.loss(t, self.X, self.y)

    def grad(self, t: np.ndarray) -> np.ndarray:
        return self.net.grad(t, self.X, self.y)


def workers(quick: bool, repeats: int) -> list[str]:
    slow = SlowLoss(2_000 if quick else 20_000)
    t_eval = interleaved({"loss": lambda: slow.loss(slow.theta)}, 5)["loss"][0]
    rows = [
        f"workers: {slow.net!r}, {slow.X.shape[0]} samples, one loss {t_eval * 1e3:.2g} ms, "
        f"n = {slow.net.n_params}; medians of {repeats} interleaved runs",
        "| workers | time | speedup | report identical to workers=1 |",
        "| --- | ---: | ---: | --- |",
    ]
    times: dict[int, list[float]] = {1: [], 2: []}
    reports = {}
    for _ in range(repeats):
        for w in (1, 2):
            t0 = time.perf_counter()
            reports[w] = nncore.check_gradient(slow.loss, slow.grad, slow.theta, workers=w)
            times[w].append(time.perf_counter() - t0)
    t1 = statistics.median(times[1])
    for w in (1, 2):
        t = statistics.median(times[w])
        same = reports[w].to_dict() == reports[1].to_dict()
        rows.append(f"| {w} | {t:.3g} s | {t1 / t:.2f}x | {same} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=None, help="timing repeats (3)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    from threadpoolctl import threadpool_limits

    print(run_stamp())
    print(
        f"nncore {nncore.__version__}; medians of {repeats} runs; BLAS on one thread "
        "(threadpoolctl: small products compared, not thread start-up)\n"
    )
    with threadpool_limits(1):
        # workers first: before JAX is loaded, an int pool forks (see nncore/verify/_parallel)
        print("\n".join(workers(args.quick, repeats)))
        print(f"load average during the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print()
        print("\n".join(compare(args.quick, repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
