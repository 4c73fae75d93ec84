"""The Taylor oracle: the remainder ``|f(x + h v) - f(x) - h g.v|`` must shrink at rate 2.

Owns the Taylor test of the gradient along a seeded direction, whether it resolves the
gradient (replayed for a gradient of zeros), and the pieces every Taylor test of the checker
shares: the round-off of a remainder, the report's ``taylor`` dict and its sentence.  The
test itself (steps, rate, verdict) is :func:`nncore.verify._schemes.taylor`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._finding import Context, Finding, Problem
from ._schemes import EPS, EVAL_ROUNDING, Taylor, taylor, unit_direction


def check_taylor(p: Problem, context: Context) -> Finding:
    """The Taylor test of the gradient along a seeded unit direction ``v``.

    It resolves the gradient only if it would have failed a gradient of zeros, whose
    remainder ``|f(x + h v) - f(x)|`` is known already: where ``|f|`` is large, only steps
    whose ``h^2`` term dominates clear round-off, and there any ``g.v`` passes.
    """
    f, x, f0, crosses, f_scale = p.f, p.x, p.f0, context.crosses_kink, context.f_scale
    v = unit_direction(p.rng, p.n)
    gv = float(p.g @ v)
    h0 = first_step(x)

    f_at: dict[float, float] = {}  # f(x + h v), kept for the zero-gradient replay below
    kinked: dict[float, bool] = {}

    def remainder(h: float) -> tuple[float, float]:
        fh = f_at[h] = f(x + h * v)
        return abs(fh - f0 - h * gv), round_off(fh, f0, f_scale) + EPS * abs(h * gv)

    def unusable(h: float) -> bool:
        if h not in kinked:
            kinked[h] = crosses is not None and bool(crosses(x, v, h))
        return kinked[h]

    t = taylor(remainder, h0, 2, unusable=unusable)
    t0 = taylor(
        lambda h: (abs(f_at[h] - f0), round_off(f_at[h], f0, f_scale)), h0, 2, unusable=unusable
    )
    return Finding(
        passed=t.passed,
        resolved=t0.verdict == "failed",
        fields={"taylor": taylor_dict(t)},
        reasons=[
            taylor_reason(
                "Taylor test of the gradient (one random direction v: sees only the error's "
                "component g.v, so it can pass where a coordinate is wrong)",
                t,
            )
        ],
    )


def first_step(x: np.ndarray) -> float:
    """``h0 = 0.1 max(1, ||x||_inf)``: the largest step of a Taylor test at ``x``."""
    return 0.1 * max(1.0, float(np.abs(x).max()))


def round_off(fh: float, f0: float, f_scale: float) -> float:
    """Round-off of ``f(x + h v) - f(x)`` in a Taylor remainder: each value's rounding
    follows the larger of ``|f|`` and the size of the terms it sums (``f_scale``), as for the
    differences."""
    return EVAL_ROUNDING * (max(abs(fh), f_scale) + max(abs(f0), f_scale))


def taylor_dict(t: Taylor) -> dict[str, Any]:
    """The report's dict of a Taylor test: steps, remainders, round-off, rate, verdict."""
    return {
        "h": t.h,
        "remainder": t.remainder,
        "noise": t.noise,
        "expected_rate": t.expected_rate,
        "rate": t.rate,
        "used": t.used,
        "verdict": t.verdict,
    }


def taylor_reason(what: str, t: Taylor) -> str:
    """The sentence of a Taylor test for the reasons: rate, steps used, verdict."""
    if t.rate is None:
        return f"{what}: inconclusive (the remainder never rises clear of round-off)"

    lo, hi = t.used
    return (
        f"{what}: rate {t.rate:.2f} (expected {t.expected_rate}) over h = "
        f"{t.h[hi - 1]:.1e}..{t.h[lo]:.1e}: {t.verdict}"
    )
