"""Training through ``scipy.optimize.minimize`` with the exact, fused gradient."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.optimize import OptimizeResult, minimize

from ._validation import check_theta
from .network import MLP

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
        Starting point (not modified); by default ``net.init(seed)``.
    seed : int or numpy.random.Generator, optional
        Seeds ``net.init`` when ``theta0`` is not given; ignored otherwise.
    options : dict, optional
        Passed to ``minimize`` as is.
    callback : callable, optional
        Called once per iteration as ``callback(intermediate_result)`` with an
        ``OptimizeResult`` holding ``x`` and ``fun``, for every method.

    Returns
    -------
    OptimizeResult
        scipy's result, plus ``history``: the objective at the start and after each
        iteration, shape ``(nit + 1,)`` for methods that report every iteration.

    Examples
    --------
    >>> import numpy as np, nncore
    >>> net = nncore.MLP([2, 2, 1], activation="tanh", output="sigmoid")
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([0., 1., 1., 0.])
    >>> res = nncore.train(net, X, y, method="BFGS", seed=0)
    >>> bool(res.history[-1] <= res.history[0])
    True
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    if method.lower() not in _CANONICAL:
        raise ValueError(
            f"unknown method {method!r}; valid methods are: {', '.join(FIRST_ORDER_METHODS)}"
        )
    method = _CANONICAL[method.lower()]
    objective = net.objective(X, y, sample_weight)
    x0 = net.init(seed) if theta0 is None else check_theta(theta0, net.n_params).copy()

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
