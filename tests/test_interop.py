"""nncore.interop: weights to and from scikit-learn, PyTorch state dicts and JAX parameter
lists, exact round trips and checked input."""

import warnings

import numpy as np
import pytest

import nncore
from nncore import interop

PREDICT_RTOL = 1e-12
"""The same weights in two libraries: one matrix product per layer in a different summation
order (X @ W.T against X @ coefs_), a few ulps apart; the issue's bound."""


class ArrayLike:
    """Has ``__array__`` and nothing else, as a torch tensor does for numpy."""

    def __init__(self, value):
        self.value = np.asarray(value)

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)


@pytest.fixture
def net_theta():
    net = nncore.MLP([3, 5, 4, 2], activation="tanh", loss="mse")
    return net, net.init(seed=1) + 0.1  # nonzero biases too


def test_state_dict_round_trip_is_exact_and_copies(net_theta):
    net, theta = net_theta
    sd = interop.to_state_dict(net, theta)
    assert sorted(sd) == ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
    assert sd["2.weight"].shape == (4, 5) and not np.shares_memory(sd["0.weight"], theta)
    torchish = {k: ArrayLike(v.astype(np.float32)) for k, v in sd.items()}  # float32 accepted
    net2, theta2 = interop.from_state_dict(sd, activation="tanh")
    assert net2.sizes == net.sizes and np.array_equal(theta2, theta)
    _, theta32 = interop.from_state_dict(torchish, activation="tanh")
    np.testing.assert_allclose(theta32, theta, rtol=1e-7)  # float32 rounding
    assert sorted(interop.to_state_dict(net, theta, step=1)) == [
        "0.bias",
        "0.weight",
        "1.bias",
        "1.weight",
        "2.bias",
        "2.weight",
    ]


@pytest.mark.parametrize("style", ["pairs", "flax"])
def test_params_round_trip_and_orientation(net_theta, style):
    net, theta = net_theta
    params = interop.to_params(net, theta, style=style)
    X = np.random.default_rng(0).normal(size=(7, 3))
    h = X
    for k, layer in enumerate(params):  # x @ W + b with W (in, out) is the network
        W, b = (layer["kernel"], layer["bias"]) if style == "flax" else layer
        h = h @ W + b
        h = np.tanh(h) if k < len(params) - 1 else h
    np.testing.assert_allclose(h, net.predict(theta, X), rtol=PREDICT_RTOL)
    net2, theta2 = interop.from_params(params, activation="tanh")
    assert np.array_equal(theta2, theta) and net2.sizes == net.sizes


@pytest.mark.parametrize(
    "mapping, match",
    [
        (
            {"0.weight": np.zeros((2, 3)), "0.bias": np.zeros(2), "0.running_mean": np.zeros(2)},
            r"unexpected key '0.running_mean'",
        ),
        ({"0.weight": np.zeros((2, 3))}, r"missing key '0.bias'"),
        (
            {"0.weight": np.zeros((2, 3)), "0.bias": np.zeros(3)},
            r"'0.bias' has shape \(3,\), but '0.weight' has shape \(2, 3\)",
        ),
        (
            {"0.weight": np.zeros((2, 3), dtype=int), "0.bias": np.zeros(2)},
            r"'0.weight': expected floating-point data, got dtype int64 \(2, 3\)",
        ),
        (
            {"0.weight": np.zeros(3), "0.bias": np.zeros(2)},
            r"'0.weight': expected a 2-D array, got shape \(3,\)",
        ),
        (
            {"0.weight": np.full((2, 3), np.nan), "0.bias": np.zeros(2)},
            r"'0.weight': holds inf or NaN",
        ),
        (
            {
                "0.weight": np.zeros((2, 3)),
                "0.bias": np.zeros(2),
                "1.weight": np.zeros((1, 4)),
                "1.bias": np.zeros(1),
            },
            r"shapes do not chain: '0.weight' gives 2 outputs \(shape \(2, 3\)\), '1.weight' takes 4 inputs \(shape \(1, 4\)\)",
        ),
        ({}, "no layers"),
    ],
)
def test_state_dict_errors_name_the_key_and_shapes(mapping, match):
    with pytest.raises(ValueError, match=match):
        interop.from_state_dict(mapping)


@pytest.mark.parametrize(
    "params, match",
    [
        (
            [{"kernel": np.zeros((3, 2)), "b": np.zeros(2)}],
            r"params\[0\]: expected the keys \['bias', 'kernel'\], got \['b', 'kernel'\]",
        ),
        (
            [(np.zeros((3, 2)), np.zeros(2)), (np.zeros((3, 1)), np.zeros(1))],
            r"params\[0\]\[0\] \(W\) gives 2 outputs.*params\[1\]\[0\] \(W\) takes 3 inputs",
        ),
        ([(np.zeros((3, 2)), np.zeros(2), np.zeros(2))], r"params\[0\]: expected a pair"),
        (
            [(np.zeros((3, 2)), np.array(["a", "b"]))],
            r"params\[0\]\[1\] \(b\): expected floating-point data, got dtype <U1",
        ),
    ],
)
def test_params_errors_name_the_entry(params, match):
    with pytest.raises(ValueError, match=match):
        interop.from_params(params)


def test_inputs_are_not_modified(net_theta):
    net, theta = net_theta
    sd = interop.to_state_dict(net, theta)
    before = {k: v.copy() for k, v in sd.items()}
    _, theta2 = interop.from_state_dict(sd, activation="tanh")
    theta2[:] = 0.0
    for k in sd:
        np.testing.assert_array_equal(sd[k], before[k])


sklearn = pytest.importorskip("sklearn")


@pytest.mark.parametrize(
    "loss, sizes, output",
    [
        ("cross_entropy", [4, 6, 3], None),
        ("bce", [4, 6, 1], None),
        ("bce", [4, 6, 3], None),
        ("mse", [4, 6, 5, 2], None),
        ("mse", [4, 3, 1], None),
    ],
)
def test_to_sklearn_predicts_what_the_network_predicts(loss, sizes, output):
    net = nncore.MLP(sizes, activation="relu", loss=loss)
    theta = net.init(seed=2) + 0.05
    X = np.random.default_rng(3).normal(size=(30, 4))
    est = interop.to_sklearn(net, theta)
    ours = net.predict(theta, X)
    if loss == "mse":
        np.testing.assert_allclose(est.predict(X).reshape(ours.shape), ours, rtol=PREDICT_RTOL)
    else:
        proba = est.predict_proba(X)
        np.testing.assert_allclose(
            proba[:, 1:] if sizes[-1] == 1 else proba, ours, rtol=PREDICT_RTOL
        )
    net2, theta2 = interop.from_sklearn(est)
    assert net2.sizes == net.sizes and net2.loss_name == loss and np.array_equal(theta2, theta)


def test_to_sklearn_refuses_what_sklearn_cannot_hold():
    with pytest.raises(ValueError, match="one hidden activation"):
        interop.to_sklearn(nncore.MLP([2, 3, 3, 1], activation=["relu", "tanh"]), np.zeros(25))
    with pytest.raises(ValueError, match="one hidden activation"):
        interop.to_sklearn(nncore.MLP([2, 3, 1], activation="gelu"), np.zeros(13))
    with pytest.raises(ValueError, match="use loss='bce'"):
        interop.to_sklearn(nncore.MLP([2, 3, 2], loss="cross_entropy"), np.zeros(17))
    with pytest.raises(ValueError, match="identity output"):
        interop.to_sklearn(nncore.MLP([2, 3, 1], output="tanh"), np.zeros(13))
    with pytest.raises(ValueError, match="classes must be 3 distinct labels"):
        interop.to_sklearn(
            nncore.MLP([2, 3, 3], loss="cross_entropy"), np.zeros(21), classes=[1, 1, 2]
        )
    with pytest.raises(TypeError, match="fitted scikit-learn MLP"):
        interop.from_sklearn(object())


def test_from_sklearn_l2_reproduces_sklearns_loss():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    est = MLPRegressor(
        hidden_layer_sizes=(5,), solver="lbfgs", alpha=2.0, max_iter=10, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    net, theta = interop.from_sklearn(est, weight_sum=len(X))
    assert net.l2 == 2.0 / (0.5 * 40)
    assert 0.5 * net.loss(theta, X, y) == pytest.approx(est.loss_, rel=1e-10)


def test_to_params_returns_new_arrays_also_for_one_wide_layers():
    net = nncore.MLP([1, 4, 1])
    theta = net.init(seed=0)
    for style in ("pairs", "flax"):
        params = interop.to_params(net, theta, style=style)
        arrays = [
            a for layer in params for a in (layer.values() if isinstance(layer, dict) else layer)
        ]
        assert not any(np.shares_memory(a, theta) for a in arrays)
