"""
Newton-CG with exact Hessian products
=====================================

:meth:`nncore.MLP.hessp` is the exact Hessian times a vector (Pearlmutter's R-operator), so
scipy's Newton-CG needs no finite differences; the Gauss-Newton product is the alternative.
"""

import matplotlib.pyplot as plt
import numpy as np

import nncore
from nncore import plot

rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, (200, 2))
y = np.sin(3 * X[:, 0]) * X[:, 1]
net = nncore.MLP([2, 16, 1], activation="tanh")
fig, ax = plt.subplots()
for curvature in ("exact", "gauss_newton"):
    res = nncore.train(net, X, y, method="Newton-CG", seed=0, curvature=curvature)
    plot.loss_curve(res.history, ax=ax, label=f"Newton-CG, {curvature}")
    print(curvature, res.fun, res.nhev, "curvature products")
