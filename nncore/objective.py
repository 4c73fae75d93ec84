"""An objective bound to one data set, sharing the forward pass between fun, jac and hessp.

scipy calls ``fun`` and ``jac`` (or the fused ``fun_and_jac``) and ``hessp`` at the same
point many times; :class:`Objective` validates the data once, and keeps the forward cache,
``J`` and the gradient of the last theta it saw, keyed on a copy of that theta (as scipy's
own ``ScalarFunction`` does: never a reference the caller could change).

Every pass calls the kernels of :mod:`nncore.kernels` and :mod:`nncore.curvature` on the
network's :class:`~nncore.architecture.Architecture`, in a
:class:`~nncore.workspace.Workspace` the objective keeps: its buffers
are allocated at the first call and reused by every later one, so a call allocates nothing
larger than ``(N, n_out)``.  Results handed to the caller are always copies.

With ``chunk_size`` the rows are processed in chunks: loss, gradient and curvature products
are accumulated exactly (the same weighted mean, to round-off) and the working memory is
``O(chunk_size x widest layer)`` whatever ``N``; no forward cache is kept then.  With
``n_jobs > 1`` the chunks run on a thread pool, each thread with one BLAS thread
(threadpoolctl), so that element-wise work uses every core and BLAS does not oversubscribe.
Thread ``j`` takes chunks ``j, j + n_jobs, ...`` and keeps its own running sums, which are
added in thread order: the result does not depend on timing.

The objective holds the validated data, which for float64 arrays are the caller's own
(a copy would double the memory of large data sets): changing ``X``, ``y`` or the weights in
place while it is in use leaves its cached point stale.  A loss, gradient or product that
overflows float64 raises ``ValueError`` when it is asked for; an optimiser never receives an
inf or NaN from it (:func:`nncore.train` alone lets its line searches see inf at a trial
point, then checks the result).
"""

from __future__ import annotations

import numbers
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from . import curvature, kernels
from ._validation import FloatArray, check_theta, check_vector, require_finite_result
from .architecture import Architecture
from .kernels import Batch
from .workspace import Spaces

JACOBIAN_BLOCK_BYTES = 2**25
"""At most this many bytes (32 MiB) of residual Jacobian exist at once when the Gauss-Newton
matrix of mse is built from it (:meth:`Objective.hess`)."""


class Objective:
    """``J(theta)``, its gradient and curvature products on fixed data, for scipy.

    Parameters
    ----------
    net : MLP
    X, y, sample_weight
        As for :meth:`MLP.loss`; validated once here.
    chunk_size : int, optional
        Process at most this many rows at a time (bounded memory; see the module notes).
    n_jobs : int, default 1
        Threads for the chunks (needs ``chunk_size``).  On 2-core machines it showed no
        consistent gain over the same chunks on one thread with 2 BLAS threads
        (``benchmarks/second_core.py``, docs/benchmarks.md): numpy's element-wise work gains
        little from a thread while the BLAS worker spins on the other core.

    Attributes
    ----------
    nfev : int
        Number of forward passes over the data (each gives ``J``, and the residuals for mse).
    njev : int
        Number of backward passes (each gives the gradient, or the residual Jacobian).
    nhev : int
        Number of Hessian- or Gauss-Newton-vector products (a full Hessian counts
        ``n_params``).
    """

    def __init__(
        self,
        net: Any,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        chunk_size: int | None = None,
        n_jobs: int = 1,
    ) -> None:
        arch = architecture_of(net)
        self._setup(net, kernels.make_batch(arch, X, y, sample_weight), chunk_size, n_jobs)

    @classmethod
    def from_batch(
        cls, net: Any, batch: Batch, chunk_size: int | None = None, n_jobs: int = 1
    ) -> Objective:
        """An objective on data already validated by :meth:`MLP.batch`.

        Parameters
        ----------
        net : MLP
            The network whose loss the objective evaluates.
        batch : Batch
            The data, as :meth:`MLP.batch` returns it (``net.batch(X, y, sample_weight)``);
            not validated again.
        chunk_size : int, optional
            Process at most this many rows at a time (bounded memory; see the module notes).
        n_jobs : int, default 1
            Threads for the chunks (needs ``chunk_size``).

        Returns
        -------
        Objective
            The same objective as ``Objective(net, X, y, sample_weight, chunk_size, n_jobs)``.

        Raises
        ------
        TypeError
            When ``net`` is not an nncore MLP, ``batch`` not a :class:`Batch`, or
            ``chunk_size`` or ``n_jobs`` not an int.
        ValueError
            When ``chunk_size`` or ``n_jobs`` is below 1, or ``n_jobs > 1`` without a
            ``chunk_size``.
        ImportError
            When ``n_jobs > 1`` and threadpoolctl is not installed.
        """
        architecture_of(net)
        if not isinstance(batch, Batch):
            raise TypeError(
                f"batch must be an nncore Batch (net.batch(X, y)), got {type(batch).__name__}"
            )
        self = cls.__new__(cls)
        self._setup(net, batch, chunk_size, n_jobs)
        return self

    def _setup(self, net: Any, batch: Batch, chunk_size: int | None, n_jobs: int) -> None:
        for name, value in (("chunk_size", chunk_size), ("n_jobs", n_jobs)):
            if value is None and name == "chunk_size":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if n_jobs > 1 and chunk_size is None:
            raise ValueError("n_jobs > 1 needs a chunk_size: threads work on chunks of rows")
        if n_jobs > 1:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError as err:  # pragma: no cover - exercised only without it
                raise ImportError(
                    "n_jobs > 1 needs threadpoolctl to keep BLAS to one thread per worker: "
                    'pip install threadpoolctl (or pip install ".[threads]" in a checkout of '
                    "nncore)"
                ) from err
            self._blas = ThreadpoolController()  # once: it searches every loaded library
        self._overflow_ok = False  # see _finite
        self._pool: ThreadPoolExecutor | None = None  # the worker threads, at the first sweep
        self.net = net
        self.arch = architecture_of(net)
        self.batch = batch
        self.chunks = _split(batch, chunk_size) if chunk_size is not None else None
        self.n_jobs = n_jobs
        self.nfev = 0
        self.njev = 0
        self.nhev = 0
        self._fresh_buffers()

    def _fresh_buffers(self) -> None:
        """The cache and workspaces, new and empty (at construction, and after unpickling:
        pickle copies views into separate arrays, which would leave the key's layer views
        and the workspaces' views detached from their buffers)."""
        arch = self.arch
        # the cache key: a copy of the last theta (never a reference the caller could change),
        # in one buffer whose layer views are made once; None while no point is cached
        self._key = np.empty(arch.n_params)
        self._key_params = arch.layout.unpack(self._key)
        self._theta: FloatArray | None = None
        self._params = None
        self._cache = None
        self._J: float | None = None
        self._g: FloatArray | None = None
        self._H: dict[str, FloatArray] = {}
        # one set of workspaces per thread; [0] also serves the unchunked passes
        n_spaces = self.n_jobs if self.chunks is not None else 1
        self._spaces = [Spaces(arch) for _ in range(n_spaces)]
        self._ws = self._spaces[0].get(self.batch.X.shape[0]) if self.chunks is None else None

    _BUFFERS = ("_key", "_key_params", "_theta", "_params", "_cache", "_J", "_g", "_H")

    def __getstate__(self) -> dict[str, Any]:
        """The objective without its cache, workspaces and thread pool (rebuilt on load)."""
        state = self.__dict__.copy()
        for name in (*self._BUFFERS, "_spaces", "_ws", "_pool"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pool = None
        self._fresh_buffers()

    # -- the point -------------------------------------------------------------------
    def _same(self, theta: Any) -> bool:
        """Whether ``theta`` is the cached point (an ndarray equal to the key)."""
        return (
            self._theta is not None
            and type(theta) is np.ndarray
            and theta.shape == self._key.shape
            and not (theta != self._key).any()  # False for NaN: validation reports it
        )

    def _at(self, theta: Any) -> None:
        if self._same(theta):  # checked when it was first seen
            return
        checked = check_theta(theta, self.arch.n_params)
        if checked is not theta and self._same(checked):  # an equal list, another dtype
            return
        theta = checked
        self._theta = None  # no valid point until the new one is complete
        np.copyto(self._key, theta)
        params = self._key_params
        if self.chunks is None:
            cache = kernels.forward(self.arch, params, self.batch.X, self._ws)  # overwrites
            J = kernels.value(self.arch, params, cache, self.batch)
            self.nfev += 1
        else:
            cache, J = None, None  # computed on demand, chunk by chunk
        self._params, self._cache, self._J, self._g = params, cache, J, None
        self._H = {}
        self._theta = self._key

    def _sweep(self, task, chunks=None):
        """The sums over chunks of ``task(chunk, workspace)``, a tuple of floats and arrays
        (arrays may be workspace buffers: each part is added before the next chunk runs).
        On threads when ``n_jobs > 1``, thread ``j`` summing chunks ``j, j + n_jobs, ...``;
        the threads' sums are then added in thread order.  Returns a list of arrays (0-d for
        the floats).  ``chunks`` replaces the objective's own."""

        def run(j: int):
            spaces, total = self._spaces[j], None
            for chunk in (self.chunks if chunks is None else chunks)[j :: self.n_jobs]:
                parts = task(chunk, spaces.get(chunk.X.shape[0]))
                if total is None:
                    total = [np.array(p, dtype=np.float64) for p in parts]  # copies
                else:
                    for t, p in zip(total, parts):
                        t += p
            return total

        if self.n_jobs == 1:
            return run(0)
        if self._pool is None:  # made once: starting threads costs more than a small sweep
            self._pool = ThreadPoolExecutor(self.n_jobs, thread_name_prefix="nncore")
        with self._blas.limit(limits=1, user_api="blas"):
            sums = [s for s in self._pool.map(run, range(self.n_jobs)) if s is not None]
        total = sums[0]
        for s in sums[1:]:
            for t, p in zip(total, s):
                t += p
        return total

    # -- value and gradient ----------------------------------------------------------
    def fun(self, theta: Any) -> float:
        """``J(theta)``.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.

        Returns
        -------
        float
            ``J = sum_i w_i l_i / sum_i w_i + 0.5 * l2 * sum_l ||W_l||_F^2`` on the
            objective's data.

        Raises
        ------
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN, or when float64
            overflowed on this data (see the module notes).
        """
        self._at(theta)
        if self._J is None:
            arch, params = self.arch, self._params
            (data,) = self._sweep(lambda c, ws: (chunk_forward(arch, params, c, ws)[1],))
            self._J = float(data) + kernels.l2_value(arch, params)
            self.nfev += 1
        return self._finite(self._J, "the loss")

    def jac(self, theta: Any) -> FloatArray:
        """``dJ/dtheta``, a new array the caller owns.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.

        Returns
        -------
        ndarray of shape (n_params,)
            The gradient, in the layout of theta.

        Raises
        ------
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN, or when float64
            overflowed on this data (see the module notes).
        """
        self._at(theta)
        if self._g is None:
            arch, params = self.arch, self._params
            if self.chunks is None:
                ws = self._ws
                g = kernels.backward(arch, params, self._cache, self.batch, ws, out=ws.g)
            else:

                def task(c, ws):
                    cache, data = chunk_forward(arch, params, c, ws)
                    return data, chunk_grad(arch, params, cache, c, ws)

                data, g = self._sweep(task)
                self._J = float(data) + kernels.l2_value(arch, params)
                g = self._with_l2(g, self._theta)
                self.nfev += 1
            self.njev += 1
            self._g = g
        return self._finite(self._g, "the gradient").copy()

    def _finite(self, value, what: str):
        """``value``, or ValueError when it overflowed float64.  :func:`nncore.train` lets an
        optimiser see inf instead (``_overflow_ok``): a line search steps back from it, and
        ``train`` checks the starting point and the result itself."""
        return value if self._overflow_ok else require_finite_result(value, what)

    def _with_l2(self, total: FloatArray, weights_of: FloatArray) -> FloatArray:
        """Chunk sums carry no l2 term: add ``l2 * M`` once, ``M`` the weight entries of
        ``weights_of`` (theta for the gradient, v for the curvature products)."""
        if not self.arch.l2:
            return total
        return total + self.arch.l2 * self.arch.layout.weight_mask() * weights_of

    def fun_and_jac(self, theta: Any) -> tuple[float, FloatArray]:
        """``(J, dJ/dtheta)`` for ``minimize(..., jac=True)``.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.

        Returns
        -------
        J : float
            As :meth:`fun` returns it.
        g : ndarray of shape (n_params,)
            As :meth:`jac` returns it, a new array the caller owns.

        Raises
        ------
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN, or when float64
            overflowed on this data (see the module notes).
        """
        g = self.jac(theta)
        return self._finite(self._J, "the loss"), g

    # -- curvature -------------------------------------------------------------------
    def _product(self, kind: str, theta: Any, v: Any) -> FloatArray:
        self._at(theta)
        v = check_vector(v, self.arch.n_params)
        self.nhev += 1
        arch, params = self.arch, self._params
        if self.chunks is None:
            product = curvature.hessp if kind == "exact" else curvature.gnvp
            result = product(arch, params, self._cache, self.batch, v, self._ws)
        else:
            (total,) = self._sweep(
                lambda c, ws: (
                    chunk_product(
                        kind, arch, params, chunk_forward(arch, params, c, ws)[0], c, v, ws
                    ),
                )
            )
            result = self._with_l2(total, v)
        return self._finite(result, f"the {kind.replace('_', '-')} curvature product")

    def hessp(self, theta: Any, v: Any) -> FloatArray:
        """Exact ``(d^2 J / d theta^2) v`` from the cached forward pass (R-operator).

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.
        v : ndarray of shape (n_params,)
            The direction, in the layout of theta.

        Returns
        -------
        ndarray of shape (n_params,)
            ``H v``, a new array.

        Raises
        ------
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN (the same for ``v``),
            or when float64 overflowed on this data (see the module notes).
        """
        return self._product("exact", theta, v)

    def gnvp(self, theta: Any, v: Any) -> FloatArray:
        """Gauss-Newton (Fisher) matrix times ``v`` from the cached forward pass.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.
        v : ndarray of shape (n_params,)
            The direction, in the layout of theta.

        Returns
        -------
        ndarray of shape (n_params,)
            ``J^T H_out J v + l2 V`` (see :meth:`MLP.gnvp`), a new array.

        Raises
        ------
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN (the same for ``v``),
            or when float64 overflowed on this data (see the module notes).
        """
        return self._product("gauss_newton", theta, v)

    def hess(self, theta: Any, kind: str = "exact") -> FloatArray:
        """The full Hessian (``kind="exact"``) or Gauss-Newton matrix (``"gauss_newton"``),
        symmetric, shape ``(n_params, n_params)``; built once per theta and kind.

        Column by column from ``n_params`` curvature products, except the Gauss-Newton
        matrix of mse, which is ``2 J_r^T J_r`` for the residual Jacobian ``J_r``
        (``sum r^2 = J``): one matrix product per block of rows, the blocks at most
        :data:`JACOBIAN_BLOCK_BYTES` each.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.
        kind : {"exact", "gauss_newton"}, default "exact"
            The exact Hessian, or the Gauss-Newton (Fisher) matrix.

        Returns
        -------
        ndarray of shape (n_params, n_params)
            The matrix, a new array the caller owns.

        Raises
        ------
        ValueError
            For any other ``kind``, or when a curvature product overflowed float64 (see the
            module notes).
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN.
        """
        if kind not in ("exact", "gauss_newton"):
            raise ValueError(f"kind must be 'exact' or 'gauss_newton', got {kind!r}")
        self._at(theta)
        if kind not in self._H:
            if kind == "gauss_newton" and self.arch.loss.name == "mse":
                H = self._gauss_newton_mse()
            else:
                n = self.arch.n_params
                H = np.empty((n, n))
                e = np.zeros(n)
                for j in range(n):
                    e[j] = 1.0
                    H[:, j] = self._product(kind, self._theta, e)
                    e[j] = 0.0
            self._H[kind] = 0.5 * (H + H.T)
        return self._H[kind].copy()

    def _gauss_newton_mse(self) -> FloatArray:
        """``2 J_r^T J_r`` summed over blocks of rows, plus ``l2`` on the weight diagonal."""
        arch, params = self.arch, self._params
        self.nhev += arch.n_params  # counted as the n_params products it replaces

        def task(c, ws):
            cache = self._cache if c is self.batch else kernels.forward(arch, params, c.X, ws)
            Jc = curvature.jacobian(arch, params, cache, c, with_l2=False)
            return (Jc.T @ Jc,)

        rows = max(1, JACOBIAN_BLOCK_BYTES // (8 * arch.n_params * arch.sizes[-1]))
        if self.chunks is not None:
            (G,) = self._sweep(task, [b for c in self.chunks for b in _split(c, rows)])
        elif self.batch.X.shape[0] <= rows:
            (G,) = task(self.batch, self._ws)
        else:
            (G,) = self._sweep(task, _split(self.batch, rows))
        G *= 2.0
        if arch.l2:
            G[np.diag_indices_from(G)] += arch.l2 * arch.layout.weight_mask()
        return G

    # -- least squares (mse) ---------------------------------------------------------
    def _whole(self):
        curvature.require_mse(self.arch, "residuals")
        if self.chunks is not None:
            raise ValueError("residuals and jacobian hold every row: use no chunk_size")
        return self.arch, self._params, self._cache, self.batch

    def residuals(self, theta: Any) -> FloatArray:
        """mse residuals with ``sum(r**2) == J`` (see :meth:`MLP.residuals`).

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.

        Returns
        -------
        r : ndarray of shape (n_samples * n_out [+ n_weights],)
            The residuals of every row, then, when ``l2 > 0``, those of the weights, in the
            order :meth:`MLP.residuals` gives.

        Raises
        ------
        ValueError
            When the loss is not mse, or the objective has a ``chunk_size`` (the residuals
            hold every row).
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN, or when float64
            overflowed on this data (see the module notes).
        """
        self._at(theta)
        return self._finite(curvature.residuals(*self._whole()), "residuals")

    def jacobian(self, theta: Any) -> FloatArray:
        """Jacobian of :meth:`residuals`, shape ``(len(r), n_params)``.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.

        Returns
        -------
        ndarray of shape (len(r), n_params)
            ``dr / dtheta``.

        Raises
        ------
        ValueError
            When the loss is not mse, or the objective has a ``chunk_size`` (the Jacobian
            holds every row).
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN, or when float64
            overflowed on this data (see the module notes).
        """
        self._at(theta)
        whole = self._whole()
        self.njev += 1
        return self._finite(curvature.jacobian(*whole), "the residual Jacobian")


def architecture_of(net: Any) -> Architecture:
    """``net.arch``, or TypeError when ``net`` is not an nncore MLP (anything that carries an
    :class:`~nncore.architecture.Architecture` as ``arch``)."""
    arch = getattr(net, "arch", None)
    if not isinstance(arch, Architecture):
        raise TypeError(f"net must be an nncore MLP, got {type(net).__name__}")
    return arch


# -- the per-chunk passes: the whole of a chunked evaluation but the sum over chunks.  The
# chunked Objective runs them in its threads and nncore.distributed on Dask workers, so the
# two add the very same partial sums.
def chunk_forward(arch: Architecture, params: Any, chunk: Batch, ws: Any) -> tuple[Any, float]:
    """The forward cache of ``chunk`` (in ``ws``) and its share of the loss,
    ``sum_i omega_i l_i`` over its rows (no l2 term)."""
    cache = kernels.forward(arch, params, chunk.X, ws)
    return cache, kernels.data_value(arch, cache, chunk)


def chunk_grad(arch: Architecture, params: Any, cache: Any, chunk: Batch, ws: Any) -> FloatArray:
    """``chunk``'s share of the gradient (no l2 term), in the buffer ``ws.g``, from the cache
    :func:`chunk_forward` left in ``ws``."""
    return kernels.backward(arch, params, cache, chunk, ws, with_l2=False, out=ws.g)


def chunk_product(
    kind: str, arch: Architecture, params: Any, cache: Any, chunk: Batch, v: FloatArray, ws: Any
) -> FloatArray:
    """``chunk``'s share of the ``kind`` (``"exact"`` or ``"gauss_newton"``) curvature
    product with ``v`` (no l2 term), a new array, from the cache in ``ws``."""
    product = curvature.hessp if kind == "exact" else curvature.gnvp
    return product(arch, params, cache, chunk, v, ws, False)


def _split(batch: Batch, chunk_size: int) -> list[Batch]:
    """Chunks of rows, each with its explicit share ``omega_i`` of the weights (``1/N``
    without weights), so that the sums over chunks are the weighted mean over all rows."""
    N = batch.X.shape[0]
    omega = np.full(N, 1.0 / N) if batch.omega is None else batch.omega
    return [
        type(batch)(
            batch.X[s : s + chunk_size], batch.Y[s : s + chunk_size], omega[s : s + chunk_size]
        )
        for s in range(0, N, chunk_size)
    ]
