"""Self-checks of nncore.jax_reference against hand calculations and finite differences."""

import importlib.util
import pathlib
import sys
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("jax")
from scipy.optimize import approx_fprime
from scipy.special import erf, expit, log_softmax, softmax

jr = pytest.importorskip("nncore.jax_reference")  # enables x64 before jax is used here
import jax  # noqa: E402

SMOOTH = ["identity", "tanh", "sigmoid", "softplus", "gelu", "silu", "elu"]


def make_net(sizes, activations, loss_name="mse", l2=0.0):
    sizes = tuple(sizes)
    n = sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:]))
    return SimpleNamespace(
        sizes=sizes, activations=tuple(activations), loss_name=loss_name, l2=l2, n_params=n
    )


def problem(loss_name, hidden="tanh", sizes=(3, 4, 5, 2), l2=0.1, N=7, seed=0, weighted=True):
    rng = np.random.default_rng(seed)
    out = {"mse": "tanh", "bce": "sigmoid", "cross_entropy": "softmax"}[loss_name]
    L = len(sizes) - 1
    net = make_net(sizes, [hidden] * (L - 1) + [out], loss_name, l2)
    theta = rng.normal(size=net.n_params)
    X = rng.normal(size=(N, sizes[0]))
    if loss_name == "mse":
        y = rng.normal(size=(N, sizes[-1]))
    elif loss_name == "bce":
        y = rng.uniform(size=(N, sizes[-1]))
    else:
        y = rng.integers(0, sizes[-1], size=N)
    w = rng.uniform(0.2, 2.0, size=N) if weighted else None
    return net, theta, X, y, w


def central_grad(f, x, h=1e-6):
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


ALL = [("mse", h) for h in SMOOTH] + [
    ("bce", "tanh"),
    ("bce", "gelu"),
    ("cross_entropy", "silu"),
    ("cross_entropy", "softplus"),
]


# ---------------------------------------------------------------- hand example
def test_hand_worked_1_1_1_mse():
    net = make_net((1, 1, 1), ("identity", "identity"), "mse", l2=0.5)
    w1, b1, w2, b2 = 2.0, -1.0, 3.0, 0.5
    theta = np.array([w1, b1, w2, b2])
    X = np.array([[1.0], [2.0]])
    y = np.array([4.0, 10.0])
    # h = 2x - 1 = [1, 3]; yhat = 3h + 0.5 = [3.5, 9.5]; e = [-0.5, -0.5]
    e = np.array([-0.5, -0.5])
    J = np.mean(e**2) + 0.25 * (w1**2 + w2**2)  # 0.25 + 3.25 = 3.5
    g = np.array(
        [
            np.mean(2 * e * w2 * X[:, 0]) + 0.5 * w1,  # -4.5 + 1 = -3.5
            np.mean(2 * e * w2),  # -3
            np.mean(2 * e * np.array([1.0, 3.0])) + 0.5 * w2,  # -2 + 1.5
            np.mean(2 * e),
        ]
    )  # -1
    assert J == pytest.approx(3.5)
    np.testing.assert_allclose(g, [-3.5, -3.0, -0.5, -1.0])
    Jr, gr = jr.loss_and_grad(net, theta, X, y)
    assert isinstance(Jr, float) and Jr == pytest.approx(J, rel=1e-15)
    np.testing.assert_allclose(gr, g, rtol=1e-14)
    np.testing.assert_allclose(jr.predict(net, theta, X), [[3.5], [9.5]])
    # weighted: weights [1, 3] -> same J since e is constant
    assert jr.loss(net, theta, X, y, np.array([1.0, 3.0])) == pytest.approx(J)


# ------------------------------------------------------- losses vs numpy formulas
def _numpy_forward(net, theta, X):
    acts = {
        "tanh": np.tanh,
        "sigmoid": expit,
        "identity": lambda z: z,
        "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
        "softmax": lambda z: softmax(z, axis=1),
    }
    A, pos = X, 0
    for (i, o), name in zip(zip(net.sizes[:-1], net.sizes[1:]), net.activations):
        W = theta[pos : pos + o * i].reshape(o, i)
        b = theta[pos + o * i : pos + o * i + o]
        pos += o * i + o
        Z = A @ W.T + b
        A = acts[name](Z)
    return Z, A, pos


@pytest.mark.parametrize("loss_name", ["mse", "bce", "cross_entropy"])
def test_loss_matches_numpy_formula(loss_name):
    net, theta, X, y, w = problem(loss_name)
    Z, A, _ = _numpy_forward(net, theta, X)
    Y = jr.canonical_targets(net, y)
    if loss_name == "mse":
        li = np.mean((A - Y) ** 2, axis=1)
    elif loss_name == "bce":
        li = np.mean(np.logaddexp(0, Z) - Y * Z, axis=1)
    else:
        li = -np.sum(Y * log_softmax(Z, axis=1), axis=1)
    Ws = [theta[:12], theta[16:36], theta[41:51]]  # sizes (3, 4, 5, 2)
    J = np.sum(w * li) / np.sum(w) + 0.05 * sum(np.sum(W**2) for W in Ws)
    assert jr.loss(net, theta, X, y, w) == pytest.approx(J, rel=1e-13)
    np.testing.assert_allclose(jr.predict(net, theta, X), A, rtol=1e-13)


def test_targets_and_weights():
    net, theta, X, y, _ = problem("cross_entropy", weighted=False)
    onehot = np.eye(2)[y]
    assert jr.loss(net, theta, X, y) == pytest.approx(jr.loss(net, theta, X, onehot), rel=1e-15)
    # integer weights == repeated rows
    w = np.array([1, 2, 1, 3, 1, 1, 2.0])
    rep = np.repeat(np.arange(7), w.astype(int))
    expected = jr.loss(net, theta, X[rep], y[rep])
    assert jr.loss(net, theta, X, y, w) == pytest.approx(expected, rel=1e-13)
    with pytest.raises(ValueError):
        jr.loss(net, theta, X, np.array([0, 1, 2, 0, 1, 0, 1]))  # label out of range
    with pytest.raises(ValueError):
        jr.loss(net, theta, X, y, np.ones(3))
    net1 = make_net((2, 1), ("identity",))
    np.testing.assert_array_equal(jr.canonical_targets(net1, [1.0, 2.0]), [[1.0], [2.0]])
    with pytest.raises(ValueError):
        jr.residuals(net, theta, X, y)


def test_saturated_logits_stay_finite():
    net = make_net((1, 2), ("softmax",), "cross_entropy")
    theta = np.array([800.0, -800.0, 0.0, 0.0])
    X = np.array([[1.0]])
    J, g = jr.loss_and_grad(net, theta, X, np.array([1]))
    assert J == pytest.approx(1600.0) and np.all(np.isfinite(g))
    netb = make_net((1, 1), ("sigmoid",), "bce")
    J, g = jr.loss_and_grad(netb, np.array([1000.0, 0.0]), X, np.array([0.0]))
    assert J == pytest.approx(1000.0) and np.all(np.isfinite(g))


# ------------------------------------------------------------- derivatives
@pytest.mark.parametrize("loss_name,hidden", ALL)
def test_grad_vs_finite_differences(loss_name, hidden):
    net, theta, X, y, w = problem(loss_name, hidden)
    g = jr.grad(net, theta, X, y, w)
    fd = central_grad(lambda t: jr.loss(net, t, X, y, w), theta)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    fd2 = approx_fprime(theta, lambda t: jr.loss(net, t, X, y, w), 1e-7)
    np.testing.assert_allclose(g, fd2, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss_name,hidden", ALL)
def test_hessp_vs_finite_difference_of_grad(loss_name, hidden):
    net, theta, X, y, w = problem(loss_name, hidden)
    v = np.random.default_rng(1).normal(size=net.n_params)
    hv = jr.hessp(net, theta, v, X, y, w)
    h = 1e-5
    fd = (jr.grad(net, theta + h * v, X, y, w) - jr.grad(net, theta - h * v, X, y, w)) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss_name", ["mse", "bce", "cross_entropy"])
def test_gnvp_symmetric_psd_and_explicit(loss_name):
    net, theta, X, y, w = problem(loss_name, "gelu", l2=0.3)
    n = net.n_params
    G = np.column_stack([jr.gnvp(net, theta, e, X, y, w) for e in np.eye(n)])
    np.testing.assert_allclose(G, G.T, atol=1e-12)
    assert np.linalg.eigvalsh(0.5 * (G + G.T)).min() > -1e-10
    # explicit J^T H J from a jacobian of the output and closed-form H_out
    Z, _, _ = _numpy_forward(net, theta, X)
    om = w / w.sum()
    mask = np.zeros(n)
    pos = 0
    for i, o in zip(net.sizes[:-1], net.sizes[1:]):
        mask[pos : pos + o * i] = 1.0
        pos += o * i + o
    if loss_name == "mse":
        R = jr.jacobian(net, theta, X, y, w)  # includes the l2 rows
        np.testing.assert_allclose(G, 2 * R.T @ R, rtol=1e-11, atol=1e-12)
        return
    out = jax.jacfwd(lambda t: jr._forward(net, t, jax.numpy.asarray(X))[0])(theta)
    Jo = np.asarray(out)  # (N, n_out, n)
    K = Z.shape[1]
    Gx = np.zeros((n, n))
    for i in range(len(X)):
        if loss_name == "bce":
            p = expit(Z[i])
            H = np.diag(p * (1 - p)) / K
        else:
            p = softmax(Z[i])
            H = np.diag(p) - np.outer(p, p)
        Gx += om[i] * Jo[i].T @ H @ Jo[i]
    Gx += net.l2 * np.diag(mask)
    np.testing.assert_allclose(G, Gx, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("l2", [0.0, 0.2])
def test_residuals_and_jacobian(l2):
    net, theta, X, y, w = problem("mse", "silu", l2=l2)
    r = jr.residuals(net, theta, X, y, w)
    n_w = 12 + 20 + 10
    assert r.shape == (7 * 2 + (n_w if l2 > 0 else 0),)
    assert np.sum(r**2) == pytest.approx(jr.loss(net, theta, X, y, w), rel=1e-13)
    Jm = jr.jacobian(net, theta, X, y, w)
    assert Jm.shape == (r.size, net.n_params)
    np.testing.assert_allclose(2 * Jm.T @ r, jr.grad(net, theta, X, y, w), rtol=1e-11, atol=1e-13)
    fd = np.column_stack(
        [
            (
                jr.residuals(net, theta + 1e-6 * e, X, y, w)
                - jr.residuals(net, theta - 1e-6 * e, X, y, w)
            )
            / 2e-6
            for e in np.eye(net.n_params)
        ]
    )
    np.testing.assert_allclose(Jm, fd, rtol=1e-6, atol=1e-8)


def test_loss_fn_jit():
    net, theta, X, y, w = problem("cross_entropy", "elu")
    f = jax.jit(jax.value_and_grad(jr.loss_fn(net)))
    J, g = f(theta, X, jr.canonical_targets(net, y), w)
    J2, g2 = jr.loss_and_grad(net, theta, X, y, w)
    assert float(J) == pytest.approx(J2, rel=1e-14)
    np.testing.assert_allclose(np.asarray(g), g2, rtol=1e-13)


# ------------------------------------------------------------- kinks
def test_raw_jax_kink_behaviour_documented():
    """What JAX's own primitives give at z = 0 (why the module writes its own)."""
    g = jax.grad
    assert float(g(jax.nn.relu)(0.0)) == 0.0
    assert float(g(jax.nn.leaky_relu)(0.0)) == 1.0  # DESIGN wants 0.01
    assert float(g(lambda z: jax.numpy.minimum(z, 0.0))(0.0)) == 0.5  # tie split


@pytest.mark.parametrize(
    "name,f0,d1,d2",
    [("relu", 0.0, 0.0, 0.0), ("leaky_relu", 0.0, 0.01, 0.0), ("elu", 0.0, 1.0, 1.0)],
)
def test_activation_kinks(name, f0, d1, d2):
    f = jr._ACTIVATIONS[name]
    assert float(f(0.0)) == f0
    assert float(jax.grad(f)(0.0)) == d1
    assert float(jax.grad(jax.grad(f))(0.0)) == d2
    for z in [-1e3, -2.0, 2.0, 1e3]:  # no NaN from the branch not taken
        assert np.isfinite(float(jax.grad(f)(z))) and np.isfinite(float(jax.grad(jax.grad(f))(z)))


@pytest.mark.parametrize(
    "name,d1,d2", [("relu", 0.0, 0.0), ("leaky_relu", 0.01, 0.0), ("elu", 1.0, 1.0)]
)
def test_kinks_through_network(name, d1, d2):
    # 1-1-1 net, hidden pre-activation exactly 0: Z1 = 1 * 0 + 0
    net = make_net((1, 1, 1), (name, "identity"), "mse")
    w2, b2 = 3.0, 0.5
    theta = np.array([1.0, 0.0, w2, b2])
    X, y = np.array([[0.0]]), np.array([2.0])
    e = b2 - y[0]  # f(0) = 0 for all three
    g = jr.grad(net, theta, X, y)
    assert g[1] == pytest.approx(2 * e * w2 * d1, abs=1e-15)
    hb = jr.hessp(net, theta, np.array([0.0, 1.0, 0.0, 0.0]), X, y)
    assert hb[1] == pytest.approx(2 * (w2 * d1) ** 2 + 2 * e * w2 * d2, abs=1e-15)
    gb = jr.gnvp(net, theta, np.array([0.0, 1.0, 0.0, 0.0]), X, y)
    assert gb[1] == pytest.approx(2 * (w2 * d1) ** 2, abs=1e-15)


def test_smooth_activation_values():
    z = np.linspace(-5, 5, 11)
    ref = {
        "gelu": 0.5 * z * (1 + erf(z / np.sqrt(2))),
        "silu": z * expit(z),
        "softplus": np.log1p(np.exp(z)),
        "sigmoid": expit(z),
        "logistic": expit(z),
        "elu": np.where(z > 0, z, np.expm1(z)),
        "leaky_relu": np.where(z > 0, z, 0.01 * z),
    }
    for name, r in ref.items():
        np.testing.assert_allclose(np.asarray(jr._ACTIVATIONS[name](z)), r, rtol=1e-14, atol=1e-300)
    assert float(jr._ACTIVATIONS["softplus"](1000.0)) == 1000.0


def test_import_error_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    spec = importlib.util.spec_from_file_location("_jr_nojax", pathlib.Path(jr.__file__))
    mod = importlib.util.module_from_spec(spec)
    message = r'needs JAX: pip install jax jaxlib \(or pip install "\.\[jax\]" in a checkout'
    with pytest.raises(ImportError, match=message):
        spec.loader.exec_module(mod)


def test_compiled_transforms_are_bounded(monkeypatch):
    """Past COMPILED_LIMIT transforms every cache is dropped (each XLA executable maps memory,
    and thousands of them hit the kernel's map limit), and results stay the same."""
    from nncore import MLP

    monkeypatch.setattr(jr, "COMPILED_LIMIT", 2)
    monkeypatch.setattr(jr, "_COMPILED", {})
    X, y = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0.0, 1.0])
    first = None
    for width in (1, 2, 3, 1):
        net = MLP([2, width, 1], activation="tanh", output="sigmoid")
        J, g = jr.loss_and_grad(net, net.init(0), X, y)
        assert len(jr._COMPILED) <= 2
        if width == 1:
            if first is None:
                first = (J, np.asarray(g))
            else:  # compiled again after the drop: the same numbers
                assert J == first[0] and np.array_equal(np.asarray(g), first[1])
