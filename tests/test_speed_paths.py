"""The fast paths give the plain path's results: chunked equals unchunked to round-off, the
cached objective repeats itself bit for bit, and results are never overwritten later."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nncore
from nncore.testing import data, networks, parameters
from nncore.verify import agree, rounding_scale

CHUNK_RTOL = 1e-12
"""Chunks change only the order of the sums over at most 16 rows: a few ulps."""


@given(st.data())
def test_chunked_equals_unchunked(d):
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net))
    chunk = d.draw(st.integers(1, X.shape[0] + 1))
    n_jobs = d.draw(st.sampled_from([1, 1, 2]))
    v = np.linspace(-1.0, 1.0, net.n_params)
    plain = net.objective(X, y, w)
    chunked = net.objective(X, y, w, chunk_size=chunk, n_jobs=n_jobs)
    J, g = plain.fun_and_jac(theta)
    assert agree(chunked.fun(theta), J, J, rtol=CHUNK_RTOL)
    Jc, gc = chunked.fun_and_jac(theta)
    assert agree(Jc, J, J, rtol=CHUNK_RTOL)
    scale = rounding_scale(net, theta, J)
    assert agree(gc, g, scale, rtol=CHUNK_RTOL)
    assert agree(chunked.hessp(theta, v), plain.hessp(theta, v), scale, rtol=CHUNK_RTOL)
    assert agree(chunked.gnvp(theta, v), plain.gnvp(theta, v), scale, rtol=CHUNK_RTOL)


@given(st.data())
def test_repeated_calls_are_identical_and_results_are_never_overwritten(d):
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net))
    obj = net.objective(X, y, w)
    J1, g1 = obj.fun_and_jac(theta)
    keep = g1.copy()
    other = theta + 0.5
    obj.fun_and_jac(other)  # a later call at another point
    np.testing.assert_array_equal(g1, keep)  # the first result is untouched
    J2, g2 = obj.fun_and_jac(theta)
    assert J2 == J1
    np.testing.assert_array_equal(g2, g1)
    J3, g3 = net.loss_and_grad(theta, X, y, w)  # and the public path agrees bit for bit
    assert J3 == J1
    np.testing.assert_array_equal(g3, g1)


def test_results_do_not_depend_on_the_batch_size_seen_before():
    net = nncore.MLP([4, 6, 3], activation="relu", loss="cross_entropy", l2=0.01)
    rng = np.random.default_rng(0)
    theta = net.init(rng)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    first = net.loss_and_grad(theta, X[:10], y[:10])
    net.loss_and_grad(theta, X, y)
    net.loss_and_grad(theta, X[:3], y[:3])
    again = net.loss_and_grad(theta, X[:10], y[:10])
    assert first[0] == again[0]
    np.testing.assert_array_equal(first[1], again[1])


def test_train_with_chunks_matches_train_without():
    net = nncore.MLP([3, 8, 2], activation="tanh", loss="cross_entropy", l2=1e-3)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 3))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    a = nncore.train(net, X, y, method="L-BFGS-B", seed=0)
    b = nncore.train(net, X, y, method="L-BFGS-B", seed=0, chunk_size=64, n_jobs=2)
    # round-off differences grow along a long run, but the first steps are the same path
    np.testing.assert_allclose(b.history[:10], a.history[:10], rtol=1e-10)
    assert b.fun == pytest.approx(a.fun, rel=1e-6)


def test_bad_chunk_arguments():
    net = nncore.MLP([2, 2, 1])
    X, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match="chunk_size must be at least 1, got 0"):
        net.objective(X, y, chunk_size=0)
    with pytest.raises(TypeError, match="n_jobs must be an int, got float"):
        net.objective(X, y, chunk_size=2, n_jobs=2.0)
    with pytest.raises(ValueError, match="n_jobs > 1 needs a chunk_size"):
        net.objective(X, y, n_jobs=2)
    with pytest.raises(ValueError, match="chunk_size must be None"):
        nncore.train(net, X, y, method="lm", chunk_size=2)
