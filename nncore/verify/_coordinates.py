"""The coordinates oracle: a central difference per coordinate, each against its error bar.

Owns the per-coordinate comparison of coordinates mode and its report fields: the relative
error over the coordinates away from kinks (``fd_rel_error``), the block table, the worst
coordinates, the coordinates whose step crosses a kink (``kink_params``) and those whose
difference cannot tell their derivative from 0 (``unresolved``).
"""

from __future__ import annotations

import numpy as np

from ._finding import Context, Finding, Problem
from ._parallel import bound_evaluate
from ._report import BlockError, Coordinate
from ._schemes import FD_RTOL, FD_SAFETY, coordinates, tolerance

N_WORST = 10
"""Coordinates listed in ``report.worst``."""


def check_coordinates(p: Problem, context: Context) -> Finding:
    """Compare ``g_i`` with ``D_i(h_i)`` for every coordinate (``2 n`` evaluations plus 2
    for each coordinate the first difference does not settle in the fast profile, ``4 n`` in
    the thorough one: :func:`~nncore.verify._schemes.coordinates`).

    A coordinate passes when ``|g_i - D_i| <= FD_RTOL |D_i| + FD_SAFETY e_i``; one whose
    stencil crosses a kink (``context.crosses_kink``) is left to the other oracles.  The
    finding resolves the gradient when some difference tells its derivative from 0.
    """
    x, g, n, name_of = p.x, p.g, p.n, p.name_of
    evaluate = bound_evaluate(p, p.evaluate)
    c = coordinates(evaluate, x, p.f0, g, context.crosses_kink, context.f_scale, p.profile)
    smooth = ~c.at_kink
    kink_params = [name_of(i) for i in np.flatnonzero(c.at_kink)]
    if smooth.any():
        denom = np.linalg.norm(c.fd[smooth])
        diff = np.linalg.norm((g - c.fd)[smooth])
        fd_rel = float(diff / denom) if denom > 0 else float(diff)
    else:
        fd_rel = 0.0
    rel = c.rel_error(g)
    block_rows = []
    for bname, sl in p.blocks:
        idx = np.arange(n)[sl]
        keep = idx[smooth[idx]]
        fd_b, g_b = c.fd[keep], g[keep]
        norm = np.linalg.norm(fd_b)
        block_rows.append(
            BlockError(
                name=bname,
                size=idx.size,
                rel_error=float(np.linalg.norm(g_b - fd_b) / norm)
                if norm > 0
                else float(np.linalg.norm(g_b)),
                ratio=float(g_b @ fd_b / norm**2) if norm > 0 else float("nan"),
                n_bad=int((~c.ok[idx]).sum()),
                passed=bool(c.ok[idx].all()),
            )
        )
    block_rows.sort(key=lambda b: (b.passed, -b.n_bad, -b.rel_error))
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero tolerance: inf, the worst
        excess = np.abs(g - c.fd) / tolerance(c.fd, c.error)
    excess = np.where(smooth, np.nan_to_num(excess, nan=np.inf), 0.0)
    order = np.lexsort((-excess, c.ok))  # failing first, then by |g - fd| / tolerance
    worst = [
        Coordinate(
            name_of(int(i)),
            int(i),
            float(g[i]),
            float(c.fd[i]),
            float(c.error[i]),
            float(rel[i]),
            bool(c.ok[i]),
            float(excess[i]),
        )
        for i in order[:N_WORST]
    ]
    n_bad = int((~c.ok).sum())
    ok = n_bad == 0
    unresolved = [name_of(int(i)) for i in np.flatnonzero(smooth & ~c.resolved)]
    n_extra = int(c.extra.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_tol = tolerance(c.fd, c.error) / np.abs(c.fd)
    res = float(np.median(rel_tol[c.resolved])) if c.resolved.any() else float("inf")
    scheme = (
        f"fast profile: one central difference each, step doubling for {n_extra} of {n}"
        if p.profile == "fast"
        else "thorough profile: step doubling for each"
    )
    reasons = [
        f"central differences, every coordinate ({scheme}): {'agree' if ok else 'DISAGREE'} "
        f"({n_bad} of {n} outside |g - fd| <= {FD_RTOL:.0e} |fd| + {FD_SAFETY:g} x error bar; "
        f"relative error {fd_rel:.1e})"
        + (f"; {len(unresolved)} of {n} unresolved" if unresolved else "")
        + f"; resolution: an entry off by more than {res:.0e} of itself is reported (median "
        "over the resolved entries)"
    ]
    nondiff = [name_of(int(i)) for i in np.flatnonzero(c.nondiff)]
    if nondiff:
        reasons.append(
            f"f is not differentiable at x along {len(nondiff)} coordinate(s) "
            f"({', '.join(nondiff[:5])}{', ...' if len(nondiff) > 5 else ''}): a kink (the "
            "slope jumps between the one-sided differences, each side linear), and the gradient "
            "lies between the one-sided derivatives; judged apart, unresolved (a Taylor test "
            "through such a point reads rate 1)"
        )
    elif kink_params:
        reasons.append(
            f"{len(kink_params)} coordinate(s) move a relu-like pre-activation across 0 "
            "within the difference step: judged by the other oracles only"
        )
    return Finding(
        passed=ok,
        resolved=bool(c.resolved.any()),
        fields={
            "fd_rel_error": fd_rel,
            "blocks": block_rows,
            "worst": worst,
            "kink_params": kink_params,
            "unresolved": unresolved,
            "n_extra": n_extra,
            "nondifferentiable": nondiff,
            "resolution": res,
        },
        reasons=reasons,
        coarse=[f"{name} (not differentiable at x)" for name in nondiff],
    )
