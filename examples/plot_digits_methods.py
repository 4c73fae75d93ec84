"""
Every method on digits
======================

A 64-16-10 network on 300 of scikit-learn's digits, trained by every scipy method nncore
offers that works with cross-entropy (the least-squares methods need mse), for 40 iterations.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

import nncore
from nncore.training import FIRST_ORDER_METHODS, HESSP_METHODS, max_iter_options

X, y = load_digits(return_X_y=True)
X, y = X[:300] / 16.0, y[:300]
net = nncore.MLP([64, 16, 10], activation="tanh", loss="cross_entropy", l2=1e-4)
fig, ax = plt.subplots(figsize=(7, 4.5))
for method in FIRST_ORDER_METHODS + HESSP_METHODS:
    res = nncore.train(net, X, y, method=method, seed=0, options=max_iter_options(method, 40))
    ax.plot(res.history.elapsed, res.history.objective, label=method)
    print(f"{method:<14} J = {res.fun:.4f}  {res.nfev} forward, {res.njev} backward passes")
ax.set_yscale("log")
ax.set_xlabel("seconds")
ax.set_ylabel("objective")
ax.legend(fontsize=8)
