"""An objective bound to one data set, sharing the forward pass between fun and jac.

scipy calls ``fun`` and ``jac`` (or the fused ``fun_and_jac``) at the same point many
times; :class:`Objective` validates the data once, and keeps the forward cache, ``J`` and
the gradient of the last theta it saw, keyed on a copy of that theta (as scipy's own
``ScalarFunction`` does: never a reference the caller could change).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import FloatArray, check_theta

if TYPE_CHECKING:
    from .network import MLP


class Objective:
    """``J(theta)`` and its gradient on fixed data, for ``scipy.optimize.minimize``.

    Parameters
    ----------
    net : MLP
    X, y, sample_weight
        As for :meth:`MLP.loss`; validated once here.

    Attributes
    ----------
    nfev : int
        Number of forward passes (each gives ``J``).
    njev : int
        Number of backward passes (each gives the gradient).
    """

    def __init__(self, net: MLP, X: Any, y: Any, sample_weight: Any = None) -> None:
        self.net = net
        self.batch = net.batch(X, y, sample_weight)
        self.nfev = 0
        self.njev = 0
        self._theta: FloatArray | None = None
        self._params = None
        self._cache = None
        self._J: float | None = None
        self._g: FloatArray | None = None

    def _at(self, theta: Any) -> None:
        theta = check_theta(theta, self.net.n_params)
        if self._theta is not None and np.array_equal(theta, self._theta):
            return
        key = theta.copy()  # never a reference the caller could change
        params = self.net.layout.unpack(key)
        cache = self.net._forward(params, self.batch.X)
        J = self.net._value(params, cache, self.batch)
        self._theta, self._params, self._cache, self._J, self._g = key, params, cache, J, None
        self.nfev += 1

    def fun(self, theta: Any) -> float:
        """``J(theta)``."""
        self._at(theta)
        return self._J

    def jac(self, theta: Any) -> FloatArray:
        """``dJ/dtheta``, a new array the caller owns."""
        self._at(theta)
        if self._g is None:
            self._g = self.net._backward(self._params, self._cache, self.batch)
            self.njev += 1
        return self._g.copy()

    def fun_and_jac(self, theta: Any) -> tuple[float, FloatArray]:
        """``(J, dJ/dtheta)`` for ``minimize(..., jac=True)``."""
        g = self.jac(theta)
        return self._J, g
