"""Benchmark ``nncore.train``'s scipy methods: time and evaluations to a target objective.

What is measured
----------------
Three problems, each from the same 10 starting points ``theta0 = net.init(seed)``,
``seed = 0..9``, for every method (and, for the Hessian methods, both curvatures):

1. XOR: the seed's 2-2-1 network (tanh hidden, sigmoid output, mse) on ``XOR_X, XOR_Y``;
   target ``J <= 1/16``, below which every output is on the right side of 0.5.
2. digits: 64-64-10, relu hidden, softmax output, cross-entropy, on scikit-learn's
   ``load_digits()`` with X/16 (N=1797, 4810 parameters); target ``J <= 0.01``.
3. regression: 8-16-1, tanh hidden, identity output, mse, on X ~ U(-1, 1)^(2000 x 8) and
   ``y = sin(X a) + 0.5 cos(X b)`` (a, b standard normal; all from a seeded Generator);
   target ``J <= 1e-3``, about 0.16% of var(y) (R^2 >= 0.998).

A run's wall time and evaluation counts are taken when the objective *first* drops to the
target: ``train``'s callback (called once per iteration with the objective) notes the time
and the live objective's counters, then stops the run -- by raising ``StopIteration``,
which scipy honours for every ``minimize`` method but TNC and for ``least_squares``
trf/dogbox, and by raising a private exception that ends ``train`` for TNC.  ``lm`` has no
per-iteration callback (MINPACK), so for it the crossing is the first *evaluated* point
with ``J <= target``, seen from the objective's ``residuals``; a point that low is a
decrease, which MINPACK accepts (unless its actual/predicted reduction ratio is below 1e-4).
To read the counters mid-run, ``nncore.training.Objective`` is replaced, for the duration
of the benchmark only, by a subclass that registers each instance it creates: the counts
are nncore's own (forward passes, backward passes, curvature-vector products, a full
Hessian counting ``n_params`` products).  The time starts just before ``train`` is called
(so it includes ``train``'s data validation and the objective at theta0).

For mse problems lm is run twice: with scipy's default scaling (``x_scale='jac'`` for lm
since scipy 1.16, MINPACK's column-norm scaling) and with ``x_scale=1.0`` (what trf and
dogbox use by default), passed through ``train``'s ``options``.

Budgets: ``minimize`` methods ``maxiter`` (TNC: ``maxfun``), ``least_squares``
``max_nfev``, scipy's default tolerances otherwise; a run is also stopped once it has taken
``--run-limit`` seconds, and a (problem, method) cell starts no new start once it has used
``--cell-budget`` seconds (the table then says how many starts were run).  Methods that
cannot run a problem in that time, or at all, are skipped with the reason printed.

Outside reference: scikit-learn's ``MLPClassifier``/``MLPRegressor(solver="lbfgs",
alpha=0, tol=0)`` on the same data, which has no target stop: it is timed to its own
convergence (scipy L-BFGS-B's ``ftol``, or ``max_iter``), and its final loss is converted
to nncore's definition (sklearn's squared loss is ``0.5 * mean``, its log-loss the same
mean cross-entropy; alpha=0 adds no penalty).  It is run from its own initialisation
(``random_state=seed``) and from nncore's theta0 (``warm_start`` after setting
``coefs_``/``intercepts_``), next to nncore's L-BFGS-B run with the same stopping rule
(``max_iter`` is half the methods' ``maxiter``: sklearn always runs to it on the
regression, so this keeps the run short).

Second part: the cost of one Hessian-vector (``hessp``) and one Gauss-Newton-vector
(``gnvp``) product as a multiple of one loss-and-gradient evaluation, on the regression
and digits networks and a 784-256-128-10 relu/softmax network on N=10000 synthetic rows
(seeded standard-normal X, labels 0..9), measured both through an ``Objective`` whose
forward pass is cached (what Newton-CG and the trust-region methods pay per product)
against an uncached ``fun_and_jac``, and through the public, uncached
``net.hessp``/``net.gnvp`` against ``net.loss_and_grad``.  Competitors are sampled in turn
(order rotated each repeat, garbage collector off); times are medians over the repeats,
ratios the median of the ratios within each repeat; minor page faults per call are shown
because fresh memory mapped for temporaries can double a call's time.

BLAS is limited to one thread by default (``--blas-threads``): on a shared 2-core machine,
two OpenBLAS threads competing with another busy process made one 64-64-10 gradient up to
40x slower, which would measure the machine and not the methods.

Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_methods.py

``--quick`` is a smoke run (2 starts, XOR and a smaller regression, tight budgets, under
30 s); ``--json PATH`` also writes every run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy

import nncore
import nncore.training as training
from nncore.seed import XOR_X, XOR_Y, seed_net
from nncore.training import HESS_METHODS, HESSP_METHODS, LEAST_SQUARES_METHODS, METHODS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # when imported from elsewhere
from timing import fmt_time, interleave, load_average, run_stamp  # noqa: E402

try:
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor
except ImportError:  # pragma: no cover - depends on the environment
    sklearn = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - depends on the environment
    threadpool_limits = None

CURVATURE_METHODS = HESSP_METHODS + HESS_METHODS
"""Methods that take ``curvature="exact"`` or ``"gauss_newton"``; run with both."""
XOR_TARGET = 1.0 / 16.0
DIGITS_TARGET = 0.01
REGRESSION_TARGET = 1e-3


# -- problems ----------------------------------------------------------------------------------


@dataclass
class Problem:
    """A network, its data, the target objective and what sklearn compares with."""

    key: str
    title: str
    net: nncore.MLP
    X: np.ndarray
    y: np.ndarray
    target: float
    target_note: str
    data_note: str
    skip: dict[str, str] = field(default_factory=dict)  # method -> why it is not run
    sk_kind: str = "regressor"  # "classifier" or "regressor"
    sk_hidden: tuple[int, ...] = ()
    sk_activation: str = "tanh"
    sk_net: nncore.MLP | None = None  # sklearn's model in nncore (identity output for mse)
    sk_scale: float = 1.0  # nncore J = sk_scale * sklearn's loss_
    sk_note: str = ""


def xor_problem() -> Problem:
    return Problem(
        key="xor",
        title="XOR, seed network 2-2-1 (tanh, sigmoid output, mse), 9 parameters",
        net=seed_net(),
        X=XOR_X.astype(float),
        y=XOR_Y.astype(float),
        target=XOR_TARGET,
        target_note="J <= 1/16: every output on the right side of 0.5",
        data_note="the seed's 4 XOR rows",
        sk_hidden=(2,),
        sk_net=nncore.MLP([2, 2, 1], activation="tanh", output="identity", loss="mse"),
        sk_scale=2.0,
        sk_note=(
            "MLPRegressor(hidden_layer_sizes=(2,), activation='tanh'): its output is the "
            "identity, not a sigmoid -- a different (easier, no saturating output) model; "
            "the nncore L-BFGS-B row uses that same identity-output model"
        ),
    )


def digits_problem() -> Problem:
    net = nncore.MLP([64, 64, 10], activation="relu", loss="cross_entropy")
    if sklearn is not None:
        digits = load_digits()
        X, y = digits.data / 16.0, digits.target.astype(float)
        source = "sklearn load_digits(), X/16, N=1797"
    else:  # pragma: no cover - depends on the environment
        rng = np.random.default_rng(1)
        X, y = rng.uniform(size=(1797, 64)), rng.integers(0, 10, 1797).astype(float)
        source = "synthetic uniform X, random labels (sklearn missing), N=1797"
    n = net.n_params
    dense = (
        f"dense n x n work per iteration at n={n}: scipy's BFGS update is two n x n matrix "
        "products, O(n^3)"
    )
    return Problem(
        key="digits",
        title=f"digits, 64-64-10 (relu, softmax, cross-entropy), {n} parameters",
        net=net,
        X=X,
        y=y,
        target=DIGITS_TARGET,
        target_note="J <= 0.01 mean cross-entropy on the training set",
        data_note=source,
        skip={
            "BFGS": dense,
            "SLSQP": f"solves a dense QP in n={n} variables every iteration, O(n^3)",
            "trust-exact": f"full Hessian: n={n} curvature products + O(n^3) solves/iteration",
            "dogleg": f"full Hessian: n={n} curvature products + eigvalsh + Cholesky/iteration",
            "lm": "least squares: needs loss 'mse'",
            "trf": "least squares: needs loss 'mse'",
            "dogbox": "least squares: needs loss 'mse'",
        },
        sk_kind="classifier",
        sk_hidden=(64,),
        sk_activation="relu",
        sk_net=net,
        sk_scale=1.0,
        sk_note="MLPClassifier(hidden_layer_sizes=(64,), activation='relu'): the same model",
    )


def regression_problem(n_samples: int = 2000) -> Problem:
    rng = np.random.default_rng(2024)
    X = rng.uniform(-1.0, 1.0, (n_samples, 8))
    a, b = rng.standard_normal(8), rng.standard_normal(8)
    y = np.sin(X @ a) + 0.5 * np.cos(X @ b)
    net = nncore.MLP([8, 16, 1], activation="tanh", loss="mse")
    return Problem(
        key="regression",
        title=f"regression, 8-16-1 (tanh, identity output, mse), {net.n_params} parameters",
        net=net,
        X=X,
        y=y,
        target=REGRESSION_TARGET,
        target_note=f"J <= 1e-3 mean squared error; var(y) = {y.var():.3f}",
        data_note=(
            f"X ~ U(-1,1)^({n_samples}x8), y = sin(X a) + 0.5 cos(X b), "
            "a, b ~ N(0, I), Generator seed 2024"
        ),
        sk_hidden=(16,),
        sk_net=net,
        sk_scale=2.0,
        sk_note="MLPRegressor(hidden_layer_sizes=(16,), activation='tanh'): the same model",
    )


@dataclass(frozen=True)
class Variant:
    """One way to call ``train``: a method, its curvature (``"-"`` where it does not apply)
    and options added to the budget."""

    method: str
    curvature: str = "-"
    extra: tuple[tuple[str, Any], ...] = ()
    note: str = ""

    @property
    def label(self) -> str:
        if self.note:
            return f"{self.method} ({self.note})"
        if self.curvature == "-":
            return self.method
        return f"{self.method} ({'exact' if self.curvature == 'exact' else 'GN'})"


LM_UNSCALED = Variant("lm", extra=(("x_scale", 1.0),), note="x_scale=1")
"""scipy >= 1.16 runs lm with ``x_scale='jac'`` (MINPACK's own column scaling) by default;
this row shows lm without it, as trf and dogbox run by default."""


def variants(problem: Problem, include_slow: bool) -> list[Variant]:
    """What to run on ``problem``: every method it allows, both curvatures where they apply."""
    out = []
    for method in METHODS:
        if method in LEAST_SQUARES_METHODS and problem.net.loss_name != "mse":
            continue
        if method in problem.skip and not include_slow:
            continue
        if method in CURVATURE_METHODS:
            out += [Variant(method, "exact"), Variant(method, "gauss_newton")]
        else:
            out.append(Variant(method))
        if method == "lm":
            out.append(LM_UNSCALED)
    return out


def method_options(method: str, maxiter: int) -> dict[str, Any]:
    """The iteration budget in each method's own terms."""
    if method == "TNC":
        return {"maxfun": 5 * maxiter}  # TNC counts evaluations, several per iteration
    if method in LEAST_SQUARES_METHODS:
        return {"max_nfev": maxiter}
    return {"maxiter": maxiter}


# -- instrumentation ---------------------------------------------------------------------------


class _Halt(Exception):
    """Ends ``train`` where scipy does not honour ``StopIteration`` (TNC; lm's residuals)."""


class Watcher:
    """Notes the time and the objective's counters when ``J`` first reaches the target,
    then stops the run; also stops it after ``time_limit`` seconds."""

    def __init__(self, target: float, time_limit: float, use_stop_iteration: bool) -> None:
        self.target = target
        self.time_limit = time_limit
        self.stop = StopIteration if use_stop_iteration else _Halt
        self.t0 = time.perf_counter()
        self.objective: Any = None  # the Objective train created, registered on creation
        self.iterations = 0
        self.last_fun = float("nan")
        self.hit: dict[str, float] | None = None
        self.timed_out = False

    def callback(self, intermediate_result: Any) -> None:
        """``train``'s per-iteration callback."""
        self.iterations += 1
        self.check(float(intermediate_result.fun))

    def check(self, fun: float) -> None:
        now = time.perf_counter()
        self.last_fun = fun
        if fun <= self.target:
            obj = self.objective
            self.hit = {
                "seconds": now - self.t0,
                "iterations": self.iterations,
                "nfev": obj.nfev,
                "njev": obj.njev,
                "nhev": obj.nhev,
            }
            raise self.stop
        if now - self.t0 > self.time_limit:
            self.timed_out = True
            raise self.stop


_WATCHER: Watcher | None = None
_WATCH_RESIDUALS = False


class _WatchedObjective(training.Objective):
    """``Objective`` that registers itself with the current watcher (and, for lm, has every
    residual evaluation checked against the target)."""

    @classmethod
    def from_batch(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().from_batch(*args, **kwargs)
        if _WATCHER is not None:
            _WATCHER.objective = obj
        return obj

    def residuals(self, theta: Any) -> np.ndarray:
        r = super().residuals(theta)
        if _WATCH_RESIDUALS and _WATCHER is not None:
            _WATCHER.check(float(r @ r))
        return r


@contextlib.contextmanager
def watching(watcher: Watcher, residuals: bool) -> Iterator[None]:
    """Let ``train`` build :class:`_WatchedObjective` objects reporting to ``watcher``."""
    global _WATCHER, _WATCH_RESIDUALS
    original = training.Objective
    training.Objective = _WatchedObjective
    _WATCHER, _WATCH_RESIDUALS = watcher, residuals
    try:
        yield
    finally:
        training.Objective = original
        _WATCHER, _WATCH_RESIDUALS = None, False


# -- one run, one cell -------------------------------------------------------------------------


@dataclass
class Run:
    """One start of one method: how it ended and, if it reached the target, at what cost."""

    start: int
    outcome: str  # reached | budget | stopped | time limit | error
    seconds: float  # to the target if reached, else the whole run
    final_fun: float
    iterations: int | None = None
    nfev: int | None = None
    njev: int | None = None
    nhev: int | None = None
    detail: str = ""

    @property
    def reached(self) -> bool:
        return self.outcome == "reached"


def run_one(
    problem: Problem, variant: Variant, start: int, theta0: np.ndarray, args: argparse.Namespace
) -> Run:
    """``train`` once from ``theta0``, stopped at the target (or a budget)."""
    method = variant.method
    lm = method == "lm"
    watcher = Watcher(problem.target, args.run_limit, use_stop_iteration=method != "TNC" and not lm)
    result = None
    with watching(watcher, residuals=lm):
        watcher.t0 = time.perf_counter()
        try:
            result = nncore.train(
                problem.net,
                problem.X,
                problem.y,
                method=method,
                theta0=theta0,
                options=method_options(method, args.maxiter) | dict(variant.extra),
                callback=None if lm else watcher.callback,  # lm: watched through residuals
                curvature="exact" if variant.curvature == "-" else variant.curvature,
            )
        except _Halt:
            pass
        except Exception as err:  # report, do not hide: this may be a bug in nncore
            return Run(
                start,
                "error",
                time.perf_counter() - watcher.t0,
                float("nan"),
                detail=f"{type(err).__name__}: {err}",
            )
    elapsed = time.perf_counter() - watcher.t0
    if watcher.hit is not None:
        hit = watcher.hit
        run = Run(
            start,
            "reached",
            hit["seconds"],
            watcher.last_fun,
            None if lm else int(hit["iterations"]),
            int(hit["nfev"]),
            int(hit["njev"]),
            int(hit["nhev"]),
        )
        if result is not None:  # scipy stopped cleanly: its counts must be the same
            counts = (result.nfev, result.njev, result.nhev)
            if counts != (run.nfev, run.njev, run.nhev):
                at_crossing = (run.nfev, run.njev, run.nhev)
                run.detail = f"work after the stop: result counts {counts}, {at_crossing} at it"
        return run
    if watcher.timed_out:
        return Run(start, "time limit", elapsed, watcher.last_fun, watcher.iterations)
    assert result is not None
    iterations = len(result.history) - 1
    if result.fun <= problem.target:  # reached at a point no callback reported
        return Run(
            start,
            "reached",
            elapsed,
            float(result.fun),
            None if lm else iterations,
            result.nfev,
            result.njev,
            result.nhev,
            detail="crossed after the last callback",
        )
    message = str(getattr(result, "message", ""))
    lowered = message.lower()
    outcome = "budget" if ("max" in lowered or "limit" in lowered) else "stopped"
    return Run(
        start,
        outcome,
        elapsed,
        float(result.fun),
        None if lm else iterations,
        result.nfev,
        result.njev,
        result.nhev,
        detail=message,
    )


@dataclass
class Cell:
    """Every start of one (problem, variant)."""

    variant: Variant
    runs: list[Run]
    n_starts: int  # starts requested; fewer were run when the cell budget ran out

    @property
    def label(self) -> str:
        return self.variant.label

    @property
    def reached(self) -> list[Run]:
        return [r for r in self.runs if r.reached]

    def fraction(self) -> float:
        return len(self.reached) / len(self.runs) if self.runs else 0.0

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.reached if getattr(r, attr) is not None]
        return statistics.median(values) if values else None

    def time_per_success(self) -> float | None:
        """All the time the cell spent (failed runs to their end) over the successes."""
        n = len(self.reached)
        return sum(r.seconds for r in self.runs) / n if n else None


def run_cell(
    problem: Problem, variant: Variant, starts: list[np.ndarray], args: argparse.Namespace
) -> Cell:
    runs: list[Run] = []
    t_cell = time.perf_counter()
    for k, theta0 in enumerate(starts):
        if runs and time.perf_counter() - t_cell > args.cell_budget:
            break
        runs.append(run_one(problem, variant, k, theta0, args))
    return Cell(variant, runs, len(starts))


# -- scikit-learn reference --------------------------------------------------------------------


@dataclass
class RefRun:
    """One run to convergence (no target stop)."""

    start: int
    seconds: float
    iterations: int
    final_fun: float  # nncore's definition of J
    check_fun: float | None = None  # nncore's J evaluated at sklearn's final weights


def sklearn_estimator(problem: Problem, max_iter: int, random_state: int) -> Any:
    cls = MLPClassifier if problem.sk_kind == "classifier" else MLPRegressor
    return cls(
        hidden_layer_sizes=problem.sk_hidden,
        activation=problem.sk_activation,
        solver="lbfgs",
        alpha=0.0,
        tol=0.0,
        max_iter=max_iter,
        random_state=random_state,
    )


def sklearn_theta(problem: Problem, est: Any) -> np.ndarray:
    """sklearn's fitted weights as nncore's theta (``W_l = coefs_[l].T``)."""
    assert problem.sk_net is not None
    return problem.sk_net.pack([(W.T, b) for W, b in zip(est.coefs_, est.intercepts_)])


def sklearn_fit(problem: Problem, max_iter: int, start: int, theta0: np.ndarray | None) -> RefRun:
    """Fit from sklearn's own init (``theta0=None``) or from nncore's ``theta0``.

    For ``theta0``, a one-iteration fit sets the estimator up (public API only), then its
    ``coefs_``/``intercepts_`` are overwritten and it is refitted with ``warm_start=True``;
    only that second fit is timed.
    """
    est = sklearn_estimator(problem, max_iter, start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if theta0 is not None:
            assert problem.sk_net is not None
            est.set_params(max_iter=1).fit(problem.X, problem.y)
            pairs = problem.sk_net.unpack(theta0)
            est.coefs_ = [W.T.copy() for W, _ in pairs]
            est.intercepts_ = [b.copy() for _, b in pairs]
            est.set_params(max_iter=max_iter, warm_start=True)
        t0 = time.perf_counter()
        est.fit(problem.X, problem.y)
        seconds = time.perf_counter() - t0
    check = None
    if problem.sk_net is not None:
        check = problem.sk_net.loss(sklearn_theta(problem, est), problem.X, problem.y)
    return RefRun(start, seconds, int(est.n_iter_), problem.sk_scale * float(est.loss_), check)


def nncore_same_rule(problem: Problem, max_iter: int, start: int, theta0: np.ndarray) -> RefRun:
    """nncore's L-BFGS-B on sklearn's model with sklearn's options (no target stop)."""
    net = problem.sk_net if problem.sk_net is not None else problem.net
    options = {"maxiter": max_iter, "maxfun": 15000, "gtol": 0.0}  # sklearn's, tol=0
    t0 = time.perf_counter()
    res = nncore.train(net, problem.X, problem.y, method="L-BFGS-B", theta0=theta0, options=options)
    return RefRun(start, time.perf_counter() - t0, int(res.nit), float(res.fun))


def reference_rows(
    problem: Problem, starts: list[np.ndarray], args: argparse.Namespace
) -> dict[str, list[RefRun]]:
    rows: dict[str, list[RefRun]] = {}
    if sklearn is None:  # pragma: no cover - depends on the environment
        return rows
    m = args.sk_max_iter
    rows["sklearn lbfgs, own init (random_state=seed)"] = [
        sklearn_fit(problem, m, k, None) for k in range(len(starts))
    ]
    rows["sklearn lbfgs, from nncore's theta0 (warm_start)"] = [
        sklearn_fit(problem, m, k, t) for k, t in enumerate(starts)
    ]
    rows["nncore L-BFGS-B, same model and stopping rule"] = [
        nncore_same_rule(problem, m, k, t) for k, t in enumerate(starts)
    ]
    return rows


# -- hessp / gnvp cost -------------------------------------------------------------------------


@dataclass
class CostCase:
    name: str
    net: nncore.MLP
    X: np.ndarray
    y: np.ndarray
    samples: dict[str, list[float]] = field(default_factory=dict)  # seconds per call
    faults: dict[str, list[float]] = field(default_factory=dict)  # minor page faults per call


FJ, HP, GN = "fun_and_jac (uncached)", "hessp (cached fwd)", "gnvp (cached fwd)"
LG, HP_PUB, GN_PUB = "net.loss_and_grad", "net.hessp", "net.gnvp"


def cost_cases(quick: bool, regression: Problem) -> list[CostCase]:
    cases = [CostCase(f"8-16-1 regression, N={len(regression.X)}", *_net_data(regression))]
    if quick:
        return cases
    digits = digits_problem()
    cases.append(CostCase("64-64-10 digits, N=1797", *_net_data(digits)))
    rng = np.random.default_rng(0)
    big = nncore.MLP([784, 256, 128, 10], activation="relu", loss="cross_entropy")
    X = rng.standard_normal((10000, 784))
    y = rng.integers(0, 10, 10000).astype(float)
    cases.append(CostCase("784-256-128-10 synthetic, N=10000", big, X, y))
    return cases


def _net_data(problem: Problem) -> tuple[nncore.MLP, np.ndarray, np.ndarray]:
    return problem.net, problem.X, problem.y


def bench_cost(case: CostCase, args: argparse.Namespace) -> None:
    """Sample every competitor in turn, order rotated each repeat, until the repeats or the
    case's time budget (after ``min_repeats``) are used up."""
    net, X, y = case.net, case.X, case.y
    theta, theta_b = net.init(0), net.init(1)
    v = np.random.default_rng(7).standard_normal(net.n_params)
    miss = net.objective(X, y)  # alternates between two thetas: every call is fwd + bwd
    cycle = itertools.cycle((theta, theta_b))
    cached = net.objective(X, y)
    cached.fun_and_jac(theta)  # forward pass cached at theta; products reuse it
    competitors: dict[str, Callable[[], Any]] = {
        FJ: lambda: miss.fun_and_jac(next(cycle)),
        HP: lambda: cached.hessp(theta, v),
        GN: lambda: cached.gnvp(theta, v),
        LG: lambda: net.loss_and_grad(theta, X, y),
        HP_PUB: lambda: net.hessp(theta, v, X, y),
        GN_PUB: lambda: net.gnvp(theta, v, X, y),
    }
    _, case.samples, case.faults = interleave(
        competitors, args.sample_ms / 1e3, args.repeats, args.min_repeats, args.cost_budget
    )
    fwd_before = cached.nfev
    cached.hessp(theta, v)
    assert cached.nfev == fwd_before, "the cached objective ran a new forward pass"


# -- report ------------------------------------------------------------------------------------


def fmt_num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def why_not(cell: Cell) -> str:
    """The unreached starts, grouped: ``2 stopped (f 0.125-0.167), 1 budget``."""
    groups: dict[str, list[Run]] = {}
    for run in cell.runs:
        if not run.reached:
            groups.setdefault(run.outcome, []).append(run)
    parts = []
    for outcome in ("stopped", "budget", "time limit", "error"):
        runs = groups.get(outcome, [])
        if not runs:
            continue
        funs = [r.final_fun for r in runs if np.isfinite(r.final_fun)]
        spread = ""
        if funs:
            lo, hi = min(funs), max(funs)
            spread = f" (f {lo:.3g})" if f"{lo:.3g}" == f"{hi:.3g}" else f" (f {lo:.3g}-{hi:.3g})"
        parts.append(f"{len(runs)} {outcome}{spread}")
    if len(cell.runs) < cell.n_starts:
        parts.append(f"{cell.n_starts - len(cell.runs)} not run (cell budget)")
    return ", ".join(parts) or "-"


def cell_table(cells: list[Cell]) -> list[str]:
    head = [
        "method",
        "reached",
        "median time",
        "time per success",
        "median iters",
        "median fwd",
        "median bwd",
        "median Hv",
        "not reached: why",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        row = [
            c.label,
            f"{len(c.reached)}/{len(c.runs)}",
            fmt_time(c.median("seconds")),
            fmt_time(c.time_per_success()),
            fmt_num(c.median("iterations")),
            fmt_num(c.median("nfev")),
            fmt_num(c.median("njev")),
            fmt_num(c.median("nhev")),
            why_not(c),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def reference_table(problem: Problem, rows: dict[str, list[RefRun]]) -> list[str]:
    head = ["run (to convergence)", "final J <= target", "median time", "median iters"]
    head += ["median final J", "max abs(J check - J)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, runs in rows.items():
        ok = sum(r.final_fun <= problem.target for r in runs)
        checks = [abs(r.check_fun - r.final_fun) for r in runs if r.check_fun is not None]
        row = [
            name,
            f"{ok}/{len(runs)}",
            fmt_time(statistics.median(r.seconds for r in runs)),
            fmt_num(statistics.median(r.iterations for r in runs)),
            f"{statistics.median(r.final_fun for r in runs):.3g}",
            f"{max(checks):.1e}" if checks else "-",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def winners(cells: list[Cell]) -> list[str]:
    """The fastest cell among the reliable ones, and the lowest time per success."""
    ran = [c for c in cells if c.runs]
    if not ran or not any(c.reached for c in ran):
        return ["- no method reached the target"]
    best_fraction = max(c.fraction() for c in ran)
    floor = min(0.8, best_fraction)
    reliable = [c for c in ran if c.fraction() >= floor and c.reached]
    fastest = sorted(reliable, key=lambda c: c.median("seconds"))[:3]
    per_success = sorted((c for c in ran if c.reached), key=lambda c: c.time_per_success())[:3]
    return [
        f"- fastest median time among methods reaching the target from >= {floor:.0%} of "
        "starts: " + ", ".join(f"{c.label} {fmt_time(c.median('seconds'))}" for c in fastest),
        "- lowest time per success (all time spent / successes): "
        + ", ".join(f"{c.label} {fmt_time(c.time_per_success())}" for c in per_success),
    ]


def paired_ratio(case: CostCase, num: str, den: str) -> float:
    """Median over repeats of ``num / den`` within each repeat: the two samples of a repeat
    are taken moments apart, so a slow spell of the machine hits both."""
    return statistics.median(n / d for n, d in zip(case.samples[num], case.samples[den]))


def cost_table(cases: list[CostCase]) -> list[str]:
    head = ["network", "n_params", FJ, HP, GN, "hessp / fj", "gnvp / fj"]
    head += [LG, HP_PUB, GN_PUB, "hessp / l&g", "gnvp / l&g"]
    head += ["page faults/call (fj, hessp, gnvp; l&g, net.hessp, net.gnvp)", "repeats"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in cases:
        med = {k: statistics.median(s) for k, s in case.samples.items()}
        row = [
            case.name,
            str(case.net.n_params),
            fmt_time(med[FJ]),
            fmt_time(med[HP]),
            fmt_time(med[GN]),
            f"{paired_ratio(case, HP, FJ):.2f}x",
            f"{paired_ratio(case, GN, FJ):.2f}x",
            fmt_time(med[LG]),
            fmt_time(med[HP_PUB]),
            fmt_time(med[GN_PUB]),
            f"{paired_ratio(case, HP_PUB, LG):.2f}x",
            f"{paired_ratio(case, GN_PUB, LG):.2f}x",
            ", ".join(f"{statistics.median(case.faults[k]):.0f}" for k in (FJ, HP, GN))
            + "; "
            + ", ".join(f"{statistics.median(case.faults[k]):.0f}" for k in (LG, HP_PUB, GN_PUB)),
            str(len(case.samples[FJ])),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def machine_lines(args: argparse.Namespace) -> list[str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = [
        f"python {platform.python_version()}",
        f"numpy {np.__version__}",
        f"scipy {scipy.__version__}",
        f"scikit-learn {sklearn.__version__}" if sklearn is not None else "scikit-learn missing",
        f"nncore {nncore.__version__}",
    ]
    threads = "library default" if args.blas_threads == 0 else str(args.blas_threads)
    lines = [
        run_stamp(),
        f"- command: {args.command}",
        f"- CPU: {cpu} ({os.cpu_count()} logical CPUs); BLAS/OpenMP threads: {threads}",
        f"- {', '.join(versions)}",
    ]
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        if var in os.environ:
            lines.append(f"- {var}={os.environ[var]}")
    return lines


TABLE_NOTES = """\
- reached: starts whose objective fell to the target within the budgets / starts run.
- median time, iters, fwd, bwd, Hv: medians over the starts that reached the target, at
  the first iteration with J <= target (time from the call of `train`).  fwd = forward
  passes (objective values), bwd = backward passes (gradients; for least squares, residual
  Jacobians), Hv = Hessian- or Gauss-Newton-vector products (a full Hessian counts
  n_params), all as nncore's objective counts them.  lm reports no iterations (no
  callback); its crossing is the first evaluated point with J <= target.
- time per success: the time of every run (the failed ones to their end) / successes:
  the expected cost of one success when restarting from fresh starts.
- not reached: stopped = the optimiser stopped on its own tolerance above the target
  (a plateau or local minimum); budget = iteration/evaluation budget; time limit = the
  run limit; error = an exception (listed below).
- "work after the stop" (listed below): scipy did more evaluations after the callback
  stopped it; the table counts the work up to the crossing.  For dogleg it is one full
  Hessian (n_params products) that scipy's trust-region driver evaluates at the final
  point to return it as `result.hess`."""


def report(
    problems: list[Problem],
    cells: dict[str, list[Cell]],
    refs: dict[str, dict[str, list[RefRun]]],
    costs: list[CostCase],
    args: argparse.Namespace,
    header: list[str],
) -> str:
    out = ["## Methods: time and evaluations to a target objective", "", *header, ""]
    out.append(
        f"Budgets per run: maxiter {args.maxiter} (TNC maxfun {5 * args.maxiter}; "
        f"least_squares max_nfev {args.maxiter}), run limit {args.run_limit:g} s; "
        f"cell budget {args.cell_budget:g} s; starts theta0 = net.init(seed), seeds "
        f"0..{args.starts - 1}; scipy's default tolerances."
    )
    out.append("")
    failures: list[str] = []
    for p in problems:
        out += [f"### {p.title}", "", f"- data: {p.data_note}", f"- target: {p.target_note}"]
        for method, reason in p.skip.items():
            if method not in {c.variant.method for c in cells[p.key]}:
                out.append(f"- not run: {method} ({reason})")
        out += ["", *cell_table(cells[p.key]), "", *winners(cells[p.key]), ""]
        if refs.get(p.key):
            out += [
                f"Reference, no target stop (sklearn: {p.sk_note}; solver='lbfgs', alpha=0, "
                f"tol=0, max_iter={args.sk_max_iter}; its loss_ x {p.sk_scale:g} = nncore's J):",
                "",
                *reference_table(p, refs[p.key]),
                "",
            ]
        for c in cells[p.key]:
            errors = [r for r in c.runs if r.outcome == "error"]
            failures += [f"- {p.key}, {c.label}, start {r.start}: {r.detail}" for r in errors]
            odd = [r for r in c.runs if r.reached and r.detail]
            if len(odd) == 1:
                failures.append(f"- {p.key}, {c.label}, start {odd[0].start}: {odd[0].detail}")
            elif odd:
                starts = ", ".join(str(r.start) for r in odd)
                failures.append(
                    f"- {p.key}, {c.label}, starts {starts}: {odd[0].detail} "
                    f"(start {odd[0].start}; the others alike)"
                )
    out += [TABLE_NOTES, ""]
    out += ["Errors and anomalies:", "", *(failures or ["- none"]), ""]
    if costs:
        out += [
            "### Cost of one curvature-vector product",
            "",
            *cost_table(costs),
            "",
            "fun_and_jac (uncached): an `Objective` alternating between two thetas, so every "
            "call is a forward and a backward pass; hessp/gnvp (cached fwd): the same "
            "`Objective` kind with its forward pass at theta cached, as within one Newton-CG "
            "or trust-region iteration.  net.*: the public calls, which validate the data and "
            "run their own forward pass every time.  Times: median seconds per call over the "
            "repeats; ratios: median over the repeats of the ratio within each repeat.  "
            "Aim: one product <= 2.5x one loss and gradient.  Page faults: median minor page "
            "faults per call; where they are in the thousands the call maps fresh memory for "
            "its arrays each time (glibc returning freed memory to the OS), which can double "
            "its time and depends on what the process allocated before.",
            "",
        ]
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 2 starts, < 30 s")
    p.add_argument("--json", metavar="PATH", help="also write every run to PATH")
    p.add_argument("--starts", type=int, help="starting points (default 10; quick 2)")
    p.add_argument("--maxiter", type=int, help="iteration budget (default 2000; quick 200)")
    p.add_argument("--run-limit", type=float, help="seconds per run (default 5; quick 0.5)")
    p.add_argument("--cell-budget", type=float, help="seconds per cell (default 12; quick 1)")
    p.add_argument("--include-slow", action="store_true", help="run the skipped dense methods")
    p.add_argument("--no-cost", action="store_true", help="skip the hessp/gnvp cost part")
    p.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        metavar="N",
        help="BLAS/OpenMP threads via threadpoolctl (default 1; 0 = the libraries' own)",
    )
    args = p.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    args.command = " ".join(["python benchmarks/bench_methods.py", *given])
    quick = args.quick
    defaults = {"starts": (10, 2), "maxiter": (2000, 200), "run_limit": (5.0, 0.5)}
    defaults["cell_budget"] = (12.0, 1.0)
    for name, (full, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.sk_max_iter = args.maxiter // 2  # sklearn runs to max_iter: keep it affordable
    args.repeats, args.min_repeats = (3, 2) if quick else (15, 5)
    args.sample_ms = 5.0 if quick else 50.0
    args.cost_budget = 1.0 if quick else 10.0
    return args


def run_all(args: argparse.Namespace) -> str:
    t0 = time.perf_counter()
    header = machine_lines(args) + [f"- load average (1/5/15 min) before: {load_average()}"]
    if args.quick:
        problems = [xor_problem(), regression_problem(500)]
    else:
        problems = [xor_problem(), digits_problem(), regression_problem()]
    cells: dict[str, list[Cell]] = {}
    refs: dict[str, dict[str, list[RefRun]]] = {}
    for p in problems:
        starts = [p.net.init(seed) for seed in range(args.starts)]
        cells[p.key] = []
        for variant in variants(p, args.include_slow):
            print(f"[bench] {p.key}: {variant.label}", file=sys.stderr, flush=True)
            cells[p.key].append(run_cell(p, variant, starts, args))
        print(f"[bench] {p.key}: sklearn reference", file=sys.stderr, flush=True)
        refs[p.key] = reference_rows(p, starts, args)
    costs = [] if args.no_cost else cost_cases(args.quick, problems[-1])
    for case in costs:
        print(f"[bench] cost: {case.name}", file=sys.stderr, flush=True)
        bench_cost(case, args)
    header += [
        f"- load average after: {load_average()}",
        f"- wall time of this run: {time.perf_counter() - t0:.0f} s",
    ]
    text = report(problems, cells, refs, costs, args, header)
    if args.json:
        data = {
            "args": vars(args),
            "problems": {
                p.key: {
                    "target": p.target,
                    "cells": [
                        {"method": c.label, "options": dict(c.variant.extra)}
                        | {"runs": [asdict(r) for r in c.runs]}
                        for c in cells[p.key]
                    ],
                    "reference": {k: [asdict(r) for r in v] for k, v in refs[p.key].items()},
                }
                for p in problems
            },
            "cost_seconds_per_call": {c.name: c.samples for c in costs},
            "cost_minor_faults_per_call": {c.name: c.faults for c in costs},
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, default=float)
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.blas_threads and threadpool_limits is not None:
        with threadpool_limits(limits=args.blas_threads):
            text = run_all(args)
    else:
        text = run_all(args)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
