r"""The forward pass, the objective and backprop: functions over an :class:`Architecture`.

Notation (DESIGN.md): ``A_0 = X`` of shape ``(N, n_in)``; layer ``l = 1..L`` has
``W_l`` ``(n_l, n_{l-1})`` and ``b_l`` ``(n_l,)``; ``Z_l = A_{l-1} W_l^T + b_l`` and
``A_l = f_l(Z_l)``.  The objective is

.. math::  J(\theta) = \sum_i \omega_i l_i + \tfrac{\lambda}{2} \sum_l \|W_l\|_F^2,
           \qquad \omega_i = w_i / \textstyle\sum_j w_j .

Backprop carries ``D_l = dJ/dZ_l`` (shape ``(N, n_l)``) from the output down:
``D_L`` from the loss, ``dJ/dW_l = D_l^T A_{l-1} + \lambda W_l``, ``dJ/db_l = 1^T D_l``,
``D_{l-1} = (D_l W_l) \odot f'_{l-1}(Z_{l-1})``.  The derivation is in ``docs/math.md``.

This module owns the validated data (:class:`Batch`, :func:`make_batch`), the forward cache
(:class:`Cache`, :func:`forward`), the objective's value (:func:`value`) and the gradient
(:func:`backward`, :func:`backprop`).  Every function takes the architecture record, the
per-layer parameter views ``params = [(W_1, b_1), ...]`` and a
:class:`~nncore.workspace.Workspace` whose buffers it writes; none validates ``theta`` (the
callers do, once).  The curvature products reuse the same cache (:mod:`nncore.curvature`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._validation import FloatArray, check_sample_weight, check_X
from .architecture import Architecture
from .workspace import Workspace

Array = np.ndarray
Params = list[tuple[Array, Array]]


class Cache(NamedTuple):
    """What the forward pass leaves for backprop and curvature products.

    Attributes
    ----------
    Z : tuple of ndarray
        ``(Z_1, ..., Z_L)``, ``Z_l`` of shape ``(N, n_l)``.
    A : tuple of ndarray
        ``(A_0, ..., A_L)`` with ``A_0 = X``, ``A_l`` of shape ``(N, n_l)``.
    log_A_L : ndarray or None
        ``log A_L = log_softmax(Z_L)``, shape ``(N, n_L)``, for the cross_entropy loss, whose
        forward pass computes it first and then ``A_L = exp(log A_L)``, so that the loss and
        the probabilities share one log-sum-exp; ``None`` for the other losses.
    """

    Z: tuple[Array, ...]
    A: tuple[Array, ...]
    log_A_L: Array | None = None


class Batch(NamedTuple):
    """Validated data: ``X`` ``(N, n_in)``, targets ``Y`` ``(N, n_out)``, and
    ``omega = w / sum(w)`` ``(N,)`` or ``None`` for equal weights ``1/N``."""

    X: FloatArray
    Y: FloatArray
    omega: FloatArray | None


def times(D: Array, W: Array, out: Array) -> Array:
    """``D @ W`` into ``out``, for ``D`` ``(N, n_l)`` and ``W`` ``(n_l, n_{l-1})``.

    A one-wide layer (``n_l = 1``, a single output) makes it an outer product, for which
    numpy's matmul takes a generic loop two to three times slower than ``np.multiply``
    broadcasting the column against the row (``benchmarks/studies/lbfgs_anatomy.py``); each
    entry is one product either way, so the bits are the same.
    """
    if W.shape[0] == 1:
        return np.multiply(D, W, out=out)
    return np.matmul(D, W, out=out)


def make_batch(arch: Architecture, X: Any, y: Any, sample_weight: Any = None) -> Batch:
    """Validate ``(X, y, sample_weight)`` for ``arch`` (see :meth:`nncore.MLP.batch`).

    ``Y`` is stored F-ordered, the layout of the kernels' buffers (:mod:`nncore.workspace`).
    """
    Xc = check_X(X, arch.sizes[0])
    n = Xc.shape[0]
    Y = np.asfortranarray(arch.loss.targets(y, n, arch.sizes[-1]))
    return Batch(Xc, Y, check_sample_weight(sample_weight, n))


def forward(arch: Architecture, params: Params, X: Array, ws: Workspace | None = None) -> Cache:
    """The forward cache, in the buffers of ``ws`` (a new workspace when ``None``).

    ``X`` is validated data ``(N, n_in)``; ``Z_l`` are F-ordered ``(N, n_l)`` views of the
    C-ordered ``Z_l^T`` buffers.
    """
    if ws is None:
        ws = Workspace(arch, X.shape[0])
    Z, A, log_A_L = [], [X], None
    log_output = arch.loss.log_output  # cross_entropy: log A_L first, then A_L
    for k, ((W, b), act, zt, a) in enumerate(zip(params, arch.acts, ws.ZT, ws.A)):
        # Z_l^T = W_l A_{l-1}^T + b_l, as the seed writes it: the same BLAS call on the
        # same memory layout, so the seed's network is reproduced bit for bit.
        np.matmul(W, A[-1].T, out=zt)  # (n_l, n_{l-1}) @ (n_{l-1}, N)
        zt += b[:, None]
        z = zt.T  # (N, n_l), a view
        Z.append(z)
        if log_output is not None and k == len(params) - 1:
            log_A_L = log_output(z)  # softmax(Z_L) = exp(log_softmax(Z_L))
            A.append(np.exp(log_A_L, out=a))
        else:
            A.append(z if a is None else act.f(z, a))
    return Cache(tuple(Z), tuple(A), log_A_L)


def value(arch: Architecture, params: Params, cache: Cache, batch: Batch) -> float:
    """``J`` from a forward cache: weighted mean of per-sample losses plus the l2 term."""
    return data_value(arch, cache, batch) + l2_value(arch, params)


def data_value(arch: Architecture, cache: Cache, batch: Batch) -> float:
    """``sum_i omega_i l_i`` (``mean_i l_i`` without weights)."""
    per_sample = arch.loss.per_sample(cache.Z[-1], cache.A[-1], batch.Y, cache.log_A_L)
    if batch.omega is None:  # the mean as np.mean computes it: the sum, then / N
        return float(per_sample.sum() / per_sample.shape[0])
    return float(np.dot(batch.omega, per_sample))


def l2_value(arch: Architecture, params: Params) -> float:
    """``0.5 * l2 * sum_l ||W_l||_F^2``."""
    if not arch.l2:
        return 0.0
    return 0.5 * arch.l2 * float(sum(np.dot(W.ravel(), W.ravel()) for W, _ in params))


def weigh(M: Array, batch: Batch) -> Array:
    """Multiply row ``i`` of ``M`` by ``omega_i`` (``1/N`` without weights), in place."""
    if batch.omega is None:
        M *= 1.0 / M.shape[0]
    else:
        M *= batch.omega[:, None]
    return M


def backward(
    arch: Architecture,
    params: Params,
    cache: Cache,
    batch: Batch,
    ws: Workspace,
    with_l2: bool = True,
    out: FloatArray | None = None,
) -> FloatArray:
    """``dJ/dtheta``, written block by block into views of ``out`` (a new array when
    ``None``); ``ws`` is the workspace of the forward pass that made ``cache``."""
    Z_L, A_L = cache.Z[-1], cache.A[-1]
    # omega_i dl_i/dA_L, or omega_i dl_i/dZ_L for the fused losses, (N, n_L)
    D = weigh(arch.loss.output_grad(Z_L, A_L, batch.Y, ws.D[-1]), batch)
    if not arch.loss.fused:
        D = arch.acts[-1].vjp(D, Z_L, A_L, ws.S[-1])  # D_L = dJ/dZ_L
    return backprop(arch, params, cache, D, ws, params if with_l2 else None, out)


def backprop(
    arch: Architecture,
    params: Params,
    cache: Cache,
    D: Array,
    ws: Workspace,
    l2_blocks: Params | None,
    out: FloatArray | None = None,
) -> FloatArray:
    """Carry ``D_L`` (N, n_L) down the layers: ``D_l^T A_{l-1} + l2 * M_l`` and ``1^T D_l``
    per layer, with ``M_l`` the weight block of ``l2_blocks`` (``W_l`` for the gradient,
    ``V_l`` for the Gauss-Newton product; ``None``: no l2 term).  The hidden deltas go to
    ``ws.D``; the result is written into ``out`` (a new array when ``None``).  ``D`` may be
    overwritten."""
    g = np.empty(arch.n_params) if out is None else out
    grads = ws.g_blocks if g is ws.g else arch.layout.unpack(g)
    for k in range(len(params) - 1, -1, -1):  # 0-based index k: layer l = k + 1
        W = params[k][0]
        gW, gb = grads[k]
        # dJ/dW_l^T = A_{l-1}^T D_l: (n_{l-1}, N) @ (N, n_l), written into gW's transpose
        np.matmul(cache.A[k].T, D, out=gW.T)
        np.add.reduce(D, axis=0, out=gb)
        if arch.l2 and l2_blocks is not None:
            gW += arch.l2 * l2_blocks[k][0]
        if k > 0:  # the input gradient D_1 W_1 is never needed
            D = times(D, W, ws.D[k - 1])  # (N, n_l) @ (n_l, n_{l-1})
            D = arch.acts[k - 1].vjp(D, cache.Z[k - 1], cache.A[k], ws.S[k - 1])
    return g
