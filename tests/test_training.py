import numpy as np
import pytest
from scipy.optimize import OptimizeResult

import nncore
from nncore.seed import XOR_X, XOR_Y, seed_net
from nncore.training import FIRST_ORDER_METHODS


def _blobs(rng, n=60):
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    labels = rng.integers(0, 3, n)
    return centers[labels] + 0.7 * rng.standard_normal((n, 2)), labels


@pytest.mark.parametrize("method", FIRST_ORDER_METHODS)
def test_every_method_lowers_the_objective(method):
    rng = np.random.default_rng(0)
    problems = [
        (seed_net(), XOR_X, XOR_Y),
        (nncore.MLP([2, 5, 3], activation="tanh", loss="cross_entropy", l2=1e-3), *_blobs(rng)),
    ]
    for net, X, y in problems:
        theta0 = net.init(1)
        options = {"maxfun": 400} if method == "TNC" else {"maxiter": 200}
        res = nncore.train(net, X, y, method=method, theta0=theta0, options=options)
        assert isinstance(res, OptimizeResult)
        J0 = net.loss(theta0, X, y)
        assert res.history[0] == J0
        assert res.fun < 0.5 * J0
        assert res.fun == pytest.approx(net.loss(res.x, X, y), rel=1e-12)
        # the history follows the iterations and ends at the result
        assert len(res.history) >= 2
        assert res.history[-1] == pytest.approx(res.fun, rel=1e-9, abs=1e-15)


def test_history_has_one_entry_per_iteration_and_callback_sees_each():
    net = seed_net()
    seen = []
    res = nncore.train(
        net, XOR_X, XOR_Y, method="BFGS", seed=3, callback=lambda r: seen.append(r.fun)
    )
    assert len(res.history) == res.nit + 1
    np.testing.assert_array_equal(res.history[1:], seen)
    assert np.all(np.diff(res.history) <= 0)  # BFGS's line search only accepts descent


def test_theta0_is_not_modified_and_seed_reproduces():
    net = seed_net()
    theta0 = net.init(7)
    before = theta0.copy()
    a = nncore.train(net, XOR_X, XOR_Y, method="CG", theta0=theta0)
    np.testing.assert_array_equal(theta0, before)
    b = nncore.train(net, XOR_X, XOR_Y, method="CG", seed=7)
    np.testing.assert_array_equal(a.x, b.x)


def test_restarts_stop_at_target_and_count_all_work():
    net = seed_net()
    # start 0 of seed 1 ends on the 0.125 plateau (two inputs share a saturated hidden code)
    single = nncore.train(net, XOR_X, XOR_Y, method="L-BFGS-B", seed=1)
    assert single.fun > 0.1
    res = nncore.train(net, XOR_X, XOR_Y, method="L-BFGS-B", seed=1, n_starts=30, target=1 / 16)
    assert res.fun <= 1 / 16
    assert res.start == len(res.start_funs) - 1 > 0
    assert np.all(res.start_funs[:-1] > 1 / 16)
    assert res.total_nfev > res.nfev


def test_xor_restarts_solve_from_every_seed():
    """The demo's recipe (CG, up to 30 starts, stop below 1/16) over 200 seeds."""
    net = seed_net()
    for seed in range(200):
        res = nncore.train(net, XOR_X, XOR_Y, method="CG", seed=seed, n_starts=30, target=1 / 16)
        pred = net.predict(res.x, XOR_X).ravel()
        assert np.all((pred > 0.5) == (XOR_Y > 0.5)), seed
