"""Model files (nncore.save / nncore.load): bit-exact round trips, atomic writes, clear errors."""

import json
import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nncore
from nncore import io
from nncore.testing import networks, parameters


@settings(max_examples=30)
@given(st.data())
def test_round_trip_is_bit_exact(tmp_path_factory, d):
    net = d.draw(networks())
    theta = d.draw(parameters(net, bound=1e300))
    path = tmp_path_factory.mktemp("m") / "model.npz"
    nncore.save(path, net, theta, metadata={"note": "x", "n": [1, 2.5, None]})
    net2, theta2, meta = nncore.load(path)
    assert repr(net2) == repr(net) and net2.activations == net.activations
    assert theta2.tobytes() == np.ascontiguousarray(theta, dtype=np.float64).tobytes()
    assert meta == {"note": "x", "n": [1, 2.5, None]}


def test_the_file_is_the_documented_npz(tmp_path):
    net = nncore.MLP([3, 4, 2], activation=["gelu"], output="softmax", loss="cross_entropy", l2=0.5)
    theta = net.init(seed=1)
    path = tmp_path / "m.npz"
    nncore.save(path, net, theta)
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["header", "theta"]
        header = json.loads(f["header"].tobytes().decode("utf-8"))
    assert header["format"] == io.FORMAT and header["version"] == io.FORMAT_VERSION
    assert header["nncore_version"] == nncore.__version__
    assert header["network"] == {
        "sizes": [3, 4, 2],
        "activation": ["gelu"],
        "output": "softmax",
        "loss": "cross_entropy",
        "l2": 0.5,
    }
    assert header["metadata"] == {}
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_inputs_are_not_modified_and_a_list_theta_is_accepted(tmp_path):
    net = nncore.MLP([2, 2, 1])
    theta = net.init(seed=0)
    keep = theta.copy()
    nncore.save(tmp_path / "a.npz", net, theta)
    nncore.save(tmp_path / "b.npz", net, theta.tolist())
    assert np.array_equal(theta, keep)
    assert np.array_equal(nncore.load(tmp_path / "b.npz")[1], keep)


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, error):
    net = nncore.MLP([2, 2, 1])
    path = tmp_path / "model.npz"
    nncore.save(path, net, net.init(seed=0), metadata={"v": 1})
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")  # something is written, then the failure
        raise error()

    monkeypatch.setattr(io.np, "savez", failing_savez)
    with pytest.raises(error):
        nncore.save(path, net, net.init(seed=1), metadata={"v": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def _write(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _header(**changes):
    h = {
        "format": "nncore-model",
        "version": 1,
        "nncore_version": "0",
        "network": {
            "sizes": [2, 2, 1],
            "activation": ["tanh"],
            "output": "identity",
            "loss": "mse",
            "l2": 0.0,
        },
        "metadata": {},
    }
    h.update(changes)
    return np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)


def test_bad_files_are_named_for_what_is_wrong(tmp_path):
    good = tmp_path / "good.npz"
    net = nncore.MLP([2, 2, 1])
    nncore.save(good, net, net.init(seed=0))
    raw = good.read_bytes()
    cases = {}
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    cases["truncated.npz"] = "not an nncore model file|corrupted"
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0xFF
    (tmp_path / "corrupted.npz").write_bytes(bytes(flipped))
    cases["corrupted.npz"] = "not an nncore model file|corrupted|header"
    (tmp_path / "text.npz").write_text("sizes,theta\n1,2\n")
    cases["text.npz"] = "not an nncore model file"
    np.save(tmp_path / "array.npy", np.zeros(9))
    cases["array.npy"] = "an .npy array, not an .npz"
    _write(tmp_path / "foreign.npz", X=np.zeros((2, 2)), y=np.zeros(2))
    cases["foreign.npz"] = r"expected the arrays \['header', 'theta'\]"
    _write(tmp_path / "pickled.npz", header=_header(), theta=np.array([object()] * 9))
    cases["pickled.npz"] = "without pickle|corrupted"
    _write(tmp_path / "notjson.npz", header=np.frombuffer(b"{nope", np.uint8), theta=np.zeros(9))
    cases["notjson.npz"] = "not valid JSON"
    _write(tmp_path / "format.npz", header=_header(format="other"), theta=np.zeros(9))
    cases["format.npz"] = "format 'other', not 'nncore-model'"
    _write(tmp_path / "newer.npz", header=_header(version=2), theta=np.zeros(9))
    cases["newer.npz"] = "format version 2, newer than this nncore reads"
    _write(tmp_path / "short.npz", header=_header(), theta=np.zeros(8))
    cases["short.npz"] = r"theta has 8 entries, the network \[2, 2, 1\] needs 9"
    bad_act = _header(
        network={
            "sizes": [2, 2, 1],
            "activation": ["swish"],
            "output": "identity",
            "loss": "mse",
            "l2": 0.0,
        }
    )
    _write(tmp_path / "act.npz", header=bad_act, theta=np.zeros(9))
    cases["act.npz"] = "not a valid network: .*swish"
    _write(tmp_path / "keys.npz", header=_header(network={"sizes": [2, 1]}), theta=np.zeros(2))
    cases["keys.npz"] = "a network needs exactly the keys"
    _write(tmp_path / "nan.npz", header=_header(), theta=np.full(9, np.nan))
    cases["nan.npz"] = "inf or NaN"
    _write(tmp_path / "f32.npz", header=_header(), theta=np.zeros(9, np.float32))
    cases["f32.npz"] = "theta must be 1-D float64"
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            nncore.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        nncore.load(tmp_path / "missing.npz")


def test_bad_arguments_to_save(tmp_path):
    net = nncore.MLP([2, 2, 1])
    theta = net.init(seed=0)
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        nncore.save(tmp_path / "m.npz", net, theta, metadata={"a": object()})
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        nncore.save(tmp_path / "m.npz", net, theta, metadata={"a": float("nan")})
    with pytest.raises(TypeError, match="metadata must be a dict or None, got list"):
        nncore.save(tmp_path / "m.npz", net, theta, metadata=[1])
    with pytest.raises(ValueError, match=r"theta must have shape \(9,\), got \(8,\)"):
        nncore.save(tmp_path / "m.npz", net, theta[:8])
    with pytest.raises(TypeError, match="net must be an nncore MLP, got str"):
        nncore.save(tmp_path / "m.npz", "net", theta)
    assert not os.listdir(tmp_path)  # nothing written by a refused call


def test_loading_runs_no_code(tmp_path, monkeypatch):
    """The reader never unpickles: pickle.loads is not reached even for a hostile file."""
    net = nncore.MLP([2, 2, 1])
    nncore.save(tmp_path / "m.npz", net, net.init(seed=0))

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    nncore.load(tmp_path / "m.npz")
    _write(tmp_path / "p.npz", header=_header(), theta=np.array([object()] * 9))
    with pytest.raises(ValueError):
        nncore.load(tmp_path / "p.npz")


# -- safetensors ------------------------------------------------------------------------
def test_safetensors_round_trip_is_bit_exact_and_readable_as_a_state_dict(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    net = nncore.MLP([3, 4, 2], activation="relu", loss="cross_entropy", l2=1e-3)
    theta = net.init(seed=5) + 0.25
    path = tmp_path / "model.safetensors"
    nncore.save(path, net, theta, metadata={"note": "é"})
    net2, theta2, meta = nncore.load(path)
    assert repr(net2) == repr(net) and np.array_equal(theta2, theta) and meta == {"note": "é"}
    tensors = st.load_file(str(path))  # what a PyTorch-side tool sees: a state dict
    (W1, b1), (W2, b2) = net.unpack(theta)
    assert sorted(tensors) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert np.array_equal(tensors["0.weight"], W1) and np.array_equal(tensors["2.bias"], b2)
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_safetensors_foreign_or_corrupted_files_are_refused(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    foreign = tmp_path / "foreign.safetensors"
    st.save_file({"0.weight": np.zeros((2, 3))}, str(foreign))
    with pytest.raises(ValueError, match="without nncore's header"):
        nncore.load(foreign)
    net = nncore.MLP([3, 2, 1])
    good = tmp_path / "good.safetensors"
    nncore.save(good, net, net.init(seed=0))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-7])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        nncore.load(truncated)
    # the header names a bigger network than the tensors hold
    import json

    from safetensors import safe_open

    with safe_open(str(good), framework="numpy") as f:
        header = json.loads(f.metadata()["nncore"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    header["network"]["sizes"] = [3, 4, 1]
    wrong = tmp_path / "wrong.safetensors"
    st.save_file(tensors, str(wrong), metadata={"nncore": json.dumps(header)})
    with pytest.raises(
        ValueError, match=r"0.weight must be float64 \(4, 3\), got float64 \(2, 3\)"
    ):
        nncore.load(wrong)
