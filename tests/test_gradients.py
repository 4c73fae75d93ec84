"""Hypothesis properties of the hand-derived gradient: against JAX, finite differences,
scipy's check_grad, and the structure of the objective (weights, permutations)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.optimize import check_grad

from nncore import MLP, check_gradient
from nncore.testing import SMOOTH_ACTIVATIONS, data, near_kink, networks, parameters
from nncore.verify import EPS, agree, rounding_scale

jax_reference = pytest.importorskip("nncore.jax_reference")

SUM_RTOL = 1e-12
"""Two summation orders of at most 16 samples differ by a few ulps times log2(16): far
below 1e-12 relative."""
CHECK_GRAD_SAFETY = 10.0
"""scipy.optimize.check_grad uses forward differences with the absolute step h = sqrt(eps)
(scipy's default), whose error per coordinate is h |J_ii| / 2 (truncation, with the exact
diagonal of the Hessian from nncore's hessp) plus about 2 eps |J| / h plus the rounding of the
terms (rounding); the check must stay within this many times that model."""


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny)


@given(st.data())
def test_gradient_equals_jax(d):
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net))
    assume(not near_kink(net, theta, X))
    J, g = net.loss_and_grad(theta, X, y, w)
    J_ref, g_ref = jax_reference.loss_and_grad(net, theta, X, y, w)
    assert agree(g, g_ref, J_ref), rel_error(g, g_ref)
    assert agree(J, J_ref, J_ref)


@pytest.mark.parametrize("profile", ["fast", "thorough"])
@given(st.data())
def test_central_differences_agree_away_from_kinks(profile, d):
    """Every activation; for relu-like ones the coordinates whose difference stencil moves
    a pre-activation across 0 are judged by JAX alone (see nncore.verify).  Both profiles."""
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net))
    report = check_gradient(net, theta, X, y, w, profile=profile)
    # where JAX binds it resolves every gradient; at a relu kink it does not, and a gradient
    # that is 0 to rounding leaves nothing to resolve it: inconclusive then, never failed
    assert report.passed or (report.verdict == "inconclusive" and near_kink(net, theta, X)), str(
        report
    )
    if not any(a in ("relu", "leaky_relu") for a in net.activations):
        assert report.kink_params == []


@given(st.data())
def test_scipy_check_grad_agrees_on_smooth_activations(d):
    net = d.draw(networks(activations=SMOOTH_ACTIVATIONS, hidden_layers=(1, 3)))
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net, samples=(1, 8)))
    J, g = net.loss_and_grad(theta, X, y, w)
    err = check_grad(net.loss, net.grad, theta, X, y, w)
    h = np.sqrt(EPS)  # scipy's step (absolute)
    diag = np.array([e @ net.hessp(theta, e, X, y, w) for e in np.eye(net.n_params)])
    per_coordinate = h * np.abs(diag) / 2 + 2 * EPS * rounding_scale(net, theta, J) / h
    assert err <= CHECK_GRAD_SAFETY * np.linalg.norm(per_coordinate)


@given(st.data())
def test_loss_and_gradient_do_not_depend_on_sample_order(d):
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net))
    perm = d.draw(st.permutations(range(X.shape[0])))
    wp = None if w is None else w[perm]
    J, g = net.loss_and_grad(theta, X, y, w)
    Jp, gp = net.loss_and_grad(theta, X[perm], y[perm], wp)
    assert agree(Jp, J, J, rtol=SUM_RTOL)
    assert agree(gp, g, rounding_scale(net, theta, J), rtol=SUM_RTOL)


@given(st.data())
def test_gradient_is_weighted_mean_of_per_sample_gradients(d):
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net, weights=True))
    omega = w / w.sum()
    per_sample = [net.grad(theta, X[i : i + 1], y[i : i + 1]) for i in range(X.shape[0])]
    expected = sum(o * gi for o, gi in zip(omega, per_sample))
    J, g = net.loss_and_grad(theta, X, y, w)
    assert agree(g, expected, rounding_scale(net, theta, J), rtol=SUM_RTOL)


@given(st.data())
def test_weights_enter_only_through_their_normalised_values(d):
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net, weights=True))
    c = d.draw(st.sampled_from([0.5, 2.0, 1024.0]))  # powers of two scale exactly
    J, g = net.loss_and_grad(theta, X, y, w)
    Jc, gc = net.loss_and_grad(theta, X, y, c * w)
    assert Jc == J
    np.testing.assert_array_equal(gc, g)


def test_zero_weight_drops_the_sample():
    net = MLP([3, 4, 2], activation="tanh", loss="cross_entropy", l2=0.1)
    rng = np.random.default_rng(0)
    theta = net.init(rng)
    X = rng.standard_normal((5, 3))
    y = np.array([0, 1, 1, 0, 1])
    w = np.array([1.0, 2.0, 0.0, 1.0, 3.0])
    keep = w > 0
    J, g = net.loss_and_grad(theta, X, y, w)
    Jk, gk = net.loss_and_grad(theta, X[keep], y[keep], w[keep])
    assert J == pytest.approx(Jk, rel=SUM_RTOL)
    np.testing.assert_allclose(g, gk, rtol=SUM_RTOL, atol=1e-15)


@given(st.data())
def test_inputs_are_never_modified(d):
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net))
    before = [a.copy() for a in (theta, X, y) + ((w,) if w is not None else ())]
    net.loss(theta, X, y, w)
    net.grad(theta, X, y, w)
    net.loss_and_grad(theta, X, y, w)
    net.predict(theta, X)
    net.forward(theta, X)
    obj = net.objective(X, y, w)
    obj.fun_and_jac(theta)
    after = (theta, X, y) + ((w,) if w is not None else ())
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_saturated_logits_stay_finite_and_exact():
    """bce and cross_entropy are computed from the logits, never from clipped probabilities."""
    X = np.array([[1.0]])
    for loss, y, out in (("bce", np.array([0.0]), 1), ("cross_entropy", np.array([1]), 2)):
        net = MLP([1, out], loss=loss)
        theta = np.full(net.n_params, 400.0)  # logits 800
        if loss == "cross_entropy":
            theta[:] = [800.0, 0.0, 0.0, 0.0]  # z = (800, 0), label 1
        J, g = net.loss_and_grad(theta, X, y)
        assert J == pytest.approx(800.0, rel=1e-15)
        assert np.all(np.isfinite(g)) and np.abs(g).max() == pytest.approx(1.0)


@pytest.mark.skipif(
    np.finfo(np.longdouble).eps > 1e-18, reason="needs an extended-precision long double"
)
@pytest.mark.parametrize("gap", [1.0, 10.0, 100.0, 700.0])
def test_softmax_output_from_log_softmax_is_accurate(gap):
    """cross_entropy computes A_L = exp(log_softmax(Z_L)) (docs/math.md, 4.3): exp turns the
    absolute rounding of log_softmax, a few ulps of |z_k - m| + log n_L, into relative error.
    Against the softmax in 64-bit-mantissa long double, within 8 eps (1 + |z_k - m| + log n)."""
    net = MLP([3, 10], output="softmax", loss="cross_entropy")
    rng = np.random.default_rng(int(gap))
    cache = net.forward(net.init(0), rng.standard_normal((50, 3)))
    Z = rng.uniform(-gap, 0.0, (500, 10))
    Z[:, 0] = 0.0  # the row maximum m = 0: every logit gap from it up to `gap`
    log_A = net.arch.loss.log_output(Z)
    A = np.exp(log_A)
    Zl = Z.astype(np.longdouble)
    exact = np.exp(Zl) / np.exp(Zl).sum(axis=1, keepdims=True)
    bound = 8 * np.finfo(float).eps * (1 + np.abs(Z) + np.log(10))
    assert np.all(np.abs(A - exact) <= bound * exact)
    assert cache.log_A_L is not None and np.array_equal(np.exp(cache.log_A_L), cache.A[-1])
