r"""Exact curvature products: Hessian-vector (Pearlmutter's R-operator), Gauss-Newton-vector,
and the residual form of mse (residuals and their Jacobian) for least squares.

Notation of DESIGN.md and ``docs/math.md``; ``R{.}`` is the directional derivative along
``v`` (unpacked as ``V_l``, ``v_l``, the same layout as theta).  The R-forward pass, with
``R{A_0} = 0``:

.. math::  R\{Z_l\} = R\{A_{l-1}\} W_l^T + A_{l-1} V_l^T + 1 v_l^T,
           \qquad R\{A_l\} = f_l'(Z_l)[R\{Z_l\}],

then the R-backward pass, differentiating every line of backprop:

.. math::  R\{D_{l-1}\} = (R\{D_l\} W_l + D_l V_l) \odot f'(Z_{l-1})
                           + (D_l W_l) \odot f''(Z_{l-1}) \odot R\{Z_{l-1}\},

           R\{dJ/dW_l\} = R\{D_l\}^T A_{l-1} + D_l^T R\{A_{l-1}\} + \lambda V_l,
           \qquad R\{dJ/db_l\} = 1^T R\{D_l\}.

The Gauss-Newton product keeps only the curvature of the loss: the R-forward pass gives
``J v``, the loss Hessian ``H_out`` acts on it, and ordinary backprop carries the result
back (``J^T``), plus ``lambda V_l``.  Every function here reads the forward cache and never
computes a finite difference or a full Hessian on the way.

Like :mod:`nncore.kernels`, whose forward cache and backprop it reuses, every function takes
the :class:`~nncore.architecture.Architecture` and per-layer parameter views, and validates
nothing.
"""

from __future__ import annotations

import numpy as np

from ._validation import FloatArray
from .architecture import Architecture
from .kernels import Batch, Cache, Params, backprop, times, weigh
from .workspace import Workspace, matmul_fm

Array = np.ndarray


def r_forward(
    arch: Architecture,
    params: Params,
    vparams: Params,
    cache: Cache,
    ws: Workspace,
    need_last_a: bool = True,
) -> tuple[list[Array], list[Array | None]]:
    """``R{Z_l}`` and ``R{A_l}`` for ``l = 1..L`` (lists indexed ``l - 1``), each ``(N, n_l)``,
    in the R-pass buffers of ``ws``.

    ``R{A_L}`` is skipped (``None``) when ``need_last_a`` is False: the fused losses read
    ``R{Z_L}`` only.
    """
    r = ws.r()
    RZ: list[Array] = []
    RA: list[Array | None] = []
    ra_prev = None
    last = len(params) - 1
    for k, ((W, _), (VW, vb), act) in enumerate(zip(params, vparams, arch.acts)):
        # R{Z_l}^T = V_l A_{l-1}^T + v_l + W_l R{A_{l-1}}^T, in the layout of Z_l (workspace.py)
        rzt = np.matmul(VW, cache.A[k].T, out=r.RZT[k])  # (n_l, n_{l-1}) @ (n_{l-1}, N)
        rzt += vb[:, None]
        if ra_prev is not None:
            wra = np.matmul(W, ra_prev.T, out=r.T[k].T)
            rzt += wra
        rz = rzt.T  # (N, n_l)
        ra = None
        if k < last or need_last_a:
            ra = act.jvp(rz, cache.Z[k], cache.A[k + 1], r.RA[k], ws.S[k])
        RZ.append(rz)
        RA.append(ra)
        ra_prev = ra
    return RZ, RA


def hessp(
    arch: Architecture,
    params: Params,
    cache: Cache,
    batch: Batch,
    v: FloatArray,
    ws: Workspace,
    with_l2: bool = True,
) -> FloatArray:
    """``(d^2 J / d theta^2) v`` by the R-operator: ``8L - 5`` matrix products (a gradient
    takes ``3L - 1``).  ``ws`` is the workspace of the forward pass; its delta buffers carry
    ``D_l``, its R-pass buffers the directional derivatives."""
    vparams = arch.layout.unpack(v)
    loss, acts = arch.loss, arch.acts
    r = ws.r()
    RZ, RA = r_forward(arch, params, vparams, cache, ws, need_last_a=not loss.fused)
    Z_L, A_L = cache.Z[-1], cache.A[-1]
    if loss.fused:  # D_L = omega dl/dZ_L, R{D_L} = omega H_out R{Z_L}
        D = weigh(loss.output_grad(Z_L, A_L, batch.Y, ws.D[-1]), batch)
        RD = weigh(loss.output_hvp(Z_L, A_L, batch.Y, RZ[-1]), batch)
    else:  # G_L = omega dl/dA_L, R{G_L} = omega H_out R{A_L}, then through f_L
        G = weigh(loss.output_grad(Z_L, A_L, batch.Y, ws.D[-1]), batch)
        RG = weigh(loss.output_hvp(Z_L, A_L, batch.Y, RA[-1]), batch)
        RD = acts[-1].vjp_tangent(G, RG, Z_L, A_L, RZ[-1], True, ws.S[-1])
        D = acts[-1].vjp(G, Z_L, A_L, ws.S[-1])
    Hv = np.empty(arch.n_params)
    out = arch.layout.unpack(Hv)
    for k in range(len(params) - 1, -1, -1):  # 0-based index k: layer l = k + 1
        W, VW = params[k][0], vparams[k][0]
        hW, hb = out[k]
        np.matmul(RD.T, cache.A[k], out=hW)  # (n_l, N) @ (N, n_{l-1})
        if k > 0:
            hW += D.T @ RA[k - 1]  # D_l^T R{A_{l-1}}, (n_l, n_{l-1})
        if arch.l2 and with_l2:
            hW += arch.l2 * VW
        np.sum(RD, axis=0, out=hb)
        if k > 0:
            Z, A = cache.Z[k - 1], cache.A[k]
            G = times(D, W, ws.D[k - 1])  # dJ/dA_{l-1}, (N, n_{l-1})
            RG = times(RD, W, r.RG[k - 1])  # R{dJ/dA_{l-1}} = RD_l W_l + D_l V_l
            RG += times(D, VW, r.T[k - 1])
            RD = acts[k - 1].vjp_tangent(G, RG, Z, A, RZ[k - 1], True, ws.S[k - 1])
            D = acts[k - 1].vjp(G, Z, A, ws.S[k - 1])
    return Hv


def gnvp(
    arch: Architecture,
    params: Params,
    cache: Cache,
    batch: Batch,
    v: FloatArray,
    ws: Workspace,
    with_l2: bool = True,
) -> FloatArray:
    """Gauss-Newton product ``J^T H_out J v + l2 * V`` (positive semi-definite); ``ws`` is the
    workspace of the forward pass (its delta buffers carry ``J^T``)."""
    vparams = arch.layout.unpack(v)
    loss = arch.loss
    RZ, RA = r_forward(arch, params, vparams, cache, ws, need_last_a=not loss.fused)
    Z_L, A_L = cache.Z[-1], cache.A[-1]
    out_tangent = RZ[-1] if loss.fused else RA[-1]  # J v, w.r.t. Z_L or A_L
    U = weigh(loss.output_hvp(Z_L, A_L, batch.Y, out_tangent), batch)
    if not loss.fused:
        U = arch.acts[-1].vjp(U, Z_L, A_L)
    return backprop(arch, params, cache, U, ws, vparams if with_l2 else None)


def require_mse(arch: Architecture, what: str) -> None:
    """ValueError unless the loss is mse, the only one with a residual form."""
    if arch.loss.name != "mse":
        raise ValueError(f"{what} is defined for loss 'mse' only, got {arch.loss.name!r}")


def residual_scale(batch: Batch, n_out: int) -> Array:
    """``sqrt(omega_i / n_out)``, shape ``(N, 1)``: the weight of sample ``i``'s residuals."""
    N = batch.X.shape[0]
    omega = np.full(N, 1.0 / N) if batch.omega is None else batch.omega
    return np.sqrt(omega / n_out)[:, None]


def residuals(arch: Architecture, params: Params, cache: Cache, batch: Batch) -> FloatArray:
    """mse residuals ``r`` with ``sum(r**2) == J``.

    ``r = [sqrt(omega_i / n_out) (A_L[i, k] - Y[i, k]) for i, k (C order)]``, followed when
    ``l2 > 0`` by ``sqrt(l2 / 2) W_l.ravel()`` for every layer.
    """
    n_out = arch.sizes[-1]
    parts = [(residual_scale(batch, n_out) * (cache.A[-1] - batch.Y)).ravel()]
    if arch.l2:
        c = np.sqrt(arch.l2 / 2.0)
        parts += [c * W.ravel() for W, _ in params]
    return np.concatenate(parts)


def jacobian(
    arch: Architecture, params: Params, cache: Cache, batch: Batch, with_l2: bool = True
) -> FloatArray:
    """``d residuals / d theta``, shape ``(len(residuals), n_params)``.

    Row ``(i, k)`` is ``sqrt(omega_i / n_out) dA_L[i, k] / dtheta``: backprop seeded with
    output ``k`` of every sample at once, kept per sample (outer products) instead of summed.
    The rows of the l2 residuals follow when ``l2 > 0`` and ``with_l2``.
    """
    N, n_out = batch.Y.shape
    n_weights = int(arch.layout.weight_mask().sum()) if (arch.l2 and with_l2) else 0
    Jac = np.zeros((N * n_out + n_weights, arch.n_params))
    rows = Jac[: N * n_out].reshape(N, n_out, arch.n_params)
    scale = residual_scale(batch, n_out)[:, 0]
    Z_L, A_L = cache.Z[-1], cache.A[-1]
    for out_k in range(n_out):
        G = np.zeros((N, n_out))
        G[:, out_k] = scale
        D = arch.acts[-1].vjp(G, Z_L, A_L)
        for k in range(len(params) - 1, -1, -1):
            start = arch.layout.starts[k]
            n_l, n_prev = arch.layout.shapes[k]
            mid = start + n_l * n_prev
            block = rows[:, out_k, start:mid].reshape(N, n_l, n_prev)
            np.multiply(D[:, :, None], cache.A[k][:, None, :], out=block)  # per-sample D^T A
            rows[:, out_k, mid : mid + n_l] = D
            if k > 0:
                D = arch.acts[k - 1].vjp(matmul_fm(D, params[k][0]), cache.Z[k - 1], cache.A[k])
    if n_weights:
        mask = arch.layout.weight_mask()
        Jac[N * n_out :, np.flatnonzero(mask)] = np.sqrt(arch.l2 / 2.0) * np.eye(n_weights)
    return Jac
