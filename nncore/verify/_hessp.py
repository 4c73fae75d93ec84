"""The Hessian-vector oracle: ``Hv`` against differences of the gradient, symmetry, a Taylor
rate of 3, and (networks) JAX's product.

Owns ``report.hessp`` and ``report.nhev``: the entries of ``Hv`` outside their tolerance,
named, the worst first; the asymmetry ``|u.Hv - v.Hu|``; the Taylor test of order 3.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._finding import Context, Finding, Problem
from ._jax import ROUNDING_ATOL, check_jax_hessp
from ._problem import real_vector
from ._schemes import EPS, EVAL_ROUNDING, Counter, step_for, taylor, tolerance, unit_direction
from ._taylor import first_step, round_off, taylor_dict, taylor_reason

KINK_REDRAWS = 5
"""Directions drawn for the Hessian's difference check before giving up at relu kinks."""
SYMMETRY_RTOL = 1e-10
"""``|u.Hv - v.Hu|`` allowed relative to ``|u|.|Hv| + |v|.|Hu|``: both sides are exact up to
the rounding of the products."""
N_BAD_ENTRIES = 10
"""Entries of ``Hv`` outside their tolerance listed in ``report.hessp["bad_entries"]``."""


def check_hessp(p: Problem, context: Context, hessp: Callable) -> Finding:
    """Check ``hessp(x, v, *args)`` at ``p.x``; never resolves the gradient by itself.

    Central differences of the gradient along a random ``v``, entry by entry, with the
    error bar of :func:`nncore.verify._schemes.central` (step doubling plus rounding, the
    rounding following ``context.g_scale`` where known); directions whose stencil crosses a
    kink of the gradient (``context.crosses_kink2``) are redrawn.  Then symmetry, a Taylor
    test of order 3, and ``context.jax_hessp`` when it binds.
    """
    if not callable(hessp):
        raise TypeError(f"hessp must be a callable, got {type(hessp).__name__}")
    f, gr, x, f0, g, rng, n = p.f, p.gr, p.x, p.f0, p.g, p.rng, p.n
    crosses, f_scale = context.crosses_kink2, context.f_scale
    hp = Counter(lambda z, w: real_vector(hessp(z, w, *p.args), n, "hessp"))
    lines = []
    ok_all = True
    # central differences of the gradient along v, with the same error bar as for f (the
    # rounding floor following the size of the terms of each component, ``g_scale``, where
    # known: _gradient_scale); the gradient jumps at a relu kink, so directions whose stencil
    # crosses one are redrawn
    h = step_for(x)
    for _ in range(KINK_REDRAWS):
        v = unit_direction(rng, n)
        if crosses is None or not crosses(x, v, 2.0 * h):
            break
    Hv = hp(x, v)
    if crosses is not None and crosses(x, v, 2.0 * h):
        fd_rel, bad_entries = None, []
        lines.append(
            "Hessian-vector product vs central differences of the gradient: skipped "
            f"(all {KINK_REDRAWS} directions cross a relu kink within the step)"
        )
    else:
        diffs, biggest = [], 0.0
        for step in (h, 2.0 * h):
            gp, gm = gr(x + step * v), gr(x - step * v)
            diffs.append((gp - gm) / (2.0 * step))
            biggest = max(biggest, float(np.abs(gp).max()), float(np.abs(gm).max()))
        size = biggest if context.g_scale is None else np.maximum(biggest, context.g_scale)
        err = np.abs(diffs[0] - diffs[1]) / 3.0 + EVAL_ROUNDING * size / h
        miss, tol = np.abs(Hv - diffs[0]), tolerance(diffs[0], err)
        bad = np.flatnonzero(~(miss <= tol))  # NaN counts as outside
        with np.errstate(over="ignore", invalid="ignore"):  # a zero tolerance: inf, the worst
            excess = miss[bad] / np.maximum(tol[bad], np.finfo(float).tiny)
        excess = np.nan_to_num(excess, nan=np.inf)
        bad = bad[np.argsort(-excess, kind="stable")]  # the worst first
        fd_ok = bad.size == 0
        norm = np.linalg.norm(diffs[0])
        fd_rel = (
            float(np.linalg.norm(Hv - diffs[0]) / norm) if norm > 0 else float(np.linalg.norm(Hv))
        )
        ok_all &= fd_ok
        bad_entries = [
            {
                "name": p.name_of(int(i)),
                "index": int(i),
                "Hv": float(Hv[i]),
                "fd": float(diffs[0][i]),
            }
            for i in bad[:N_BAD_ENTRIES]
        ]
        lines.append(
            f"Hessian-vector product vs central differences of the gradient: "
            f"{'agree' if fd_ok else 'DISAGREE'} (relative error {fd_rel:.1e}"
            + (
                f"; {bad.size} of {n} entries outside, worst "
                + ", ".join(
                    f"{e['name']} (Hv {e['Hv']:.6g}, fd {e['fd']:.6g})" for e in bad_entries[:3]
                )
                if bad.size
                else ""
            )
            + ")"
        )
    # symmetry u.Hv = v.Hu
    u = unit_direction(rng, n)
    Hu = hp(x, u)
    asym = abs(u @ Hv - v @ Hu)
    scale = np.abs(u) @ np.abs(Hv) + np.abs(v) @ np.abs(Hu)
    sym_ok = bool(asym <= SYMMETRY_RTOL * scale + ROUNDING_ATOL * max(1.0, abs(f0)))
    ok_all &= sym_ok
    lines.append(
        f"symmetry |u.Hv - v.Hu| = {asym:.1e} (scale {scale:.1e}): "
        f"{'ok' if sym_ok else 'ASYMMETRIC'}"
    )
    # Taylor test of order 3
    gv, vHv = float(g @ v), float(v @ Hv)
    h0 = first_step(x)

    def remainder(hh: float) -> tuple[float, float]:
        fh = f(x + hh * v)
        r = abs(fh - f0 - hh * gv - 0.5 * hh * hh * vHv)
        return r, round_off(fh, f0, f_scale) + EPS * (abs(hh * gv) + abs(hh * hh * vHv))

    unusable = (lambda hh: crosses(x, v, hh)) if crosses is not None else None
    t = taylor(remainder, h0, 3, unusable=unusable)
    ok_all &= t.passed
    lines.append(taylor_reason("Taylor test of the Hessian", t))
    info = {
        "fd_rel_error": fd_rel,
        "bad_entries": bad_entries,
        "asymmetry": float(asym),
        "taylor": taylor_dict(t),
    }
    if context.jax_hessp is not None and context.jax_binding:
        jax = check_jax_hessp(context, x, v, Hv, f0)
        ok_all &= jax.passed
        info.update(jax.fields)
        lines += jax.reasons
    return Finding(passed=bool(ok_all), fields={"hessp": info, "nhev": hp.calls}, reasons=lines)
