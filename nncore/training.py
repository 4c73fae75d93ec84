"""Training through scipy: every ``minimize`` method that uses derivatives, and
``least_squares`` for mse, each fed the exact derivatives it can use."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult, least_squares, minimize

from ._validation import check_seed, check_theta
from .blas import limit_scipy_blas
from .distributed import DaskObjective, is_dask_array
from .network import MLP
from .objective import Objective, architecture_of

FIRST_ORDER_METHODS = ("CG", "BFGS", "L-BFGS-B", "TNC", "SLSQP", "trust-constr")
"""scipy methods that take the gradient (fused with the loss, ``jac=True``)."""
HESSP_METHODS = ("Newton-CG", "trust-ncg", "trust-krylov")
"""scipy methods that also take Hessian-vector products (``hessp=``)."""
HESS_METHODS = ("trust-exact", "dogleg")
"""scipy methods that need the full Hessian matrix (``hess=``): small networks only."""
LEAST_SQUARES_METHODS = ("lm", "trf", "dogbox")
"""``scipy.optimize.least_squares`` methods, on the residuals of mse."""
METHODS = FIRST_ORDER_METHODS + HESSP_METHODS + HESS_METHODS + LEAST_SQUARES_METHODS
CURVATURES = ("exact", "gauss_newton")

_CANONICAL = {m.lower(): m for m in METHODS}
PD_SHIFT = np.sqrt(np.finfo(np.float64).eps)
"""dogleg factors its model Hessian with Cholesky and needs it positive definite; nncore
replaces every eigenvalue ``lambda`` of ``H`` by ``max(|lambda|, delta)``, ``delta =
PD_SHIFT * max(1, ||H||_2)`` (Greenstadt's absolute-value modification), which bounds the
condition number by ``1 / sqrt(eps)``, far enough from singular for a stable factorisation,
and keeps the size of the curvature along negative directions (``docs/math.md``,
section 13)."""


def train(
    net: MLP,
    X: Any,
    y: Any,
    method: str = "BFGS",
    theta0: Any = None,
    seed: int | np.random.Generator | None = None,
    sample_weight: Any = None,
    options: dict | None = None,
    callback: Callable[[OptimizeResult], Any] | None = None,
    n_starts: int = 1,
    target: float | None = None,
    curvature: str = "exact",
    chunk_size: int | None = None,
    n_jobs: int = 1,
    client: Any = None,
) -> OptimizeResult:
    """Minimise the network's objective with ``scipy.optimize``.

    The data are validated once; the loss, gradient and curvature at one theta share one
    forward pass (:class:`~nncore.objective.Objective`).  scipy's own BLAS runs on one
    thread meanwhile, so that it does not fight numpy's (:func:`nncore.limit_scipy_blas`;
    needs threadpoolctl, ``pip install threadpoolctl``, and is skipped without it).

    Parameters
    ----------
    net : MLP
    X, y, sample_weight
        As for :meth:`MLP.loss`.
    method : str, default "BFGS"
        Any case.  First order (``jac=True``): ``CG, BFGS, L-BFGS-B, TNC, SLSQP,
        trust-constr``.  With Hessian-vector products (``hessp=``): ``Newton-CG,
        trust-ncg, trust-krylov``.  With the full Hessian (``hess=``, small networks):
        ``trust-exact, dogleg`` (dogleg's matrix is made positive definite, see
        :data:`PD_SHIFT`).  Least squares on the mse residuals
        (``scipy.optimize.least_squares``): ``lm, trf, dogbox``; ``lm`` (MINPACK) needs at
        least as many residuals as parameters, so zero rows are appended when there are
        fewer (they change neither the objective nor the step), and runs with
        ``x_scale=1.0`` unless ``options`` says otherwise.
    theta0 : ndarray of shape (n_params,), optional
        First starting point (not modified); by default ``net.init(seed)``.
    seed : int or numpy.random.Generator, optional
        Seeds ``net.init`` for every start not given by ``theta0``.
    options : dict, optional
        Passed to ``minimize`` as ``options``, or to ``least_squares`` as keywords.
    callback : callable, optional
        Called once per iteration as ``callback(intermediate_result)`` with an
        ``OptimizeResult`` holding ``x`` and ``fun`` (the objective), for every method but
        ``lm``, which MINPACK runs without callbacks.
    n_starts : int, default 1
        Run from up to this many starting points (``theta0``, then ``net.init`` draws)
        and return the best.  Small networks have basins that end on a plateau (the
        2-2-1 XOR network does from about 40% of starts); a few starts make success
        near certain at a small multiple of the cost.
    target : float, optional
        Stop starting over as soon as a run ends with objective ``<= target``.
    curvature : {"exact", "gauss_newton"}, default "exact"
        For the Hessian methods: the exact Hessian (R-operator) or the Gauss-Newton
        (Fisher) matrix, which is positive semi-definite.
    chunk_size, n_jobs : optional
        Evaluate over chunks of at most ``chunk_size`` rows, on ``n_jobs`` threads: the
        same objective to round-off, in memory bounded by the chunk (see
        :class:`~nncore.objective.Objective`).  Not for the least-squares methods, whose
        Jacobian holds every row.
    client : distributed.Client or str, optional
        With ``X`` a dask array (or with ``client`` given), the data stay on the Dask cluster
        and every evaluation runs there (:class:`~nncore.distributed.DaskObjective`, chunked
        as the dask array is); the least-squares methods gather the rows to the client.

    Returns
    -------
    OptimizeResult
        scipy's result of the best start, with ``fun`` the objective value for every
        method, plus ``history`` (the objective at its start and after each of its
        iterations), ``start`` (its index), ``start_funs`` (the final objective of every
        start), ``nfev``, ``njev``, ``nhev``: the forward passes, backward passes and
        curvature-vector products of that start as nncore counted them, and
        ``total_nfev``, ``total_njev``, ``total_nhev``: the same over all starts.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.MLP([2, 2, 1], activation="tanh", output="sigmoid")
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([0., 1., 1., 0.])
    >>> res = nncore.train(net, X, y, method="CG", seed=0, n_starts=20, target=1 / 16)
    >>> bool(res.fun <= 1 / 16), bool(res.history[0] > res.fun)
    (True, True)
    """
    architecture_of(net)
    method = _check_method(method)
    if method in LEAST_SQUARES_METHODS and net.loss_name != "mse":
        raise ValueError(f"method {method!r} needs loss 'mse', got {net.loss_name!r}")
    if method in LEAST_SQUARES_METHODS and chunk_size is not None:
        raise ValueError(f"method {method!r} needs every row at once: chunk_size must be None")
    if not isinstance(curvature, str) or curvature not in CURVATURES:
        raise ValueError(f"curvature must be one of {CURVATURES}, got {curvature!r}")
    if isinstance(n_starts, bool) or not isinstance(n_starts, numbers.Integral):
        raise TypeError(f"n_starts must be an int, got {type(n_starts).__name__}")
    if n_starts < 1:
        raise ValueError(f"n_starts must be at least 1, got {n_starts}")
    if target is not None:
        if isinstance(target, np.ndarray) and target.ndim == 0:
            target = target[()]  # a 0-d array: its number
        if isinstance(target, (bool, np.bool_)) or not isinstance(target, numbers.Real):
            raise TypeError(f"target must be a real number or None, got {type(target).__name__}")
        if not np.isfinite(target):
            raise ValueError(f"target must be a finite number or None, got {target}")
    check_seed(seed)
    first = None if theta0 is None else check_theta(theta0, net.n_params).copy()
    on_dask = is_dask_array(X) or client is not None
    if on_dask and (chunk_size is not None or n_jobs != 1):
        raise ValueError("chunk_size and n_jobs are for in-memory data: dask arrays bring chunks")
    # validate once; every start reuses it
    shared = DaskObjective(net, X, y, sample_weight, client) if on_dask else None
    batch = None if on_dask else net.batch(X, y, sample_weight)
    rng = np.random.default_rng(seed)

    results = []
    with limit_scipy_blas():  # scipy's own BLAS on one thread: see nncore.blas
        for k in range(n_starts):
            x0 = first if (k == 0 and first is not None) else net.init(rng)
            if shared is not None:
                objective = shared.fresh()
            else:
                objective = Objective.from_batch(net, batch, chunk_size, n_jobs)
            result = _run_checked(objective, x0, method, curvature, options, callback)
            result.nfev, result.njev = objective.nfev, objective.njev
            result.nhev = objective.nhev
            results.append(result)
            if target is not None and result.fun <= target:
                break
    best = min(range(len(results)), key=lambda k: results[k].fun)
    result = results[best]
    result.start = best
    result.start_funs = np.array([r.fun for r in results])
    for count in ("nfev", "njev", "nhev"):
        setattr(result, f"total_{count}", sum(getattr(r, count) for r in results))
    return result


def _check_method(method: Any) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    if method.lower() not in _CANONICAL:
        raise ValueError(f"unknown method {method!r}; valid methods are: {', '.join(METHODS)}")
    return _CANONICAL[method.lower()]


def _run_checked(objective: Objective, x0: np.ndarray, *args: Any) -> OptimizeResult:
    """:func:`_run` with the objective's overflow check at ``x0`` and at the result only: in
    between, a line search that tries a step too far sees inf, as scipy expects, and steps
    back."""
    objective.fun(x0)  # raises ValueError when the start itself overflows float64
    objective._overflow_ok = True
    try:
        result = _run(objective, x0, *args)
    finally:
        objective._overflow_ok = False
    if not (np.isfinite(result.fun) and np.isfinite(result.x).all()):
        raise ValueError(
            f"the optimiser ended where the loss is {result.fun}: float64 overflowed on the "
            "way (theta, X or y too large for the network); scale them down"
        )
    return result


def _run(
    objective: Objective,
    x0: np.ndarray,
    method: str,
    curvature: str,
    options: dict | None,
    callback: Callable[[OptimizeResult], Any] | None,
) -> OptimizeResult:
    history = [objective.fun(x0)]

    def record(x: np.ndarray, fun: float, notify: bool = True) -> None:
        history.append(float(fun))
        if callback is not None and notify:
            callback(OptimizeResult(x=x, fun=fun))

    if method in LEAST_SQUARES_METHODS:
        result = _least_squares(objective, x0, method, options, record)
    else:
        kwargs: dict[str, Any] = {}
        if method in HESSP_METHODS:
            kwargs["hessp"] = objective.hessp if curvature == "exact" else objective.gnvp
        elif method == "trust-exact":
            kwargs["hess"] = lambda x: objective.hess(x, curvature)
        elif method == "dogleg":
            kwargs["hess"] = lambda x: _positive_definite(objective.hess(x, curvature))
        if method == "TNC":  # scipy calls TNC's callback with x only

            def scipy_callback(xk: np.ndarray) -> None:
                try:
                    record(xk, objective.fun(xk))
                except StopIteration:  # TNC does not honour it: stop it ourselves
                    raise _Stopped(np.copy(xk)) from None

        else:

            def scipy_callback(intermediate_result: OptimizeResult) -> None:
                record(intermediate_result.x, intermediate_result.fun)

        try:
            result = minimize(
                objective.fun_and_jac,
                x0,
                jac=True,
                method=method,
                callback=scipy_callback,
                options=options,
                **kwargs,
            )
        except _Stopped as stop:
            result = OptimizeResult(
                x=stop.x,
                fun=objective.fun(stop.x),
                jac=objective.jac(stop.x),
                success=False,
                status=-2,
                message="`callback` raised `StopIteration`.",
                nit=len(history) - 1,
            )
    result.history = np.asarray(history)
    return result


class _Stopped(Exception):
    """A callback asked a method that cannot stop by itself (TNC) to stop at ``x``."""

    def __init__(self, x: np.ndarray) -> None:
        super().__init__("stopped by callback")
        self.x = x


def _positive_definite(H: np.ndarray) -> np.ndarray:
    """``V max(|Lambda|, delta) V^T`` for ``H = V Lambda V^T``, ``delta = PD_SHIFT max(1,
    ||H||_2)``; ``H`` itself when its smallest eigenvalue is already at least ``delta``."""
    lam, V = np.linalg.eigh(H)
    delta = PD_SHIFT * max(1.0, float(np.abs(lam).max()))
    if lam[0] >= delta:
        return H
    B = (V * np.maximum(np.abs(lam), delta)) @ V.T
    return 0.5 * (B + B.T)


def _least_squares(
    objective: Objective,
    x0: np.ndarray,
    method: str,
    options: dict | None,
    record: Callable[[np.ndarray, float], None],
) -> OptimizeResult:
    n = objective.net.n_params
    m = len(objective.residuals(x0))
    pad = max(0, n - m) if method == "lm" else 0  # MINPACK's lm needs m >= n

    def fun(x: np.ndarray) -> np.ndarray:
        r = objective.residuals(x)
        return np.concatenate([r, np.zeros(pad)]) if pad else r

    def jac(x: np.ndarray) -> np.ndarray:
        Jr = objective.jacobian(x)
        return np.vstack([Jr, np.zeros((pad, n))]) if pad else Jr

    kwargs = dict(options or {})
    if method == "lm":
        # scipy >= 1.16 scales lm by the Jacobian's column norms ("jac"); on small networks
        # that stops on plateaus far more often (XOR: 0 of 10 starts reach J <= 1/16, against
        # 6 of 10 with unit scaling; benchmarks/bench_methods.py), so unit scaling is the default
        kwargs.setdefault("x_scale", 1.0)
    if method != "lm":

        def callback(intermediate_result: OptimizeResult) -> None:
            record(intermediate_result.x, 2.0 * intermediate_result.cost)

        kwargs["callback"] = callback
    result = least_squares(fun, x0, jac=jac, method=method, **kwargs)
    result.residuals = result.fun[:m]
    result.fun = objective.fun(result.x)  # the objective, sum(r**2), as for every method
    if method == "lm":  # MINPACK runs without callbacks: the history gets the end point
        record(result.x, result.fun, notify=False)
    return result
