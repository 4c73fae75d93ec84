"""Where the time of a small L-BFGS-B fit goes: nncore against scikit-learn.

``benchmarks/bench_sklearn.py`` times whole fits; on ``load_breast_cancer`` (426 training
rows, 30-32-1, 20 iterations) and ``load_diabetes`` (331 rows, 10-16-1, 200 iterations)
nncore's ratio stays above the 0.5 aimed at, while it is far below on digits (64-64-10).  Both fits run the same scipy L-BFGS-B for the
same iterations (the same start and objective), so each fit is

    fit = setup + iterations x (scipy's own step + one loss-and-gradient evaluation)

and scipy's step is the same in both.  This script measures those parts, interleaved
(medians over repeats), on exactly ``bench_sklearn``'s problem:

* each whole fit, with the seconds spent inside its evaluations (nncore's
  ``Objective.fun_and_jac``, scikit-learn's ``_loss_grad_lbfgs``) summed by a wrapper;
* scipy's L-BFGS-B alone: the same ``minimize`` call fed the recorded values and gradients
  of nncore's run (no evaluation at all);
* the bare matrix products of one evaluation at their own shapes, and the one-wide
  layer's outer product ``D_2 W_2`` by ``np.matmul`` and by ``np.multiply``
  (:func:`nncore.kernels.times`);

and prints the ratio that the parts allow: ``(scipy + nncore's evaluations + nncore's setup)``
against scikit-learn's fit, and the same with nncore's evaluation cut down to its matrix
products (the floor of any numpy implementation).

Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/studies/lbfgs_anatomy.py
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/

import bench_sklearn as bs  # noqa: E402  (puts this checkout first on sys.path)
from harness import fmt_time, load_average, machine_lines  # noqa: E402

import nncore  # noqa: E402
from nncore import objective  # noqa: E402


class Summed:
    """Wrap ``fn``; ``seconds`` and ``calls`` add up over calls."""

    def __init__(self, fn) -> None:
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1

    def __get__(self, instance, owner=None):  # set on a class, it binds as a method does
        return self if instance is None else functools.partial(self, instance)


def tight(fn, n: int = 2000) -> float:
    """Seconds per call of ``fn`` in a loop of ``n`` (after one warm-up call)."""
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--data", nargs="*", default=["breast_cancer", "diabetes"])
    args = parser.parse_args(argv)
    print("\n".join(machine_lines()))
    print(f"- load average: {load_average()}; medians of {args.repeats} interleaved repeats")
    for name in args.data:
        anatomy(name, args.repeats)
    return 0


def anatomy(name: str, repeats: int) -> None:
    """Measure and print the parts of the fits on the data set ``name``."""

    from sklearn.neural_network import _multilayer_perceptron as skmlp

    Xtr, _, ytr, _, classify = bs.dataset(name)
    est, _, start = bs.fit_sklearn(name, Xtr, ytr, classify)
    target = float(est.loss_)
    net, Y, theta0, scale = bs.nncore_problem(name, est, Xtr, ytr, start)

    # nncore's values and gradients along its own run, replayed to scipy alone
    recorded: list[tuple[float, np.ndarray]] = []
    obj = net.objective(Xtr, Y)

    def record(x):
        J, g = obj.fun_and_jac(x)
        recorded.append((J, g.copy()))
        return J, g

    def stop(intermediate_result):
        if scale * intermediate_result.fun <= target:
            raise StopIteration

    opts = {"maxiter": 100000, "gtol": 0.0, "ftol": 0.0, "maxfun": 10**7}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = minimize(record, theta0, jac=True, method="L-BFGS-B", callback=stop, options=opts)

    def scipy_alone():
        it = iter(recorded)
        with nncore.limit_scipy_blas():
            minimize(
                lambda x: next(it),
                theta0,
                jac=True,
                method="L-BFGS-B",
                callback=stop,
                options=opts,
            )

    fj = Summed(objective.Objective.fun_and_jac)
    lg = Summed(skmlp.BaseMultilayerPerceptron._loss_grad_lbfgs)
    objective.Objective.fun_and_jac = fj
    skmlp.BaseMultilayerPerceptron._loss_grad_lbfgs = lg

    def nn():
        fj.seconds = fj.calls = 0
        seconds = bs.run_nncore(net, Xtr, Y, theta0, scale, "L-BFGS-B", target, 10.0)[0]
        return seconds, fj.seconds, fj.calls

    def sk():
        lg.seconds = lg.calls = 0
        seconds = bs.fit_sklearn(name, Xtr, ytr, classify)[1]
        return seconds, lg.seconds, lg.calls

    def alone():
        t0 = time.perf_counter()
        scipy_alone()
        return time.perf_counter() - t0, 0.0, len(recorded)

    competitors = {"nncore.train L-BFGS-B": nn, "scikit-learn lbfgs": sk, "scipy alone": alone}
    samples: dict[str, list[tuple[float, float, int]]] = {k: [] for k in competitors}
    names = list(competitors)
    for fn in competitors.values():
        fn()  # warm-up
    for r in range(repeats):
        for key in names[r % len(names) :] + names[: r % len(names)]:
            samples[key].append(competitors[key]())
    objective.Objective.fun_and_jac = fj.fn
    skmlp.BaseMultilayerPerceptron._loss_grad_lbfgs = lg.fn

    med = {k: [statistics.median(s[i] for s in v) for i in range(3)] for k, v in samples.items()}

    # the matrix products of one evaluation at their own shapes, and the outer product
    rng = np.random.default_rng(0)
    N, (n0, n1, n2) = Xtr.shape[0], net.sizes
    X = np.asarray(Xtr)
    W1, W2 = rng.normal(size=(n1, n0)), rng.normal(size=(n2, n1))
    ZT, out, H = np.empty((n1, N)), np.empty((n2, N)), rng.normal(size=(N, n1))
    D2 = np.asfortranarray(rng.normal(size=(N, n2)))
    D1 = np.empty((n1, N)).T
    G1, G2 = np.empty((n1, n0)), np.empty((n2, n1))
    products = [
        lambda: np.matmul(W1, X.T, out=ZT),  # Z_1^T = W_1 X^T
        lambda: np.matmul(W2, H.T, out=out),  # Z_2^T = W_2 A_1^T
        lambda: np.matmul(H.T, D2, out=G2.T),  # dJ/dW_2^T = A_1^T D_2
        lambda: np.matmul(D1.T, X, out=G1),  # dJ/dW_1 = D_1^T X
    ]
    outer = {
        "np.matmul": lambda: np.matmul(D2, W2, out=D1),
        "np.multiply": lambda: np.multiply(D2, W2, out=D1),
    }
    reps = {k: [] for k in ("products", *outer)}
    for _ in range(7):
        reps["products"].append(sum(tight(p) for p in products))
        for k, fn in outer.items():
            reps[k].append(tight(fn))
    t = {k: statistics.median(v) for k, v in reps.items()}

    nn_total, nn_eval, nn_calls = med["nncore.train L-BFGS-B"]
    sk_total, sk_eval, sk_calls = med["scikit-learn lbfgs"]
    alone_s = med["scipy alone"][0]
    nn_rest = nn_total - nn_eval - alone_s  # nncore's setup, monitor and callback
    floor = alone_s + nn_calls * (t["products"] + t["np.multiply"]) + nn_rest

    print(
        f"\n## {name}: {N} rows, {'-'.join(map(str, net.sizes))}, {ref.nit} iterations, "
        f"{len(recorded)} evaluations (both fits)\n"
    )
    print("| part | nncore | scikit-learn |")
    print("| --- | ---: | ---: |")
    print(f"| whole fit | {fmt_time(nn_total)} | {fmt_time(sk_total)} |")
    print(
        f"| evaluations (loss + gradient), summed | {fmt_time(nn_eval)} ({nn_calls}) "
        f"| {fmt_time(sk_eval)} ({sk_calls}) |"
    )
    print(f"| one evaluation | {fmt_time(nn_eval / nn_calls)} | {fmt_time(sk_eval / sk_calls)} |")
    print(f"| scipy's L-BFGS-B alone (replayed values) | {fmt_time(alone_s)} | (the same) |")
    print(
        f"| the rest: setup, callbacks | {fmt_time(nn_rest)} "
        f"| {fmt_time(sk_total - sk_eval - alone_s)} |"
    )
    print(
        f"\n- ratio nncore / scikit-learn: {nn_total / sk_total:.2f}; "
        f"scipy's own share of scikit-learn's fit: {alone_s / sk_total:.2f}"
    )
    print(
        f"- the matrix products of one evaluation at their own shapes: "
        f"{fmt_time(t['products'])}; outer product D_2 W_2: np.matmul "
        f"{fmt_time(t['np.matmul'])}, np.multiply {fmt_time(t['np.multiply'])}"
    )
    print(
        f"- with every evaluation cut to those products (and the outer product), the fit "
        f"would take {fmt_time(floor)}: ratio {floor / sk_total:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
