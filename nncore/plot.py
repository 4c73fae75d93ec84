"""Pictures with matplotlib: the loss curve of a training run, the Taylor test of a gradient
check, and the decision boundary of a network on two input features.

Each function draws on the Axes it is given (a new figure's when ``ax`` is None) and returns
it; none calls ``plt.show()``.  matplotlib is imported at the first call, not with nncore:
``pip install matplotlib`` (or ``pip install ".[plot]"`` in a checkout of nncore).
"""

from __future__ import annotations

from typing import Any

import numpy as np

GRID = 200
"""Points per axis of the decision-boundary grid."""


def _axes(ax: Any) -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "nncore.plot needs matplotlib: pip install matplotlib "
            '(or pip install ".[plot]" in a checkout of nncore)'
        ) from err
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    return ax


def loss_curve(history: Any, ax: Any = None, label: str = "training") -> Any:
    """Training (and validation) objective against iteration, on a log scale.

    Parameters
    ----------
    history : History or array_like
        ``res.history`` of :func:`nncore.train` (iterations are counted over all starts,
        restarts drawn as dotted vertical lines, the validation objective dashed when there
        is one), or a plain sequence of objective values.
    ax : matplotlib.axes.Axes, optional
    label : str, default "training"

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    objective = np.asarray(getattr(history, "objective", history), dtype=np.float64)
    steps = np.arange(len(objective))
    (line,) = ax.plot(steps, objective, lw=1.5, label=label)
    validation = getattr(history, "validation", None)
    if validation is not None and not np.isnan(validation).all():
        ax.plot(steps, validation, "--", lw=1.5, color=line.get_color(), label="validation")
    for k, r in enumerate(getattr(history, "restarts", ())):
        ax.axvline(r - 0.5, ls=":", color="gray", lw=1, label=None if k else "restart")
    ax.set_yscale("log")
    ax.set_xlabel("iteration (all starts)")
    ax.set_ylabel("objective")
    ax.legend(fontsize=8)
    return ax


def taylor(report: Any, ax: Any = None) -> Any:
    """The Taylor test of a :func:`nncore.check_gradient` report: the remainder against the
    step, with guides of the expected slope and of slope 1 (a wrong derivative).

    Parameters
    ----------
    report : nncore.verify.GradientReport
        What :func:`nncore.check_gradient` returns: its ``taylor`` test is drawn, and its
        ``hessp`` one too when it has one.  The default profile runs the gradient's Taylor
        test only where the coordinates leave something unresolved; ``profile="thorough"``
        always runs it.
    ax : matplotlib.axes.Axes, optional
        The Axes to draw on; None: a new figure's.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        When the report holds no Taylor test that ran.
    """
    tests = [("gradient", report.taylor)]
    if report.hessp is not None:
        tests.append(("Hessian-vector product", report.hessp["taylor"]))
    tests = [(label, t) for label, t in tests if "h" in t]  # the tests that ran
    if not tests:
        raise ValueError(
            "the report has no Taylor test to draw (its verdict is "
            f"{report.taylor['verdict']!r}): check with profile='thorough', which always runs it"
        )
    ax = _axes(ax)
    for n_test, (label, t) in enumerate(tests):
        h, r = np.asarray(t["h"]), np.asarray(t["remainder"])
        rate = "n/a" if t["rate"] is None else f"{t['rate']:.2f}"
        ax.loglog(h, np.maximum(r, 1e-300), "o-", ms=3, label=f"{label}: rate {rate}")
        ax.loglog(h, np.asarray(t["noise"]), ":", color="gray", lw=1)
        if t["used"] is not None:
            _, hi = t["used"]
            k = t["expected_rate"]
            ax.loglog(h, r[hi - 1] * (h / h[hi - 1]) ** k, "--", lw=1, label=f"slope {k} guide")
            ax.loglog(
                h,
                r[hi - 1] * (h / h[hi - 1]),
                "-.",
                lw=1,
                color="red",
                alpha=0.5,
                label=None if n_test else "slope 1 (a wrong derivative)",
            )
    ax.set_xlabel("step h")
    ax.set_ylabel("Taylor remainder")
    ax.set_title("Taylor test (dotted: round-off level)")
    ax.legend(fontsize=8)
    return ax


def decision_boundary(net: Any, theta: Any, X: Any, y: Any, ax: Any = None) -> Any:
    """The network's output over the plane of two input features, its 0.5 contour (one
    output) or the regions of its most probable class, and the data on top.

    Parameters
    ----------
    net : MLP
        With 2 inputs.
    theta : ndarray of shape (net.n_params,)
    X : ndarray of shape (n_samples, 2)
    y : ndarray of shape (n_samples,)
        Labels or targets, for the colours of the points.
    ax : matplotlib.axes.Axes, optional
        The Axes to draw on; None: a new figure's.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        When the network or ``X`` does not have 2 input features.
    """
    X = np.asarray(X, dtype=np.float64)
    if net.sizes[0] != 2 or X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(
            f"decision_boundary needs 2 input features, got a network with {net.sizes[0]} "
            f"and X of shape {X.shape}"
        )
    ax = _axes(ax)
    pad = 0.25 * (X.max(axis=0) - X.min(axis=0) + 1e-12)
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], GRID), np.linspace(lo[1], hi[1], GRID))
    out = net.predict(theta, np.column_stack([g0.ravel(), g1.ravel()]))
    if out.shape[1] == 1:
        Z = out.reshape(g0.shape)
        ax.contourf(g0, g1, Z, levels=20, cmap="RdBu_r", alpha=0.6)
        ax.contour(g0, g1, Z, levels=[0.5], colors="k", linewidths=1.5)
    else:
        Z = np.argmax(out, axis=1).reshape(g0.shape)
        ax.contourf(g0, g1, Z, levels=np.arange(out.shape[1] + 1) - 0.5, cmap="tab10", alpha=0.4)
    ax.scatter(X[:, 0], X[:, 1], c=np.asarray(y).ravel(), cmap="RdBu_r", edgecolors="k", s=50)
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    return ax
