import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nncore import MLP
from nncore.testing import networks, parameters


@given(st.data())
def test_pack_unpack_round_trip_and_views_share_memory(d):
    net = d.draw(networks())
    theta = d.draw(parameters(net))
    pairs = net.unpack(theta)
    assert len(pairs) == len(net.sizes) - 1
    for (W, b), n_in, n_out in zip(pairs, net.sizes[:-1], net.sizes[1:]):
        assert W.shape == (n_out, n_in) and b.shape == (n_out,)
        assert np.shares_memory(W, theta) and np.shares_memory(b, theta)
    packed = net.pack(pairs)
    np.testing.assert_array_equal(packed, theta)
    assert not np.shares_memory(packed, theta)
    # a write through a view lands in theta
    pairs[-1][1][0] = 123.0
    assert theta[-net.sizes[-1]] == 123.0


def test_param_names_cover_every_entry_once():
    net = MLP([3, 2, 2])
    names = [net.param_name(i) for i in range(net.n_params)]
    assert len(set(names)) == net.n_params == 3 * 2 + 2 + 2 * 2 + 2
    assert names[0] == "layer 1: W[0, 0]"
    assert names[5] == "layer 1: W[1, 2]"
    assert names[6] == "layer 1: b[0]"
    assert names[9] == "layer 2: W[0, 1]"
    assert names[-1] == "layer 2: b[1]"
    with pytest.raises(IndexError, match=r"\[0, 14\)"):
        net.param_name(14)


def test_pack_rejects_wrong_shapes():
    net = MLP([2, 2, 1])
    pairs = net.unpack(np.zeros(9))
    with pytest.raises(ValueError, match=r"layer 2: W must have shape \(1, 2\), got \(2, 1\)"):
        net.pack([pairs[0], (pairs[1][0].T, pairs[1][1])])
    with pytest.raises(ValueError, match="needs 2"):
        net.pack(pairs[:1])


@pytest.mark.parametrize("activation, he", [("tanh", False), ("relu", True), ("gelu", True)])
def test_init_scales_per_activation(activation, he):
    net = MLP([400, 300, 10], activation=activation)
    theta = net.init(np.random.default_rng(0))
    (W1, b1), (W2, b2) = net.unpack(theta)
    assert not b1.any() and not b2.any()
    if he:  # N(0, 2 / fan_in)
        assert abs(W1.std() / np.sqrt(2 / 400) - 1) < 0.01
    else:  # U(-r, r), r = sqrt(6 / (fan_in + fan_out)), std r / sqrt(3)
        r = np.sqrt(6 / 700)
        assert np.abs(W1).max() <= r and abs(W1.std() / (r / np.sqrt(3)) - 1) < 0.01
    np.testing.assert_array_equal(net.init(5), net.init(np.random.default_rng(5)))
