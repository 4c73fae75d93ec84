r"""The multilayer perceptron over one flat parameter vector, with hand-derived backprop.

Notation (DESIGN.md): ``A_0 = X`` of shape ``(N, n_in)``; layer ``l = 1..L`` has
``W_l`` ``(n_l, n_{l-1})`` and ``b_l`` ``(n_l,)``; ``Z_l = A_{l-1} W_l^T + b_l`` and
``A_l = f_l(Z_l)``.  The objective is

.. math::  J(\theta) = \sum_i \omega_i l_i + \tfrac{\lambda}{2} \sum_l \|W_l\|_F^2,
           \qquad \omega_i = w_i / \textstyle\sum_j w_j .

Backprop carries ``D_l = dJ/dZ_l`` (shape ``(N, n_l)``) from the output down:
``D_L`` from the loss, ``dJ/dW_l = D_l^T A_{l-1} + \lambda W_l``, ``dJ/db_l = 1^T D_l``,
``D_{l-1} = (D_l W_l) \odot f'_{l-1}(Z_{l-1})``.  The derivation is in ``docs/math.md``.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from . import curvature
from ._validation import (
    FloatArray,
    check_out,
    check_sample_weight,
    check_seed,
    check_theta,
    check_vector,
    check_X,
    require_finite_result,
)
from .activations import Activation, get_activation
from .layout import Layout
from .losses import Loss, get_loss
from .workspace import Workspace

Array = np.ndarray

WORKSPACE_CACHE_BYTES = 2**28
"""A thread keeps the buffers of its last public evaluation (:meth:`MLP.loss_and_grad`,
:meth:`MLP.hessp`, ...) for its next one when they take at most this many bytes (256 MiB),
the curvature products' buffers included; larger evaluations allocate theirs call by call."""


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


def _check_sizes(sizes: Any) -> tuple[int, ...]:
    if (
        isinstance(sizes, (str, bytes))
        or not isinstance(sizes, Sequence | np.ndarray)
        or (isinstance(sizes, np.ndarray) and sizes.ndim != 1)
    ):
        shape = f" of shape {sizes.shape}" if isinstance(sizes, np.ndarray) else ""
        what = type(sizes).__name__ + shape
        raise TypeError(f"sizes must be a sequence of ints, got {what}")
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"sizes must be a sequence of ints, got {s!r} in {list(sizes)}")
        out.append(int(s))
    if len(out) < 2:
        raise ValueError(f"sizes must have at least 2 entries [n_in, ..., n_out], got {out}")
    if min(out) < 1:
        raise ValueError(f"every width in sizes must be at least 1, got {out}")
    return tuple(out)


class MLP:
    """A fully connected network whose parameters live in one flat float64 vector.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_in, h_1, ..., n_out]``, each at least 1.
    activation : str or sequence of str, default "tanh"
        Hidden activation: one name for every hidden layer, or one name per hidden layer.
        Names are in :data:`nncore.activations.ACTIVATIONS`; ``softmax`` is output-only.
    output : str, optional
        Output activation.  Defaults from the loss: mse -> identity, bce -> sigmoid,
        cross_entropy -> softmax.  bce requires sigmoid and cross_entropy softmax.
    loss : {"mse", "bce", "cross_entropy"}, default "mse"
    l2 : float, default 0.0
        ``0.5 * l2 * sum_l ||W_l||_F^2`` is added to the objective (biases not penalised).

    Notes
    -----
    The network holds no parameters: every method takes ``theta`` first and the data
    after it, so ``minimize(net.loss, theta0, args=(X, y), jac=net.grad)`` works as written.
    Inputs are never modified.

    What it does keep is scratch memory: each thread's ``loss``, ``grad``, ``loss_and_grad``,
    ``hessp``, ``gnvp``, ``residuals`` and ``jacobian`` calls reuse the buffers of that
    thread's last call when it had as many rows (up to :data:`WORKSPACE_CACHE_BYTES` of them),
    so repeated calls on one data set allocate nothing large.  Results are always new arrays
    (or the ``out=`` the caller passed), never those buffers.  Repeated evaluation on fixed data
    is cheaper still through :meth:`objective`, which also validates the data only once.

    Examples
    --------
    The network of the seed example, 2-2-1 with tanh hidden units and a sigmoid output:

    >>> import numpy as np, nncore
    >>> net = nncore.MLP([2, 2, 1], activation="tanh", output="sigmoid", loss="mse")
    >>> net.n_params
    9
    >>> net.param_name(7)
    'layer 2: W[0, 1]'
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | Sequence[str] = "tanh",
        output: str | None = None,
        loss: str = "mse",
        l2: float = 0.0,
    ) -> None:
        sizes = _check_sizes(sizes)
        loss_rec = get_loss(loss)
        n_hidden = len(sizes) - 2
        if isinstance(activation, str):
            names = [activation] * n_hidden
        elif isinstance(activation, Sequence) and not isinstance(activation, (bytes, bytearray)):
            names = list(activation)
        else:
            raise TypeError(
                f"activation must be a name or a sequence of names (strings), "
                f"got {type(activation).__name__}"
            )
        if len(names) != n_hidden:
            raise ValueError(
                f"activation must be one name or {n_hidden} names (one per hidden layer), "
                f"got {len(names)}"
            )
        hidden = [get_activation(name) for name in names]
        for layer, act in enumerate(hidden, start=1):
            if act.name == "softmax":
                raise ValueError(
                    "softmax is allowed only as the output activation, "
                    f"got it in hidden layer {layer}"
                )
        out = get_activation(loss_rec.default_output if output is None else output)
        if loss_rec.required_output is not None and out.name != loss_rec.required_output:
            raise ValueError(
                f"loss {loss_rec.name!r} needs output activation "
                f"{loss_rec.required_output!r}, got {out.name!r}"
            )
        if isinstance(l2, bool) or not isinstance(l2, numbers.Real):
            raise TypeError(f"l2 must be a real number, got {type(l2).__name__}")
        l2 = float(l2)  # a Fraction or Decimal too
        if not (np.isfinite(l2) and l2 >= 0):
            raise ValueError(f"l2 must be finite and >= 0, got {l2}")

        self.sizes: tuple[int, ...] = sizes
        self.layout = Layout(sizes)
        self._acts: tuple[Activation, ...] = (*hidden, out)
        self._loss: Loss = loss_rec
        self.l2 = float(l2)
        self._local = threading.local()  # each thread's last workspace (_workspace)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_local"]  # buffers, not state; and threading.local does not pickle
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # -- description -------------------------------------------------------------------
    @property
    def activations(self) -> tuple[str, ...]:
        """Canonical activation name of each layer ``1..L`` (the last is the output's)."""
        return tuple(act.name for act in self._acts)

    @property
    def output(self) -> str:
        """The output activation's name."""
        return self._acts[-1].name

    @property
    def loss_name(self) -> str:
        """The loss's name: ``"mse"``, ``"bce"`` or ``"cross_entropy"``."""
        return self._loss.name

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return self.layout.n_params

    def __repr__(self) -> str:
        hidden = list(self.activations[:-1])
        return (
            f"MLP({list(self.sizes)}, activation={hidden}, output={self.output!r}, "
            f"loss={self.loss_name!r}, l2={self.l2})"
        )

    # -- parameters --------------------------------------------------------------------
    def unpack(self, theta: Any) -> list[tuple[FloatArray, FloatArray]]:
        """Split ``theta`` into ``[(W_1, b_1), ..., (W_L, b_L)]``, zero-copy views.

        ``W_l`` has shape ``(n_l, n_{l-1})`` and ``b_l`` shape ``(n_l,)``.  The views share
        memory with ``theta`` when it is a C-contiguous float64 array (otherwise with the
        converted copy).
        """
        return self.layout.unpack(check_theta(theta, self.n_params))

    def pack(self, pairs: Sequence[tuple[Any, Any]]) -> FloatArray:
        """Inverse of :meth:`unpack`: a new flat vector from ``[(W_l, b_l), ...]``."""
        return self.layout.pack(pairs)

    def param_name(self, index: int) -> str:
        """Name of entry ``index`` of theta, e.g. ``"layer 2: W[0, 1]"`` (layers from 1)."""
        return self.layout.param_name(index)

    def init(self, seed: int | np.random.Generator | None = None) -> FloatArray:
        """Random initial parameters, scaled per layer for its activation.

        Relu-like layers (relu, leaky_relu, elu, gelu, silu, softplus) get He-normal
        weights, ``N(0, 2 / n_{l-1})``; the others (tanh, sigmoid, identity, softmax)
        Glorot-uniform, ``U(-r, r)`` with ``r = sqrt(6 / (n_{l-1} + n_l))``.  Biases are 0.

        Parameters
        ----------
        seed : int, numpy.random.Generator or None
            Passed to :func:`numpy.random.default_rng` (a Generator is used as is).
        """
        check_seed(seed)
        rng = np.random.default_rng(seed)
        theta = np.zeros(self.n_params)
        for (W, _), act in zip(self.layout.unpack(theta), self._acts):
            n_out, n_in = W.shape
            if act.he_init:
                W[...] = rng.normal(0.0, np.sqrt(2.0 / n_in), size=W.shape)
            else:
                r = np.sqrt(6.0 / (n_in + n_out))
                W[...] = rng.uniform(-r, r, size=W.shape)
        return theta

    # -- data --------------------------------------------------------------------------
    def batch(self, X: Any, y: Any, sample_weight: Any = None) -> Batch:
        """Validate ``(X, y, sample_weight)`` once and return the :class:`Batch` used inside.

        ``Y`` is stored F-ordered, the layout of the kernels' buffers (:mod:`nncore.workspace`).
        Raises ``TypeError``/``ValueError`` for wrong types, shapes, non-finite values,
        targets the loss does not accept, and negative or all-zero weights.
        """
        Xc = check_X(X, self.sizes[0])
        n = Xc.shape[0]
        Y = np.asfortranarray(self._loss.targets(y, n, self.sizes[-1]))
        return Batch(Xc, Y, check_sample_weight(sample_weight, n))

    # -- kernels -----------------------------------------------------------------------
    def forward(self, theta: Any, X: Any) -> Cache:
        """Forward pass: ``Z_l = A_{l-1} W_l^T + b_l``, ``A_l = f_l(Z_l)``.

        Returns
        -------
        Cache
            ``Z = (Z_1..Z_L)`` and ``A = (A_0..A_L)``, each ``(N, n_l)``, new arrays.
        """
        theta = check_theta(theta, self.n_params)
        return self._forward(self.layout.unpack(theta), check_X(X, self.sizes[0]))

    def _forward(
        self, params: list[tuple[Array, Array]], X: Array, ws: Workspace | None = None
    ) -> Cache:
        """The forward cache, in the buffers of ``ws`` (a new workspace when ``None``)."""
        if ws is None:
            ws = Workspace(self, X.shape[0])
        Z, A, log_A_L = [], [X], None
        log_output = self._loss.log_output  # cross_entropy: log A_L first, then A_L
        for k, ((W, b), act, zt, a) in enumerate(zip(params, self._acts, ws.ZT, ws.A)):
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

    def predict(self, theta: Any, X: Any) -> FloatArray:
        """Network output ``A_L``, shape ``(N, n_out)``, a new C-ordered array."""
        output = np.ascontiguousarray(self.forward(theta, X).A[-1])
        return require_finite_result(output, "the output")

    def _value(self, params: list[tuple[Array, Array]], cache: Cache, batch: Batch) -> float:
        """``J`` from a forward cache: weighted mean of per-sample losses plus the l2 term."""
        return self._data_value(cache, batch) + self._l2_value(params)

    def _data_value(self, cache: Cache, batch: Batch) -> float:
        """``sum_i omega_i l_i`` (``mean_i l_i`` without weights)."""
        per_sample = self._loss.per_sample(cache.Z[-1], cache.A[-1], batch.Y, cache.log_A_L)
        if batch.omega is None:  # the mean as np.mean computes it: the sum, then / N
            return float(per_sample.sum() / per_sample.shape[0])
        return float(np.dot(batch.omega, per_sample))

    def _l2_value(self, params: list[tuple[Array, Array]]) -> float:
        """``0.5 * l2 * sum_l ||W_l||_F^2``."""
        if not self.l2:
            return 0.0
        return 0.5 * self.l2 * float(sum(np.dot(W.ravel(), W.ravel()) for W, _ in params))

    def _weigh(self, M: Array, batch: Batch) -> Array:
        """Multiply row ``i`` of ``M`` by ``omega_i`` (``1/N`` without weights), in place."""
        if batch.omega is None:
            M *= 1.0 / M.shape[0]
        else:
            M *= batch.omega[:, None]
        return M

    def _backward(
        self,
        params: list[tuple[Array, Array]],
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
        D = self._weigh(self._loss.output_grad(Z_L, A_L, batch.Y, ws.D[-1]), batch)
        if not self._loss.fused:
            D = self._acts[-1].vjp(D, Z_L, A_L, ws.S[-1])  # D_L = dJ/dZ_L
        return self._backprop(params, cache, D, ws, params if with_l2 else None, out)

    def _backprop(
        self,
        params: list[tuple[Array, Array]],
        cache: Cache,
        D: Array,
        ws: Workspace,
        l2_blocks: list[tuple[Array, Array]] | None,
        out: FloatArray | None = None,
    ) -> FloatArray:
        """Carry ``D_L`` (N, n_L) down the layers: ``D_l^T A_{l-1} + l2 * M_l`` and ``1^T D_l``
        per layer, with ``M_l`` the weight block of ``l2_blocks`` (``W_l`` for the gradient,
        ``V_l`` for the Gauss-Newton product; ``None``: no l2 term).  The hidden deltas go to
        ``ws.D``; the result is written into ``out`` (a new array when ``None``).  ``D`` may be
        overwritten."""
        g = np.empty(self.n_params) if out is None else out
        grads = ws.g_blocks if g is ws.g else self.layout.unpack(g)
        for k in range(len(params) - 1, -1, -1):  # 0-based index k: layer l = k + 1
            W = params[k][0]
            gW, gb = grads[k]
            # dJ/dW_l^T = A_{l-1}^T D_l: (n_{l-1}, N) @ (N, n_l), written into gW's transpose
            np.matmul(cache.A[k].T, D, out=gW.T)
            np.add.reduce(D, axis=0, out=gb)
            if self.l2 and l2_blocks is not None:
                gW += self.l2 * l2_blocks[k][0]
            if k > 0:  # the input gradient D_1 W_1 is never needed
                D = np.matmul(D, W, out=ws.D[k - 1])  # (N, n_l) @ (n_l, n_{l-1})
                D = self._acts[k - 1].vjp(D, cache.Z[k - 1], cache.A[k], ws.S[k - 1])
        return g

    # -- public objective --------------------------------------------------------------
    def loss(self, theta: Any, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The objective ``J(theta)`` (weighted mean loss plus l2 term).

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
        X : ndarray of shape (n_samples, n_in)
        y : ndarray
            mse/bce: shape ``(n_samples,)`` when ``n_out == 1`` or ``(n_samples, n_out)``;
            cross_entropy: integer labels ``(n_samples,)`` or probability rows.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.
        """
        params, cache, batch, _ = self._prepared(theta, X, y, sample_weight)
        return require_finite_result(self._value(params, cache, batch), "the loss")

    def grad(
        self,
        theta: Any,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        out: FloatArray | None = None,
    ) -> FloatArray:
        """``dJ/dtheta`` by backprop, shape ``(n_params,)``, in the layout of theta.

        ``out``, a C-contiguous float64 array of shape ``(n_params,)`` that overlaps neither
        ``theta`` nor the data, receives the gradient and is returned; otherwise a new array
        is.  Raises ``ValueError`` when the loss or gradient overflows float64 (inputs far
        too large for the network), rather than returning inf or NaN.
        """
        return self.loss_and_grad(theta, X, y, sample_weight, out=out)[1]

    def loss_and_grad(
        self,
        theta: Any,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        out: FloatArray | None = None,
    ) -> tuple[float, FloatArray]:
        """``(J, dJ/dtheta)`` from one forward pass, for ``minimize(..., jac=True)``.

        ``out`` as for :meth:`grad`.
        """
        if out is not None:  # the inputs as given: a converted copy cannot overlap out
            check_out(out, self.n_params, theta=theta, X=X, y=y, sample_weight=sample_weight)
        params, cache, batch, ws = self._prepared(theta, X, y, sample_weight)
        J = require_finite_result(self._value(params, cache, batch), "the loss")
        g = self._backward(params, cache, batch, ws, out=out)
        return J, require_finite_result(g, "the gradient")

    # -- evaluation state ------------------------------------------------------------
    def _workspace(self, N: int) -> Workspace:
        """The calling thread's workspace for ``N`` rows, for the public evaluations.

        The workspace of the thread's last call is reused when it had ``N`` rows too;
        otherwise it is released and a new one made, kept for the next call when its buffers
        (those of the curvature products included) take at most
        :data:`WORKSPACE_CACHE_BYTES`.  The public calls never return its buffers: their
        results are new arrays (or the caller's ``out=``).  Threads never share one.
        """
        ws = getattr(self._local, "ws", None)
        if ws is not None and ws.N == N:
            return ws
        self._local.ws = None  # release the old buffers before allocating new ones
        ws = Workspace(self, N)
        if ws.max_nbytes <= WORKSPACE_CACHE_BYTES:
            self._local.ws = ws
        return ws

    def _prepared(self, theta: Any, X: Any, y: Any, sample_weight: Any):
        theta = check_theta(theta, self.n_params)
        batch = self.batch(X, y, sample_weight)
        params = self.layout.unpack(theta)
        ws = self._workspace(batch.X.shape[0])
        return params, self._forward(params, batch.X, ws), batch, ws

    # -- curvature (nncore.curvature) -------------------------------------------------
    def hessp(self, theta: Any, v: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """Exact Hessian-vector product ``(d^2 J / d theta^2) v``, shape ``(n_params,)``.

        Pearlmutter's R-operator: a forward pass of directional derivatives, then the
        backward pass differentiated along ``v`` (``docs/math.md``, section 9).  It costs
        ``8L - 5`` matrix products against ``3L - 1`` for a gradient (at most 8/3 of one;
        about 2x measured); never a finite difference, never the full Hessian.  At a relu-like
        kink the second derivative is taken as 0, the product JAX's autodiff computes.
        """
        v = check_vector(v, self.n_params)
        params, cache, batch, ws = self._prepared(theta, X, y, sample_weight)
        Hv = curvature.hessp(self, params, cache, batch, v, ws)
        return require_finite_result(Hv, "the Hessian-vector product")

    def gnvp(self, theta: Any, v: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """Gauss-Newton (Fisher, for bce and cross_entropy) matrix times ``v``.

        ``J^T H_out J v + l2 V``, with ``J`` the Jacobian of the output (``A_L`` for mse,
        the logits ``Z_L`` for the fused losses) and ``H_out`` the loss curvature there:
        positive semi-definite by construction.
        """
        v = check_vector(v, self.n_params)
        params, cache, batch, ws = self._prepared(theta, X, y, sample_weight)
        Gv = curvature.gnvp(self, params, cache, batch, v, ws)
        return require_finite_result(Gv, "the Gauss-Newton-vector product")

    def hessian(self, theta: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """The full, symmetric Hessian ``(n_params, n_params)`` for small networks.

        Built column by column from :meth:`hessp` (one forward pass, ``n_params`` R-passes).
        """
        return self.objective(X, y, sample_weight).hess(theta)

    def _require_mse(self, what: str) -> None:
        if self.loss_name != "mse":
            raise ValueError(f"{what} is defined for loss 'mse' only, got {self.loss_name!r}")

    def residuals(self, theta: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """mse residuals ``r`` with ``sum(r**2) == loss(theta, X, y, sample_weight)``.

        ``r[i * n_out + k] = sqrt(omega_i / n_out) (A_L[i, k] - y[i, k])``, then, when
        ``l2 > 0``, ``sqrt(l2 / 2) W_l.ravel()`` for every layer (biases carry no residual).
        Shape ``(N * n_out [+ n_weights],)``.
        """
        self._require_mse("residuals")
        params, cache, batch, _ = self._prepared(theta, X, y, sample_weight)
        return require_finite_result(curvature.residuals(self, params, cache, batch), "residuals")

    def jacobian(self, theta: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """Jacobian of :meth:`residuals`, shape ``(len(residuals), n_params)``."""
        self._require_mse("jacobian")
        params, cache, batch, _ = self._prepared(theta, X, y, sample_weight)
        jac = curvature.jacobian(self, params, cache, batch)
        return require_finite_result(jac, "the residual Jacobian")

    def objective(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        chunk_size: int | None = None,
        n_jobs: int = 1,
    ):
        """An :class:`nncore.objective.Objective` bound to validated data.

        Its ``fun``, ``jac``, ``fun_and_jac``, ``hessp`` and ``gnvp`` share one forward pass
        per theta; with ``chunk_size`` they run over chunks of rows in bounded memory (on
        ``n_jobs`` threads).
        """
        from .objective import Objective

        return Objective(self, X, y, sample_weight, chunk_size=chunk_size, n_jobs=n_jobs)
