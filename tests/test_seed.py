"""The seed example: nncore reproduces its cost exactly and trains it with far fewer calls."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import minimize

from nncore.seed import XOR_X, XOR_Y, seed_cost, seed_net

finite = st.floats(-20, 20, allow_nan=False, allow_infinity=False)


@given(hnp.arrays(np.float64, (9,), elements=finite))
def test_loss_equals_seed_cost_exactly(p):
    net = seed_net()
    assert net.loss(p, XOR_X, XOR_Y) == seed_cost(p)


def test_layout_is_the_seeds():
    net = seed_net()
    p = np.arange(9.0)
    (W1, b1), (W2, b2) = net.unpack(p)
    np.testing.assert_array_equal(W1, p[:4].reshape(2, 2))
    np.testing.assert_array_equal(b1, p[4:6])
    np.testing.assert_array_equal(W2, p[6:8].reshape(1, 2))
    np.testing.assert_array_equal(b2, p[8:])


@pytest.mark.parametrize("seed", range(8))
def test_minimize_with_hand_gradient_as_written(seed):
    """``minimize(net.loss, p0, args=(X, y), jac=net.grad, method="CG")`` as DESIGN.md writes
    it, against the seed's finite-difference run from the same start."""
    net = seed_net()
    X, y = XOR_X, XOR_Y
    p0 = np.random.default_rng(seed).standard_normal(9)
    p0_before = p0.copy()
    calls = {"n": 0}

    def counted(p):
        calls["n"] += 1
        return seed_cost(p)

    fd = minimize(counted, p0, method="CG")
    exact = minimize(net.loss, p0, args=(X, y), jac=net.grad, method="CG")
    np.testing.assert_array_equal(p0, p0_before)
    assert exact.success
    # same landscape, same start: both end at the same kind of point
    assert exact.fun <= fd.fun + 1e-3
    # several times fewer loss evaluations (finite differences spend n + 1 = 10 per gradient)
    assert calls["n"] >= 4 * exact.nfev
