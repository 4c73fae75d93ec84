"""The network form of the check: everything the checker knows about an nncore network.

Owns every use of the network by the checker, so that it reads the network in one place: the
network form's signature (:func:`_check_network`), the objective and data it checks, the
parameter names and blocks, and the :class:`~nncore.verify._finding.Context` it hands the
oracles: the kink tests of relu-like layers (:func:`_kink_crossing`), the size of the loss's
terms (:func:`_term_scale`) and of each gradient component's (:func:`_gradient_scale`), and
the JAX values, binding unless a pre-activation lies within rounding of a kink
(:func:`near_kink`).  Also :func:`rounding_scale`, the size of a gradient's rounding, for
tests comparing two implementations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_theta
from ..activations import Activation
from ._check import run_checks
from ._finding import Context
from ._problem import N_DIRECTIONS, make_problem
from ._report import GradientReport

KINK_ROUNDING = 1e3
"""A relu-like pre-activation within ``KINK_ROUNDING * eps`` times the size of its terms of 0
may land on either side of the kink depending on the order of summation."""
JAX_MISSING = (
    "JAX reference skipped: JAX is not installed (pip install jax jaxlib, "
    'or pip install ".[jax]" in a checkout of nncore)'
)
"""The note of a network check made without JAX."""


_NEEDED = object()
"""The default of the network form's required arguments, so that a missing one is named."""


def _check_network(
    net: Any,
    theta: Any = _NEEDED,
    X: Any = _NEEDED,
    y: Any = _NEEDED,
    sample_weight: Any = None,
    *,
    hessp: bool = False,
    rng: int | np.random.Generator | None = None,
    mode: str = "auto",
    n_directions: int = N_DIRECTIONS,
    profile: str = "fast",
    workers: Any = 1,
) -> GradientReport:
    """The network form of :func:`~nncore.verify.check_gradient`: ``net.loss`` and its
    gradient (and ``net.hessp`` when ``hessp``) at ``theta``, on the data, with the
    network's names, blocks and context."""
    missing = [name for name, v in (("theta", theta), ("X", X), ("y", y)) if v is _NEEDED]
    if missing:
        raise TypeError(
            "check_gradient(net, theta, X, y, sample_weight=None, ...) checks the loss on "
            f"data: theta, X and y are needed, got no {' and no '.join(missing)}"
        )
    if not isinstance(hessp, (bool, np.bool_)):
        raise TypeError(
            "the network form checks net.hessp: hessp must be True or False, got "
            f"{type(hessp).__name__} (to check another product, use the function form)"
        )
    theta = check_theta(theta, net.n_params).copy()
    objective = net.objective(X, y, sample_weight)
    batch = objective.batch
    acts = _layers(net)
    kink_layers = [k for k, act in enumerate(acts) if act.kink]
    crosses = _kink_crossing(net, theta, batch.X, kink_layers)
    # the Hessian also jumps where f'' does (elu): its checks avoid those points too
    kink2_layers = [k for k, act in enumerate(acts) if act.kink or act.kink2]
    crosses2 = _kink_crossing(net, theta, batch.X, kink2_layers)

    jax_grad = jax_hessp = None
    try:
        from .. import jax_reference
    except ImportError:
        jax_reference = None
    if jax_reference is not None:
        J_ref, g_ref = jax_reference.loss_and_grad(net, theta, batch.X, y, sample_weight)
        jax_grad = (J_ref, g_ref)
        if hessp:
            jax_hessp = lambda x, v: jax_reference.hessp(net, x, v, batch.X, y, sample_weight)  # noqa: E731

    context = Context(
        crosses_kink=crosses,
        crosses_kink2=crosses2,
        f_scale=_term_scale(net, theta, batch),
        g_scale=_gradient_scale(net, theta, batch) if hessp else None,
        jax_grad=jax_grad,
        jax_hessp=jax_hessp,
        jax_binding=not (kink_layers and near_kink(net, theta, batch.X)),
        notes=() if jax_reference is not None else (JAX_MISSING,),
    )
    problem = make_problem(
        objective.fun,
        objective.jac,
        theta,
        (),
        net.param_name,
        net.layout.blocks(),
        rng,
        mode,
        n_directions,
        profile,
        workers,
    )
    return run_checks(problem, context, objective.hessp if hessp else None)


def _layers(net: Any) -> list[Activation]:
    """The activation record of each layer ``1..L`` (its ``f``, ``f'``, kinks)."""
    return list(net.arch.acts)


def near_kink(net: Any, theta: np.ndarray, X: np.ndarray) -> bool:
    """True when a pre-activation of a relu-like layer lies within rounding of its kink.

    ``|Z_l| <= KINK_ROUNDING * eps * (|A_{l-1}| |W_l|^T + |b_l|)`` with nonzero terms: two
    correct implementations that sum in different orders (nncore's ``(W A^T)^T``, JAX's
    ``A W^T``) can then take different branches and legitimately disagree.  Property tests
    against an independent implementation discard such points (``hypothesis.assume``); exact
    zeros of every term are kept.  A subnormal pre-activation counts as at the kink too: XLA
    flushes subnormals to 0 on the CPU, so JAX takes the other branch there (Hypothesis found
    ``z = 0.5 * 2.2e-308``, where JAX's Hessian-vector product saw a dead unit).
    """
    cache = net.forward(theta, X)
    eps, tiny = np.finfo(np.float64).eps, np.finfo(np.float64).tiny
    for k, ((W, b), act) in enumerate(zip(net.unpack(theta), _layers(net))):
        if act.kink:
            size = np.abs(cache.A[k]) @ np.abs(W).T + np.abs(b)
            z = np.abs(cache.Z[k])
            near = (z <= KINK_ROUNDING * eps * size) | (z < tiny)  # subnormal: 0 for XLA
            if (near & (size > 0)).any():
                return True
    return False


def rounding_scale(net: Any, theta: np.ndarray, J: float) -> float:
    """``max(1, |J|) * prod_l max(1, ||W_l||_inf)``: the size of the rounding of a gradient.

    Backprop multiplies the deltas by ``W_l`` layer after layer, so rounding made near the
    output reaches the first layers amplified by up to the product of the weights' row-sum
    norms; where the exact gradient is 0 by cancellation (equal weights before a softmax),
    that amplified rounding is all two summation orders can agree on.
    """
    amp = 1.0
    for W, _ in net.layout.unpack(np.ascontiguousarray(theta, dtype=np.float64)):
        amp *= max(1.0, float(np.abs(W).sum(axis=1).max()))
    return max(1.0, abs(J)) * amp


def _kink_crossing(net: Any, theta: np.ndarray, X: np.ndarray, layers: list[int]):
    """``crosses(x, u, h)``: does ``x +- h u`` change the sign of a pre-activation of one of
    ``layers`` relative to ``theta``?  ``None`` when there are no such layers."""
    if not layers:
        return None

    def signature(x: np.ndarray) -> list[np.ndarray]:
        cache = net.forward(x, X)
        return [cache.Z[k] > 0 for k in layers]

    base = signature(theta)

    def crosses(x: np.ndarray, u: np.ndarray, h: float) -> bool:
        for point in (x + h * u, x - h * u):
            if any((s != s0).any() for s, s0 in zip(signature(point), base)):
                return True
        return False

    return crosses


def _term_scale(net: Any, theta: np.ndarray, batch: Any) -> float:
    """The size of the terms the loss sums, for the rounding floor of the differences.

    Cross-entropy and bce are differences of large numbers when the logits are large
    (``logsumexp(z) - z_label``): ``J`` is small while its rounding error follows ``|z|``.
    mse sums ``(a - y)^2``, whose rounding follows ``(|a| + |y|)^2``.
    """
    cache = net.forward(theta, batch.X)
    if net.loss_name == "mse":
        return float(np.mean((np.abs(cache.A[-1]) + np.abs(batch.Y)) ** 2))
    return float(np.mean(np.abs(cache.Z[-1]).max(axis=1)))


def _gradient_scale(net: Any, theta: np.ndarray, batch: Any) -> np.ndarray:
    """The size of the terms each gradient component sums, shape ``(n_params,)``, for the
    rounding floor of the differences of the gradient (the ``hessp`` check).

    A gradient can be far smaller than the numbers it is computed from: at a saturated tanh,
    ``f'(z) = 1 - a^2`` is about 1e-8 while its rounding error follows ``1``, so the
    gradient's relative error is about ``eps / f'(z)``, not ``eps``.  That error drifts
    smoothly between nearby points, where neither Richardson's truncation estimate nor a
    fourth difference sees it, and a difference of gradients over ``2h`` inherits it divided
    by ``h``.  This is backprop with every factor replaced by its size: ``|W_l|``,
    ``|A_{l-1}|``, ``|A_L| + |Y|`` for the residual ``A_L - Y`` every loss's output gradient
    contains, and for the derivative of an activation the size of the terms it is computed
    from, ``max(|f'(z)|, 1)`` (``|f'(z)|`` itself for identity and relu-like activations,
    whose derivatives are exact; ``|a| (|g| + <|g|, |a|>)`` row by row for softmax).
    """
    params = net.layout.unpack(theta)
    cache = net.forward(theta, batch.X)
    acts = _layers(net)

    def through(act, G, k):  # |dJ/dZ| from |dJ/dA| at layer k + 1
        z, a = cache.Z[k], cache.A[k + 1]
        if act.df is None:  # softmax: a * (g - <g, a>)
            return np.abs(a) * (G + np.einsum("ij,ij->i", G, np.abs(a))[:, None])
        df = np.abs(np.asarray(act.df(z, a), dtype=np.float64))
        return G * (df if act.kink or act.name == "identity" else np.maximum(df, 1.0))

    n_out = net.sizes[-1]
    D = np.abs(cache.A[-1]) + np.abs(batch.Y)
    if net.loss_name == "mse":  # d l / d A_L = 2 (A_L - Y) / n_out, then f'_L
        D = through(acts[-1], D * (2.0 / n_out), len(acts) - 1)
    elif net.loss_name == "bce":  # d l / d Z_L = (A_L - Y) / n_out
        D /= n_out
    else:  # cross_entropy: d l / d Z_L = s A_L - Y, s the row sums of Y
        D = np.abs(cache.A[-1]) * np.abs(batch.Y.sum(axis=1))[:, None] + np.abs(batch.Y)
    D *= (1.0 / D.shape[0]) if batch.omega is None else batch.omega[:, None]
    out = np.empty(net.n_params)
    for k in range(len(params) - 1, -1, -1):
        (W, _), (gW, gb) = params[k], net.layout.unpack(out)[k]
        gW[...] = D.T @ np.abs(cache.A[k])
        if net.l2:
            gW += net.l2 * np.abs(W)
        gb[...] = D.sum(axis=0)
        if k > 0:
            D = through(acts[k - 1], D @ np.abs(W), k - 1)
    return out
