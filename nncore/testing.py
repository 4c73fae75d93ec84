"""Testing helpers: :func:`assert_gradient_close`, and Hypothesis strategies for property
tests of network code (the strategies need ``hypothesis``).

``networks()`` draws an :class:`~nncore.MLP` (architecture, activations, loss, l2),
``parameters(net)`` a finite flat parameter vector for it and ``data(net)`` a matching
``(X, y, sample_weight)``.  nncore's own tests use them; so can anyone testing their own
implementation against nncore::

    @given(st.data())
    def test_mine(d):
        net = d.draw(networks())
        theta = d.draw(parameters(net))
        X, y, w = d.draw(data(net))
        assert np.allclose(my_grad(theta, X, y, w), net.grad(theta, X, y, w))
"""

from __future__ import annotations

from typing import Any

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as err:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "nncore.testing needs Hypothesis: pip install hypothesis "
        '(or pip install ".[test]" in a checkout of nncore)'
    ) from err

import numpy as np

from .activations import ACTIVATIONS
from .losses import LOSSES
from .network import MLP
from .verify import KINK_ROUNDING, check_gradient, near_kink  # noqa: F401 (re-exported)


def assert_gradient_close(fun: Any, *args: Any, **kwargs: Any) -> None:
    """Raise ``AssertionError`` showing the full report when :func:`nncore.check_gradient`
    finds an error; takes the same arguments (plain-function or network form).

    >>> import numpy as np
    >>> from scipy.optimize import rosen, rosen_der
    >>> assert_gradient_close(rosen, rosen_der, np.array([0.5, -1.0, 2.0]))
    """
    report = check_gradient(fun, *args, **kwargs)
    if not report.passed:
        raise AssertionError("gradient check failed\n" + str(report))


HIDDEN_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "softmax")
"""Every activation allowed in a hidden layer."""
SMOOTH_ACTIVATIONS = tuple(name for name in HIDDEN_ACTIVATIONS if not ACTIVATIONS[name].kink)
"""Hidden activations whose first derivative is continuous (finite differences are exact to
O(h^2) everywhere)."""


def _finite(bound: float) -> st.SearchStrategy[float]:
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def networks(
    draw: st.DrawFn,
    *,
    hidden_layers: tuple[int, int] = (1, 4),
    widths: tuple[int, int] = (1, 8),
    activations: tuple[str, ...] = HIDDEN_ACTIVATIONS,
    losses: tuple[str, ...] = tuple(LOSSES),
    l2: bool = True,
) -> MLP:
    """Draw an MLP: 1-4 hidden layers of width 1-8, any activations, loss and l2."""
    n_hidden = draw(st.integers(*hidden_layers))
    sizes = draw(st.lists(st.integers(*widths), min_size=n_hidden + 2, max_size=n_hidden + 2))
    hidden = draw(st.lists(st.sampled_from(activations), min_size=n_hidden, max_size=n_hidden))
    loss = draw(st.sampled_from(losses))
    output = None
    if loss == "mse":
        output = draw(st.sampled_from(("identity", "softmax", *activations)))
    lam = draw(st.sampled_from((0.0, 0.0, 1e-3, 0.5))) if l2 else 0.0
    return MLP(sizes, activation=hidden, output=output, loss=loss, l2=lam)


def parameters(net: MLP, bound: float = 2.0) -> st.SearchStrategy[np.ndarray]:
    """Finite parameter vectors for ``net`` with entries in ``[-bound, bound]``."""
    return hnp.arrays(np.float64, (net.n_params,), elements=_finite(bound))


@st.composite
def data(
    draw: st.DrawFn,
    net: MLP,
    *,
    samples: tuple[int, int] = (1, 16),
    bound: float = 2.0,
    weights: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Draw ``(X, y, sample_weight)`` that ``net`` accepts.

    ``y`` follows the loss: real targets for mse, values in [0, 1] for bce, integer labels
    or probability rows for cross_entropy.  ``weights=None`` draws with or without
    sample weights (non-negative, not all zero).
    """
    n = draw(st.integers(*samples))
    n_in, n_out = net.sizes[0], net.sizes[-1]
    X = draw(hnp.arrays(np.float64, (n, n_in), elements=_finite(bound)))
    if net.loss_name == "mse":
        y = draw(hnp.arrays(np.float64, (n, n_out), elements=_finite(bound)))
    elif net.loss_name == "bce":
        y = draw(hnp.arrays(np.float64, (n, n_out), elements=st.floats(0.0, 1.0)))
    elif draw(st.booleans()):
        y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, n_out - 1)))
    else:
        raw = draw(hnp.arrays(np.float64, (n, n_out), elements=st.floats(0.0, 1.0)))
        raw[:, 0] += 1.0  # keep every row sum positive
        y = raw / raw.sum(axis=1, keepdims=True)
    if weights is None:
        weights = draw(st.booleans())
    w = None
    if weights:
        w = draw(hnp.arrays(np.float64, (n,), elements=st.floats(0.0, 4.0)))
        if not w.sum() > 0:
            w[0] = 1.0
    return X, y, w
