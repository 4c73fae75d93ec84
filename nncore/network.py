r"""The public network: :class:`MLP`, a fully connected network over one flat parameter vector.

``MLP`` holds an immutable :class:`~nncore.architecture.Architecture` and the per-thread
buffers of its public calls (:class:`~nncore.workspace.ThreadWorkspaces`); every method
validates its arguments and delegates the numerics to the kernels: the forward pass and
backprop in :mod:`nncore.kernels`, the curvature products and residuals in
:mod:`nncore.curvature`, repeated evaluation on fixed data to :class:`nncore.Objective`.
The mathematics (DESIGN.md's notation) is in those modules and in ``docs/math.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import curvature, kernels
from ._validation import (
    FloatArray,
    check_out,
    check_seed,
    check_theta,
    check_vector,
    check_X,
    require_finite_result,
)
from .architecture import Architecture, architecture, init_theta
from .kernels import Batch, Cache
from .layout import Layout
from .objective import Objective
from .workspace import WORKSPACE_CACHE_BYTES, ThreadWorkspaces

__all__ = ["MLP", "Batch", "Cache", "WORKSPACE_CACHE_BYTES"]


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

    Attributes
    ----------
    arch : Architecture
        The immutable record the kernels read (:mod:`nncore.architecture`): sizes,
        activation and loss records, layout, l2.  ``sizes``, ``layout``, ``l2``,
        ``activations``, ``output``, ``loss_name`` and ``n_params`` are read from it.

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
        self.arch: Architecture = architecture(sizes, activation, output, loss, l2)
        self._workspaces = ThreadWorkspaces(self.arch)  # each thread's last buffers

    # -- description -------------------------------------------------------------------
    @property
    def sizes(self) -> tuple[int, ...]:
        """``(n_in, h_1, ..., n_out)``."""
        return self.arch.sizes

    @property
    def layout(self) -> Layout:
        """The :class:`~nncore.layout.Layout` of theta: offsets, shapes, names, views."""
        return self.arch.layout

    @property
    def l2(self) -> float:
        """The l2 coefficient: ``0.5 * l2 * sum_l ||W_l||_F^2`` is in the objective."""
        return self.arch.l2

    @property
    def activations(self) -> tuple[str, ...]:
        """Canonical activation name of each layer ``1..L`` (the last is the output's)."""
        return tuple(act.name for act in self.arch.acts)

    @property
    def output(self) -> str:
        """The output activation's name."""
        return self.arch.acts[-1].name

    @property
    def loss_name(self) -> str:
        """The loss's name: ``"mse"``, ``"bce"`` or ``"cross_entropy"``."""
        return self.arch.loss.name

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return self.arch.n_params

    def __repr__(self) -> str:
        hidden = list(self.activations[:-1])
        return (
            f"MLP({list(self.sizes)}, activation={hidden}, output={self.output!r}, "
            f"loss={self.loss_name!r}, l2={self.l2})"
        )

    # -- parameters --------------------------------------------------------------------
    def unpack(self, theta: Any) -> list[tuple[FloatArray, FloatArray]]:
        """Split ``theta`` into ``[(W_1, b_1), ..., (W_L, b_L)]``, zero-copy views.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).

        Returns
        -------
        list of (ndarray, ndarray)
            ``W_l`` has shape ``(n_l, n_{l-1})`` and ``b_l`` shape ``(n_l,)``.  The views share
            memory with ``theta`` when it is a C-contiguous float64 array (otherwise with the
            converted copy).
        """
        return self.layout.unpack(check_theta(theta, self.n_params))

    def pack(self, pairs: Sequence[tuple[Any, Any]]) -> FloatArray:
        """Inverse of :meth:`unpack`: a new flat vector from ``[(W_l, b_l), ...]``.

        Parameters
        ----------
        pairs : sequence of (array_like, array_like)
            ``[(W_1, b_1), ..., (W_L, b_L)]``, ``W_l`` of shape ``(n_l, n_{l-1})`` and ``b_l``
            of shape ``(n_l,)``.

        Returns
        -------
        theta : ndarray of shape (n_params,)
            A new float64 vector.

        Raises
        ------
        ValueError
            When the number of layers, a block's shape or a value (not finite) is wrong.
        TypeError
            When a block is not real numbers.
        """
        return self.layout.pack(pairs)

    def param_name(self, index: int) -> str:
        """Name of entry ``index`` of theta, e.g. ``"layer 2: W[0, 1]"`` (layers from 1).

        Parameters
        ----------
        index : int
            A position in theta, ``0 <= index < n_params``.

        Returns
        -------
        str
            ``"layer l: W[j, k]"`` or ``"layer l: b[j]"``.

        Raises
        ------
        TypeError
            When ``index`` is not an int.
        IndexError
            When ``index`` is outside ``[0, n_params)``.
        """
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

        Returns
        -------
        theta : ndarray of shape (n_params,)
            A new flat parameter vector.
        """
        check_seed(seed)
        return init_theta(self.arch, np.random.default_rng(seed))

    # -- data --------------------------------------------------------------------------
    def batch(self, X: Any, y: Any, sample_weight: Any = None) -> Batch:
        """Validate ``(X, y, sample_weight)`` once and return the :class:`Batch` used inside.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as :meth:`loss` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.

        Returns
        -------
        Batch
            ``X`` ``(n_samples, n_in)``, the targets ``Y`` ``(n_samples, n_out)`` and
            ``omega = w / sum(w)`` ``(n_samples,)`` or None for equal weights.  ``Y`` is stored
            F-ordered, the layout of the kernels' buffers (:mod:`nncore.workspace`).

        Raises
        ------
        TypeError, ValueError
            For wrong types, shapes, non-finite values, targets the loss does not accept,
            and negative or all-zero weights.
        """
        return kernels.make_batch(self.arch, X, y, sample_weight)

    # -- kernels -----------------------------------------------------------------------
    def forward(self, theta: Any, X: Any) -> Cache:
        """Forward pass: ``Z_l = A_{l-1} W_l^T + b_l``, ``A_l = f_l(Z_l)``.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        X : ndarray of shape (n_samples, n_in)
            The inputs.

        Returns
        -------
        Cache
            ``Z = (Z_1..Z_L)`` and ``A = (A_0..A_L)``, each ``(N, n_l)``, new arrays.
        """
        theta = check_theta(theta, self.n_params)
        return kernels.forward(self.arch, self.layout.unpack(theta), check_X(X, self.sizes[0]))

    def predict(self, theta: Any, X: Any) -> FloatArray:
        """Network output ``A_L``.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        X : ndarray of shape (n_samples, n_in)
            The inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_out)
            ``A_L``, a new C-ordered array.
        """
        output = np.ascontiguousarray(self.forward(theta, X).A[-1])
        return require_finite_result(output, "the output")

    # -- public objective --------------------------------------------------------------
    def loss(self, theta: Any, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The objective ``J(theta)`` (weighted mean loss plus l2 term).

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            mse/bce: shape ``(n_samples,)`` when ``n_out == 1`` or ``(n_samples, n_out)``;
            cross_entropy: integer labels ``(n_samples,)`` or probability rows.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.

        Returns
        -------
        float
            ``J = sum_i w_i l_i / sum_i w_i + 0.5 * l2 * sum_l ||W_l||_F^2``.
        """
        params, cache, batch, _ = self._prepared(theta, X, y, sample_weight)
        return require_finite_result(kernels.value(self.arch, params, cache, batch), "the loss")

    def grad(
        self,
        theta: Any,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        out: FloatArray | None = None,
    ) -> FloatArray:
        """``dJ/dtheta`` by backprop, in the layout of theta.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as :meth:`loss` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.
        out : ndarray of shape (n_params,), optional
            A C-contiguous float64 array that overlaps neither ``theta`` nor the data; it
            receives the gradient and is returned.  Otherwise a new array is.

        Returns
        -------
        ndarray of shape (n_params,)
            The gradient: ``out`` when given, else a new array.

        Raises
        ------
        ValueError
            When the loss or gradient overflows float64 (inputs far too large for the
            network), rather than returning inf or NaN.
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

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as :meth:`loss` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.
        out : ndarray of shape (n_params,), optional
            As for :meth:`grad`: receives the gradient.

        Returns
        -------
        J : float
            The objective, as :meth:`loss`.
        grad : ndarray of shape (n_params,)
            ``dJ/dtheta``, as :meth:`grad` (``out`` when given).

        Raises
        ------
        ValueError
            When the loss or gradient overflows float64 (inputs far too large for the
            network), rather than returning inf or NaN.
        """
        if out is not None:  # the inputs as given: a converted copy cannot overlap out
            check_out(out, self.n_params, theta=theta, X=X, y=y, sample_weight=sample_weight)
        params, cache, batch, ws = self._prepared(theta, X, y, sample_weight)
        J = require_finite_result(kernels.value(self.arch, params, cache, batch), "the loss")
        g = kernels.backward(self.arch, params, cache, batch, ws, out=out)
        return J, require_finite_result(g, "the gradient")

    # -- evaluation state ------------------------------------------------------------
    def _prepared(self, theta: Any, X: Any, y: Any, sample_weight: Any):
        """Validate, then run the forward pass in the calling thread's workspace."""
        theta = check_theta(theta, self.n_params)
        batch = self.batch(X, y, sample_weight)
        params = self.layout.unpack(theta)
        ws = self._workspaces.get(batch.X.shape[0])
        return params, kernels.forward(self.arch, params, batch.X, ws), batch, ws

    # -- curvature (nncore.curvature) -------------------------------------------------
    def hessp(self, theta: Any, v: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """Exact Hessian-vector product ``(d^2 J / d theta^2) v``.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        v : ndarray of shape (n_params,)
            The direction, in the layout of theta.
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as :meth:`loss` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.

        Returns
        -------
        ndarray of shape (n_params,)
            ``H v``, a new array.

        Notes
        -----
        Pearlmutter's R-operator: a forward pass of directional derivatives, then the
        backward pass differentiated along ``v`` (``docs/math.md``, section 9).  It costs
        ``8L - 5`` matrix products against ``3L - 1`` for a gradient (at most 8/3 of one;
        about 2x measured); never a finite difference, never the full Hessian.  At a relu-like
        kink the second derivative is taken as 0, the product JAX's autodiff computes.
        """
        v = check_vector(v, self.n_params)
        params, cache, batch, ws = self._prepared(theta, X, y, sample_weight)
        Hv = curvature.hessp(self.arch, params, cache, batch, v, ws)
        return require_finite_result(Hv, "the Hessian-vector product")

    def gnvp(self, theta: Any, v: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """Gauss-Newton (Fisher, for bce and cross_entropy) matrix times ``v``.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        v : ndarray of shape (n_params,)
            The direction, in the layout of theta.
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as :meth:`loss` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.

        Returns
        -------
        ndarray of shape (n_params,)
            ``J^T H_out J v + l2 V``, a new array.

        Notes
        -----
        ``J`` is the Jacobian of the output (``A_L`` for mse, the logits ``Z_L`` for the fused
        losses) with respect to theta, ``H_out`` the loss curvature there, and ``V`` is ``v``
        with its bias entries set to 0 (biases are not penalised): positive semi-definite by
        construction.
        """
        v = check_vector(v, self.n_params)
        params, cache, batch, ws = self._prepared(theta, X, y, sample_weight)
        Gv = curvature.gnvp(self.arch, params, cache, batch, v, ws)
        return require_finite_result(Gv, "the Gauss-Newton-vector product")

    def hessian(self, theta: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """The full, symmetric Hessian for small networks.

        Built column by column from :meth:`hessp` (one forward pass, ``n_params`` R-passes).

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as :meth:`loss` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.

        Returns
        -------
        ndarray of shape (n_params, n_params)
            ``d^2 J / d theta^2``.
        """
        return self.objective(X, y, sample_weight).hess(theta)

    def residuals(self, theta: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """mse residuals ``r`` with ``sum(r**2) == loss(theta, X, y, sample_weight)``.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as :meth:`loss` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.

        Returns
        -------
        r : ndarray of shape (n_samples * n_out [+ n_weights],)
            ``r[i * n_out + k] = sqrt(omega_i / n_out) (A_L[i, k] - y[i, k])``, then, when
            ``l2 > 0``, ``sqrt(l2 / 2) W_l.ravel()`` for every layer (biases carry no
            residual).

        Raises
        ------
        ValueError
            When the loss is not mse.
        """
        curvature.require_mse(self.arch, "residuals")
        params, cache, batch, _ = self._prepared(theta, X, y, sample_weight)
        r = curvature.residuals(self.arch, params, cache, batch)
        return require_finite_result(r, "residuals")

    def jacobian(self, theta: Any, X: Any, y: Any, sample_weight: Any = None) -> FloatArray:
        """Jacobian of :meth:`residuals`.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`).
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as :meth:`loss` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.

        Returns
        -------
        ndarray of shape (len(residuals), n_params)
            ``dr / dtheta``.

        Raises
        ------
        ValueError
            When the loss is not mse.
        """
        curvature.require_mse(self.arch, "jacobian")
        params, cache, batch, _ = self._prepared(theta, X, y, sample_weight)
        jac = curvature.jacobian(self.arch, params, cache, batch)
        return require_finite_result(jac, "the residual Jacobian")

    def objective(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        chunk_size: int | None = None,
        n_jobs: int = 1,
    ) -> Objective:
        """An :class:`nncore.objective.Objective` bound to validated data.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as :meth:`loss` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.
        chunk_size : int, optional
            Rows per chunk: with it, the objective runs over chunks of rows in bounded memory.
            None: all rows at once.
        n_jobs : int, default 1
            Threads the chunks run on (needs ``chunk_size``).

        Returns
        -------
        Objective
            Its ``fun``, ``jac``, ``fun_and_jac``, ``hessp`` and ``gnvp`` share one forward
            pass per theta; with ``chunk_size`` they run over chunks of rows in bounded memory
            (on ``n_jobs`` threads).
        """
        return Objective(self, X, y, sample_weight, chunk_size=chunk_size, n_jobs=n_jobs)
