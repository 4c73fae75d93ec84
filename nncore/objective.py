"""An objective bound to one data set, sharing the forward pass between fun and jac.

scipy calls ``fun`` and ``jac`` (or the fused ``fun_and_jac``) at the same point many
times; :class:`Objective` validates the data once, and keeps the forward cache, ``J`` and
the gradient of the last theta it saw, keyed on a copy of that theta (as scipy's own
``ScalarFunction`` does: never a reference the caller could change).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import curvature
from ._validation import FloatArray, check_theta, check_vector

if TYPE_CHECKING:
    from .network import MLP, Batch


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
        Number of forward passes (each gives ``J``, and the residuals for mse).
    njev : int
        Number of backward passes (each gives the gradient, or the residual Jacobian).
    nhev : int
        Number of Hessian- or Gauss-Newton-vector products (a full Hessian counts
        ``n_params``).
    """

    def __init__(self, net: MLP, X: Any, y: Any, sample_weight: Any = None) -> None:
        self._setup(net, net.batch(X, y, sample_weight))

    @classmethod
    def from_batch(cls, net: MLP, batch: Batch) -> Objective:
        """An objective on data already validated by :meth:`MLP.batch`."""
        self = cls.__new__(cls)
        self._setup(net, batch)
        return self

    def _setup(self, net: MLP, batch: Batch) -> None:
        self.net = net
        self.batch = batch
        self.nfev = 0
        self.njev = 0
        self.nhev = 0
        self._theta: FloatArray | None = None
        self._params = None
        self._cache = None
        self._J: float | None = None
        self._g: FloatArray | None = None
        self._H = {}

    def _at(self, theta: Any) -> None:
        theta = check_theta(theta, self.net.n_params)
        if self._theta is not None and np.array_equal(theta, self._theta):
            return
        key = theta.copy()  # never a reference the caller could change
        params = self.net.layout.unpack(key)
        cache = self.net._forward(params, self.batch.X)
        J = self.net._value(params, cache, self.batch)
        self._theta, self._params, self._cache, self._J, self._g = key, params, cache, J, None
        self._H: dict[str, FloatArray] = {}
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

    def hessp(self, theta: Any, v: Any) -> FloatArray:
        """Exact ``(d^2 J / d theta^2) v`` from the cached forward pass (R-operator)."""
        self._at(theta)
        v = check_vector(v, self.net.n_params)
        self.nhev += 1
        return curvature.hessp(self.net, self._params, self._cache, self.batch, v)

    def gnvp(self, theta: Any, v: Any) -> FloatArray:
        """Gauss-Newton (Fisher) matrix times ``v`` from the cached forward pass."""
        self._at(theta)
        v = check_vector(v, self.net.n_params)
        self.nhev += 1
        return curvature.gnvp(self.net, self._params, self._cache, self.batch, v)

    def hess(self, theta: Any, kind: str = "exact") -> FloatArray:
        """The full Hessian (``kind="exact"``) or Gauss-Newton matrix (``"gauss_newton"``),
        symmetric, shape ``(n_params, n_params)``; built once per theta and kind."""
        self._at(theta)
        if kind not in self._H:
            product = self.hessp if kind == "exact" else self.gnvp
            n = self.net.n_params
            H = np.empty((n, n))
            e = np.zeros(n)
            for j in range(n):
                e[j] = 1.0
                H[:, j] = product(self._theta, e)
                e[j] = 0.0
            self._H[kind] = 0.5 * (H + H.T)
        return self._H[kind].copy()

    def residuals(self, theta: Any) -> FloatArray:
        """mse residuals with ``sum(r**2) == J`` (see :meth:`MLP.residuals`)."""
        self._at(theta)
        return curvature.residuals(self.net, self._params, self._cache, self.batch)

    def jacobian(self, theta: Any) -> FloatArray:
        """Jacobian of :meth:`residuals`, shape ``(len(r), n_params)``."""
        self._at(theta)
        self.njev += 1
        return curvature.jacobian(self.net, self._params, self._cache, self.batch)
