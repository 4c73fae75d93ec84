"""Benchmark ``nncore.train``'s scipy methods: time and evaluations to a target objective.

What is measured
----------------
Every method (the Hessian methods with both curvatures; lm with and without
``x_scale=1.0``, scipy >= 1.16's default being MINPACK's column scaling ``'jac'``) from the
same starts ``theta0 = net.init(seed)``, ``seed = 0..9``, on three problems (see
:func:`xor_problem`, :func:`digits_problem`, :func:`regression_problem`): XOR on the seed's
2-2-1 network to ``J <= 1/16``; digits on 64-64-10 relu/softmax to ``J <= 0.01``; a
regression on 8-16-1 tanh (N=2000) to ``J <= 1e-3``.

A run's wall time and evaluation counts are taken when the objective *first* drops to the
target: ``train``'s callback, called once per iteration with the objective and this start's
counts so far (``intermediate_result.nfev``, ``njev``, ``nhev``: nncore's forward passes,
backward passes and curvature-vector products, a full Hessian counting ``n_params``
products), notes the time and the counts, then stops the run by raising ``StopIteration``,
which ``train`` honours for every method with a callback.  ``lm`` (MINPACK) has none: its
crossing is the first *evaluated* point with ``J <= target``, found as the smallest
``max_nfev`` whose run ends there (:func:`run_lm`; a deterministic search, whose reruns are
not counted), and that run gives the time and counts.  The time starts just before
``train`` is called (so it includes ``train``'s data validation and the objective at
theta0).

Budgets: ``maxiter`` (TNC: ``maxfun``; least squares: ``max_nfev``), scipy's default
tolerances otherwise; a run is stopped once it has taken ``--run-limit`` seconds (lm: a run
that passed it is not lengthened), and a (problem, method) cell begins no new start once
its runs have taken ``--cell-budget`` seconds (the table says how many ran).  Methods too
slow for a problem, or that cannot run it, are skipped with the reason printed.

Outside reference, with no target stop: scikit-learn's ``MLPClassifier``/``MLPRegressor``
(``solver="lbfgs", alpha=0, tol=0``) on the same data, timed to its own convergence, from
its own initialisation (``random_state=seed``) and from nncore's theta0 (``warm_start``),
next to nncore's L-BFGS-B with the same stopping rule; its final loss is converted to
nncore's J (sklearn's squared loss is ``0.5 * mean``).  Its ``max_iter`` is half the
methods' ``maxiter``: sklearn always runs to it on the regression.

Second part: one Hessian- and one Gauss-Newton-vector product as a multiple of one loss and
gradient (:func:`harness.curvature_calls`, :func:`harness.curvature_table`) on the
regression and digits networks and on 784-256-128-10 with N=10000 synthetic rows.

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
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # when imported from elsewhere
# the harness puts this checkout's nncore first on the path: import it before nncore
import harness as h  # noqa: E402
from harness import fmt_time, md_table  # noqa: E402

import nncore  # noqa: E402
from nncore.seed import seed_net  # noqa: E402
from nncore.training import HESS_METHODS, HESSP_METHODS, LEAST_SQUARES_METHODS, METHODS  # noqa: E402

CURVATURE_METHODS = HESSP_METHODS + HESS_METHODS
"""Methods that take ``curvature="exact"`` or ``"gauss_newton"``; run with both."""

# -- problems ----------------------------------------------------------------------------------


@dataclass
class Problem:
    """A network, its data, the target objective and the model sklearn compares with."""

    key: str
    title: str
    net: nncore.MLP
    X: np.ndarray
    y: np.ndarray
    target: float
    target_note: str
    data_note: str
    sk_net: nncore.MLP  # sklearn's model in nncore (identity output for mse)
    sk_scale: float  # nncore J = sk_scale * sklearn's loss_
    sk_note: str
    skip: dict[str, str] = field(default_factory=dict)  # method -> why it is not run


def xor_problem() -> Problem:
    case = h.make_cases()[0]
    return Problem(
        "xor",
        "XOR, seed network 2-2-1 (tanh, sigmoid output, mse), 9 parameters",
        seed_net(),
        case.X,
        case.y,
        1.0 / 16.0,
        "J <= 1/16: every output on the right side of 0.5",
        "the seed's 4 XOR rows",
        nncore.MLP([2, 2, 1], activation="tanh", output="identity", loss="mse"),
        2.0,
        "MLPRegressor(hidden_layer_sizes=(2,), activation='tanh'): its output is the "
        "identity, not a sigmoid -- a different (easier, no saturating output) model; "
        "the nncore L-BFGS-B row uses that same identity-output model",
    )


def digits_problem() -> Problem:
    net = nncore.MLP([64, 64, 10], activation="relu", loss="cross_entropy")
    X, y, source = h.digits_data()
    n = net.n_params
    dense = (
        f"dense n x n work per iteration at n={n}: scipy's BFGS update is two n x n matrix "
        "products, O(n^3)"
    )
    mse_only = "least squares: needs loss 'mse'"
    return Problem(
        "digits",
        f"digits, 64-64-10 (relu, softmax, cross-entropy), {n} parameters",
        net,
        X,
        y,
        0.01,
        "J <= 0.01 mean cross-entropy on the training set",
        f"{source}, N={len(X)}",
        net,
        1.0,
        "MLPClassifier(hidden_layer_sizes=(64,), activation='relu'): the same model",
        skip={
            "BFGS": dense,
            "SLSQP": f"solves a dense QP in n={n} variables every iteration, O(n^3)",
            "trust-exact": f"full Hessian: n={n} curvature products + O(n^3) solves/iteration",
            "dogleg": f"full Hessian: n={n} curvature products + eigvalsh + Cholesky/iteration",
            **{method: mse_only for method in LEAST_SQUARES_METHODS},
        },
    )


def regression_problem(n_samples: int = 2000) -> Problem:
    rng = np.random.default_rng(2024)
    X = rng.uniform(-1.0, 1.0, (n_samples, 8))
    a, b = rng.standard_normal(8), rng.standard_normal(8)
    y = np.sin(X @ a) + 0.5 * np.cos(X @ b)
    net = nncore.MLP([8, 16, 1], activation="tanh", loss="mse")
    return Problem(
        "regression",
        f"regression, 8-16-1 (tanh, identity output, mse), {net.n_params} parameters",
        net,
        X,
        y,
        1e-3,
        f"J <= 1e-3 mean squared error; var(y) = {y.var():.3f}",
        f"X ~ U(-1,1)^({n_samples}x8), y = sin(X a) + 0.5 cos(X b), a, b ~ N(0, I), "
        "Generator seed 2024",
        net,
        2.0,
        "MLPRegressor(hidden_layer_sizes=(16,), activation='tanh'): the same model",
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


class Watch:
    """``train``'s callback: at the first iteration with ``J <= target`` it keeps the time
    and this start's counts as a reached :class:`Run` and stops the run; it also stops the
    run after ``time_limit`` seconds."""

    def __init__(self, start: int, target: float, time_limit: float) -> None:
        self.start, self.target, self.time_limit = start, target, time_limit
        self.t0 = time.perf_counter()
        self.iterations, self.last_fun = 0, float("nan")
        self.hit: Run | None = None
        self.timed_out = False

    def __call__(self, intermediate_result: Any) -> None:
        now, r = time.perf_counter(), intermediate_result
        self.iterations += 1
        self.last_fun = float(r.fun)
        if self.last_fun <= self.target:
            counts = (int(r.nfev), int(r.njev), int(r.nhev))
            seconds = now - self.t0
            self.hit = Run(self.start, "reached", seconds, self.last_fun, self.iterations, *counts)
            raise StopIteration
        if now - self.t0 > self.time_limit:
            self.timed_out = True
            raise StopIteration


def train_once(
    problem: Problem, variant: Variant, theta0: np.ndarray, options: dict, callback: Any = None
) -> tuple[Any, float]:
    """``train`` from ``theta0`` with ``options`` added to the variant's; its result and
    seconds (from the call, so with ``train``'s data validation and the start's objective)."""
    t0 = time.perf_counter()
    result = nncore.train(
        problem.net,
        problem.X,
        problem.y,
        method=variant.method,
        theta0=theta0,
        options=options | dict(variant.extra),
        callback=callback,
        curvature="exact" if variant.curvature == "-" else variant.curvature,
    )
    return result, time.perf_counter() - t0


def ended(start: int, result: Any, seconds: float, iterations: int | None, target: float) -> Run:
    """A run that ended on its own: reached (below the target at the end) or not, and why."""
    counts = (result.nfev, result.njev, result.nhev)
    if result.fun <= target:
        return Run(start, "reached", seconds, float(result.fun), iterations, *counts)
    message = str(getattr(result, "message", ""))
    outcome = "budget" if ("max" in message.lower() or "limit" in message.lower()) else "stopped"
    return Run(start, outcome, seconds, float(result.fun), iterations, *counts, message)


def run_one(
    problem: Problem, variant: Variant, start: int, theta0: np.ndarray, args: argparse.Namespace
) -> Run:
    """``train`` once from ``theta0``, stopped at the target (or a budget)."""
    if variant.method == "lm":
        return run_lm(problem, variant, start, theta0, args)
    watch = Watch(start, problem.target, args.run_limit)
    options = method_options(variant.method, args.maxiter)
    result, seconds = train_once(problem, variant, theta0, options, watch)
    if watch.hit is not None:
        run = watch.hit
        counts, at_crossing = (
            (result.nfev, result.njev, result.nhev),
            (run.nfev, run.njev, run.nhev),
        )
        if counts != at_crossing:  # scipy did more after the stop
            run.detail = f"work after the stop: result counts {counts}, {at_crossing} at it"
        return run
    if watch.timed_out:
        return Run(start, "time limit", seconds, watch.last_fun, watch.iterations)
    run = ended(start, result, seconds, len(result.history) - 1, problem.target)
    if run.reached:
        run.detail = "crossed after the last callback"
    return run


def run_lm(
    problem: Problem, variant: Variant, start: int, theta0: np.ndarray, args: argparse.Namespace
) -> Run:
    """lm's crossing, found from whole runs: the smallest ``max_nfev`` whose run ends at
    ``J <= target`` (doubled, then bisected).  MINPACK is deterministic, so a run cut at ``k``
    evaluations makes the first ``k`` of the uncut run and returns its last accepted point,
    and the first evaluated point at or below the target is accepted (a decrease, unless its
    actual/predicted reduction ratio is below 1e-4): the run cut there is the cost to it,
    with one Jacobian more, which scipy evaluates at the end point once MINPACK returns.  A
    crossing later than ``args.run_limit`` seconds is a time limit, as for the others."""
    lo, k = 0, 1
    while True:
        result, seconds = train_once(problem, variant, theta0, {"max_nfev": k})
        if result.fun <= problem.target:
            break
        if result.status != 0 or k == args.maxiter:  # ended on its own, or the whole budget
            return ended(start, result, seconds, None, problem.target)
        if seconds > args.run_limit:
            return Run(start, "time limit", seconds, float(result.fun))
        lo, k = k, min(2 * k, args.maxiter)
    hi, best = k, (result, seconds)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        result, seconds = train_once(problem, variant, theta0, {"max_nfev": mid})
        if result.fun <= problem.target:
            hi, best = mid, (result, seconds)
        else:
            lo = mid
    result, seconds = best
    if seconds > args.run_limit:
        return Run(start, "time limit", seconds, float(result.fun))
    return ended(start, result, seconds, None, problem.target)


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
    """Every start of ``variant``, none begun once the cell's runs have taken
    ``args.cell_budget`` seconds; an exception is reported as the run's outcome."""
    runs: list[Run] = []
    for k, theta0 in enumerate(starts):
        if runs and sum(r.seconds for r in runs) > args.cell_budget:
            break
        t0 = time.perf_counter()
        try:
            runs.append(run_one(problem, variant, k, theta0, args))
        except Exception as err:  # report, do not hide: this may be a bug in nncore
            detail = f"{type(err).__name__}: {err}"
            runs.append(Run(k, "error", time.perf_counter() - t0, float("nan"), detail=detail))
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


def sklearn_fit(problem: Problem, max_iter: int, start: int, theta0: np.ndarray | None) -> RefRun:
    """sklearn from its own init (``theta0=None``) or from nncore's ``theta0`` (warm start);
    its final loss in nncore's terms, and nncore's J at its final weights as a check."""
    params = {"tol": 0.0, "max_iter": max_iter, "random_state": start}
    X, y = problem.X, problem.y
    est, seconds, theta = h.sklearn_fit(problem.sk_net, X, y, theta0, **params)
    J = problem.sk_scale * float(est.loss_)
    return RefRun(start, seconds, int(est.n_iter_), J, problem.sk_net.loss(theta, X, y))


def nncore_same_rule(problem: Problem, max_iter: int, start: int, theta0: np.ndarray) -> RefRun:
    """nncore's L-BFGS-B on sklearn's model with sklearn's options (no target stop)."""
    options = {"maxiter": max_iter, "maxfun": 15000, "gtol": 0.0}  # sklearn's, tol=0
    t0 = time.perf_counter()
    res = nncore.train(
        problem.sk_net, problem.X, problem.y, method="L-BFGS-B", theta0=theta0, options=options
    )
    return RefRun(start, time.perf_counter() - t0, int(res.nit), float(res.fun))


def reference_rows(
    problem: Problem, starts: list[np.ndarray], args: argparse.Namespace
) -> dict[str, list[RefRun]]:
    if not h.HAVE_SKLEARN:  # pragma: no cover - depends on the environment
        return {}
    m = args.sk_max_iter
    return {
        "sklearn lbfgs, own init (random_state=seed)": [
            sklearn_fit(problem, m, k, None) for k in range(len(starts))
        ],
        "sklearn lbfgs, from nncore's theta0 (warm_start)": [
            sklearn_fit(problem, m, k, t) for k, t in enumerate(starts)
        ],
        "nncore L-BFGS-B, same model and stopping rule": [
            nncore_same_rule(problem, m, k, t) for k, t in enumerate(starts)
        ],
    }


# -- hessp / gnvp cost -------------------------------------------------------------------------


def cost_part(quick: bool, regression: Problem, args: argparse.Namespace) -> list[h.CurvatureCost]:
    """The regression network's :func:`harness.curvature_calls`, and (not quick) the digits
    and 784-256-128-10 networks', sampled in turn until the repeats or the case's time
    budget (after ``min_repeats``) are used up."""
    p = regression
    cases = [(f"8-16-1 regression, N={len(p.X)}", p.net, p.X, p.y)]
    if not quick:
        p = digits_problem()
        big = nncore.MLP([784, 256, 128, 10], activation="relu", loss="cross_entropy")
        cases.append(("64-64-10 digits, N=1797", p.net, p.X, p.y))
        cases.append(("784-256-128-10 synthetic, N=10000", big, *h.synthetic_data(10000, 784)))
    timing = {"sample_s": args.sample_ms / 1e3, "repeats": args.repeats}
    timing |= {"min_repeats": args.min_repeats, "budget_s": args.cost_budget}
    costs = []
    for case in cases:
        print(f"[bench] cost: {case[0]}", file=sys.stderr, flush=True)
        costs.append(h.curvature_cost(*case, seed=7, **timing))
    return costs


# -- report ------------------------------------------------------------------------------------


def fmt_num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def why_not(cell: Cell) -> str:
    """The unreached starts, grouped: ``2 stopped (f 0.125-0.167), 1 budget``."""
    parts = []
    for outcome in ("stopped", "budget", "time limit", "error"):
        runs = [r for r in cell.runs if r.outcome == outcome]
        if not runs:
            continue
        funs = [r.final_fun for r in runs if np.isfinite(r.final_fun)]
        spread = ""
        if funs:
            lo, hi = f"{min(funs):.3g}", f"{max(funs):.3g}"
            spread = f" (f {lo})" if lo == hi else f" (f {lo}-{hi})"
        parts.append(f"{len(runs)} {outcome}{spread}")
    if len(cell.runs) < cell.n_starts:
        parts.append(f"{cell.n_starts - len(cell.runs)} not run (cell budget)")
    return ", ".join(parts) or "-"


def cell_table(cells: list[Cell]) -> list[str]:
    head = ["method", "reached", "median time", "time per success", "median iters"]
    head += ["median fwd", "median bwd", "median Hv", "not reached: why"]
    rows = [
        [c.label, f"{len(c.reached)}/{len(c.runs)}", fmt_time(c.median("seconds"))]
        + [fmt_time(c.time_per_success())]
        + [fmt_num(c.median(k)) for k in ("iterations", "nfev", "njev", "nhev")]
        + [why_not(c)]
        for c in cells
    ]
    return md_table(head, rows)


def reference_table(problem: Problem, rows: dict[str, list[RefRun]]) -> list[str]:
    head = ["run (to convergence)", "final J <= target", "median time", "median iters"]
    head += ["median final J", "max abs(J check - J)"]
    out = []
    for name, runs in rows.items():
        ok = sum(r.final_fun <= problem.target for r in runs)
        checks = [abs(r.check_fun - r.final_fun) for r in runs if r.check_fun is not None]
        out.append(
            [name, f"{ok}/{len(runs)}", fmt_time(statistics.median(r.seconds for r in runs))]
            + [fmt_num(statistics.median(r.iterations for r in runs))]
            + [f"{statistics.median(r.final_fun for r in runs):.3g}"]
            + [f"{max(checks):.1e}" if checks else "-"]
        )
    return md_table(head, out)


def winners(cells: list[Cell]) -> list[str]:
    """The fastest cell among the reliable ones, and the lowest time per success."""
    ran = [c for c in cells if c.runs]
    if not any(c.reached for c in ran):
        return ["- no method reached the target"]
    floor = min(0.8, max(c.fraction() for c in ran))
    reliable = [c for c in ran if c.fraction() >= floor and c.reached]
    fastest = sorted(reliable, key=lambda c: c.median("seconds"))[:3]
    per_success = sorted((c for c in ran if c.reached), key=lambda c: c.time_per_success())[:3]
    return [
        f"- fastest median time among methods reaching the target from >= {floor:.0%} of "
        "starts: " + ", ".join(f"{c.label} {fmt_time(c.median('seconds'))}" for c in fastest),
        "- lowest time per success (all time spent / successes): "
        + ", ".join(f"{c.label} {fmt_time(c.time_per_success())}" for c in per_success),
    ]


TABLE_NOTES = """\
- reached: starts whose objective fell to the target within the budgets / starts run.
- median time, iters, fwd, bwd, Hv: medians over the starts that reached the target, at
  the first iteration with J <= target (time from the call of `train`).  fwd = forward
  passes (objective values), bwd = backward passes (gradients; for least squares, residual
  Jacobians), Hv = Hessian- or Gauss-Newton-vector products (a full Hessian counts
  n_params), all as nncore's objective counts them.  lm reports no iterations (no
  callback); its crossing is the first evaluated point with J <= target, found by
  rerunning it with fewer evaluations allowed (the search's reruns are not counted); its
  bwd include the Jacobian scipy evaluates at the end point once MINPACK returns.
- time per success: the time of every run (the failed ones to their end) / successes:
  the expected cost of one success when restarting from fresh starts.
- not reached: stopped = the optimiser stopped on its own tolerance above the target
  (a plateau or local minimum); budget = iteration/evaluation budget; time limit = the
  run limit; error = an exception (listed below).
- "work after the stop" (listed below): scipy did more evaluations after the callback
  stopped it; the table counts the work up to the crossing.  For dogleg it is one full
  Hessian (n_params products) that scipy's trust-region driver evaluates at the final
  point to return it as `result.hess`."""


def anomalies(key: str, cells: list[Cell]) -> list[str]:
    """The errors, and the reached runs with a remark (several alike in one line)."""
    out = []
    for c in cells:
        out += [
            f"- {key}, {c.label}, start {r.start}: {r.detail}"
            for r in c.runs
            if r.outcome == "error"
        ]
        odd = [r for r in c.runs if r.reached and r.detail]
        if len(odd) == 1:
            out.append(f"- {key}, {c.label}, start {odd[0].start}: {odd[0].detail}")
        elif odd:
            starts = ", ".join(str(r.start) for r in odd)
            out.append(
                f"- {key}, {c.label}, starts {starts}: {odd[0].detail} "
                f"(start {odd[0].start}; the others alike)"
            )
    return out


def report(problems, cells, refs, costs, args: argparse.Namespace, header: list[str]) -> str:
    out = ["## Methods: time and evaluations to a target objective", "", *header, ""]
    out += [
        f"Budgets per run: maxiter {args.maxiter} (TNC maxfun {5 * args.maxiter}; "
        f"least_squares max_nfev {args.maxiter}), run limit {args.run_limit:g} s; "
        f"cell budget {args.cell_budget:g} s; starts theta0 = net.init(seed), seeds "
        f"0..{args.starts - 1}; scipy's default tolerances.",
        "",
    ]
    failures: list[str] = []
    for p in problems:
        out += [f"### {p.title}", "", f"- data: {p.data_note}", f"- target: {p.target_note}"]
        ran = {c.variant.method for c in cells[p.key]}
        out += [f"- not run: {m} ({why})" for m, why in p.skip.items() if m not in ran]
        out += ["", *cell_table(cells[p.key]), "", *winners(cells[p.key]), ""]
        if refs.get(p.key):
            out += [
                f"Reference, no target stop (sklearn: {p.sk_note}; solver='lbfgs', alpha=0, "
                f"tol=0, max_iter={args.sk_max_iter}; its loss_ x {p.sk_scale:g} = nncore's J):",
                "",
                *reference_table(p, refs[p.key]),
                "",
            ]
        failures += anomalies(p.key, cells[p.key])
    out += [TABLE_NOTES, "", "Errors and anomalies:", "", *(failures or ["- none"]), ""]
    if costs:
        out += ["### Cost of one curvature-vector product", "", *h.curvature_table(costs), ""]
        out += [h.CURVATURE_NOTES, ""]
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
    defaults = {"starts": (10, 2), "maxiter": (2000, 200), "run_limit": (5.0, 0.5)}
    defaults["cell_budget"] = (12.0, 1.0)
    for name, (full, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if args.quick else full)
    args.sk_max_iter = args.maxiter // 2  # sklearn runs to max_iter: keep it affordable
    args.repeats, args.min_repeats = (3, 2) if args.quick else (15, 5)
    args.sample_ms = 5.0 if args.quick else 50.0
    args.cost_budget = 1.0 if args.quick else 10.0
    return args


def run_all(args: argparse.Namespace) -> str:
    t0 = time.perf_counter()
    threads = "library default" if args.blas_threads == 0 else str(args.blas_threads)
    header = h.machine_lines()
    header[1:1] = [f"- command: {args.command}", f"- BLAS/OpenMP threads: {threads}"]
    header.append(f"- load average (1/5/15 min) before: {h.load_average()}")
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
    costs = [] if args.no_cost else cost_part(args.quick, problems[-1], args)
    header += [
        f"- load average after: {h.load_average()}",
        f"- wall time of this run: {time.perf_counter() - t0:.0f} s",
    ]
    if args.json:
        problems_json = {
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
        }
        data = {"args": vars(args), "problems": problems_json}
        data["cost_seconds_per_call"] = {c.name: c.samples for c in costs}
        data["cost_minor_faults_per_call"] = {c.name: c.faults for c in costs}
        h.write_json(args.json, data)
    return report(problems, cells, refs, costs, args, header)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with h.blas_threads(args.blas_threads):
        text = run_all(args)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
