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
from .monitor import Monitor, Stop
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
    validation: tuple | None = None,
    patience: int | None = None,
    max_time: float | None = None,
    progress: bool | str = False,
    client: Any = None,
) -> OptimizeResult:
    """Minimise the network's objective with ``scipy.optimize``.

    The data are validated once; the loss, gradient and curvature at one theta share one
    forward pass (:class:`~nncore.objective.Objective`).  scipy's own BLAS runs on one
    thread meanwhile, so that it does not fight numpy's (:func:`nncore.limit_scipy_blas`;
    needs threadpoolctl, ``pip install threadpoolctl``, and is skipped without it).

    Every method can be watched and stopped the same way: nncore calls ``callback``,
    evaluates the validation data, checks ``max_time`` and draws the progress bar at every
    iteration, from scipy's callback or, for ``lm`` (MINPACK has none), from its own
    Jacobian evaluations.  A stop ends the run outside scipy and returns the point kept
    for it; Ctrl-C (``KeyboardInterrupt``) returns the best point seen so far.

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
        Called once per iteration, for every method, as ``callback(intermediate_result)``
        (scipy's form) with an ``OptimizeResult`` holding ``x`` (a copy), ``fun`` (the
        objective), ``nit`` (the iteration of this start), ``nfev``, ``njev``, ``nhev``
        (the forward passes, backward passes and curvature-vector products of this start
        so far, as the result's counts below), ``grad_norm``, ``elapsed`` (seconds since
        ``train`` was called) and ``validation`` (the validation objective, or None).
        Raising ``StopIteration`` or returning True ends training (no further start):
        the result is at that iteration (at the best validation point when there is
        validation data), with ``success=False``, ``status=99`` and a message saying the
        callback stopped it.
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
    validation : tuple, optional
        ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``, validated as the
        training data.  The objective on them (the same ``l2`` term included) is
        evaluated after every iteration, one forward pass and no gradient; each start
        returns its point of lowest validation objective, and the best start is the one
        with the lowest.
    patience : int, optional
        With ``validation``: end a start when its validation objective has not improved
        for ``patience`` iterations (``status=100``; ``success`` stays True, this is the
        stop asked for).
    max_time : float, optional
        A wall-clock budget in seconds for the whole call, checked at every iteration and
        every evaluation, for every method.  When it runs out, no further start is run and
        the best point so far is returned with ``success=False``, ``status=101``.
    progress : bool or "always", default False
        Draw a progress bar (``tqdm``, on stderr) with the iteration, objective, gradient
        norm, evaluations, validation objective and elapsed time.  ``True`` draws it only
        when stderr is a terminal; ``"always"`` draws it anyway.  Needs tqdm: ``pip
        install tqdm`` (or ``pip install ".[progress]"`` in a checkout of nncore).
    client : distributed.Client or str, optional
        With ``X`` a dask array (or with ``client`` given), the data stay on the Dask cluster
        and every evaluation runs there (:class:`~nncore.distributed.DaskObjective`, chunked
        as the dask array is); the least-squares methods gather the rows to the client.

    Returns
    -------
    OptimizeResult
        scipy's result of the best start, with ``fun`` the objective value for every
        method, plus ``history`` (a :class:`~nncore.monitor.History`: one record per
        iteration of every start, with the objective, gradient norm, evaluations so far,
        elapsed seconds and validation objective, and the restart boundaries),
        ``start`` (its index), ``start_funs`` (the final objective of every start run),
        ``nfev``, ``njev``, ``nhev``: the forward passes, backward passes and
        curvature-vector products of that start as nncore counted them, and
        ``total_nfev``, ``total_njev``, ``total_nhev``: the same over all starts.
        ``stopped`` is None, or why nncore ended the run: ``"callback"``, ``"patience"``,
        ``"max_time"`` or ``"interrupted"`` (Ctrl-C: ``success=False``, ``status=102``,
        the best point of all starts so far).  With ``validation``: ``validation_fun``
        (the validation objective at ``x``) and ``best_iteration`` (the iteration of its
        start at which ``x`` was reached).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.MLP([2, 2, 1], activation="tanh", output="sigmoid")
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([0., 1., 1., 0.])
    >>> res = nncore.train(net, X, y, method="CG", seed=0, n_starts=20, target=1 / 16)
    >>> bool(res.fun <= 1 / 16), bool(res.history.objective[0] > res.fun)
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
    _check_int("n_starts", n_starts, 1)
    if target is not None:
        target = _check_real("target", target)
    if patience is not None:
        _check_int("patience", patience, 1)
        if validation is None:
            raise ValueError("patience needs validation data: validation=(X_val, y_val)")
    if max_time is not None:
        max_time = _check_real("max_time", max_time)
        if max_time <= 0:
            raise ValueError(f"max_time must be a positive number of seconds, got {max_time}")
    if not (progress is True or progress is False or progress == "always"):
        raise ValueError(f'progress must be True, False or "always", got {progress!r}')
    check_seed(seed)
    first = None if theta0 is None else check_theta(theta0, net.n_params).copy()
    on_dask = is_dask_array(X) or client is not None
    if on_dask and (chunk_size is not None or n_jobs != 1):
        raise ValueError("chunk_size and n_jobs are for in-memory data: dask arrays bring chunks")
    # validate once; every start reuses it
    shared = DaskObjective(net, X, y, sample_weight, client) if on_dask else None
    batch = None if on_dask else net.batch(X, y, sample_weight)
    validate = None if validation is None else _validation_objective(net, validation)
    rng = np.random.default_rng(seed)

    monitor = Monitor(callback, validate, patience, max_time, progress, n_starts)
    results: list[OptimizeResult] = []
    stopped = None
    try:
        with limit_scipy_blas():  # scipy's own BLAS on one thread: see nncore.blas
            for k in range(n_starts):
                x0 = first if (k == 0 and first is not None) else net.init(rng)
                if shared is not None:
                    objective = shared.fresh()
                else:
                    objective = Objective.from_batch(net, batch, chunk_size, n_jobs)
                monitor.begin(k, objective)
                try:
                    result = _run_checked(objective, x0, method, curvature, options, monitor)
                except Stop as stop:
                    result = _stopped_result(monitor, stop.reason, method)
                    if stop.reason != "patience":
                        stopped = stop.reason
                except KeyboardInterrupt:
                    if monitor.best is None:
                        raise  # nothing to return yet
                    stopped = "interrupted"
                    if monitor.start_best is not None:
                        results.append(_stopped_result(monitor, stopped, method))
                    break
                results.append(result)
                if stopped is not None or (target is not None and result.fun <= target):
                    break
    finally:
        monitor.close()
    return _best_of(results, monitor, stopped)


def max_iter_options(method: str, max_iter: int) -> dict[str, int]:
    """The ``options`` that cap ``method`` at ``max_iter`` iterations: ``maxiter`` for
    ``minimize``, ``maxfun`` for TNC (which counts evaluations), ``max_nfev`` for the
    least-squares methods (evaluations too).

    Parameters
    ----------
    method : str
        The method's name, as :func:`nncore.train` takes it (any case).
    max_iter : int
        At least 1.

    Returns
    -------
    dict
        One entry: ``{"maxiter": max_iter}``, ``{"maxfun": max_iter}`` or
        ``{"max_nfev": max_iter}``.

    Raises
    ------
    TypeError, ValueError
        When ``method`` is not a known method's name or ``max_iter`` not an int of at least 1.

    Examples
    --------
    >>> max_iter_options("lm", 50), max_iter_options("bfgs", 50)
    ({'max_nfev': 50}, {'maxiter': 50})
    """
    method = _check_method(method)
    _check_int("max_iter", max_iter, 1)
    if method in LEAST_SQUARES_METHODS:
        return {"max_nfev": max_iter}
    return {"maxfun": max_iter} if method == "TNC" else {"maxiter": max_iter}


def _check_int(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # a 0-d array: its number
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number or None, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number or None, got {value}")
    return float(value)


def _validation_objective(net: MLP, validation: Any) -> Callable[[np.ndarray], float]:
    """``theta -> J`` on the validation data (one forward pass, no gradient)."""
    if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
        got = type(validation).__name__
        if isinstance(validation, (tuple, list)):
            got = f"{got} of length {len(validation)}"
        raise TypeError(
            "validation must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), "
            f"got {got}"
        )
    try:
        objective = Objective.from_batch(net, net.batch(*validation))
    except (TypeError, ValueError) as err:
        raise type(err)(f"validation data: {err}") from None
    return objective.fun


def _stopped_result(monitor: Monitor, reason: str, method: str) -> OptimizeResult:
    """The result of a start that ``reason`` ended, at the point the monitor kept."""
    point = monitor.stopped_point(reason)
    status, message = monitor.message(reason)
    objective = monitor.objective
    result = OptimizeResult(
        x=point.x,
        fun=point.fun,
        success=reason == "patience",
        status=status,
        message=message,
        nit=monitor.iteration,
    )
    if point.jac is not None:
        result.jac = point.jac
    if method in LEAST_SQUARES_METHODS:
        result.residuals = objective.residuals(point.x)
    _annotate(result, monitor, point)
    result.stopped = reason
    return result


def _annotate(result: OptimizeResult, monitor: Monitor, point: Any) -> None:
    """Counts of the current start, and the validation fields at ``point``."""
    objective = monitor.objective
    result.nfev, result.njev, result.nhev = objective.nfev, objective.njev, objective.nhev
    result.start = monitor.start
    if monitor.validate is not None:
        result.validation_fun = point.validation
        result.best_iteration = point.iteration


def _best_of(results: list[OptimizeResult], monitor: Monitor, stopped: str | None):
    """The best start's result, with the totals, the history and the stop of the call."""
    if monitor.validate is not None:
        best = min(range(len(results)), key=lambda k: results[k].validation_fun)
    else:
        best = min(range(len(results)), key=lambda k: results[k].fun)
    result = results[best]
    result.start_funs = np.array([r.fun for r in results])
    for count in ("nfev", "njev", "nhev"):
        setattr(result, f"total_{count}", sum(getattr(r, count) for r in results))
    result.history = monitor.history()
    result.stopped = stopped if stopped is not None else getattr(result, "stopped", None)
    if stopped is not None:
        result.success = False
        result.status, result.message = monitor.message(stopped)
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
    monitor: Monitor,
) -> OptimizeResult:
    """One start: scipy's run from ``x0``, every iteration reported to ``monitor``, which
    may raise :class:`~nncore.monitor.Stop` out of it."""
    if method in LEAST_SQUARES_METHODS:
        result = _least_squares(objective, x0, method, options, monitor)
    else:
        result = _minimize(objective, x0, method, curvature, options, monitor)
    point = monitor.start_best
    _annotate(result, monitor, point)
    if monitor.validate is not None and not np.array_equal(result.x, point.x):
        # the best validation point, not scipy's end point
        result.x, result.fun, result.jac = point.x, point.fun, point.jac
        if method in LEAST_SQUARES_METHODS:
            result.residuals = objective.residuals(point.x)
    result.stopped = None
    return result


def _minimize(
    objective: Objective,
    x0: np.ndarray,
    method: str,
    curvature: str,
    options: dict | None,
    monitor: Monitor,
) -> OptimizeResult:
    def fun_and_jac(x: np.ndarray) -> tuple[float, np.ndarray]:
        monitor.check_time()
        J, g = objective.fun_and_jac(x)
        monitor.remember(x, g)
        return J, g

    def timed(product: Callable) -> Callable:
        def call(*args: Any) -> Any:
            monitor.check_time()
            return product(*args)

        return call

    kwargs: dict[str, Any] = {}
    if method in HESSP_METHODS:
        kwargs["hessp"] = timed(objective.hessp if curvature == "exact" else objective.gnvp)
    elif method == "trust-exact":
        kwargs["hess"] = timed(lambda x: objective.hess(x, curvature))
    elif method == "dogleg":
        kwargs["hess"] = timed(lambda x: _positive_definite(objective.hess(x, curvature)))
    if method == "TNC":  # scipy calls TNC's callback with x only

        def scipy_callback(xk: np.ndarray) -> None:
            monitor.record(xk, objective.fun(xk))

    else:

        def scipy_callback(intermediate_result: OptimizeResult) -> None:
            monitor.record(intermediate_result.x, intermediate_result.fun)

    monitor.record(x0, objective.fun(x0))
    return minimize(
        fun_and_jac, x0, jac=True, method=method, callback=scipy_callback, options=options, **kwargs
    )


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
    monitor: Monitor,
) -> OptimizeResult:
    """``least_squares`` on the residuals.  ``lm`` (MINPACK) takes no callback: it asks for
    the Jacobian once per iteration, at the point it has just accepted, so nncore reports
    an iteration from each Jacobian evaluation at a new point."""
    n = objective.net.n_params
    m = len(objective.residuals(x0))
    pad = max(0, n - m) if method == "lm" else 0  # MINPACK's lm needs m >= n

    def fun(x: np.ndarray) -> np.ndarray:
        monitor.check_time()
        r = objective.residuals(x)
        return np.concatenate([r, np.zeros(pad)]) if pad else r

    def jac(x: np.ndarray) -> np.ndarray:
        monitor.check_time()
        Jr = objective.jacobian(x)
        g = 2.0 * (Jr.T @ objective.residuals(x))  # dJ/dtheta of J = sum(r**2)
        monitor.remember(x, g)
        monitor.patch_grad_norm(x, g)
        if method == "lm" and not np.array_equal(x, monitor.last.x):
            monitor.record(x, objective.fun(x))
        return np.vstack([Jr, np.zeros((pad, n))]) if pad else Jr

    kwargs = dict(options or {})
    if method == "lm":
        # scipy >= 1.16 scales lm by the Jacobian's column norms ("jac"); on small networks
        # that stops on plateaus far more often (XOR: 0 of 10 starts reach J <= 1/16, against
        # 6 of 10 with unit scaling; benchmarks/bench_methods.py), so unit scaling is the default
        kwargs.setdefault("x_scale", 1.0)
    else:

        def callback(intermediate_result: OptimizeResult) -> None:
            monitor.record(intermediate_result.x, 2.0 * intermediate_result.cost)

        kwargs["callback"] = callback
    monitor.record(x0, objective.fun(x0), compute_grad=False)  # its gradient: at jac(x0)
    result = least_squares(fun, x0, jac=jac, method=method, **kwargs)
    result.residuals = result.fun[:m]
    result.fun = objective.fun(result.x)  # the objective, sum(r**2), as for every method
    if not np.array_equal(result.x, monitor.last.x):  # lm ended at a point it had not
        monitor.record(result.x, result.fun, compute_grad=False)  # asked a Jacobian at
    return result
