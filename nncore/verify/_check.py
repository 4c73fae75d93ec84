"""The check: run the oracles that apply, in a fixed order, and compose their findings.

Owns the function form's signature (:func:`_check_function`), the order in which the oracles
draw from the random generator, scipy's ``check_grad`` (reported for comparison, never
binding), and the verdict: ``failed`` when a finding failed, ``passed`` when some finding
resolved the gradient, ``inconclusive`` otherwise.  The
:class:`~nncore.verify.GradientReport` is built from the findings only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import check_grad as scipy_check_grad

from ._coordinates import check_coordinates
from ._directions import check_directions
from ._finding import Context, Finding, Problem
from ._hessp import check_hessp
from ._jax import check_jax_gradient
from ._parallel import workers_of
from ._problem import N_DIRECTIONS, make_problem
from ._report import GradientReport
from ._taylor import check_taylor

INCONCLUSIVE = (
    "INCONCLUSIVE: no oracle resolved the gradient. Every difference lies within its "
    "tolerance of 0 (or crosses a kink), and the Taylor test would pass a gradient of "
    "zeros as well"
)
"""The reason added when no finding resolved the gradient."""


def _check_function(
    fun: Callable[..., float],
    grad: Callable[..., np.ndarray],
    x0: Any,
    args: tuple = (),
    *,
    names: Sequence[str] | Callable[[int], str] | None = None,
    blocks: Sequence[tuple[str, slice]] | None = None,
    hessp: Callable[..., np.ndarray] | None = None,
    rng: int | np.random.Generator | None = None,
    mode: str = "auto",
    n_directions: int = N_DIRECTIONS,
    profile: str = "fast",
    workers: Any = 1,
) -> GradientReport:
    """The function form of :func:`~nncore.verify.check_gradient`: nothing known beyond
    ``fun`` and ``grad``."""
    problem = make_problem(
        fun, grad, x0, args, names, blocks, rng, mode, n_directions, profile, workers
    )
    return run_checks(problem, Context(), hessp)


def run_checks(p: Problem, context: Context, hessp: Callable | None = None) -> GradientReport:
    """Run the oracles that apply to ``p`` and compose their findings into the report.

    In order (each draws its directions from ``p.rng`` in turn): the coordinates or the
    directions oracle (``p.mode``; the coordinates evaluated through ``p.workers``), the
    Taylor test, scipy's ``check_grad``, the JAX gradient (when ``context.jax_grad`` is
    given), the Hessian-vector checks (when ``hessp`` is given).  In the fast profile the
    Taylor test runs only where the coordinates leave something to see (a coordinate failed,
    unresolved or at a kink: :func:`settled`), and scipy's ``check_grad`` (``n + 1``
    evaluations, never binding) not at all.
    """
    if p.mode == "coordinates":
        with workers_of(p) as p.evaluate:
            first = check_coordinates(p, context)
        p.evaluate = None
    else:
        first = check_directions(p, context)
    findings = [first]
    if p.profile == "thorough" or p.mode == "directions" or not settled(first):
        taylor = check_taylor(p, context)
        if first.fields.get("nondifferentiable") and not taylor.passed:
            taylor.passed = True  # through a kink, rate 1 is what a right gradient gives
            taylor.reasons[-1] += " (not binding: f is not differentiable at x)"
        findings.append(taylor)
    else:
        findings.append(taylor_skipped())
    if p.profile == "thorough":  # n + 1 evaluations, for comparison only
        findings.append(check_scipy(p))
    if context.jax_grad is not None:
        findings.append(check_jax_gradient(p, context))
    if hessp is not None:
        findings.append(check_hessp(p, context, hessp))
    return compose(p, findings, context.notes)


def taylor_skipped() -> Finding:
    """The Taylor test's finding where the fast profile leaves it out."""
    return Finding(
        fields={"taylor": {"verdict": "not run", "rate": None}},
        reasons=[
            "Taylor test of the gradient: not run (fast profile: every coordinate resolved "
            "and agrees; profile='thorough' runs it)"
        ],
    )


def settled(finding: Finding) -> bool:
    """Whether the coordinates oracle's finding settled everything a Taylor test could add:
    every coordinate agrees, is resolved and away from kinks."""
    fields = finding.fields
    return (
        finding.passed
        and finding.resolved
        and not fields["unresolved"]
        and not fields["kink_params"]
    )


def check_scipy(p: Problem) -> Finding:
    """``scipy.optimize.check_grad`` as is, for comparison: it neither fails nor resolves."""
    direction = "all" if p.mode == "coordinates" else "random"
    f, gr = p.f, p.gr
    cg = float(
        scipy_check_grad(lambda z: f(z), lambda z: gr(z), p.x, direction=direction, seed=p.rng)
    )
    return Finding(
        fields={"check_grad": cg},
        reasons=[f"scipy.optimize.check_grad ({direction}): {cg:.1e} (absolute; for comparison)"],
    )


def compose(p: Problem, findings: list[Finding], notes: Sequence[str] = ()) -> GradientReport:
    """The report of ``findings``: their fields, their reasons in order, the verdict, and
    ``notes`` at the end."""
    passed = all(finding.passed for finding in findings)
    resolved = any(finding.resolved for finding in findings)
    complete = any(finding.complete for finding in findings)
    coarse = [] if complete else [name for finding in findings for name in finding.coarse]
    verdict = "failed" if not passed else "passed" if resolved and not coarse else "inconclusive"
    reasons = [reason for finding in findings for reason in finding.reasons]
    if verdict == "inconclusive":
        reasons.append(
            INCONCLUSIVE
            if not (resolved and coarse)
            else "INCONCLUSIVE: not resolved (see above): " + ", ".join(coarse)
        )
    reasons += notes
    fields = _unfilled()
    for finding in findings:
        fields.update(finding.fields)
    return GradientReport(
        passed=verdict == "passed",
        verdict=verdict,
        reasons=reasons,
        n=p.n,
        mode=p.mode,
        nfev=p.f.calls,
        ngev=p.gr.calls,
        profile=p.profile,
        **fields,
    )


def _unfilled() -> dict[str, Any]:
    """The report's fields as they are where no oracle that fills them ran (new lists)."""
    return {
        "fd_rel_error": None,
        "blocks": [],
        "worst": [],
        "located": None,
        "directions": None,
        "jax_rel_error": None,
        "hessp": None,
        "kink_params": [],
        "unresolved": [],
        "nhev": 0,
        "taylor": {"verdict": "not run", "rate": None},
        "check_grad": None,
        "n_extra": 0,
        "resolution": None,
        "nondifferentiable": [],
    }
