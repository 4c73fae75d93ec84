"""nncore.limit_scipy_blas: scipy's BLAS on one thread while an optimiser runs, numpy's left
alone, everything restored afterwards, and nothing changed without threadpoolctl."""

import os
import sys

import numpy as np
import pytest

import nncore
from nncore.blas import scipy_blas_paths

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads() -> dict[str, int]:
    info = threadpoolctl.threadpool_info()
    return {i["filepath"]: i["num_threads"] for i in info if i["user_api"] == "blas"}


def numpy_blas(paths) -> list[str]:
    pkg = os.path.realpath(os.path.dirname(np.__file__))
    return [p for p in paths if os.path.realpath(p).startswith((pkg + os.sep, pkg + ".libs"))]


def test_limits_every_blas_but_numpys_and_restores():
    before = blas_threads()
    paths = scipy_blas_paths()
    assert not set(paths) & set(numpy_blas(before))  # numpy's is never limited
    if numpy_blas(before):  # pip wheels: numpy's BLAS is a file of its own
        assert set(paths) == set(before) - set(numpy_blas(before))
    else:  # one shared library (conda, system): nothing to separate
        assert paths == []
    with nncore.limit_scipy_blas() as limited:
        assert limited == paths
        during = blas_threads()
        for path, n in during.items():
            assert n == (1 if path in paths else before[path])
    assert blas_threads() == before


def test_train_runs_with_scipys_blas_limited():
    seen = []
    paths = scipy_blas_paths()
    net = nncore.MLP([3, 4, 2], activation="tanh", loss="cross_entropy")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.integers(0, 2, 20)
    nncore.train(
        net, X, y, method="L-BFGS-B", seed=0, callback=lambda r: seen.append(blas_threads())
    )
    assert seen
    for threads in seen:
        assert all(threads[p] == 1 for p in paths)


def test_without_threadpoolctl_nothing_changes(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import now raises ImportError
    assert scipy_blas_paths() == []
    with nncore.limit_scipy_blas() as limited:
        assert limited == []
