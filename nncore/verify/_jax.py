"""The JAX oracle: a gradient and a Hessian-vector product against an independent
implementation (:mod:`nncore.jax_reference`, whose values the network form puts in the
:class:`~nncore.verify._finding.Context`).

Owns the agreement of two evaluations of the same derivative, :func:`agree`, with its
tolerances :data:`JAX_RTOL` and :data:`ROUNDING_ATOL`, and whether a comparison binds the
verdict (not within rounding of a relu kink, where two summation orders may take different
branches).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._finding import Context, Finding, Problem
from ._schemes import EPS

JAX_RTOL = 1e-9
"""Allowed relative error against the JAX reference (two float64 evaluations of the same
formulas differ by rounding only, ~1e-14)."""
ROUNDING_ATOL = 512 * EPS
"""Absolute floor, in units of ``max(1, |J|)``, below which two derivatives are equal to
rounding: where the terms of an entry cancel (a softmax vjp at uniform outputs, a confident
correct cross-entropy) its exact value is ~0 and both implementations return rounding noise
of the size of the cancelled terms, for which a relative error means nothing.  512 eps ~
1.1e-13 covers the few hundred roundings of a small network."""


def agree(a: Any, b: Any, J: float, rtol: float = JAX_RTOL) -> bool:
    """``||a - b|| <= rtol ||b|| + ROUNDING_ATOL max(1, |J|)``: two evaluations of the same
    derivative of an objective of value ``J`` agree to ``rtol`` or to rounding."""
    diff = float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
    return diff <= rtol * float(np.linalg.norm(b)) + ROUNDING_ATOL * max(1.0, abs(J))


def check_jax_gradient(p: Problem, context: Context) -> Finding:
    """Compare ``g`` with ``context.jax_grad``; binding (and resolving) unless
    ``context.jax_binding`` is False, when it is reported only."""
    assert context.jax_grad is not None
    J_ref, g_ref = context.jax_grad
    g = p.g
    norm = np.linalg.norm(g_ref)
    jax_rel = float(np.linalg.norm(g - g_ref) / norm) if norm > 0 else float(np.linalg.norm(g))
    ok = agree(g, g_ref, J_ref)
    binding = context.jax_binding
    reason = (
        f"JAX autodiff: {'agrees' if ok else 'DISAGREES'} (relative error {jax_rel:.1e}; "
        f"tol {JAX_RTOL:.0e}, or rounding below {ROUNDING_ATOL:.0e} max(1, |J|))"
        + (
            ""
            if binding
            else "; not binding: a relu-like pre-activation lies within rounding of its "
            "kink, where two summation orders may take different branches"
        )
    )
    return Finding(
        passed=ok or not binding,
        resolved=binding,
        complete=binding,
        fields={"jax_rel_error": jax_rel},
        reasons=[reason],
    )


def check_jax_hessp(
    context: Context, x: np.ndarray, v: np.ndarray, Hv: np.ndarray, f0: float
) -> Finding:
    """Compare ``Hv`` (the product checked, along ``v`` at ``x``) with
    ``context.jax_hessp(x, v)``; the fields are those of ``report.hessp``."""
    assert context.jax_hessp is not None
    ref = context.jax_hessp(x, v)
    jr = float(np.linalg.norm(Hv - ref) / max(np.linalg.norm(ref), np.finfo(float).tiny))
    jok = agree(Hv, ref, f0)
    return Finding(
        passed=jok,
        fields={"jax_rel_error": jr},
        reasons=[
            f"JAX Hessian-vector product: {'agrees' if jok else 'DISAGREES'} "
            f"(relative error {jr:.1e})"
        ],
    )
