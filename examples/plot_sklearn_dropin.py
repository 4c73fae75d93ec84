"""
The scikit-learn drop-in
========================

:class:`nncore.sklearn.MLPClassifier` takes scikit-learn's parameters and minimises
scikit-learn's own objective (its ``loss_`` equals scikit-learn's at the same weights), with
any scipy method and exact derivatives. It works inside a Pipeline and a grid search. Here it
runs beside scikit-learn's ``MLPClassifier(solver="lbfgs")`` on a small part of the digits.
"""

import time

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLP
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nncore.sklearn import MLPClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X[:600], y[:600], random_state=0)

rows = []
for name, est in [
    ("scikit-learn lbfgs", SklearnMLP(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=200)),
    ("nncore L-BFGS-B", MLPClassifier(hidden_layer_sizes=(32,), max_iter=200)),
    ("nncore trust-krylov", MLPClassifier(hidden_layer_sizes=(32,), method="trust-krylov")),
]:
    model = make_pipeline(StandardScaler(), est.set_params(random_state=0))
    t0 = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - t0
    fitted = model[-1]
    rows.append((name, fitted.loss_, model.score(X_test, y_test), seconds))
    print(f"{name:20s} loss {fitted.loss_:.3e}  test accuracy {rows[-1][2]:.3f}  {seconds:.2f} s")

fig, ax = plt.subplots()
ax.barh([r[0] for r in rows], [r[2] for r in rows])
ax.set_xlabel("test accuracy")
ax.set_xlim(0.8, 1.0)
fig.tight_layout()
