"""The directions oracle: seeded random directions, one per block, then a bisection.

Owns directions mode: ``k`` unit directions uniform on the sphere, each ``g.u`` against the
central difference along ``u``; one direction supported on each block (the block table);
and, when something fails, the halving that finds a bad coordinate in ``O(log n)`` checks
(``report.located``).  Every comparison costs ``4`` evaluations, whatever ``n``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._finding import Context, Finding, Problem
from ._report import BlockError
from ._schemes import FD_RTOL, FD_SAFETY, direction_check, tolerance, unit_direction

RESOLUTION_TARGET = 1e-2
"""The single-entry error a passing check must be able to see: 1% of an entry of typical
size (the rms of the gradient over the block).  A direction ``u`` shows an error ``d`` in
entry ``i`` as ``d u_i``, about ``d / sqrt(m)`` on a block of ``m`` entries, so a block's
resolution is ``sqrt(m) tol_u / rms(g_B)``; above the target, a passing directions check
leaves the block unresolved and the verdict inconclusive (unless an oracle that sees every
entry, JAX, binds)."""


def resolution(check: Any, g_block: np.ndarray) -> float:
    """``sqrt(m) tol_u / rms(g_B)``: the error relative to a typical entry of the block that
    a direction's tolerance ``tol_u`` lets through in one entry (inf where ``g_B = 0`` or
    the direction crosses a kink)."""
    rms = float(np.sqrt(np.mean(g_block * g_block)))
    if check.at_kink or rms == 0.0:
        return float("inf")
    return float(np.sqrt(g_block.size) * tolerance(check.fd, check.error) / rms)


def check_directions(p: Problem, context: Context) -> Finding:
    """Compare ``g.u`` with ``D_u(h)`` along ``p.n_directions`` random directions and one
    direction per block; bisect the worst failing block when anything fails.

    The finding resolves the gradient when some difference tells ``g.u`` from 0.
    """
    f, x, f0, g, n, rng = p.f, p.x, p.f0, p.g, p.n, p.rng
    crosses, scale = context.crosses_kink, context.f_scale
    checks = []
    for _ in range(p.n_directions):
        u = unit_direction(rng, n)
        checks.append(direction_check(f, x, f0, g, u, crosses, scale))
    bad = [ch for ch in checks if not ch.ok]
    usable = [ch for ch in checks if not ch.at_kink]
    dir_info = {
        "k": len(checks),
        "failed": len(bad),
        "at_kink": len(checks) - len(usable),
        "unresolved": sum(not ch.resolved for ch in usable),
        "worst_rel_error": max((ch.rel_error for ch in usable), default=0.0),
    }
    resolved = any(ch.resolved for ch in checks)
    # localise: a direction per block, then bisect the worst bad block
    block_rows, block_checks = [], []
    for bname, sl in p.blocks:
        idx = np.arange(n)[sl]
        ch = direction_check(f, x, f0, g, unit_direction(rng, n, idx), crosses, scale)
        block_checks.append(ch)
        resolved |= ch.resolved
        block_rows.append(
            BlockError(bname, idx.size, ch.rel_error, ch.ratio, int(not ch.ok), ch.ok)
        )
    block_rows.sort(key=lambda b: (b.passed, -b.rel_error))
    ok = not bad and all(b.passed for b in block_rows)
    located = None if ok else _bisect(p, context, block_rows)
    skipped = dir_info["at_kink"]
    if not usable:
        verdict = f"none checked: all {skipped} cross a relu kink within the step and are skipped"
    else:
        verdict = (
            f"{'agree' if not bad else 'DISAGREE'} ({len(bad)} outside |g.u - fd| <= "
            f"{FD_RTOL:.0e} |fd| + {FD_SAFETY:g} x error bar; worst relative error "
            f"{dir_info['worst_rel_error']:.1e}"
            + (f"; {dir_info['unresolved']} unresolved" if dir_info["unresolved"] else "")
            + (f"; {skipped} skipped: they cross a relu kink within the step" if skipped else "")
            + ")"
        )
    unchecked = [name for name, ch in zip((b for b, _ in p.blocks), block_checks) if ch.at_kink]
    block_resolution = {
        name: resolution(ch, g[np.arange(n)[sl]])
        for (name, sl), ch in zip(p.blocks, block_checks)
        if not ch.at_kink
    }
    usable_res = [resolution(ch, g) for ch in usable]
    dir_info["resolution"] = float(np.median(usable_res)) if usable_res else float("inf")
    dir_info["block_resolution"] = block_resolution
    coarse = [name for name, r in block_resolution.items() if not r <= RESOLUTION_TARGET]
    reasons = [
        f"{len(checks)} random directions: {verdict}; "
        f"{sum(not b.passed for b in block_rows)} of {len(block_rows)} blocks fail"
        + (
            f"; unchecked (their direction crosses a relu kink): {', '.join(unchecked)}"
            if unchecked
            else ""
        ),
        f"resolution: a direction sees an error d in one entry only as d u_i, about "
        f"d / sqrt({n}), so an entry of typical size off by less than "
        f"{dir_info['resolution']:.1e} of it passes here (target {RESOLUTION_TARGET:.0e}"
        + (f"; coarser in {', '.join(coarse)}" if coarse else "")
        + "; mode='coordinates' checks each entry)",
    ]
    return Finding(
        passed=ok,
        resolved=resolved,
        fields={
            "blocks": block_rows,
            "located": located,
            "directions": dir_info,
            "resolution": dir_info["resolution"],
            "unresolved": [f"block {name}" for name in unchecked]
            + [f"block {name} (single entries to {block_resolution[name]:.0e})" for name in coarse],
        },
        reasons=reasons,
        coarse=coarse + unchecked,
    )


def _bisect(p: Problem, context: Context, block_rows: list[BlockError]) -> str:
    """Halve the worst failing block until one coordinate is left: ``O(log n)`` checks.

    With no failing block (errors each below what a block's direction resolves), the halving
    starts from every coordinate.  Where neither half fails it stops and returns the range
    left, ``first .. last``; where both halves fail, each holds an error, and the result
    says that more than one coordinate is wrong (the halving follows the worse half)."""
    failing = [b.name for b in block_rows if not b.passed]
    n = p.n
    blocks: dict[str, Any] = dict(p.blocks)
    idx = np.arange(n)[blocks[failing[0]]] if failing else np.arange(n)
    spread = False
    while idx.size > 1:
        halves = np.array_split(idx, 2)
        checks = [
            direction_check(
                p.f,
                p.x,
                p.f0,
                p.g,
                unit_direction(p.rng, n, h),
                context.crosses_kink,
                context.f_scale,
            )
            for h in halves
        ]
        bad = [k for k, ch in enumerate(checks) if not ch.ok]
        if not bad:  # the error lies below the resolution of a half: stop here
            break
        spread |= len(bad) == 2
        idx = halves[max(bad, key=lambda k: checks[k].rel_error)]
    where = (
        p.name_of(int(idx[0]))
        if idx.size == 1
        else f"{p.name_of(int(idx[0]))} .. {p.name_of(int(idx[-1]))}"
    )
    if spread:
        where += " (the worse of several: both halves failed at a split, so more than one is wrong)"
    return where
