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
    # the curvature products read the same cache, in the objective's reused workspace
    v = np.linspace(-1.0, 1.0, net.n_params)
    h1, n1 = obj.hessp(theta, v), obj.gnvp(theta, v)
    obj.hessp(theta, -2.0 * v)  # the R-pass buffers are reused by the next product
    obj.fun_and_jac(other)
    np.testing.assert_array_equal(obj.hessp(theta, v), h1)
    np.testing.assert_array_equal(obj.gnvp(theta, v), n1)
    np.testing.assert_array_equal(net.hessp(theta, v, X, y, w), h1)
    np.testing.assert_array_equal(net.gnvp(theta, v, X, y, w), n1)


@given(st.data())
def test_threaded_chunks_are_deterministic(d):
    """Each thread sums a fixed set of chunks, so timing never changes the rounding."""
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net))
    chunk = d.draw(st.integers(1, max(1, X.shape[0] // 2)))
    obj = net.objective(X, y, w, chunk_size=chunk, n_jobs=2)
    J1, g1 = obj.fun_and_jac(theta)
    v = np.linspace(-1.0, 1.0, net.n_params)
    h1 = obj.hessp(theta, v)
    for _ in range(3):
        obj.fun_and_jac(theta + 0.25)
        J2, g2 = obj.fun_and_jac(theta)
        assert J2 == J1
        np.testing.assert_array_equal(g2, g1)
        np.testing.assert_array_equal(obj.hessp(theta, v), h1)


def test_chunked_workspaces_hold_chunk_rows_only():
    """Bounded memory: the buffers an objective keeps are sized by the chunk, not by N."""
    net = nncore.MLP([5, 16, 8, 3], activation="relu", loss="cross_entropy")
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((1000, 5)), rng.integers(0, 3, 1000)
    obj = net.objective(X, y, chunk_size=96, n_jobs=2)
    obj.fun_and_jac(net.init(0))
    sizes = sorted(N for spaces in obj._spaces for N in spaces._by_size)
    # 1000 = 10 x 96 + 40: thread 0 takes chunks 0, 2, ..., 10 (the last has 40 rows),
    # thread 1 chunks 1, 3, ..., 9
    assert sizes == [40, 96, 96]


def test_gradient_out_argument():
    net = nncore.MLP([3, 5, 2], activation="tanh", loss="mse", l2=0.1)
    rng = np.random.default_rng(3)
    theta, X, y = net.init(rng), rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    J, g = net.loss_and_grad(theta, X, y)
    out = np.full(net.n_params, np.nan)
    J2, g2 = net.loss_and_grad(theta, X, y, out=out)
    assert g2 is out and J2 == J
    np.testing.assert_array_equal(out, g)
    out2 = np.empty(net.n_params)
    assert net.grad(theta, X, y, out=out2) is out2
    np.testing.assert_array_equal(out2, g)


@pytest.mark.parametrize(
    ("make_out", "error", "message"),
    [
        (lambda n, t: [0.0] * n, TypeError, "out must be a numpy.ndarray, got list"),
        (lambda n, t: np.empty(n - 1), ValueError, r"out must be a float64 array of shape"),
        (lambda n, t: np.empty(n, np.float32), ValueError, "got float32"),
        (lambda n, t: np.empty(2 * n)[::2], ValueError, "C-contiguous and writeable"),
        (lambda n, t: t, ValueError, "out must not share memory with theta"),
    ],
)
def test_bad_out_is_rejected_before_anything_is_written(make_out, error, message):
    net = nncore.MLP([2, 3, 1])
    theta = net.init(0)
    keep = theta.copy()
    X, y = np.ones((4, 2)), np.zeros(4)
    out = make_out(net.n_params, theta)
    before = np.array(out, dtype=float, copy=True)
    with pytest.raises(error, match=message):
        net.loss_and_grad(theta, X, y, out=out)
    np.testing.assert_array_equal(theta, keep)
    np.testing.assert_array_equal(np.asarray(out, dtype=float), before)


@given(st.data())
def test_one_workspace_set_across_batch_sizes_matches_fresh_buffers(d):
    """The buffers of one thread's workspaces, used for one batch size, then another, then
    the first again, give the results of freshly allocated buffers, bit for bit."""
    from nncore import kernels
    from nncore.workspace import Spaces

    net = d.draw(networks())
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net))
    cut = d.draw(st.integers(1, X.shape[0]))
    params = net.layout.unpack(theta)
    spaces = Spaces(net.arch)
    parts = [(X, y, w), (X[:cut], y[:cut], None if w is None or not w[:cut].any() else w[:cut])]

    def evaluate(batch, ws):
        cache = kernels.forward(net.arch, params, batch.X, ws)
        return (
            kernels.value(net.arch, params, cache, batch),
            kernels.backward(net.arch, params, cache, batch, ws),
        )

    for Xp, yp, wp in parts + parts:
        batch = net.batch(Xp, yp, wp)
        J, g = evaluate(batch, spaces.get(batch.X.shape[0]))
        J0, g0 = evaluate(batch, Spaces(net.arch).get(batch.X.shape[0]))  # fresh buffers
        assert J == J0
        np.testing.assert_array_equal(g, g0)


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


@given(st.data())
def test_activations_do_not_depend_on_memory_layout(d):
    """The kernels call f and f' on feature-major buffers, which take their own numpy loops
    (relu's zero column); every layout and every ``out=`` gives the same numbers, bit for bit
    for the element-wise activations.  Softmax sums each row, in an order that depends on the
    layout: at most ``m - 1`` roundings of the sum differ."""
    from nncore.activations import ACTIVATIONS

    n, m = d.draw(st.integers(1, 9)), d.draw(st.integers(1, 9))
    seed = d.draw(st.integers(0, 2**32 - 1))
    z = np.random.default_rng(seed).normal(0.0, 3.0, (n, m))
    z[0, 0] = 0.0  # the kink
    fm = np.asfortranarray(z)
    for act in ACTIVATIONS.values():
        a = act.f(z.copy())
        out = np.empty_like(fm)
        assert act.f(fm, out) is out
        for b in (act.f(fm), out):
            if act.name == "softmax":
                np.testing.assert_allclose(b, a, rtol=m * np.finfo(float).eps, atol=0)
            else:
                assert np.array_equal(b, a)
        if act.df is not None:
            df = act.df(z, a)
            assert np.array_equal(act.df(fm, np.asfortranarray(a)), df)
            scratch = np.empty_like(fm, dtype=act.df_dtype)
            assert np.array_equal(act.df(fm, np.asfortranarray(a), scratch), df)


def test_public_calls_reuse_buffers_but_never_hand_them_out():
    """Each thread's public calls reuse its last workspace (one batch size at a time, up to
    WORKSPACE_CACHE_BYTES); results stay the caller's, identical to a fresh network's."""
    import copy
    import pickle
    import threading

    from nncore import workspace
    from nncore.workspace import Workspace

    rng = np.random.default_rng(3)
    net = nncore.MLP([3, 6, 2], activation="tanh", loss="mse")
    X, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    t1, t2, v = net.init(1), net.init(2), rng.standard_normal(net.n_params)
    J1, g1 = net.loss_and_grad(t1, X, y)
    ws = net._workspaces.current
    h1 = net.hessp(t1, v, X, y)
    keep = g1.copy(), h1.copy()
    fresh = pickle.loads(pickle.dumps(net))  # the pickle holds no buffers
    J2, g2 = net.loss_and_grad(t2, X, y)
    assert net._workspaces.current is ws  # the same buffers again
    assert np.array_equal(g1, keep[0]) and np.array_equal(h1, keep[1])  # never overwritten
    J2_fresh, g2_fresh = fresh.loss_and_grad(t2, X, y)
    assert J2 == J2_fresh and np.array_equal(g2, g2_fresh)
    assert np.array_equal(copy.deepcopy(net).hessp(t1, v, X, y), h1)
    net.loss(t1, X[:7], y[:7])  # another batch size replaces the workspace
    assert net._workspaces.current.N == 7

    results = {}

    def other_thread():
        results["other"] = net.loss_and_grad(t2, X[:5], y[:5])
        results["ws"] = net._workspaces.current

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert results["ws"] is not net._workspaces.current  # a thread's workspace is its own
    assert results["other"][1].tolist() == fresh.grad(t2, X[:5], y[:5]).tolist()

    per_row = Workspace(net.arch, 2).max_nbytes - Workspace(net.arch, 1).max_nbytes
    big = workspace.WORKSPACE_CACHE_BYTES // per_row + 1
    net.loss(t1, np.zeros((big, 3)), np.zeros((big, 2)))  # too large to keep
    assert net._workspaces.current is None


@pytest.mark.parametrize("n_l", [1, 2, 5])
def test_times_is_matmul_bit_for_bit(n_l):
    """``kernels.times`` takes np.multiply for a one-wide layer (an outer product: one product
    per entry) and np.matmul otherwise; both give matmul's bits, in the F-ordered buffers."""
    from nncore import kernels
    from nncore.workspace import feature_major

    rng = np.random.default_rng(n_l)
    D = np.asfortranarray(rng.normal(size=(37, n_l)))
    W = rng.normal(size=(n_l, 6)) * 10.0 ** rng.integers(-200, 200, size=(n_l, 6))
    out = feature_major(37, 6)
    got = kernels.times(D, W, out)
    assert got is out
    np.testing.assert_array_equal(got, np.matmul(D, W))
