"""Watching and stopping nncore.train: the history records, the callback's stop, validation
with patience, the time budget, Ctrl-C and the progress bar, for every method."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nncore
from nncore.monitor import History
from nncore.seed import XOR_X, XOR_Y, seed_net
from nncore.training import LEAST_SQUARES_METHODS, METHODS

ROOT = Path(__file__).resolve().parents[1]


def _regression(seed=0, n=40):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 3))
    return X, np.sin(X @ np.array([1.0, -2.0, 0.5])) + 0.3 * rng.standard_normal(n)


@pytest.mark.parametrize("method", ["BFGS", "TNC", "Newton-CG", "trust-ncg", "trf", "lm"])
def test_history_records_the_gradient_norm_and_counts_at_each_iterate(method):
    net = nncore.MLP([3, 6, 1], activation="tanh", l2=1e-3)
    X, y = _regression()
    xs = []
    res = nncore.train(net, X, y, method=method, seed=0, callback=lambda r: xs.append(r.x))
    h = res.history
    assert isinstance(h, History) and len(h) == len(xs) + 1
    for x, gnorm, J in zip(xs, h.grad_norm[1:], h.objective[1:]):
        assert gnorm == pytest.approx(np.linalg.norm(net.grad(x, X, y)), rel=1e-9)
        assert J == pytest.approx(net.loss(x, X, y), rel=1e-12)
    assert h.grad_norm[0] == pytest.approx(np.linalg.norm(net.grad(net.init(0), X, y)))
    assert np.all(np.diff(h.nfev) >= 0) and np.all(np.diff(h.njev) >= 0)
    assert np.all(np.diff(h.elapsed) >= 0) and np.isnan(h.validation).all()
    np.testing.assert_array_equal(h.iteration, np.arange(len(h)))
    assert h.nfev[-1] <= res.nfev and h.njev[-1] <= res.njev
    # the former array of objective values still reads the same
    assert res.history[0] == h.objective[0] and np.asarray(res.history) is h.objective


def test_history_marks_the_restarts_and_counts_over_all_starts():
    net = seed_net()
    res = nncore.train(net, XOR_X, XOR_Y, method="L-BFGS-B", seed=1, n_starts=30, target=1 / 16)
    h = res.history
    n = len(res.start_funs)
    assert n > 1 and len(h.restarts) == n - 1
    assert np.all(h.iteration[h.restarts] == 0) and h.iteration[0] == 0
    np.testing.assert_array_equal(np.unique(h.start), np.arange(n))
    ends = np.r_[h.restarts - 1, len(h) - 1]
    np.testing.assert_allclose(h.objective[ends], res.start_funs, rtol=1e-12)
    assert h.nfev[-1] == res.total_nfev and h.njev[-1] <= res.total_njev
    assert len(h.of_start(res.start)) == res.nit + 1


def test_a_callback_returning_true_stops_training_and_no_further_start_runs():
    net = seed_net()
    calls = []

    def enough(intermediate_result):
        calls.append(intermediate_result.nit)
        return intermediate_result.nit == 3

    res = nncore.train(net, XOR_X, XOR_Y, method="CG", seed=1, n_starts=5, callback=enough)
    assert calls == [1, 2, 3] and res.stopped == "callback" and res.status == 99
    assert not res.success and "callback stopped" in res.message
    assert len(res.start_funs) == 1 and res.nit == 3
    # a callback returning None or a truthy non-True value does not stop
    res = nncore.train(net, XOR_X, XOR_Y, method="CG", seed=1, callback=lambda r: 1)
    assert res.stopped is None and res.nit > 3


def _long_run(method):
    if method in LEAST_SQUARES_METHODS:
        return {"max_nfev": 3000}
    return {"maxfun": 3000} if method == "TNC" else {"maxiter": 3000}


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "TNC", "Newton-CG", "trf", "lm"])
def test_validation_patience_returns_the_best_validation_point(method):
    """A network far larger than 20 noisy samples need: the validation objective turns up,
    patience stops it, and the result is the iterate of lowest validation objective."""
    net = nncore.MLP([3, 40, 1], activation="tanh")
    X, y = _regression(0, 20)
    Xv, yv = _regression(1, 200)
    res = nncore.train(
        net,
        X,
        y,
        method=method,
        seed=0,
        validation=(Xv, yv),
        patience=5,
        options=_long_run(method),
    )
    h = res.history
    best = int(np.argmin(h.validation))
    assert res.stopped == "patience" and res.status == 100 and res.success
    assert res.best_iteration == best and len(h) == best + 5 + 1
    assert res.validation_fun == h.validation[best] == net.loss(res.x, Xv, yv)
    assert res.fun == pytest.approx(net.loss(res.x, X, y), rel=1e-12) == h.objective[best]
    assert h.objective[-1] < res.fun  # training went on lowering J after the best point
    if method in LEAST_SQUARES_METHODS:
        assert res.fun == pytest.approx(res.residuals @ res.residuals, rel=1e-12)


def test_validation_without_patience_and_with_weights():
    net = nncore.MLP([3, 8, 1], activation="tanh")
    X, y = _regression(0, 30)
    Xv, yv = _regression(1, 50)
    wv = np.linspace(0.5, 1.5, 50)
    before = (Xv.copy(), yv.copy(), wv.copy())
    res = nncore.train(net, X, y, seed=0, validation=(Xv, yv, wv), options={"maxiter": 40})
    assert res.validation_fun == pytest.approx(np.nanmin(res.history.validation), rel=0)
    assert res.validation_fun == net.loss(res.x, Xv, yv, wv) and res.stopped is None
    for a, b in zip((Xv, yv, wv), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"patience": 3}, ValueError, "patience needs validation data"),
        ({"validation": (XOR_X,)}, TypeError, "tuple of length 1"),
        ({"validation": XOR_X}, TypeError, "got ndarray"),
        ({"validation": (XOR_X[:, :1], XOR_Y)}, ValueError, "validation data: X must have 2"),
        ({"validation": (XOR_X, XOR_Y), "patience": 0}, ValueError, "patience must be at least"),
        ({"validation": (XOR_X, XOR_Y), "patience": 2.0}, TypeError, "patience must be an int"),
        ({"max_time": 0}, ValueError, "max_time must be a positive number of seconds, got 0"),
        ({"max_time": "1"}, TypeError, "max_time must be a real number"),
        ({"progress": "yes"}, ValueError, "progress must be True, False or"),
    ],
)
def test_bad_control_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        nncore.train(seed_net(), XOR_X, XOR_Y, **kwargs)


@pytest.mark.parametrize("method", METHODS)
def test_max_time_stops_every_method_at_its_best_point(method):
    """Each iteration sleeps 40 ms in the callback: a 0.15 s budget ends every method after
    a few iterations, lm included (its iterations come from nncore's Jacobian calls)."""
    net = nncore.MLP([3, 6, 1], activation="tanh", l2=1e-3)
    X, y = _regression()
    t0 = time.perf_counter()
    res = nncore.train(
        net, X, y, method=method, seed=0, n_starts=3, max_time=0.15,
        callback=lambda r: time.sleep(0.04),
    )  # fmt: skip
    assert time.perf_counter() - t0 < 1.0
    assert res.stopped == "max_time" and res.status == 101 and not res.success
    assert "time budget of 0.15 s" in res.message
    assert res.fun == res.history.objective.min() and len(res.start_funs) == 1
    assert res.fun == pytest.approx(net.loss(res.x, X, y), rel=1e-12)


def test_ctrl_c_returns_the_best_point_of_all_starts():
    """A real SIGINT, sent from the callback of the third start: KeyboardInterrupt arises
    wherever the interpreter is next, and train returns the best point seen over the starts,
    saying it was interrupted, with the history up to there; the SIGINT handler is left as
    it was, so a second Ctrl-C interrupts as usual."""
    net = seed_net()
    handler = signal.getsignal(signal.SIGINT)

    # the start index: counted from the nit == 1 callbacks
    starts = {"n": 0}

    def callback(r):
        if r.nit == 1:
            starts["n"] += 1
        if starts["n"] == 3 and r.nit == 2:
            os.kill(os.getpid(), signal.SIGINT)

    res = nncore.train(net, XOR_X, XOR_Y, method="BFGS", seed=1, n_starts=10, callback=callback)
    h = res.history
    assert res.stopped == "interrupted" and res.status == 102 and not res.success
    assert "interrupted" in res.message
    assert h.start[-1] == 2 and len(res.start_funs) == 3
    assert res.fun == h.objective.min() and res.fun == pytest.approx(net.loss(res.x, XOR_X, XOR_Y))
    assert signal.getsignal(signal.SIGINT) is handler


def test_ctrl_c_before_any_point_propagates(monkeypatch):
    net = seed_net()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nncore.Objective, "fun", interrupted)
    with pytest.raises(KeyboardInterrupt):
        nncore.train(net, XOR_X, XOR_Y)


def test_ctrl_c_stops_a_long_lm_run_in_a_real_process(tmp_path):
    """The issue's case: lm on load_diabetes (10-16-1, raw targets) ran minutes without a
    way out.  SIGINT after 1.5 s: the process prints the interrupted result and exits 0."""
    pytest.importorskip("sklearn")
    script = tmp_path / "long_lm.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import numpy as np, nncore
            from sklearn.datasets import load_diabetes
            X, y = load_diabetes(return_X_y=True)
            net = nncore.MLP([10, 16, 1], activation="tanh")
            print("ready", flush=True)
            res = nncore.train(net, X, y, method="lm", seed=0, options={"max_nfev": 10**6})
            print(res.stopped, res.status, len(res.history), res.fun, flush=True)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's nncore
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    stopped, status, n_records, fun = out.split()
    assert (stopped, status) == ("interrupted", "102") and int(n_records) >= 2
    assert np.isfinite(float(fun))


def test_progress_bar_draws_on_request_and_is_quiet_off_a_terminal(capsys):
    pytest.importorskip("tqdm")
    net = seed_net()
    Xv, yv = XOR_X, XOR_Y
    nncore.train(net, XOR_X, XOR_Y, seed=0, progress=True)  # pytest's stderr is no terminal
    assert capsys.readouterr().err == ""
    nncore.train(net, XOR_X, XOR_Y, seed=0, progress="always", validation=(Xv, yv))
    err = capsys.readouterr().err
    assert "start 1/1" in err and "J=" in err and "|g|=" in err and "nfev=" in err
    assert "val=" in err


def test_progress_without_tqdm_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"pip install tqdm \(or pip install \"\.\[progress\]\""):
        nncore.train(seed_net(), XOR_X, XOR_Y, progress=True)
