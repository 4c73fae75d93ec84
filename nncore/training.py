"""Training through ``scipy.optimize.minimize`` with the exact, fused gradient."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult, minimize

from ._validation import check_theta
from .network import MLP
from .objective import Objective

FIRST_ORDER_METHODS = ("CG", "BFGS", "L-BFGS-B", "TNC", "SLSQP", "trust-constr")
"""The scipy methods that need a gradient but no Hessian."""

_CANONICAL = {m.lower(): m for m in FIRST_ORDER_METHODS}


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
) -> OptimizeResult:
    """Minimise the network's objective with ``scipy.optimize.minimize``.

    The data are validated once and the loss and exact gradient come from one forward
    and one backward pass (``jac=True``).

    Parameters
    ----------
    net : MLP
    X, y, sample_weight
        As for :meth:`MLP.loss`.
    method : str, default "BFGS"
        One of ``CG, BFGS, L-BFGS-B, TNC, SLSQP, trust-constr`` (any case).
    theta0 : ndarray of shape (n_params,), optional
        First starting point (not modified); by default ``net.init(seed)``.
    seed : int or numpy.random.Generator, optional
        Seeds ``net.init`` for every start not given by ``theta0``.
    options : dict, optional
        Passed to ``minimize`` as is.
    callback : callable, optional
        Called once per iteration as ``callback(intermediate_result)`` with an
        ``OptimizeResult`` holding ``x`` and ``fun``, for every method.
    n_starts : int, default 1
        Run from up to this many starting points (``theta0``, then ``net.init`` draws)
        and return the best.  Small networks have basins that end on a plateau (the
        2-2-1 XOR network does from about 40% of starts); a few starts make success
        near certain at a small multiple of the cost.
    target : float, optional
        Stop starting over as soon as a run ends with objective ``<= target``.

    Returns
    -------
    OptimizeResult
        scipy's result of the best start, plus ``history`` (the objective at its start
        and after each of its iterations, shape ``(nit + 1,)``), ``start`` (its index),
        ``start_funs`` (the final objective of every start run) and ``total_nfev``,
        ``total_njev`` (forward and backward passes over all starts).

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.MLP([2, 2, 1], activation="tanh", output="sigmoid")
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([0., 1., 1., 0.])
    >>> res = nncore.train(net, X, y, method="CG", seed=0, n_starts=20, target=1 / 16)
    >>> bool(res.fun <= 1 / 16), bool(res.history[0] > res.fun)
    (True, True)
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    if method.lower() not in _CANONICAL:
        raise ValueError(
            f"unknown method {method!r}; valid methods are: {', '.join(FIRST_ORDER_METHODS)}"
        )
    method = _CANONICAL[method.lower()]
    if isinstance(n_starts, bool) or not isinstance(n_starts, numbers.Integral):
        raise TypeError(f"n_starts must be an int, got {type(n_starts).__name__}")
    if n_starts < 1:
        raise ValueError(f"n_starts must be at least 1, got {n_starts}")
    if target is not None and not np.isfinite(target):
        raise ValueError(f"target must be a finite number or None, got {target}")
    objective = net.objective(X, y, sample_weight)
    first = None if theta0 is None else check_theta(theta0, net.n_params).copy()
    rng = np.random.default_rng(seed)

    results = []
    for k in range(n_starts):
        x0 = first if (k == 0 and first is not None) else net.init(rng)
        result = _minimize_once(objective, x0, method, options, callback)
        results.append(result)
        if target is not None and result.fun <= target:
            break
    best = min(range(len(results)), key=lambda k: results[k].fun)
    result = results[best]
    result.start = best
    result.start_funs = np.array([r.fun for r in results])
    result.total_nfev = objective.nfev
    result.total_njev = objective.njev
    return result


def _minimize_once(
    objective: Objective,
    x0: np.ndarray,
    method: str,
    options: dict | None,
    callback: Callable[[OptimizeResult], Any] | None,
) -> OptimizeResult:
    history = [objective.fun(x0)]

    def record(intermediate_result: OptimizeResult) -> None:
        history.append(float(intermediate_result.fun))
        if callback is not None:
            callback(intermediate_result)

    if method == "TNC":  # scipy calls TNC's callback with x only

        def scipy_callback(xk: np.ndarray) -> None:
            record(OptimizeResult(x=xk, fun=objective.fun(xk)))

    else:

        def scipy_callback(intermediate_result: OptimizeResult) -> None:
            record(intermediate_result)

    result = minimize(
        objective.fun_and_jac,
        x0,
        jac=True,
        method=method,
        callback=scipy_callback,
        options=options,
    )
    result.history = np.asarray(history)
    return result
