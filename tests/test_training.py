import sys

import numpy as np
import pytest
from scipy.optimize import OptimizeResult, minimize

import nncore
from nncore.seed import XOR_X, XOR_Y, seed_net
from nncore.training import HESS_METHODS, HESSP_METHODS, LEAST_SQUARES_METHODS, METHODS


def _blobs(rng, n=60):
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    labels = rng.integers(0, 3, n)
    return centers[labels] + 0.7 * rng.standard_normal((n, 2)), labels


@pytest.fixture
def no_finite_differences(monkeypatch):
    """Make every finite-difference derivative in scipy.optimize an error."""

    def forbidden(*args, **kwargs):
        raise AssertionError("scipy fell back on finite differences")

    for name, module in list(sys.modules.items()):
        if name.startswith("scipy.optimize._"):  # the implementation modules
            for attr in ("approx_derivative", "approx_fprime", "approx_fhess_p"):
                if hasattr(module, attr):
                    monkeypatch.setattr(module, attr, forbidden)


def test_the_guard_catches_a_finite_difference_hessian(no_finite_differences):
    net = seed_net()
    with pytest.raises(AssertionError, match="finite differences"):
        minimize(net.loss, net.init(0), args=(XOR_X, XOR_Y), jac=net.grad, method="Newton-CG")


@pytest.mark.parametrize("curvature", ["exact", "gauss_newton"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_lowers_the_objective(method, curvature, no_finite_differences):
    rng = np.random.default_rng(0)
    problems = [(seed_net(), XOR_X, XOR_Y)]
    if method not in LEAST_SQUARES_METHODS:
        net = nncore.MLP([2, 5, 3], activation="tanh", loss="cross_entropy", l2=1e-3)
        problems.append((net, *_blobs(rng)))
    else:
        net = nncore.MLP([3, 6, 1], activation="tanh", l2=1e-3)
        X = rng.uniform(-1, 1, (40, 3))
        problems.append((net, X, np.sin(X @ np.array([1.0, -2.0, 0.5]))))
    for net, X, y in problems:
        theta0 = net.init(1)
        if method == "TNC":
            options = {"maxfun": 400}
        elif method in LEAST_SQUARES_METHODS:
            options = {"max_nfev": 400}
        else:
            options = {"maxiter": 200}
        res = nncore.train(
            net, X, y, method=method, theta0=theta0, options=options, curvature=curvature
        )
        assert isinstance(res, OptimizeResult)
        J0 = net.loss(theta0, X, y)
        assert res.history[0] == J0
        assert res.fun < 0.5 * J0
        assert res.fun == pytest.approx(net.loss(res.x, X, y), rel=1e-12)
        # the history follows the iterations and ends at the result
        assert len(res.history) >= 2
        assert res.history[-1] == pytest.approx(res.fun, rel=1e-9, abs=1e-15)
        assert res.nfev >= 1 and res.njev >= 1
        if method in HESSP_METHODS + HESS_METHODS:
            assert res.nhev >= 1  # curvature came from nncore, not from differences


def test_lm_works_with_fewer_residuals_than_parameters():
    """XOR has 4 residuals and 9 parameters; MINPACK needs m >= n: zero rows are appended."""
    net = seed_net()
    res = nncore.train(net, XOR_X, XOR_Y, method="lm", seed=4, n_starts=30, target=1 / 16)
    assert res.fun <= 1 / 16 and len(res.residuals) == 4
    assert res.fun == pytest.approx(res.residuals @ res.residuals, rel=1e-12)


def test_least_squares_needs_mse():
    net = nncore.MLP([2, 3, 2], loss="cross_entropy")
    with pytest.raises(ValueError, match="method 'lm' needs loss 'mse', got 'cross_entropy'"):
        nncore.train(net, np.zeros((3, 2)), np.array([0, 1, 0]), method="lm")


def test_bad_curvature_name():
    with pytest.raises(ValueError, match="curvature must be one of"):
        nncore.train(seed_net(), XOR_X, XOR_Y, method="trust-ncg", curvature="fisher")


def test_history_has_one_entry_per_iteration_and_callback_sees_each():
    net = seed_net()
    seen = []
    res = nncore.train(
        net, XOR_X, XOR_Y, method="BFGS", seed=3, callback=lambda r: seen.append(r.fun)
    )
    assert len(res.history) == res.nit + 1
    np.testing.assert_array_equal(res.history[1:], seen)
    assert np.all(np.diff(res.history) <= 0)  # BFGS's line search only accepts descent


@pytest.mark.parametrize("method", ["BFGS", "TNC", "Newton-CG", "dogleg", "trf"])
def test_callback_sees_the_counts_of_this_start_so_far(method):
    """The callback's ``nfev``, ``njev``, ``nhev`` are the objective's counts at that
    iteration: they never fall, the last is at most the result's, and a run stopped at its
    first callback returns exactly the counts it saw: nncore ends it outside scipy, so no
    method does more work after the stop (scipy's trust-region driver would evaluate the
    Hessian once more to return it)."""
    net = seed_net()
    seen = []
    res = nncore.train(
        net,
        XOR_X,
        XOR_Y,
        method=method,
        seed=3,
        callback=lambda r: seen.append((r.nfev, r.njev, r.nhev)),
    )
    counts = np.array(seen)
    assert len(seen) == len(res.history) - 1 >= 2
    assert np.all(np.diff(counts, axis=0) >= 0) and np.all(counts[0, :2] >= 1)
    assert np.all(counts[-1] <= [res.nfev, res.njev, res.nhev])
    assert (counts[:, 2] > 0).all() == (method in ("Newton-CG", "dogleg"))

    def stop(intermediate_result):
        r = intermediate_result
        seen[:] = [(r.nfev, r.njev, r.nhev)]
        raise StopIteration

    res = nncore.train(net, XOR_X, XOR_Y, method=method, seed=3, callback=stop)
    assert (res.nfev, res.njev, res.nhev) == seen[0]


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


@pytest.mark.parametrize("method", METHODS)
def test_callback_can_stop_every_method(method):
    """StopIteration from the callback ends the run with a result at the first iteration,
    for every method (lm from nncore's own Jacobian evaluations), saying so."""
    net = seed_net()
    seen = []

    def stop(intermediate_result):
        seen.append(intermediate_result.fun)
        raise StopIteration

    res = nncore.train(net, XOR_X, XOR_Y, method=method, seed=0, callback=stop)
    assert isinstance(res, OptimizeResult) and np.isfinite(res.fun)
    assert res.fun == pytest.approx(net.loss(res.x, XOR_X, XOR_Y), rel=1e-12)
    assert len(seen) == 1 and res.fun == seen[0] and res.nit == 1
    assert not res.success and res.status == 99 and "callback stopped" in res.message
    assert res.stopped == "callback" and len(res.history) == 2


def test_dogleg_matrix_is_positive_definite_with_the_size_of_each_curvature():
    """training._positive_definite: eigenvalues max(|lambda|, delta), same eigenvectors, H
    itself when already safely positive definite; Cholesky then always succeeds."""
    from scipy.linalg import cho_factor

    from nncore.training import PD_SHIFT, _positive_definite

    rng = np.random.default_rng(5)
    for trial in range(300):
        n = int(rng.integers(1, 30))
        Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        scale = 10.0 ** rng.uniform(-6, 6)
        kind = trial % 3
        lam = scale * rng.standard_normal(n)  # indefinite
        if kind == 1:  # singular positive semi-definite
            lam = np.abs(lam)
            lam[: n // 2] = 0.0
        elif kind == 2:  # safely positive definite
            lam = scale * rng.uniform(1.0, 2.0, n)
        H = (Q * lam) @ Q.T
        H = 0.5 * (H + H.T)
        delta = PD_SHIFT * max(1.0, np.abs(np.linalg.eigvalsh(H)).max())
        B = _positive_definite(H.copy())
        cho_factor(B)  # raises LinAlgError if not positive definite
        got = np.linalg.eigvalsh(B)
        want = np.sort(np.maximum(np.abs(np.linalg.eigvalsh(H)), delta))
        # eigh and the rebuild each err by O(n eps ||H||): far below delta = sqrt(eps) ||H||
        np.testing.assert_allclose(got, want, rtol=0, atol=1e3 * np.finfo(float).eps * scale * n)
        if kind == 2:
            assert np.array_equal(B, H)  # left alone
