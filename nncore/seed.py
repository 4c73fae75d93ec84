"""The seed example (a Korean blog post that trains a 2-2-1 network on XOR with scipy).

The post's ``neural_network`` and ``cost_function`` are kept here as written, with one
repair: the post calls ``np.sigmoid``, which does not exist; ``scipy.special.expit`` is
the logistic sigmoid it meant.  They serve as the baseline of ``nncore demo`` and as an
exact reference in the tests: ``seed_net().loss(p, XOR_X, XOR_Y) == seed_cost(p)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .network import MLP

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
"""The post's inputs, shape (4, 2)."""
XOR_Y = np.array([0, 1, 1, 0])
"""The post's targets, shape (4,)."""


def seed_net() -> MLP:
    """The post's network in nncore: 2-2-1, tanh hidden units, sigmoid output, mse."""
    return MLP([2, 2, 1], activation="tanh", output="sigmoid", loss="mse")


def seed_network(params: np.ndarray, X: np.ndarray = XOR_X) -> np.ndarray:
    """The post's forward pass, verbatim but for ``expit`` in place of ``np.sigmoid``."""
    W1 = params[:4].reshape((2, 2))
    b1 = params[4:6].reshape((2, 1))
    W2 = params[6:8].reshape((1, 2))
    b2 = params[8:]
    z1 = np.dot(W1, X.T) + b1
    h1 = np.tanh(z1)
    z2 = np.dot(W2, h1) + b2
    h2 = expit(z2)
    return h2.flatten()


def seed_cost(params: np.ndarray, X: np.ndarray = XOR_X, y: np.ndarray = XOR_Y) -> float:
    """The post's cost: ``np.mean((y_pred - y) ** 2)``."""
    y_pred = seed_network(params, X)
    return np.mean((y_pred - y) ** 2)
