r"""Gradient verification: compare a gradient with finite differences, scipy and JAX.

Central differences, per coordinate ``i``:

.. math::  \hat g_i = \frac{J(\theta + h_i e_i) - J(\theta - h_i e_i)}{2 h_i},
           \qquad h_i = \epsilon^{1/3} \max(1, |\theta_i|),

whose truncation error is ``h_i^2 J'''/6`` and rounding error about ``\epsilon |J| / h_i``;
with ``\epsilon = 2^{-52}`` both are near ``\epsilon^{2/3} \approx 4 \cdot 10^{-11}`` in
relative terms, which is why the step is ``\epsilon^{1/3}`` and the tolerance
:data:`FD_RTOL` leaves four orders of magnitude of room above it.  Where the gradient is
near zero a relative error means nothing, and the verdict falls back on the scheme's own
absolute error: the truncation error estimated by halving the step,
``|D(h) - D(2h)| / 3``, plus the rounding of the differences (:data:`EVAL_ROUNDING`).

Coordinates whose difference stencil moves a pre-activation of a relu-like layer across
its kink at ``z = 0`` are not smooth there; they are listed in ``kink_params`` and left out
of the finite-difference verdict (the JAX comparison still covers them exactly).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import check_grad as scipy_check_grad

from ._validation import FloatArray, check_theta
from .network import MLP

EPS = np.finfo(np.float64).eps
FD_STEP = EPS ** (1.0 / 3.0)
"""Relative central-difference step: balances truncation (h^2) and rounding (eps/h)."""
FD_RTOL = 1e-6
"""Allowed relative error of the central-difference gradient (expected ~1e-10)."""
FD_SAFETY = 10.0
"""How far beyond its own error estimate (truncation by step halving, plus rounding) a
central difference may miss before the gradient is blamed."""
EVAL_ROUNDING = 64 * EPS
"""Relative rounding error allowed for one float64 evaluation of ``J`` (accumulated over
the forward pass and the sums).  A central difference of two such values carries an
absolute error up to ``EVAL_ROUNDING * |J| / h_i``: the noise floor of coordinate ``i``,
which matters only where the gradient is near zero.  The same holds for the truncation
error: both are absolute, and only they remain where the true gradient is 0."""
JAX_RTOL = 1e-9
"""Allowed relative error against the JAX reference (two float64 evaluations of the same
formulas differ by rounding only, ~1e-14)."""
ROUNDING_ATOL = 512 * EPS
"""Absolute floor, in units of ``max(1, |J|)``, below which two gradients are equal to
rounding: where the terms of a gradient entry cancel (a softmax vjp at uniform outputs, a
confident correct cross-entropy), its exact value is ~0 and both implementations return
rounding noise of the size of the cancelled terms, for which a relative error means
nothing.  512 eps ~ 1.1e-13 covers the few hundred roundings of a small network."""


def agree(a: np.ndarray, b: np.ndarray, J: float, rtol: float = JAX_RTOL) -> bool:
    """``||a - b|| <= rtol ||b|| + ROUNDING_ATOL max(1, |J|)``: two evaluations of the same
    derivative of an objective of value ``J`` agree to ``rtol`` or to rounding."""
    diff = float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
    return diff <= rtol * float(np.linalg.norm(b)) + ROUNDING_ATOL * max(1.0, abs(J))


@dataclass
class GradientReport:
    """What :func:`check_gradient` found.

    Attributes
    ----------
    passed : bool
        True when every oracle agrees within its tolerance.
    reasons : list of str
        Why the verdict is what it is, one line per oracle.
    check_grad : float
        ``scipy.optimize.check_grad``: the 2-norm of (gradient - forward differences with
        step ``sqrt(eps)``), an absolute number; for comparison only.
    fd_rel_error : float
        ``||g - g_fd|| / ||g_fd||`` over the coordinates away from kinks (central
        differences).  The verdict allows ``FD_RTOL`` of it, or the scheme's own error.
    worst_index, worst_param : int, str
        The coordinate with the largest ``|g_i - g_fd_i|`` and its name.
    worst_abs_error : float
        That largest ``|g_i - g_fd_i|``.
    jax_rel_error : float or None
        ``||g - g_jax|| / ||g_jax||``; None when JAX is not installed.
    kink_params : list of str
        Coordinates left out of the finite-difference verdict (see module docstring).
    nfev : int
        Objective evaluations made by the checks.
    """

    passed: bool
    reasons: list[str]
    check_grad: float
    fd_rel_error: float
    worst_index: int
    worst_param: str
    worst_abs_error: float
    jax_rel_error: float | None
    kink_params: list[str] = field(default_factory=list)
    nfev: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The report as plain Python types (JSON-ready)."""
        return asdict(self)

    def __str__(self) -> str:
        jax = "n/a (JAX not installed)"
        if self.jax_rel_error is not None:
            jax = f"{self.jax_rel_error:.2e}"
        lines = [
            f"gradient check: {'PASSED' if self.passed else 'FAILED'}",
            f"  central differences, relative error  {self.fd_rel_error:.2e}  (tol {FD_RTOL:.0e})",
            f"  worst coordinate                     {self.worst_param}"
            f"  (|g - fd| = {self.worst_abs_error:.2e})",
            f"  JAX autodiff, relative error          {jax}  (tol {JAX_RTOL:.0e})",
            f"  scipy check_grad (absolute norm)      {self.check_grad:.2e}",
            f"  coordinates at a relu kink            {len(self.kink_params)}",
            f"  objective evaluations                 {self.nfev}",
        ]
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)


def _rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / ||b||`` (``||a - b||`` when ``b`` is zero)."""
    denom = np.linalg.norm(b)
    diff = np.linalg.norm(a - b)
    return float(diff / denom) if denom > 0 else float(diff)


def _kink_signature(net: MLP, theta: np.ndarray, X: np.ndarray) -> list[np.ndarray]:
    cache = net.forward(theta, X)
    return [z > 0 for z, act in zip(cache.Z, net._acts) if act.kink]


def central_differences(
    net: MLP, theta: FloatArray, X: Any, y: Any, sample_weight: Any = None
) -> tuple[FloatArray, FloatArray, np.ndarray]:
    """Central-difference gradient of ``net.loss``, its error bar, and kink crossings.

    Returns
    -------
    g_fd : ndarray of shape (n_params,)
        ``D_i(h_i) = (J(theta + h_i e_i) - J(theta - h_i e_i)) / (2 h_i)``.
    error : ndarray of shape (n_params,)
        An estimate of ``|D_i(h_i) - dJ/dtheta_i|`` from the scheme itself: the truncation
        error ``|D_i(h_i) - D_i(2 h_i)| / 3`` (both are ``g_i + c h^2 + O(h^4)``), plus the
        rounding ``EVAL_ROUNDING * max|J| / h_i`` of the differences.
    at_kink : ndarray of bool, shape (n_params,)
        True where the stencil ``theta +- 2 h_i e_i`` changes the sign pattern of a
        relu-like layer's pre-activations.
    """
    theta = check_theta(theta, net.n_params)
    batch = net.batch(X, y, sample_weight)
    has_kink = any(act.kink for act in net._acts)
    base = _kink_signature(net, theta, batch.X) if has_kink else []
    g_fd = np.empty(net.n_params)
    error = np.empty(net.n_params)
    at_kink = np.zeros(net.n_params, dtype=bool)
    x = theta.copy()
    for i in range(net.n_params):
        h = FD_STEP * max(1.0, abs(theta[i]))
        diffs, biggest = [], 0.0
        for step in (h, 2.0 * h):
            values = []
            for sign in (1.0, -1.0):
                x[i] = theta[i] + sign * step
                values.append(net.loss(x, batch.X, y, sample_weight))
                if has_kink and not at_kink[i]:
                    sig = _kink_signature(net, x, batch.X)
                    at_kink[i] = any((s != s0).any() for s, s0 in zip(sig, base))
            span = (theta[i] + step) - (theta[i] - step)  # the steps actually taken
            diffs.append((values[0] - values[1]) / span)
            biggest = max(biggest, abs(values[0]), abs(values[1]))
        x[i] = theta[i]
        g_fd[i] = diffs[0]
        error[i] = abs(diffs[0] - diffs[1]) / 3.0 + EVAL_ROUNDING * biggest / h
    return g_fd, error, at_kink


def check_gradient(
    net: MLP, theta: Any, X: Any, y: Any, sample_weight: Any = None
) -> GradientReport:
    """Check ``net.grad`` at ``theta`` against central differences, scipy and JAX.

    Parameters
    ----------
    net : MLP
    theta : ndarray of shape (n_params,)
    X, y, sample_weight
        As for :meth:`MLP.loss`.  None of the inputs is modified.

    Returns
    -------
    GradientReport
        ``print(report)`` gives a readable table.
    """
    theta = check_theta(theta, net.n_params).copy()
    batch = net.batch(X, y, sample_weight)
    g = net.grad(theta, batch.X, y, sample_weight)
    g_fd, fd_error, at_kink = central_differences(net, theta, batch.X, y, sample_weight)
    smooth = ~at_kink
    fd_err = _rel_error(g[smooth], g_fd[smooth]) if smooth.any() else 0.0
    abs_err = np.where(smooth, np.abs(g - g_fd), 0.0)
    worst = int(np.argmax(abs_err))
    cg = float(scipy_check_grad(net.loss, net.grad, theta, batch.X, y, sample_weight))

    # ||g - g_fd|| <= FD_RTOL ||g_fd|| + FD_SAFETY ||error||: relative where the gradient is
    # large, down to the scheme's own truncation and rounding error where it is near zero
    floor = FD_SAFETY * float(np.linalg.norm(fd_error[smooth]))
    bound = FD_RTOL * float(np.linalg.norm(g_fd[smooth])) + floor
    passed = float(np.linalg.norm(abs_err)) <= bound
    reasons = [
        f"central differences {'agree' if passed else 'DISAGREE'}: relative error "
        f"{fd_err:.2e} (tol {FD_RTOL:.0e}, or below {FD_SAFETY:g}x the scheme's own error "
        f"{floor / FD_SAFETY:.1e})"
    ]
    if at_kink.any():
        reasons.append(
            f"{int(at_kink.sum())} coordinate(s) move a relu-like pre-activation across 0 "
            "within the difference step; left out of the finite-difference verdict"
        )
    try:
        from . import jax_reference
    except ImportError:
        jax_err = None
        reasons.append('JAX reference skipped: JAX is not installed (pip install "nncore[jax]")')
    else:
        J_ref, g_ref = jax_reference.loss_and_grad(net, theta, batch.X, y, sample_weight)
        jax_err = _rel_error(g, g_ref)
        ok = agree(g, g_ref, J_ref)
        passed = passed and ok
        reasons.append(
            f"JAX autodiff {'agrees' if ok else 'DISAGREES'}: relative error "
            f"{jax_err:.2e} (tol {JAX_RTOL:.0e}, or rounding below {ROUNDING_ATOL:.0e} max(1, |J|))"
        )
    return GradientReport(
        passed=passed,
        reasons=reasons,
        check_grad=cg,
        fd_rel_error=fd_err,
        worst_index=worst,
        worst_param=net.param_name(worst),
        worst_abs_error=float(abs_err[worst]),
        jax_rel_error=jax_err,
        kink_params=[net.param_name(i) for i in np.flatnonzero(at_kink)],
        nfev=4 * net.n_params + net.n_params + 2,
    )
