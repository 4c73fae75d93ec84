r"""Losses, each defined next to its derivative with respect to the network output.

Every loss gives a per-sample value ``l_i``; the objective is the weighted mean
``J = sum_i omega_i l_i`` with ``omega_i = w_i / sum_j w_j`` (``1/N`` without weights), plus
the l2 term, and that assembly is written once, in :mod:`nncore.network`.  A record holds:

* ``targets(y, n_samples, n_out)``: validate ``y`` and return it as a float64
  ``(N, n_out)`` array ``Y`` (integer labels become one-hot rows);
* ``per_sample(Z, A, Y, log_A=None)``: ``l_i``, shape ``(N,)``; ``log_A`` is ``log A_L`` when
  the forward pass computed it (``log_output``), else ``None``;
* ``output_grad(Z, A, Y, out=None)``: ``d l_i / d A_L`` for ``mse``, or ``d l_i / d Z_L``
  for the losses fused with their output activation (``fused=True``: bce with sigmoid,
  cross_entropy with softmax), shape ``(N, n_out)``, unweighted; written into ``out`` when
  given;
* ``output_hvp(Z, A, Y, U)``: the Hessian of ``l_i`` with respect to that same output
  (``A_L`` or ``Z_L``) applied to ``U`` row by row, unweighted: the curvature used by the
  Hessian- and Gauss-Newton-vector products.  It is positive semi-definite for every loss;
* ``log_output``: ``None``, or for cross_entropy ``log_output(Z) = log softmax(Z)`` row by
  row.  The forward pass then computes ``log A_L`` first and ``A_L = exp(log A_L)``, and
  hands ``log A_L`` to ``per_sample``: one log-sum-exp, and one exponential, serve the loss and
  the probabilities (``benchmarks/cache_traffic.py`` times each of these steps).

The fused losses are computed from the logits ``Z = Z_L`` (softplus, log-sum-exp), never
from clipped probabilities, so they stay finite and exact for saturated outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from ._validation import as_real_array, require_finite

Array = np.ndarray

PROBABILITY_ROW_ATOL = 1e-6
"""How far from 1 a row of cross-entropy target probabilities may sum (DESIGN.md)."""


@dataclass(frozen=True)
class Loss:
    """A loss and its output derivative (see the module docstring)."""

    name: str
    default_output: str
    required_output: str | None
    fused: bool
    targets: Callable[[Any, int, int], Array]
    per_sample: Callable[..., Array]
    output_grad: Callable[..., Array]
    output_hvp: Callable[[Array, Array, Array, Array], Array]
    log_output: Callable[[Array], Array] | None = None


def _real_targets(y: Any, n_samples: int, n_out: int, loss: str) -> Array:
    Y = as_real_array(y, "y")
    if Y.ndim == 1 and n_out == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape != (n_samples, n_out):
        want = f"({n_samples},) or " if n_out == 1 else ""
        raise ValueError(
            f"y for loss {loss!r} must have shape {want}({n_samples}, {n_out}), got {np.shape(y)}"
        )
    require_finite(Y, "y")
    return Y


def _mse_targets(y: Any, n_samples: int, n_out: int) -> Array:
    return _real_targets(y, n_samples, n_out, "mse")


def _bce_targets(y: Any, n_samples: int, n_out: int) -> Array:
    Y = _real_targets(y, n_samples, n_out, "bce")
    if Y.min() < 0 or Y.max() > 1:
        bad = Y.min() if Y.min() < 0 else Y.max()
        raise ValueError(f"y for loss 'bce' must lie in [0, 1], got {bad}")
    return Y


def _cross_entropy_targets(y: Any, n_samples: int, n_out: int) -> Array:
    Y = as_real_array(y, "y")
    if Y.ndim == 1:
        if Y.shape != (n_samples,):
            raise ValueError(
                f"y for loss 'cross_entropy' must have shape ({n_samples},) (labels) or "
                f"({n_samples}, {n_out}) (probabilities), got {Y.shape}"
            )
        require_finite(Y, "y")
        if Y.min() < 0 or Y.max() >= n_out:
            bad = Y.min() if Y.min() < 0 else Y.max()
            raise ValueError(f"cross_entropy labels must lie in [0, {n_out}), got {bad}")
        labels = Y.astype(np.intp)
        if (labels != Y).any():
            bad = Y[labels != Y][0]
            raise ValueError(f"cross_entropy labels must be integers, got {bad}")
        onehot = np.zeros((n_samples, n_out), order="F")  # the kernels' layout (kernels.py)
        onehot[np.arange(n_samples), labels] = 1.0
        return onehot
    if Y.shape != (n_samples, n_out):
        raise ValueError(
            f"y for loss 'cross_entropy' must have shape ({n_samples},) (labels) or "
            f"({n_samples}, {n_out}) (probabilities), got {Y.shape}"
        )
    require_finite(Y, "y")
    if Y.min() < 0:
        raise ValueError(f"cross_entropy target probabilities must be non-negative, got {Y.min()}")
    sums = Y.sum(axis=1)
    off = np.abs(sums - 1.0)
    if off.max() > PROBABILITY_ROW_ATOL:
        i = int(np.argmax(off))
        raise ValueError(
            f"each row of cross_entropy target probabilities must sum to 1 "
            f"(within {PROBABILITY_ROW_ATOL}), row {i} sums to {sums[i]}"
        )
    return Y


# mse: l_i = mean_k (A_ik - Y_ik)^2;  d l_i / d A_ik = 2 (A_ik - Y_ik) / n_out
def _mse_per_sample(Z: Array, A: Array, Y: Array, log_A: Array | None = None) -> Array:
    R = A - Y
    R *= R
    return np.add.reduce(R, axis=1) / Y.shape[1]  # the mean over outputs, as np.mean does it


def _mse_grad(Z: Array, A: Array, Y: Array, out: Array | None = None) -> Array:
    G = np.subtract(A, Y, out=out)
    G *= 2.0 / Y.shape[1]
    return G


def _mse_hvp(Z: Array, A: Array, Y: Array, U: Array) -> Array:
    return U * (2.0 / Y.shape[1])  # d^2 l_i / d A_i^2 = (2 / n_out) I


# bce: l_i = mean_k softplus(Z_ik) - Y_ik Z_ik;  d l_i / d Z_ik = (sigmoid(Z_ik) - Y_ik) / n_out
def _bce_per_sample(Z: Array, A: Array, Y: Array, log_A: Array | None = None) -> Array:
    L = np.logaddexp(0.0, Z)
    L -= Y * Z
    return np.add.reduce(L, axis=1) / Y.shape[1]


def _bce_grad(Z: Array, A: Array, Y: Array, out: Array | None = None) -> Array:
    D = np.subtract(A, Y, out=out)  # A = sigmoid(Z)
    D *= 1.0 / Y.shape[1]
    return D


def _bce_hvp(Z: Array, A: Array, Y: Array, U: Array) -> Array:
    return U * (A * (1.0 - A) / Y.shape[1])  # d^2 l_i / d Z_i^2 = diag(s (1 - s)) / n_out


# cross_entropy: l_i = -sum_k Y_ik log softmax(Z_i)_k, with log softmax(Z_i) = Z_i -
# logsumexp(Z_i) from the logits (never log of a probability, which underflows);
# s_i = sum_k Y_ik;  d l_i / d Z_i = s_i softmax(Z_i) - Y_i
def _cross_entropy_log_output(Z: Array) -> Array:
    return special.log_softmax(Z, axis=1)


def _cross_entropy_per_sample(Z: Array, A: Array, Y: Array, log_A: Array | None = None) -> Array:
    if log_A is None:
        YlogA = _cross_entropy_log_output(Z)
        YlogA *= Y
    else:  # the forward pass's log A_L, left as it is
        YlogA = np.multiply(log_A, Y)
    return -np.add.reduce(YlogA, axis=1)


def _cross_entropy_grad(Z: Array, A: Array, Y: Array, out: Array | None = None) -> Array:
    D = np.multiply(A, Y.sum(axis=1)[:, None], out=out)  # A = softmax(Z)
    D -= Y
    return D


def _cross_entropy_hvp(Z: Array, A: Array, Y: Array, U: Array) -> Array:
    # d^2 l_i / d Z_i^2 = s_i (diag(a_i) - a_i a_i^T)
    HU = U - np.einsum("ij,ij->i", U, A)[:, None]
    HU *= A * Y.sum(axis=1)[:, None]
    return HU


_TABLE = (
    Loss("mse", "identity", None, False, _mse_targets, _mse_per_sample, _mse_grad, _mse_hvp),
    Loss("bce", "sigmoid", "sigmoid", True, _bce_targets, _bce_per_sample, _bce_grad, _bce_hvp),
    Loss(
        "cross_entropy",
        "softmax",
        "softmax",
        True,
        _cross_entropy_targets,
        _cross_entropy_per_sample,
        _cross_entropy_grad,
        _cross_entropy_hvp,
        _cross_entropy_log_output,
    ),
)

LOSSES: dict[str, Loss] = {loss.name: loss for loss in _TABLE}
"""Every loss by name."""


def get_loss(name: object) -> Loss:
    """Look a loss up by name; unknown names raise ``ValueError`` listing the valid ones."""
    if not isinstance(name, str):
        raise TypeError(f"loss must be a string, got {type(name).__name__}")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses are: {', '.join(LOSSES)}")
    return LOSSES[name]
